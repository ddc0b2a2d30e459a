/**
 * Renaming a step: its label and every reference to it in the loop.
 *
 * The engine records a finished step under its label (an unlabelled one under
 * its path, `pipeline[0]`): templates read it as `steps['Label']`, and the
 * next run's memory holds its output under the same name (`memory['Label']`).
 * The verify stage names its makers by label. A rename rewrites all of them:
 * `verify.maker`, and the `steps` / `memory` references in every template the
 * engine renders (agent prompts, `when:`, plan tasks and plan template
 * prompts, approval questions, subagent prompts, a tool check's arguments and
 * `expect`, tool steps' arguments), in the pipeline and in onPass / onFail, and
 * the `step` of each of `verify.checks`.
 *
 * A reference is a piece of Jinja syntax, never plain text: `steps['X']`,
 * `steps["X"]`, `steps.X` or `steps.get('X', ...)` (and the same on `memory`)
 * inside `{{ }}` / `{% %}` of a template, or anywhere in a `when:` expression.
 */
import { formatPath, getAt, parsePath, setAt, type Path } from "./paths";
import { asObject, iterSteps, stepLabel } from "./steps";
import type { Json, LoopData } from "./types";

/** The two template variables that are keyed by step name. */
const ROOTS = new Set(["steps", "memory"]);

/** `steps.<name>` finds these on a dict (the sandbox's getattr), not the item. */
const DICT_ATTRIBUTES = new Set(["clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values"]);

/** Names Jinja reads as constants or operators: never written as `steps.<name>`. */
const KEYWORDS = new Set(["and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None"]);

interface Token {
  type: "name" | "string" | "op";
  value: string;
  start: number;
  end: number;
}

interface Edit {
  from: number;
  to: number;
  text: string;
}

/** One reference found in a template: the name it reads and how to rewrite it. */
interface Reference {
  name: string;
  rewrite(newName: string): Edit;
}

const NAME = /[\p{ID_Start}_][\p{ID_Continue}]*/uy;
const SPACE = /\s+/y;
const NUMBER = /\d[\d_]*(\.\d+)?([eE][+-]?\d+)?/y;

/**
 * Tokenize Jinja expression syntax from `start` until `end` (a closing
 * delimiter, met outside brackets as Jinja's lexer does) or the text's end.
 * Returns the tokens and the position after the closing delimiter.
 */
function tokenize(text: string, start: number, end: string | null): { tokens: Token[]; next: number } {
  const tokens: Token[] = [];
  let depth = 0;
  let i = start;
  const sticky = (re: RegExp) => {
    re.lastIndex = i;
    const m = re.exec(text);
    return m ? m[0] : null;
  };
  while (i < text.length) {
    if (end !== null && depth === 0 && text.startsWith(end, i)) return { tokens, next: i + end.length };
    const ch = text[i];
    const space = sticky(SPACE);
    if (space) {
      i += space.length;
      continue;
    }
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== ch) j += text[j] === "\\" ? 2 : 1;
      if (j >= text.length) return { tokens, next: text.length }; // unterminated: Jinja refuses it
      tokens.push({ type: "string", value: text.slice(i, j + 1), start: i, end: j + 1 });
      i = j + 1;
      continue;
    }
    const name = sticky(NAME);
    if (name) {
      tokens.push({ type: "name", value: name, start: i, end: i + name.length });
      i += name.length;
      continue;
    }
    const number = sticky(NUMBER);
    if (number) {
      i += number.length;
      tokens.push({ type: "op", value: number, start: i - number.length, end: i });
      continue;
    }
    if ("([{".includes(ch)) depth++;
    else if (")]}".includes(ch)) depth = Math.max(0, depth - 1);
    tokens.push({ type: "op", value: ch, start: i, end: i + 1 });
    i++;
  }
  return { tokens, next: text.length };
}

/** The value of a Jinja string literal (its quotes included), as Python's unicode-escape reads it. */
export function decodeString(literal: string): string {
  const body = literal.slice(1, -1);
  const simple: Record<string, string> = { "\\": "\\", "'": "'", '"': '"', n: "\n", t: "\t", r: "\r", a: "\x07", b: "\b", f: "\f", v: "\v", "\n": "" };
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch !== "\\" || i + 1 >= body.length) {
      out += ch;
      continue;
    }
    const next = body[i + 1];
    const width = { x: 2, u: 4, U: 8 }[next as "x" | "u" | "U"] ?? 0;
    const hex = body.slice(i + 2, i + 2 + width);
    const octal = /^[0-7]{1,3}/.exec(body.slice(i + 1));
    if (next in simple) {
      out += simple[next];
      i++;
    } else if (width && hex.length === width && /^[0-9a-fA-F]+$/.test(hex)) {
      out += String.fromCodePoint(parseInt(hex, 16));
      i += 1 + width;
    } else if (octal) {
      out += String.fromCodePoint(parseInt(octal[0], 8));
      i += octal[0].length;
    } else {
      out += ch; // an unknown escape keeps its backslash
    }
  }
  return out;
}

