import { describe, expect, it } from "vitest";
import { scalarAt, yamlData } from "./yamlTree";

describe("reading the YAML view's text through the Lezer tree", () => {
  it("finds the field under the caret in mappings, sequences and block scalars", () => {
    const doc = "name: x\npipeline:\n  - label: A\n    prompt: Review {{ inputs.x }}\n  - parallel:\n      - prompt: |\n          hello {{ st";
    expect(scalarAt(doc, doc.length)).toEqual({ path: "pipeline[1].parallel[0].prompt", from: doc.indexOf("|"), quote: null });
    expect(scalarAt(doc, doc.indexOf("Review") + 3)?.path).toBe("pipeline[0].prompt");
    expect(scalarAt(doc, 7)?.path).toBe("name");
  });

  it("says which quote a quoted scalar uses", () => {
    const single = "pipeline:\n  - prompt: '{{ steps'";
    expect(scalarAt(single, single.length - 1)).toMatchObject({ path: "pipeline[0].prompt", quote: "'" });
    const double = 'when: "{{ a"';
    expect(scalarAt(double, double.length - 1)).toMatchObject({ path: "when", quote: '"' });
  });

  it("takes a prompt that parses as a flow mapping ({{ at its start) as the prompt", () => {
    const doc = "pipeline:\n  - prompt: {{ steps";
    expect(scalarAt(doc, doc.length)).toEqual({ path: "pipeline[0].prompt", from: doc.indexOf("{{"), quote: null });
  });

  it("reads the document's data: numbers, booleans, null, quoted and block strings", () => {
    const doc = "name: x\nbudget:\n  maxTokens: 5\n  maxCostUsd: 0.5\nverify:\n  maker: [A, 'B']\n  autoRetry: true\nmemory: ~\npipeline:\n  - prompt: |\n      line one\n      line two\n";
    expect(yamlData(doc)).toEqual({
      name: "x",
      budget: { maxTokens: 5, maxCostUsd: 0.5 },
      verify: { maker: ["A", "B"], autoRetry: true },
      memory: null,
      pipeline: [{ prompt: "line one\nline two\n" }],
    });
  });
});
