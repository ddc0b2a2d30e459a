/** The loop graph (React Flow), shared by the editor and the read-only run graph. */
import {
  Background,
  BaseEdge,
  Controls,
  EdgeLabelRenderer,
  Handle,
  MarkerType,
  MiniMap,
  Position,
  ReactFlow,
  ReactFlowProvider,
  applyNodeChanges,
  getSmoothStepPath,
  useReactFlow,
  useStore,
  type EdgeProps,
  type NodeChange,
  type NodeProps,
} from "@xyflow/react";
import { createContext, memo, useCallback, useContext, useEffect, useMemo, useRef, useState, type DragEvent, type KeyboardEvent as ReactKeyboardEvent } from "react";
import { edgeInsertPoint, itemName, type DropTarget, type PaletteItem } from "./drops";
import { layoutGraph, loopToGraph, resolveKey, type LoopEdge, type LoopNode } from "./graph";
import type { LoopData, NodeState, NodeStats, StepKind } from "./types";

export interface GraphActions {
  select(id: string | null): void;
  insert(listPath: string, index: number, kind: StepKind): void;
  remove(path: string): void;
  removeMany(paths: string[]): void;
  move(fromPath: string, toListPath: string, index: number): void;
  /** A palette item dropped on an edge or a node (refused drops say why). */
  drop(item: PaletteItem, target: DropTarget): void;
  /** A step dragged onto an edge, a group or before/after another step. */
  moveTo(fromPath: string, target: DropTarget, after: boolean): void;
  copy(paths: string[]): void;
  /** Paste the copied steps after `after` (or at the end of the pipeline). */
  paste(after: string | null): void;
  duplicate(path: string): void;
  canPaste(): boolean;
}

/** The drag-and-drop type the palette sets (its JSON is a PaletteItem). */
export const PALETTE_MIME = "application/x-loopkit-palette";
/** The item being dragged from the palette (a drag's data is readable only on drop). */
export const paletteDrag: { item: PaletteItem | null } = { item: null };

interface Ctx {
  editable: boolean;
  actions?: GraphActions;
  states: Map<string, { state: NodeState; stats?: NodeStats }>;
  highlighted: Set<string>;
  invalid: Set<string>;
  selected: string | null;
  /** The node or edge id a palette item or a dragged step is over. */
  dropTarget: string | null;
}

const GraphContext = createContext<Ctx>({ editable: false, states: new Map(), highlighted: new Set(), invalid: new Set(), selected: null, dropTarget: null });

const KIND_ICON: Record<string, string> = {
  trigger: "⚡",
  agent: "◆",
  approval: "✋",
  plan: "☰",
  tool: "⚙",
  parallel: "∥",
  sequential: "↓",
  conditional: "◇",
  verify: "✓",
  end: "■",
  budget: "$",
  memory: "⛁",
  unknown: "?",
};

const ADDABLE: [StepKind, string][] = [
  ["agent", "Agent"],
  ["parallel", "Parallel group"],
  ["conditional", "Condition"],
  ["approval", "Approval gate"],
  ["plan", "Plan (planner decides)"],
  ["tool", "Tool call (no model)"],
];

