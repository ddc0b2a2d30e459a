/**
 * Entry of static/editor/graph.js: the read-only loop graph for other pages.
 *
 *   const graph = window.LoopKitGraph.mount(element, { spec });
 *   graph.setNodeState("pipeline[0].parallel[2]" or "Bug Review", "running", { tokens, cost, durationMs });
 *   graph.highlight(["pipeline[1]", "verify"]);
 */
import "@xyflow/react/dist/style.css";
import "./editor.css";
import flowCss from "@xyflow/react/dist/style.css?inline";
import ownCss from "./editor.css?inline";
import { createRoot } from "react-dom/client";
import { useSyncExternalStore } from "react";
import { GraphCanvas } from "./GraphCanvas";
import type { LoopData, NodeState, NodeStats } from "./types";

export interface MountedGraph {
  setNodeState(key: string, state: NodeState, stats?: NodeStats): void;
  highlight(keys: string[]): void;
  setSpec(spec: LoopData): void;
  unmount(): void;
}

const STATES: NodeState[] = ["queued", "running", "done", "failed", "skipped", "cancelled", "rejected"];

interface Snapshot {
  spec: LoopData;
  states: Map<string, { state: NodeState; stats?: NodeStats }>;
  highlighted: Set<string>;
}

/**
 * Pages that load only graph.js still get its styles: when graph.css (or the
 * editor's CSS) is not applied — editor.css sets --lke-css on :root — the same
 * CSS is added as a <style> element, whatever the static files are named.
 */
function ensureStyles(): void {
  if (getComputedStyle(document.documentElement).getPropertyValue("--lke-css").trim()) return;
  if (document.getElementById("lke-graph-styles")) return;
  const style = document.createElement("style");
  style.id = "lke-graph-styles";
  style.textContent = `${flowCss}\n${ownCss}`;
  document.head.appendChild(style);
}

function mount(element: HTMLElement, options: { spec: LoopData; onNodeClick?: (key: string) => void }): MountedGraph {
  ensureStyles();
  if (!options?.spec || typeof options.spec !== "object") throw new TypeError("LoopKitGraph.mount needs { spec: <loop data> }");
  let snapshot: Snapshot = { spec: options.spec, states: new Map(), highlighted: new Set() };
  const listeners = new Set<() => void>();
  const update = (next: Partial<Snapshot>) => {
    snapshot = { ...snapshot, ...next };
    listeners.forEach((l) => l());
  };
  const subscribe = (l: () => void) => {
    listeners.add(l);
    return () => listeners.delete(l);
  };
  function View() {
    const s = useSyncExternalStore(subscribe, () => snapshot);
    return (
      <div className="lke-run-graph">
        <GraphCanvas data={s.spec} states={s.states} highlighted={s.highlighted} onNodeClick={options.onNodeClick} />
      </div>
    );
  }
  element.classList.add("lke-graph-host");
  const root = createRoot(element);
  root.render(<View />);
  return {
    setNodeState(key, state, stats) {
      if (!STATES.includes(state)) throw new TypeError(`state must be one of ${STATES.join(", ")}, not ${String(state)}`);
      const states = new Map(snapshot.states);
      states.set(key, { state, stats: stats ?? states.get(key)?.stats });
      update({ states });
    },
    highlight(keys) {
      update({ highlighted: new Set(keys) });
    },
    setSpec(spec) {
      update({ spec });
    },
    unmount() {
      root.unmount();
    },
  };
}

declare global {
  interface Window {
    LoopKitGraph: { mount: typeof mount };
  }
}

window.LoopKitGraph = { mount };
