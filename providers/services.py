"""Create, change, delete and test a team's providers; build a run's provider table.

Every change writes one audit event whose diff never holds the key (only its
masked hint); the key is encrypted before it reaches the row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from loopkit import secrets, spec
from loopkit.errors import ConfigError, ProviderError
from loopkit.llm import LiteLLMProvider, LLMRequest
from loopkit.providers import Providers
from loopkit_web.audit.services import record, snapshot
from loopkit_web.errors import Conflict, Invalid
from loopkit_web.teams.models import Team
from providers import crypto
from providers.models import Provider, validate_name

#: What the audit log keeps of a provider (the key only as its masked hint).
AUDITED = ("name", "model", "api_base", "api_key_hint", "params", "is_default")
TEST_PROMPT = "Reply with the single word OK."
TEST_MAX_TOKENS = 16
TEST_TIMEOUT = 30.0


def clean_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate provider parameters; return them by snake_case name, without empty ones."""
    try:
        parsed = spec.ProviderParams.model_validate(dict(params or {}))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"params.{where}: {first['msg'].lower()}") from None
    data = parsed.model_dump(exclude_none=True)
    if not data.get("headers"):
        data.pop("headers", None)
    return data


def _check_name(name: str) -> None:
    try:
        validate_name(name)
    except Exception as exc:
        raise Invalid(str(getattr(exc, "messages", [exc])[0])) from None


def _save(provider: Provider) -> None:
    try:
        with transaction.atomic():
            if provider.is_default:
                Provider.objects.filter(team_id=provider.team_id, is_default=True).exclude(
                    pk=provider.pk
                ).update(is_default=False)
            provider.save()
    except IntegrityError:
        raise Conflict(
            f"the team already has a provider named '{provider.name}'", code="name_taken"
        ) from None


@transaction.atomic
def create(request: HttpRequest, team: Team, data: Mapping[str, Any]) -> Provider:
    """Add a provider to *team* from API or form data (``name``, ``model``, ...)."""
    _check_name(str(data.get("name") or ""))
    provider = Provider(
        team=team,
        name=data["name"],
        model=str(data.get("model") or "").strip(),
        api_base=str(data.get("api_base") or "").strip(),
        params=clean_params(data.get("params")),
        is_default=bool(data.get("default")),
    )
    if not provider.model:
        raise Invalid("give the provider a LiteLLM model string, e.g. openai/gpt-4o-mini")
    provider.set_api_key(str(data.get("api_key") or ""))
    _save(provider)
    record(request, "provider.created", provider, after=snapshot(provider, AUDITED))
    return provider


@transaction.atomic
def update(request: HttpRequest, provider: Provider, data: Mapping[str, Any]) -> Provider:
    """Change the fields present in *data*; ``api_key`` absent or null keeps the key, "" removes it."""
    before = snapshot(provider, AUDITED)
    if "name" in data and data["name"] is not None:
        _check_name(str(data["name"]))
        provider.name = data["name"]
    if "model" in data and data["model"] is not None:
        provider.model = str(data["model"]).strip()
        if not provider.model:
            raise Invalid("give the provider a LiteLLM model string, e.g. openai/gpt-4o-mini")
    if "api_base" in data and data["api_base"] is not None:
        provider.api_base = str(data["api_base"]).strip()
    if "params" in data and data["params"] is not None:
        provider.params = clean_params(data["params"])
    if "default" in data and data["default"] is not None:
        provider.is_default = bool(data["default"])
    if "api_key" in data and data["api_key"] is not None:
        provider.set_api_key(str(data["api_key"]))
    _save(provider)
    record(request, "provider.updated", provider, before=before, after=snapshot(provider, AUDITED))
    return provider


@transaction.atomic
def delete(request: HttpRequest, provider: Provider) -> None:
    before = snapshot(provider, AUDITED)
    record(request, "provider.deleted", provider, before=before)
    provider.delete()


@dataclass
class TestResult:
    """What one tiny call to a provider gave: the answer or the error, in words."""

    ok: bool
    answer: str
    latency_ms: int
    error: str


def test_call(provider: Provider) -> TestResult:
    """Make one tiny call (``TEST_MAX_TOKENS`` tokens) to *provider*; never raise."""
    started = time.perf_counter()
    registry = secrets.Registry()
    try:
        entry = provider.for_engine()
    except crypto.UnreadableKey as exc:
        return TestResult(False, "", 0, str(exc))
    table = Providers([entry])
    table.register_keys(registry)
    table.register_keys()  # LiteLLM's own log lines are masked through the process registry
    llm = LiteLLMProvider(providers=table)
    request = LLMRequest(
        model=f"team:{provider.name}",
        messages=[{"role": "user", "content": TEST_PROMPT}],
        max_output_tokens=TEST_MAX_TOKENS,
        timeout=TEST_TIMEOUT,
        step="test",
    )
    try:
        response = asyncio.run(llm.complete(request))
    except ProviderError as exc:
        elapsed = int((time.perf_counter() - started) * 1000)
        return TestResult(False, "", elapsed, registry.redact_text(describe(exc, provider)))
    except Exception as exc:  # a broken model string LiteLLM refuses before any call
        elapsed = int((time.perf_counter() - started) * 1000)
        return TestResult(False, "", elapsed, registry.redact_text(f"{type(exc).__name__}: {exc}"))
    elapsed = int((time.perf_counter() - started) * 1000)
    return TestResult(True, registry.redact_text(response.content), elapsed, "")


def describe(exc: ProviderError, provider: Provider) -> str:
    """Say in words what a failed test call means, then the provider's own message."""
    status = exc.status_code
    detail = str(exc)
    # LiteLLM stacks class names ("AuthenticationError: litellm.AuthenticationError: ...
    # OpenAIException - Incorrect API key"): keep the provider's own words.
    if "Exception - " in detail:
        detail = detail.split("Exception - ", 1)[1]
    detail = detail[:500]
    where = provider.api_base or "the provider's default endpoint"
    lowered = detail.lower()
    if "connection error" in lowered or ("connect" in lowered and not isinstance(status, int)):
        lead = f"could not connect to {where}"
    elif status in (401, 403):
        lead = f"the provider refused the API key (HTTP {status})"
    elif status == 404:
        lead = f"the model '{provider.model}' or the base URL {where} was not found (HTTP 404)"
    elif status == 429:
        lead = "the provider is rate-limiting this key (HTTP 429)"
    elif isinstance(status, int) and status >= 500:
        lead = f"the provider failed (HTTP {status})"
    elif isinstance(status, int):
        lead = f"the provider refused the request (HTTP {status})"
    elif "timeout" in lowered or "timed out" in lowered:
        lead = f"no answer from {where} within {TEST_TIMEOUT:g} seconds"
    else:
        lead = "the call failed"
    return f"{lead}: {detail}"


def team_providers(team_id: int) -> Providers:
    """Return the providers of team *team_id* for a run, keys decrypted and registered
    for redaction (events, errors and logs of every run in this process mask them)."""
    entries = []
    for row in Provider.objects.filter(team_id=team_id):
        try:
            entries.append(row.for_engine())
        except crypto.UnreadableKey as exc:
            raise ConfigError(f"provider '{row.name}': {exc}") from None
    table = Providers(entries)
    table.register_keys()
    return table
