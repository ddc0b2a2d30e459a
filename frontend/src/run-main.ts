/**
 * Entry of static/editor/run.js: the live run page.
 *
 * One WebSocket per run: replay after the last seq held, then stream. Every
 * event is applied once (events at or below the last applied seq are dropped),
 * so a reconnect or a reload never shows a gap or a duplicate. Node states come
 * from the reducer (run/reducer.ts); a finished run settles every node, its
 * socket closes and its duration stops at the run's end.
 */
import {
  TERMINAL,
  applyEvent,
  costLabel,
  elapsedSeconds,
  initialView,
  ownerNode,
  settle,
  type NodeDetail,
  type NodeState,
  type Payload,
  type RunEvent,
  type StepInfo,
} from "./run/reducer";
import { checksSummary, renderDetail } from "./run/detail";
import type { LoopData, NodeStats } from "./types";

interface PageData {
  run_id: number;
  status: string;
  spec: LoopData | null;
  budget: Record<string, number>;
  graph: boolean;
  steps: StepInfo[];
  last_seq: number;
  started_at: number | null;
  finished_at: number | null;
}

interface Graph {
  setNodeState(key: string, state: NodeState, stats?: NodeStats): void;
}

declare global {
  interface Window {
    LoopKitRun: { readonly lastSeq: number; readonly status: string; readonly settled: boolean };
  }
}

const $ = (id: string): HTMLElement => document.getElementById(id)!;
const page = JSON.parse($("run-page").textContent || "{}") as PageData;
const runId = page.run_id;
const view = initialView(page.steps || [], page.status, Boolean(page.spec && (page.spec as Payload).verify));
if (page.started_at !== null) view.startedAt = page.started_at;
let lastSeq = 0;
let socket: WebSocket | null = null;
let retryMs = 250;
let selected: string | null = null;
// requests: model calls (maxModelCalls); iterations: passes of the loop, one per round (maxIterations).
// costKnown: every recorded call had a price; lost: calls lost with a dead worker (cost unknown).
const totals = { in: 0, out: 0, cost: 0, costKnown: true, requests: 0, iterations: 0, lost: 0 };
const models = new Set<string>();

let graph: Graph | null = null;
if (page.graph && window.LoopKitGraph && page.spec) {
  try {
    graph = window.LoopKitGraph.mount($("run-graph"), { spec: page.spec, onNodeClick: (key) => select(key) }) as Graph;
  } catch (err) {
    console.warn("graph could not mount", err);
  }
}

