// Fails the build when the editor bundle grows past its budget (issue 16):
// editor.js gzipped must stay under 350 KB. Prints the sizes either way.
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const LIMIT_KB = Number(process.env.LOOPKIT_EDITOR_BUDGET_KB ?? 350);
const dir = fileURLToPath(new URL("../../loopkit_web/static/editor/", import.meta.url));
let failed = false;
for (const [file, limit] of [["editor.js", LIMIT_KB], ["editor.css", null], ["graph.js", null], ["run.js", null]]) {
  let bytes;
  try {
    bytes = readFileSync(dir + file);
  } catch {
    if (limit !== null) {
      console.error(`bundle size: ${file} is missing (build it first)`);
      failed = true;
    }
    continue;
  }
  const gz = gzipSync(bytes, { level: 9 }).length / 1000;
  const over = limit !== null && gz > limit;
  failed ||= over;
  console.log(`bundle size: ${file} ${(bytes.length / 1000).toFixed(1)} KB, ${gz.toFixed(1)} KB gzipped${limit !== null ? ` (budget ${limit} KB)${over ? " — OVER BUDGET" : ""}` : ""}`);
}
if (failed) process.exit(1);
