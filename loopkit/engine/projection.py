"""A dry run's projection of what the live run would cost.

Input tokens are counted on the prompts the dry run actually rendered;
output tokens are *estimated* (``OUTPUT_ESTIMATE`` per maker call,
``CHECKER_OUTPUT_ESTIMATE`` per checker call) and labelled as such. Prices
are LiteLLM's, read from the price map LiteLLM ships
(``model_prices_and_context_window_backup.json`` inside the installed
package) *without importing LiteLLM*, which takes seconds; tokens are counted
with tiktoken's ``cl100k_base`` from the tokenizer files LiteLLM ships
(exact for OpenAI models, an estimate for others), or at 4 characters a
token when tiktoken is not available.
"""

from __future__ import annotations

import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

OUTPUT_ESTIMATE = 500
CHECKER_OUTPUT_ESTIMATE = 150
PRICE_FILE = "model_prices_and_context_window_backup.json"


def _litellm_dir() -> Path | None:
    found = importlib.util.find_spec("litellm")
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


@lru_cache(maxsize=1)
def price_map() -> dict[str, Any]:
    """Return LiteLLM's bundled price map (``{}`` when LiteLLM is not installed)."""
    folder = _litellm_dir()
    if folder is None or not (folder / PRICE_FILE).is_file():
        return {}
    data = json.loads((folder / PRICE_FILE).read_bytes())
    return data if isinstance(data, dict) else {}


def prices(model: str) -> tuple[float, float] | None:
    """Return (input, output) USD per token as LiteLLM lists them, or ``None``."""
    table = price_map()
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        info = table.get(name)
        if isinstance(info, dict):
            inp, out = info.get("input_cost_per_token"), info.get("output_cost_per_token")
            if isinstance(inp, int | float) and isinstance(out, int | float):
                return float(inp), float(out)
    return None


@lru_cache(maxsize=1)
def _encoder() -> Any:
    folder = _litellm_dir()
    if folder is not None:
        os.environ.setdefault(
            "TIKTOKEN_CACHE_DIR", str(folder / "litellm_core_utils" / "tokenizers")
        )
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base")
    except Exception:
        return None


def count_tokens(messages: list[dict[str, Any]]) -> int:
    """Count prompt tokens like OpenAI's chat format (3 per message plus 3)."""
    encoder = _encoder()
    total = 3
    for message in messages:
        text = str(message.get("content") or "")
        total += 3 + (len(encoder.encode(text)) if encoder is not None else len(text) // 4)
    return total


def project_cost(llm: Any) -> dict[str, Any]:
    """Project a live run's cost from a dry-run provider's recorded requests."""
    requests = getattr(llm, "requests", [])
    models: dict[str, dict[str, Any]] = {}
    input_tokens = output_tokens = 0
    cost: float | None = 0.0
    unknown: list[str] = []
    for request in requests:
        if request.model == "dry-run":
            continue
        tokens_in = count_tokens(request.messages)
        tokens_out = CHECKER_OUTPUT_ESTIMATE if request.role == "checker" else OUTPUT_ESTIMATE
        input_tokens += tokens_in
        output_tokens += tokens_out
        entry = models.setdefault(
            request.model, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0.0}
        )
        entry["calls"] += 1
        entry["input_tokens"] += tokens_in
        entry["output_tokens"] += tokens_out
        price = prices(request.model)
        if price is None:
            entry["cost"] = None
            if request.model not in unknown:
                unknown.append(request.model)
            cost = None
        else:
            call_cost = tokens_in * price[0] + tokens_out * price[1]
            if entry["cost"] is not None:
                entry["cost"] += call_cost
            if cost is not None:
                cost += call_cost
    return {
        "cost": cost if models else None,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "output_estimated": True,
        "models": models,
        "unknown_models": unknown,
    }
