/** The Loop Readiness Score: score, grade, the 7 dimensions and findings with one-click fixes. */
import type { JsonObject, LrsReport } from "./types";

const MARK = { ok: "[ok]", warn: "[!]", block: "[x]" } as const;

export function LrsBadge({ lrs, stale }: { lrs: LrsReport | null; stale: boolean }) {
  if (!lrs) return <span className="lke-lrs-badge lke-grade-none">LRS –</span>;
  return (
    <span className={`lke-lrs-badge lke-grade-${lrs.grade}${stale ? " lke-stale" : ""}`} data-testid="lrs-badge" title={stale ? "The YAML has errors: this is the last valid score" : "Loop Readiness Score"}>
      LRS {lrs.score}/100 · {lrs.grade}
    </span>
  );
}

export function LrsPanel({ lrs, stale, seq, readOnly, onFix }: { lrs: LrsReport | null; stale: boolean; seq: number; readOnly: boolean; onFix(patch: JsonObject): void }) {
  if (!lrs) return <div className="lke-lrs" data-testid="lrs-panel" data-lrs-seq={seq}><p className="lke-muted">No score yet: the loop does not load.</p></div>;
  return (
    <div className={`lke-lrs${stale ? " lke-stale" : ""}`} data-testid="lrs-panel" data-lrs-seq={seq}>
      <div className="lke-lrs-head">
        <span className="lke-lrs-score" data-testid="lrs-score">{lrs.score}</span>
        <span className={`lke-lrs-grade lke-grade-${lrs.grade}`} data-testid="lrs-grade">{lrs.grade}</span>
        {stale && <span className="lke-muted">last valid score (the loop has errors)</span>}
      </div>
      <ul className="lke-dimensions">
        {lrs.dimensions.map((d) => (
          <li key={d.key} data-dimension={d.key}>
            <span className="lke-dim-name">{d.name}</span>
            <span className="lke-dim-bar">
              <span style={{ width: `${d.max ? (100 * d.points) / d.max : 0}%` }} />
            </span>
            <span className="lke-dim-points">
              {d.points}/{d.max}
            </span>
          </li>
        ))}
      </ul>
      <ul className="lke-findings">
        {lrs.findings.map((f, i) => (
          <li key={i} className={`lke-finding lke-finding-${f.level}`}>
            <span className="lke-mark">{MARK[f.level]}</span>
            <span>
              {f.message}
              {f.hint && <span className="lke-hint"> {f.hint}</span>}
            </span>
            {f.fix && !readOnly && (
              <button type="button" className="lke-fix" onClick={() => onFix(f.fix!.patch)}>
                {f.fix.label}
              </button>
            )}
          </li>
        ))}
      </ul>
    </div>
  );
}
