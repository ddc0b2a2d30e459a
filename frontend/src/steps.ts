/** Steps of a loop (its pipeline, then onPass and onFail) and the edits the graph and form make to them. */
import { formatPath, getAt, isPrefix, parsePath, setAt, type Path } from "./paths";
import type { Json, JsonObject, LoopData, StepData, StepKind } from "./types";

export function stepKind(step: unknown): StepKind {
  if (step === null || step === undefined || typeof step !== "object" || Array.isArray(step)) return "unknown";
  // The same precedence as loopkit.spec.STEP_KEYS.
  if ("parallel" in step) return "parallel";
  if ("sequential" in step) return "sequential";
  if ("when" in step) return "conditional";
  if ("approve" in step) return "approval";
  if ("plan" in step) return "plan";
  if ("prompt" in step) return "agent";
  if ("tool" in step) return "tool";
  return "unknown";
}

/** The loop's top-level step lists: the pipeline, then the actions after verification. */
export const STEP_LISTS = ["pipeline", "onPass", "onFail"] as const;

/** Whether a step path is in the pipeline (makers are pipeline steps), not in onPass/onFail. */
export function inPipeline(path: string): boolean {
  return parsePath(path)[0] === "pipeline";
}

/** The step lists a step holds, as [key, list] pairs (`then`/`else` for a condition). */
export function childLists(step: StepData): [string, StepData[]][] {
  const kind = stepKind(step);
  const lists: [string, StepData[]][] = [];
  const take = (key: string) => {
    const value = step[key];
    if (Array.isArray(value)) lists.push([key, value as StepData[]]);
  };
  if (kind === "parallel") take("parallel");
  else if (kind === "sequential") take("sequential");
  else if (kind === "conditional") {
    take("then");
    take("else");
  }
  return lists;
}

/** What holds step lists: a loop (or a stand-in such as `{pipeline: [step]}`). */
export type StepLists = { [K in (typeof STEP_LISTS)[number]]?: unknown };

export interface StepEntry {
  path: string;
  step: StepData;
  kind: StepKind;
}

/** Every step, depth first, groups before members: the pipeline, then onPass and onFail
 * (like loopkit.spec.iter_loop_steps). */
export function iterSteps(data: StepLists): StepEntry[] {
  const out: StepEntry[] = [];
  const walk = (steps: unknown, prefix: Path) => {
    if (!Array.isArray(steps)) return;
    steps.forEach((raw, index) => {
      const path = [...prefix, index];
      const step = (raw ?? {}) as StepData;
      out.push({ path: formatPath(path), step, kind: stepKind(step) });
      for (const [key] of childLists(step)) walk(step[key], [...path, key]);
    });
  };
  for (const list of STEP_LISTS) walk(data[list], [list]);
  return out;
}

export function stepLabel(step: StepData): string | null {
  return typeof step.label === "string" && step.label ? step.label : null;
}

/** Map every label to its step path (the run page addresses steps by either). */
export function labelIndex(data: LoopData): Map<string, string> {
  const index = new Map<string, string>();
  for (const entry of iterSteps(data)) {
    const label = stepLabel(entry.step);
    if (label && !index.has(label)) index.set(label, entry.path);
  }
  return index;
}

/** A label no other step has: "Agent 2", "Agent 3", ... */
export function freshLabel(data: LoopData, base = "Agent"): string {
  const taken = new Set(iterSteps(data).map((e) => stepLabel(e.step)));
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) {
    if (!taken.has(`${base} ${n}`)) return `${base} ${n}`;
  }
}

export function newStep(data: LoopData, kind: StepKind): StepData {
  switch (kind) {
    case "parallel":
      return { parallel: [{ prompt: "Describe the task", label: freshLabel(data) }] };
    case "conditional":
      return { when: "true", then: [{ prompt: "Describe the task", label: freshLabel(data) }] };
    case "approval":
      return { approve: "Approve this change?", label: freshLabel(data, "Approval") };
    case "sequential":
      return { sequential: [{ prompt: "Describe the task", label: freshLabel(data) }] };
    case "tool":
      return { tool: firstTool(data), label: freshLabel(data, "Tool") };
    case "plan":
      return {
        plan: "Describe the goal the planner works towards",
        label: freshLabel(data, "Plan"),
        templates: { research: { description: "Find and report facts about one question", prompt: "{{ input }}" } },
        maxSteps: 3,
        maxIterations: 2,
      };
    default:
      return { prompt: "Describe the task", label: freshLabel(data) };
  }
}

/** The tools the loop's connectors declare, as `connector.tool` (HTTP operations, SQL's two, a notification's send). */
export function declaredTools(data: LoopData): string[] {
  const out: string[] = [];
  for (const [name, raw] of Object.entries(asObject(data.connectors) ?? {})) {
    const connector = asObject(raw);
    if (connector?.type === "http") for (const op of Object.keys(asObject(connector.operations) ?? {})) out.push(`${name}.${op}`);
    else if (connector?.type === "sql") out.push(`${name}.query`, `${name}.tables`);
    else if (connector?.type === "slack" || connector?.type === "email") out.push(`${name}.send`);
  }
  return out;
}

function firstTool(data: LoopData): string {
  return declaredTools(data)[0] ?? "connector.tool";
}

