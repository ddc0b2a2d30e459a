/** Entry of static/editor/editor.js: mount the editor on #loopkit-editor. */
import "@xyflow/react/dist/style.css";
import "./editor.css";
import { Component, StrictMode, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { Editor } from "./Editor";
import type { EditorBoot } from "./types";

/** Show a bug as a message instead of an empty page (React unmounts on a render error). */
class Crashed extends Component<{ children: ReactNode }, { error: Error | null }> {
  state = { error: null as Error | null };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <div className="lke-notice lke-notice-error" role="alert">
        The editor stopped because of a bug ({this.state.error.message}). Reload the page: the last saved version is safe.
      </div>
    );
  }
}

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
      <Crashed>
        <Editor boot={{ apiBase: "/api/loops", readOnly: false, csrfToken: "", loopId: null, version: null, yaml: "", lrs: null, ...data }} />
      </Crashed>
    </StrictMode>,
  );
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
