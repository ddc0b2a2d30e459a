/** Field paths as the engine writes them: `pipeline[0].parallel[2].prompt`. */
import type { Json, JsonObject } from "./types";

export type PathPart = string | number;
export type Path = PathPart[];

export function parsePath(text: string): Path {
  const out: Path = [];
  const re = /([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]/g;
  let match: RegExpExecArray | null;
  while ((match = re.exec(text)) !== null) {
    if (match[1] !== undefined) out.push(match[1]);
    else if (match[2] !== undefined) out.push(Number(match[2]));
    else out.push(match[3]);
  }
  return out;
}

export function formatPath(path: Path): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) out += out ? `.${part}` : part;
    else out += `['${part}']`;
  }
  return out;
}

export function getAt(root: unknown, path: Path): Json | undefined {
  let here = root as Json | undefined;
  for (const part of path) {
    if (here === null || here === undefined || typeof here !== "object") return undefined;
    here = Array.isArray(here) ? here[part as number] : (here as JsonObject)[part as string];
  }
  return here;
}

/**
 * Return a copy of `root` with the value at `path` replaced (undefined deletes a key), typed as
 * `root` is (the editor's loop data stays `LoopData`; the server validates the result).
 */
export function setAt<T>(root: T, path: Path, value: Json | undefined): T {
  return setJson(root, path, value) as T;
}

function setJson(root: unknown, path: Path, value: Json | undefined): Json {
  if (path.length === 0) return value === undefined ? null : value;
  const [head, ...rest] = path;
  if (Array.isArray(root)) {
    const copy = (root as Json[]).slice();
    const child = setJson(copy[head as number] ?? {}, rest, value);
    copy[head as number] = child;
    return copy;
  }
  const obj: JsonObject = root !== null && typeof root === "object" ? { ...(root as JsonObject) } : {};
  if (rest.length === 0 && value === undefined) {
    delete obj[head as string];
    return obj;
  }
  obj[head as string] = setJson(obj[head as string] ?? (typeof rest[0] === "number" ? [] : {}), rest, value);
  return obj;
}

export function isPrefix(prefix: Path, path: Path): boolean {
  return prefix.length <= path.length && prefix.every((p, i) => p === path[i]);
}
