import { describe, expect, it } from "vitest";
import { decodeString, encodeString, isAttributeName, referencesTo, renameReferences, renameRefusal, renameStep, rewriteReferences } from "./rename";
import { iterSteps } from "./steps";
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

/** A loop that refers to "Review" from every kind of template the engine renders. */
const everywhere = (): LoopData => ({
  name: "refs",
  pipeline: [
    { prompt: "Review the diff", label: "Review" },
    { prompt: "Second opinion", label: "Review 2" },
    {
      when: "steps['Review'].output | length > 0 and steps['Review 2'].output != ''",
      then: [{ prompt: "Fix what {{ steps.Review.output }} found; ignore {{ steps['Review 2'].output }}.", label: "Fix" }],
      else: [{ approve: "Ship it? {{ steps[\"Review\"].output }}", label: "Gate" }],
    },
    {
      plan: "Follow up on {{ memory.get('Review', '(none)') }}",
      label: "Plan",
      templates: { research: { description: "Research", prompt: "{{ input }} given {{ steps['Review'].output }}" } },
    },
  ],
  subagents: { judge: { role: "verifier", prompt: "Last time: {{ memory['Review'] }}" } },
  verify: { maker: ["Review", "Review 2"], checker: "judge" },
});

describe("rewriting one template", () => {
  it("rewrites each quoting form and keeps the author's quote", () => {
    const source = "{{ steps['Old'].output }} {{ steps[\"Old\"].output }} {{ steps.Old.output }} {{ memory.get('Old', 'none') }}";
    expect(rewriteReferences(source, "template", "Old", "New")).toBe(
      "{{ steps['New'].output }} {{ steps[\"New\"].output }} {{ steps.New.output }} {{ memory.get('New', 'none') }}",
    );
  });

  it("turns steps.Old into a subscript when the new label is not an identifier", () => {
    expect(rewriteReferences("{{ steps.Old.output }}", "template", "Old", "New Label")).toBe("{{ steps['New Label'].output }}");
    expect(rewriteReferences("{{ memory.Old }}", "template", "Old", "items")).toBe("{{ memory['items'] }}");
    expect(rewriteReferences("{{ steps.Old }}", "template", "Old", "true")).toBe("{{ steps['true'] }}");
    expect(rewriteReferences("{{ steps.Old }}", "template", "Old", "Naïve")).toBe("{{ steps['Naïve'] }}");
  });

  it("escapes quotes and backslashes in the new label", () => {
    expect(rewriteReferences("{{ steps['Old'] }}", "template", "Old", "Bob's Review")).toBe(`{{ steps["Bob's Review"] }}`);
    expect(rewriteReferences(`{{ steps["Old"] }}`, "template", "Old", 'Say "hi"')).toBe(`{{ steps['Say "hi"'] }}`);
    expect(rewriteReferences("{{ steps['Old'] }}", "template", "Old", `It's "x"`)).toBe(`{{ steps['It\\'s "x"'] }}`);
    expect(rewriteReferences("{{ steps.Old }}", "template", "Old", "a\\b")).toBe("{{ steps['a\\\\b'] }}");
  });

  it("finds a label written with escapes", () => {
    expect(rewriteReferences("{{ steps['Bob\\'s'] }}", "template", "Bob's", "Bob")).toBe("{{ steps['Bob'] }}");
    expect(rewriteReferences("{{ steps['\\x41\\u00e9'] }}", "template", "Aé", "B")).toBe("{{ steps['B'] }}");
  });

  it("leaves a label that only starts with the old one alone", () => {
    const source = "{{ steps['Review 2'].output }} {{ steps['Review'].output }} {{ steps.Reviewer }} {{ steps['Rev'] }}";
    expect(rewriteReferences(source, "template", "Review", "Audit")).toBe(
      "{{ steps['Review 2'].output }} {{ steps['Audit'].output }} {{ steps.Reviewer }} {{ steps['Rev'] }}",
    );
  });

  it("rewrites only Jinja syntax, not the words of the prompt", () => {
    const source = "Review steps['Review'] as before. {# steps['Review'] #}{% raw %}{{ steps['Review'] }}{% endraw %}{{ 'steps[\"Review\"]' }} {{ steps['Review'] }}";
    expect(rewriteReferences(source, "template", "Review", "Audit")).toBe(
      "Review steps['Review'] as before. {# steps['Review'] #}{% raw %}{{ steps['Review'] }}{% endraw %}{{ 'steps[\"Review\"]' }} {{ steps['Audit'] }}",
    );
  });

  it("rewrites statements, whitespace control and spaced subscripts", () => {
    const source = "{%- if steps [ 'Old' ] .output -%}{{- steps.Old.output -}}{% endif %}{% set x = {'k': steps['Old']} %}{{ x }}";
    expect(rewriteReferences(source, "template", "Old", "New")).toBe(
      "{%- if steps [ 'New' ] .output -%}{{- steps.New.output -}}{% endif %}{% set x = {'k': steps['New']} %}{{ x }}",
    );
  });

  it("does not take other variables or dict methods for references", () => {
    const source = "{{ my_steps['Old'] }} {{ loop.steps['Old'] }} {{ steps.items() }} {{ steps['Old' ~ '2'] }} {{ steps.get('Old' ~ x) }}";
    expect(rewriteReferences(source, "template", "Old", "New")).toBe(source);
    expect(rewriteReferences("{{ steps.get }}", "template", "get", "New")).toBe("{{ steps.get }}");
  });

  it("reads a when: condition as one expression", () => {
    expect(rewriteReferences("steps.Old.output == 'Old' and steps['Old'].round > 1", "expression", "Old", "New one")).toBe(
      "steps['New one'].output == 'Old' and steps['New one'].round > 1",
    );
  });

  it("keeps a template that does not parse as it is after the broken part", () => {
    expect(rewriteReferences("{{ steps['Old'] }} {{ steps['Old", "template", "Old", "New")).toBe("{{ steps['New'] }} {{ steps['Old");
    expect(rewriteReferences("no template at all", "template", "Old", "New")).toBe("no template at all");
  });
});

