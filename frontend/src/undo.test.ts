import { describe, expect, it } from "vitest";
import { COALESCE_MS, EditHistory, type Snapshot } from "./undo";

const snap = (yaml: string, source: "yaml" | "data" = "yaml"): Snapshot => ({ yaml, data: { name: yaml, pipeline: [] }, source });

describe("the shared undo history", () => {
  it("undoes and redoes edits from any view in order", () => {
    const h = new EditHistory();
    h.record(snap("a"), null, 0); // graph edit: a -> b
    h.record(snap("b", "data"), "yaml", 10); // typing: b -> c
    expect(h.undo(snap("c"))).toEqual(snap("b", "data"));
    expect(h.undo(snap("b", "data"))).toEqual(snap("a"));
    expect(h.undo(snap("a"))).toBeNull();
    expect(h.redo(snap("a"))).toEqual(snap("b", "data"));
    expect(h.redo(snap("b", "data"))).toEqual(snap("c"));
    expect(h.canRedo).toBe(false);
  });

  it("coalesces a typing burst but not graph actions", () => {
    const h = new EditHistory();
    h.record(snap("a"), "yaml", 0);
    h.record(snap("ab"), "yaml", 100);
    h.record(snap("abc"), "yaml", 200);
    h.record(snap("abcd"), "yaml", 200 + COALESCE_MS + 1); // a pause: a new step
    h.record(snap("x"), null, 5000);
    h.record(snap("y"), null, 5001);
    expect([h.undo(snap("z")), h.undo(snap("y")), h.undo(snap("x")), h.undo(snap("abcd")), h.undo(snap("a"))].map((s) => s?.yaml)).toEqual(["y", "x", "abcd", "a", undefined]);
  });

  it("drops the redo steps when a new edit is made", () => {
    const h = new EditHistory();
    h.record(snap("a"), null, 0);
    h.undo(snap("b"));
    h.record(snap("a"), "form", 10);
    expect(h.canRedo).toBe(false);
    expect(h.canUndo).toBe(true);
  });
});
