import { CompletionContext, type CompletionResult } from "@codemirror/autocomplete";
import { yaml } from "@codemirror/lang-yaml";
import { ensureSyntaxTree } from "@codemirror/language";
import { EditorState } from "@codemirror/state";
import { describe, expect, it } from "vitest";
import type { LoopData } from "./types";
import { TYPING_LINES, scalarAt, schemaSource, schemaState, templateSource } from "./yamlAssist";

/** The labels completion offers at the end of `doc` (schema completion, or `{{` completion with `data`). */
function complete(doc: string, data?: LoopData, explicit = true): string[] {
  const created = EditorState.create({ doc, extensions: [yaml(), schemaState()] });
  // Finish the parse (creating a state parses for a few milliseconds only), then take the
  // state that holds the whole tree, as an editor view's parse worker would.
  ensureSyntaxTree(created, created.doc.length, 5000);
  const state = created.update({}).state;
  const context = new CompletionContext(state, doc.length, explicit);
  const result = (data ? templateSource(() => data)(context) : schemaSource()(context)) as CompletionResult | null;
  return result && "options" in result ? result.options.map((o) => o.label) : [];
}

describe("YAML view completion", () => {
  it("completes keys of the loop's JSON Schema, nested ones too", () => {
    expect(complete("name: x\nverify:\n  maker: a\n  stallOnR")).toEqual(["stallOnRepeat"]);
    expect(complete("name: x\nbudget:\n  maxTokens: 5\n  maxCo")).toEqual(["maxCostUsd"]);
  });

  it("opens the list by itself only for a key typed at the start of a line", () => {
    expect(complete("name: x\nverify:\n  maker: a\n  onFail: a", undefined, false)).toEqual([]);
    expect(complete("name: x\nverify:\n  maker: a\n  onFail: a", undefined, true)).toEqual(["accept-best"]);
  });

  it("completes enum values of optional fields", () => {
    expect(complete("name: x\nverify:\n  maker: a\n  onFail: a")).toEqual(["accept-best"]);
    expect(complete("name: x\nmemory:\n  store: f")).toEqual(["filesystem"]);
  });

  it("in a long loop, opens the schema's list only when asked (Ctrl+Space), not on typing", () => {
    const long = `name: x\ndescription: |\n${"  line\n".repeat(TYPING_LINES)}verify:\n  maker: a\n  stallOnR`;
    expect(complete(long, undefined, false)).toEqual([]);
    expect(complete(long, undefined, true)).toEqual(["stallOnRepeat"]);
    expect(complete("name: x\nverify:\n  maker: a\n  stallOnR", undefined, false)).toEqual(["stallOnRepeat"]);
  });

  it("finds the template field under the caret", () => {
    const doc = "pipeline:\n  - prompt: a\n  - prompt: |\n      Use {{ st";
    expect(scalarAt(doc, doc.length)?.path).toBe("pipeline[1].prompt");
    expect(scalarAt("name: x", 7)?.path).toBe("name");
  });

  it("completes earlier steps' output inside {{ of a prompt", () => {
    const data = { name: "x", pipeline: [{ prompt: "a", label: "First" }, { prompt: "b", label: "Second" }] };
    const doc = "name: x\npipeline:\n  - prompt: a\n    label: First\n  - prompt: |\n      Use {{ st";
    expect(complete(doc, data)).toContain("steps['First'].output");
    expect(complete(doc, data)).not.toContain("steps['Second'].output");
    expect(complete("name: x\ndescription: no {{ here", data).some((l) => l.startsWith("steps"))).toBe(false);
  });
});
