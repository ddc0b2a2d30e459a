/**
 * The YAML view's reading of its text through the Lezer tree CodeMirror already has
 * (@codemirror/lang-yaml), instead of a second YAML parser in the bundle (the `yaml` package is
 * about 25 KB gzipped): the field under the caret (`{{` completion) and the document's data
 * (codemirror-json-schema resolves a step's kind from it).
 */
import { yamlLanguage } from "@codemirror/lang-yaml";
import type { SyntaxNode } from "@lezer/common";
import { formatPath, type Path } from "./paths";

const SCALARS = new Set(["Literal", "QuotedLiteral", "BlockLiteral"]);
const PUNCTUATION = new Set([":", "-", ",", "{", "}", "[", "]", "?", "⚠", "Comment", "Anchor", "Alias", "Tag"]);

export interface ScalarAt {
  path: string;
  from: number;
  quote: "'" | '"' | null;
}

function children(node: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let child = node.firstChild; child; child = child.nextSibling) out.push(child);
  return out;
}

/** The value of a node (a Document, an Item, a Pair's value): its first non-punctuation child. */
function inner(node: SyntaxNode): SyntaxNode | null {
  return children(node).find((c) => !PUNCTUATION.has(c.name)) ?? null;
}

function pairParts(pair: SyntaxNode): { key: SyntaxNode | null; value: SyntaxNode | null } {
  const parts = children(pair);
  const key = parts.find((c) => c.name === "Key") ?? null;
  const colon = parts.findIndex((c) => c.name === ":");
  const value = colon >= 0 ? (parts.slice(colon + 1).find((c) => !PUNCTUATION.has(c.name)) ?? null) : null;
  return { key, value };
}

function scalarText(text: string, node: SyntaxNode): string {
  const raw = text.slice(node.from, node.to);
  if (node.name === "QuotedLiteral") {
    const body = raw.slice(1, raw.length > 1 && raw.endsWith(raw[0]) ? -1 : undefined);
    return raw[0] === "'" ? body.replace(/''/g, "'") : body.replace(/\\"/g, '"').replace(/\\n/g, "\n").replace(/\\\\/g, "\\");
  }
  if (node.name === "BlockLiteral") {
    const lines = raw.split("\n").slice(1);
    const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length), Infinity);
    const body = lines.map((l) => l.slice(Number.isFinite(indent) ? indent : 0)).join(raw.startsWith(">") ? " " : "\n").replace(/\s+$/, "");
    const header = raw.split("\n")[0];
    return header.includes("-") ? body : `${body}\n`; // "clip" (the default) keeps one line break
  }
  return raw.trim();
}

function keyText(text: string, key: SyntaxNode): string | null {
  const scalar = inner(key);
  return scalar && SCALARS.has(scalar.name) ? scalarText(text, scalar) : null;
}

/** The field path (`pipeline[1].prompt`) and the scalar holding `pos` in a YAML text, or null. */
export function scalarAt(text: string, pos: number): ScalarAt | null {
  const tree = yamlLanguage.parser.parse(text);
  const visit = (node: SyntaxNode | null, path: Path): ScalarAt | null => {
    if (!node || pos < node.from || pos > node.to) return null;
    if (SCALARS.has(node.name)) {
      const first = text[node.from];
      const quote = node.name === "QuotedLiteral" && (first === "'" || first === '"') ? first : null;
      return { path: formatPath(path), from: node.from, quote };
    }
    if (node.name === "BlockMapping" || node.name === "FlowMapping") {
      for (const pair of children(node).filter((c) => c.name === "Pair")) {
        const { key, value } = pairParts(pair);
        const name = key ? keyText(text, key) : null;
        if (name === null || !value || pos < value.from || pos > value.to) continue;
        // `prompt: {{ steps` parses as a flow mapping: the field is where it starts.
        if (!SCALARS.has(value.name) && ["prompt", "when", "plan", "approve"].includes(name)) return { path: formatPath([...path, name]), from: value.from, quote: null };
        const found = visit(value, [...path, name]);
        if (found) return found;
      }
      return null;
    }
    if (node.name === "BlockSequence" || node.name === "FlowSequence") {
      const items = children(node).filter((c) => !PUNCTUATION.has(c.name));
      for (let i = 0; i < items.length; i++) {
        const item = items[i].name === "Item" ? inner(items[i]) : items[i];
        const found = visit(item, [...path, i]);
        if (found) return found;
      }
      return null;
    }
    return visit(inner(node), path);
  };
  return visit(tree.topNode, []);
}

function plain(raw: string): unknown {
  if (/^-?\d+$/.test(raw)) return Number(raw);
  if (/^-?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) return Number(raw);
  if (/^(true|True|TRUE)$/.test(raw)) return true;
  if (/^(false|False|FALSE)$/.test(raw)) return false;
  if (/^(null|Null|NULL|~)?$/.test(raw)) return null;
  return raw;
}

/** The data of a YAML text, as far as it parses (codemirror-json-schema's `data` of the document). */
export function yamlData(text: string): unknown {
  const tree = yamlLanguage.parser.parse(text);
  const value = (node: SyntaxNode | null): unknown => {
    if (!node) return null;
    if (node.name === "Literal") return plain(text.slice(node.from, node.to).trim());
    if (SCALARS.has(node.name)) return scalarText(text, node);
    if (node.name === "BlockMapping" || node.name === "FlowMapping") {
      const out: Record<string, unknown> = {};
      for (const pair of children(node).filter((c) => c.name === "Pair")) {
        const { key, value: v } = pairParts(pair);
        const name = key ? keyText(text, key) : null;
        if (name !== null) out[name] = value(v);
      }
      return out;
    }
    if (node.name === "BlockSequence" || node.name === "FlowSequence") {
      return children(node)
        .filter((c) => !PUNCTUATION.has(c.name))
        .map((c) => value(c.name === "Item" ? inner(c) : c));
    }
    return value(inner(node));
  };
  return value(tree.topNode);
}
