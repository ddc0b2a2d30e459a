/**
 * The run page's model: stored run events folded into one state per node.
 *
 * No DOM here (unit-tested with vitest). `applyEvent` folds one event in;
 * `settle` gives every node its final state once the run has ended, so a
 * finished run never shows a node "running" or "queued": an interrupted step
 * is cancelled (or failed, when a step inside it failed), a step that never
 * started is skipped (an untaken branch), a rejected approval is rejected.
 */

export type NodeState = "queued" | "running" | "done" | "failed" | "skipped" | "cancelled" | "rejected";

export const TERMINAL = ["succeeded", "failed", "verification_failed", "budget_exceeded", "cancelled"];

// Event payloads are the engine's dataclasses as JSON (loopkit/engine/events.py).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Payload = Record<string, any>;

export interface RunEvent {
  seq: number;
  type: string;
  payload: Payload;
}

export interface StepInfo {
  key: string;
  label: string;
  kind: string;
}

export interface ToolCall {
  seq: number;
  key: string;
  label: string | null;
  name: string;
  arguments: unknown;
  result: string;
  isError: boolean;
  durationMs: number;
  /** A dry run's tool step: the call it would make (not made). */
  dryRun: boolean;
}

export interface Retry {
  attempt: number;
  error: string;
  code: string;
}

/** One of `verify.checks` in a round: run before the checker, no model call. */
export interface CheckOutcome {
  name: string;
  kind: string;
  /** null: not run (skipped: a dry run's tool check, a step that has not run). */
  passed: boolean | null;
  message: string | null;
  severity: string;
  durationMs: number;
  skipped: boolean;
}

export interface Verdict {
  round: number;
  maxRounds: number;
  checker: string;
  passed: boolean;
  score: number | null;
  issues: string[];
  /** Issues below blockOn: reported, not retried. */
  minor: string[];
  reason: string | null;
  skipped: boolean;
  checks: CheckOutcome[];
  /** The blocking issues repeated an earlier round's: no more rounds. */
  stalled: boolean;
}

export interface NodeDetail {
  key: string;
  label: string;
  kind: string;
  state: NodeState;
  round: number;
  model: string | null;
  prompt: string | null;
  output: string | null;
  /** The output parsed as JSON, when the step answered against a schema. */
  value: unknown;
  structured: boolean;
  tokensIn: number;
  tokensOut: number;
  /** null: unknown (a model without a price); undefined: none recorded yet. */
  cost: number | null | undefined;
  durationMs: number | null;
  retries: Retry[];
  toolCalls: ToolCall[];
  verdicts: Verdict[];
  error: string | null;
  /** Calls of this step lost with a worker that died (paid, usage unknown; run again). */
  lostCalls: number;
}

export interface RunView {
  status: string;
  nodes: Map<string, NodeDetail>;
  startedAt: number | null;
  endedAt: number | null;
  settled: boolean;
  /** Model calls lost with workers that died (`calls_lost`): paid, in no total. */
  lostCalls: number;
}

export function newNode(key: string, label: string, kind: string): NodeDetail {
  return {
    key,
    label,
    kind,
    state: "queued",
    round: 1,
    model: null,
    prompt: null,
    output: null,
    value: undefined,
    structured: false,
    tokensIn: 0,
    tokensOut: 0,
    cost: undefined,
    durationMs: null,
    retries: [],
    toolCalls: [],
    verdicts: [],
    error: null,
    lostCalls: 0,
  };
}

/** Return the view of a run before any event: every listed step (and the checker) queued. */
export function initialView(steps: StepInfo[], status: string, hasVerify: boolean): RunView {
  const nodes = new Map<string, NodeDetail>();
  for (const s of steps) nodes.set(s.key, newNode(s.key, s.label, s.kind));
  if (hasVerify) nodes.set("verify", newNode("verify", "verify", "verify"));
  return { status, nodes, startedAt: null, endedAt: null, settled: false, lostCalls: 0 };
}

