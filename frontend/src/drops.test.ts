import { describe, expect, it } from "vitest";
import type { TeamDefinitions } from "./definitions";
import { duplicateStep, pasteSteps, planDrop, planMove, withUniqueLabels, type DropTarget } from "./drops";
import { loopToGraph } from "./graph";
import type { LoopData, StepData } from "./types";

const loop = (): LoopData => ({
  name: "l",
  trigger: { type: "manual" },
  pipeline: [
    { prompt: "Plan it", label: "Plan" },
    { parallel: [{ prompt: "a", label: "A" }, { prompt: "b", label: "B" }] },
    { when: "true", then: [{ prompt: "c", label: "C" }] },
    { sequential: [{ prompt: "d", label: "D" }] },
  ],
});

const defs: TeamDefinitions = {
  subagents: { reviewer: { definition: { role: "Reviews", connectors: ["github"] }, loops: ["other"], variants: 1 } },
  connectors: { github: { definition: { type: "mcp", command: "gh-mcp" }, loops: ["other"], variants: 1 } },
  skills: [{ name: "triage", description: "", source: "" }],
};

function edgeTo(data: LoopData, target: string, source?: string): DropTarget {
  const e = loopToGraph(data).edges.find((x) => x.target === target && (source === undefined || x.source === source))!;
  return { type: "edge", id: e.id, source: e.source, target: e.target, listPath: e.data?.listPath, index: e.data?.index };
}

