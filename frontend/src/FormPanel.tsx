/** The form view: the selected node's fields, or the loop-level sections. */
import { memo, type ReactNode } from "react";
import { ListField, NumberField, SelectField, TextField, TriStateField, fieldErrors } from "./fields";
import { getAt, parsePath, setAt } from "./paths";
import { asObject, asStringList, iterSteps, newStep, owningStep, renameLabel, stepKind, stepLabel } from "./steps";
import type { Json, JsonObject, LoopData, SpecError, StepKind } from "./types";

export interface Suggestions {
  subagents: string[];
  connectors: string[];
  skills: string[];
}

interface PanelProps {
  data: LoopData;
  selected: string | null;
  errors: SpecError[];
  readOnly: boolean;
  suggestions: Suggestions;
  edit(fn: (d: LoopData) => LoopData): void;
  select(id: string | null): void;
  remove(path: string): void;
}

const str = (v: Json | undefined) => (typeof v === "string" ? v : undefined);
const num = (v: Json | undefined) => (typeof v === "number" ? v : undefined);
const bool = (v: Json | undefined) => (typeof v === "boolean" ? v : undefined);

function Section({ title, children, id, actions }: { title: string; children: ReactNode; id: string; actions?: ReactNode }) {
  return (
    <section className="lke-section" data-section={id}>
      <header>
        <h3>{title}</h3>
        {actions}
      </header>
      {children}
    </section>
  );
}

/** Field setter for the object at `base`: set(field, value) edits the loop data. */
function setterFor(props: PanelProps, base: string) {
  return (field: string, value: Json | undefined) =>
    props.edit((d) => setAt(d, [...(base ? parsePath(base) : []), field], value) as LoopData);
}

function StepForm(props: PanelProps & { path: string }) {
  const { data, path, errors, readOnly: disabled } = props;
  const step = asObject(getAt(data, parsePath(path)));
  if (!step) return <p className="lke-muted">This step no longer exists.</p>;
  const kind = stepKind(step);
  const set = setterFor(props, path);
  const f = (name: string) => ({ path: `${path}.${name}`, errors, disabled });
  const common = (
    <TextField
      label="Label"
      {...f("label")}
      value={str(step.label)}
      onChange={(v) => props.edit((d) => renameLabel(d, path, str(step.label), v))}
      hint="Verification and the run page refer to steps by label."
    />
  );
  let body: ReactNode;
  switch (kind) {
    case "agent":
      body = (
        <>
          {common}
          <TextField label="Prompt" multiline {...f("prompt")} value={str(step.prompt)} onChange={(v) => set("prompt", v ?? "")} hint="A Jinja2 template: {{ inputs.x }}, {{ steps['Label'].output }}" />
          <TextField label="Model" {...f("model")} value={str(step.model)} onChange={(v) => set("model", v)} placeholder={str(data.model) ?? "the loop's model"} />
          <TextField label="Subagent" {...f("subagent")} value={str(step.subagent)} onChange={(v) => set("subagent", v)} list="lke-subagents" />
          <ListField label="Skills" {...f("skills")} value={asStringList(step.skills)} onChange={(v) => set("skills", v)} suggestions={props.suggestions.skills} />
          <ListField label="Connectors" {...f("connectors")} value={asStringList(step.connectors)} onChange={(v) => set("connectors", v)} suggestions={props.suggestions.connectors} />
          <ListField label="Tools (allow-list)" {...f("tools")} value={asStringList(step.tools)} onChange={(v) => set("tools", v)} />
          <NumberField label="Timeout (seconds per call)" {...f("timeout")} value={num(step.timeout)} onChange={(v) => set("timeout", v)} />
          <NumberField label="Retries" step="1" min={0} {...f("retries")} value={num(step.retries)} onChange={(v) => set("retries", v)} />
        </>
      );
      break;
    case "approval":
      body = (
        <>
          {common}
          <TextField label="Question to the approver" multiline {...f("approve")} value={str(step.approve)} onChange={(v) => set("approve", v ?? "")} />
          <ListField label="Approvers (roles or users)" {...f("approvers")} value={asStringList(step.approvers)} onChange={(v) => set("approvers", v)} suggestions={["owner", "admin", "editor"]} />
          <NumberField label="Timeout (minutes)" {...f("timeoutMinutes")} value={num(step.timeoutMinutes)} onChange={(v) => set("timeoutMinutes", v)} />
          <SelectField label="On timeout" {...f("onTimeout")} value={str(step.onTimeout)} options={["reject", "approve"]} allowEmpty="(default: reject)" onChange={(v) => set("onTimeout", v)} />
        </>
      );
      break;
    case "parallel":
      body = (
        <>
          {common}
          <NumberField label="Max concurrency" step="1" min={1} {...f("maxConcurrency")} value={num(step.maxConcurrency)} onChange={(v) => set("maxConcurrency", v)} />
          <p className="lke-muted">{asArrayLength(step.parallel)} branches run at the same time. Use + on the group to add one.</p>
        </>
      );
      break;
    case "sequential":
      body = common;
      break;
    case "conditional":
      body = (
        <>
          {common}
          <TextField label="When (Jinja2 expression)" {...f("when")} value={str(step.when)} onChange={(v) => set("when", v ?? "")} />
          {Array.isArray(step.else) ? (
            <button type="button" disabled={disabled} onClick={() => set("else", undefined)}>
              Remove the else branch
            </button>
          ) : (
            <button type="button" disabled={disabled} onClick={() => set("else", [newStep(data, "agent")])}>
              Add an else branch
            </button>
          )}
        </>
      );
      break;
    default:
      body = <p className="lke-muted">This step needs one of prompt, parallel, sequential, when or approve. Fix it in the YAML.</p>;
  }
  const kindName: Record<StepKind, string> = { agent: "Agent", approval: "Approval gate", parallel: "Parallel group", sequential: "Sequence", conditional: "Condition", unknown: "Step" };
  return (
    <Section
      id="step"
      title={`${kindName[kind]} · ${stepLabel(step) ?? path}`}
      actions={
        !disabled && (
          <button type="button" className="lke-danger" onClick={() => props.remove(path)}>
            Delete step
          </button>
        )
      }
    >
      <div className="lke-path">{path}</div>
      {body}
    </Section>
  );
}

