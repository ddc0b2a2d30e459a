/** The version history: list, show what a version changed (highlighted in the graph), restore. */
import { useEffect, useState } from "react";
import type { Api } from "./api";
import type { LoopData, LrsReport } from "./types";

export interface LoopOut {
  id: number;
  name: string;
  version: number;
  yaml: string;
  spec: LoopData;
  lrs: LrsReport | null;
  saved?: boolean;
}

interface VersionSummary {
  version: number;
  author: string;
  message: string;
  created_at: string;
  lrs_score: number | null;
  lrs_grade: string;
  restored_from: number | null;
}

interface Diff {
  from_version: number;
  to_version: number;
  changes: { kind: string; path: string; summary: string }[];
}

export function History(props: {
  api: Api;
  loopId: number | string;
  current: number | null;
  readOnly: boolean;
  dirty: boolean;
  onHighlight(paths: Set<string>): void;
  onRestored(loop: LoopOut): void;
}) {
  const { api, loopId } = props;
  const [versions, setVersions] = useState<VersionSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [diff, setDiff] = useState<Diff | null>(null);
  const [confirming, setConfirming] = useState<number | null>(null);

  useEffect(() => {
    api.request<VersionSummary[]>("GET", `/${loopId}/versions`).then(setVersions, (e: Error) => setError(e.message));
  }, [api, loopId]);

  const show = (n: number) => {
    api.request<Diff>("GET", `/${loopId}/diff?from=${Math.max(n - 1, 1)}&to=${n}`).then(
      (d) => {
        setDiff(d);
        props.onHighlight(new Set(d.changes.map((c) => c.path)));
      },
      (e: Error) => setError(e.message),
    );
  };

  const restore = (n: number) => {
    if (props.dirty && confirming !== n) {
      setConfirming(n);
      return;
    }
    setConfirming(null);
    api.request<LoopOut>("POST", `/${loopId}/versions/${n}/restore`).then(props.onRestored, (e: Error) => setError(e.message));
  };

  if (error) return <p className="lke-field-error" role="alert">{error}</p>;
  if (!versions) return <p className="lke-muted">Loading versions…</p>;
  return (
    <div className="lke-history" data-testid="history">
      <ol>
        {versions.map((v) => (
          <li key={v.version} data-version={v.version} className={v.version === props.current ? "lke-current" : ""}>
            <div>
              <strong>v{v.version}</strong> {v.author && <span>by {v.author}</span>} <span className="lke-muted">{new Date(v.created_at).toLocaleString()}</span>
              {v.lrs_score !== null && <span className={`lke-lrs-badge lke-grade-${v.lrs_grade}`}>{v.lrs_score}</span>}
            </div>
            <div className="lke-muted">{v.message}{v.restored_from ? ` (restored from v${v.restored_from})` : ""}</div>
            <div className="lke-buttons">
              {v.version > 1 && (
                <button type="button" className="lke-link" onClick={() => show(v.version)}>
                  Show changes
                </button>
              )}
              {!props.readOnly && v.version !== props.current && (
                <button type="button" onClick={() => restore(v.version)} data-testid={`restore-${v.version}`}>
                  {confirming === v.version ? "Discard my edits and restore" : `Restore v${v.version}`}
                </button>
              )}
            </div>
          </li>
        ))}
      </ol>
      {diff && (
        <div className="lke-diff">
          <h4>
            v{diff.from_version} → v{diff.to_version}
          </h4>
          {diff.changes.length === 0 && <p className="lke-muted">No change to the loop.</p>}
          <ul>
            {diff.changes.map((c, i) => (
              <li key={i}>
                <code>{c.kind}</code> {c.summary}
              </li>
            ))}
          </ul>
          <button type="button" className="lke-link" onClick={() => { setDiff(null); props.onHighlight(new Set()); }}>
            Clear highlight
          </button>
        </div>
      )}
    </div>
  );
}
