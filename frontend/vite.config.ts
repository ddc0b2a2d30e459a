/**
 * Two self-contained builds into ../loopkit_web/static/editor with fixed names (the Django
 * templates load them by name): `vite build --mode editor` writes editor.js and
 * editor.css; `vite build --mode graph` writes graph.js and graph.css; `vite build --mode run`
 * writes run.js (the run page's script, which mounts graph.js's graph when it is loaded).
 */
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";
import webhookTrees from "./src/generated/webhooks.json" with { type: "json" };

/**
 * Keep codemirror-json-schema small in the editor bundle (see docs/editor.md, "Completion"):
 * it renders descriptions with markdown-it and shiki (about 1 MB with shiki's WebAssembly
 * engine), replaced by src/schemaMarkdown.ts; its parsers module brings the JSON and JSON5
 * parsers too, replaced by src/schemaParsers.ts (YAML only); src/yamlAssist.ts takes only the
 * schema state and the completion class from the package's root module (src/schemaRoot.ts); src/schemaStubs.ts stands in for the format
 * validators of json-schema-library and the debug logger.
 */
function smallJsonSchema(): Plugin {
  const local = (file: string) => decodeURIComponent(new URL(`./src/${file}`, import.meta.url).pathname);
  return {
    name: "loopkit-small-json-schema",
    enforce: "pre",
    resolveId(source, importer) {
      // The package's root module re-exports its JSON mode (best-effort-json-parser, lang-json):
      // the editor takes only the schema state from it.
      if (source === "codemirror-json-schema" && importer?.endsWith("yamlAssist.ts")) return local("schemaRoot.ts");
      if (importer?.includes("json-schema-library") && /\/validation\/format(\.js)?$/.test(source)) return local("schemaStubs.ts");
      if (!importer || !importer.includes("codemirror-json-schema")) return null;
      if (/(^|\/)utils\/debug(\.js)?$/.test(source)) return local("schemaStubs.ts");
      if (/(^|\/)utils\/markdown(\.js)?$/.test(source)) return local("schemaMarkdown.ts");
      if (/^\.\.?\/parsers(\/index(\.js)?)?$/.test(source)) return local("schemaParsers.ts");
      return null;
    },
  };
}

/**
 * The GitHub webhook payload key trees (`trigger.payload.*` completion) are not in editor.js:
 * they are written beside it as webhook-payloads.json, which src/webhookTrees.ts fetches.
 */
function webhookPayloads(): Plugin {
  return {
    name: "loopkit-webhook-payloads",
    generateBundle() {
      this.emitFile({ type: "asset", fileName: "webhook-payloads.json", source: JSON.stringify(webhookTrees) });
    },
  };
}

export default defineConfig(({ mode }) => {
  const entry = mode === "graph" || mode === "run" ? mode : "editor";
  const inputs: Record<string, string> = {
    editor: "src/editor-main.tsx",
    graph: "src/graph-main.tsx",
    run: "src/run-main.ts",
  };
  return {
    plugins: [react(), smallJsonSchema(), ...(entry === "editor" ? [webhookPayloads()] : [])],
    define: { "process.env.NODE_ENV": JSON.stringify("production") },
    build: {
      outDir: "../loopkit_web/static/editor",
      emptyOutDir: entry === "editor",
      cssCodeSplit: false,
      sourcemap: false,
      target: "es2020",
      chunkSizeWarningLimit: 2000,
      rollupOptions: {
        input: inputs[entry],
        output: {
          format: "iife",
          entryFileNames: `${entry}.js`,
          assetFileNames: `${entry}[extname]`,
        },
      },
    },
    // codemirror-json-schema imports without file extensions: vitest must bundle it, as Vite does.
    test: { environment: "node", include: ["src/**/*.test.ts"], server: { deps: { inline: ["codemirror-json-schema"] } } },
  };
});