function AddMenu({ onPick, title }: { onPick: (kind: StepKind) => void; title: string }) {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLSpanElement>(null);
  useEffect(() => {
    if (!open) return;
    // Close on a click elsewhere or on Escape.
    const away = (e: Event) => {
      if (e instanceof KeyboardEvent ? e.key === "Escape" : !box.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("pointerdown", away, true);
    document.addEventListener("keydown", away, true);
    return () => {
      document.removeEventListener("pointerdown", away, true);
      document.removeEventListener("keydown", away, true);
    };
  }, [open]);
  return (
    <span className="lke-add nodrag nopan" ref={box}>
      <button
        type="button"
        className="lke-add-button"
        title={title}
        aria-label={title}
        onClick={(e) => {
          e.stopPropagation();
          setOpen((o) => !o);
        }}
      >
        +
      </button>
      {open && (
        <span className="lke-add-menu" role="menu">
          {ADDABLE.map(([kind, name]) => (
            <button
              key={kind}
              type="button"
              role="menuitem"
              onClick={(e) => {
                e.stopPropagation();
                setOpen(false);
                onPick(kind);
              }}
            >
              {name}
            </button>
          ))}
        </span>
      )}
    </span>
  );
}

function formatStats(stats?: NodeStats): string {
  if (!stats) return "";
  const parts: string[] = [];
  if (stats.pinned) parts.push("pinned"); // an editor test run answered it from a pin
  if (stats.tokens !== undefined) parts.push(`${stats.tokens.toLocaleString("en")} tok`);
  if (stats.cost !== undefined) parts.push(`$${stats.cost.toFixed(4)}`);
  if (stats.durationMs !== undefined) parts.push(stats.durationMs >= 1000 ? `${(stats.durationMs / 1000).toFixed(1)} s` : `${Math.round(stats.durationMs)} ms`);
  return parts.join(" · ");
}

const LoopNodeView = memo(function LoopNodeView({ id, data }: NodeProps<LoopNode>) {
  const ctx = useContext(GraphContext);
  const run = ctx.states.get(id);
  const isStep = data.listPath !== undefined;
  const classes = [
    "lke-node",
    `lke-node-${data.kind}`,
    data.absent ? "lke-absent" : "",
    ctx.selected === id ? "lke-selected" : "",
    ctx.highlighted.has(id) ? "lke-highlight" : "",
    ctx.invalid.has(id) ? "lke-invalid" : "",
    ctx.dropTarget === id ? "lke-drop-node" : "",
    run ? `lke-state-${run.state}` : "",
  ]
    .filter(Boolean)
    .join(" ");
  if (data.kind === "join") {
    return (
      <div className={classes} data-key={id}>
        <Handle type="target" position={Position.Top} isConnectable={false} />
        <Handle type="source" position={Position.Bottom} isConnectable={false} />
      </div>
    );
  }
  return (
    <div className={classes} data-key={id} data-kind={data.kind} data-testid={`node-${id}`}>
      {data.kind !== "trigger" && data.kind !== "budget" && data.kind !== "memory" && (
        <Handle type="target" position={Position.Top} isConnectable={false} />
      )}
      <div className="lke-node-title">
        <span className="lke-node-icon" aria-hidden="true">
          {KIND_ICON[data.kind] ?? "•"}
        </span>
        <span className="lke-node-name">{data.title}</span>
      </div>
      {data.kind === "plan" ? (
        <>
          <div className="lke-node-detail lke-plan-planner" title={data.detail}>
            planner: {data.planner ? `@${data.planner}` : "built-in"}
          </div>
          <div className="lke-node-detail lke-plan-templates" title={data.detail}>
            templates: {data.templates?.length ? data.templates.join(", ") : "none"}
          </div>
        </>
      ) : (
        data.detail && <div className="lke-node-detail">{data.detail}</div>
      )}
      {run && (
        <div className="lke-node-stats">
          <span className={`lke-run-state lke-run-${run.state}`}>{run.state}</span> {formatStats(run.stats)}
        </div>
      )}
      {ctx.editable && ctx.actions && (
        <div className="lke-node-tools nodrag nopan">
          {data.kind === "parallel" && data.appendTo && (
            <AddMenu title="Add a parallel branch" onPick={(kind) => ctx.actions!.insert(data.appendTo!, Number.MAX_SAFE_INTEGER, kind)} />
          )}
          {data.kind === "conditional" && !data.hasElse && data.appendTo && (
            <AddMenu title="Add an else branch" onPick={(kind) => ctx.actions!.insert(data.appendTo!, 0, kind)} />
          )}
          {isStep && (
            <button
              type="button"
              className="lke-duplicate"
              title="Duplicate this step (Ctrl+D)"
              aria-label={`Duplicate ${data.title}`}
              onClick={(e) => {
                e.stopPropagation();
                ctx.actions!.duplicate(id);
              }}
            >
              ⊞
            </button>
          )}
          {isStep && (
            <button
              type="button"
              className="lke-delete"
              title="Delete this step"
              aria-label={`Delete ${data.title}`}
              onClick={(e) => {
                e.stopPropagation();
                ctx.actions!.remove(id);
              }}
            >
              ×
            </button>
          )}
        </div>
      )}
      {data.kind !== "end" && data.kind !== "budget" && data.kind !== "memory" && (
        <Handle type="source" position={Position.Bottom} isConnectable={false} />
      )}
    </div>
  );
});

function LoopEdgeView(props: EdgeProps<LoopEdge>) {
  const { id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, data, markerEnd, style } = props;
  const ctx = useContext(GraphContext);
  const [path, labelX, labelY] = getSmoothStepPath({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, borderRadius: 8 });
  const maker = data?.role === "maker";
  const canInsert = ctx.editable && ctx.actions && data?.listPath !== undefined && data.index !== undefined;
  const title = data?.role === "branch" ? "Add a parallel branch here" : "Add a step here";
  const target = ctx.dropTarget === id;
  return (
    <>
      <BaseEdge id={id} path={path} markerEnd={markerEnd} style={style} className={maker ? "lke-edge-maker" : target ? "lke-edge lke-drop-edge" : "lke-edge"} />
      {(canInsert || data?.label) && !maker && (
        <EdgeLabelRenderer>
          <div
            className="lke-edge-label nodrag nopan"
            style={{ transform: `translate(-50%, -50%) translate(${labelX}px, ${labelY}px)` }}
            data-edge={id}
          >
            {data?.label && <span className="lke-edge-text">{data.label}</span>}
            {canInsert && <AddMenu title={title} onPick={(kind) => ctx.actions!.insert(data!.listPath!, data!.index!, kind)} />}
          </div>
        </EdgeLabelRenderer>
      )}
    </>
  );
}

const nodeTypes = { loop: LoopNodeView };
const edgeTypes = { loop: LoopEdgeView };

export interface GraphCanvasProps {
  data: LoopData;
  editable?: boolean;
  actions?: GraphActions;
  selected?: string | null;
  states?: Map<string, { state: NodeState; stats?: NodeStats }>;
  highlighted?: Set<string>;
  invalid?: Set<string>;
  /** A node or edge id to mark as a target (the palette's keyboard placement). */
  pointed?: string | null;
  /** Called with a node's key when it is clicked (the run page opens its detail). */
  onNodeClick?: (key: string) => void;
}

function reuse<T extends { id: string }>(before: T[], after: T[]): [T[], boolean] {
  const byId = new Map(before.map((item) => [item.id, item]));
  let changed = before.length !== after.length;
  const out = after.map((item, index) => {
    const old = byId.get(item.id);
    if (old && JSON.stringify(old) === JSON.stringify(item)) {
      if (before[index] !== old) changed = true;
      return old;
    }
    changed = true;
    return item;
  });
  return [changed ? out : before, changed];
}

function reuseUnchanged(
  before: { nodes: LoopNode[]; edges: LoopEdge[] } | null,
  after: { nodes: LoopNode[]; edges: LoopEdge[] },
): { nodes: LoopNode[]; edges: LoopEdge[] } {
  if (!before) return after;
  const [nodes, nodesChanged] = reuse(before.nodes, after.nodes);
  const [edges, edgesChanged] = reuse(before.edges, after.edges);
  return nodesChanged || edgesChanged ? { nodes, edges } : before;
}

const KIND_NAME: Record<string, string> = {
  trigger: "Trigger",
  agent: "Agent step",
  approval: "Approval gate",
  plan: "Plan step",
  tool: "Tool call",
  parallel: "Parallel group",
  sequential: "Sequence",
  conditional: "Condition",
  join: "Join",
  verify: "Verification",
  end: "End",
  budget: "Budget",
  memory: "Memory",
  unknown: "Step",
};

/** Below this zoom, nodes show only their title, larger (level of detail). */
export const FAR_ZOOM = 0.75;

/** Distance from a point to an edge drawn as a smooth step (down, across, down), in flow units. */
function distanceToEdge(p: { x: number; y: number }, a: { x: number; y: number }, b: { x: number; y: number }): number {
  const midY = (a.y + b.y) / 2;
  const segments: [number, number, number, number][] = [
    [a.x, a.y, a.x, midY],
    [a.x, midY, b.x, midY],
    [b.x, midY, b.x, b.y],
  ];
  let best = Infinity;
  for (const [x1, y1, x2, y2] of segments) {
    const dx = x2 - x1;
    const dy = y2 - y1;
    const len = dx * dx + dy * dy;
    const t = len ? Math.max(0, Math.min(1, ((p.x - x1) * dx + (p.y - y1) * dy) / len)) : 0;
    best = Math.min(best, Math.hypot(p.x - (x1 + t * dx), p.y - (y1 + t * dy)));
  }
  return best;
}

function Canvas(props: GraphCanvasProps) {
  const { data, editable = false, actions } = props;
  // Keep unchanged nodes and edges as the same objects: React Flow then
  // skips them, and a text edit elsewhere in the loop redraws nothing here.
  const previous = useRef<{ nodes: LoopNode[]; edges: LoopEdge[] } | null>(null);
  const laid = useMemo(() => {
    const graph = layoutGraph(loopToGraph(data));
    for (const node of graph.nodes) {
      if (node.data.kind !== "join") node.ariaLabel = `${KIND_NAME[node.data.kind] ?? "Node"}: ${node.data.title}${node.data.detail ? ` (${node.data.detail})` : ""}`;
      else node.focusable = false;
    }
    return reuseUnchanged(previous.current, graph);
  }, [data]);
  useEffect(() => {
    previous.current = laid;
  }, [laid]);
  const [nodes, setNodes] = useState<LoopNode[]>(laid.nodes);
  const flow = useReactFlow<LoopNode, LoopEdge>();
  useEffect(() => setNodes(laid.nodes), [laid]);
  const count = laid.nodes.length;
  const laidRef = useRef(laid);
  laidRef.current = laid;
  useEffect(() => {
    const timer = window.setTimeout(async () => {
      await flow.fitView(FIT);
      // Too big to fit at the smallest zoom: show its top (the trigger), not its middle.
      const { x, zoom } = flow.getViewport();
      if (zoom <= FIT.minZoom + 1e-3 && laidRef.current.nodes.length) {
        const top = Math.min(...laidRef.current.nodes.map((n) => n.position.y));
        void flow.setViewport({ x, y: 16 - top * zoom, zoom });
      }
    }, 0);
    return () => window.clearTimeout(timer);
  }, [count, flow]);
  const selected = props.selected ?? null;
  // React Flow's selection follows the editor's: what the inspector shows is
  // what Delete removes and what Ctrl+C copies.
  const shown = useMemo(
    () => nodes.map((n) => ((n.selected ?? false) === (n.id === selected) ? n : { ...n, selected: n.id === selected })),
    [nodes, selected],
  );
  const onNodesChange = useCallback(
    (changes: NodeChange<LoopNode>[]) => {
      // Enter or Space on a focused node selects it: the inspector shows it too.
      for (const c of changes) if (c.type === "select" && c.selected && !c.id.endsWith("#join")) actions?.select(c.id);
      setNodes((current) => applyNodeChanges(changes.filter((c) => c.type !== "remove" && c.type !== "select"), current));
    },
    [actions],
  );
  const [dropTarget, setDropTarget] = useState<{ target: DropTarget; hint: string; ok: boolean } | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  useEffect(() => {
    if (!message) return;
    const timer = window.setTimeout(() => setMessage(null), 6000);
    return () => window.clearTimeout(timer);
  }, [message]);

  /** The edge or node under a point (client coordinates), for drops. */
  const targetAt = useCallback(
    (clientX: number, clientY: number, exclude?: string): DropTarget | null => {
      // An edge's label (its + and then/else) is drawn above the nodes: what is under the pointer wins.
      for (const el of document.elementsFromPoint(clientX, clientY)) {
        const id = (el as HTMLElement).closest?.("[data-edge]")?.getAttribute("data-edge");
        const e = id ? laid.edges.find((x) => x.id === id) : undefined;
        if (e && e.source !== exclude && e.target !== exclude) {
          return { type: "edge", id: e.id, source: e.source, target: e.target, listPath: e.data?.listPath, index: e.data?.index };
        }
        if ((el as HTMLElement).classList?.contains("react-flow__node")) break;
      }
      const p = flow.screenToFlowPosition({ x: clientX, y: clientY });
      const zoom = flow.getZoom();
      for (const n of laid.nodes) {
        if (n.id === exclude || (exclude && n.id.startsWith(`${exclude}.`))) continue;
        const [w, h] = [n.width ?? 0, n.height ?? 0];
        const pad = n.data.kind === "join" ? 6 : 0;
        if (p.x >= n.position.x - pad && p.x <= n.position.x + w + pad && p.y >= n.position.y - pad && p.y <= n.position.y + h + pad) {
          return { type: "node", id: n.id, kind: n.data.kind, title: n.data.title };
        }
      }
      const byId = new Map(laid.nodes.map((n) => [n.id, n]));
      let best: { e: LoopEdge; d: number } | null = null;
      for (const e of laid.edges) {
        if (e.data?.role === "maker" || (exclude && (e.source === exclude || e.target === exclude))) continue;
        const s = byId.get(e.source);
        const t = byId.get(e.target);
        if (!s || !t) continue;
        const a = { x: s.position.x + (s.width ?? 0) / 2, y: s.position.y + (s.height ?? 0) };
        const b = { x: t.position.x + (t.width ?? 0) / 2, y: t.position.y };
        const d = distanceToEdge(p, a, b);
        if (!best || d < best.d) best = { e, d };
      }
      if (best && best.d * zoom < 24) {
        const { e } = best;
        return { type: "edge", id: e.id, source: e.source, target: e.target, listPath: e.data?.listPath, index: e.data?.index };
      }
      return null;
    },
    [flow, laid],
  );

  const describe = useCallback(
    (item: PaletteItem | null, target: DropTarget): { hint: string; ok: boolean } => {
      if (target.type === "edge") {
        const point = edgeInsertPoint(target);
        if (typeof point === "string") return { hint: point, ok: false };
        return { hint: item ? `Insert ${itemName(item).replace(/^(subagent|skill|connector) /, "an agent step with $1 ")} here` : "Move the step here", ok: true };
      }
      if (item?.type === "step" && (target.kind === "parallel" || target.kind === "sequential")) return { hint: `Add to ${target.title}`, ok: true };
      if (item && item.type !== "step" && (target.kind === "agent" || (item.type === "subagent" && target.kind === "plan"))) {
        return { hint: item.type === "subagent" ? `Run ${target.title} as @${item.name}` : `Give ${target.title} the ${item.type} ${item.name}`, ok: true };
      }
      if (!item && target.kind !== "join" && ["agent", "approval", "tool", "plan", "parallel", "sequential", "conditional", "unknown"].includes(target.kind)) {
        return { hint: target.kind === "parallel" || target.kind === "sequential" ? `Move into ${target.title}` : `Move next to ${target.title}`, ok: true };
      }
      return { hint: "Cannot drop here", ok: false };
    },
    [],
  );

  const onNodeDrag = useCallback(
    (event: { clientX: number; clientY: number } | unknown, node: LoopNode) => {
      if (node.data.listPath === undefined) return;
      const e = event as { clientX: number; clientY: number };
      const target = targetAt(e.clientX, e.clientY, node.id);
      const id = target?.id ?? null;
      setDropTarget((current) => {
        if ((current?.target.id ?? null) === id) return current;
        return target ? { target, ...describe(null, target) } : null;
      });
    },
    [targetAt, describe],
  );
  const onNodeDragStop = useCallback(
    (event: unknown, node: LoopNode) => {
      setDropTarget(null);
      const e = event as { clientX: number; clientY: number };
      const target = node.data.listPath !== undefined ? targetAt(e.clientX, e.clientY, node.id) : null;
      if (!actions || !target || node.data.listPath === undefined) {
        setNodes(laid.nodes);
        return;
      }
      let after = false;
      if (target.type === "node") {
        const other = laid.nodes.find((n) => n.id === target.id)!;
        const sideways = other.data.listPath?.endsWith(".parallel") ?? false;
        const p = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
        after = sideways ? p.x > other.position.x + (other.width ?? 0) / 2 : p.y > other.position.y + (other.height ?? 0) / 2;
      }
      setNodes(laid.nodes);
      actions.moveTo(node.id, target, after);
    },
    [actions, flow, laid, targetAt],
  );

  const readItem = (event: DragEvent): PaletteItem | null => {
    try {
      return JSON.parse(event.dataTransfer.getData(PALETTE_MIME)) as PaletteItem;
    } catch {
      return null;
    }
  };
  const onDragOver = useCallback(
    (event: DragEvent) => {
      if (!editable || !event.dataTransfer.types.includes(PALETTE_MIME)) return;
      event.preventDefault();
      const target = targetAt(event.clientX, event.clientY);
      // The item itself is readable only on drop: describe the target for the kind the palette announced.
      const announced = paletteDrag.item;
      event.dataTransfer.dropEffect = target ? "copy" : "none";
      setDropTarget((current) => {
        if ((current?.target.id ?? null) === (target?.id ?? null)) return current;
        return target ? { target, ...describe(announced, target) } : null;
      });
    },
    [editable, targetAt, describe],
  );
  const onDrop = useCallback(
    (event: DragEvent) => {
      setDropTarget(null);
      const item = readItem(event);
      if (!item || !actions) return;
      event.preventDefault();
      const target = targetAt(event.clientX, event.clientY);
      if (!target) {
        setMessage(`Drop the ${itemName(item)} on an edge (between two steps) or on a step`);
        return;
      }
      actions.drop(item, target);
    },
    [actions, targetAt],
  );

  // Copy, paste, duplicate with the keyboard while the canvas has focus.
  const onKeyDown = useCallback(
    (event: ReactKeyboardEvent) => {
      if (!actions || !editable) return;
      const el = event.target as HTMLElement;
      if (el.closest("input, textarea, select, [contenteditable=true]")) return;
      const mod = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      const step = selected && !selected.includes("#") && /\]$/.test(selected) ? selected : null;
      if (mod && key === "c" && step) {
        event.preventDefault();
        actions.copy([step]);
      } else if (mod && key === "v") {
        event.preventDefault();
        actions.paste(step);
      } else if (mod && key === "d" && step) {
        event.preventDefault();
        actions.duplicate(step);
      } else if (event.key === "Escape") {
        setMenu(null);
      }
    },
    [actions, editable, selected],
  );

  const [menu, setMenu] = useState<{ x: number; y: number; id: string | null } | null>(null);
  const host = useRef<HTMLDivElement>(null);
  const openMenu = (event: { preventDefault(): void; clientX: number; clientY: number }, id: string | null) => {
    if (!actions || !editable) return;
    event.preventDefault();
    const box = host.current!.getBoundingClientRect();
    setMenu({ x: event.clientX - box.left, y: event.clientY - box.top, id });
    if (id) actions.select(id);
  };
  const menuRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!menu) return;
    menuRef.current?.querySelector("button")?.focus();
    const away = (e: Event) => {
      if (!menuRef.current?.contains(e.target as Node)) setMenu(null);
    };
    document.addEventListener("pointerdown", away, true);
    return () => document.removeEventListener("pointerdown", away, true);
  }, [menu]);

  // Keys may be paths, field paths or labels: resolve them to node ids.
  const ids = useMemo(() => new Set(laid.nodes.map((n) => n.id)), [laid]);
  const highlighted = useMemo(() => {
    const out = new Set<string>();
    for (const key of props.highlighted ?? []) {
      const id = resolveKey(data, ids, key);
      if (id) out.add(id);
    }
    return out;
  }, [props.highlighted, data, ids]);
  const states = useMemo(() => {
    const out = new Map<string, { state: NodeState; stats?: NodeStats }>();
    for (const [key, value] of props.states ?? []) {
      const id = resolveKey(data, ids, key);
      if (id) out.set(id, value);
    }
    return out;
  }, [props.states, data, ids]);
  const invalid = props.invalid;
  const dropId = dropTarget?.target.id ?? props.pointed ?? null;
  const ctx: Ctx = useMemo(
    () => ({ editable, actions, states, highlighted, invalid: invalid ?? new Set(), selected, dropTarget: dropId }),
    [editable, actions, states, highlighted, invalid, selected, dropId],
  );
  const far = useStore((s) => s.transform[2] < FAR_ZOOM);
  const menuStep = menu?.id && /\]$/.test(menu.id) ? menu.id : null;

  return (
    <GraphContext.Provider value={ctx}>
      <div
        ref={host}
        className="lke-canvas"
        role="region"
        aria-label="Loop graph: Tab to a step, Enter to select it; Delete, Ctrl+C, Ctrl+V, Ctrl+D act on the selected step"
        onDragOver={editable ? onDragOver : undefined}
        onDragLeave={editable ? (e) => !host.current?.contains(e.relatedTarget as Node) && setDropTarget(null) : undefined}
        onDrop={editable ? onDrop : undefined}
        onKeyDown={onKeyDown}
      >
        <ReactFlow<LoopNode, LoopEdge>
          className={far ? "lke-far" : undefined}
          nodes={shown}
          edges={laid.edges}
          nodeTypes={nodeTypes}
          edgeTypes={edgeTypes}
          onNodesChange={onNodesChange}
          onNodeClick={(_e, node) => {
            if (node.data.kind !== "join") props.onNodeClick?.(node.id);
            actions?.select(node.data.kind === "join" ? null : node.id);
          }}
          onPaneClick={() => actions?.select(null)}
          onNodeContextMenu={editable ? (e, node) => openMenu(e, node.data.listPath !== undefined ? node.id : null) : undefined}
          onPaneContextMenu={editable ? (e) => openMenu(e as MouseEvent, null) : undefined}
          onNodeDrag={editable ? onNodeDrag : undefined}
          onNodeDragStop={editable ? onNodeDragStop : undefined}
          nodesDraggable={editable}
          nodesConnectable={false}
          edgesFocusable={false}
          deleteKeyCode={editable ? ["Delete", "Backspace"] : null}
          multiSelectionKeyCode={null}
          onBeforeDelete={async ({ nodes: doomed }) => {
            // React Flow's Delete key (it ignores keys typed in inputs and the
            // YAML view): the steps go from the loop data, not from the canvas.
            const steps = doomed.filter((n) => n.data.listPath !== undefined).map((n) => n.id);
            if (steps.length && actions) actions.removeMany(steps);
            return false;
          }}
          defaultEdgeOptions={{ markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 } }}
          // Big loops: draw only what is in view (React Flow's own culling).
          onlyRenderVisibleElements={laid.nodes.length > 150}
          minZoom={0.2}
          maxZoom={1.5}
          fitView
          fitViewOptions={FIT}
          proOptions={{ hideAttribution: true }}
        >
          <Background gap={20} size={1} />
          <Controls showInteractive={false} aria-label="Zoom controls" />
          {laid.nodes.length > 16 && <MiniMap pannable zoomable ariaLabel="Minimap of the loop" nodeColor="#91a7ff" nodeStrokeWidth={2} className="lke-minimap" />}
        </ReactFlow>
        {dropTarget && (
          <div className={`lke-drop-hint${dropTarget.ok ? "" : " lke-drop-refused"}`} role="status" data-testid="drop-hint">
            {dropTarget.hint}
          </div>
        )}
        {message && (
          <div className="lke-drop-hint lke-drop-refused" role="alert" data-testid="drop-message">
            {message}
            <button type="button" className="lke-link" aria-label="Dismiss" onClick={() => setMessage(null)}>
              ×
            </button>
          </div>
        )}
        {menu && actions && (
          <div className="lke-context-menu" role="menu" ref={menuRef} style={{ left: menu.x, top: menu.y }} data-testid="context-menu" onKeyDown={(e) => e.key === "Escape" && setMenu(null)}>
            {menuStep && (
              <>
                <button type="button" role="menuitem" onClick={() => (actions.copy([menuStep]), setMenu(null))}>
                  Copy <kbd>Ctrl+C</kbd>
                </button>
                <button type="button" role="menuitem" onClick={() => (actions.duplicate(menuStep), setMenu(null))}>
                  Duplicate <kbd>Ctrl+D</kbd>
                </button>
              </>
            )}
            <button type="button" role="menuitem" disabled={!actions.canPaste()} onClick={() => (actions.paste(menuStep), setMenu(null))}>
              {menuStep ? "Paste after" : "Paste at the end"} <kbd>Ctrl+V</kbd>
            </button>
            {menuStep && (
              <button type="button" role="menuitem" className="lke-danger" onClick={() => (actions.remove(menuStep), setMenu(null))}>
                Delete <kbd>Del</kbd>
              </button>
            )}
          </div>
        )}
      </div>
    </GraphContext.Provider>
  );
}

const FIT = { padding: 0.12, maxZoom: 1, minZoom: 0.4 };

export const GraphCanvas = memo(function GraphCanvas(props: GraphCanvasProps) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
});
