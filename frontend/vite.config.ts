/**
 * Two self-contained builds into ../loopkit_web/static/editor with fixed names (the Django
 * templates load them by name): `vite build --mode editor` writes editor.js and
 * editor.css; `vite build --mode graph` writes graph.js and graph.css; `vite build --mode run`
 * writes run.js (the run page's script, which mounts graph.js's graph when it is loaded).
 */
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig(({ mode }) => {
  const entry = mode === "graph" || mode === "run" ? mode : "editor";
  const inputs: Record<string, string> = {
    editor: "src/editor-main.tsx",
    graph: "src/graph-main.tsx",
    run: "src/run-main.ts",
  };
  return {
    plugins: [react()],
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
    test: { environment: "node", include: ["src/**/*.test.ts"] },
  };
});
