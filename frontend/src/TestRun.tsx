/**
 * Test runs from the editor: run the draft being edited (dry, or live with the
 * team's provider) without saving a version, and show each node's result on
 * the graph and in the inspector.
 *
 * The server side is POST /api/loops/{id}/test-runs (or /api/loops/new/test-runs
 * for a loop not saved yet): the run is a normal run marked as a test run, so
 * its events come the way the run page gets them — the run's WebSocket, with
 * the events API polled when no socket can be opened — and are folded by the
 * run page's own reducer (run/reducer.ts).
 *
 * Pinned outputs (as n8n's pinned data): a node's output can be pinned; the
 * next test runs send the pins and the engine answers those steps with them,
 * without calling the model. Pins belong to the editor session (kept in the
 * browser's localStorage per loop and user), never to the loop's YAML.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Api } from "./api";
import { applyEvent, initialView, settle, TERMINAL, type NodeDetail, type Payload, type RunEvent, type RunView, type StepInfo } from "./run/reducer";
import { iterSteps, stepLabel } from "./steps";
import type { LoopData, NodeState, NodeStats } from "./types";

/** A run as POST .../test-runs answers it (the runs API's RunOut, the fields used here). */
interface RunOut {
  id: number;
  status: string;
  url: string;
  dry_run: boolean;
  pinned: string[];
}

export type Pins = Record<string, string>;

/** Return the steps of a draft as the run page lists them: path, label (else the path), kind. */
export function testRunSteps(data: LoopData): StepInfo[] {
  return iterSteps(data).map(({ path, step, kind }) => ({ key: path, label: stepLabel(step) ?? path, kind }));
}

/** Return the name a step's output is pinned under: its label, else its path (as the engine looks it up). */
export function pinName(node: Pick<NodeDetail, "key" | "label">): string {
  return node.label || node.key;
}

/** Return the graph's node states for a run's view: state, and tokens/cost/duration once finished. */
export function graphStates(view: RunView | null, pinned: Set<string> = new Set()): Map<string, { state: NodeState; stats?: NodeStats }> {
  const out = new Map<string, { state: NodeState; stats?: NodeStats }>();
  if (!view) return out;
  for (const node of view.nodes.values()) {
    const ended = node.state === "done" || node.state === "failed";
    const stats: NodeStats | undefined = ended
      ? { tokens: node.tokensIn + node.tokensOut, cost: node.cost ?? undefined, durationMs: node.durationMs ?? undefined, ...(pinned.has(node.key) ? { pinned: true } : {}) }
      : undefined;
    out.set(node.key, { state: node.state, stats });
  }
  return out;
}

function loadPins(key: string): Pins {
  try {
    const raw = window.localStorage.getItem(key);
    const parsed: unknown = raw ? JSON.parse(raw) : {};
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === "string"));
  } catch {
    return {};
  }
}

function savePins(key: string, pins: Pins): void {
  try {
    if (Object.keys(pins).length) window.localStorage.setItem(key, JSON.stringify(pins));
    else window.localStorage.removeItem(key);
  } catch {
    // Storage full or refused (private mode): the pins stay for this page only.
  }
}

/**
 * Follow run *runId*'s events after *after*: its WebSocket, else (no socket
 * could be opened, or it closed before the end) the events API every 500 ms.
 * Each event is handed over once, in order. Returns a function that stops.
 */
