/**
 * Completion and help in the YAML view (CodeMirror extensions, added by YamlView):
 *
 * - keys and enum values from the loop's JSON Schema (`loopkit schema`, embedded at build
 *   time as src/generated/loop.schema.json) and the field's description on hover, by
 *   codemirror-json-schema;
 * - inside `{{ … }}` / `{% … %}` of a template field, what that template may read
 *   (src/templateCompletion.ts), from the last valid loop data.
 */
import { autocompletion, type Completion, type CompletionContext, type CompletionResult } from "@codemirror/autocomplete";
import { yamlLanguage } from "@codemirror/lang-yaml";
import type { Extension } from "@codemirror/state";
import { type EditorView, hoverTooltip } from "@codemirror/view";
import { JSONCompletion, getJSONSchema, stateExtensions } from "codemirror-json-schema";
import { JSONHover } from "../node_modules/codemirror-json-schema/dist/features/hover.js";
import loopSchema from "./generated/loop.editor-schema.json";
import { completeTemplate, expressionStart, isTemplateField, type TemplateCompletion } from "./templateCompletion";
import type { LoopData } from "./types";
import { webhookTrees } from "./webhookTrees";
import { scalarAt, yamlData } from "./yamlTree";

export { scalarAt };

/** A CodeMirror completion for one template candidate. */
export function toCompletion(option: TemplateCompletion, quote: "'" | '"' | null = null): Completion {
  const apply = quote === "'" ? option.label.replace(/'/g, "''") : quote === '"' ? option.label.replace(/"/g, '\\"') : option.label;
  return { label: option.label, apply, detail: option.detail, info: option.info, type: "variable" };
}

/** Completion inside `{{ … }}` / `{% … %}` of a template field of the YAML. */
export function templateSource(getData: () => LoopData | null) {
  return (context: CompletionContext): CompletionResult | null => {
    const line = context.state.doc.lineAt(context.pos);
    const before = line.text.slice(0, context.pos - line.from);
    // Cheap test first (typing must stay fast): the caret is not in an open `{{` / `{%` of
    // this line, nothing to do; else the YAML is parsed to find the field.
    if (expressionStart(before) < 0) return null;
    const data = getData();
    if (!data) return null;
    const text = context.state.doc.toString();
    const at = scalarAt(text, context.pos);
    if (at && !isTemplateField(at.path)) return null;
    const path = at?.path ?? "";
    const start = at ? Math.max(at.from, line.from) : line.from;
    const found = completeTemplate(data, path, text.slice(start, context.pos), webhookTrees());
    if (!found) return null;
    // Kept (and filtered by CodeMirror) while a name is typed; a `.` asks again (the next level
    // of trigger.payload).
    return { from: start + found.from, options: found.options.map((o) => toCompletion(o, at?.quote ?? null)), validFor: /^[\w[\]'" -]*$/ };
  };
}

/**
 * Completion of keys and values from the schema (codemirror-json-schema's YAML completion).
 * A query is slow (the package parses the whole YAML and resolves the pipeline's step types
 * against the data: 100 ms and more in a 150-line loop), so it must stay off the keystroke:
 * while typing, the list opens by itself only for a key typed at the start of a line in a loop
 * of at most `TYPING_LINES` lines (then CodeMirror filters it as the key is typed: one query
 * per key); values, and keys in longer loops, complete on Ctrl+Space. The package also
 * re-expands the whole schema on every query (it never records the schema it expanded):
 * recorded here after each query.
 */
export const TYPING_LINES = 300;
const TYPING_KEY = /^\s*(?:-\s+)?[A-Za-z_][\w]*$/;

export function schemaSource() {
  const completion = new JSONCompletion({ mode: "yaml" });
  return (context: CompletionContext): CompletionResult | null => {
    if (!context.explicit) {
      const line = context.state.doc.lineAt(context.pos);
      if (context.state.doc.lines > TYPING_LINES || !TYPING_KEY.test(line.text.slice(0, context.pos - line.from))) return null;
    }
    const result = completion.doComplete(context);
    (completion as unknown as { originalSchema: unknown }).originalSchema = getJSONSchema(context.state);
    return Array.isArray(result) ? null : { ...result, validFor: result.validFor ?? /^[\w-]*$/ };
  };
}

/** The loop's JSON Schema in the editor state, where codemirror-json-schema reads it. */
export const schemaState = (): Extension[] => stateExtensions(loopSchema as object);

/** The field's description and type on hover (codemirror-json-schema's hover, data from the Lezer tree). */
function schemaHover() {
  const hover = new JSONHover({ mode: "yaml", parser: yamlData });
  return (view: EditorView, pos: number, side: -1 | 1) => hover.doHover(view, pos, side);
}

/** The YAML view's completion and hover extensions. */
export function yamlAssist(getData: () => LoopData | null): Extension[] {
  webhookTrees(); // start loading the payload trees
  return [
    schemaState(),
    yamlLanguage.data.of({ autocomplete: templateSource(getData) }),
    yamlLanguage.data.of({ autocomplete: schemaSource() }),
    autocompletion({ icons: false }),
    hoverTooltip(schemaHover()),
  ];
}