function asArrayLength(v: Json | undefined): number {
  return Array.isArray(v) ? v.length : 0;
}

function TriggerSection(props: PanelProps) {
  const t = asObject(props.data.trigger) ?? {};
  const set = setterFor(props, "trigger");
  const f = (name: string) => ({ path: `trigger.${name}`, errors: props.errors, disabled: props.readOnly });
  const type = str(t.type) ?? "manual";
  return (
    <Section id="trigger" title="Trigger">
      <SelectField
        label="Type"
        {...f("type")}
        value={type}
        options={["manual", "cron", "webhook", "event"]}
        onChange={(v) => props.edit((d) => setAt(d, ["trigger"], { type: v ?? "manual", ...(t.description ? { description: t.description } : {}) }) as LoopData)}
      />
      {type === "cron" && (
        <>
          <TextField label="Schedule (cron)" {...f("schedule")} value={str(t.schedule)} onChange={(v) => set("schedule", v ?? "")} placeholder="0 9 * * 1-5" />
          <TextField label="Time zone" {...f("timezone")} value={str(t.timezone)} onChange={(v) => set("timezone", v)} placeholder="UTC" />
        </>
      )}
      {type === "webhook" && (
        <>
          <TextField label="Event" {...f("event")} value={str(t.event)} onChange={(v) => set("event", v ?? "")} placeholder="pull_request" />
          <ListField label="Actions" {...f("actions")} value={asStringList(t.actions)} onChange={(v) => set("actions", v)} />
          <TextField label="Secret environment variable" {...f("secretEnv")} value={str(t.secretEnv)} onChange={(v) => set("secretEnv", v)} />
        </>
      )}
      {type === "event" && (
        <>
          <TextField label="After loop" {...f("loop")} value={str(t.loop)} onChange={(v) => set("loop", v)} />
          <ListField label="With status" {...f("status")} value={asStringList(t.status)} onChange={(v) => set("status", v)} suggestions={["succeeded", "failed", "verification_failed", "budget_exceeded", "cancelled"]} />
          <TextField label="Or on custom event" {...f("event")} value={str(t.event)} onChange={(v) => set("event", v)} />
        </>
      )}
      <TextField label="Description" {...f("description")} value={str(t.description)} onChange={(v) => set("description", v)} />
    </Section>
  );
}

