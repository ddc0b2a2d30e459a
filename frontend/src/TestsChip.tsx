// The save's replay of the loop's tests, beside the LRS badge: "Tests: 2/3 passed",
// linking to the loop page's list (runs.looptests; docs/testing.md, "In the web app").

export interface TestFailure {
  message: string;
  location: string;
  diff: string;
  kind: string;
}

export interface TestResult {
  test: string;
  passed: boolean;
  failures: TestFailure[];
}

/** What PUT /api/loops/{id} answers in `tests` when the loop has tests. */
export interface TestsSummary {
  version: number | null;
  total: number;
  passed: number;
  failed: number;
  results: TestResult[];
}

/** The chip's text and its tooltip (the first failure of each failed test). */
export function testsChipText(tests: TestsSummary): { text: string; title: string } {
  const failed = tests.results.filter((r) => !r.passed);
  const title = failed.length
    ? failed.map((r) => `${r.test}: ${r.failures[0]?.message ?? "failed"}`).join("\n")
    : `Every test replayed on v${tests.version ?? "?"} passed (no model call)`;
  return { text: `Tests: ${tests.passed}/${tests.total} passed`, title };
}

export function TestsChip({ tests, loopId }: { tests: TestsSummary | null; loopId: number | string | null | undefined }) {
  if (!tests || !tests.total || loopId == null) return null;
  const { text, title } = testsChipText(tests);
  return (
    <a
      href={`/loops/${loopId}/#tests`}
      className={`lke-lrs-badge lke-tests ${tests.failed ? "lke-tests-fail" : "lke-tests-pass"}`}
      data-testid="tests-chip"
      title={title}
    >
      {text}
    </a>
  );
}
