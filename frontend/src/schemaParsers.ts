/**
 * Replaces codemirror-json-schema's `parsers/index` in the editor bundle (vite.config.ts): the
 * YAML view only needs the YAML parser, and the JSON and JSON5 ones bring json5,
 * @codemirror/lang-json and codemirror-json5 (about 15 KB gzipped).
 */
import { parseYAMLDocumentState } from "codemirror-json-schema/yaml";

export const getDefaultParser = (_mode?: string) => parseYAMLDocumentState;