function VerifySection(props: PanelProps) {
  const v = asObject(props.data.verify);
  const labels = iterSteps(props.data)
    .map((e) => stepLabel(e.step))
    .filter((l): l is string => !!l);
  const f = (name: string) => ({ path: `verify.${name}`, errors: props.errors, disabled: props.readOnly });
  if (!v) {
    return (
      <Section id="verify" title="Verify (maker → checker)">
        <p className="lke-muted">No verification: nothing checks the agents' output.</p>
        {!props.readOnly && (
          <button type="button" onClick={() => props.edit((d) => ({ ...d, verify: { maker: labels.length ? labels : ["Agent"], checker: "Adversarial Verifier", maxRounds: 3 } }))}>
            Add verification
          </button>
        )}
      </Section>
    );
  }
  const set = setterFor(props, "verify");
  const makers = asStringList(v.maker);
  return (
    <Section
      id="verify"
      title="Verify (maker → checker)"
      actions={!props.readOnly && <button type="button" className="lke-danger" onClick={() => props.edit((d) => setAt(d, ["verify"], undefined) as LoopData)}>Remove</button>}
    >
      <div className={`lke-field${fieldErrors(props.errors, "verify.maker").length ? " lke-field-invalid" : ""}`} data-path="verify.maker">
        <span className="lke-label">Makers (steps whose output is checked)</span>
        <div className="lke-checks">
          {Array.from(new Set([...labels, ...makers])).map((label) => (
            <label key={label} className="lke-check">
              <input
                type="checkbox"
                disabled={props.readOnly}
                checked={makers.includes(label)}
                onChange={(e) => set("maker", e.target.checked ? [...makers, label] : makers.filter((m) => m !== label))}
              />
              {label}
            </label>
          ))}
        </div>
        {fieldErrors(props.errors, "verify.maker").map((e, i) => (
          <div className="lke-field-error" role="alert" key={i}>{e.message}</div>
        ))}
      </div>
      <TextField label="Checker" {...f("checker")} value={asStringList(v.checker).join(", ")} onChange={(x) => set("checker", x ?? "")} list="lke-checkers" hint="A verifier subagent or the built-in Adversarial Verifier." />
      <NumberField label="Max rounds" step="1" min={1} {...f("maxRounds")} value={num(v.maxRounds)} onChange={(x) => set("maxRounds", x)} />
      <TriStateField label="Auto-retry" {...f("autoRetry")} value={bool(v.autoRetry)} onChange={(x) => set("autoRetry", x)} defaultText="(default: yes)" />
      <NumberField label="Pass score (0-1)" step="0.05" min={0} {...f("passScore")} value={num(v.passScore)} onChange={(x) => set("passScore", x)} />
    </Section>
  );
}

function BudgetSection(props: PanelProps) {
  const b = asObject(props.data.budget);
  const f = (name: string) => ({ path: `budget.${name}`, errors: props.errors, disabled: props.readOnly });
  const set = (field: string, value: Json | undefined) =>
    props.edit((d) => {
      const next = setAt(d, ["budget", field], value) as LoopData;
      return asObject(next.budget) && Object.keys(asObject(next.budget)!).length === 0 ? (setAt(next, ["budget"], undefined) as LoopData) : next;
    });
  return (
    <Section id="budget" title="Budget (hard limits per run)">
      <NumberField label="Max tokens" step="1" min={1} {...f("maxTokens")} value={num(b?.maxTokens)} onChange={(v) => set("maxTokens", v)} />
      <NumberField label="Max cost (USD)" {...f("maxCostUsd")} value={num(b?.maxCostUsd)} onChange={(v) => set("maxCostUsd", v)} />
      <NumberField label="Max duration (minutes)" {...f("maxDurationMinutes")} value={num(b?.maxDurationMinutes)} onChange={(v) => set("maxDurationMinutes", v)} />
      <NumberField label="Max iterations" step="1" min={1} {...f("maxIterations")} value={num(b?.maxIterations)} onChange={(v) => set("maxIterations", v)} />
    </Section>
  );
}

