/** The YAML view: CodeMirror 6 with YAML highlighting and errors in a lint gutter. */
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { yaml } from "@codemirror/lang-yaml";
import { bracketMatching, indentOnInput, syntaxHighlighting, defaultHighlightStyle } from "@codemirror/language";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { Annotation, EditorState, type Text } from "@codemirror/state";
import { EditorView, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers } from "@codemirror/view";
import { useEffect, useRef } from "react";
import type { LoopData, SpecError } from "./types";
import { yamlAssist } from "./yamlAssist";

/** Marks a change the editor made itself (canonical YAML), not the user's typing. */
const external = Annotation.define<boolean>();

/** Turn API errors into CodeMirror diagnostics at their line:column (1-based). */
export function toDiagnostics(doc: Text, errors: SpecError[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const error of errors) {
    if (!error.line) continue;
    const lineNo = Math.min(Math.max(error.line, 1), doc.lines);
    const line = doc.line(lineNo);
    const from = Math.min(line.from + Math.max((error.column ?? 1) - 1, 0), line.to);
    const to = from < line.to ? line.to : Math.min(from + 1, doc.length);
    const where = `${error.line}:${error.column ?? 1}`;
    out.push({
      from,
      to: Math.max(to, from),
      severity: "error",
      source: where,
      message: `${where} ${error.path ? `${error.path}: ` : ""}${error.message}${error.hint ? ` (${error.hint})` : ""}`,
    });
  }
  return out;
}

export interface YamlViewProps {
  text: string;
  errors: SpecError[];
  readOnly: boolean;
  onChange(text: string): void;
  /** The editor's shared undo/redo (graph, form and YAML): Ctrl+Z, Ctrl+Shift+Z, Ctrl+Y here go to it. */
  onUndo?(): void;
  onRedo?(): void;
  /** The last valid loop data: what `{{` completes from (src/yamlAssist.ts). */
  data?: LoopData | null;
}

export function YamlView({ text, errors, readOnly, onChange, onUndo, onRedo, data = null }: YamlViewProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const changed = useRef(onChange);
  changed.current = onChange;
  const shared = useRef({ onUndo, onRedo });
  shared.current = { onUndo, onRedo };
  const loopData = useRef(data);
  loopData.current = data;

  useEffect(() => {
    const editor = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: text,
        extensions: [
          lineNumbers(),
          highlightActiveLineGutter(),
          history(),
          indentOnInput(),
          bracketMatching(),
          highlightActiveLine(),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          yaml(),
          EditorView.lineWrapping,
          lintGutter(),
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          EditorState.readOnly.of(readOnly),
          ...(readOnly ? [] : yamlAssist(() => loopData.current)),
          EditorView.updateListener.of((update) => {
            if (update.docChanged && !update.transactions.some((t) => t.annotation(external))) {
              changed.current(update.state.doc.toString());
            }
          }),
        ],
      }),
    });
    view.current = editor;
    // Undo keys go to the editor's shared history (before CodeMirror's own keymap sees them).
    const routeUndo = (e: KeyboardEvent) => {
      const key = e.key.toLowerCase();
      if (!(e.ctrlKey || e.metaKey) || e.altKey || (key !== "z" && key !== "y")) return;
      const which = key === "z" && !e.shiftKey ? "onUndo" : "onRedo";
      if (!shared.current[which]) return;
      e.preventDefault();
      e.stopPropagation();
      shared.current[which]!();
    };
    const element = host.current!;
    element.addEventListener("keydown", routeUndo, true);
    // A seam for the browser tests and the keystroke bench: read the text as the editor has it.
    (host.current as HTMLDivElement & { loopkitView?: EditorView }).loopkitView = editor;
    return () => {
      element.removeEventListener("keydown", routeUndo, true);
      editor.destroy();
    };
    // The editor is created once; later text arrives through the effect below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    const current = editor.state.doc.toString();
    if (current !== text) {
      editor.dispatch({ changes: { from: 0, to: current.length, insert: text }, annotations: external.of(true) });
    }
  }, [text]);

  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    editor.dispatch(setDiagnostics(editor.state, toDiagnostics(editor.state.doc, errors)));
  }, [errors, text]);

  return <div className="lke-yaml" ref={host} data-testid="yaml-editor" />;
}
