/** JSON Merge Patch (RFC 7386), as LRS findings' one-click fixes carry it. */
import type { Json, JsonObject, LoopData } from "./types";

function isObject(value: Json | undefined): value is JsonObject {
  return value !== null && value !== undefined && typeof value === "object" && !Array.isArray(value);
}

/** Apply a fix's patch to the loop data (the server validates the result like any edit). */
export function patchLoop(data: LoopData, patch: Json): LoopData {
  return applyMergePatch(data as unknown as Json, patch) as unknown as LoopData;
}

export function applyMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}