/** A Jinja string literal for `value`, in `quote` unless the other quote needs no escaping. */
export function encodeString(value: string, quote: "'" | '"' = "'"): string {
  const other = quote === "'" ? '"' : "'";
  const q = value.includes(quote) && !value.includes(other) ? other : quote;
  const escaped = value.replace(/[\\\n\r\t]/g, (c) => ({ "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" })[c] as string).split(q).join(`\\${q}`);
  return `${q}${escaped}${q}`;
}

/** Whether `steps.<name>` reads the step called `name` (else it needs `steps['name']`). */
export function isAttributeName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !DICT_ATTRIBUTES.has(name) && !KEYWORDS.has(name) && !name.startsWith("__");
}

/** The `steps` / `memory` references among one expression's tokens. */
function referencesIn(tokens: Token[], roots: Set<string>): Reference[] {
  const out: Reference[] = [];
  const is = (k: number, type: Token["type"], value?: string) => k < tokens.length && tokens[k].type === type && (value === undefined || tokens[k].value === value);
  const quoted = (token: Token): Reference => ({
    name: decodeString(token.value),
    rewrite: (newName) => ({ from: token.start, to: token.end, text: encodeString(newName, token.value[0] as "'" | '"') }),
  });
  tokens.forEach((token, k) => {
    if (token.type !== "name" || !roots.has(token.value) || (k > 0 && is(k - 1, "op", "."))) return;
    if (is(k + 1, "op", "[") && is(k + 2, "string") && is(k + 3, "op", "]")) {
      out.push(quoted(tokens[k + 2]));
    } else if (is(k + 1, "op", ".") && is(k + 2, "name", "get") && is(k + 3, "op", "(") && is(k + 4, "string") && (is(k + 5, "op", ",") || is(k + 5, "op", ")"))) {
      out.push(quoted(tokens[k + 4]));
    } else if (is(k + 1, "op", ".") && is(k + 2, "name") && !DICT_ATTRIBUTES.has(tokens[k + 2].value)) {
      const dot = tokens[k + 1];
      const attr = tokens[k + 2];
      out.push({
        name: attr.value,
        rewrite: (newName) => ({ from: dot.start, to: attr.end, text: isAttributeName(newName) ? `.${newName}` : `[${encodeString(newName)}]` }),
      });
    }
  });
  return out;
}

