/**
 * Loop data → graph: the nodes and edges React Flow draws, laid out by dagre.
 *
 * Node ids are the keys the run page uses: a step's path
 * (`pipeline[0].parallel[2]`, `onPass[0]`), or `trigger`, `verify`, `budget`,
 * `memory`, `end`; a group's closing node is `<path>#join`. The actions after
 * verification hang off the checker: `onPass` on its "pass" edge, `onFail` on
 * its "fail" edge (without verification, `onPass` follows the pipeline).
 */
import dagre from "@dagrejs/dagre";
import type { Edge, Node } from "@xyflow/react";
import { formatPath, parsePath } from "./paths";
import { asObject, asStringList, labelIndex, stepKind, stepLabel } from "./steps";
import type { Json, LoopData, StepData } from "./types";

export type LoopNodeKind =
  | "trigger"
  | "agent"
  | "approval"
  | "plan"
  | "tool"
  | "parallel"
  | "sequential"
  | "conditional"
  | "join"
  | "verify"
  | "end"
  | "budget"
  | "memory"
  | "unknown";

export interface LoopNodeData extends Record<string, unknown> {
  kind: LoopNodeKind;
  title: string;
  detail: string;
  /** The step list and index this node's step sits at, for steps. */
  listPath?: string;
  index?: number;
  /** A step list this node can append to (parallel: a new branch; condition: else). */
  appendTo?: string;
  hasElse?: boolean;
  absent?: boolean;
  /** A plan step's planner and the templates it may choose from. */
  planner?: string;
  templates?: string[];
}

export interface InsertPoint extends Record<string, unknown> {
  /** Insert a new step at `index` of the list at `listPath`. */
  listPath?: string;
  index?: number;
  role?: "flow" | "maker" | "branch";
  label?: string;
}

export type LoopNode = Node<LoopNodeData>;
export type LoopEdge = Edge<InsertPoint>;

export const NODE_SIZE: Record<LoopNodeKind, [number, number]> = {
  trigger: [220, 64],
  agent: [190, 64],
  approval: [180, 64],
  plan: [230, 84],
  tool: [200, 64],
  parallel: [200, 40],
  sequential: [200, 40],
  conditional: [220, 56],
  join: [24, 24],
  verify: [240, 80],
  end: [120, 36],
  budget: [200, 64],
  memory: [200, 64],
  unknown: [180, 60],
};