describe("string literals", () => {
  it("encodes and decodes labels with quotes, backslashes and newlines", () => {
    for (const value of ["plain", "Bob's", 'say "hi"', `both ' and "`, "back\\slash", "two\nlines", "tab\there", "é ü 日本"]) {
      expect(decodeString(encodeString(value))).toBe(value);
      expect(decodeString(encodeString(value, '"'))).toBe(value);
    }
    expect(encodeString("Bob's")).toBe(`"Bob's"`);
    expect(decodeString("'\\101\\n\\q'")).toBe("A\n\\q");
  });

  it("writes steps.X only for names Jinja reads as that step", () => {
    expect(["Review", "_x", "review_2"].map(isAttributeName)).toEqual([true, true, true]);
    expect(["Bug Review", "2nd", "get", "items", "none", "__class__", "Naïve"].map(isAttributeName)).toEqual([false, false, false, false, false, false, false]);
  });
});

describe("renaming a step", () => {
  it("updates every reference: prompts, when:, plans, approvals, subagents and the makers", () => {
    const data = everywhere();
    expect(referencesTo(data, "Review")).toEqual([
      "pipeline[2].when",
      "pipeline[2].then[0].prompt",
      "pipeline[2].else[0].approve",
      "pipeline[3].plan",
      "pipeline[3].templates.research.prompt",
      "subagents.judge.prompt",
      "verify.maker[0]",
    ]);
    const out = renameStep(data, "pipeline[0]", "First Review");
    expect(out.pipeline).toEqual([
      { prompt: "Review the diff", label: "First Review" },
      { prompt: "Second opinion", label: "Review 2" },
      {
        when: "steps['First Review'].output | length > 0 and steps['Review 2'].output != ''",
        then: [{ prompt: "Fix what {{ steps['First Review'].output }} found; ignore {{ steps['Review 2'].output }}.", label: "Fix" }],
        else: [{ approve: 'Ship it? {{ steps["First Review"].output }}', label: "Gate" }],
      },
      {
        plan: "Follow up on {{ memory.get('First Review', '(none)') }}",
        label: "Plan",
        templates: { research: { description: "Research", prompt: "{{ input }} given {{ steps['First Review'].output }}" } },
      },
    ]);
    expect(out.subagents).toEqual({ judge: { role: "verifier", prompt: "Last time: {{ memory['First Review'] }}" } });
    expect(out.verify).toEqual({ maker: ["First Review", "Review 2"], checker: "judge" });
    expect(referencesTo(out, "Review")).toEqual([]);
    expect(data).toEqual(everywhere()); // the input is not changed
  });

  it("renames back to the loop it started from, steps.X staying a subscript once the label needed one", () => {
    const there = renameStep(everywhere(), "pipeline[0]", "Audit");
    expect(renameStep(there, "pipeline[0]", "Review")).toEqual(everywhere());
    const spaced = renameStep(renameStep(everywhere(), "pipeline[0]", "First Review"), "pipeline[0]", "Review");
    const fix = (spaced.pipeline as unknown as JsonObject[])[2].then as JsonObject[];
    expect(fix[0].prompt).toBe("Fix what {{ steps['Review'].output }} found; ignore {{ steps['Review 2'].output }}.");
  });

  it("renames the label in the verify makers, a single maker too, and a cleared label leaves them", () => {
    const out = renameStep(prReview(), "pipeline[0].parallel[0]", "Bugs");
    expect(iterSteps(out)[1].step.label).toBe("Bugs");
    expect((out.verify as { maker: string[] }).maker).toEqual(["Bugs", "Security Review", "Quality Review"]);
    const cleared = renameStep(prReview(), "pipeline[0].parallel[0]", undefined);
    expect("label" in iterSteps(cleared)[1].step).toBe(false);
    expect((cleared.verify as { maker: string[] }).maker).toContain("Bug Review");
    const single = renameStep({ ...prReview(), verify: { maker: "Bug Review" } } as unknown as LoopData, "pipeline[0].parallel[0]", "Bugs");
    expect(single.verify).toEqual({ maker: "Bugs" });
    expect(referencesTo({ ...prReview(), verify: { maker: "Bug Review" } } as unknown as LoopData, "Bug Review")).toEqual(["verify.maker"]);
  });

  it("labels an unlabelled step and moves the references to its path along", () => {
    const data: LoopData = {
      name: "x",
      pipeline: [{ prompt: "a" }, { prompt: "Use {{ steps['pipeline[0]'].output }}", label: "B" }],
    };
    expect(renameStep(data, "pipeline[0]", "A").pipeline).toEqual([{ prompt: "a", label: "A" }, { prompt: "Use {{ steps['A'].output }}", label: "B" }]);
  });

  it("renames the step of verify.checks and the references in a tool check's arguments and expect", () => {
    // One maker named as a string (the engine takes it; the schema lists an array).
    const data = {
      name: "checked",
      pipeline: [{ prompt: "Write", label: "Writer" }],
      verify: {
        maker: "Writer",
        checker: "Adversarial Verifier",
        checks: [
          { step: "Writer", regex: "^#" },
          { tool: "ci.run", arguments: { body: "{{ steps.Writer.output }}", tags: ["{{ steps['Writer'].round }}", 3] }, expect: "result.ok and steps.Writer.output != ''" },
        ],
      },
    } as unknown as LoopData;
    expect(referencesTo(data, "Writer")).toEqual([
      "verify.checks[1].arguments.body",
      "verify.checks[1].arguments.tags[0]",
      "verify.checks[1].expect",
      "verify.maker",
      "verify.checks[0].step",
    ]);
    const out = renameReferences(data, "Writer", "Author");
    expect(out.verify).toEqual({
      maker: "Author",
      checker: "Adversarial Verifier",
      checks: [
        { step: "Author", regex: "^#" },
        { tool: "ci.run", arguments: { body: "{{ steps.Author.output }}", tags: ["{{ steps['Author'].round }}", 3] }, expect: "result.ok and steps.Author.output != ''" },
      ],
    });
  });

  it("leaves the loop as it is when nothing refers to the step", () => {
    const data = everywhere();
    const out = renameReferences(data, "Nobody", "Somebody");
    expect(out.pipeline).toBe(data.pipeline);
    expect(out.subagents).toBe(data.subagents);
  });
});

