import { describe, expect, it } from "vitest";
import { layoutGraph, loopToGraph, resolveKey } from "./graph";
import { newStep, stepKind } from "./steps";
import type { LoopData, StepData } from "./types";

const loop: LoopData = {
  name: "pr-review",
  trigger: { type: "cron", schedule: "0 9 * * 1-5" },
  pipeline: [
    { prompt: "Plan", label: "Planner" },
    { parallel: [{ prompt: "a", label: "Bug Review" }, { prompt: "b", label: "Security Review" }] },
    { when: "steps['Planner'].output", then: [{ approve: "Ship it?" }] },
  ],
  verify: { maker: ["Bug Review", "Security Review"], checker: "Adversarial Verifier", maxRounds: 2 },
  budget: { maxTokens: 500000, maxDurationMinutes: 30 },
};

describe("loop → graph", () => {
  const graph = loopToGraph(loop);
  const ids = graph.nodes.map((n) => n.id);

  it("has a node per step keyed by its path, plus trigger, verify, budget and memory", () => {
    expect(ids).toEqual(
      expect.arrayContaining(["trigger", "pipeline[0]", "pipeline[1]", "pipeline[1].parallel[0]", "pipeline[1].parallel[1]", "pipeline[1]#join", "pipeline[2]", "pipeline[2].then[0]", "verify", "end", "budget", "memory"]),
    );
    expect(graph.nodes.find((n) => n.id === "trigger")!.data.detail).toBe("0 9 * * 1-5");
    expect(graph.nodes.find((n) => n.id === "budget")!.data.detail).toBe("500,000 tokens · 30 min");
    expect(graph.nodes.find((n) => n.id === "memory")!.data.absent).toBe(true);
  });

  it("offers insert points on the flow edges and draws makers to the checker", () => {
    const insert = (source: string, target: string) => graph.edges.find((e) => e.source === source && e.target === target)!.data;
    expect(insert("trigger", "pipeline[0]")).toMatchObject({ listPath: "pipeline", index: 0 });
    expect(insert("pipeline[0]", "pipeline[1]")).toMatchObject({ listPath: "pipeline", index: 1 });
    expect(insert("pipeline[1]", "pipeline[1].parallel[1]")).toMatchObject({ listPath: "pipeline[1].parallel", index: 1, role: "branch" });
    expect(insert("pipeline[2]", "pipeline[2].then[0]")).toMatchObject({ listPath: "pipeline[2].then", index: 0, label: "then" });
    expect(insert("pipeline[2]#join", "verify")).toMatchObject({ listPath: "pipeline", index: 3 });
    expect(graph.edges.filter((e) => e.data?.role === "maker").map((e) => e.source)).toEqual(["pipeline[1].parallel[0]", "pipeline[1].parallel[1]"]);
  });

  it("lays parallel branches side by side and the pipeline top to bottom", () => {
    const laid = layoutGraph(graph);
    const at = (id: string) => laid.nodes.find((n) => n.id === id)!.position;
    expect(at("pipeline[1].parallel[0]").y).toBe(at("pipeline[1].parallel[1]").y);
    expect(at("pipeline[1].parallel[0]").x).not.toBe(at("pipeline[1].parallel[1]").x);
    expect(at("trigger").y).toBeLessThan(at("pipeline[0]").y);
    expect(at("pipeline[0]").y).toBeLessThan(at("pipeline[1].parallel[0]").y);
    expect(at("pipeline[2]").y).toBeLessThan(at("verify").y);
  });

  it("resolves run-page keys given as paths, labels or field paths", () => {
    const nodeIds = new Set(ids);
    expect(resolveKey(loop, nodeIds, "Security Review")).toBe("pipeline[1].parallel[1]");
    expect(resolveKey(loop, nodeIds, "pipeline[1].parallel[0].prompt")).toBe("pipeline[1].parallel[0]");
    expect(resolveKey(loop, nodeIds, "budget.maxTokens")).toBe("budget");
    expect(resolveKey(loop, nodeIds, "No Such Step")).toBeNull();
  });
});