export function followRun(runId: number, onEvent: (ev: RunEvent) => void): () => void {
  let last = 0;
  let stopped = false;
  let finished = false;
  let socket: WebSocket | null = null;
  let timer: number | undefined;
  const take = (ev: RunEvent) => {
    if (stopped || ev.seq <= last) return;
    last = ev.seq;
    onEvent(ev);
    if (ev.type === "run_finished") {
      finished = true;
      stop();
    }
  };
  const poll = async () => {
    if (stopped || finished) return;
    try {
      const response = await fetch(`/api/runs/${runId}/events?after=${last}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) for (const ev of (await response.json()) as RunEvent[]) take(ev);
    } catch {
      // The server is unreachable for now: try again.
    }
    if (!stopped && !finished) timer = window.setTimeout(() => void poll(), 500);
  };
  const stop = () => {
    stopped = true;
    window.clearTimeout(timer);
    const s = socket;
    socket = null;
    s?.close();
  };
  try {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const s = new WebSocket(`${scheme}://${location.host}/ws/runs/${runId}/?after=0`);
    socket = s;
    s.onmessage = (m) => {
      const msg = JSON.parse(m.data as string) as Payload;
      if (msg.type === "event") take(msg.event as RunEvent);
    };
    s.onclose = () => {
      if (socket === s && !stopped && !finished) {
        socket = null;
        void poll();
      }
    };
  } catch {
    void poll();
  }
  return stop;
}

export interface TestRunHandle {
  run: RunOut | null;
  /** The draft the current test run ran (to tell when the editor has changed since). */
  draft: string | null;
  view: RunView | null;
  /** Bumped on every event folded in (the view is changed in place). */
  seq: number;
  status: string | null;
  starting: boolean;
  error: string | null;
  pins: Pins;
  /** Steps answered from a pin in the current test run (their keys). */
  pinnedInRun: Set<string>;
  states: Map<string, { state: NodeState; stats?: NodeStats }>;
  start(draft: { yaml: string } | { spec: LoopData }, data: LoopData, options: { dryRun: boolean; inputs: Record<string, unknown> }): Promise<void>;
  pin(node: NodeDetail): void;
  unpin(name: string): void;
  clearPins(): void;
}

export function useTestRun(opts: { apiBase: string; csrfToken: string; loopId: number | string | null | undefined; user?: string }): TestRunHandle {
  const api = useMemo(() => new Api(opts.apiBase, opts.csrfToken), [opts.apiBase, opts.csrfToken]);
  const storageKey = `loopkit:pins:${opts.user ?? ""}:${opts.loopId ?? "new"}`;
  const [pins, setPins] = useState<Pins>(() => loadPins(storageKey));
  const [run, setRun] = useState<RunOut | null>(null);
  const [draftRun, setDraftRun] = useState<string | null>(null);
  const [seq, setSeq] = useState(0);
  const [starting, setStarting] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const view = useRef<RunView | null>(null);
  const pinnedInRun = useRef<Set<string>>(new Set());
  const stop = useRef<(() => void) | null>(null);

  useEffect(() => () => stop.current?.(), []);
  useEffect(() => savePins(storageKey, pins), [storageKey, pins]);

  const start = useCallback(
    async (draft: { yaml: string } | { spec: LoopData }, data: LoopData, options: { dryRun: boolean; inputs: Record<string, unknown> }) => {
      stop.current?.();
      setStarting(true);
      setError(null);
      try {
        const path = opts.loopId == null ? "/new/test-runs" : `/${opts.loopId}/test-runs`;
        const out = await api.request<RunOut>("POST", path, { ...draft, dry_run: options.dryRun, inputs: options.inputs, pinned: pins });
        // "queued" until its events say otherwise: the answer may already say "succeeded"
        // (a worker was quick, or tasks run inline) before the events are folded in.
        view.current = initialView(testRunSteps(data), "queued", Boolean(data.verify));
        pinnedInRun.current = new Set();
        setRun(out);
        setDraftRun(JSON.stringify(draft));
        setSeq((n) => n + 1);
        stop.current = followRun(out.id, (ev) => {
          const current = view.current;
          if (!current) return;
          if ((ev.type === "step_finished" || ev.type === "step_started") && ev.payload?.pinned) pinnedInRun.current.add(String(ev.payload.key));
          applyEvent(current, ev);
          if (ev.type === "run_finished" && !current.settled) settle(current, String(ev.payload?.status));
          setSeq((n) => n + 1);
        });
      } catch (e) {
        setError((e as Error).message);
      } finally {
        setStarting(false);
      }
    },
    [api, opts.loopId, pins],
  );

  const states = useMemo(() => graphStates(view.current, pinnedInRun.current),
    // The view changes in place; seq counts its changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [seq]);

  return {
    run,
    draft: draftRun,
    view: view.current,
    seq,
    status: view.current?.status ?? null,
    starting,
    error,
    pins,
    pinnedInRun: pinnedInRun.current,
    states,
    start,
    pin: (node) => {
      if (node.output !== null) setPins((p) => ({ ...p, [pinName(node)]: node.output as string }));
    },
    unpin: (name) =>
      setPins((p) => {
        const next = { ...p };
        delete next[name];
        return next;
      }),
    clearPins: () => setPins({}),
  };
}

/** The toolbar's part: mode (dry or live), "Test run", the run's status and a link to its page. */
export function TestRunBar({
  handle,
  disabled,
  onStart,
  current,
}: {
  handle: TestRunHandle;
  disabled: boolean;
  onStart: (dryRun: boolean, inputs: Record<string, unknown>) => void;
  /** The draft as it would be sent now (JSON of `{yaml}`): results of another one are marked. */
  current?: string;
}) {
  const [live, setLive] = useState(false);
  const [inputsText, setInputsText] = useState("");
  const [inputsError, setInputsError] = useState<string | null>(null);
  const pinCount = Object.keys(handle.pins).length;
  const running = handle.status !== null && !TERMINAL.includes(handle.status);
  const go = () => {
    let inputs: Record<string, unknown> = {};
    if (inputsText.trim()) {
      try {
        const parsed: unknown = JSON.parse(inputsText);
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("inputs must be a JSON object");
        inputs = parsed as Record<string, unknown>;
      } catch (e) {
        setInputsError((e as Error).message);
        return;
      }
    }
    setInputsError(null);
    onStart(!live, inputs);
  };
  return (
    <div className="lke-testrun-bar" data-testid="test-run-bar">
      <select aria-label="Test run mode" value={live ? "live" : "dry"} onChange={(e) => setLive(e.target.value === "live")} data-testid="test-run-mode">
        <option value="dry">Dry</option>
        <option value="live">Live (team provider)</option>
      </select>
      <details className="lke-testrun-inputs">
        <summary>Inputs</summary>
        <textarea aria-label="Test run inputs (JSON)" placeholder='{"repo": "acme/api"}' value={inputsText} onChange={(e) => setInputsText(e.target.value)} data-testid="test-run-inputs" />
        {inputsError && <span className="lke-field-error">{inputsError}</span>}
      </details>
      <button type="button" disabled={disabled || handle.starting || running} onClick={go} data-testid="test-run" title="Run the draft as it is now, without saving a version">
        {handle.starting ? "Starting…" : running ? "Running…" : "Test run"}
      </button>
      {handle.run && (
        <a className="lke-link" href={handle.run.url} target="_blank" rel="noreferrer" data-testid="test-run-status" data-status={handle.status ?? ""}>
          test run #{handle.run.id}: {handle.status}
        </a>
      )}
      {handle.run && current !== undefined && handle.draft !== null && current !== handle.draft && (
        <span className="lke-muted" data-testid="test-run-stale" title="The results shown are of the draft as it was when the test run started">
          (the draft has changed since)
        </span>
      )}
      {pinCount > 0 && (
        <span className="lke-pins" data-testid="pins-count">
          {pinCount} pinned
          <button type="button" className="lke-link" onClick={handle.clearPins} data-testid="clear-pins">
            clear
          </button>
        </span>
      )}
      {handle.error && (
        <span className="lke-field-error" role="alert" data-testid="test-run-error">
          Test run refused: {handle.error}
        </span>
      )}
    </div>
  );
}

function money(cost: number | null | undefined): string {
  if (cost === undefined) return "—";
  if (cost === null) return "unknown";
  return "$" + cost.toFixed(4);
}

const PREVIEW_CHARS = 4000;

/** The inspector's part for the selected node: its last test run result, and its pin. */
export function NodeResult({ handle, nodeKey, readOnly }: { handle: TestRunHandle; nodeKey: string; readOnly: boolean }) {
  const node = handle.view?.nodes.get(nodeKey);
  const pinnedHere = node ? handle.pins[pinName(node)] : undefined;
  if (!node) {
    return null;
  }
  const fromPin = handle.pinnedInRun.has(node.key);
  const output = node.value !== undefined ? JSON.stringify(node.value, null, 2) : node.output;
  return (
    <section className="lke-node-result" data-testid="node-result" data-state={node.state} data-pinned={fromPin ? "true" : "false"}>
      <h3>
        Test run result <span className={`lke-run-state lke-run-${node.state}`}>{node.state}</span>
      </h3>
      {fromPin && (
        <p className="lke-muted" data-testid="node-result-pinned">
          Pinned output: the model was not called.
        </p>
      )}
      <dl className="lke-result-stats">
        <dt>Tokens</dt>
        <dd data-testid="node-result-tokens">{(node.tokensIn + node.tokensOut).toLocaleString("en")}</dd>
        <dt>Cost</dt>
        <dd data-testid="node-result-cost">{money(node.cost)}</dd>
        {node.durationMs !== null && (
          <>
            <dt>Time</dt>
            <dd>{node.durationMs >= 1000 ? `${(node.durationMs / 1000).toFixed(1)} s` : `${Math.round(node.durationMs)} ms`}</dd>
          </>
        )}
        {node.model && (
          <>
            <dt>Model</dt>
            <dd>{node.model}</dd>
          </>
        )}
      </dl>
      {node.error && <p className="lke-field-error">{node.error}</p>}
      {output !== null && (
        <pre className="lke-result-output" data-testid="node-result-output">
          {output.length > PREVIEW_CHARS ? output.slice(0, PREVIEW_CHARS) + "…" : output}
        </pre>
      )}
      {node.verdicts.length > 0 && (
        <ul className="lke-result-verdicts" data-testid="node-result-verdicts">
          {node.verdicts.map((v) => (
            <li key={v.round}>
              Round {v.round}/{v.maxRounds}: {v.skipped ? "skipped" : v.passed ? "passed" : "failed"}
              {v.score !== null ? `, score ${v.score.toFixed(2)}` : ""}
              {v.issues.length ? ` — ${v.issues.join("; ")}` : ""}
            </li>
          ))}
        </ul>
      )}
      {!readOnly && node.kind === "agent" && (
        <div className="lke-buttons">
          {pinnedHere === undefined ? (
            node.state === "done" &&
            node.output !== null && (
              <button type="button" onClick={() => handle.pin(node)} data-testid="pin-output" title="The next test runs use this output instead of calling the model">
                Pin this output
              </button>
            )
          ) : (
            <button type="button" onClick={() => handle.unpin(pinName(node))} data-testid="unpin-output">
              Unpin
            </button>
          )}
        </div>
      )}
    </section>
  );
}

/** A pinned step with no result in the current view still shows its pin (after a reload). */
export function PinnedNote({ handle, name, readOnly }: { handle: TestRunHandle; name: string; readOnly: boolean }) {
  const text = handle.pins[name];
  if (text === undefined) return null;
  return (
    <section className="lke-node-result" data-testid="node-pin">
      <h3>Pinned output</h3>
      <pre className="lke-result-output">{text.length > PREVIEW_CHARS ? text.slice(0, PREVIEW_CHARS) + "…" : text}</pre>
      {!readOnly && (
        <button type="button" onClick={() => handle.unpin(name)} data-testid="unpin-output">
          Unpin
        </button>
      )}
    </section>
  );
}

/** The inspector's test-run part for node *nodeKey*: its result in the last test run, else its pin. */
export function NodeTestPanel({ handle, data, nodeKey, readOnly }: { handle: TestRunHandle; data: LoopData; nodeKey: string; readOnly: boolean }) {
  if (handle.view?.nodes.has(nodeKey)) return <NodeResult handle={handle} nodeKey={nodeKey} readOnly={readOnly} />;
  const step = iterSteps(data).find((s) => s.path === nodeKey);
  return step ? <PinnedNote handle={handle} name={stepLabel(step.step) ?? nodeKey} readOnly={readOnly} /> : null;
}