function short(text: Json | undefined, max = 60): string {
  if (typeof text !== "string") return "";
  const line = text.trim().split("\n")[0];
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function triggerDetail(trigger: unknown): [string, string] {
  const t = asObject(trigger);
  if (!t) return ["Manual trigger", "started by a person"];
  switch (t.type) {
    case "cron":
      return ["Cron trigger", `${t.schedule ?? ""}${t.timezone ? ` (${t.timezone})` : ""}`];
    case "webhook":
      return ["Webhook trigger", `${t.event ?? ""}${asStringList(t.actions).length ? `: ${asStringList(t.actions).join(", ")}` : ""}`];
    case "event":
      return ["Event trigger", t.loop ? `after loop ${t.loop}` : `on ${t.event ?? ""}`];
    default:
      return ["Manual trigger", short(t.description) || "started by a person"];
  }
}

function budgetDetail(budget: unknown): string {
  const b = asObject(budget);
  if (!b) return "no limits: add a budget";
  const parts: string[] = [];
  if (b.maxTokens !== undefined) parts.push(`${Number(b.maxTokens).toLocaleString("en")} tokens`);
  if (b.maxCostUsd !== undefined) parts.push(`$${b.maxCostUsd}`);
  if (b.maxDurationMinutes !== undefined) parts.push(`${b.maxDurationMinutes} min`);
  if (b.maxIterations !== undefined) parts.push(`${b.maxIterations} iteration${Number(b.maxIterations) === 1 ? "" : "s"}`);
  if (b.maxModelCalls !== undefined) parts.push(`${b.maxModelCalls} call${Number(b.maxModelCalls) === 1 ? "" : "s"}`);
  return parts.join(" · ") || "no limits set";
}

function memoryDetail(memory: unknown): string {
  const m = asObject(memory);
  if (!m) return "no memory: add a store";
  const store = typeof m.store === "string" ? m.store : "filesystem";
  const where = m.path ?? m.url ?? m.namespace;
  return `${store}${where ? ` · ${where}` : ""}${m.persistence ? ` · ${m.persistence}` : ""}`;
}

function stepNode(step: StepData, path: string, listPath: string, index: number): LoopNode {
  const kind = stepKind(step);
  const label = stepLabel(step);
  let title = label ?? "";
  let detail = "";
  let nodeKind: LoopNodeKind = kind;
  const data: Partial<LoopNodeData> = {};
  switch (kind) {
    case "agent":
      title = label ?? "Agent";
      detail = [step.subagent ? `@${step.subagent}` : "", step.model ? String(step.model) : "", short(step.prompt, 48)]
        .filter(Boolean)
        .join(" · ");
      break;
    case "approval":
      title = label ?? "Approval";
      detail = short(step.approve, 48);
      break;
    case "tool":
      title = label ?? "Tool call";
      detail = `calls ${typeof step.tool === "string" ? step.tool : "?"}`;
      break;
    case "plan": {
      title = label ?? "Plan";
      const templates = Object.keys(asObject(step.templates) ?? {});
      const limits = [
        step.maxSteps !== undefined ? `≤ ${step.maxSteps} steps` : "",
        step.maxIterations !== undefined ? `≤ ${step.maxIterations} plans` : "",
      ].filter(Boolean);
      data.planner = typeof step.planner === "string" ? step.planner : "";
      data.templates = templates;
      detail = [
        `planner: ${data.planner ? `@${data.planner}` : "built-in"}`,
        `templates: ${templates.join(", ") || "none"}`,
        ...limits,
      ].join(" · ");
      break;
    }
    case "parallel":
      title = label ?? "Parallel";
      detail = `${Array.isArray(step.parallel) ? step.parallel.length : 0} branches${step.maxConcurrency ? `, ≤ ${step.maxConcurrency} at once` : ""}`;
      data.appendTo = `${path}.parallel`;
      break;
    case "sequential":
      title = label ?? "Sequential";
      detail = `${Array.isArray(step.sequential) ? step.sequential.length : 0} steps`;
      break;
    case "conditional":
      title = label ?? "Condition";
      detail = `when ${short(step.when, 40)}`;
      data.hasElse = Array.isArray(step.else);
      data.appendTo = `${path}.else`;
      break;
    default:
      nodeKind = "unknown";
      title = label ?? "Unknown step";
      detail = "needs prompt, tool, plan, parallel, sequential, when or approve";
  }
  return { id: path, type: "loop", position: { x: 0, y: 0 }, data: { kind: nodeKind, title, detail, listPath, index, ...data } };
}

interface Builder {
  nodes: LoopNode[];
  edges: LoopEdge[];
}

function edge(b: Builder, source: string, target: string, insert: InsertPoint = {}): void {
  b.edges.push({ id: `${source}->${target}`, source, target, type: "loop", data: { role: "flow", ...insert } });
}

/** Lay out a step list after `entries`; return the ids the next node connects from. */
function buildList(b: Builder, steps: unknown, listPath: string, entries: string[], firstEdge: InsertPoint = {}): string[] {
  if (!Array.isArray(steps)) return entries;
  let prev = entries;
  steps.forEach((raw, index) => {
    const step = (raw ?? {}) as StepData;
    const path = `${listPath}[${index}]`;
    const node = stepNode(step, path, listPath, index);
    b.nodes.push(node);
    for (const p of prev) edge(b, p, path, { listPath, index, ...(index === 0 ? firstEdge : {}) });
    prev = buildStep(b, step, path);
  });
  return prev;
}

function buildStep(b: Builder, step: StepData, path: string): string[] {
  const join = (): string => {
    const id = `${path}#join`;
    b.nodes.push({ id, type: "loop", position: { x: 0, y: 0 }, data: { kind: "join", title: "", detail: "" } });
    return id;
  };
  switch (stepKind(step)) {
    case "parallel": {
      const listPath = `${path}.parallel`;
      const exits: string[] = [];
      (Array.isArray(step.parallel) ? step.parallel : []).forEach((raw, index) => {
        const member = (raw ?? {}) as StepData;
        const memberPath = `${listPath}[${index}]`;
        b.nodes.push(stepNode(member, memberPath, listPath, index));
        edge(b, path, memberPath, { listPath, index, role: "branch" });
        exits.push(...buildStep(b, member, memberPath));
      });
      const id = join();
      for (const e of exits) edge(b, e, id);
      return [id];
    }
    case "sequential":
      return buildList(b, step.sequential, `${path}.sequential`, [path]);
    case "conditional": {
      const id = join();
      const thenExits = buildList(b, step.then, `${path}.then`, [path], { label: "then" });
      for (const e of thenExits) edge(b, e, id, { listPath: `${path}.then`, index: Array.isArray(step.then) ? step.then.length : 0 });
      if (Array.isArray(step.else)) {
        const elseExits = buildList(b, step.else, `${path}.else`, [path], { label: "else" });
        for (const e of elseExits) edge(b, e, id, { listPath: `${path}.else`, index: step.else.length });
      } else {
        b.edges.push({ id: `${path}->${id}:else`, source: path, target: id, type: "loop", data: { role: "flow", label: "else" } });
      }
      return [id];
    }
    default:
      return [path];
  }
}

/** Build the graph of a loop (positions not yet laid out). */
export function loopToGraph(data: LoopData): { nodes: LoopNode[]; edges: LoopEdge[] } {
  const b: Builder = { nodes: [], edges: [] };
  const [title, detail] = triggerDetail(data.trigger);
  b.nodes.push({ id: "trigger", type: "loop", position: { x: 0, y: 0 }, data: { kind: "trigger", title, detail } });
  const pipeline = Array.isArray(data.pipeline) ? data.pipeline : [];
  const exits = buildList(b, pipeline, "pipeline", ["trigger"]);
  const verify = asObject(data.verify);
  const last = verify ? "verify" : "end";
  if (verify) {
    const makers = asStringList(verify.maker);
    const checker = asStringList(verify.checker).join(", ");
    const rounds = verify.maxRounds ?? 3;
    b.nodes.push({
      id: "verify",
      type: "loop",
      position: { x: 0, y: 0 },
      data: {
        kind: "verify",
        title: `Checker: ${checker || "?"}`,
        detail: `${makers.length} maker${makers.length === 1 ? "" : "s"} · up to ${rounds} round${rounds === 1 ? "" : "s"}${verify.autoRetry === false ? "" : " · auto-retry"}${verify.passScore !== undefined ? ` · pass ≥ ${verify.passScore}` : ""}${typeof verify.onFail === "string" && verify.onFail !== "fail" ? ` · on fail: ${verify.onFail}` : ""}`,
      },
    });
  }
  const onPass = Array.isArray(data.onPass) ? data.onPass : [];
  const onFail = Array.isArray(data.onFail) ? data.onFail : [];
  if (verify) {
    for (const e of exits) edge(b, e, last, { listPath: "pipeline", index: pipeline.length });
    b.nodes.push({ id: "end", type: "loop", position: { x: 0, y: 0 }, data: { kind: "end", title: "Done", detail: "" } });
    // After the rounds: onPass on the "pass" edge (its + adds a step there), onFail on "fail".
    const passExits = buildList(b, onPass, "onPass", ["verify"], { label: "pass" });
    for (const e of passExits) edge(b, e, "end", { listPath: "onPass", index: onPass.length, ...(onPass.length ? {} : { label: "pass" }) });
    if (onFail.length) {
      for (const e of buildList(b, onFail, "onFail", ["verify"], { label: "fail" })) edge(b, e, "end", { listPath: "onFail", index: onFail.length });
    }
    const labels = labelIndex(data);
    for (const maker of asStringList(verify.maker)) {
      const source = labels.get(maker);
      if (source) {
        b.edges.push({ id: `maker:${source}`, source, target: "verify", type: "loop", data: { role: "maker" }, animated: true });
      }
    }
  } else {
    b.nodes.push({ id: "end", type: "loop", position: { x: 0, y: 0 }, data: { kind: "end", title: "Done", detail: "no verification" } });
    // Without verification, onPass runs once the pipeline succeeded.
    const afterPipeline = onPass.length ? buildList(b, onPass, "onPass", exits, { listPath: "pipeline", index: pipeline.length }) : exits;
    for (const e of afterPipeline) edge(b, e, last, onPass.length ? { listPath: "onPass", index: onPass.length } : { listPath: "pipeline", index: pipeline.length });
  }
  b.nodes.push({ id: "budget", type: "loop", position: { x: 0, y: 0 }, data: { kind: "budget", title: "Budget", detail: budgetDetail(data.budget), absent: !data.budget } });
  b.nodes.push({ id: "memory", type: "loop", position: { x: 0, y: 0 }, data: { kind: "memory", title: "Memory", detail: memoryDetail(data.memory), absent: !data.memory } });
  return b;
}

/** Place the nodes top to bottom with dagre; budget and memory sit beside the trigger. */
let lastLayout: { signature: string; placed: Map<string, { x: number; y: number }> } | null = null;

export function layoutGraph(graph: { nodes: LoopNode[]; edges: LoopEdge[] }): { nodes: LoopNode[]; edges: LoopEdge[] } {
  // Positions depend only on the nodes' kinds and the edges: a text edit
  // (a prompt, a name) reuses the last layout instead of running dagre again.
  const signature = `${graph.nodes.map((n) => `${n.id}:${n.data.kind}`).join(",")}|${graph.edges.map((e) => e.id).join(",")}`;
  const placed = lastLayout?.signature === signature ? lastLayout.placed : computeLayout(graph);
  lastLayout = { signature, placed };
  const nodes = graph.nodes.map((node) => {
    const [width, height] = NODE_SIZE[node.data.kind];
    return { ...node, position: placed.get(node.id) ?? { x: 0, y: 0 }, width, height, initialWidth: width, initialHeight: height };
  });
  return { nodes, edges: graph.edges };
}

function computeLayout(graph: { nodes: LoopNode[]; edges: LoopEdge[] }): Map<string, { x: number; y: number }> {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: 24, ranksep: 40, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const side = new Set(["budget", "memory"]);
  for (const node of graph.nodes) {
    if (side.has(node.id)) continue;
    const [width, height] = NODE_SIZE[node.data.kind];
    g.setNode(node.id, { width, height });
  }
  for (const e of graph.edges) {
    if (e.data?.role === "maker") continue; // drawn, but not a layout constraint
    g.setEdge(e.source, e.target);
  }
  dagre.layout(g);
  const placed = new Map<string, { x: number; y: number }>();
  for (const node of graph.nodes) {
    if (side.has(node.id)) continue;
    const p = g.node(node.id);
    const [width, height] = NODE_SIZE[node.data.kind];
    placed.set(node.id, { x: p.x - width / 2, y: p.y - height / 2 });
  }
  orderBranches(graph.nodes, placed);
  const trigger = placed.get("trigger") ?? { x: 0, y: 0 };
  const triggerWidth = NODE_SIZE.trigger[0];
  placed.set("budget", { x: trigger.x + triggerWidth + 32, y: trigger.y });
  placed.set("memory", { x: trigger.x + triggerWidth + 32 + NODE_SIZE.budget[0] + 16, y: trigger.y });
  return placed;
}

/**
 * Put parallel branches (and then/else) left to right in list order: dagre
 * keeps ranks but not the order of siblings. Each branch moves as a whole
 * (its head and every node below it, whose ids start with its path).
 */
function orderBranches(nodes: LoopNode[], placed: Map<string, { x: number; y: number }>): void {
  const width = new Map(nodes.map((n) => [n.id, NODE_SIZE[n.data.kind][0]]));
  const groups = new Map<string, string[]>();
  for (const node of nodes) {
    const list = node.data.listPath;
    if (list === undefined || !(list.endsWith(".parallel") || (list.endsWith(".then") && node.data.index === 0) || (list.endsWith(".else") && node.data.index === 0))) continue;
    const owner = list.slice(0, list.lastIndexOf("."));
    const key = list.endsWith(".parallel") ? list : `${owner}#branches`;
    const members = groups.get(key) ?? [];
    members.push(list.endsWith(".parallel") ? node.id : list);
    groups.set(key, members);
  }
  // Deepest groups first, so an outer group moves inner ones already in order.
  const keys = [...groups.keys()].sort((a, b) => b.length - a.length);
  for (const key of keys) {
    const members = groups.get(key)!;
    const boxes = members.map((prefix) => {
      const ids = nodes.map((n) => n.id).filter((id) => id === prefix || id.startsWith(`${prefix}.`) || id.startsWith(`${prefix}[`) || id.startsWith(`${prefix}#`));
      const left = Math.min(...ids.map((id) => placed.get(id)!.x));
      const right = Math.max(...ids.map((id) => placed.get(id)!.x + width.get(id)!));
      return { prefix, ids, left, right };
    });
    const sorted = [...boxes].sort((a, b) => a.left - b.left);
    if (sorted.every((b, i) => b === boxes[i])) continue;
    let cursor = sorted[0].left;
    const gaps = sorted.slice(1).map((b, i) => Math.max(b.left - sorted[i].right, 0));
    boxes.forEach((box, i) => {
      const shift = cursor - box.left;
      for (const id of box.ids) {
        const p = placed.get(id)!;
        placed.set(id, { x: p.x + shift, y: p.y });
      }
      cursor += box.right - box.left + (gaps[i] ?? 0);
    });
  }
}

/** Resolve a run-page or diff key (a path, a field path or a label) to a node id. */
export function resolveKey(data: LoopData, nodeIds: Set<string>, key: string): string | null {
  if (nodeIds.has(key)) return key;
  const byLabel = labelIndex(data).get(key);
  if (byLabel) return byLabel;
  const path = parsePath(key);
  for (let end = path.length; end > 0; end--) {
    const candidate = formatPath(path.slice(0, end));
    if (nodeIds.has(candidate)) return candidate;
  }
  return null;
}
