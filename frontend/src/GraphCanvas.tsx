/** The loop graph (React Flow), shared by the editor and the read-only run graph. */
import {
  Background,
  BaseEdge,
  Controls,
  EdgeLabelRenderer,
  Handle,
  MarkerType,
  Position,
  ReactFlow,
  ReactFlowProvider,
  applyNodeChanges,
  getSmoothStepPath,
  useReactFlow,
  type EdgeProps,
  type NodeChange,
  type NodeProps,
} from "@xyflow/react";
import { createContext, memo, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";
import { layoutGraph, loopToGraph, resolveKey, type LoopEdge, type LoopNode } from "./graph";
import type { LoopData, NodeState, NodeStats, StepKind } from "./types";

export interface GraphActions {
  select(id: string | null): void;
  insert(listPath: string, index: number, kind: StepKind): void;
  remove(path: string): void;
  removeMany(paths: string[]): void;
  move(fromPath: string, toListPath: string, index: number): void;
}

interface Ctx {
  editable: boolean;
  actions?: GraphActions;
  states: Map<string, { state: NodeState; stats?: NodeStats }>;
  highlighted: Set<string>;
  invalid: Set<string>;
  selected: string | null;
}

const GraphContext = createContext<Ctx>({ editable: false, states: new Map(), highlighted: new Set(), invalid: new Set(), selected: null });

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
  return (
    <>
      <BaseEdge id={id} path={path} markerEnd={markerEnd} style={style} className={maker ? "lke-edge-maker" : "lke-edge"} />
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

function Canvas(props: GraphCanvasProps) {
  const { data, editable = false, actions } = props;
  // Keep unchanged nodes and edges as the same objects: React Flow then
  // skips them, and a text edit elsewhere in the loop redraws nothing here.
  const previous = useRef<{ nodes: LoopNode[]; edges: LoopEdge[] } | null>(null);
  const laid = useMemo(() => reuseUnchanged(previous.current, layoutGraph(loopToGraph(data))), [data]);
  useEffect(() => {
    previous.current = laid;
  }, [laid]);
  const [nodes, setNodes] = useState<LoopNode[]>(laid.nodes);
  const flow = useReactFlow<LoopNode, LoopEdge>();
  useEffect(() => setNodes(laid.nodes), [laid]);
  const count = laid.nodes.length;
  useEffect(() => {
    const timer = window.setTimeout(() => void flow.fitView({ padding: 0.12, maxZoom: 1 }), 0);
    return () => window.clearTimeout(timer);
  }, [count, flow]);
  const onNodesChange = useCallback((changes: NodeChange<LoopNode>[]) => {
    setNodes((current) => applyNodeChanges(changes.filter((c) => c.type !== "remove"), current));
  }, []);
  const onNodeDragStop = useCallback(
    (_event: unknown, node: LoopNode) => {
      const target = flow
        .getIntersectingNodes(node)
        .find((n) => n.data.listPath !== undefined && n.id !== node.id && !n.id.startsWith(`${node.id}.`));
      if (!actions || !target || node.data.listPath === undefined) {
        setNodes(laid.nodes);
        return;
      }
      const sideways = target.data.listPath!.endsWith(".parallel");
      const mid = (n: LoopNode, axis: "x" | "y") => n.position[axis] + ((axis === "x" ? n.width : n.height) ?? 0) / 2;
      const axis = sideways ? "x" : "y";
      const after = mid(node, axis) > mid(target, axis);
      actions.move(node.id, target.data.listPath!, target.data.index! + (after ? 1 : 0));
    },
    [actions, flow, laid],
  );
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
  const selected = props.selected ?? null;
  const ctx: Ctx = useMemo(
    () => ({ editable, actions, states, highlighted, invalid: invalid ?? new Set(), selected }),
    [editable, actions, states, highlighted, invalid, selected],
  );

  return (
    <GraphContext.Provider value={ctx}>
      <ReactFlow<LoopNode, LoopEdge>
        nodes={nodes}
        edges={laid.edges}
        nodeTypes={nodeTypes}
        edgeTypes={edgeTypes}
        onNodesChange={onNodesChange}
        onNodeClick={(_e, node) => {
          if (node.data.kind !== "join") props.onNodeClick?.(node.id);
          actions?.select(node.data.kind === "join" ? null : node.id);
        }}
        onPaneClick={() => actions?.select(null)}
        onNodeDragStop={editable ? onNodeDragStop : undefined}
        nodesDraggable={editable}
        nodesConnectable={false}
        edgesFocusable={false}
        deleteKeyCode={editable ? ["Delete", "Backspace"] : null}
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
        fitViewOptions={{ padding: 0.12, maxZoom: 1 }}
        proOptions={{ hideAttribution: true }}
      >
        <Background gap={20} size={1} />
        <Controls showInteractive={false} />
      </ReactFlow>
    </GraphContext.Provider>
  );
}

export const GraphCanvas = memo(function GraphCanvas(props: GraphCanvasProps) {
  return (
    <ReactFlowProvider>
      <Canvas {...props} />
    </ReactFlowProvider>
  );
});
