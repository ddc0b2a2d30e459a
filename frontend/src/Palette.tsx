/**
 * The palette beside the canvas: step kinds and the team's subagents, skills
 * and connectors. Drag an item onto the canvas, or (keyboard) press Enter on
 * it and choose where it goes from the list of places that accept it.
 */
import { memo, useEffect, useMemo, useRef, useState, type KeyboardEvent } from "react";
import { pickable, type TeamDefinitions } from "./definitions";
import { edgeInsertPoint, itemName, type DropTarget, type PaletteItem } from "./drops";
import { loopToGraph, type LoopNode } from "./graph";
import { PALETTE_MIME, paletteDrag } from "./GraphCanvas";
import { asObject, asStringList } from "./steps";
import type { LoopData, StepKind } from "./types";

const STEP_ITEMS: [StepKind, string, string][] = [
  ["agent", "Agent", "A model call with a prompt"],
  ["parallel", "Parallel", "Branches that run at the same time"],
  ["sequential", "Sequential", "Steps that run one after another"],
  ["conditional", "Condition", "Then / else on a Jinja expression"],
  ["approval", "Approval", "Wait for a person to approve"],
  ["plan", "Plan", "A planner picks the steps"],
  ["tool", "Tool call", "Call a connector's tool, no model"],
];

export interface Place {
  target: DropTarget;
  label: string;
}

function nodeName(n: LoopNode | undefined): string {
  if (!n) return "?";
  if (n.data.kind === "join") return "the join";
  return n.data.title;
}

/** The places an item can go, top to bottom: edges (insert), groups (add a member), agent steps (use a resource). */
export function placesFor(data: LoopData, item: PaletteItem): Place[] {
  const graph = loopToGraph(data);
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const out: Place[] = [];
  for (const n of graph.nodes) {
    const kind = n.data.kind;
    const target: DropTarget = { type: "node", id: n.id, kind, title: n.data.title };
    if (item.type === "step" && (kind === "parallel" || kind === "sequential")) out.push({ target, label: `Into ${n.data.title} (as its last member)` });
    if (item.type !== "step" && (kind === "agent" || (item.type === "subagent" && kind === "plan"))) {
      out.push({ target, label: item.type === "subagent" ? `On ${n.data.title} (${kind === "plan" ? "planner" : "run as"} @${item.name})` : `On ${n.data.title} (add the ${item.type})` });
    }
    for (const e of graph.edges) {
      if (e.source !== n.id || e.data?.role === "maker") continue;
      const edge: DropTarget = { type: "edge", id: e.id, source: e.source, target: e.target, listPath: e.data?.listPath, index: e.data?.index };
      if (typeof edgeInsertPoint(edge) === "string") continue;
      const branch = e.data?.label ? ` (${e.data.label})` : "";
      out.push({ target: edge, label: `Between ${nodeName(n)} and ${nodeName(byId.get(e.target))}${branch}` });
    }
  }
  return out;
}

interface PaletteProps {
  data: LoopData;
  defs: TeamDefinitions;
  selected: string | null;
  drop(item: PaletteItem, target: DropTarget): void;
  /** Mark the place being chosen on the canvas (null: none). */
  point(id: string | null): void;
}

