/** Calls to the builder API (docs/builder-api.md). Errors come back as JSON with a message. */
import type { LoopData, ValidateResponse } from "./types";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export class Api {
  constructor(
    readonly base: string,
    readonly csrfToken: string,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const response = await fetch(`${this.base}${path}`, {
      method,
      credentials: "same-origin",
      signal,
      headers: {
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...(method === "GET" ? {} : { "X-CSRFToken": this.csrfToken }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = { message: text.slice(0, 200) };
    }
    if (!response.ok) {
      const detail = parsed as { message?: string; detail?: string } | null;
      const message = detail?.message ?? (typeof detail?.detail === "string" ? detail.detail : `HTTP ${response.status}`);
      throw new ApiError(message, response.status, parsed);
    }
    return parsed as T;
  }

  validate(input: { yaml: string } | { spec: LoopData }, signal?: AbortSignal): Promise<ValidateResponse> {
    return this.request("POST", "/validate", input, signal);
  }
}
