/**
 * The GitHub webhook payload key trees for `trigger.payload.*` completion, fetched once from
 * webhook-payloads.json beside editor.js (the build writes it there: it stays out of the
 * bundle). Until it has arrived (or when it cannot be fetched) completion offers no payload paths.
 */
import type { WebhookTrees } from "./templateCompletion";

// Read while editor.js runs (a classic script, so document.currentScript is set).
const scriptSrc = typeof document !== "undefined" && document.currentScript instanceof HTMLScriptElement ? document.currentScript.src : "";
let trees: WebhookTrees | undefined;
let requested = false;

/** The trees, or undefined while they load; the first call starts loading them. */
export function webhookTrees(): WebhookTrees | undefined {
  if (!requested && scriptSrc) {
    requested = true;
    fetch(new URL("webhook-payloads.json", scriptSrc))
      .then((r) => (r.ok ? (r.json() as Promise<WebhookTrees>) : undefined))
      .then((t) => {
        trees = t;
      })
      .catch(() => undefined);
  }
  return trees;
}
