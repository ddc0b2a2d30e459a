import { describe, expect, it } from "vitest";
import { testsChipText } from "./TestsChip";

describe("the tests chip beside the LRS", () => {
  it("counts the passed tests and names each failed one's first failure", () => {
    const chip = testsChipText({
      version: 2,
      total: 2,
      passed: 1,
      failed: 1,
      results: [
        { test: "happy path", passed: true, failures: [] },
        {
          test: "edge",
          passed: false,
          failures: [{ message: "the request of step 'Bugs' (maker, round 1) is not in the cassette", location: "loops/x.yaml:6:17", diff: "", kind: "miss" }],
        },
      ],
    });
    expect(chip).toEqual({
      text: "Tests: 1/2 passed",
      title: "edge: the request of step 'Bugs' (maker, round 1) is not in the cassette",
    });
  });

  it("says every test passed on the version when none failed", () => {
    expect(testsChipText({ version: 3, total: 1, passed: 1, failed: 0, results: [{ test: "a", passed: true, failures: [] }] }).title).toBe(
      "Every test replayed on v3 passed (no model call)",
    );
  });
});