/** Every `steps` / `memory` reference in a prompt template (inside its `{{ }}` and `{% %}` only). */
function templateReferences(source: string, roots: Set<string>): Reference[] {
  const out: Reference[] = [];
  const open = /\{([{%#])([-+]?)/g;
  let match: RegExpExecArray | null;
  while ((match = open.exec(source)) !== null) {
    const kind = match[1];
    const bodyStart = match.index + match[0].length;
    if (kind === "#") {
      const close = source.indexOf("#}", bodyStart);
      open.lastIndex = close < 0 ? source.length : close + 2;
      continue;
    }
    if (kind === "%" && /^\s*raw\s*[-+]?%\}/.test(source.slice(bodyStart))) {
      const endraw = /\{%[-+]?\s*endraw\s*[-+]?%\}/g;
      endraw.lastIndex = bodyStart;
      const found = endraw.exec(source);
      open.lastIndex = found ? found.index + found[0].length : source.length;
      continue;
    }
    const { tokens, next } = tokenize(source, bodyStart, kind === "{" ? "}}" : "%}");
    out.push(...referencesIn(tokens, roots));
    open.lastIndex = next;
  }
  return out;
}

function expressionReferences(source: string, roots: Set<string>): Reference[] {
  return referencesIn(tokenize(source, 0, null).tokens, roots);
}

type Syntax = "template" | "expression";

function referencesOf(source: string, syntax: Syntax): Reference[] {
  if (syntax === "template" && !source.includes("{")) return [];
  return syntax === "template" ? templateReferences(source, ROOTS) : expressionReferences(source, ROOTS);
}

/** Rewrite the references to step `from` in one template or `when:` expression; other text is kept byte for byte. */
export function rewriteReferences(source: string, syntax: Syntax, from: string, to: string): string {
  const edits = referencesOf(source, syntax)
    .filter((r) => r.name === from)
    .map((r) => r.rewrite(to))
    .sort((a, b) => b.from - a.from);
  let out = source;
  for (const edit of edits) out = out.slice(0, edit.from) + edit.text + out.slice(edit.to);
  return out;
}

/** Every template of the loop, as [field path, syntax]: the fields the engine renders. */
export function templateFields(data: LoopData): [Path, Syntax][] {
  const out: [Path, Syntax][] = [];
  for (const entry of iterSteps(data)) {
    const base = parsePath(entry.path);
    for (const field of ["prompt", "plan", "approve"]) {
      if (typeof entry.step[field] === "string") out.push([[...base, field], "template"]);
    }
    if (typeof entry.step.when === "string") out.push([[...base, "when"], "expression"]);
    // A tool step's arguments: every string, at any depth, is a template.
    if (typeof entry.step.tool === "string") {
      for (const path of textsIn(entry.step.arguments, [...base, "arguments"])) out.push([path, "template"]);
    }
    for (const [name, template] of Object.entries(asObject(entry.step.templates) ?? {})) {
      if (typeof asObject(template)?.prompt === "string") out.push([[...base, "templates", name, "prompt"], "template"]);
    }
  }
  for (const [name, agent] of Object.entries(asObject(data.subagents) ?? {})) {
    if (typeof asObject(agent)?.prompt === "string") out.push([["subagents", name, "prompt"], "template"]);
  }
  // verify.checks (issue 18): a tool check's text arguments (at any depth) and its `expect`.
  checkList(data).forEach((check, i) => {
    const c = asObject(check);
    if (!c) return;
    for (const path of textsIn(c.arguments, ["verify", "checks", i, "arguments"])) out.push([path, "template"]);
    if (typeof c.expect === "string") out.push([["verify", "checks", i, "expect"], "expression"]);
  });
  return out;
}

function checkList(data: LoopData): Json[] {
  const checks = asObject(data.verify)?.checks;
  return Array.isArray(checks) ? checks : [];
}

/** The paths of the text values inside `value` (mappings and lists, at any depth). */
function textsIn(value: Json | undefined, base: Path): Path[] {
  if (typeof value === "string") return [base];
  if (Array.isArray(value)) return value.flatMap((v, i) => textsIn(v, [...base, i]));
  const object = asObject(value);
  return object ? Object.entries(object).flatMap(([k, v]) => textsIn(v, [...base, k])) : [];
}

function makerList(data: LoopData): Json[] | null {
  const makers = asObject(data.verify)?.maker;
  if (typeof makers === "string") return [makers];
  return Array.isArray(makers) ? makers : null;
}

/** The field paths that refer to the step called `name` (templates first, then `verify.maker[i]`). */
export function referencesTo(data: LoopData, name: string): string[] {
  const out: string[] = [];
  for (const [path, syntax] of templateFields(data)) {
    if (referencesOf(getAt(data, path) as string, syntax).some((r) => r.name === name)) out.push(formatPath(path));
  }
  const makers = makerList(data);
  makers?.forEach((m, i) => {
    if (m === name) out.push(typeof asObject(data.verify)?.maker === "string" ? "verify.maker" : `verify.maker[${i}]`);
  });
  checkList(data).forEach((c, i) => {
    if (asObject(c)?.step === name) out.push(`verify.checks[${i}].step`);
  });
  return out;
}

/** Rewrite every reference to the step called `from` so that it names `to` (the labels themselves are not touched). */
export function renameReferences(data: LoopData, from: string, to: string): LoopData {
  if (from === to) return data;
  let out = data;
  for (const [path, syntax] of templateFields(data)) {
    const source = getAt(out, path) as string;
    const rewritten = rewriteReferences(source, syntax, from, to);
    if (rewritten !== source) out = setAt(out, path, rewritten) as LoopData;
  }
  const makers = asObject(out.verify)?.maker;
  if (makers === from) out = setAt(out, ["verify", "maker"], to) as LoopData;
  else if (Array.isArray(makers) && makers.includes(from)) {
    out = setAt(out, ["verify", "maker"], makers.map((m) => (m === from ? to : m))) as LoopData;
  }
  checkList(out).forEach((c, i) => {
    if (asObject(c)?.step === from) out = setAt(out, ["verify", "checks", i, "step"], to) as LoopData;
  });
  return out;
}

/** Why the step at `path` cannot take `label`, or null when it can. */
export function renameRefusal(data: LoopData, path: string, label: string | undefined): string | null {
  if (label === undefined) return null;
  const clash = iterSteps(data).find((e) => e.path !== path && stepLabel(e.step) === label);
  return clash ? `Not renamed: another step (${clash.path}) is labelled '${label}'. Labels must be unique.` : null;
}

/**
 * Give the step at `path` the label `label` (undefined removes it) and make
 * every reference to it follow: references to its old label, or to its path
 * when it had none, name the new label. Removing a label leaves the references
 * as they are (the validator then reports them), as does a refused rename:
 * check `renameRefusal` first.
 */
export function renameStep(data: LoopData, path: string, label: string | undefined): LoopData {
  const step = asObject(getAt(data, parsePath(path)));
  if (!step) return data;
  const before = stepLabel(step) ?? path;
  const out = setAt(data, [...parsePath(path), "label"], label) as LoopData;
  return label ? renameReferences(out, before, label) : out;
}
