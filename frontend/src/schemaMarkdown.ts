/**
 * Replaces codemirror-json-schema's `utils/markdown` (markdown-it + shiki, about 1 MB with its
 * WebAssembly engine) in the editor bundle: vite.config.ts redirects that module here. The
 * schema's descriptions are plain sentences with `code` spans, so escaping the text and
 * rendering the spans is all the hover and completion info need.
 */
const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderMarkdown(markdown: string, inline = true): string {
  const html = escape(markdown ?? "")
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
  return inline ? html : html.split(/\n{2,}/).map((p) => `<p>${p}</p>`).join("");
}
