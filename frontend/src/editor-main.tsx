/** Entry of static/editor/editor.js: mount the editor on #loopkit-editor. */
import "@xyflow/react/dist/style.css";
import "./editor.css";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Editor } from "./Editor";
import type { EditorBoot } from "./types";

function boot(): void {
  const host = document.getElementById("loopkit-editor");
  const script = document.getElementById("loopkit-editor-data");
  if (!host || !script) return;
  let data: Partial<EditorBoot>;
  try {
    data = JSON.parse(script.textContent || "{}") as Partial<EditorBoot>;
  } catch (e) {
    host.textContent = `The editor could not start: its page data is not JSON (${(e as Error).message}).`;
    return;
  }
  createRoot(host).render(
    <StrictMode>
      <Editor boot={{ apiBase: "/api/loops", readOnly: false, csrfToken: "", loopId: null, version: null, yaml: "", lrs: null, ...data }} />
    </StrictMode>,
  );
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
