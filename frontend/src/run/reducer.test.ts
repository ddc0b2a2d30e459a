import { describe, expect, it } from "vitest";
import { checkLine, checksSummary } from "./detail";
import { applyEvent, costLabel, elapsedSeconds, initialView, settle, type RunEvent } from "./reducer";

const steps = [
  { key: "pipeline[0]", label: "Draft", kind: "agent" },
  { key: "pipeline[1]", label: "Route", kind: "conditional" },
  { key: "pipeline[1].then[0]", label: "Fix", kind: "agent" },
  { key: "pipeline[1].else[0]", label: "Ship", kind: "agent" },
  { key: "pipeline[2]", label: "Sign off", kind: "approval" },
];

let seq = 0;
function ev(type: string, payload: Record<string, unknown>): RunEvent {
  seq += 1;
  return { seq, type, payload };
}

function states(view: ReturnType<typeof initialView>): Record<string, string> {
  return Object.fromEntries(Array.from(view.nodes.values()).map((n) => [n.label, n.state]));
}

describe("the run page's reducer", () => {
  it("shows an untaken branch as skipped and a finished step as done once the run ends", () => {
    const view = initialView(steps, "queued", false);
    applyEvent(view, ev("run_started", { at: 100 }));
    applyEvent(view, ev("step_started", { key: "pipeline[0]", label: "Draft", prompt: "Write a haiku" }));
    applyEvent(view, ev("step_finished", { key: "pipeline[0]", label: "Draft", tokens: { input: 5, output: 7 }, cost: 0.5, duration_ms: 12, output: "ok" }));
    applyEvent(view, ev("step_started", { key: "pipeline[1]", label: "Route" }));
    applyEvent(view, ev("step_finished", { key: "pipeline[1]", label: "Route", output: null }));
    applyEvent(view, ev("step_started", { key: "pipeline[1].then[0]", label: "Fix" }));
    applyEvent(view, ev("step_finished", { key: "pipeline[1].then[0]", label: "Fix", output: "fixed" }));
    expect(states(view)).toEqual({ Draft: "done", Route: "done", Fix: "done", Ship: "queued", "Sign off": "queued" });
    applyEvent(view, ev("run_finished", { status: "succeeded", at: 109 }));
    expect(states(view)).toEqual({ Draft: "done", Route: "done", Fix: "done", Ship: "skipped", "Sign off": "skipped" });
    const draft = view.nodes.get("pipeline[0]")!;
    expect([draft.prompt, draft.output, draft.tokensIn, draft.tokensOut, draft.cost, draft.durationMs]).toEqual(["Write a haiku", "ok", 5, 7, 0.5, 12]);
  });

  it("shows a rejected approval as rejected, not done", () => {
    const view = initialView(steps, "running", false);
    applyEvent(view, ev("approval_requested", { key: "pipeline[2]", label: "Sign off", question: "Ship?" }));
    expect(view.status).toBe("waiting_for_approval");
    applyEvent(view, ev("approval_resolved", { key: "pipeline[2]", label: "Sign off", approved: false, reason: "not yet" }));
    applyEvent(view, ev("step_finished", { key: "pipeline[2]", label: "Sign off", kind: "approval", branch: "rejected", output: null }));
    applyEvent(view, ev("run_finished", { status: "failed" }));
    const node = view.nodes.get("pipeline[2]")!;
    expect([node.state, node.error, view.status]).toEqual(["rejected", "not yet", "failed"]);
  });

  it("keeps a suspended run waiting until its gate is resolved after the resume", () => {
    const view = initialView(steps, "running", false);
    applyEvent(view, ev("approval_requested", { key: "pipeline[2]", label: "Sign off", question: "Ship?" }));
    applyEvent(view, ev("run_suspended", { key: "pipeline[2]", reason: "waiting for approval of 'Sign off'" }));
    expect(view.status).toBe("waiting_for_approval");
    applyEvent(view, ev("run_started", { resumed: true }));
    expect(view.status).toBe("waiting_for_approval");
    expect(view.nodes.get("pipeline[2]")!.state).toBe("running");
    applyEvent(view, ev("approval_resolved", { key: "pipeline[2]", label: "Sign off", approved: true, by: "alice" }));
    expect(view.status).toBe("running");
  });

  it("cancels the steps a cancelled run interrupted and fails the group around a failed step", () => {
    const view = initialView(
      [
        { key: "pipeline[0]", label: "Both", kind: "parallel" },
        { key: "pipeline[0].parallel[0]", label: "A", kind: "agent" },
        { key: "pipeline[0].parallel[1]", label: "B", kind: "agent" },
        { key: "pipeline[1]", label: "C", kind: "agent" },
      ],
      "running",
      true,
    );
    applyEvent(view, ev("step_started", { key: "pipeline[0]", label: "Both" }));
    applyEvent(view, ev("step_started", { key: "pipeline[0].parallel[0]", label: "A" }));
    applyEvent(view, ev("step_started", { key: "pipeline[0].parallel[1]", label: "B" }));
    applyEvent(view, ev("step_failed", { key: "pipeline[0].parallel[1]", label: "B", error: "timeout", code: "provider", attempt: 1, will_retry: true }));
    expect(view.nodes.get("pipeline[0].parallel[1]")!.state).toBe("running");
    const before = initialView([{ key: "x", label: "X", kind: "agent" }], "running", false);
    applyEvent(before, ev("step_started", { key: "x", label: "X" }));
    applyEvent(before, ev("run_finished", { status: "cancelled" }));
    expect(states(before)).toEqual({ X: "cancelled" });

    applyEvent(view, ev("step_failed", { key: "pipeline[0].parallel[1]", label: "B", error: "boom", code: "provider", attempt: 2, will_retry: false }));
    applyEvent(view, ev("run_finished", { status: "failed" }));
    expect(states(view)).toEqual({ Both: "failed", A: "cancelled", B: "failed", C: "skipped", verify: "skipped" });
    const b = view.nodes.get("pipeline[0].parallel[1]")!;
    expect([b.error, b.retries]).toEqual(["boom", [{ attempt: 1, error: "timeout", code: "provider" }]]);
  });

  it("settles a finished run's nodes when told its status without a run_finished event", () => {
    const view = initialView(steps, "failed", false);
    applyEvent(view, ev("step_started", { key: "pipeline[0]", label: "Draft" }));
    expect(settle(view, "cancelled").map((n) => n.label)).toEqual(["Draft", "Route", "Fix", "Ship", "Sign off"]);
    expect(states(view)).toEqual({ Draft: "cancelled", Route: "skipped", Fix: "skipped", Ship: "skipped", "Sign off": "skipped" });
  });

  it("fails the step a run's own error stopped, with that error", () => {
    const view = initialView(steps, "running", false);
    applyEvent(view, ev("step_started", { key: "pipeline[0]", label: "Draft" }));
    applyEvent(view, ev("run_finished", { status: "budget_exceeded", error: "maxModelCalls of 1 exceeded" }));
    const draft = view.nodes.get("pipeline[0]")!;
    expect([draft.state, draft.error]).toEqual(["failed", "maxModelCalls of 1 exceeded"]);
  });

  it("parses a structured output and keeps free text as text", () => {
    const view = initialView(steps, "running", false);
    applyEvent(view, ev("step_finished", { key: "pipeline[0]", label: "Draft", output: '{"title": "Hi", "n": 2}', structured: true }));
    applyEvent(view, ev("step_finished", { key: "pipeline[1].then[0]", label: "Fix", output: '{"not": "parsed"}' }));
    expect(view.nodes.get("pipeline[0]")!.value).toEqual({ title: "Hi", n: 2 });
    expect(view.nodes.get("pipeline[1].then[0]")!.value).toBeUndefined();
  });

  it("keeps the checker's verdicts per round and the tool calls of a planned step under its plan step", () => {
    const view = initialView([{ key: "pipeline[0]", label: "Investigate", kind: "plan" }], "running", true);
    applyEvent(view, ev("tool_called", { key: "pipeline[0].plan[1][0]", label: "Investigate 1.1", name: "search", arguments: { q: "x" }, result: "3 lines", duration_ms: 42 }));
    applyEvent(view, ev("verification_round", { round: 1, max_rounds: 2, checker: "critic", passed: false, score: 0.2, issues: ["too short"], will_retry: true, tokens: { input: 3, output: 4 }, cost: 0.1 }));
    expect(view.nodes.get("verify")!.state).toBe("running");
    applyEvent(view, ev("verification_round", { round: 2, max_rounds: 2, checker: "critic", passed: true, score: 0.9, tokens: { input: 1, output: 1 }, cost: 0.1 }));
    const verify = view.nodes.get("verify")!;
    expect(verify.verdicts.map((v) => [v.round, v.passed, v.issues])).toEqual([[1, false, ["too short"]], [2, true, []]]);
    expect([verify.state, verify.tokensIn, verify.tokensOut]).toEqual(["done", 4, 5]);
    expect(view.nodes.get("pipeline[0]")!.toolCalls.map((c) => [c.name, c.result, c.durationMs])).toEqual([["search", "3 lines", 42]]);
  });

  it("keeps a round's deterministic checks with its verdict, and a tool check's call on the verify node", () => {
    const view = initialView([{ key: "pipeline[0]", label: "Reporter", kind: "agent" }], "running", true);
    applyEvent(view, ev("tool_called", { key: "verify.checks[1]", label: null, name: "ci__run_tests", arguments: { branch: "main" }, result: "{}", is_error: false, duration_ms: 30 }));
    applyEvent(
      view,
      ev("verification_round", {
        round: 1,
        max_rounds: 1,
        checker: "Adversarial Verifier",
        passed: false,
        score: null,
        issues: ["check 'shape': $.title: 'title' is a required property"],
        reason: "deterministic checks failed ('shape'): the checker was not asked",
        checks: [
          { name: "shape", kind: "schema", passed: false, message: "$.title: 'title' is a required property", severity: "blocker", duration_ms: 0.4, skipped: false },
          { name: "tests pass", kind: "tool", passed: true, message: null, severity: "major", duration_ms: 31, skipped: false },
          { name: "no TODO", kind: "regex", passed: null, message: "step 'Polisher' has not run: nothing to check", severity: "minor", duration_ms: 0, skipped: true },
        ],
      }),
    );
    const verify = view.nodes.get("verify")!;
    expect(verify.state).toBe("failed");
    expect(verify.error).toBe("deterministic checks failed ('shape'): the checker was not asked");
    expect(verify.toolCalls.map((c) => c.name)).toEqual(["ci__run_tests"]);
    const [v] = verify.verdicts;
    expect(v.checks.map((c) => [c.name, c.passed, c.skipped])).toEqual([
      ["shape", false, false],
      ["tests pass", true, false],
      ["no TODO", null, true],
    ]);
    expect(v.checks.map(checkLine)).toEqual([
      "[x] shape: $.title: 'title' is a required property · 0 ms",
      "[ok] tests pass · 31 ms",
      "[-] no TODO: step 'Polisher' has not run: nothing to check · 0 ms",
    ]);
  });

  it("reads a round without checks (an older event) as having none", () => {
    const view = initialView([], "running", true);
    applyEvent(view, ev("verification_round", { round: 1, max_rounds: 1, checker: "c", passed: true, score: 0.9 }));
    expect(view.nodes.get("verify")!.verdicts[0].checks).toEqual([]);
    expect(checksSummary(undefined)).toBe("");
    expect(checksSummary([{ passed: true }, { passed: false }, { passed: null, skipped: true }])).toBe(" · checks: 1 passed, 1 failed, 1 skipped");
  });

  it("keeps a round's minor issues apart from its blocking ones, and a stalled round", () => {
    const view = initialView([{ key: "pipeline[0]", label: "Writer", kind: "agent" }], "running", true);
    applyEvent(view, ev("verification_round", { round: 1, max_rounds: 3, checker: "critic", passed: false, score: 0.5, issues: ["no tests"], minor: ["typo"], will_retry: true }));
    applyEvent(view, ev("verification_round", { round: 2, max_rounds: 3, checker: "critic", passed: false, score: 0.6, issues: ["no tests"], stalled: true }));
    const verify = view.nodes.get("verify")!;
    expect(verify.verdicts.map((v) => [v.issues, v.minor, v.stalled])).toEqual([
      [["no tests"], ["typo"], false],
      [["no tests"], [], true],
    ]);
    expect([verify.state, verify.error]).toEqual(["failed", "no tests"]);
  });

  it("counts the calls a dead worker lost, per run and per step, and the step runs again", () => {
    const view = initialView(
      [
        { key: "pipeline[0]", label: "Both", kind: "parallel" },
        { key: "pipeline[0].parallel[0]", label: "A", kind: "agent" },
        { key: "pipeline[0].parallel[1]", label: "B", kind: "agent" },
      ],
      "running",
      false,
    );
    applyEvent(view, ev("step_started", { key: "pipeline[0].parallel[0]", label: "A", kind: "agent" }));
    applyEvent(view, ev("step_started", { key: "pipeline[0].parallel[1]", label: "B", kind: "agent" }));
    applyEvent(view, ev("run_recovered", { attempt: 2 }));
    const touched = applyEvent(
      view,
      ev("calls_lost", {
        calls: 2,
        attempt: 1,
        steps: [
          { key: "pipeline[0].parallel[0]", label: "A", round: 1 },
          { key: "pipeline[0].parallel[1]", label: "B", round: 1 },
        ],
      }),
    );
    expect(touched.map((n) => n.label)).toEqual(["A", "B"]);
    expect([view.lostCalls, view.nodes.get("pipeline[0].parallel[0]")!.lostCalls]).toEqual([2, 1]);
    applyEvent(view, ev("step_started", { key: "pipeline[0].parallel[0]", label: "A", kind: "agent" }));
    applyEvent(view, ev("step_finished", { key: "pipeline[0].parallel[0]", label: "A", kind: "agent", output: "ok" }));
    expect(view.nodes.get("pipeline[0].parallel[0]")!.state).toBe("done");
  });

  it("says a cost with lost calls as its known part and what it lacks", () => {
    expect(costLabel(0.0123, true, 0)).toBe("$0.0123");
    expect(costLabel(0.0123, false, 0)).toBe("unknown");
    expect(costLabel(0.0123, true, 1)).toBe("$0.0123 + 1 lost call (cost unknown)");
    expect(costLabel(0.5, true, 3)).toBe("$0.5000 + 3 lost calls (cost unknown)");
    expect(costLabel(0, false, 2)).toBe("unknown (and 2 lost calls)");
  });

  it("stops the clock at the run's end", () => {
    const view = initialView(steps, "running", false);
    applyEvent(view, ev("run_started", { at: 1000 }));
    expect(elapsedSeconds(view, 1030)).toBe(30);
    applyEvent(view, ev("run_finished", { status: "succeeded", at: 1009 }));
    expect(elapsedSeconds(view, 5000)).toBe(9);
  });
});

describe("the actions after verification", () => {
  it("puts onPass steps under their group and keeps a dry run's would-be call as not made", () => {
    const view = initialView(
      [
        { key: "onPass", label: "onPass", kind: "sequential" },
        { key: "onPass[0]", label: "Post Review", kind: "tool" },
      ],
      "running",
      true,
    );
    applyEvent(view, ev("step_started", { key: "onPass", label: "onPass", kind: "sequential", round: 1 }));
    applyEvent(view, ev("step_started", { key: "onPass[0]", label: "Post Review", kind: "tool", round: 1 }));
    applyEvent(view, ev("tool_called", { key: "onPass[0]", label: "Post Review", name: "github.create_review", arguments: { body: "LGTM" }, result: "", dry_run: true }));
    applyEvent(view, ev("step_finished", { key: "onPass[0]", label: "Post Review", kind: "tool", round: 1, output: "<github.create_review result>" }));
    const node = view.nodes.get("onPass[0]")!;
    expect(node.state).toBe("done");
    expect(node.toolCalls.map((c) => [c.name, c.dryRun, c.arguments])).toEqual([["github.create_review", true, { body: "LGTM" }]]);
  });
});
