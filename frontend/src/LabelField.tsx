/** The step label field: a rename that every reference to the step follows, or a refusal. */
import { useId, useRef, useState } from "react";
import { fieldErrors } from "./fields";
import { referencesTo, renameRefusal, renameStep } from "./rename";
import type { LoopData, SpecError } from "./types";

const HINT = "Prompts, conditions, verification and the run page refer to steps by label: renaming updates the references.";

/** What the rename does to the references to the step called `name`, or null when nothing refers to it. */
function referencesNote(data: LoopData, name: string, label: string | undefined): string | null {
  const refs = referencesTo(data, name);
  if (!refs.length) return null;
  const count = `${refs.length} reference${refs.length === 1 ? "" : "s"}`;
  return label === undefined ? `Without a label, ${count} no longer find this step: ${refs.join(", ")}.` : `Renaming updates ${count}: ${refs.join(", ")}.`;
}

/**
 * Each keystroke renames from the loop as it was when the field got focus, so
 * the labels typed on the way (an empty one, another step's, one a template
 * already mentions) never merge references: only the last one counts. A label
 * another step has is refused with a message and the loop keeps the old one.
 * Escape puts the old label back.
 */
export function LabelField(props: { data: LoopData; path: string; label: string | undefined; errors: SpecError[]; disabled: boolean; edit(fn: (d: LoopData) => LoopData): void }) {
  const id = useId();
  const start = useRef<{ data: LoopData; label: string | undefined } | null>(null);
  const [draft, setDraft] = useState<string | null>(null);
  const [refusal, setRefusal] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const path = `${props.path}.label`;
  const errors = fieldErrors(props.errors, path);

  const change = (text: string) => {
    const base = start.current ?? { data: props.data, label: props.label };
    start.current = base;
    setDraft(text);
    const label = text === "" ? undefined : text;
    const why = label === base.label ? null : renameRefusal(base.data, props.path, label);
    setRefusal(why);
    setNote(why || label === base.label ? null : referencesNote(base.data, base.label ?? props.path, label));
    props.edit(() => (why || label === base.label ? base.data : renameStep(base.data, props.path, label)));
  };

  return (
    <div className={`lke-field${errors.length || refusal ? " lke-field-invalid" : ""}`} data-path={path}>
      <label htmlFor={id}>Label</label>
      <input
        id={id}
        type="text"
        value={draft ?? props.label ?? ""}
        disabled={props.disabled}
        onFocus={() => {
          start.current = { data: props.data, label: props.label };
          setDraft(props.label ?? "");
          setRefusal(null);
          setNote(null);
        }}
        onBlur={() => {
          start.current = null;
          setDraft(null);
        }}
        onChange={(e) => change(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape" && start.current) change(start.current.label ?? "");
        }}
      />
      {refusal && (
        <div className="lke-field-error" role="alert" data-testid="rename-refused">
          {refusal}
        </div>
      )}
      {errors.map((e, i) => (
        <div className="lke-field-error" role="alert" key={i}>
          {e.message}
          {e.hint ? ` — ${e.hint}` : ""}
        </div>
      ))}
      {!refusal && !errors.length && (
        <div className="lke-field-hint" data-testid="rename-hint">
          {note ?? HINT}
        </div>
      )}
    </div>
  );
}
