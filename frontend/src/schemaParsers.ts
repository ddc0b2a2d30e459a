/**
 * Replaces codemirror-json-schema's `parsers/index` in the editor bundle (vite.config.ts): the
 * YAML view only needs the YAML parser, and reads the document's data from CodeMirror's own
 * Lezer tree (src/yamlTree.ts) — the package's JSON, JSON5 and YAML parsers (json5,
 * @codemirror/lang-json, codemirror-json5, the `yaml` package) stay out of editor.js.
 */
import type { EditorState } from "@codemirror/state";
import { getJsonPointers } from "../node_modules/codemirror-json-schema/dist/utils/json-pointers.js";
import { yamlData } from "./yamlTree";

export function parseYAMLDocumentState(state: EditorState) {
  return { data: yamlData(state.doc.toString()), pointers: getJsonPointers(state, "yaml") };
}

export const getDefaultParser = (_mode?: string) => parseYAMLDocumentState;
