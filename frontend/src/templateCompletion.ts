/**
 * What a template may read where it is, for completion after `{{` / `{%` (pure: no DOM).
 *
 * The candidates follow the engine's template check (loopkit/template_context.py): the
 * loop's declared `inputs.*`; `steps['X'].output` of the steps that finished before this
 * template renders (earlier in run order, not a parallel sibling, not the step itself),
 * with `.output.<field>` when the step declares an output schema with properties; the
 * memory keys the loop writes; `trigger.payload.*` by the trigger's kind (a webhook's
 * from GitHub's payload schema, `loopkit.webhooks`); `round` and `feedback` in the
 * pipeline of a loop that verifies; `verification.*` in onPass / onFail.
 */
import { parsePath } from "./paths";
import { STEP_LISTS, asObject, childLists, stepKind, stepLabel } from "./steps";
import type { Json, LoopData, StepData } from "./types";

export interface TemplateCompletion {
  /** The expression inserted (it replaces the text from `from` to the caret). */
  label: string;
  /** A short note shown beside it. */
  detail: string;
  /** A longer explanation. */
  info?: string;
}

export interface CompletionContext {
  /** Where the expression being typed starts (an offset into the text given). */
  from: number;
  /** What was typed of it (the text from `from` to the caret). */
  typed: string;
  options: TemplateCompletion[];
}

/** GitHub webhook payload key trees (frontend/src/generated/webhooks.json; see loopkit/webhooks.py). */
export interface WebhookTrees {
  /** `nodes[i]` maps a key to the index of the node below it; `*` any key, `[]` an array's items. */
  nodes: Record<string, number>[];
  /** Event name -> the index of its payload's node. */
  events: Record<string, number>;
}

const CRON_PAYLOAD = ["schedule", "timezone", "due_time"];
const COMPLETION_PAYLOAD = ["loop", "run_id", "status", "depth"];
const CUSTOM_EVENT_PAYLOAD = ["event", "data", "depth"];
const VERIFICATION_FIELDS = ["passed", "score", "issues", "rounds", "outcome", "accepted"];
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `steps['X']` with X quoted as the rename code and the engine read it. */
function stepRef(root: "steps" | "memory", name: string): string {
  return name.includes("'") && !name.includes('"') ? `${root}["${name}"]` : `${root}['${name.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}']`;
}

/** The name the engine records a step under: its label, else its path. */
const nameOf = (step: StepData, path: string) => stepLabel(step) ?? path;

interface Seen {
  name: string;
  path: string;
  step: StepData;
  /** Why it may not have run (a conditional branch), or null. */
  why: string | null;
}

/**
 * The steps finished before the template at `fieldPath` renders, in run order
 * (as `_Timeline` in loopkit/template_context.py).
 */
export function stepsBefore(data: LoopData, fieldPath: string): Seen[] {
  const owner = owningStepPath(fieldPath);
  const done: Seen[] = [];
  let found: Seen[] | null = null;
  const visit = (step: StepData, path: string, seen: Seen[]): void => {
    if (found) return;
    if (path === owner) {
      found = seen.slice();
      return;
    }
    const kind = stepKind(step);
    if (kind === "parallel") {
      const before = seen.length;
      const added: Seen[] = [];
      for (const [listPath, members] of childLists(step).map(([k, v]) => [`${path}.${k}`, v] as const)) {
        members.forEach((member, i) => {
          const mine = seen.slice(0, before);
          visit(member, `${listPath}[${i}]`, mine);
          added.push(...mine.slice(before));
        });
      }
      seen.push(...added);
      return;
    }
    if (kind === "conditional") {
      const before = seen.length;
      for (const [branch, members] of childLists(step)) {
        const mine = seen.slice(0, before);
        members.forEach((member, i) => visit(member, `${path}.${branch}[${i}]`, mine));
        for (const entry of mine.slice(before)) seen.push({ ...entry, why: entry.why ?? `only when ${path}.when is ${branch === "then" ? "true" : "false"}` });
      }
      return;
    }
    if (kind === "sequential") {
      for (const [branch, members] of childLists(step)) members.forEach((member, i) => visit(member, `${path}.${branch}[${i}]`, seen));
      return;
    }
    if (kind === "agent" || kind === "plan" || kind === "tool") seen.push({ name: nameOf(step, path), path, step, why: null });
  };
  const list = (key: "pipeline" | "onPass" | "onFail"): Json[] => (Array.isArray(data[key]) ? (data[key] as unknown as Json[]) : []);
  list("pipeline").forEach((step, i) => visit(asObject(step) ?? {}, `pipeline[${i}]`, done));
  if (found) return found;
  if (owner && (owner.startsWith("onPass") || owner.startsWith("onFail"))) {
    const key = owner.startsWith("onPass") ? "onPass" : "onFail";
    const seen = done.slice();
    list(key).forEach((step, i) => visit(asObject(step) ?? {}, `${key}[${i}]`, seen));
    return found ?? seen;
  }
  // Loop-level templates (subagent prompts, verify.checks): after the whole pipeline.
  return done;
}