describe("dropping palette items", () => {
  it("inserts a step where an edge is dropped on", () => {
    const r = planDrop(loop(), { type: "step", kind: "approval" }, edgeTo(loop(), "pipeline[1]"), defs);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect((r.data.pipeline as unknown as StepData[])[1].approve).toBeDefined();
    expect(r.select).toBe("pipeline[1]");
  });

  it("adds a member to a parallel or sequential group dropped on", () => {
    const par = planDrop(loop(), { type: "step", kind: "agent" }, { type: "node", id: "pipeline[1]", kind: "parallel" }, defs);
    expect(par.ok && ((par.data.pipeline as unknown as StepData[])[1].parallel as StepData[]).length).toBe(3);
    expect(par.ok && par.select).toBe("pipeline[1].parallel[2]");
    const seq = planDrop(loop(), { type: "step", kind: "tool" }, { type: "node", id: "pipeline[3]", kind: "sequential" }, defs);
    expect(seq.ok && ((seq.data.pipeline as unknown as StepData[])[3].sequential as StepData[])[1].tool).toBeDefined();
  });

  it("starts an else branch from the else edge of a condition without one", () => {
    const data = loop();
    const e = loopToGraph(data).edges.find((x) => x.id.endsWith(":else"))!;
    const r = planDrop(data, { type: "step", kind: "agent" }, { type: "edge", id: e.id, source: e.source, target: e.target }, defs);
    expect(r.ok && ((r.data.pipeline as unknown as StepData[])[2].else as StepData[]).length).toBe(1);
  });

  it("sets a subagent and adds skills and connectors on an agent step, copying definitions", () => {
    const sub = planDrop(loop(), { type: "subagent", name: "reviewer" }, { type: "node", id: "pipeline[0]", kind: "agent" }, defs);
    expect(sub.ok).toBe(true);
    if (!sub.ok) return;
    expect((sub.data.pipeline as unknown as StepData[])[0].subagent).toBe("reviewer");
    expect(Object.keys(sub.data.subagents as object)).toEqual(["reviewer"]);
    expect(Object.keys(sub.data.connectors as object)).toEqual(["github"]);
    const skill = planDrop(loop(), { type: "skill", name: "triage" }, { type: "node", id: "pipeline[1].parallel[0]", kind: "agent" }, defs);
    expect(skill.ok && ((skill.data.pipeline as unknown as StepData[])[1].parallel as StepData[])[0].skills).toEqual(["triage"]);
    const again = planDrop(skill.ok ? skill.data : loop(), { type: "skill", name: "triage" }, { type: "node", id: "pipeline[1].parallel[0]", kind: "agent", title: "A" }, defs);
    expect(again).toEqual({ ok: false, reason: "'A' already uses the skill 'triage'" });
  });

  it("inserts an agent step using a connector dropped on an edge", () => {
    const r = planDrop(loop(), { type: "connector", name: "github" }, edgeTo(loop(), "pipeline[0]"), defs);
    expect(r.ok && (r.data.pipeline as unknown as StepData[])[0]).toMatchObject({ connectors: ["github"], label: "Agent" });
  });

  it("refuses drops that do not map to the YAML, saying why", () => {
    const data = loop();
    const cases: [DropTarget, RegExp][] = [
      [{ type: "node", id: "pipeline[2]#join", kind: "join" }, /condition's join cannot take a step/],
      [{ type: "node", id: "pipeline[1]#join", kind: "join" }, /parallel group's join cannot take a step/],
      [{ type: "node", id: "pipeline[0]", kind: "agent" }, /agent step cannot hold other steps/],
      [{ type: "node", id: "pipeline[2]", kind: "conditional" }, /then or else/],
      [{ type: "node", id: "trigger", kind: "trigger" }, /trigger/],
      [edgeTo(data, "pipeline[1]#join", "pipeline[1].parallel[0]"), /parallel group's join/],
    ];
    for (const [target, reason] of cases) {
      const r = planDrop(data, { type: "step", kind: "agent" }, target, defs);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(reason);
    }
    const r = planDrop(data, { type: "subagent", name: "reviewer" }, { type: "node", id: "pipeline[1]", kind: "parallel" }, defs);
    expect(!r.ok && r.reason).toMatch(/drop it on an agent step/);
  });
});

describe("moving steps by drag", () => {
  it("moves a step into a group dropped on its header", () => {
    const r = planMove(loop(), "pipeline[0]", { type: "node", id: "pipeline[1]", kind: "parallel" });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(((r.data.pipeline as unknown as StepData[])[0].parallel as StepData[]).map((s) => s.label)).toEqual(["A", "B", "Plan"]);
    expect(r.select).toBe("pipeline[0].parallel[2]");
  });

  it("moves a step between groups through an edge", () => {
    const data = loop();
    const r = planMove(data, "pipeline[1].parallel[1]", edgeTo(data, "pipeline[3].sequential[0]"));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(((r.data.pipeline as unknown as StepData[])[3].sequential as StepData[]).map((s) => s.label)).toEqual(["B", "D"]);
    expect(r.select).toBe("pipeline[3].sequential[0]");
  });

  it("refuses to empty a group or to move a group into itself", () => {
    const out = planMove(loop(), "pipeline[3].sequential[0]", { type: "node", id: "pipeline[0]", kind: "agent" });
    expect(!out.ok && out.reason).toMatch(/only step of a group/);
    const self = planMove(loop(), "pipeline[1]", edgeTo(loop(), "pipeline[1].parallel[0]"));
    expect(!self.ok && self.reason).toMatch(/into itself/);
  });
});

describe("copy, paste and duplicate", () => {
  it("gives pasted steps and their members labels no step has", () => {
    const data = loop();
    const group = (data.pipeline as unknown as StepData[])[1];
    const copy = withUniqueLabels(data, group);
    expect((copy.parallel as StepData[]).map((s) => s.label)).toEqual(["A 2", "B 2"]);
    const twice = pasteSteps(data, [group, group], "pipeline[1]");
    expect(twice.paths).toEqual(["pipeline[2]", "pipeline[3]"]);
    expect(((twice.data.pipeline as unknown as StepData[])[3].parallel as StepData[]).map((s) => s.label)).toEqual(["A 3", "B 3"]);
  });

  it("duplicates a step right after it", () => {
    const r = duplicateStep(loop(), "pipeline[1].parallel[0]");
    expect(r.paths).toEqual(["pipeline[1].parallel[1]"]);
    expect(((r.data.pipeline as unknown as StepData[])[1].parallel as StepData[]).map((s) => s.label)).toEqual(["A", "A 2", "B"]);
  });

  it("pastes at the end of the pipeline when nothing is selected", () => {
    const r = pasteSteps(loop(), [{ prompt: "x", label: "Plan" }], null);
    expect(r.paths).toEqual(["pipeline[4]"]);
    expect((r.data.pipeline as unknown as StepData[])[4].label).toBe("Plan 2");
  });
});
