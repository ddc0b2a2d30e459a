import { describe, expect, it } from "vitest";
import webhookTrees from "./generated/webhooks.json";
import { completeTemplate, expressionStart, filterOptions, insertCompletion, isTemplateField, stepsBefore, templateOptions, type WebhookTrees } from "./templateCompletion";
import type { LoopData } from "./types";

const webhooks = webhookTrees as unknown as WebhookTrees;

const loop = (): LoopData => ({
  name: "pr-review",
  trigger: { type: "webhook", event: "pull_request" },
  inputs: { repo: { required: true, description: "owner/name" }, "dry-run": { default: false }, note: {} },
  memory: { store: "filesystem" },
  pipeline: [
    { tool: "github.get_pull_diff", label: "Diff", arguments: { repo: "{{ trigger.payload.repository.name }}" } },
    {
      parallel: [
        { prompt: "bugs", label: "Bug Review", output: { schema: { type: "object", properties: { verdict: { type: "string", description: "ok or not" }, score: { type: "number" } } } } },
        { prompt: "security", label: "Security Review" },
      ],
    },
    { when: "steps['Bug Review'].output.verdict == 'bad'", then: [{ prompt: "fix", label: "Fix" }] },
    { prompt: "summarise" },
  ],
  verify: { maker: ["Bug Review"], checker: "Adversarial Verifier" },
  onPass: [{ prompt: "post", label: "Post" }, { prompt: "notify", label: "Notify" }],
  onFail: [{ prompt: "alert", label: "Alert" }],
});

const labels = (data: LoopData, path: string, typed = "") => templateOptions(data, path, typed, webhooks).map((o) => o.label);

describe("template completion: what a template may read", () => {
  it("offers only the steps that finished before the template, in run order", () => {
    expect(stepsBefore(loop(), "pipeline[0].arguments.repo").map((s) => s.name)).toEqual([]);
    expect(stepsBefore(loop(), "pipeline[1].parallel[1].prompt").map((s) => s.name)).toEqual(["Diff"]);
    expect(stepsBefore(loop(), "pipeline[2].when").map((s) => s.name)).toEqual(["Diff", "Bug Review", "Security Review"]);
    expect(stepsBefore(loop(), "pipeline[3].prompt").map((s) => s.name)).toEqual(["Diff", "Bug Review", "Security Review", "Fix"]);
  });

  it("never offers the step itself, a parallel sibling or a later step", () => {
    const got = labels(loop(), "pipeline[1].parallel[0].prompt");
    expect(got).toContain("steps['Diff'].output");
    expect(got).not.toContain("steps['Bug Review'].output");
    expect(got).not.toContain("steps['Security Review'].output");
    expect(got).not.toContain("steps['Fix'].output");
  });

  it("offers the fields of a structured output", () => {
    const options = templateOptions(loop(), "pipeline[3].prompt", "", webhooks);
    const verdict = options.find((o) => o.label === "steps['Bug Review'].output.verdict");
    expect(verdict?.info).toBe("ok or not");
    expect(options.map((o) => o.label)).toContain("steps['Bug Review'].output.score");
    expect(options.map((o) => o.label)).not.toContain("steps['Security Review'].output.verdict");
  });

  it("says a step of a conditional branch must be guarded", () => {
    const fix = templateOptions(loop(), "pipeline[3].prompt", "", webhooks).find((o) => o.label === "steps['Fix'].output");
    expect(fix?.detail).toMatch(/guard it/);
    expect(fix?.info).toContain("{% if steps['Fix'] is defined %}");
  });

  it("names an unlabelled step by its path", () => {
    expect(labels(loop(), "onPass[0].prompt")).toContain("steps['pipeline[3]'].output");
  });

  it("offers the declared inputs, an optional one with a default filter", () => {
    const got = labels(loop(), "pipeline[3].prompt");
    expect(got).toContain("inputs.repo");
    expect(got).toContain("inputs['dry-run']");
    expect(got).toContain("inputs.note | default('')");
  });

  it("offers the memory keys the loop writes, and none without memory", () => {
    const got = labels(loop(), "pipeline[3].prompt");
    expect(got).toEqual(expect.arrayContaining(["memory['Diff']", "memory['Bug Review']", "memory['Post']", "memory['last_run']"]));
    expect(got).not.toContain("memory['Alert']"); // onFail steps are never remembered
    const { memory: _, ...without } = loop();
    expect(labels(without as LoopData, "pipeline[3].prompt").some((l) => l.startsWith("memory"))).toBe(false);
    expect(labels({ ...loop(), memory: { persistence: "minimal" } }, "pipeline[3].prompt").filter((l) => l.startsWith("memory"))).toEqual(["memory['last_run']"]);
  });

  it("offers round and feedback in the pipeline of a loop that verifies, verification in the actions", () => {
    expect(labels(loop(), "pipeline[1].parallel[0].prompt")).toEqual(expect.arrayContaining(["round", "feedback"]));
    expect(labels(loop(), "onPass[0].prompt")).not.toContain("feedback");
    expect(labels(loop(), "onPass[1].prompt")).toEqual(expect.arrayContaining(["verification.passed", "verification.issues", "steps['Post'].output"]));
    expect(labels(loop(), "onFail[0].prompt")).not.toContain("steps['Post'].output");
    const { verify: _, ...unverified } = loop();
    expect(labels(unverified as LoopData, "pipeline[3].prompt")).not.toContain("round");
  });

  it("walks the webhook event's payload one level at a time", () => {
    const top = labels(loop(), "pipeline[3].prompt", "trigger.pay");
    expect(top).toEqual(expect.arrayContaining(["trigger.payload.pull_request", "trigger.payload.repository", "trigger.payload.action"]));
    const below = labels(loop(), "pipeline[3].prompt", "trigger.payload.pull_request.he");
    expect(below).toContain("trigger.payload.pull_request.head");
    expect(below).toContain("trigger.payload.pull_request.title");
    expect(below).not.toContain("trigger.payload.repository");
    expect(labels(loop(), "pipeline[3].prompt", "trigger.payload.pull_request.head.")).toContain("trigger.payload.pull_request.head.sha");
    expect(labels(loop(), "pipeline[3].prompt", "trigger.payload.pull_request.labels[0].")).toContain("trigger.payload.pull_request.labels[0].name");
    expect(labels(loop(), "pipeline[3].prompt", "trigger.payload.no_such_key.x").filter((l) => l.startsWith("trigger.payload"))).toEqual([]);
  });

  it("offers task, input and results in a plan template's prompt", () => {
    const planned = { ...loop(), pipeline: [...(loop().pipeline as object[]), { plan: "do it", label: "Plan", templates: { fix: { description: "d", prompt: "p" } } }] } as unknown as LoopData;
    expect(labels(planned, "pipeline[4].templates.fix.prompt")).toEqual(expect.arrayContaining(["task", "input", "results", "steps['Diff'].output"]));
    expect(labels(planned, "pipeline[4].plan")).not.toContain("task");
  });

    it("offers a cron run's and an event's payload keys", () => {
    expect(labels({ ...loop(), trigger: { type: "cron", schedule: "0 9 * * *" } }, "pipeline[3].prompt")).toContain("trigger.payload.due_time");
    expect(labels({ ...loop(), trigger: { type: "event", loop: "other" } }, "pipeline[3].prompt")).toContain("trigger.payload.run_id");
    expect(labels({ ...loop(), trigger: { type: "manual" } }, "pipeline[3].prompt").some((l) => l.startsWith("trigger.payload"))).toBe(false);
  });
});