/** The path of the step a template field belongs to (`pipeline[1].parallel[0].prompt` -> `pipeline[1].parallel[0]`). */
export function owningStepPath(fieldPath: string): string | null {
  const match = /^((?:pipeline|onPass|onFail)\[\d+\](?:\.(?:parallel|sequential|then|else)\[\d+\])*)/.exec(fieldPath);
  return match ? match[1] : null;
}

/** Where the expression being typed starts in `text` (the caret is at its end), after `{{`/`{%`; -1 outside one. */
export function expressionStart(text: string): number {
  const open = Math.max(text.lastIndexOf("{{"), text.lastIndexOf("{%"));
  if (open < 0) return -1;
  const close = Math.max(text.lastIndexOf("}}"), text.lastIndexOf("%}"));
  if (close > open) return -1;
  let start = open + 2;
  let depth = 0;
  let quote: string | null = null;
  for (let i = open + 2; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (depth > 0 && (c === "'" || c === '"')) quote = c;
    else if (c === "[") depth++;
    else if (c === "]") depth = Math.max(0, depth - 1);
    else if (depth === 0 && !/[\w.]/.test(c)) start = i + 1;
  }
  return start;
}

function payloadOptions(data: LoopData, typed: string, webhooks: WebhookTrees | undefined): TemplateCompletion[] {
  const trigger = asObject(data.trigger);
  const type = typeof trigger?.type === "string" ? trigger.type : "manual";
  const flat = (keys: string[], what: string) => keys.map((k) => ({ label: `trigger.payload.${k}`, detail: what }));
  if (type === "cron") return flat(CRON_PAYLOAD, "cron run");
  if (type === "event") return flat(typeof trigger?.loop === "string" ? COMPLETION_PAYLOAD : CUSTOM_EVENT_PAYLOAD, typeof trigger?.loop === "string" ? "loop-completion event" : "custom event");
  if (type !== "webhook" || !webhooks || typeof trigger?.event !== "string") return [];
  const event = trigger.event;
  let index = webhooks.events[event];
  if (index === undefined) return [];
  // Follow the segments already typed after `trigger.payload.` (the last one is being typed).
  const rest = typed.startsWith("trigger.payload.") ? typed.slice("trigger.payload.".length) : "";
  const segments = rest.split(/\.|(?=\[)/);
  segments.pop();
  let prefix = "trigger.payload";
  for (const segment of segments) {
    const node = webhooks.nodes[index];
    const item = /^\[(\d+)\]$/.exec(segment);
    const next = item ? node["[]"] : (node[segment] ?? node["*"]);
    if (next === undefined) return [];
    index = next;
    prefix += item ? segment : `.${segment}`;
  }
  const node = webhooks.nodes[index];
  const out: TemplateCompletion[] = [];
  for (const key of Object.keys(node).sort()) {
    if (key === "*") continue;
    const below = webhooks.nodes[node[key]];
    const leaf = Object.keys(below).length === 0;
    if (key === "[]") out.push({ label: `${prefix}[0]`, detail: `${event} payload (list)` });
    else if (IDENTIFIER.test(key)) out.push({ label: `${prefix}.${key}`, detail: `${event} payload${leaf ? "" : " (object)"}` });
  }
  return out;
}

/** Every candidate for an expression in the template at `fieldPath`, given what was `typed` of it. */
export function templateOptions(data: LoopData, fieldPath: string, typed: string, webhooks?: WebhookTrees): TemplateCompletion[] {
  const out: TemplateCompletion[] = [];
  const inputs = asObject(data.inputs) ?? {};
  for (const [name, raw] of Object.entries(inputs)) {
    const input = asObject(raw) ?? {};
    const description = typeof input.description === "string" ? input.description : undefined;
    const label = IDENTIFIER.test(name) ? `inputs.${name}` : `inputs['${name}']`;
    const optional = input.required !== true && input.default === undefined;
    out.push({ label: optional ? `${label} | default('')` : label, detail: optional ? "input (optional)" : "input", info: description });
  }
  const owner = owningStepPath(fieldPath);
  for (const seen of stepsBefore(data, fieldPath)) {
    const ref = stepRef("steps", seen.name);
    const detail = seen.why ? `step output (${seen.why}: guard it)` : stepKind(seen.step) === "tool" ? "tool result" : "step output";
    out.push({ label: `${ref}.output`, detail, info: `The output of ${seen.path}${seen.why ? `; it may not have run (${seen.why}), so read it under {% if ${ref} is defined %}` : ""}.` });
    const output = asObject(seen.step.output);
    const schema = asObject(output?.schema ?? null);
    const properties = asObject(schema?.properties ?? null);
    for (const [field, prop] of Object.entries(properties ?? {})) {
      if (!IDENTIFIER.test(field)) continue;
      const description = asObject(prop)?.description;
      out.push({ label: `${ref}.output.${field}`, detail: `field of ${seen.name}'s output`, info: typeof description === "string" ? description : undefined });
    }
  }
  const memory = asObject(data.memory);
  if (memory) {
    const keys = new Set<string>();
    if (memory.persistence !== "minimal") {
      for (const list of ["pipeline", "onPass"] as const) {
        const walk = (steps: unknown, path: string) => {
          if (!Array.isArray(steps)) return;
          steps.forEach((raw, i) => {
            const step = asObject(raw) ?? {};
            const here = `${path}[${i}]`;
            const kind = stepKind(step);
            if (kind === "agent" || kind === "plan" || kind === "tool") keys.add(nameOf(step, here));
            for (const [child, members] of childLists(step)) walk(members as Json[], `${here}.${child}`);
          });
        };
        walk(data[list], list);
      }
    }
    for (const key of keys) out.push({ label: `${stepRef("memory", key)}`, detail: "memory (the last run's output)" });
    out.push({ label: "memory['last_run']", detail: "memory (the last run: id, status, finished_at)" });
  }
  out.push(...payloadOptions(data, typed, webhooks));
  out.push({ label: "trigger.type", detail: "trigger" });
  if (asObject(data.trigger)?.type === "event" || asObject(data.trigger)?.type === "webhook") out.push({ label: "trigger.event", detail: "trigger" });
  if (data.verify && (!owner || owner.startsWith("pipeline"))) {
    out.push({ label: "round", detail: "verification round (1, 2, …)", info: "The round of verification this run of the step is in: 1 first, then one more each time the checker rejects." });
    out.push({ label: "feedback", detail: "the checker's issues", info: "What the checker said about the previous round (empty in round 1): guard it with {% if feedback %}." });
  }
  if (owner && (owner.startsWith("onPass") || owner.startsWith("onFail"))) {
    for (const field of VERIFICATION_FIELDS) out.push({ label: `verification.${field}`, detail: "verification result" });
  }
  if (/\.templates\.[^.]+\.prompt$|\.templates\['[^']*'\]\.prompt$/.test(fieldPath)) {
    out.unshift(
      { label: "task", detail: "plan template: the planner's task for this step" },
      { label: "input", detail: "plan template: the input the planner gave this step" },
      { label: "results", detail: "plan template: the results of the plan's earlier steps" },
    );
  }
  out.push({ label: "loop.name", detail: "this loop" }, { label: "run.id", detail: "this run" });
  return out;
}

/** Keep the candidates matching what was typed: those starting with it first, then those containing it. */
export function filterOptions(options: TemplateCompletion[], typed: string): TemplateCompletion[] {
  const t = typed.toLowerCase();
  if (!t) return options;
  const starts = options.filter((o) => o.label.toLowerCase().startsWith(t));
  const contains = options.filter((o) => !o.label.toLowerCase().startsWith(t) && o.label.toLowerCase().includes(t));
  return [...starts, ...contains];
}

/**
 * The completion at the end of `textBefore` (a template's text up to the caret), or null
 * when the caret is not inside `{{ … }}` or `{% … %}`. Options are not filtered.
 */
export function completeTemplate(data: LoopData, fieldPath: string, textBefore: string, webhooks?: WebhookTrees): CompletionContext | null {
  const from = expressionStart(textBefore);
  if (from < 0) return null;
  const typed = textBefore.slice(from);
  return { from, typed, options: templateOptions(data, fieldPath, typed, webhooks) };
}

/**
 * The text that inserting `option` over [from, to) of `value` gives, and where the caret goes:
 * the `{{` / `{%` is closed when nothing closes it after the caret, with a space after the opener.
 */
export function insertCompletion(value: string, from: number, to: number, option: TemplateCompletion): { text: string; caret: number } {
  const before = value.slice(0, from);
  const after = value.slice(to);
  const lead = /[{%]$/.test(before) ? " " : "";
  const opener = before.lastIndexOf("{%") > before.lastIndexOf("{{") ? "%}" : "}}";
  const closed = after.trimStart().startsWith(opener);
  const inserted = `${lead}${option.label}${closed ? "" : ` ${opener}`}`;
  return { text: before + inserted + after, caret: before.length + inserted.length };
}

/** Whether a field path names a template the engine renders (where `{{` completes). */
export function isTemplateField(fieldPath: string): boolean {
  const parts = parsePath(fieldPath);
  const last = parts[parts.length - 1];
  if (typeof parts[0] === "string" && (STEP_LISTS as readonly string[]).includes(parts[0])) {
    return ["prompt", "plan", "approve", "when"].includes(String(last)) || parts.includes("arguments");
  }
  return (parts[0] === "subagents" && last === "prompt") || (parts[0] === "verify" && parts[1] === "checks");
}