export const Palette = memo(function Palette({ data, defs, selected, drop, point }: PaletteProps) {
  const [armed, setArmed] = useState<{ item: PaletteItem; key: string } | null>(null);
  const skills = useMemo(() => Array.from(new Set([...defs.skills.map((s) => s.name), ...Object.keys(asObject(data.skills) ?? {}), ...asStringList(data.skills)])), [defs, data.skills]);
  const groups: [string, "subagent" | "skill" | "connector", string[]][] = [
    ["Subagents", "subagent", pickable(data, "subagents", defs)],
    ["Skills", "skill", skills],
    ["Connectors", "connector", pickable(data, "connectors", defs)],
  ];
  const itemButton = (item: PaletteItem, key: string, label: string, title: string) => (
    <li key={key}>
      <button
        type="button"
        draggable
        className={`lke-palette-item lke-palette-${item.type}${item.type === "step" ? ` lke-node-${item.kind}` : ""}`}
        data-testid={`palette-${key}`}
        data-palette-key={key}
        title={`${title}. Drag onto the graph, or press Enter and choose where.`}
        aria-haspopup="listbox"
        aria-expanded={armed?.key === key}
        onDragStart={(e) => {
          paletteDrag.item = item;
          e.dataTransfer.setData(PALETTE_MIME, JSON.stringify(item));
          e.dataTransfer.setData("text/plain", itemName(item));
          e.dataTransfer.effectAllowed = "copy";
        }}
        onDragEnd={() => {
          paletteDrag.item = null;
        }}
        onClick={() => setArmed((a) => (a?.key === key ? null : { item, key }))}
      >
        {label}
      </button>
      {armed?.key === key && (
        <PlaceChooser
          data={data}
          item={item}
          selected={selected}
          point={point}
          done={(target) => {
            setArmed(null);
            point(null);
            if (target) drop(item, target);
            document.querySelector<HTMLButtonElement>(`[data-palette-key="${CSS.escape(key)}"]`)?.focus();
          }}
        />
      )}
    </li>
  );
  return (
    <nav className="lke-palette" aria-label="Palette: drag onto the graph, or press Enter on an item to choose where it goes" data-testid="palette">
      <h3 id="lke-palette-steps">Steps</h3>
      <ul aria-labelledby="lke-palette-steps">{STEP_ITEMS.map(([kind, label, title]) => itemButton({ type: "step", kind }, `step-${kind}`, label, title))}</ul>
      {groups.map(([heading, type, names]) => (
        <section key={type}>
          <h3 id={`lke-palette-${type}`}>{heading}</h3>
          {names.length ? (
            <ul aria-labelledby={`lke-palette-${type}`}>{names.map((name) => itemButton({ type, name }, `${type}-${name}`, name, `The ${type} ${name}`))}</ul>
          ) : (
            <p className="lke-muted lke-palette-empty">none defined</p>
          )}
        </section>
      ))}
    </nav>
  );
});

/** A listbox of the places an item can go; arrows move, Enter puts it there, Escape cancels. */
function PlaceChooser({ data, item, selected, point, done }: { data: LoopData; item: PaletteItem; selected: string | null; point(id: string | null): void; done(target: DropTarget | null): void }) {
  const places = useMemo(() => placesFor(data, item), [data, item]);
  const initial = useMemo(() => {
    // Start at "after the selected step" (or on it, for a subagent, skill or connector).
    const at = places.findIndex((p) => (p.target.type === "edge" ? p.target.source === selected : p.target.id === selected));
    return Math.max(at, 0);
  }, [places, selected]);
  const [active, setActive] = useState(initial);
  const box = useRef<HTMLUListElement>(null);
  useEffect(() => box.current?.focus(), []);
  useEffect(() => {
    point(places[active]?.target.id ?? null);
    box.current?.querySelector(`[data-index="${active}"]`)?.scrollIntoView({ block: "nearest" });
  }, [active, places, point]);
  const onKey = (e: KeyboardEvent) => {
    const go = (to: (a: number) => number) => {
      e.preventDefault();
      setActive((a) => Math.max(0, Math.min(places.length - 1, to(a))));
    };
    if (e.key === "ArrowDown") go((a) => a + 1);
    else if (e.key === "ArrowUp") go((a) => a - 1);
    else if (e.key === "Home") go(() => 0);
    else if (e.key === "End") go(() => places.length - 1);
    else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      done(places[active]?.target ?? null);
    } else if (e.key === "Escape" || e.key === "Tab") {
      e.preventDefault();
      done(null);
    }
  };
  return (
    <ul
      ref={box}
      className="lke-places"
      role="listbox"
      tabIndex={0}
      aria-label={`Where to put the ${itemName(item)}`}
      aria-activedescendant={places.length ? `lke-place-${active}` : undefined}
      onKeyDown={onKey}
      onBlur={(e) => !e.currentTarget.contains(e.relatedTarget as Node) && done(null)}
      data-testid="palette-places"
    >
      {places.length === 0 && <li className="lke-muted">No place takes it</li>}
      {places.map((p, i) => (
        <li
          key={`${p.target.type}:${p.target.id}`}
          id={`lke-place-${i}`}
          data-index={i}
          role="option"
          aria-selected={i === active}
          className={i === active ? "lke-place-active" : ""}
          onMouseDown={(e) => e.preventDefault()}
          onClick={() => done(p.target)}
        >
          {p.label}
        </li>
      ))}
    </ul>
  );
}
