/** Small form controls that keep the user's draft while they type. */
import { useEffect, useId, useState, type ReactNode } from "react";
import type { CompletionContext } from "./templateCompletion";
import { TemplateTextarea } from "./TemplateTextarea";
import type { SpecError } from "./types";

export interface FieldProps {
  label: string;
  /** The field path, as the validate API names it: `pipeline[0].prompt`. */
  path: string;
  errors: SpecError[];
  hint?: string;
  disabled?: boolean;
}

export function fieldErrors(errors: SpecError[], path: string): SpecError[] {
  return errors.filter((e) => e.path === path || (e.path ?? "").startsWith(`${path}[`) || (e.path ?? "").startsWith(`${path}.`));
}

function Wrap({ label, path, errors, hint, children, id }: FieldProps & { children: ReactNode; id: string }) {
  const mine = fieldErrors(errors, path);
  return (
    <div className={`lke-field${mine.length ? " lke-field-invalid" : ""}`} data-path={path}>
      <label htmlFor={id}>{label}</label>
      {children}
      {hint && !mine.length && <div className="lke-field-hint">{hint}</div>}
      {mine.map((e, i) => (
        <div className="lke-field-error" role="alert" key={i}>
          {e.message}
          {e.hint ? ` — ${e.hint}` : ""}
        </div>
      ))}
    </div>
  );
}

/** A text input whose shown text is the user's draft while focused. */
function useDraft(value: string): [string, (v: string) => void, { onFocus(): void; onBlur(): void }] {
  const [draft, setDraft] = useState(value);
  const [focused, setFocused] = useState(false);
  useEffect(() => {
    if (!focused) setDraft(value);
  }, [value, focused]);
  return [
    focused ? draft : value,
    setDraft,
    {
      onFocus: () => {
        setDraft(value);
        setFocused(true);
      },
      onBlur: () => setFocused(false),
    },
  ];
}

export function TextField(props: FieldProps & { value: string | undefined; onChange(v: string | undefined): void; multiline?: boolean; placeholder?: string; list?: string; complete?: (textBefore: string) => CompletionContext | null }) {
  const id = useId();
  const [shown, setDraft, focus] = useDraft(props.value ?? "");
  const change = (v: string) => {
    setDraft(v);
    props.onChange(v === "" ? undefined : v);
  };
  return (
    <Wrap {...props} id={id}>
      {props.multiline && props.complete ? (
        <TemplateTextarea id={id} rows={4} value={shown} disabled={props.disabled} placeholder={props.placeholder} onText={change} complete={props.complete} {...focus} />
      ) : props.multiline ? (
        <textarea id={id} rows={4} value={shown} disabled={props.disabled} placeholder={props.placeholder} onChange={(e) => change(e.target.value)} {...focus} />
      ) : (
        <input id={id} type="text" value={shown} list={props.list} disabled={props.disabled} placeholder={props.placeholder} onChange={(e) => change(e.target.value)} {...focus} />
      )}
    </Wrap>
  );
}

export function NumberField(props: FieldProps & { value: number | undefined; onChange(v: number | undefined): void; step?: string; min?: number; max?: number }) {
  const id = useId();
  const [shown, setDraft, focus] = useDraft(props.value === undefined ? "" : String(props.value));
  return (
    <Wrap {...props} id={id}>
      <input
        id={id}
        type="number"
        inputMode="decimal"
        step={props.step ?? "any"}
        min={props.min}
        max={props.max}
        value={shown}
        disabled={props.disabled}
        onChange={(e) => {
          setDraft(e.target.value);
          const v = e.target.value.trim();
          if (v === "") props.onChange(undefined);
          else if (Number.isFinite(Number(v))) props.onChange(Number(v));
        }}
        {...focus}
      />
    </Wrap>
  );
}

export function SelectField(props: FieldProps & { value: string | undefined; options: (string | [string, string])[]; onChange(v: string | undefined): void; allowEmpty?: string }) {
  const id = useId();
  return (
    <Wrap {...props} id={id}>
      <select id={id} value={props.value ?? ""} disabled={props.disabled} onChange={(e) => props.onChange(e.target.value === "" ? undefined : e.target.value)}>
        {props.allowEmpty !== undefined && <option value="">{props.allowEmpty}</option>}
        {props.options.map((o) => {
          const [value, text] = Array.isArray(o) ? o : [o, o];
          return (
            <option key={value} value={value}>
              {text}
            </option>
          );
        })}
      </select>
    </Wrap>
  );
}

/** Optional yes/no: unset, yes or no (unset keeps the engine's default). */
export function TriStateField(props: FieldProps & { value: boolean | undefined; onChange(v: boolean | undefined): void; defaultText: string }) {
  return (
    <SelectField
      {...props}
      value={props.value === undefined ? undefined : props.value ? "yes" : "no"}
      options={[
        ["yes", "yes"],
        ["no", "no"],
      ]}
      allowEmpty={props.defaultText}
      onChange={(v) => props.onChange(v === undefined ? undefined : v === "yes")}
    />
  );
}

/** A list of names typed comma-separated, with suggestions. */
export function ListField(props: FieldProps & { value: string[]; onChange(v: string[] | undefined): void; suggestions?: string[] }) {
  const id = useId();
  const listId = `${id}-list`;
  const [shown, setDraft, focus] = useDraft(props.value.join(", "));
  return (
    <Wrap {...props} id={id}>
      <input
        id={id}
        type="text"
        value={shown}
        list={props.suggestions?.length ? listId : undefined}
        disabled={props.disabled}
        placeholder="comma-separated"
        onChange={(e) => {
          setDraft(e.target.value);
          const items = e.target.value
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean);
          props.onChange(items.length ? items : undefined);
        }}
        {...focus}
      />
      {props.suggestions?.length ? (
        <datalist id={listId}>
          {props.suggestions.map((s) => (
            <option key={s} value={s} />
          ))}
        </datalist>
      ) : null}
    </Wrap>
  );
}
