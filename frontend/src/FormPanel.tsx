/** The form view: the selected node's fields, or the loop-level sections. */
import { memo, type ReactNode } from "react";
import { adopt, origin, pickable, type SharedMap, type TeamDefinitions } from "./definitions";
import { ListField, NumberField, SelectField, TextField, TriStateField, fieldErrors } from "./fields";
import { LabelField } from "./LabelField";
import { getAt, parsePath, setAt } from "./paths";
import { STEP_LISTS, asObject, asStringList, declaredTools, inPipeline, insertStep, iterSteps, newStep, owningStep, stepKind, stepLabel } from "./steps";
import { completeTemplate } from "./templateCompletion";
import type * as Spec from "./generated/loop";
import type { Json, JsonObject, LoopData, SpecError, StepKind } from "./types";
import { webhookTrees } from "./webhookTrees";

export interface Suggestions {
  subagents: string[];
  connectors: string[];
  skills: string[];
  /** The team's definitions: picking one another loop defines copies it into this loop. */
  defs: TeamDefinitions;
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

const COPY_NOTE = "Picking one that only another loop of the team defines copies its definition into this loop, so the loop stays self-contained.";

/**
 * A multi-select over the names the loop and the team define (checkboxes), with
 * the comma-separated text kept for names typed by hand.
 */
function NamePicker(props: {
  label: string;
  path: string;
  errors: SpecError[];
  disabled: boolean;
  value: string[];
  options: string[];
  describe(name: string): string;
  onChange(v: string[] | undefined): void;
  testid: string;
  note?: string;
}) {
  const extra = props.value.filter((v) => !props.options.includes(v));
  const toggle = (name: string, on: boolean) => {
    const next = on ? [...props.value, name] : props.value.filter((v) => v !== name);
    props.onChange(next.length ? next : undefined);
  };
  return (
    <div className="lke-picker" data-testid={props.testid}>
      <ListField label={props.label} path={props.path} errors={props.errors} disabled={props.disabled} value={props.value} onChange={props.onChange} suggestions={props.options} hint={props.note} />
      {props.options.length > 0 && (
        <div className="lke-checks lke-picker-options" role="group" aria-label={`Pick ${props.label.toLowerCase()}`}>
          {[...props.options, ...extra].map((name) => (
            <label key={name} className="lke-check" title={props.describe(name)} data-name={name}>
              <input type="checkbox" disabled={props.disabled} checked={props.value.includes(name)} onChange={(e) => toggle(name, e.target.checked)} />
              {name}
              {props.describe(name) && <small className="lke-muted"> · {clip(props.describe(name), 40)}</small>}
            </label>
          ))}
        </div>
      )}
    </div>
  );
}

/** The pickers of a step or template at `base` (connectors, skills), copying team definitions in. */
function toolPickers(props: PanelProps, base: (string | number)[], basePath: string, item: JsonObject) {
  const defs = props.suggestions.defs;
  const setList = (field: "connectors" | "skills", v: string[] | undefined) =>
    props.edit((d) => {
      const next = setAt(d, [...base, field], v) as LoopData;
      return field === "connectors" ? adopt(next, "connectors", v ?? [], defs) : next;
    });
  const skillInfo = new Map(defs.skills.map((s) => [s.name, s]));
  const skillNames = Array.from(new Set([...defs.skills.map((s) => s.name), ...asStringList(props.data.skills)]));
  return (
    <>
      <NamePicker
        label="Connectors"
        testid="pick-connectors"
        path={`${basePath}.connectors`}
        errors={props.errors}
        disabled={props.readOnly}
        value={asStringList(item.connectors)}
        options={pickable(props.data, "connectors", defs)}
        describe={(n) => origin(props.data, "connectors", n, defs)}
        onChange={(v) => setList("connectors", v)}
        note={COPY_NOTE}
      />
      <NamePicker
        label="Skills"
        testid="pick-skills"
        path={`${basePath}.skills`}
        errors={props.errors}
        disabled={props.readOnly}
        value={asStringList(item.skills)}
        options={skillNames}
        describe={(n) => skillInfo.get(n)?.description ?? ""}
        onChange={(v) => setList("skills", v)}
      />
      <ListField label="Tools (allow-list)" path={`${basePath}.tools`} errors={props.errors} disabled={props.readOnly} value={asStringList(item.tools)} onChange={(v) => props.edit((d) => setAt(d, [...base, "tools"], v) as LoopData)} hint="Tool names, e.g. search or github.get_issue; empty: every tool of the connectors." />
    </>
  );
}

/** Set a field naming a subagent; a team subagent this loop lacks is copied in. */
function subagentSetter(props: PanelProps, base: (string | number)[]) {
  return (field: string, value: string | undefined) =>
    props.edit((d) => adopt(setAt(d, [...base, field], value) as LoopData, "subagents", value ? [value] : [], props.suggestions.defs));
}

function subagentHint(props: PanelProps, name: string | undefined, role: string): string {
  const where = name ? origin(props.data, "subagents" as SharedMap, name, props.suggestions.defs) : "";
  return `A subagent with role '${role}'${where ? ` (${where})` : ""}. ${COPY_NOTE}`;
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

/** Completion after `{{` / `{%` in the template at `fieldPath` (src/templateCompletion.ts). */
function completer(props: PanelProps, fieldPath: string) {
  return props.readOnly ? undefined : (before: string) => completeTemplate(props.data, fieldPath, before, webhookTrees());
}

/**
 * The field names of a part of the loop, from the types generated from `loopkit schema`: a
 * form field naming one the spec does not have fails `tsc`.
 */
type FieldOf<T> = T extends unknown ? Extract<keyof T, string> : never;
type StepField = FieldOf<Spec.AgentStep | Spec.PlanStep | Spec.ToolStep | Spec.ApprovalStep | Spec.ParallelStep | Spec.SequentialStep | Spec.ConditionalStep>;
type TriggerField = FieldOf<Spec.ManualTrigger | Spec.CronTrigger | Spec.WebhookTrigger | Spec.EventTrigger>;
type ConnectorField = FieldOf<Spec.McpConnector | Spec.HttpConnector | Spec.SqlConnector | Spec.SlackConnector | Spec.EmailConnector>;

/** Field setter for the object at `base`: set(field, value) edits the loop data. */
function setterFor<F extends string>(props: PanelProps, base: string) {
  return (field: F, value: Json | undefined) =>
    props.edit((d) => setAt(d, [...(base ? parsePath(base) : []), field], value) as LoopData);
}

function StepForm(props: PanelProps & { path: string }) {
  const { data, path, errors, readOnly: disabled } = props;
  const step = asObject(getAt(data, parsePath(path)));
  if (!step) return <p className="lke-muted">This step no longer exists.</p>;
  const kind = stepKind(step);
  const set = setterFor<StepField>(props, path);
  const f = (name: StepField) => ({ path: `${path}.${name}`, errors, disabled });
  const common = <LabelField key={path} data={data} path={path} label={str(step.label)} errors={errors} disabled={disabled} edit={props.edit} />;
  let body: ReactNode;
  const base = parsePath(path);
  const setSubagent = subagentSetter(props, base);
  switch (kind) {
    case "agent":
      body = (
        <>
          {common}
          <TextField label="Prompt" multiline complete={completer(props, `${path}.prompt`)} {...f("prompt")} value={str(step.prompt)} onChange={(v) => set("prompt", v ?? "")} hint="A Jinja2 template: type {{ for what it can read (inputs, earlier steps' output, memory, the trigger's payload)." />
          <TextField label="Model" {...f("model")} value={str(step.model)} onChange={(v) => set("model", v)} placeholder={str(data.model) ?? "the loop's model"} />
          <TextField label="Subagent" {...f("subagent")} value={str(step.subagent)} onChange={(v) => setSubagent("subagent", v)} list="lke-subagents" hint={subagentHint(props, str(step.subagent), "executor")} />
          {toolPickers(props, base, path, step)}
          <NumberField label="Timeout (seconds per call)" {...f("timeout")} value={num(step.timeout)} onChange={(v) => set("timeout", v)} />
          <NumberField label="Retries" step="1" min={0} {...f("retries")} value={num(step.retries)} onChange={(v) => set("retries", v)} />
          <NumberField label="Max tool rounds" step="1" min={1} max={100} {...f("maxToolRounds")} value={num(step.maxToolRounds)} onChange={(v) => set("maxToolRounds", v)} hint="Tool rounds per run of the step (1–100; default: its subagent's, else 10)." />
          <NumberField label="Max output tokens" step="1" min={1} {...f("maxOutputTokens")} value={num(step.maxOutputTokens)} onChange={(v) => set("maxOutputTokens", v)} hint="The longest answer the step needs, sent as max_tokens (default: none; 4096 under a token or cost budget)." />
          <TriStateField label="Allow truncation" {...f("allowTruncation")} value={bool(step.allowTruncation)} onChange={(x) => set("allowTruncation", x)} defaultText="(default: no, a cut answer fails the step)" />
        </>
      );
      break;
    case "plan":
      body = (
        <>
          {common}
          <TextField label="Task for the planner" multiline complete={completer(props, `${path}.plan`)} {...f("plan")} value={str(step.plan)} onChange={(v) => set("plan", v ?? "")} hint="A Jinja2 template: type {{ for what it can read (inputs, earlier steps' output, memory, the trigger's payload)." />
          <TextField label="Planner" {...f("planner")} value={str(step.planner)} onChange={(v) => setSubagent("planner", v)} list="lke-subagents" placeholder="(built-in planner)" hint={subagentHint(props, str(step.planner), "planner")} />
          <TextField label="Executor" {...f("executor")} value={str(step.executor)} onChange={(v) => setSubagent("executor", v)} list="lke-subagents" placeholder="(the loop's model)" hint={subagentHint(props, str(step.executor), "executor")} />
          <TextField label="Model" {...f("model")} value={str(step.model)} onChange={(v) => set("model", v)} placeholder={str(data.model) ?? "the loop's model"} />
          <NumberField label="Max steps per plan" step="1" min={1} {...f("maxSteps")} value={num(step.maxSteps)} onChange={(v) => set("maxSteps", v)} />
          <NumberField label="Max plans (iterations)" step="1" min={1} {...f("maxIterations")} value={num(step.maxIterations)} onChange={(v) => set("maxIterations", v)} />
          <PlanTemplates {...props} path={path} step={step} />
        </>
      );
      break;
    case "tool":
      body = (
        <>
          {common}
          <TextField label="Tool (connector.tool)" {...f("tool")} value={str(step.tool)} onChange={(v) => set("tool", v ?? "")} list="lke-tools" hint="One tool of a connector, called with the arguments below: no model call." />
          <ToolArguments {...props} path={path} step={step} />
        </>
      );
      break;
    case "approval":
      body = (
        <>
          {common}
          <TextField label="Question to the approver" multiline complete={completer(props, `${path}.approve`)} {...f("approve")} value={str(step.approve)} onChange={(v) => set("approve", v ?? "")} />
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
      body = <p className="lke-muted">This step needs one of prompt, tool, parallel, sequential, when or approve. Fix it in the YAML.</p>;
  }
  const kindName: Record<StepKind, string> = { agent: "Agent", approval: "Approval gate", plan: "Plan", tool: "Tool call", parallel: "Parallel group", sequential: "Sequence", conditional: "Condition", unknown: "Step" };
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

/**
 * A tool step's arguments: one field per argument. Text is a Jinja2 template; other
 * values (numbers, lists, mappings) are shown as JSON and edited in the YAML view.
 */
function ToolArguments(props: PanelProps & { path: string; step: JsonObject }) {
  const { path, step } = props;
  const args = asObject(step.arguments) ?? {};
  const base = parsePath(path);
  const setArg = (name: string, value: Json | undefined) =>
    props.edit((d) => {
      const next = setAt(d, [...base, "arguments", name], value) as LoopData;
      const left = asObject(getAt(next, [...base, "arguments"]));
      return left && Object.keys(left).length === 0 ? (setAt(next, [...base, "arguments"], undefined) as LoopData) : next;
    });
  return (
    <div className="lke-field" data-path={`${path}.arguments`} data-testid="tool-arguments">
      <span className="lke-label">Arguments</span>
      {fieldErrors(props.errors, `${path}.arguments`)
        .filter((e) => e.path === `${path}.arguments`)
        .map((e, i) => (
          <div className="lke-field-error" role="alert" key={i}>{e.message}</div>
        ))}
      {Object.entries(args).map(([name, value]) => (
        <div key={name} className="lke-item" data-argument={name}>
          {typeof value === "string" ? (
            <TextField label={name} multiline complete={completer(props, `${path}.arguments.${name}`)} path={`${path}.arguments.${name}`} errors={props.errors} disabled={props.readOnly} value={value} onChange={(v) => setArg(name, v ?? "")} hint="A Jinja2 template; one {{ expression }} alone keeps its type (a number stays a number)." />
          ) : (
            <div className="lke-field" data-path={`${path}.arguments.${name}`}>
              <span className="lke-label">{name}</span>
              <code>{JSON.stringify(value)}</code> <small className="lke-muted">(edit in the YAML)</small>
            </div>
          )}
          {!props.readOnly && (
            <button type="button" className="lke-link" onClick={() => setArg(name, undefined)}>
              remove
            </button>
          )}
        </div>
      ))}
      {!props.readOnly && (
        <form
          className="lke-inline"
          onSubmit={(e) => {
            e.preventDefault();
            const input = e.currentTarget.elements.namedItem("name") as HTMLInputElement;
            const name = input.value.trim();
            if (name && !(name in args)) setArg(name, "");
            input.value = "";
          }}
        >
          <input name="name" placeholder="argument name" aria-label="New argument name" />
          <button type="submit">Add argument</button>
        </form>
      )}
    </div>
  );
}

/** onPass / onFail: steps run once after verification; add them here or with + on the graph. */
function ActionsSection(props: PanelProps) {
  const lists: ["onPass" | "onFail", string][] = [
    ["onPass", props.data.verify ? "After a pass (onPass)" : "After the pipeline succeeded (onPass)"],
    ["onFail", "After a failed verification (onFail)"],
  ];
  const add = (list: "onPass" | "onFail", kind: StepKind) => {
    const steps = props.data[list];
    const index = Array.isArray(steps) ? steps.length : 0;
    props.edit((d) => insertStep(d, list, index, newStep(d, kind)));
    props.select(`${list}[${index}]`);
  };
  return (
    <Section id="actions" title="After verification">
      <p className="lke-muted">Steps that deliver the result (post a review, file an issue) run once, after the rounds: onPass only when verification passed, onFail when it did not. Their templates also read verification.passed, .score, .issues and .rounds.</p>
      {lists.map(([list, title]) => {
        const steps = Array.isArray(props.data[list]) ? (props.data[list] as unknown as Json[]) : [];
        return (
          <div key={list} className="lke-field" data-path={list} data-testid={`actions-${list}`}>
            <span className="lke-label">{title}</span>
            {steps.length === 0 && <div className="lke-muted">none</div>}
            <ul className="lke-plain">
              {steps.map((raw, i) => {
                const step = asObject(raw) ?? {};
                return (
                  <li key={i}>
                    <button type="button" className="lke-link" onClick={() => props.select(`${list}[${i}]`)}>
                      {stepLabel(step) ?? `${list}[${i}]`}
                    </button>{" "}
                    <small className="lke-muted">{stepKind(step)}</small>
                  </li>
                );
              })}
            </ul>
            {fieldErrors(props.errors, list)
              .filter((e) => e.path === list)
              .map((e, i) => (
                <div className="lke-field-error" role="alert" key={i}>{e.message}</div>
              ))}
            {!props.readOnly && (list === "onPass" || props.data.verify) && (
              <div className="lke-inline">
                <button type="button" onClick={() => add(list, "tool")}>Add a tool call</button>
                <button type="button" onClick={() => add(list, "agent")}>Add an agent</button>
              </div>
            )}
          </div>
        );
      })}
    </Section>
  );
}

/** A plan step's templates: the kinds of step its planner may choose. */
function PlanTemplates(props: PanelProps & { path: string; step: JsonObject }) {
  const { path, step } = props;
  const templates = asObject(step.templates) ?? {};
  const base = parsePath(path);
  const setTemplate = (name: string, field: FieldOf<Spec.PlanTemplate>, value: Json | undefined) => props.edit((d) => setAt(d, [...base, "templates", name, field], value) as LoopData);
  const setSubagent = (name: string) => subagentSetter(props, [...base, "templates", name]);
  return (
    <div className="lke-field" data-path={`${path}.templates`} data-testid="plan-templates">
      <span className="lke-label">Templates the planner may choose</span>
      {fieldErrors(props.errors, `${path}.templates`)
        .filter((e) => e.path === `${path}.templates`)
        .map((e, i) => (
          <div className="lke-field-error" role="alert" key={i}>{e.message}</div>
        ))}
      {Object.entries(templates).map(([name, raw]) => {
        const t = asObject(raw) ?? {};
        const tp = `${path}.templates.${name}`;
        const p = (field: FieldOf<Spec.PlanTemplate>) => ({ path: `${tp}.${field}`, errors: props.errors, disabled: props.readOnly });
        return (
          <fieldset key={name} className="lke-item" data-template={name}>
            <legend>
              {name}
              {!props.readOnly && Object.keys(templates).length > 1 && (
                <button type="button" className="lke-link" onClick={() => props.edit((d) => setAt(d, [...base, "templates", name], undefined) as LoopData)}>
                  remove
                </button>
              )}
            </legend>
            <TextField label="Description (what the planner reads)" {...p("description")} value={str(t.description)} onChange={(v) => setTemplate(name, "description", v ?? "")} />
            <TextField label="Prompt" multiline complete={completer(props, `${tp}.prompt`)} {...p("prompt")} value={str(t.prompt)} onChange={(v) => setTemplate(name, "prompt", v ?? "")} hint="Sees {{ task }}, {{ input }} and {{ results }}." />
            <TextField label="Subagent" {...p("subagent")} value={str(t.subagent)} onChange={(v) => setSubagent(name)("subagent", v)} list="lke-subagents" placeholder="(the plan's executor)" />
            {toolPickers(props, [...base, "templates", name], tp, t)}
            <NumberField label="Max tool rounds" step="1" min={1} max={100} {...p("maxToolRounds")} value={num(t.maxToolRounds)} onChange={(v) => setTemplate(name, "maxToolRounds", v)} hint="Per planned step (1–100; default: its subagent's, else 10)." />
          </fieldset>
        );
      })}
      {!props.readOnly && (
        <form
          className="lke-inline"
          onSubmit={(e) => {
            e.preventDefault();
            const input = e.currentTarget.elements.namedItem("name") as HTMLInputElement;
            const name = input.value.trim();
            if (name && !templates[name]) props.edit((d) => setAt(d, [...base, "templates", name], { description: "Describe when the planner should choose this", prompt: "{{ input }}" }) as LoopData);
            input.value = "";
          }}
        >
          <input name="name" placeholder="template name" aria-label="New template name" />
          <button type="submit">Add template</button>
        </form>
      )}
    </div>
  );
}

function asArrayLength(v: Json | undefined): number {
  return Array.isArray(v) ? v.length : 0;
}

function TriggerSection(props: PanelProps) {
  const t = asObject(props.data.trigger) ?? {};
  const set = setterFor<TriggerField>(props, "trigger");
  const f = (name: TriggerField) => ({ path: `trigger.${name}`, errors: props.errors, disabled: props.readOnly });
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
          <SelectField label="Missed due times" {...f("catchUp")} value={str(t.catchUp)} options={[["all", "fire each, oldest first"], ["latest", "fire only the latest"]]} allowEmpty="(default: fire each)" onChange={(v) => set("catchUp", v)} />
          <NumberField label="Catch up (minutes back, default 5)" step="1" min={1} max={10080} {...f("catchUpMinutes")} value={num(t.catchUpMinutes)} onChange={(v) => set("catchUpMinutes", v)} />
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
    .filter((e) => inPipeline(e.path)) // makers are pipeline steps
    .map((e) => stepLabel(e.step))
    .filter((l): l is string => !!l);
  const f = (name: FieldOf<Spec.Verify>) => ({ path: `verify.${name}`, errors: props.errors, disabled: props.readOnly });
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
  const set = setterFor<FieldOf<Spec.Verify>>(props, "verify");
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
      <TextField
        label="Checker"
        {...f("checker")}
        value={asStringList(v.checker).join(", ")}
        onChange={(x) => {
          // "a, b" is several checkers (a list); one name stays a string.
          const names = (x ?? "").split(",").map((n) => n.trim()).filter(Boolean);
          const value: Json = names.length > 1 ? names : (names[0] ?? x ?? "");
          props.edit((d) => adopt(setAt(d, ["verify", "checker"], value) as LoopData, "subagents", names, props.suggestions.defs));
        }}
        list="lke-checkers"
        hint={`A verifier subagent or the built-in Adversarial Verifier; several, comma-separated. ${COPY_NOTE}`}
      />
      <NumberField label="Max rounds" step="1" min={1} {...f("maxRounds")} value={num(v.maxRounds)} onChange={(x) => set("maxRounds", x)} />
      <TriStateField label="Auto-retry" {...f("autoRetry")} value={bool(v.autoRetry)} onChange={(x) => set("autoRetry", x)} defaultText="(default: yes)" />
      <NumberField label="Pass score (0-1)" step="0.05" min={0} {...f("passScore")} value={num(v.passScore)} onChange={(x) => set("passScore", x)} />
      {/* Issue 18 (convergence): severities, several checkers, what a failure does. */}
      <ListField label="Block on (issue severities)" {...f("blockOn")} value={asStringList(v.blockOn)} onChange={(x) => set("blockOn", x)} suggestions={["blocker", "major", "minor"]} hint="Issues of these severities fail a round (default: blocker, major); the others are reported, not retried." />
      <SelectField label="Several checkers must" {...f("require")} value={str(v.require)} options={[["all", "all pass"], ["majority", "pass by majority"]]} allowEmpty="(default: all pass)" onChange={(x) => set("require", x)} />
      <TriStateField label="Stop when the checker repeats itself" {...f("stallOnRepeat")} value={bool(v.stallOnRepeat)} onChange={(x) => set("stallOnRepeat", x)} defaultText="(default: yes, as stalled)" />
      <SelectField label="When no round passes" {...f("onFail")} value={str(v.onFail)} options={[["fail", "fail the run"], ["accept-best", "accept the best round"], ["escalate", "ask a person (escalate)"]]} allowEmpty="(default: fail the run)" onChange={(x) => set("onFail", x)} />
    </Section>
  );
}

function BudgetSection(props: PanelProps) {
  const b = asObject(props.data.budget);
  const f = (name: FieldOf<Spec.Budget>) => ({ path: `budget.${name}`, errors: props.errors, disabled: props.readOnly });
  const set = (field: FieldOf<Spec.Budget>, value: Json | undefined) =>
    props.edit((d) => {
      const next = setAt(d, ["budget", field], value) as LoopData;
      return asObject(next.budget) && Object.keys(asObject(next.budget)!).length === 0 ? (setAt(next, ["budget"], undefined) as LoopData) : next;
    });
  return (
    <Section id="budget" title="Budget (hard limits per run)">
      <NumberField label="Max tokens" step="1" min={1} {...f("maxTokens")} value={num(b?.maxTokens)} onChange={(v) => set("maxTokens", v)} />
      <NumberField label="Max cost (USD)" {...f("maxCostUsd")} value={num(b?.maxCostUsd)} onChange={(v) => set("maxCostUsd", v)} />
      <NumberField label="Max duration (minutes)" {...f("maxDurationMinutes")} value={num(b?.maxDurationMinutes)} onChange={(v) => set("maxDurationMinutes", v)} />
      <NumberField label="Max iterations (passes of the loop)" step="1" min={1} {...f("maxIterations")} value={num(b?.maxIterations)} onChange={(v) => set("maxIterations", v)} />
      <NumberField label="Max model calls" step="1" min={1} {...f("maxModelCalls")} value={num(b?.maxModelCalls)} onChange={(v) => set("maxModelCalls", v)} />
    </Section>
  );
}

function MemorySection(props: PanelProps) {
  const m = asObject(props.data.memory);
  const f = (name: FieldOf<Spec.Memory>) => ({ path: `memory.${name}`, errors: props.errors, disabled: props.readOnly });
  const set = setterFor<FieldOf<Spec.Memory>>(props, "memory");
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
    // A name the team defines elsewhere is copied with its definition.
    props.edit((d) => {
      const copied = adopt(d, props.field, [name], props.suggestions.defs);
      return copied !== d ? copied : (setAt(d, [props.field, name], props.create(name)) as LoopData);
    });
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
      {!props.readOnly && props.names.some((n) => !map[n]) && (
        <p className="lke-muted lke-copy-note">The team&apos;s other loops define: {props.names.filter((n) => !map[n]).join(", ")}. Adding one of them copies its definition into this loop.</p>
      )}
    </Section>
  );
}

function LoopSections(props: PanelProps) {
  const f = (name: FieldOf<LoopData>) => ({ path: name, errors: props.errors, disabled: props.readOnly });
  const set = setterFor<FieldOf<LoopData>>(props, "");
  const sub = (name: string) => (field: FieldOf<Spec.SubAgent>, value: Json | undefined) => props.edit((d) => setAt(d, ["subagents", name, field], value) as LoopData);
  const con = (name: string) => (field: ConnectorField, value: Json | undefined) => props.edit((d) => setAt(d, ["connectors", name, field], value) as LoopData);
  // An email connector's nested smtp settings (smtp.host, smtp.tls).
  const smtp = (name: string) => (field: FieldOf<Spec.SmtpSettings>, value: Json | undefined) => props.edit((d) => setAt(d, ["connectors", name, "smtp", field], value) as LoopData);
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
      <ActionsSection {...props} />
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
            <TextField label="System prompt" multiline complete={completer(props, `subagents.${name}.prompt`)} path={`subagents.${name}.prompt`} errors={props.errors} disabled={props.readOnly} value={str(item.prompt)} onChange={(v) => sub(name)("prompt", v)} />
            <NumberField label="Max tool rounds" step="1" min={1} max={100} path={`subagents.${name}.maxToolRounds`} errors={props.errors} disabled={props.readOnly} value={num(item.maxToolRounds)} onChange={(v) => sub(name)("maxToolRounds", v)} hint="Per step run as this subagent, or per checker round (1–100; default 10)." />
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
          const p = (field: ConnectorField | `smtp.${FieldOf<Spec.SmtpSettings>}`) => ({ path: `connectors.${name}.${field}`, errors: props.errors, disabled: props.readOnly });
          return (
            <>
              <SelectField label="Type" {...p("type")} value={str(item.type)} options={["mcp", "http", "sql", "slack", "email"]} onChange={(v) => con(name)("type", v)} />
              {item.type === "mcp" && <TextField label="Command (stdio)" {...p("command")} value={str(item.command)} onChange={(v) => con(name)("command", v)} />}
              {item.type === "mcp" && <TextField label="URL (http)" {...p("url")} value={str(item.url)} onChange={(v) => con(name)("url", v)} />}
              {item.type === "http" && <TextField label="Base URL" {...p("baseUrl")} value={str(item.baseUrl)} onChange={(v) => con(name)("baseUrl", v)} />}
              {item.type === "sql" && <TextField label="Database URL" {...p("url")} value={str(item.url)} onChange={(v) => con(name)("url", v)} />}
              {item.type === "slack" && <TextField label="Webhook URL variable" {...p("webhookEnv")} value={str(item.webhookEnv)} onChange={(v) => con(name)("webhookEnv", v)} placeholder="SLACK_WEBHOOK_URL" hint="The name of the environment variable that holds the webhook URL, never the URL." />}
              {item.type === "email" && <TextField label="SMTP host" {...p("smtp.host")} value={str(asObject(item.smtp)?.host)} onChange={(v) => smtp(name)("host", v)} />}
              {item.type === "email" && <SelectField label="SMTP TLS" {...p("smtp.tls")} value={str(asObject(item.smtp)?.tls)} options={["starttls", "ssl", "none"]} allowEmpty="starttls (default)" onChange={(v) => smtp(name)("tls", v)} />}
              {item.type === "email" && <TextField label="From" {...p("from")} value={str(item.from)} onChange={(v) => con(name)("from", v)} />}
              {item.type === "email" && <ListField label="To" {...p("to")} value={asStringList(item.to)} onChange={(v) => con(name)("to", v)} />}
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
      <datalist id="lke-tools">
        {declaredTools(props.data).map((s) => (
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
  else if (selected && STEP_LISTS.some((list) => selected.startsWith(`${list}[`))) body = <StepForm {...props} path={selected} />;
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
