import { describe, expect, it } from "vitest";
import { applyMergePatch, patchLoop } from "./mergePatch";
import { formatPath, parsePath } from "./paths";
import { freshLabel, insertStep, iterSteps, labelIndex, moveStep, owningStep, removeStep, removeSteps } from "./steps";
import type { JsonObject, LoopData } from "./types";

const prReview = (): LoopData => ({
  name: "pr-review",
  trigger: { type: "webhook", event: "pull_request" },
  pipeline: [
    {
      parallel: [
        { prompt: "Review for correctness bugs", label: "Bug Review" },
        { prompt: "Review for security vulnerabilities", label: "Security Review" },
        { prompt: "Review for code quality", label: "Quality Review" },
      ],
    },
  ],
  verify: { maker: ["Bug Review", "Security Review", "Quality Review"], checker: "Adversarial Verifier", maxRounds: 3 },
});

describe("paths", () => {
  it("round-trips the engine's field paths", () => {
    for (const text of ["pipeline[0].parallel[2].prompt", "subagents['a b'].role", "verify.maker[1]"]) {
      expect(formatPath(parsePath(text))).toBe(text);
    }
    expect(parsePath("pipeline[0].then[1]")).toEqual(["pipeline", 0, "then", 1]);
  });

  it("finds the step that owns a field path", () => {
    expect(owningStep("pipeline[0].parallel[2].prompt")).toBe("pipeline[0].parallel[2]");
    expect(owningStep("pipeline[1]")).toBe("pipeline[1]");
    expect(owningStep("verify.maker[0]")).toBeNull();
  });
});

describe("step edits", () => {
  it("adds a parallel branch without touching the input", () => {
    const data = prReview();
    const out = insertStep(data, "pipeline[0].parallel", 99, { prompt: "Performance", label: "Performance Review" });
    expect(iterSteps(out).map((e) => e.path)).toEqual([
      "pipeline[0]",
      "pipeline[0].parallel[0]",
      "pipeline[0].parallel[1]",
      "pipeline[0].parallel[2]",
      "pipeline[0].parallel[3]",
    ]);
    expect(iterSteps(data)).toHaveLength(4);
  });

  it("removes a step and its label from the makers", () => {
    const out = removeStep(prReview(), "pipeline[0].parallel[1]");
    expect(labelIndex(out).has("Security Review")).toBe(false);
    expect(out.verify).toEqual({ maker: ["Bug Review", "Quality Review"], checker: "Adversarial Verifier", maxRounds: 3 });
  });

  it("removes a group left empty and an empty else", () => {
    const data: LoopData = {
      name: "x",
      pipeline: [
        { prompt: "a", label: "A" },
        { when: "true", then: [{ prompt: "b", label: "B" }], else: [{ prompt: "c", label: "C" }] },
      ],
    };
    const noElse = removeStep(data, "pipeline[1].else[0]");
    expect(noElse.pipeline).toEqual([{ prompt: "a", label: "A" }, { when: "true", then: [{ prompt: "b", label: "B" }] }]);
    const noCondition = removeStep(noElse, "pipeline[1].then[0]");
    expect(noCondition.pipeline).toEqual([{ prompt: "a", label: "A" }]);
  });

  it("reorders within a list and moves between lists", () => {
    const data: LoopData = {
      name: "x",
      pipeline: [
        { prompt: "a", label: "A" },
        { prompt: "b", label: "B" },
        { parallel: [{ prompt: "c", label: "C" }, { prompt: "d", label: "D" }] },
      ],
    };
    const swapped = moveStep(data, "pipeline[0]", "pipeline", 2);
    expect((swapped.pipeline as { label?: string }[]).map((s) => s.label)).toEqual(["B", "A", undefined]);
    const intoGroup = moveStep(data, "pipeline[0]", "pipeline[2].parallel", 1);
    expect(iterSteps(intoGroup).map((e) => e.step.label ?? e.path)).toEqual(["B", "pipeline[1]", "C", "A", "D"]);
    expect(moveStep(data, "pipeline[1]", "pipeline", 1)).toBe(data);
  });
});

describe("merge patch (RFC 7386)", () => {
  it("adds, replaces and removes members", () => {
    const data = prReview();
    const out = patchLoop(data, { budget: { maxTokens: 100000 }, verify: { maxRounds: null } });
    expect(out.budget).toEqual({ maxTokens: 100000 });
    expect(out.verify).toEqual({ maker: ["Bug Review", "Security Review", "Quality Review"], checker: "Adversarial Verifier" });
    expect(applyMergePatch({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
  });
});

describe("new step labels", () => {
  it("numbers a label that is taken from 2 on", () => {
    const one = insertStep(prReview(), "pipeline", 1, { prompt: "x", label: freshLabel(prReview()) });
    expect(freshLabel(prReview())).toBe("Agent");
    expect(freshLabel(one)).toBe("Agent 2");
  });
});

describe("removing several steps", () => {
  it("removes siblings and a group with its members whatever the order given", () => {
    const labels = (d: LoopData) => iterSteps(d).map((e) => e.step.label ?? e.path);
    expect(labels(removeSteps(prReview(), ["pipeline[0].parallel[0]", "pipeline[0].parallel[2]"]))).toEqual(["pipeline[0]", "Security Review"]);
    const data: LoopData = { name: "x", pipeline: [{ prompt: "a", label: "A" }, { parallel: [{ prompt: "b", label: "B" }, { prompt: "c", label: "C" }] }] };
    expect(labels(removeSteps(data, ["pipeline[1]", "pipeline[1].parallel[1]"]))).toEqual(["A"]);
  });
});

describe("the actions after verification", () => {
  const data: LoopData = {
    name: "x",
    pipeline: [{ prompt: "a", label: "A" }],
    onPass: [{ tool: "api.post", label: "Post" }],
    onFail: [{ prompt: "b", label: "B" }],
  };

  it("are steps like the pipeline's: listed, labelled, owning their fields", () => {
    expect(iterSteps(data).map((e) => [e.path, e.kind])).toEqual([
      ["pipeline[0]", "agent"],
      ["onPass[0]", "tool"],
      ["onFail[0]", "agent"],
    ]);
    expect(labelIndex(data).get("Post")).toBe("onPass[0]");
    expect(freshLabel(data, "Post")).toBe("Post 2");
    expect(owningStep("onPass[0].arguments.body")).toBe("onPass[0]");
    expect(owningStep("onFail[0].prompt")).toBe("onFail[0]");
  });

  it("take inserts, moves and deletes", () => {
    const added = insertStep(data, "onPass", 1, { prompt: "c", label: "C" });
    expect((added.onPass as unknown as JsonObject[]).map((s) => s.label)).toEqual(["Post", "C"]);
    const moved = moveStep(added, "onPass[1]", "pipeline", 1);
    expect((moved.pipeline as unknown as JsonObject[]).map((s) => s.label)).toEqual(["A", "C"]);
    expect(removeStep(data, "onPass[0]").onPass).toEqual([]);
  });
});