describe("branch order", () => {
  it("keeps five parallel branches and then/else left to right in list order", () => {
    const labels = ["A", "B", "C", "D", "E"];
    const data: LoopData = {
      name: "x",
      pipeline: [
        { parallel: labels.map((label) => ({ prompt: label, label })) },
        { when: "x", then: [{ prompt: "t", label: "T" }, { prompt: "t2", label: "T2" }], else: [{ prompt: "e", label: "E2" }] },
      ],
    };
    const laid = layoutGraph(loopToGraph(data));
    const x = (id: string) => laid.nodes.find((n) => n.id === id)!.position.x;
    const xs = labels.map((_, i) => x(`pipeline[0].parallel[${i}]`));
    expect([...xs].sort((a, b) => a - b)).toEqual(xs);
    expect(x("pipeline[1].then[0]")).toBeLessThan(x("pipeline[1].else[0]"));
    expect(x("pipeline[1].then[1]")).toBe(x("pipeline[1].then[0]"));
  });
});

describe("the plan step", () => {
  const data: LoopData = {
    name: "checkout-investigation",
    pipeline: [
      {
        plan: "Find out why checkout fails for {{ inputs.customer }}.",
        label: "Investigate",
        planner: "lead",
        executor: "investigator",
        maxSteps: 3,
        maxIterations: 2,
        templates: { search_logs: { description: "Search logs", prompt: "{{ input }}" }, read_ticket: { description: "Read a ticket", prompt: "{{ input }}" } },
      },
      { prompt: "Write the note", label: "Note" },
    ],
    verify: { maker: ["Investigate"], checker: "judge" },
  };

  it("is a plan node showing its planner and allowed templates, not an unknown step", () => {
    expect(stepKind(data.pipeline && (data.pipeline as unknown as StepData[])[0])).toBe("plan");
    const graph = loopToGraph(data);
    const node = graph.nodes.find((n) => n.id === "pipeline[0]")!;
    expect(node.data).toMatchObject({ kind: "plan", title: "Investigate", planner: "lead", templates: ["search_logs", "read_ticket"], listPath: "pipeline", index: 0 });
    expect(node.data.detail).toBe("planner: @lead · templates: search_logs, read_ticket · ≤ 3 steps · ≤ 2 plans");
    expect(graph.nodes.some((n) => n.data.kind === "unknown")).toBe(false);
  });

  it("sits in the flow like a step: insert points around it, a maker edge to the checker", () => {
    const graph = loopToGraph(data);
    const insert = (source: string, target: string) => graph.edges.find((e) => e.source === source && e.target === target)!.data;
    expect(insert("trigger", "pipeline[0]")).toMatchObject({ listPath: "pipeline", index: 0 });
    expect(insert("pipeline[0]", "pipeline[1]")).toMatchObject({ listPath: "pipeline", index: 1 });
    expect(graph.edges.filter((e) => e.data?.role === "maker").map((e) => e.source)).toEqual(["pipeline[0]"]);
    const laid = layoutGraph(graph);
    expect(laid.nodes.find((n) => n.id === "pipeline[0]")).toMatchObject({ width: 230, height: 84 });
  });

  it("says when the planner is the built-in one and no template is allowed yet", () => {
    const node = loopToGraph({ name: "x", pipeline: [{ plan: "Go", templates: {} }] }).nodes.find((n) => n.id === "pipeline[0]")!;
    expect(node.data).toMatchObject({ kind: "plan", title: "Plan", planner: "", templates: [] });
    expect(node.data.detail).toBe("planner: built-in · templates: none");
  });

  it("a new plan step is valid-shaped: a task, a fresh label, one template and limits", () => {
    const step = newStep(data, "plan");
    expect(stepKind(step)).toBe("plan");
    expect(step).toMatchObject({ label: "Plan", maxSteps: 3, maxIterations: 2 });
    expect(Object.keys(step.templates as object)).toEqual(["research"]);
  });
});