function MemorySection(props: PanelProps) {
  const m = asObject(props.data.memory);
  const f = (name: string) => ({ path: `memory.${name}`, errors: props.errors, disabled: props.readOnly });
  const set = setterFor(props, "memory");
  if (!m) {
    return (
      <Section id="memory" title="Memory">
        <p className="lke-muted">No memory: each run starts from nothing.</p>
        {!props.readOnly && (
          <button type="button" onClick={() => props.edit((d) => ({ ...d, memory: { store: "filesystem", path: ".loopkit/state" } }))}>
            Add memory
          </button>
        )}
      </Section>
    );
  }
  return (
    <Section id="memory" title="Memory" actions={!props.readOnly && <button type="button" className="lke-danger" onClick={() => props.edit((d) => setAt(d, ["memory"], undefined) as LoopData)}>Remove</button>}>
      <SelectField label="Store" {...f("store")} value={str(m.store)} options={["filesystem", "database", "memory"]} allowEmpty="(default: filesystem)" onChange={(v) => set("store", v)} />
      <TextField label="Path" {...f("path")} value={str(m.path)} onChange={(v) => set("path", v)} placeholder=".loopkit/state" />
      <TextField label="Database URL" {...f("url")} value={str(m.url)} onChange={(v) => set("url", v)} />
      <SelectField label="Persistence" {...f("persistence")} value={str(m.persistence)} options={["full", "summary", "minimal"]} allowEmpty="(default)" onChange={(v) => set("persistence", v)} />
      <TextField label="Namespace" {...f("namespace")} value={str(m.namespace)} onChange={(v) => set("namespace", v)} />
    </Section>
  );
}

function NamedMap(props: PanelProps & { field: "subagents" | "connectors"; title: string; render(name: string, item: JsonObject): ReactNode; create(name: string): JsonObject; names: string[] }) {
  const map = asObject(props.data[props.field]) ?? {};
  const add = (name: string) => {
    if (!name || map[name]) return;
    props.edit((d) => setAt(d, [props.field, name], props.create(name)) as LoopData);
  };
  return (
    <Section id={props.field} title={props.title}>
      {Object.entries(map).map(([name, raw]) => (
        <fieldset key={name} className="lke-item">
          <legend>
            {name}
            {!props.readOnly && (
              <button type="button" className="lke-link" onClick={() => props.edit((d) => setAt(d, [props.field, name], undefined) as LoopData)}>
                remove
              </button>
            )}
          </legend>
          {props.render(name, asObject(raw) ?? {})}
        </fieldset>
      ))}
      {!props.readOnly && (
        <form
          className="lke-inline"
          onSubmit={(e) => {
            e.preventDefault();
            const input = e.currentTarget.elements.namedItem("name") as HTMLInputElement;
            add(input.value.trim());
            input.value = "";
          }}
        >
          <input name="name" placeholder="name" list={`lke-${props.field}-suggest`} aria-label={`New ${props.field} name`} />
          <datalist id={`lke-${props.field}-suggest`}>
            {props.names.map((s) => (
              <option key={s} value={s} />
            ))}
          </datalist>
          <button type="submit">Add</button>
        </form>
      )}
    </Section>
  );
}