function isInside(key: string, outer: string): boolean {
  return key.startsWith(outer) && /^[.[]/.test(key.slice(outer.length));
}

/** Return the node an event's key or label names, if the view has it. */
export function findNode(view: RunView, key: string | undefined, label?: string | null): NodeDetail | undefined {
  if (key) {
    const own = view.nodes.get(key);
    if (own) return own;
  }
  if (label) {
    for (const node of view.nodes.values()) if (node.label === label) return node;
  }
  return undefined;
}

/**
 * Return the node an event belongs to: its own, else the closest enclosing one
 * (a plan step's executor steps have keys like "pipeline[2].plan[1][0]" that the
 * static list lacks), else a node made for it.
 */
export function ownerNode(view: RunView, key: string | undefined, label?: string | null): NodeDetail {
  const own = findNode(view, key, label);
  if (own) return own;
  let best: NodeDetail | undefined;
  for (const node of view.nodes.values()) {
    if (key && isInside(key, node.key) && (!best || node.key.length > best.key.length)) best = node;
  }
  if (best) return best;
  const made = newNode(key || label || "step", label || key || "step", "agent");
  view.nodes.set(made.key, made);
  return made;
}

function parsed(output: string | null, structured: boolean): unknown {
  if (!structured || output === null) return undefined;
  try {
    return JSON.parse(output);
  } catch {
    return undefined;
  }
}

function verdict(p: Payload): Verdict {
  return {
    round: Number(p.round) || 1,
    maxRounds: Number(p.max_rounds) || 1,
    checker: String(p.checker ?? ""),
    passed: Boolean(p.passed),
    score: p.score === null || p.score === undefined ? null : Number(p.score),
    issues: Array.isArray(p.issues) ? p.issues.map(String) : [],
    minor: Array.isArray(p.minor) ? p.minor.map(String) : [],
    reason: p.reason ?? null,
    skipped: Boolean(p.skipped),
    stalled: Boolean(p.stalled),
    checks: Array.isArray(p.checks) ? p.checks.map(checkOutcome) : [],
  };
}

function checkOutcome(c: Payload): CheckOutcome {
  return {
    name: String(c.name ?? "check"),
    kind: String(c.kind ?? ""),
    passed: c.passed === null || c.passed === undefined ? null : Boolean(c.passed),
    message: c.message ?? null,
    severity: String(c.severity ?? "blocker"),
    durationMs: Number(c.duration_ms) || 0,
    skipped: Boolean(c.skipped),
  };
}

/** Fold one stored event into the view (events come once each, in seq order). */
export function applyEvent(view: RunView, ev: RunEvent): NodeDetail[] {
  const p = ev.payload || {};
  const touched: NodeDetail[] = [];
  const owned = (create: boolean) => {
    const node = create ? ownerNode(view, p.key, p.label) : findNode(view, p.key, p.label);
    if (node) touched.push(node);
    return node;
  };
  switch (ev.type) {
    case "run_started":
      // A resumed run goes on from where it was: a waiting gate stays waiting until resolved.
      if (!TERMINAL.includes(view.status) && !(p.resumed && view.status === "waiting_for_approval")) {
        view.status = "running";
      }
      view.startedAt = view.startedAt ?? (typeof p.at === "number" ? p.at : null);
      break;
    case "step_started": {
      const node = owned(false);
      if (!node) break;
      if (node.state !== "done" || (p.round ?? 1) > node.round) {
        node.state = "running";
        node.error = null;
      }
      node.round = Number(p.round) || 1;
      if (p.model) node.model = p.model;
      if (typeof p.prompt === "string") node.prompt = p.prompt;
      break;
    }
    case "step_finished": {
      const node = owned(false);
      if (!node) break;
      const t = p.tokens || {};
      // An approval gate "finishes" on its rejected branch too: it stays rejected.
      node.state = p.branch === "rejected" || node.state === "rejected" ? "rejected" : "done";
      node.tokensIn = Number(t.input) || 0;
      node.tokensOut = Number(t.output) || 0;
      node.cost = p.cost === undefined ? 0 : p.cost;
      node.durationMs = Number(p.duration_ms) || 0;
      if (p.model) node.model = p.model;
      if (p.output !== null && p.output !== undefined) {
        node.output = String(p.output);
        node.structured = Boolean(p.structured);
        node.value = parsed(node.output, node.structured);
      }
      break;
    }
    case "step_failed": {
      const node = owned(false);
      if (!node) break;
      if (p.will_retry) {
        node.retries.push({ attempt: Number(p.attempt) || 1, error: String(p.error ?? ""), code: String(p.code ?? "") });
      } else {
        node.state = "failed";
        node.error = String(p.error ?? "");
        node.durationMs = Number(p.duration_ms) || node.durationMs;
      }
      break;
    }
    case "tool_called":
      owned(true)!.toolCalls.push({
        seq: ev.seq,
        key: String(p.key ?? ""),
        label: p.label ?? null,
        name: String(p.name ?? "?"),
        arguments: p.arguments ?? {},
        result: String(p.result ?? ""),
        isError: Boolean(p.is_error),
        durationMs: Number(p.duration_ms) || 0,
        dryRun: Boolean(p.dry_run),
      });
      break;
    case "verification_round": {
      const node = view.nodes.get("verify");
      if (!node) break;
      touched.push(node);
      const v = verdict(p);
      node.verdicts.push(v);
      const t = p.tokens || {};
      node.tokensIn += Number(t.input) || 0;
      node.tokensOut += Number(t.output) || 0;
      node.cost = node.cost === null || p.cost === null ? null : (node.cost ?? 0) + (Number(p.cost) || 0);
      node.durationMs = (node.durationMs ?? 0) + (Number(p.duration_ms) || 0);
      node.round = v.round;
      node.state = v.passed || v.skipped ? "done" : p.will_retry ? "running" : "failed";
      if (!v.passed && !v.skipped && !p.will_retry) node.error = v.reason ?? v.issues.join("; ");
      break;
    }
    case "approval_requested": {
      if (!TERMINAL.includes(view.status)) view.status = "waiting_for_approval";
      const node = owned(false);
      if (node) node.state = "running";
      break;
    }
    case "run_suspended": {
      // Parked at an undecided gate, holding no worker, until a decision or its deadline.
      if (!TERMINAL.includes(view.status)) view.status = "waiting_for_approval";
      const node = owned(false);
      if (node) node.state = "running";
      break;
    }
    case "approval_resolved": {
      if (!TERMINAL.includes(view.status)) view.status = "running";
      const node = owned(false);
      if (!node) break;
      node.state = p.approved ? "done" : "rejected";
      if (!p.approved) node.error = p.reason ?? (p.timed_out ? "no answer in time" : null);
      break;
    }
    case "calls_lost": {
      // A worker died with these steps' calls in flight: paid, their usage unknown.
      // Each step runs again on resume (its own step_started follows).
      view.lostCalls += Number(p.calls) || 0;
      for (const s of (p.steps || []) as Payload[]) {
        const node = findNode(view, s.key, s.label);
        if (!node) continue;
        node.lostCalls += 1;
        touched.push(node);
      }
      break;
    }
    case "run_finished":
      view.status = String(p.status);
      if (typeof p.at === "number") view.endedAt = p.at;
      touched.push(...settle(view, view.status, p.error ?? null));
      break;
  }
  return touched;
}

/**
 * Give every node its final state once the run ended with *status*; return the nodes changed.
 *
 * Queued nodes never started: skipped. Running nodes were interrupted: in a
 * cancelled run, cancelled; around a step that failed (or was rejected),
 * failed; beside it, cancelled; and when no step failed, the run's own error
 * (a budget, a provider) stopped them: failed, with that *error*.
 */
export function settle(view: RunView, status: string, error: string | null = null): NodeDetail[] {
  view.status = status;
  view.settled = true;
  const changed: NodeDetail[] = [];
  const nodes = Array.from(view.nodes.values());
  const broken = (n: NodeDetail) => n.state === "failed" || n.state === "rejected";
  const anyBroken = nodes.some(broken);
  for (const node of nodes) {
    if (node.state === "queued") {
      node.state = "skipped";
      changed.push(node);
    } else if (node.state === "running") {
      if (nodes.some((n) => isInside(n.key, node.key) && broken(n))) node.state = "failed";
      else if (status === "cancelled" || anyBroken || status === "succeeded") node.state = "cancelled";
      else {
        node.state = "failed";
        node.error = node.error ?? error;
      }
      changed.push(node);
    }
  }
  return changed;
}

/**
 * Return a run's cost in words, as the server says it (`Run.cost_label`): the
 * known part, then the lost calls it lacks. *pricesKnown*: every recorded
 * call had a price (else the known part is unknown too).
 */
export function costLabel(cost: number, pricesKnown: boolean, lostCalls: number): string {
  const known = pricesKnown ? "$" + cost.toFixed(4) : "unknown";
  if (!lostCalls) return known;
  const calls = `${lostCalls} lost call${lostCalls === 1 ? "" : "s"}`;
  return pricesKnown ? `${known} + ${calls} (cost unknown)` : `unknown (and ${calls})`;
}

/** Return the run's duration in seconds: to its end when it has ended, else to *now*. */
export function elapsedSeconds(view: RunView, now: number): number {
  if (view.startedAt === null) return 0;
  const end = view.endedAt ?? (view.settled ? view.startedAt : now);
  return Math.max(0, end - view.startedAt);
}
