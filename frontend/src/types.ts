/** Shapes shared with the builder API (see docs/builder-api.md and docs/editor.md). */

import type { LoopKitLoop } from "./generated/loop";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/**
 * A loop's camelCase data, as the validate API returns it in `spec`: the type generated from
 * `loopkit schema` (src/generated/loop.ts), so tsc checks the field names the editor reads.
 * Edits by field path (paths.ts) take any value and give back the same type.
 */
export type LoopData = LoopKitLoop;
export type StepData = JsonObject;

export type StepKind = "agent" | "parallel" | "sequential" | "conditional" | "approval" | "plan" | "tool" | "unknown";

export interface SpecError {
  message: string;
  path: string | null;
  line: number | null;
  column: number | null;
  code?: string | null;
  hint?: string | null;
}

export interface LrsDimension {
  key: string;
  name: string;
  points: number;
  max: number;
}

export interface LrsFinding {
  level: "ok" | "warn" | "block";
  dimension: string;
  message: string;
  hint: string | null;
  fix: null | { label: string; patch: JsonObject };
  /** The field the finding is about, e.g. "budget.maxModelCalls" (docs/lrs.md). */
  path?: string;
}

export interface LrsReport {
  score: number;
  grade: string;
  dimensions: LrsDimension[];
  findings: LrsFinding[];
}

export interface ValidateResponse {
  ok: boolean;
  spec: LoopData | null;
  yaml: string | null;
  errors: SpecError[];
  lrs: LrsReport | null;
}

/** What the editor page passes in `<script id="loopkit-editor-data">`. */
export interface EditorBoot {
  loopId: number | string | null;
  version: number | null;
  yaml: string;
  lrs: LrsReport | null;
  apiBase: string;
  readOnly: boolean;
  csrfToken: string;
  subagents?: Json;
  connectors?: Json;
  skills?: Json;
  versionsUrl?: string;
  diffUrl?: string;
  editUrl?: string;
}

export type NodeState = "queued" | "running" | "done" | "failed" | "skipped" | "cancelled" | "rejected";

export interface NodeStats {
  tokens?: number;
  cost?: number;
  durationMs?: number;
  /** Answered from a pinned output in an editor test run (no model call). */
  pinned?: boolean;
}