function csrf(): string {
  const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function api(method: string, path: string, body?: unknown): Promise<Payload> {
  const res = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = (await res.json().catch(() => ({}))) as Payload;
  if (!res.ok) throw new Error(data.message || res.statusText);
  return data;
}

export function fmtCost(c: number | null | undefined): string {
  return c === null || c === undefined ? "unknown" : "$" + Number(c).toFixed(4);
}

function fmtMs(ms: unknown): string {
  const n = Number(ms) || 0;
  return n >= 1000 ? (n / 1000).toFixed(2) + " s" : Math.round(n) + " ms";
}

function fmtArgs(args: unknown): string {
  try {
    return JSON.stringify(args || {});
  } catch {
    return String(args);
  }
}

function clip(text: unknown, n: number): string {
  const s = String(text === null || text === undefined ? "" : text);
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function setStatus(s: string): void {
  const el = $("run-status");
  el.textContent = s.replace(/_/g, " ");
  el.dataset.status = s;
  el.className = "run-status status-" + s;
  const done = TERMINAL.includes(s);
  const cancel = document.getElementById("cancel-run");
  const rerun = document.getElementById("rerun");
  if (cancel) cancel.hidden = done;
  if (rerun) rerun.hidden = !done;
}

function setLive(state: string, text = state): void {
  const el = $("live-state");
  el.dataset.state = state;
  el.textContent = text;
}

function stepRow(node: NodeDetail): HTMLElement | null {
  return document.querySelector<HTMLElement>(`#step-list li[data-key="${CSS.escape(node.key)}"]`);
}

/** The list row of a node, made at the end of the list for a node the page did not list. */
function rowFor(node: NodeDetail): HTMLElement {
  let row = stepRow(node);
  if (!row) {
    row = document.createElement("li");
    row.className = "step state-queued";
    row.dataset.key = node.key;
    row.dataset.label = node.label;
    row.dataset.state = "queued";
    row.innerHTML = `<span class="step-name"></span> <span class="step-state">queued</span> <span class="step-stats"></span>`;
    row.querySelector(".step-name")!.textContent = node.label;
    $("step-list").appendChild(row);
  }
  return row;
}

function statsOf(node: NodeDetail): NodeStats | undefined {
  if (node.durationMs === null) return undefined;
  return { tokens: node.tokensIn + node.tokensOut, cost: node.cost ?? undefined, durationMs: node.durationMs };
}

function showNode(node: NodeDetail): void {
  const row = node.key === "verify" ? null : rowFor(node);
  if (row) {
    row.dataset.state = node.state;
    row.className = "step state-" + node.state + (selected === node.key ? " selected" : "");
    row.querySelector(".step-state")!.textContent = node.state;
    if (node.durationMs !== null && node.kind !== "verify" && node.state === "done") {
      row.querySelector(".step-stats")!.textContent =
        `${node.tokensIn}/${node.tokensOut} tokens · ${fmtCost(node.cost)} · ${Math.round(node.durationMs)} ms`;
    }
  }
  if (graph) {
    try {
      graph.setNodeState(node.key, node.state, statsOf(node));
    } catch {
      /* a node the graph lacks */
    }
  }
  if (selected === node.key) renderDetail($("node-detail"), node);
}

function select(key: string): void {
  const node = view.nodes.get(key) ?? ownerNode(view, key);
  const before = selected;
  selected = node.key;
  if (before) {
    const old = view.nodes.get(before);
    if (old && old.key !== "verify") rowFor(old).classList.remove("selected");
  }
  if (node.key !== "verify") rowFor(node).classList.add("selected");
  const box = $("node-detail");
  box.hidden = false;
  renderDetail(box, node);
}

// One tool call: shown under its step (name, redacted arguments, result summary, duration).
function addToolCall(ev: RunEvent): void {
  const p = ev.payload || {};
  const node = ownerNode(view, p.key, p.label);
  const row = rowFor(node);
  let list = row.querySelector<HTMLElement>(":scope > ul.tool-calls");
  if (!list) {
    list = document.createElement("ul");
    list.className = "tool-calls";
    row.appendChild(list);
  }
  const li = document.createElement("li");
  li.className = "tool-call" + (p.is_error ? " tool-error" : "");
  li.dataset.tool = p.name || "";
  li.dataset.seq = String(ev.seq);
  li.dataset.step = p.key || "";
  li.innerHTML =
    `<small class="tool-step"></small><code class="tool-name"></code><code class="tool-args"></code>` +
    ` → <span class="tool-result"></span> <small class="tool-duration"></small>`;
  // A call made inside a step the list does not show (a planned step) names it.
  if (row.dataset.key !== (p.key || "")) li.querySelector(".tool-step")!.textContent = (p.label || p.key) + " ›";
  li.querySelector(".tool-name")!.textContent = p.name || "?";
  li.querySelector(".tool-args")!.textContent = "(" + clip(fmtArgs(p.arguments), 300) + ")";
  const result = li.querySelector<HTMLElement>(".tool-result")!;
  // A dry run's tool step: the call it would make, not made (issue 18).
  result.textContent = p.dry_run ? "dry run: not called" : (p.is_error ? "error: " : "") + clip(p.result, 400);
  result.title = String(p.result || "");
  li.querySelector(".tool-duration")!.textContent = fmtMs(p.duration_ms);
  list.appendChild(li);
}

// A plan step's planner chose the next steps (or finished): shown under the plan step.
function addPlan(ev: RunEvent): void {
  const p = ev.payload || {};
  const row = rowFor(ownerNode(view, p.key, p.label));
  const box = document.createElement("div");
  box.className = "plan-made" + (p.limit_reached ? " plan-limit" : "");
  box.dataset.iteration = String(p.iteration);
  box.dataset.seq = String(ev.seq);
  const head = document.createElement("div");
  head.className = "plan-head";
  const steps = (p.steps || []) as Payload[];
  const n = steps.length;
  head.textContent =
    `plan ${p.iteration}/${p.max_iterations}: ${n} step${n === 1 ? "" : "s"}` +
    (p.done ? " · planner finished" : "") +
    (p.limit_reached ? " · iteration limit reached" : "");
  box.appendChild(head);
  if (n) {
    const ol = document.createElement("ol");
    ol.className = "plan-steps";
    for (const s of steps) {
      const li = document.createElement("li");
      li.dataset.template = s.template || "";
      li.innerHTML = `<strong class="plan-template"></strong> <span class="plan-input"></span>`;
      li.querySelector(".plan-template")!.textContent = s.template || "?";
      li.querySelector(".plan-input")!.textContent = clip(typeof s.input === "string" ? s.input : fmtArgs(s.input), 300);
      li.title = s.label || "";
      ol.appendChild(li);
    }
    box.appendChild(ol);
  }
  if (p.reason) {
    const why = document.createElement("p");
    why.className = "plan-reason warn";
    why.textContent = p.reason;
    box.appendChild(why);
  }
  row.appendChild(box);
}

function showTotals(): void {
  $("tokens-in").textContent = String(totals.in);
  $("tokens-out").textContent = String(totals.out);
  $("cost").textContent = costLabel(totals.cost, totals.costKnown, totals.lost);
  $("cost").dataset.lostCalls = String(totals.lost);
}

function showDuration(): void {
  if (view.startedAt === null) return;
  $("duration").textContent = elapsedSeconds(view, Date.now() / 1000).toFixed(1) + " s";
}

function showBudget(): void {
  const body = document.querySelector("#budget tbody");
  if (!body) return;
  body.innerHTML = "";
  const used: Record<string, number | null> = {
    maxTokens: totals.in + totals.out,
    maxCostUsd: totals.costKnown && !totals.lost ? totals.cost : null,
    maxDurationMinutes: elapsedSeconds(view, Date.now() / 1000) / 60,
    maxIterations: totals.iterations,
    maxModelCalls: totals.requests,
  };
  for (const [name, limit] of Object.entries(page.budget || {})) {
    const u = used[name];
    const tr = document.createElement("tr");
    tr.dataset.limit = name;
    const shown = u === null || u === undefined ? "unknown" : Math.round(u * 1000) / 1000;
    const pct = u && limit ? Math.min(100, Math.round((100 * u) / limit)) : 0;
    tr.innerHTML = `<th>${escapeHtml(name)}</th><td>${shown} / ${limit}</td><td><progress max="100" value="${pct}"></progress></td>`;
    body.appendChild(tr);
  }
}

function addRound(p: Payload): void {
  const tr = document.createElement("tr");
  tr.dataset.round = String(p.round);
  tr.className = p.passed ? "pass" : "fail";
  const issues =
    ((p.issues || []) as unknown[]).map((i) => `<li>${escapeHtml(i)}</li>`).join("") +
    ((p.minor || []) as unknown[]).map((i) => `<li class="minor">${escapeHtml(i)} (minor)</li>`).join("");
  tr.innerHTML =
    `<td>${p.round}/${p.max_rounds}</td><td>${escapeHtml(p.checker || "")}</td>` +
    `<td>${p.skipped ? "SKIPPED" : p.passed ? "PASS" : "FAIL"}</td><td>${p.score === null || p.score === undefined ? "?" : Number(p.score).toFixed(2)}</td>` +
    `<td><ul>${issues}</ul>${p.reason ? escapeHtml(p.reason) : ""}${p.stalled ? " <strong>stalled: the checker repeated its issues</strong>" : ""}</td>`;
  document.querySelector("#rounds tbody")!.appendChild(tr);
}

// One output panel per agent step and round: step_output pieces are appended to it while
// the model streams (a new model call of the step starts the text again), and the step's
// step_finished replaces the text with the whole output.
function outputBox(p: Payload): HTMLDetailsElement {
  const round = String(p.round || 1);
  let box = document.querySelector<HTMLDetailsElement>(
    `#outputs details[data-key="${CSS.escape(p.key)}"][data-round="${CSS.escape(round)}"]`,
  );
  if (!box) {
    box = document.createElement("details");
    box.open = true;
    box.dataset.key = p.key;
    box.dataset.round = round;
    box.innerHTML = `<summary>${escapeHtml(p.label || p.key)} · round ${round}</summary><pre></pre>`;
    $("outputs").appendChild(box);
  }
  return box;
}

function streamOutput(p: Payload): void {
  const box = outputBox(p);
  if (box.dataset.state === "done") return;
  const pre = box.querySelector("pre")!;
  if (box.dataset.call !== String(p.call)) {
    box.dataset.call = String(p.call);
    pre.textContent = "";
  }
  pre.textContent += p.text;
  box.dataset.state = "streaming";
  box.dataset.chars = String(p.chars);
}

function addOutput(p: Payload): void {
  if (p.output === null || p.output === undefined) return;
  const box = outputBox(p);
  box.querySelector("pre")!.textContent = p.output;
  box.dataset.state = "done";
}

function summary(ev: RunEvent): string {
  const p = ev.payload || {};
  switch (ev.type) {
    case "step_started":
      return `${p.label || p.key} started`;
    case "step_finished":
      return `${p.label || p.key} finished${p.resumed ? " (from checkpoint)" : ""}`;
    case "step_failed":
      return `${p.label || p.key} failed: ${p.error}`;
    case "step_output":
      return `${p.label || p.key} output +${(p.text || "").length} chars`;
    case "output_truncated":
      return (
        `${p.label || p.key}: answer cut at ` +
        (p.limit ? `the output cap of ${p.limit} tokens` : "the model's own output limit") +
        (p.allowed ? " (allowed)" : "")
      );
    case "verification_round":
      return p.skipped
        ? `round ${p.round}: skipped (no maker ran)`
        : `round ${p.round}: ${p.passed ? "PASS" : "FAIL"} (score ${p.score})${p.stalled ? " — stalled" : ""}` + checksSummary(p.checks);
    case "run_finished":
      return (
        `finished: ${p.status}${p.error ? " — " + p.error : ""}` +
        (p.accepted ? ` — round ${p.best_round} accepted (${p.accepted === "best" ? "onFail: accept-best" : "approved"}): no round passed` : "")
      );
    case "approval_requested":
      return `approval requested: ${p.question}`;
    case "approval_resolved":
      return `approval ${p.approved ? "approved" : "rejected"}${p.by ? " by " + p.by : ""}`;
    case "run_recovered":
      return `resumed on another worker (attempt ${p.attempt})`;
    case "calls_lost": {
      const n = Number(p.calls) || 0;
      const names = ((p.steps || []) as Payload[]).map((s) => s.label || s.key).join(", ");
      return `${n} call${n === 1 ? "" : "s"} lost with the worker of attempt ${p.attempt} (${names}): paid, cost unknown, made again`;
    }
    case "tool_called":
      return (
        `${p.label || p.key}: tool ${p.name}(${clip(fmtArgs(p.arguments), 120)})` +
        (p.dry_run ? " → dry run: not called" : ` → ${p.is_error ? "error: " : ""}${clip(p.result, 120)} · ${fmtMs(p.duration_ms)}`)
      );
    case "plan_made":
      return (
        `${p.label || p.key}: plan ${p.iteration}/${p.max_iterations}` +
        (p.steps && p.steps.length ? ` → ${(p.steps as Payload[]).map((s) => s.template).join(", ")}` : "") +
        (p.done ? " (done)" : "") +
        (p.limit_reached ? " (iteration limit reached)" : "")
      );
    default:
      return ev.type;
  }
}

async function refreshApprovals(): Promise<number> {
  const run = await api("GET", `/api/runs/${runId}`);
  const pending = (run.approvals as Payload[]).filter((a) => a.status === "pending");
  const box = $("approval-list");
  box.innerHTML = "";
  $("approvals").hidden = pending.length === 0;
  for (const a of pending) {
    const div = document.createElement("div");
    div.className = "approval";
    div.dataset.approval = String(a.id);
    div.innerHTML =
      `<p><strong>${escapeHtml(a.step)}</strong>: ${escapeHtml(a.question)}</p>` +
      `<textarea placeholder="Comment" class="approval-comment"></textarea>` +
      `<button type="button" class="approve">Approve</button> <button type="button" class="reject">Reject</button>` +
      `<span class="approval-error error"></span>`;
    for (const verb of ["approve", "reject"]) {
      div.querySelector("." + verb)!.addEventListener("click", async () => {
        try {
          await api("POST", `/api/runs/${runId}/approvals/${a.id}/${verb}`, {
            comment: div.querySelector<HTMLTextAreaElement>(".approval-comment")!.value,
          });
          div.remove();
          $("approvals").hidden = !$("approval-list").children.length;
        } catch (err) {
          div.querySelector(".approval-error")!.textContent = (err as Error).message;
        }
      });
    }
    box.appendChild(div);
  }
  return pending.length;
}

// The approval row is written just after the event: look a few times.
function pollApprovals(times: number): void {
  refreshApprovals()
    .then((n) => {
      if (!n && times > 0 && view.status === "waiting_for_approval") setTimeout(() => pollApprovals(times - 1), 250);
    })
    .catch(() => {});
}

function countCall(p: Payload): void {
  const t = p.tokens || {};
  totals.in += t.input || 0;
  totals.out += t.output || 0;
  totals.requests += 1;
  if (p.cost === null) totals.costKnown = false;
  else totals.cost += p.cost || 0;
}

function apply(ev: RunEvent): void {
  const p = ev.payload || {};
  if (p.model && !models.has(p.model)) {
    models.add(p.model);
    $("models").textContent = Array.from(models).join(", ");
  }
  const li = document.createElement("li");
  li.dataset.seq = String(ev.seq);
  li.dataset.type = ev.type;
  li.textContent = `#${ev.seq} ${summary(ev)}`;
  $("events").appendChild(li);
  const wasWaiting = view.status === "waiting_for_approval";
  const touched = applyEvent(view, ev);
  switch (ev.type) {
    case "step_started":
      totals.iterations = Math.max(totals.iterations, p.round || 1);
      break;
    case "step_finished":
      if (p.kind === "agent" && !p.resumed) countCall(p);
      if (p.kind === "agent") addOutput(p);
      break;
    case "step_output":
      streamOutput(p);
      break;
    case "step_failed": {
      // A step that fails for good keeps the text it streamed, marked as cut short.
      const box =
        p.kind === "agent" &&
        !p.will_retry &&
        document.querySelector<HTMLElement>(
          `#outputs details[data-key="${CSS.escape(p.key)}"][data-round="${CSS.escape(String(p.round || 1))}"]`,
        );
      if (box && box.dataset.state === "streaming") box.dataset.state = "failed";
      break;
    }
    case "verification_round":
      countCall(p);
      addRound(p);
      break;
    case "tool_called":
      addToolCall(ev);
      break;
    case "plan_made":
      addPlan(ev);
      break;
    case "budget_warning":
      $("budget-warnings").textContent = p.message;
      break;
    case "approval_requested":
      pollApprovals(20);
      break;
    case "calls_lost":
      // Paid and made again on resume: they count as calls (maxModelCalls), their cost is unknown.
      totals.requests += Number(p.calls) || 0;
      totals.lost += Number(p.calls) || 0;
      break;
    case "approval_resolved":
      if (wasWaiting) refreshApprovals().catch(() => {});
      break;
    case "run_finished": {
      const t = p.tokens || {};
      if (t.input !== undefined) {
        totals.in = t.input;
        totals.out = t.output;
      }
      if (p.requests !== undefined) totals.requests = p.requests;
      if (p.iterations !== undefined) totals.iterations = p.iterations;
      totals.lost = Math.max(totals.lost, Number(p.lost_calls) || 0);
      if ("cost" in p) {
        // The engine's cost_known: every price known (its payload names lost calls). A payload
        // written from the run's row says false for lost calls alone: the live tally tells.
        const fromRow = totals.lost > 0 && !("lost_calls" in p);
        totals.costKnown = p.cost !== null && (fromRow ? totals.costKnown : p.cost_known !== false);
        totals.cost = p.cost || 0;
      }
      if (p.error) {
        $("run-error").textContent = p.error;
        $("run-error").hidden = false;
      }
      break;
    }
  }
  for (const node of touched) showNode(node);
  if (ev.type !== "step_output") setStatus(view.status);
  if (ev.type === "run_finished" && p.duration_ms !== undefined) {
    $("duration").textContent = (p.duration_ms / 1000).toFixed(1) + " s";
  } else {
    showDuration();
  }
  showTotals();
  showBudget();
}

/** The run has ended: every node settled, the socket closed, the clock stopped. */
function finish(status: string): void {
  if (!view.settled) for (const node of settle(view, status)) showNode(node);
  if (page.finished_at !== null && view.endedAt === null) view.endedAt = page.finished_at;
  setStatus(status);
  setLive("finished", "finished");
  showBudget();
  const s = socket;
  socket = null;
  if (s) s.close();
}

function receive(msg: Payload): void {
  if (msg.type !== "event") return;
  const ev = msg.event as RunEvent;
  if (ev.seq <= lastSeq) return; // already shown
  lastSeq = ev.seq;
  apply(ev);
  if (view.settled) finish(view.status);
  // A page opened on a finished run: the stored events are all there is.
  else if (TERMINAL.includes(page.status) && lastSeq >= page.last_seq) finish(page.status);
}

function connect(): void {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const s = new WebSocket(`${scheme}://${location.host}/ws/runs/${runId}/?after=${lastSeq}`);
  socket = s;
  s.onopen = () => {
    if (socket !== s) return;
    setLive("live");
    retryMs = 250;
  };
  s.onmessage = (m) => receive(JSON.parse(m.data as string) as Payload);
  s.onclose = (e) => {
    if (socket !== s) return; // closed on purpose: the run is over
    if (e.code === 4404 || e.code === 4401) {
      setLive("not allowed");
      return;
    }
    setLive("reconnecting");
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  };
}

document.getElementById("cancel-run")?.addEventListener("click", () => {
  api("POST", `/api/runs/${runId}/cancel`).catch((e: Error) => alert(e.message));
});
document.getElementById("rerun")?.addEventListener("click", async () => {
  try {
    const run = await api("POST", `/api/runs/${runId}/rerun`);
    location.href = run.url;
  } catch (e) {
    alert((e as Error).message);
  }
});
$("step-list").addEventListener("click", (e) => {
  const row = (e.target as HTMLElement).closest<HTMLElement>("#step-list > li[data-key]");
  if (row && !(e.target as HTMLElement).closest(".tool-calls, .plan-made")) select(row.dataset.key!);
});
// While the run runs, the clock runs too (between events).
const ticker = window.setInterval(() => {
  if (view.settled) window.clearInterval(ticker);
  else showDuration();
}, 1000);

window.LoopKitRun = {
  get lastSeq() {
    return lastSeq;
  },
  get status() {
    return view.status;
  },
  get settled() {
    return view.settled;
  },
};
showBudget();
if (TERMINAL.includes(page.status) && page.last_seq === 0) finish(page.status);
else connect();
