"""OpenTelemetry traces of runs, switched on by the standard ``OTEL_*`` variables.

With ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``
set, every run (``loopkit run``, ``loopkit-runtime``, the web app's workers)
is exported as a trace following the OpenTelemetry GenAI semantic
conventions (``loopkit.otel`` builds it; docs/observability.md shows the span
tree). Unset, nothing here imports OpenTelemetry: ``instrument`` hands the
client and the sinks back as they are, and a run costs nothing more.

This module is the switch; ``loopkit.otel`` (imported on the first traced
run) is the implementation.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from loopkit.errors import ConfigError
from loopkit.llm import LLM

#: The variables that name where traces go (the first set one wins, as in the SDK).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """Return whether runs are traced: an OTLP endpoint is set and the SDK is not disabled
    (``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn tracing off)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def _endpoint_variable() -> str:
    return next((name for name in ENDPOINT_VARIABLES if os.environ.get(name)), "OTEL_*")


def instrument(llm: LLM, sinks: Sequence[Any]) -> tuple[LLM, list[Any]]:
    """Return the client and sinks of one run, traced when tracing is enabled.

    Traced: the client is wrapped (a ``chat`` span per model call) and a
    sink is added that turns the run's events into the other spans. Raise
    ``ConfigError`` when the ``OTEL_*`` variables ask for what LoopKit cannot
    export (another protocol than ``http/protobuf``).
    """
    if not enabled():
        return llm, list(sinks)
    try:
        from loopkit import otel  # the SDK's import is paid by traced processes only
    except ImportError as exc:
        raise ConfigError(
            f"{_endpoint_variable()} is set, but OpenTelemetry is not installed ({exc}): "
            "install LoopKit's tracing extra (pip install 'loopkit-ai[otel]') or unset it"
        ) from None

    run_tracer = otel.RunTracer(otel.tracer())
    return run_tracer.wrap(llm), [*sinks, run_tracer]


def flush(timeout_s: float = 10.0) -> None:
    """Export the spans still waiting in the batch processor (at exit, after a run)."""
    otel = sys.modules.get("loopkit.otel")
    if otel is not None:
        otel.flush(timeout_s)


def shutdown() -> None:
    """Flush and stop the exporter (a worker that stops)."""
    otel = sys.modules.get("loopkit.otel")
    if otel is not None:
        otel.shutdown()
