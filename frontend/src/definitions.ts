/**
 * The connectors, subagents and skills a team has defined (the builder passes
 * them in the editor's boot data), and how picking one edits the loop: a
 * connector or subagent that only another loop defines has its definition
 * copied into this loop's map, so the loop stays self-contained.
 */
import { setAt } from "./paths";
import { asObject, asStringList } from "./steps";
import type { Json, JsonObject, LoopData } from "./types";

export interface SharedDefinition {
  definition: JsonObject;
  /** The team's loops that define it. */
  loops: string[];
  /** How many different definitions the team's loops give this name. */
  variants: number;
}

export interface SkillInfo {
  name: string;
  description: string;
  source: string;
}

export interface TeamDefinitions {
  connectors: Record<string, SharedDefinition>;
  subagents: Record<string, SharedDefinition>;
  skills: SkillInfo[];
}

export type SharedMap = "connectors" | "subagents";

function sharedMap(value: Json | undefined): Record<string, SharedDefinition> {
  const out: Record<string, SharedDefinition> = {};
  const map = asObject(value);
  if (map) {
    for (const [name, raw] of Object.entries(map)) {
      const entry = asObject(raw);
      const definition = asObject(entry?.definition);
      if (!definition) continue;
      const loops = Array.isArray(entry?.loops) ? entry!.loops.filter((l): l is string => typeof l === "string") : [];
      out[name] = { definition, loops, variants: typeof entry?.variants === "number" ? entry.variants : 1 };
    }
  } else if (Array.isArray(value)) {
    // Bare names (no definition to copy) are still offered.
    for (const name of value) if (typeof name === "string") out[name] = { definition: {}, loops: [], variants: 0 };
  }
  return out;
}

/** Read the boot data's `connectors`, `subagents` and `skills` (tolerating absent or older shapes). */
export function parseDefinitions(boot: { connectors?: Json; subagents?: Json; skills?: Json }): TeamDefinitions {
  const skills: SkillInfo[] = [];
  if (Array.isArray(boot.skills)) {
    for (const raw of boot.skills) {
      if (typeof raw === "string") skills.push({ name: raw, description: "", source: "" });
      const s = asObject(raw);
      if (s && typeof s.name === "string") {
        skills.push({ name: s.name, description: typeof s.description === "string" ? s.description : "", source: typeof s.source === "string" ? s.source : "" });
      }
    }
  }
  return { connectors: sharedMap(boot.connectors), subagents: sharedMap(boot.subagents), skills };
}

/** The names a picker offers: this loop's own first, then the team's others, sorted. */
export function pickable(data: LoopData, field: SharedMap, defs: TeamDefinitions): string[] {
  const own = Object.keys(asObject(data[field]) ?? {});
  const team = Object.keys(defs[field]).filter((n) => !own.includes(n)).sort();
  return [...own, ...team];
}

/** Where a name comes from, for the picker's hint: "this loop" or "from loop-a, loop-b". */
export function origin(data: LoopData, field: SharedMap, name: string, defs: TeamDefinitions): string {
  if (asObject(data[field])?.[name] !== undefined) return "this loop";
  const shared = defs[field][name];
  if (!shared || !shared.loops.length) return "";
  return `copied from ${shared.loops[0]}${shared.variants > 1 ? ` (${shared.variants} different definitions in the team)` : ""}`;
}

/**
 * Copy into the loop's `field` map the team's definition of every name in
 * `names` that the loop does not define yet; names nobody defines are left
 * for validation to report.
 */
export function adopt(data: LoopData, field: SharedMap, names: Iterable<string>, defs: TeamDefinitions): LoopData {
  let out = data;
  for (const name of names) {
    if (!name || asObject(out[field])?.[name] !== undefined) continue;
    const shared = defs[field][name];
    if (!shared || !Object.keys(shared.definition).length) continue;
    out = setAt(out, [field, name], structuredClone(shared.definition)) as LoopData;
    // A subagent brings the connectors it uses.
    if (field === "subagents") out = adopt(out, "connectors", asStringList(shared.definition.connectors), defs);
  }
  return out;
}
