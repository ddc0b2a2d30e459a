/**
 * One undo/redo history for the whole editor: an edit made in the graph, the
 * form or the YAML view is undone from any of them. An entry is the editor's
 * state before the edit: the YAML text, the loop data and which of the two
 * was the truth (typed YAML keeps its comments; after a graph or form edit
 * the data is, and the YAML shown is the server's canonical dump of it).
 */
import type { LoopData } from "./types";

export interface Snapshot {
  yaml: string;
  data: LoopData | null;
  source: "yaml" | "data";
}

/** Edits of the same kind closer together than this are one undo step (a typing burst). */
export const COALESCE_MS = 1000;
const LIMIT = 300;

export class EditHistory {
  private past: Snapshot[] = [];
  private future: Snapshot[] = [];
  private lastKey: string | null = null;
  private lastAt = -Infinity;

  /**
   * Record the state before an edit. `key` names a kind of typing ("yaml",
   * "form"): an edit with the same key as the previous one within
   * COALESCE_MS joins it. A null key (a graph action) is always its own step.
   */
  record(before: Snapshot, key: string | null, now: number): void {
    const joins = key !== null && key === this.lastKey && now - this.lastAt < COALESCE_MS && this.past.length > 0;
    this.lastKey = key;
    this.lastAt = now;
    this.future = [];
    if (joins) return;
    this.past.push(before);
    if (this.past.length > LIMIT) this.past.shift();
  }

  /** Step back: returns the state to restore (and keeps `current` for redo), or null. */
  undo(current: Snapshot): Snapshot | null {
    const previous = this.past.pop();
    if (!previous) return null;
    this.future.push(current);
    this.lastKey = null;
    return previous;
  }

  redo(current: Snapshot): Snapshot | null {
    const next = this.future.pop();
    if (!next) return null;
    this.past.push(current);
    this.lastKey = null;
    return next;
  }

  /** Forget everything (a version loaded from the server). */
  clear(): void {
    this.past = [];
    this.future = [];
    this.lastKey = null;
  }

  get canUndo(): boolean {
    return this.past.length > 0;
  }

  get canRedo(): boolean {
    return this.future.length > 0;
  }
}
