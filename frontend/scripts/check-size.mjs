/** Fail the build when the editor bundle is over its budget (issue 16: 350 KB gzipped). */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const LIMIT = 350 * 1024;
const file = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "loopkit_web", "static", "editor", "editor.js");
const size = gzipSync(readFileSync(file), { level: 9 }).length;
if (size > LIMIT) {
  console.error(`editor.js is ${size} bytes gzipped, over the ${LIMIT}-byte budget (docs/editor.md, "Building").`);
  process.exit(1);
}