/** Insert `step` at `index` of the step list at `listPath` ("pipeline", "pipeline[0].parallel", "onPass"). */
export function insertStep(data: LoopData, listPath: string, index: number, step: StepData): LoopData {
  const path = parsePath(listPath);
  const list = getAt(data, path);
  const items = Array.isArray(list) ? list.slice() : [];
  items.splice(Math.max(0, Math.min(index, items.length)), 0, step);
  return setAt(data, path, items) as LoopData;
}

/**
 * Remove the step at `stepPath`. A group left empty goes too (the spec wants at
 * least one member), and an empty `else` is dropped; labels the verify stage
 * names are removed from its makers.
 */
export function removeStep(data: LoopData, stepPath: string): LoopData {
  const path = parsePath(stepPath);
  const step = getAt(data, path) as StepData | undefined;
  const removedLabels = new Set<string>();
  if (step) {
    for (const entry of iterSteps({ pipeline: [step] })) {
      const label = stepLabel(entry.step);
      if (label) removedLabels.add(label);
    }
  }
  let out = removeAt(data, path);
  const verify = out.verify;
  if (removedLabels.size && verify && typeof verify === "object" && !Array.isArray(verify)) {
    const makers = verify.maker;
    const list = Array.isArray(makers) ? makers : typeof makers === "string" ? [makers] : [];
    const kept = list.filter((m) => !(typeof m === "string" && removedLabels.has(m)));
    if (kept.length !== list.length) {
      out = setAt(out, ["verify", "maker"], kept.length ? kept : undefined) as LoopData;
    }
  }
  return out;
}

/** Remove several steps: later siblings and members before what holds them, so paths stay valid. */
export function removeSteps(data: LoopData, stepPaths: string[]): LoopData {
  const compare = (a: Path, b: Path): number => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      if (a[i] === b[i]) continue;
      return typeof a[i] === "number" && typeof b[i] === "number" ? (a[i] as number) - (b[i] as number) : String(a[i]).localeCompare(String(b[i]));
    }
    return a.length - b.length;
  };
  const ordered = stepPaths.map(parsePath).sort((a, b) => compare(b, a));
  let out = data;
  for (const path of ordered) {
    if (getAt(out, path) !== undefined) out = removeStep(out, formatPath(path));
  }
  return out;
}

function removeAt(data: LoopData, path: Path): LoopData {
  const listPath = path.slice(0, -1);
  const index = path[path.length - 1] as number;
  const list = getAt(data, listPath);
  if (!Array.isArray(list)) return data;
  const items = list.slice();
  items.splice(index, 1);
  const owner = listPath.slice(0, -1);
  const key = listPath[listPath.length - 1];
  if (items.length === 0 && owner.length > 0) {
    if (key === "else") return setAt(data, listPath, undefined) as LoopData;
    return removeAt(data, owner);
  }
  return setAt(data, listPath, items) as LoopData;
}

/**
 * Move the step at `fromPath` to position `index` of the list at `toListPath`,
 * where `index` counts positions in that list before the move.
 */
export function moveStep(data: LoopData, fromPath: string, toListPath: string, index: number): LoopData {
  const from = parsePath(fromPath);
  const toList = parsePath(toListPath);
  if (isPrefix(from, toList)) return data; // into itself
  const step = getAt(data, from) as StepData | undefined;
  if (!step) return data;
  const fromList = from.slice(0, -1);
  const fromIndex = from[from.length - 1] as number;
  let target = index;
  // Removing the step first shifts later positions of the same list, and of
  // any list that sits inside a later sibling.
  const sameList = formatPath(fromList) === formatPath(toList);
  if (sameList && fromIndex < index) target -= 1;
  if (sameList && fromIndex === target) return data;
  let adjusted = toList;
  if (!sameList && isPrefix(fromList, toList) && toList.length > fromList.length) {
    const sibling = toList[fromList.length] as number;
    if (sibling > fromIndex) adjusted = [...fromList, sibling - 1, ...toList.slice(fromList.length + 1)];
  }
  const listBefore = getAt(data, fromList);
  if (Array.isArray(listBefore) && listBefore.length === 1 && fromList.length > 1 && !sameList) {
    return data; // moving the only member out would leave an empty group
  }
  const without = setAt(data, fromList, (listBefore as Json[]).filter((_, i) => i !== fromIndex)) as LoopData;
  return insertStep(without, formatPath(adjusted), target, step);
}

/** Set (or with undefined, remove) one field of the object at `path`. */
export function updateField(data: LoopData, path: string, field: string, value: Json | undefined): LoopData {
  return setAt(data, [...parsePath(path), field], value) as LoopData;
}

/** The value as a JSON object (a typed part of the loop, such as `data.budget`, is one), or null. */
export function asObject(value: unknown): JsonObject | null {
  return value !== null && value !== undefined && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : null;
}

export function asStringList(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}

/** The step path that owns a field path (`pipeline[0].parallel[1].prompt` → `pipeline[0].parallel[1]`). */
export function owningStep(fieldPath: string): string | null {
  const path = parsePath(fieldPath);
  let last = -1;
  for (let i = 0; i < path.length; i++) if (typeof path[i] === "number") last = i;
  if (!(STEP_LISTS as readonly string[]).includes(String(path[0])) || last < 0) return null;
  return formatPath(path.slice(0, last + 1));
}