function LoopSections(props: PanelProps) {
  const f = (name: string) => ({ path: name, errors: props.errors, disabled: props.readOnly });
  const set = setterFor(props, "");
  const sub = (name: string) => (field: string, value: Json | undefined) => props.edit((d) => setAt(d, ["subagents", name, field], value) as LoopData);
  const con = (name: string) => (field: string, value: Json | undefined) => props.edit((d) => setAt(d, ["connectors", name, field], value) as LoopData);
  const loopLevel = props.errors.filter((e) => !e.path || !owningStep(e.path));
  return (
    <>
      <Section id="loop" title="Loop">
        {loopLevel.length > 0 && (
          <ul className="lke-problems">
            {loopLevel.map((e, i) => (
              <li key={i} role="alert">
                {e.path && <code>{e.path}</code>} {e.message}
              </li>
            ))}
          </ul>
        )}
        <TextField label="Name" {...f("name")} value={str(props.data.name)} onChange={(v) => set("name", v ?? "")} />
        <TextField label="Description" multiline {...f("description")} value={str(props.data.description)} onChange={(v) => set("description", v)} />
        <TextField label="Default model" {...f("model")} value={str(props.data.model)} onChange={(v) => set("model", v)} />
        <ListField label="Tags" {...f("tags")} value={asStringList(props.data.tags)} onChange={(v) => set("tags", v)} />
      </Section>
      <TriggerSection {...props} />
      <VerifySection {...props} />
      <BudgetSection {...props} />
      <MemorySection {...props} />
      <NamedMap
        {...props}
        field="subagents"
        title="Subagents"
        names={props.suggestions.subagents}
        create={() => ({ role: "executor" })}
        render={(name, item) => (
          <>
            <SelectField label="Role" path={`subagents.${name}.role`} errors={props.errors} disabled={props.readOnly} value={str(item.role)} options={["planner", "executor", "verifier"]} onChange={(v) => sub(name)("role", v)} />
            <TextField label="Model" path={`subagents.${name}.model`} errors={props.errors} disabled={props.readOnly} value={str(item.model)} onChange={(v) => sub(name)("model", v)} />
            <TextField label="System prompt" multiline path={`subagents.${name}.prompt`} errors={props.errors} disabled={props.readOnly} value={str(item.prompt)} onChange={(v) => sub(name)("prompt", v)} />
          </>
        )}
      />
      <Section id="skills" title="Skills">
        <ListField label="Skills this loop uses" {...f("skills")} value={asStringList(props.data.skills)} onChange={(v) => set("skills", v)} suggestions={props.suggestions.skills} />
      </Section>
      <NamedMap
        {...props}
        field="connectors"
        title="Connectors"
        names={props.suggestions.connectors}
        create={() => ({ type: "http", baseUrl: "https://api.example.com" })}
        render={(name, item) => {
          const p = (field: string) => ({ path: `connectors.${name}.${field}`, errors: props.errors, disabled: props.readOnly });
          return (
            <>
              <SelectField label="Type" {...p("type")} value={str(item.type)} options={["mcp", "http", "sql"]} onChange={(v) => con(name)("type", v)} />
              {item.type === "mcp" && <TextField label="Command (stdio)" {...p("command")} value={str(item.command)} onChange={(v) => con(name)("command", v)} />}
              {item.type === "mcp" && <TextField label="URL (http)" {...p("url")} value={str(item.url)} onChange={(v) => con(name)("url", v)} />}
              {item.type === "http" && <TextField label="Base URL" {...p("baseUrl")} value={str(item.baseUrl)} onChange={(v) => con(name)("baseUrl", v)} />}
              {item.type === "sql" && <TextField label="Database URL" {...p("url")} value={str(item.url)} onChange={(v) => con(name)("url", v)} />}
            </>
          );
        }}
      />
    </>
  );
}

export const FormPanel = memo(function FormPanel(props: PanelProps) {
  const { selected } = props;
  const checkers = ["Adversarial Verifier", ...Object.keys(asObject(props.data.subagents) ?? {}), ...props.suggestions.subagents];
  const lists = (
    <>
      <datalist id="lke-subagents">
        {Array.from(new Set([...Object.keys(asObject(props.data.subagents) ?? {}), ...props.suggestions.subagents])).map((s) => (
          <option key={s} value={s} />
        ))}
      </datalist>
      <datalist id="lke-checkers">
        {Array.from(new Set(checkers)).map((s) => (
          <option key={s} value={s} />
        ))}
      </datalist>
    </>
  );
  let body: ReactNode;
  if (selected === "trigger") body = <TriggerSection {...props} />;
  else if (selected === "verify") body = <VerifySection {...props} />;
  else if (selected === "budget") body = <BudgetSection {...props} />;
  else if (selected === "memory") body = <MemorySection {...props} />;
  else if (selected && selected.startsWith("pipeline")) body = <StepForm {...props} path={selected} />;
  else body = <LoopSections {...props} />;
  return (
    <div className="lke-form" data-testid="form-panel">
      {selected && (
        <button type="button" className="lke-link lke-back" onClick={() => props.select(null)}>
          ← Loop settings
        </button>
      )}
      {body}
      {lists}
    </div>
  );
});
