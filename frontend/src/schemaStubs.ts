/**
 * Small stand-ins for modules of codemirror-json-schema and json-schema-library that the YAML
 * view's completion and hover never need (vite.config.ts redirects them here):
 * json-schema-library's format validators (email, URI: smtp-address-parser, nearley,
 * valid-url) — the server validates the loop — and codemirror-json-schema's debug logger
 * (loglevel), which is silent in production builds anyway.
 */
const silent = () => undefined;

export const debug = { log: silent, debug: silent, info: silent, warn: silent, error: silent, trace: silent };

const formats: Record<string, never> = {};
export default formats;