describe("template completion: where the expression starts", () => {
  it("completes only inside {{ }} or {% %}", () => {
    expect(expressionStart("Review {{ ")).toBe(10);
    expect(expressionStart("Review {{")).toBe(9);
    expect(expressionStart("Review {{ inputs.repo }} and ")).toBe(-1);
    expect(expressionStart("plain text")).toBe(-1);
    expect(expressionStart("{% if steps['Bug Re")).toBe(6);
  });

  it("keeps a quoted label with spaces in the expression", () => {
    const text = "{{ steps['Bug Review'].ou";
    expect(text.slice(expressionStart(text))).toBe("steps['Bug Review'].ou");
    expect("{{ x | default(inp".slice(expressionStart("{{ x | default(inp"))).toBe("inp");
  });

  it("gives the offset, what was typed and the options", () => {
    const got = completeTemplate(loop(), "pipeline[3].prompt", "Summarise {{ steps");
    expect(got?.from).toBe(13);
    expect(got?.typed).toBe("steps");
    expect(filterOptions(got!.options, got!.typed)[0].label).toMatch(/^steps\[/);
    expect(completeTemplate(loop(), "pipeline[3].prompt", "no template here")).toBeNull();
  });

  it("filters by prefix first, then by substring", () => {
    const got = filterOptions(templateOptions(loop(), "pipeline[3].prompt", "", webhooks), "review").map((o) => o.label);
    expect(got[0]).toBe("steps['Bug Review'].output");
    expect(got.every((l) => l.toLowerCase().includes("review"))).toBe(true);
  });

  it("knows which fields are templates", () => {
    expect(isTemplateField("pipeline[1].parallel[0].prompt")).toBe(true);
    expect(isTemplateField("pipeline[2].when")).toBe(true);
    expect(isTemplateField("pipeline[0].arguments.repo")).toBe(true);
    expect(isTemplateField("subagents.judge.prompt")).toBe(true);
    expect(isTemplateField("pipeline[0].label")).toBe(false);
    expect(isTemplateField("description")).toBe(false);
  });

  it("inserts a candidate and closes the expression when nothing closes it", () => {
    const option = { label: "steps['Diff'].output", detail: "step output" };
    expect(insertCompletion("Diff: {{", 8, 8, option)).toEqual({ text: "Diff: {{ steps['Diff'].output }}", caret: 32 });
    expect(insertCompletion("Diff: {{ ste }} end", 9, 12, option)).toEqual({ text: "Diff: {{ steps['Diff'].output }} end", caret: 29 });
    expect(insertCompletion("{% if ", 6, 6, option).text).toBe("{% if steps['Diff'].output %}");
  });
});
