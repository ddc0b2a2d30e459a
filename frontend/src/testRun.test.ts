import { describe, expect, it } from "vitest";
import { applyEvent, initialView } from "./run/reducer";
import { graphStates, pinName, testRunSteps } from "./TestRun";
import type { LoopData } from "./types";

const draft: LoopData = {
  name: "draft",
  pipeline: [
    { parallel: [{ prompt: "a", label: "Bugs" }, { prompt: "b" }] },
    { when: "true", then: [{ prompt: "c", label: "Fix" }] },
  ],
  verify: { maker: ["Bugs"], checker: "Checker" },
  onPass: [{ tool: "github.comment", label: "Post" }],
};

describe("test runs in the editor", () => {
  it("lists a draft's steps as the run page does: path, label or else the path, kind", () => {
    expect(testRunSteps(draft)).toEqual([
      { key: "pipeline[0]", label: "pipeline[0]", kind: "parallel" },
      { key: "pipeline[0].parallel[0]", label: "Bugs", kind: "agent" },
      { key: "pipeline[0].parallel[1]", label: "pipeline[0].parallel[1]", kind: "agent" },
      { key: "pipeline[1]", label: "pipeline[1]", kind: "conditional" },
      { key: "pipeline[1].then[0]", label: "Fix", kind: "agent" },
      { key: "onPass[0]", label: "Post", kind: "tool" },
    ]);
  });

  it("pins a step under its label, an unlabelled one under its path (as the engine looks them up)", () => {
    expect(pinName({ key: "pipeline[0].parallel[0]", label: "Bugs" })).toBe("Bugs");
    expect(pinName({ key: "pipeline[0].parallel[1]", label: "" })).toBe("pipeline[0].parallel[1]");
  });

  it("gives the graph each node's state, with tokens, cost and time once it has finished", () => {
    const view = initialView(testRunSteps(draft), "queued", true);
    applyEvent(view, { seq: 1, type: "step_started", payload: { key: "pipeline[0].parallel[1]", label: null } });
    applyEvent(view, {
      seq: 2,
      type: "step_finished",
      payload: { key: "pipeline[0].parallel[0]", label: "Bugs", tokens: { input: 10, output: 5 }, cost: 0.5, duration_ms: 1200, output: "x", pinned: true },
    });
    const states = graphStates(view);
    expect(states.get("pipeline[0].parallel[0]")).toEqual({ state: "done", stats: { tokens: 15, cost: 0.5, durationMs: 1200 } });
    expect(states.get("pipeline[0].parallel[1]")).toEqual({ state: "running", stats: undefined });
    expect(states.get("verify")?.state).toBe("queued");
    expect(graphStates(null).size).toBe(0);
    const pinned = graphStates(view, new Set(["pipeline[0].parallel[0]"]));
    expect(pinned.get("pipeline[0].parallel[0]")?.stats).toEqual({ tokens: 15, cost: 0.5, durationMs: 1200, pinned: true });
  });
});
