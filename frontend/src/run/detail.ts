/**
 * The detail panel of one node of the run page: what it was asked (the rendered
 * prompt), what it answered (parsed JSON shown as such), what it cost, its
 * retries, tool calls, the checker's verdicts per round (with the deterministic
 * checks that ran before the checker) and its error.
 */
import type { CheckOutcome, NodeDetail } from "./reducer";

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function section(box: HTMLElement, title: string, name: string): HTMLElement {
  const part = el("section", `detail-${name}`);
  part.dataset.part = name;
  part.appendChild(el("h3", "", title));
  box.appendChild(part);
  return part;
}

function ms(n: number): string {
  return n >= 1000 ? (n / 1000).toFixed(2) + " s" : Math.round(n) + " ms";
}

/** Return a JSON value as indented text (the output of a step with a schema). */
export function prettyJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** Return the text of one deterministic check's line: `[ok] name`, `[x] name (minor): why`. */
export function checkLine(c: CheckOutcome): string {
  const mark = c.skipped || c.passed === null ? "[-]" : c.passed ? "[ok]" : "[x]";
  const severity = c.passed === false && c.severity !== "blocker" ? ` (${c.severity})` : "";
  const why = c.message && c.passed !== true ? `: ${c.message}` : "";
  return `${mark} ${c.name}${severity}${why} · ${ms(c.durationMs)}`;
}

/** Return ` · checks: 2 passed, 1 failed` for a verification_round event's `checks` (none: ""). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function checksSummary(checks: any): string {
  if (!Array.isArray(checks) || !checks.length) return "";
  const passed = checks.filter((c) => c && c.passed === true).length;
  const failed = checks.filter((c) => c && c.passed === false).length;
  const skipped = checks.length - passed - failed;
  return ` · checks: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : "");
}

function renderChecks(checks: CheckOutcome[]): HTMLElement {
  const list = el("ul", "detail-checks");
  list.dataset.part = "checks";
  for (const c of checks) {
    const state = c.skipped || c.passed === null ? "skipped" : c.passed ? "pass" : "fail";
    const li = el("li", `check-${state}`, checkLine(c));
    li.dataset.check = c.name;
    list.appendChild(li);
  }
  return list;
}

export function renderDetail(box: HTMLElement, node: NodeDetail): void {
  box.replaceChildren();
  box.dataset.key = node.key;
  box.dataset.state = node.state;
  const head = el("h2", "detail-title", node.label);
  head.appendChild(el("small", "detail-state", ` ${node.state}`));
  box.appendChild(head);

  const facts = el("dl", "detail-facts");
  const fact = (name: string, value: string) => {
    facts.appendChild(el("dt", "", name));
    const dd = el("dd", "", value);
    dd.dataset.fact = name;
    facts.appendChild(dd);
  };
  fact("kind", node.kind);
  if (node.model) fact("model", node.model);
  if (node.round > 1) fact("round", String(node.round));
  fact("tokens", `${node.tokensIn} in / ${node.tokensOut} out`);
  fact("cost", node.cost === undefined ? "—" : node.cost === null ? "unknown" : "$" + node.cost.toFixed(4));
  fact("duration", node.durationMs === null ? "—" : ms(node.durationMs));
  fact("retries", String(node.retries.length));
  if (node.lostCalls) fact("lost calls", `${node.lostCalls} (a worker died mid-call: paid, cost unknown)`);
  box.appendChild(facts);

  if (node.error) section(box, "Error", "error").appendChild(el("pre", "error", node.error));

  if (node.prompt !== null) section(box, "Prompt", "prompt").appendChild(el("pre", "detail-text", node.prompt));

  if (node.output !== null) {
    const part = section(box, node.value !== undefined ? "Output (JSON)" : "Output", "output");
    const pre = el("pre", "detail-text", node.value !== undefined ? prettyJson(node.value) : node.output);
    pre.dataset.json = node.value !== undefined ? "true" : "false";
    part.appendChild(pre);
  }

  if (node.retries.length) {
    const list = el("ol", "detail-retries");
    for (const r of node.retries) list.appendChild(el("li", "", `attempt ${r.attempt}: ${r.error}${r.code ? ` (${r.code})` : ""}`));
    section(box, "Retries", "retries").appendChild(list);
  }

  if (node.toolCalls.length) {
    const list = el("ol", "detail-tools");
    for (const call of node.toolCalls) {
      const li = el("li", call.isError ? "tool-error" : "");
      li.appendChild(el("code", "tool-name", call.name));
      li.appendChild(el("pre", "tool-args", JSON.stringify(call.arguments ?? {}, null, 2)));
      li.appendChild(el("pre", "tool-result", call.dryRun ? "dry run: not called" : (call.isError ? "error: " : "") + call.result));
      li.appendChild(el("small", "tool-duration", ms(call.durationMs)));
      list.appendChild(li);
    }
    section(box, "Tool calls", "tools").appendChild(list);
  }

  if (node.verdicts.length) {
    const list = el("ol", "detail-verdicts");
    for (const v of node.verdicts) {
      const verdict = v.skipped ? "SKIPPED" : v.passed ? "PASS" : "FAIL";
      const score = v.score === null ? "?" : v.score.toFixed(2);
      const li = el("li", v.passed ? "pass" : "fail", `round ${v.round}/${v.maxRounds} · ${v.checker}: ${verdict} (score ${score})`);
      if (v.checks.length) li.appendChild(renderChecks(v.checks));
      if (v.issues.length || v.minor.length) {
        const issues = el("ul", "");
        for (const issue of v.issues) issues.appendChild(el("li", "", issue));
        for (const issue of v.minor) issues.appendChild(el("li", "minor", `${issue} (minor)`));
        li.appendChild(issues);
      }
      if (v.reason) li.appendChild(el("p", "", v.reason));
      if (v.stalled) li.appendChild(el("p", "", "Stalled: the checker repeated issues of an earlier round."));
      list.appendChild(li);
    }
    section(box, "Checker's verdicts", "verdicts").appendChild(list);
  }
}
