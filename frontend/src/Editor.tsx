/**
 * The loop editor: graph, form and YAML views of one loop's data, kept in sync
 * through POST /api/loops/validate (debounced), with the live LRS, save with
 * optimistic concurrency, and the version history.
 */
import { startTransition, useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Api, ApiError } from "./api";
import { parseDefinitions } from "./definitions";
import { FormPanel, type Suggestions } from "./FormPanel";
import { GraphCanvas, type GraphActions } from "./GraphCanvas";
import { History, type LoopOut } from "./History";
import { LrsBadge, LrsPanel } from "./LrsPanel";
import { copiedLabels, duplicateStep, pasteSteps, planDrop, planMove } from "./drops";
import { patchLoop } from "./mergePatch";
import { Palette } from "./Palette";
import { TestsChip, type TestsSummary } from "./TestsChip";
import { getAt, parsePath } from "./paths";
import { insertStep, moveStep, newStep, owningStep, removeStep, removeSteps } from "./steps";
import { NodeTestPanel, TestRunBar, useTestRun } from "./TestRun";
import type { EditorBoot, Json, JsonObject, LoopData, LrsReport, SpecError, StepData, StepKind, ValidateResponse } from "./types";
import { EditHistory, type Snapshot } from "./undo";
import { YamlView } from "./YamlView";

export const DEBOUNCE_MS = 150;

function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

export const STARTER_YAML = `name: new-loop
trigger:
  type: manual
pipeline:
- prompt: Describe the task
  label: Agent
`;

type Source = "yaml" | "data";
type Status = "loading" | "validating" | "valid" | "invalid" | "offline";

interface Conflict {
  message: string;
  current: { version: number; yaml: string; author: string; message: string; created_at: string };
  changes: { kind: string; path: string; summary: string }[];
}

function names(value: Json | undefined): string[] {
  if (Array.isArray(value)) {
    return value
      .map((v) => (typeof v === "string" ? v : v && typeof v === "object" && !Array.isArray(v) && typeof v.name === "string" ? v.name : null))
      .filter((v): v is string => !!v);
  }
  if (value && typeof value === "object") return Object.keys(value);
  return [];
}

