/** The Loop Readiness Score: score, grade, the 7 dimensions and findings with one-click fixes. */
import type { JsonObject, LrsReport } from "./types";

const MARK = { ok: "[ok]", warn: "[!]", block: "[x]" } as const;

export function LrsBadge({ lrs, stale }: { lrs: LrsReport | null; stale: boolean }) {
  if (!lrs) return <span className="lk-lrs-badge lk-grade-none">LRS –</span>;
  return (
    <span className={`lk-lrs-badge lk-grade-${lrs.grade}${stale ? " lk-stale" : ""}`} data-testid="lrs-badge" title={stale ? "The YAML has errors: this is the last valid score" : "Loop Readiness Score"}>
      LRS {lrs.score}/100 · {lrs.grade}
    </span>
  );
}

export function LrsPanel({ lrs, stale, seq, readOnly, onFix }: { lrs: LrsReport | null; stale: boolean; seq: number; readOnly: boolean; onFix(patch: JsonObject): void }) {
  if (!lrs) return <div className="lk-lrs" data-testid="lrs-panel" data-lrs-seq={seq}><p className="lk-muted">No score yet: the loop does not load.</p></div>;
  return (
    <div className={`lk-lrs${stale ? " lk-stale" : ""}`} data-testid="lrs-panel" data-lrs-seq={seq}>
      <div className="lk-lrs-head">
        <span className="lk-lrs-score" data-testid="lrs-score">{lrs.score}</span>
        <span className={`lk-lrs-grade lk-grade-${lrs.grade}`} data-testid="lrs-grade">{lrs.grade}</span>
        {stale && <span className="lk-muted">last valid score (the loop has errors)</span>}
      </div>
      <ul className="lk-dimensions">
        {lrs.dimensions.map((d) => (
          <li key={d.key} data-dimension={d.key}>
            <span className="lk-dim-name">{d.name}</span>
            <span className="lk-dim-bar">
              <span style={{ width: `${d.max ? (100 * d.points) / d.max : 0}%` }} />
            </span>
            <span className="lk-dim-points">
              {d.points}/{d.max}
            </span>
          </li>
        ))}
      </ul>
      <ul className="lk-findings">
        {lrs.findings.map((f, i) => (
          <li key={i} className={`lk-finding lk-finding-${f.level}`}>
            <span className="lk-mark">{MARK[f.level]}</span>
            <span>
              {f.message}
              {f.hint && <span className="lk-hint"> {f.hint}</span>}
            </span>
            {f.fix && !readOnly && (
              <button type="button" className="lk-fix" onClick={() => onFix(f.fix!.patch)}>
                {f.fix.label}
              </button>
            )}
          </li>
        ))}
      </ul>
    </div>
  );
}
