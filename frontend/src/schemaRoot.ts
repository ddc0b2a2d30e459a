/**
 * What the YAML view takes from codemirror-json-schema's root module (vite.config.ts points
 * `import ... from "codemirror-json-schema"` in src/yamlAssist.ts here): the schema state and
 * the completion class, without the root's JSON mode (best-effort-json-parser, lang-json).
 */
export { getJSONSchema, stateExtensions } from "../node_modules/codemirror-json-schema/dist/features/state.js";
export { JSONCompletion } from "../node_modules/codemirror-json-schema/dist/features/completion.js";
