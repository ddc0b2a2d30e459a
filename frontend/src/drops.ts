/**
 * What the canvas does with a drop, a move, a paste or a duplicate: pure
 * functions of the loop data. The pipeline stays a structured tree, so each
 * gesture either maps to one edit of the YAML or is refused with a reason the
 * canvas shows.
 */
import { adopt, type TeamDefinitions } from "./definitions";
import type { LoopNodeKind } from "./graph";
import { formatPath, getAt, isPrefix, parsePath, setAt } from "./paths";
import { asStringList, insertStep, iterSteps, moveStep, newStep, stepKind, stepLabel } from "./steps";
import type { Json, LoopData, StepData, StepKind } from "./types";

/** What the palette offers: a step kind, or one of the team's subagents, skills and connectors. */
export type PaletteItem = { type: "step"; kind: StepKind } | { type: "subagent" | "skill" | "connector"; name: string };

/** Where something is dropped: an edge (its insert point) or a node. */
export type DropTarget =
  | { type: "edge"; id: string; source: string; target: string; listPath?: string; index?: number }
  | { type: "node"; id: string; kind: LoopNodeKind; title?: string };

export type DropResult = { ok: true; data: LoopData; select: string | null } | { ok: false; reason: string };

const KIND_NAME: Record<string, string> = {
  agent: "An agent step",
  approval: "An approval gate",
  tool: "A tool call",
  plan: "A plan step",
  unknown: "This step",
};

export function itemName(item: PaletteItem): string {
  if (item.type === "step") {
    return { agent: "agent step", parallel: "parallel group", sequential: "sequence", conditional: "condition", approval: "approval gate", plan: "plan step", tool: "tool call", unknown: "step" }[item.kind];
  }
  return `${item.type} '${item.name}'`;
}

/** The step list and position an edge inserts at, or why it cannot take a step. */
export function edgeInsertPoint(target: Extract<DropTarget, { type: "edge" }>): { listPath: string; index: number } | string {
  if (target.listPath !== undefined && target.index !== undefined) return { listPath: target.listPath, index: target.index };
  // The "else" edge of a condition without an else branch: a drop there starts one.
  if (target.id.endsWith(":else")) return { listPath: `${target.source}.else`, index: 0 };
  if (target.target.endsWith("#join")) {
    return "A parallel group's join cannot take a step: drop it on the edge into a branch, or below the join";
  }
  return "This edge cannot take a step";
}

/** The step an item becomes when it is dropped on an edge. */
function stepFor(data: LoopData, item: PaletteItem, defs: TeamDefinitions): [LoopData, StepData] {
  if (item.type === "step") return [data, newStep(data, item.kind)];
  const step = newStep(data, "agent");
  if (item.type === "subagent") return [adopt(data, "subagents", [item.name], defs), { ...step, subagent: item.name }];
  if (item.type === "connector") return [adopt(data, "connectors", [item.name], defs), { ...step, connectors: [item.name] }];
  return [data, { ...step, skills: [item.name] }];
}

/** Apply a palette item dropped on `target`, or say why not. */
export function planDrop(data: LoopData, item: PaletteItem, target: DropTarget, defs: TeamDefinitions): DropResult {
  if (target.type === "edge") {
    const point = edgeInsertPoint(target);
    if (typeof point === "string") return { ok: false, reason: point };
    const [withDefs, step] = stepFor(data, item, defs);
    const list = getAt(withDefs, parsePath(point.listPath));
    const index = Math.min(point.index, Array.isArray(list) ? list.length : 0);
    return { ok: true, data: insertStep(withDefs, point.listPath, index, step), select: `${point.listPath}[${index}]` };
  }
  const { id, kind } = target;
  const name = target.title ? `'${target.title}'` : "this step";
  switch (kind) {
    case "join":
      return { ok: false, reason: `A ${id.includes(".parallel") || isParallelJoin(data, id) ? "parallel group" : "condition"}'s join cannot take a step: drop it on an edge` };
    case "trigger":
      return { ok: false, reason: "The trigger starts the loop and holds no steps: drop on the edge below it" };
    case "verify":
      return { ok: false, reason: "The checker is set in the verify section: drop on its pass or fail edge to add a step after it" };
    case "end":
      return { ok: false, reason: "Done ends the loop: drop on the edge above it" };
    case "budget":
    case "memory":
      return { ok: false, reason: `${kind === "budget" ? "The budget" : "Memory"} is a loop setting, not a step: drop on an edge` };
    default:
      break;
  }
  if (item.type === "step") {
    if (kind === "parallel" || kind === "sequential") {
      const listPath = `${id}.${kind}`;
      const list = getAt(data, parsePath(listPath));
      const index = Array.isArray(list) ? list.length : 0;
      return { ok: true, data: insertStep(data, listPath, index, newStep(data, item.kind)), select: `${listPath}[${index}]` };
    }
    if (kind === "conditional") {
      return { ok: false, reason: "A condition holds steps in its branches: drop on the edge labelled then or else" };
    }
    return { ok: false, reason: `${KIND_NAME[kind] ?? "This step"} cannot hold other steps: drop on the edge before or after it` };
  }
  const step = getAt(data, parsePath(id)) as StepData | undefined;
  if (!step) return { ok: false, reason: "That step is gone" };
  if (item.type === "subagent" && kind === "plan") {
    if (step.planner === item.name) return { ok: false, reason: `${name} is already planned by @${item.name}` };
    return { ok: true, data: adopt(setAt(data, [...parsePath(id), "planner"], item.name) as LoopData, "subagents", [item.name], defs), select: id };
  }
  if (kind !== "agent") {
    return { ok: false, reason: `A ${item.type} is used by an agent step: drop it on an agent step, or on an edge to add one` };
  }
  if (item.type === "subagent") {
    if (step.subagent === item.name) return { ok: false, reason: `${name} already runs as @${item.name}` };
    return { ok: true, data: adopt(setAt(data, [...parsePath(id), "subagent"], item.name) as LoopData, "subagents", [item.name], defs), select: id };
  }
  const field = item.type === "skill" ? "skills" : "connectors";
  const have = asStringList(step[field]);
  if (have.includes(item.name)) return { ok: false, reason: `${name} already uses the ${item.type} '${item.name}'` };
  let out = setAt(data, [...parsePath(id), field], [...have, item.name]) as LoopData;
  if (item.type === "connector") out = adopt(out, "connectors", [item.name], defs);
  return { ok: true, data: out, select: id };
}