describe("refusing a rename", () => {
  it("refuses a label another step has and accepts its own or a free one", () => {
    expect(renameRefusal(prReview(), "pipeline[0].parallel[0]", "Security Review")).toBe(
      "Not renamed: another step (pipeline[0].parallel[1]) is labelled 'Security Review'. Labels must be unique.",
    );
    expect(renameRefusal(prReview(), "pipeline[0].parallel[0]", "Bug Review")).toBeNull();
    expect(renameRefusal(prReview(), "pipeline[0].parallel[0]", "Security")).toBeNull();
    expect(renameRefusal(prReview(), "pipeline[0].parallel[0]", undefined)).toBeNull();
  });
});

describe("onPass, onFail and tool steps", () => {
  const data = (): LoopData => ({
    name: "x",
    pipeline: [{ prompt: "Review", label: "Review" }],
    verify: { maker: ["Review"], checker: "Adversarial Verifier" },
    onPass: [{ tool: "github.comment", label: "Post", arguments: { body: "{{ steps['Review'].output }}", labels: ["{{ steps.Review.output | length }}"], number: 3 } }],
    onFail: [{ prompt: "Explain why {{ steps['Review'].output }} failed", label: "Explain" }],
  });

  it("finds and renames the references in the actions and in tool arguments", () => {
    expect(referencesTo(data(), "Review")).toEqual(["onPass[0].arguments.body", "onPass[0].arguments.labels[0]", "onFail[0].prompt", "verify.maker[0]"]);
    const out = renameStep(data(), "pipeline[0]", "Code Review");
    expect(out.onPass).toEqual([
      { tool: "github.comment", label: "Post", arguments: { body: "{{ steps['Code Review'].output }}", labels: ["{{ steps['Code Review'].output | length }}"], number: 3 } },
    ]);
    expect((out.onFail as unknown as JsonObject[])[0].prompt).toBe("Explain why {{ steps['Code Review'].output }} failed");
  });

  it("keeps labels unique across the pipeline and the actions", () => {
    expect(renameRefusal(data(), "pipeline[0]", "Explain")).toBe("Not renamed: another step (onFail[0]) is labelled 'Explain'. Labels must be unique.");
  });
});
