/**
 * Entry of static/editor/graph.js: the read-only loop graph for other pages.
 *
 *   const graph = window.LoopKitGraph.mount(element, { spec });
 *   graph.setNodeState("pipeline[0].parallel[2]" or "Bug Review", "running", { tokens, cost, durationMs });
 *   graph.highlight(["pipeline[1]", "verify"]);
 */
import "@xyflow/react/dist/style.css";
import "./editor.css";
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

const STATES: NodeState[] = ["queued", "running", "done", "failed", "skipped"];

interface Snapshot {
  spec: LoopData;
  states: Map<string, { state: NodeState; stats?: NodeStats }>;
  highlighted: Set<string>;
}

function mount(element: HTMLElement, options: { spec: LoopData }): MountedGraph {
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
        <GraphCanvas data={s.spec} states={s.states} highlighted={s.highlighted} />
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

// Pages that load only graph.js still get its styles: add graph.css from the
// same folder unless the page links it (or the editor's CSS) already.
const script = document.currentScript as HTMLScriptElement | null;
if (script?.src && !document.querySelector('link[href$="editor/graph.css"], link[href$="editor/editor.css"]')) {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = script.src.replace(/graph\.js(\?.*)?$/, "graph.css");
  document.head.appendChild(link);
}