describe("actions after verification and tool steps", () => {
  const data: LoopData = {
    name: "pr-review",
    pipeline: [
      { tool: "github.get_pull_diff", label: "Diff", arguments: { pull_number: "{{ trigger.payload.pull_request.number }}" } },
      { prompt: "Review {{ steps['Diff'].output }}", label: "Review" },
    ],
    verify: { maker: ["Review"], checker: "Adversarial Verifier" },
    onPass: [{ tool: "github.create_review", label: "Post Review", arguments: { body: "{{ steps['Review'].output }}" } }],
    onFail: [{ prompt: "Explain {{ verification.issues }}", label: "Explain" }],
  };
  const graph = loopToGraph(data);
  const edgeData = (source: string, target: string) => graph.edges.find((e) => e.source === source && e.target === target)?.data;

  it("draws a tool step as a tool node that names its tool", () => {
    expect(stepKind((data.pipeline as unknown as StepData[])[0])).toBe("tool");
    const node = graph.nodes.find((n) => n.id === "pipeline[0]")!;
    expect(node.data).toMatchObject({ kind: "tool", title: "Diff", detail: "calls github.get_pull_diff", listPath: "pipeline", index: 0 });
    expect(graph.nodes.some((n) => n.data.kind === "unknown")).toBe(false);
  });

  it("hangs onPass on the checker's pass edge and onFail on its fail edge, both ending at Done", () => {
    expect(edgeData("verify", "onPass[0]")).toMatchObject({ listPath: "onPass", index: 0, label: "pass" });
    expect(edgeData("onPass[0]", "end")).toMatchObject({ listPath: "onPass", index: 1 });
    expect(edgeData("verify", "onFail[0]")).toMatchObject({ listPath: "onFail", index: 0, label: "fail" });
    expect(edgeData("onFail[0]", "end")).toMatchObject({ listPath: "onFail", index: 1 });
    expect(edgeData("verify", "end")).toBeUndefined();
    const laid = layoutGraph(graph);
    const y = (id: string) => laid.nodes.find((n) => n.id === id)!.position.y;
    expect(y("verify")).toBeLessThan(y("onPass[0]"));
    expect(y("onPass[0]")).toBeLessThan(y("end"));
  });

  it("offers to add an onPass step on the pass edge when there is none", () => {
    const bare = loopToGraph({ ...data, onPass: undefined, onFail: undefined });
    expect(bare.edges.find((e) => e.id === "verify->end")!.data).toMatchObject({ listPath: "onPass", index: 0, label: "pass" });
  });

  it("runs onPass after the pipeline when there is no verification", () => {
    const plain = loopToGraph({ name: "x", pipeline: [{ prompt: "a", label: "A" }], onPass: [{ tool: "api.post", label: "Post" }] });
    const find = (s: string, t: string) => plain.edges.find((e) => e.source === s && e.target === t)?.data;
    expect(find("pipeline[0]", "onPass[0]")).toMatchObject({ listPath: "pipeline", index: 1 });
    expect(find("onPass[0]", "end")).toMatchObject({ listPath: "onPass", index: 1 });
  });

  it("resolves the run page's onPass keys and labels", () => {
    const ids = new Set(graph.nodes.map((n) => n.id));
    expect(resolveKey(data, ids, "onPass[0]")).toBe("onPass[0]");
    expect(resolveKey(data, ids, "Post Review")).toBe("onPass[0]");
    expect(resolveKey(data, ids, "onPass[0].arguments.body")).toBe("onPass[0]");
  });

  it("a new tool step calls the first tool the loop's connectors declare", () => {
    const withConnector: LoopData = { ...data, connectors: { github: { type: "http", baseUrl: "https://api.github.com", operations: { create_review: { path: "/x" } } } } };
    expect(newStep(withConnector, "tool")).toEqual({ tool: "github.create_review", label: "Tool" });
    expect(newStep({ name: "x", pipeline: [] }, "tool")).toEqual({ tool: "connector.tool", label: "Tool" });
  });
});