function isParallelJoin(data: LoopData, joinId: string): boolean {
  return stepKind(getAt(data, parsePath(joinId.replace(/#join$/, "")))) === "parallel";
}

/**
 * Move the step at `from` onto a target: into a parallel or sequential group
 * when dropped on its header (as its last member), to an edge's insert point,
 * or before/after another step (`after`).
 */
export function planMove(data: LoopData, from: string, target: DropTarget, after = false): DropResult {
  let listPath: string;
  let index: number;
  if (target.type === "edge") {
    const point = edgeInsertPoint(target);
    if (typeof point === "string") return { ok: false, reason: point };
    ({ listPath, index } = point);
  } else {
    const node = getAt(data, parsePath(target.id));
    const kind = target.kind;
    if (target.id === from) return { ok: false, reason: "Dropped on itself: nothing moved" };
    if ((kind === "parallel" || kind === "sequential") && node !== undefined && !isPrefix(parsePath(target.id), parsePath(from))) {
      listPath = `${target.id}.${kind}`;
      const list = getAt(data, parsePath(listPath));
      index = Array.isArray(list) ? list.length : 0;
    } else {
      const path = parsePath(target.id);
      if (node === undefined || typeof path[path.length - 1] !== "number") {
        return { ok: false, reason: `A step cannot move onto ${target.title ? `'${target.title}'` : "that node"}: drop it on an edge or a step` };
      }
      listPath = formatPath(path.slice(0, -1));
      index = (path[path.length - 1] as number) + (after ? 1 : 0);
    }
  }
  const fromPath = parsePath(from);
  if (isPrefix(fromPath, parsePath(listPath))) return { ok: false, reason: "A group cannot move into itself" };
  const fromList = fromPath.slice(0, -1);
  const siblings = getAt(data, fromList);
  if (Array.isArray(siblings) && siblings.length === 1 && fromList.length > 1 && formatPath(fromList) !== listPath) {
    return { ok: false, reason: "The only step of a group cannot leave it (the group would be empty): delete the group instead" };
  }
  const out = moveStep(data, from, listPath, index);
  if (out === data) return { ok: false, reason: "Already there: nothing moved" };
  // Where it landed: the same index arithmetic as moveStep.
  return { ok: true, data: out, select: landedAt(data, out, from) };
}

function landedAt(before: LoopData, after: LoopData, from: string): string | null {
  const moved = getAt(before, parsePath(from));
  for (const entry of iterSteps(after)) if (entry.step === moved) return entry.path;
  return null;
}

/** Every label in a step and its members. */
function labelsIn(step: StepData): string[] {
  return iterSteps({ pipeline: [step] })
    .map((e) => stepLabel(e.step))
    .filter((l): l is string => !!l);
}

/**
 * A copy of `step` (and its members) whose labels no step of `data` has:
 * "Review" becomes "Review 2" (or the next free number). Unlabelled steps
 * stay unlabelled.
 */
export function withUniqueLabels(data: LoopData, step: StepData): StepData {
  const taken = new Set(iterSteps(data).map((e) => stepLabel(e.step)));
  const fresh = (label: string): string => {
    const base = label.replace(/ \d+$/, "");
    let name = base;
    for (let n = 2; taken.has(name); n++) name = `${base} ${n}`;
    taken.add(name);
    return name;
  };
  const relabel = (raw: Json): Json => {
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) return raw;
    const copy: StepData = { ...raw };
    const label = stepLabel(copy);
    if (label) copy.label = fresh(label);
    for (const key of ["parallel", "sequential", "then", "else"]) {
      const list = copy[key];
      if (Array.isArray(list)) copy[key] = list.map(relabel);
    }
    return copy;
  };
  return relabel(structuredClone(step)) as StepData;
}

/** Insert copies of `steps` after the step at `after` (or at the end of the pipeline), with unique labels. */
export function pasteSteps(data: LoopData, steps: StepData[], after: string | null): { data: LoopData; paths: string[] } {
  let listPath = "pipeline";
  let index = Array.isArray(data.pipeline) ? data.pipeline.length : 0;
  if (after) {
    const path = parsePath(after);
    if (typeof path[path.length - 1] === "number" && getAt(data, path) !== undefined) {
      listPath = formatPath(path.slice(0, -1));
      index = (path[path.length - 1] as number) + 1;
    }
  }
  let out = data;
  const paths: string[] = [];
  for (const step of steps) {
    out = insertStep(out, listPath, index, withUniqueLabels(out, step));
    paths.push(`${listPath}[${index}]`);
    index += 1;
  }
  return { data: out, paths };
}

/** Duplicate the step at `path` right after it. */
export function duplicateStep(data: LoopData, path: string): { data: LoopData; paths: string[] } {
  const step = getAt(data, parsePath(path)) as StepData | undefined;
  if (!step) return { data, paths: [] };
  return pasteSteps(data, [step], path);
}

/** The labels a copied step carries, for a message ("Copied Review, Fix"). */
export function copiedLabels(steps: StepData[]): string[] {
  return steps.flatMap(labelsIn);
}
