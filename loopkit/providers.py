"""Model providers: a named model with its own endpoint, key and parameters.

A loop names a model as LiteLLM does (``openai/gpt-4o-mini``) or a provider
by name (``model: team:fast``). The web app's providers are a team's; the
CLI's are the ``providers:`` map of ``loopkit.yaml`` (keys written as
``${ENV_VAR}``). Either way a run gets one ``Providers`` table, and its
``LiteLLMProvider`` passes each call the endpoint and key of the provider
it names: nothing process-wide is set, so runs of two teams in one worker
never see each other's keys. A provider's key is registered with
``secrets.REGISTRY`` when its table is built for a run, so it is masked
in every event and error, also when the provider quotes it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopkit import secrets
from loopkit.errors import ConfigError

#: ``model: team:NAME`` names a provider.
PREFIX = "team:"
#: Parameters passed to LiteLLM as they are (``headers`` becomes ``extra_headers``).
CALL_PARAMS = ("temperature", "top_p", "seed", "stop")


class UnknownProvider(ConfigError):
    """``model: team:NAME`` names no provider of the team (or of loopkit.yaml)."""

    code = "unknown_provider"


@dataclass(frozen=True)
class Provider:
    """One provider: a LiteLLM ``model``, its endpoint and key, and call parameters.

    ``params`` uses the snake_case names (``temperature``, ``top_p``, ``seed``,
    ``stop``, ``headers``, ``max_output_tokens``).
    """

    name: str
    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    params: Mapping[str, Any] = field(default_factory=dict)
    default: bool = False

    def call_kwargs(self) -> dict[str, Any]:
        """Return LiteLLM's keyword arguments for a call to this provider."""
        kwargs: dict[str, Any] = {"model": self.model}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.api_base:
            # An OpenAI-compatible server without auth: the OpenAI client wants some key.
            kwargs["api_key"] = "loopkit-local"
        kwargs.update(param_kwargs(self.params))
        return kwargs


def is_reference(model: str) -> bool:
    """Return whether ``model`` names a provider (``team:NAME``)."""
    return model.startswith(PREFIX)


def param_kwargs(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return LiteLLM's keyword arguments for call parameters (``max_output_tokens`` aside)."""
    kwargs: dict[str, Any] = {}
    for name in CALL_PARAMS:
        if params and params.get(name) is not None:
            kwargs[name] = params[name]
    if params and params.get("headers"):
        kwargs["extra_headers"] = dict(params["headers"])
    return kwargs


class Providers:
    """A run's providers by name, with at most one default."""

    def __init__(self, entries: Iterable[Provider] = ()) -> None:
        self._by_name = {entry.name: entry for entry in entries}

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Provider | None:
        return self._by_name.get(name)

    def default(self) -> Provider | None:
        """Return the provider marked default (the first by name if several are)."""
        marked = [self._by_name[n] for n in self.names() if self._by_name[n].default]
        return marked[0] if marked else None

    def default_model(self) -> str | None:
        """Return ``team:NAME`` of the default provider, or ``None``."""
        entry = self.default()
        return f"{PREFIX}{entry.name}" if entry else None

    def resolve(self, model: str) -> Provider | None:
        """Return the provider ``model`` names, ``None`` for a plain LiteLLM model string.

        Raise ``UnknownProvider`` for ``team:NAME`` when no provider is called NAME.
        """
        if not is_reference(model):
            return None
        name = model[len(PREFIX) :]
        entry = self._by_name.get(name)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            raise UnknownProvider(
                f"model '{model}' names no provider '{name}' (providers: {known}); "
                "add it on the team's Providers page, or under 'providers:' in loopkit.yaml"
            )
        return entry

    def register_keys(self, registry: secrets.Registry | None = None) -> None:
        """Register every key with the redaction registry (before a run uses them)."""
        reg = registry or secrets.REGISTRY
        for entry in self._by_name.values():
            if entry.api_key:
                reg.add(f"provider {entry.name} key", entry.api_key)


def from_project(
    specs: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    registry: secrets.Registry | None = secrets.REGISTRY,
) -> Providers:
    """Build the providers of ``loopkit.yaml`` (``spec.ProviderSpec`` by name).

    ``${ENV_VAR}`` references in ``apiKey`` and ``apiBase`` are resolved here
    (``MissingSecret`` when unset) and the keys registered for redaction.
    """
    entries = []
    for name, item in specs.items():
        where = f"provider '{name}'"
        key = (
            secrets.resolve(item.api_key, f"{where} apiKey", env, registry)
            if item.api_key
            else None
        )
        base = (
            secrets.resolve(item.api_base, f"{where} apiBase", env, None) if item.api_base else None
        )
        entries.append(
            Provider(
                name=name,
                model=item.model,
                api_base=base,
                api_key=key,
                params=item.params.model_dump(exclude_none=True),
                default=item.default,
            )
        )
    table = Providers(entries)
    table.register_keys(registry)
    return table