export function Editor({ boot }: { boot: EditorBoot }) {
  const api = useMemo(() => new Api(boot.apiBase, boot.csrfToken), [boot.apiBase, boot.csrfToken]);
  const readOnly = !!boot.readOnly;
  const initialYaml = boot.yaml || STARTER_YAML;
  const [loopId, setLoopId] = useState(boot.loopId);
  const [version, setVersion] = useState<number | null>(boot.version);
  const [data, setData] = useState<LoopData | null>(null);
  const [yamlText, setYamlText] = useState(initialYaml);
  // A new loop (empty, or a template's copy) has nothing saved yet.
  const [savedYaml, setSavedYaml] = useState(boot.loopId == null ? "" : boot.yaml);
  const [errors, setErrors] = useState<SpecError[]>([]);
  const [errorSource, setErrorSource] = useState<Source>("yaml");
  const [lrs, setLrs] = useState<LrsReport | null>(boot.lrs);
  const [lrsStale, setLrsStale] = useState(false);
  const [tests, setTests] = useState<TestsSummary | null>(null); // the last save's replay
  const [lrsSeq, setLrsSeq] = useState(0);
  const [status, setStatus] = useState<Status>("loading");
  const [selected, setSelected] = useState<string | null>(null);
  const [tab, setTab] = useState<"inspect" | "lrs" | "history">("inspect");
  const [message, setMessage] = useState("");
  const [notice, setNotice] = useState<{ kind: "info" | "error"; text: string } | null>(null);
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const [saving, setSaving] = useState(false);
  const [highlighted, setHighlighted] = useState<Set<string>>(new Set());
  const [historyKey, setHistoryKey] = useState(0);
  const seq = useRef(0);
  const timer = useRef<number | undefined>(undefined);
  // Test runs of the draft (TestRun.tsx): results on the graph and in the inspector, pins.
  const testRun = useTestRun({ apiBase: boot.apiBase, csrfToken: boot.csrfToken, loopId, user: (boot as { user?: string }).user });

  const apply = useCallback((r: ValidateResponse, source: Source) => {
    setErrors((current) => (sameJson(current, r.errors) ? current : r.errors));
    setErrorSource(source);
    // The graph and form follow in a transition: the YAML view, status and LRS
    // come first. The same object is kept when nothing changed, so the graph
    // is not drawn again.
    if (r.spec) startTransition(() => setData((current) => (current && sameJson(current, r.spec) ? current : r.spec)));
    if (source === "data" && r.yaml !== null) setYamlText(r.yaml);
    if (r.lrs) {
      setLrs(r.lrs);
      setLrsStale(false);
    } else {
      setLrsStale(true);
    }
    setLrsSeq((n) => n + 1);
    setStatus(r.ok ? "valid" : "invalid");
  }, []);

  const validate = useCallback(
    (input: { yaml: string } | { spec: LoopData }, source: Source, delay = DEBOUNCE_MS) => {
      const mine = ++seq.current;
      window.clearTimeout(timer.current);
      setStatus("validating");
      timer.current = window.setTimeout(() => {
        api.validate(input).then(
          (r) => {
            if (mine === seq.current) apply(r, source);
          },
          (e: Error) => {
            if (mine !== seq.current) return;
            setStatus("offline");
            setNotice({ kind: "error", text: `Could not validate: ${e.message}` });
          },
        );
      }, delay);
    },
    [api, apply],
  );

  useEffect(() => {
    validate({ yaml: initialYaml }, "yaml", 0);
    // Validate the loaded YAML once, at mount.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const dataRef = useRef(data);
  dataRef.current = data;
  const yamlRef = useRef(yamlText);
  yamlRef.current = yamlText;
  // One undo history for the graph, the form and the YAML view (undo.ts).
  const history = useRef(new EditHistory());
  const truth = useRef<Snapshot["source"]>("yaml");
  const [, setHistoryTick] = useState(0);
  const snapshot = (): Snapshot => ({ yaml: yamlRef.current, data: dataRef.current, source: truth.current });
  const edit = useCallback(
    (fn: (d: LoopData) => LoopData, coalesce: string | null = null) => {
      const current = dataRef.current;
      if (readOnly || !current) return;
      const next = fn(current);
      if (next === current) return;
      history.current.record(snapshot(), coalesce, performance.now());
      setHistoryTick((n) => n + 1);
      truth.current = "data";
      dataRef.current = next;
      setData(next);
      validate({ spec: next }, "data");
    },
    [readOnly, validate],
  );
  const formEdit = useCallback((fn: (d: LoopData) => LoopData) => edit(fn, "form"), [edit]);

  const onYaml = useCallback(
    (text: string) => {
      history.current.record(snapshot(), "yaml", performance.now());
      setHistoryTick((n) => n + 1);
      truth.current = "yaml";
      yamlRef.current = text;
      setYamlText(text);
      validate({ yaml: text }, "yaml");
    },
    [validate],
  );

  const restore = useCallback(
    (s: Snapshot | null) => {
      if (!s) return;
      setHistoryTick((n) => n + 1);
      truth.current = s.source;
      yamlRef.current = s.yaml;
      setYamlText(s.yaml);
      if (s.data) {
        dataRef.current = s.data;
        setData(s.data);
      }
      setSelected((current) => (current && s.data && getAt(s.data, parsePath(current)) === undefined ? null : current));
      validate(s.source === "data" && s.data ? { spec: s.data } : { yaml: s.yaml }, s.source, 0);
    },
    [validate],
  );
  const undo = useCallback(() => {
    if (!readOnly) restore(history.current.undo(snapshot()));
  }, [readOnly, restore]);
  const redo = useCallback(() => {
    if (!readOnly) restore(history.current.redo(snapshot()));
  }, [readOnly, restore]);

  useEffect(() => {
    // Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y anywhere in the editor but the change
    // message (the YAML view routes its own keys here, see YamlView).
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey || e.defaultPrevented) return;
      const el = e.target as HTMLElement | null;
      if (el?.closest?.(".lke-message, .cm-editor") || (el && el !== document.body && !el.closest?.(".lke-editor"))) return;
      const key = e.key.toLowerCase();
      if (key === "z" && !e.shiftKey) {
        e.preventDefault();
        undo();
      } else if ((key === "z" && e.shiftKey) || key === "y") {
        e.preventDefault();
        redo();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [undo, redo]);

  const clipboard = useRef<StepData[]>([]);
  const [pointed, setPointed] = useState<string | null>(null);

  const actions: GraphActions = useMemo(
    () => ({
      select: (id) => {
        setSelected(id);
        if (id) setTab("inspect");
      },
      insert: (listPath, index, kind: StepKind) => {
        const list = dataRef.current ? getAt(dataRef.current, parsePath(listPath)) : undefined;
        const at = Math.min(index, Array.isArray(list) ? list.length : 0);
        edit((d) => insertStep(d, listPath, at, newStep(d, kind)));
        // Select the new step so the inspector shows it.
        setSelected(`${listPath}[${at}]`);
        setTab("inspect");
      },
      remove: (path) => {
        edit((d) => removeStep(d, path));
        setSelected(null);
      },
      removeMany: (paths) => {
        edit((d) => removeSteps(d, paths));
        setSelected(null);
      },
      move: (from, toList, index) => {
        edit((d) => moveStep(d, from, toList, index));
        setSelected(null);
      },
      drop: (item, target) => {
        const current = dataRef.current;
        if (!current || readOnly) return;
        const result = planDrop(current, item, target, suggestionsRef.current.defs);
        if (!result.ok) {
          setNotice({ kind: "error", text: `Not dropped: ${result.reason}.` });
          return;
        }
        setNotice(null);
        edit(() => result.data);
        setSelected(result.select);
        setTab("inspect");
      },
      moveTo: (from, target, after) => {
        const current = dataRef.current;
        if (!current || readOnly) return;
        const result = planMove(current, from, target, after);
        if (!result.ok) {
          setNotice({ kind: "error", text: `Not moved: ${result.reason}.` });
          return;
        }
        setNotice(null);
        edit(() => result.data);
        setSelected(result.select);
      },
      copy: (paths) => {
        const current = dataRef.current;
        if (!current) return;
        clipboard.current = paths.map((p) => getAt(current, parsePath(p))).filter((s): s is StepData => !!s && typeof s === "object" && !Array.isArray(s));
        const labels = copiedLabels(clipboard.current);
        setNotice({ kind: "info", text: `Copied ${labels.length ? labels.join(", ") : `${paths.length} step(s)`}: Ctrl+V pastes after the selected step.` });
      },
      paste: (after) => {
        if (!clipboard.current.length) {
          setNotice({ kind: "error", text: "Nothing to paste: copy a step first (Ctrl+C)." });
          return;
        }
        let landed: string[] = [];
        edit((d) => {
          const r = pasteSteps(d, clipboard.current, after);
          landed = r.paths;
          return r.data;
        });
        if (landed.length) setSelected(landed[landed.length - 1]);
      },
      duplicate: (path) => {
        let landed: string[] = [];
        edit((d) => {
          const r = duplicateStep(d, path);
          landed = r.paths;
          return r.data;
        });
        if (landed.length) setSelected(landed[0]);
      },
      canPaste: () => clipboard.current.length > 0,
    }),
    [edit, readOnly],
  );

  const invalidKey = errors.map((e) => e.path ?? "").join("\n");
  const invalid = useMemo(() => {
    const out = new Set<string>();
    for (const e of errors) {
      if (!e.path) continue;
      const owner = owningStep(e.path);
      if (owner) out.add(owner);
      else if (/^(trigger|verify|budget|memory)\b/.test(e.path)) out.add(e.path.split(/[.[]/)[0]);
    }
    return out;
    // Recomputed only when the set of error paths changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [invalidKey]);

  const suggestions: Suggestions = useMemo(
    () => ({ subagents: names(boot.subagents), connectors: names(boot.connectors), skills: names(boot.skills), defs: parseDefinitions(boot) }),
    [boot],
  );
  const suggestionsRef = useRef(suggestions);
  suggestionsRef.current = suggestions;

  const dirty = yamlText !== savedYaml;
  const canSave = !readOnly && !saving && status === "valid" && (dirty || loopId === null);

  const loadLoop = useCallback(
    (loop: LoopOut, note?: string) => {
      setVersion(loop.version);
      setSavedYaml(loop.yaml);
      setYamlText(loop.yaml);
      yamlRef.current = loop.yaml;
      truth.current = "yaml";
      setData(loop.spec);
      if (loop.lrs) setLrs(loop.lrs);
      setErrors([]);
      setStatus("valid");
      setHistoryKey((k) => k + 1);
      setHighlighted(new Set());
      if (note) setNotice({ kind: "info", text: note });
      // A saved version passed validation on the server: no need to ask again.
      seq.current++;
      window.clearTimeout(timer.current);
      setLrsStale(false);
      setLrsSeq((n) => n + 1);
    },
    [],
  );

  const save = useCallback(
    async (baseVersion?: number) => {
      setSaving(true);
      setNotice(null);
      try {
        if (loopId === null || loopId === undefined) {
          const loop = await api.request<LoopOut>("POST", "", { yaml: yamlText, message });
          setLoopId(loop.id);
          loadLoop(loop, `Created ${loop.name}, version ${loop.version}.`);
          const url = boot.editUrl?.replace("{id}", String(loop.id)) ?? `/loops/${loop.id}/edit/`;
          window.history.replaceState(null, "", url);
        } else {
          const loop = await api.request<LoopOut & { saved?: boolean; tests?: TestsSummary | null }>("PUT", `/${loopId}`, {
            yaml: yamlText,
            base_version: baseVersion ?? version,
            message,
          });
          setConflict(null);
          if (loop.saved !== false) setTests(loop.tests ?? null);
          loadLoop(loop, loop.saved === false ? "Nothing to save: the loop is unchanged." : `Saved version ${loop.version}.`);
        }
        setMessage("");
      } catch (e) {
        // A 409 with `current` is a stale save; any other refusal (a name
        // clash is a 409 too, an invalid loop a 422) is shown as a message.
        const body = e instanceof ApiError ? (e.body as Partial<Conflict> | null) : null;
        if (e instanceof ApiError && e.status === 409 && body?.current) setConflict({ changes: [], ...body } as Conflict);
        else setNotice({ kind: "error", text: `Not saved: ${(e as Error).message}` });
      } finally {
        setSaving(false);
      }
    },
    [api, boot.editUrl, loadLoop, loopId, message, version, yamlText],
  );

  const reload = useCallback(
    async (note: string) => {
      try {
        const loop = await api.request<LoopOut>("GET", `/${loopId}`);
        setConflict(null);
        loadLoop(loop, note);
      } catch (e) {
        setNotice({ kind: "error", text: `Could not reload: ${(e as Error).message}` });
      }
    },
    [api, loadLoop, loopId],
  );

  useEffect(() => {
    const saveKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") {
        e.preventDefault();
        if (canSave) void save();
      }
    };
    window.addEventListener("keydown", saveKey);
    return () => window.removeEventListener("keydown", saveKey);
  }, [canSave, save]);

  useEffect(() => {
    const warn = (e: BeforeUnloadEvent) => {
      if (dirty && !readOnly) e.preventDefault();
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty, readOnly]);

  const versionsUrl = loopId != null ? (boot.versionsUrl ?? `/loops/${loopId}/versions/`) : null;
  const statusText: Record<Status, string> = {
    loading: "Loading…",
    validating: "Checking…",
    valid: dirty ? "Unsaved changes" : "Saved",
    invalid: `${errors.length} problem${errors.length === 1 ? "" : "s"}`,
    offline: "Cannot reach the server",
  };
  const yamlErrors = errorSource === "yaml" ? errors : errors.filter((e) => e.line);

  return (
    <div className={`lke-editor${readOnly ? " lke-readonly" : ""}`} data-status={status} data-testid="editor">
      <div className="lke-toolbar">
        <strong className="lke-loop-name">{data && typeof data.name === "string" ? data.name : "Loop"}</strong>
        {version !== null && <span className="lke-version" data-testid="version">v{version}</span>}
        <span className={`lke-status lke-status-${status}`} data-testid="status">
          {statusText[status]}
        </span>
        <LrsBadge lrs={lrs} stale={lrsStale} />
        {!readOnly && (
          <span className="lke-undo" role="group" aria-label="Undo and redo">
            <button type="button" onClick={undo} disabled={!history.current.canUndo} title="Undo (Ctrl+Z), in the graph, the form or the YAML" data-testid="undo">
              ↶ Undo
            </button>
            <button type="button" onClick={redo} disabled={!history.current.canRedo} title="Redo (Ctrl+Shift+Z or Ctrl+Y)" data-testid="redo">
              ↷ Redo
            </button>
          </span>
        )}
        <TestsChip tests={tests} loopId={loopId} />
        <span className="lke-spacer" />
        {versionsUrl && (
          <a href={versionsUrl} className="lke-link">
            Versions
          </a>
        )}
        {loopId != null && boot.diffUrl && version !== null && version > 1 && (
          <a href={boot.diffUrl} className="lke-link" title="What the last save changed">
            Last change
          </a>
        )}
        {!readOnly && (
          <TestRunBar
            handle={testRun}
            disabled={status !== "valid" || !data}
            onStart={(dryRun, inputs) => data && void testRun.start({ yaml: yamlText }, data, { dryRun, inputs })}
            current={JSON.stringify({ yaml: yamlText })}
          />
        )}
        {!readOnly && (
          <>
            <input className="lke-message" value={message} onChange={(e) => setMessage(e.target.value)} placeholder="Describe your change" aria-label="Change message" />
            <button type="button" className="lke-primary" disabled={!canSave} onClick={() => void save()} data-testid="save">
              {saving ? "Saving…" : "Save"}
            </button>
          </>
        )}
      </div>
      {notice && (
        <div className={`lke-notice lke-notice-${notice.kind}`} role={notice.kind === "error" ? "alert" : "status"}>
          {notice.text}
          <button type="button" className="lke-link" onClick={() => setNotice(null)} aria-label="Dismiss">
            ×
          </button>
        </div>
      )}
      {conflict && (
        <div className="lke-conflict" role="alertdialog" aria-label="Someone else saved this loop" data-testid="conflict">
          <h3>Someone else saved this loop</h3>
          <p>{conflict.message}</p>
          <p>
            Version {conflict.current.version} by {conflict.current.author || "someone"}
            {conflict.current.message ? `: “${conflict.current.message}”` : ""} ({conflict.current.created_at})
          </p>
          {conflict.changes.length > 0 && (
            <ul>
              {conflict.changes.map((c, i) => (
                <li key={i}>
                  <code>{c.kind}</code> {c.summary}
                </li>
              ))}
            </ul>
          )}
          <details>
            <summary>Their YAML</summary>
            <pre>{conflict.current.yaml}</pre>
          </details>
          <div className="lke-buttons">
            <button type="button" onClick={() => void reload(`Loaded version ${conflict.current.version}; your changes were discarded.`)}>
              Load their version (discard mine)
            </button>
            <button type="button" className="lke-danger" onClick={() => void save(conflict.current.version)}>
              Overwrite with mine
            </button>
            <button type="button" className="lke-link" onClick={() => setConflict(null)}>
              Cancel
            </button>
          </div>
        </div>
      )}
      <a className="lke-skip" href="#lke-inspector" onClick={(e) => (e.preventDefault(), document.getElementById("lke-inspector")?.focus())}>
        Skip the graph: go to the inspector
      </a>
      <div className="lke-body">
        <div className="lke-graph" data-testid="graph">
          {data && !readOnly && <Palette data={data} defs={suggestions.defs} selected={selected} drop={actions.drop} point={setPointed} />}
          {status === "invalid" && errorSource === "yaml" && errors.some((e) => e.line) && (
            <div className="lke-graph-note">The YAML has errors: the graph shows the last valid loop.</div>
          )}
          {data ? (
            <GraphCanvas data={data} editable={!readOnly} actions={actions} selected={selected} invalid={invalid} highlighted={highlighted} states={testRun.states} pointed={pointed} />
          ) : (
            <p className="lke-muted lke-pad">{status === "invalid" ? "The YAML does not load yet: fix the errors on the right." : "Loading…"}</p>
          )}
        </div>
        <aside className="lke-side" id="lke-inspector" tabIndex={-1} aria-label="Inspector">
          <nav className="lke-tabs" role="tablist">
            {(["inspect", "lrs", "history"] as const).map((t) => (
              <button key={t} type="button" role="tab" aria-selected={tab === t} className={tab === t ? "lke-tab-active" : ""} onClick={() => setTab(t)}>
                {t === "inspect" ? "Inspector" : t === "lrs" ? "Readiness" : "History"}
              </button>
            ))}
          </nav>
          <div className="lke-tab-body">
            {tab === "inspect" && data && selected && <NodeTestPanel handle={testRun} data={data} nodeKey={selected} readOnly={readOnly} />}
            {tab === "inspect" && data && (
              <FormPanel data={data} selected={selected} errors={errors} readOnly={readOnly} suggestions={suggestions} edit={formEdit} select={actions.select} remove={actions.remove} />
            )}
            {tab === "lrs" && <LrsPanel lrs={lrs} stale={lrsStale} seq={lrsSeq} readOnly={readOnly} onFix={(patch: JsonObject) => edit((d) => patchLoop(d, patch))} />}
            {tab === "history" && loopId != null && (
              <History key={historyKey} api={api} loopId={loopId} current={version} readOnly={readOnly} dirty={dirty} onHighlight={setHighlighted} onRestored={(loop) => loadLoop(loop, `Restored as version ${loop.version}.`)} />
            )}
            {tab === "history" && loopId == null && <p className="lke-muted">Save the loop to start its history.</p>}
          </div>
          {tab !== "lrs" && (
            <div className="lke-side-lrs">
              <LrsPanel lrs={lrs} stale={lrsStale} seq={lrsSeq} readOnly={readOnly} onFix={(patch: JsonObject) => edit((d) => patchLoop(d, patch))} />
            </div>
          )}
        </aside>
        <div className="lke-yaml-pane">
          {status === "invalid" && errorSource === "data" && (
            <div className="lke-yaml-note" role="status">
              The YAML shows the last valid version: fix the problems in the form to update it.
            </div>
          )}
          <YamlView text={yamlText} errors={yamlErrors} readOnly={readOnly} onChange={onYaml} onUndo={undo} onRedo={redo} data={data} />
          {errors.length > 0 && (
            <ul className="lke-errors" data-testid="errors">
              {errors.map((e, i) => (
                <li key={i}>
                  {e.line ? <code>{`${e.line}:${e.column ?? 1}`}</code> : null} {e.path ? <code>{e.path}</code> : null} {e.message}
                  {e.hint ? <span className="lke-hint"> {e.hint}</span> : null}
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
    </div>
  );
}
