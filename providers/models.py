"""A team's model providers (``model: team:NAME`` in a loop)."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from loopkit.providers import Provider as EngineProvider
from loopkit_web.teams.scoping import TeamScopedQuerySet
from providers import crypto

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,49}$")


def validate_name(value: str) -> None:
    if not NAME_RE.match(value):
        raise ValidationError(
            f"'{value}' is not a valid provider name (lower-case letters, digits, '.', '_' "
            "and '-', starting with a letter or digit, at most 50 characters, e.g. 'fast')"
        )


class Provider(models.Model):
    """One provider of a team: a LiteLLM model string with its endpoint, key and parameters."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="providers")
    name = models.CharField(max_length=50, validators=[validate_name])
    #: A LiteLLM model string (``openai/gpt-4o-mini``, ``anthropic/claude-3-5-haiku-latest``).
    model = models.CharField(max_length=200)
    api_base = models.CharField(max_length=500, blank=True)
    #: The API key as a Fernet token (providers/crypto.py); never the key itself.
    api_key_encrypted = models.TextField(blank=True)
    #: How the key is shown after saving (``sk-…1234``).
    api_key_hint = models.CharField(max_length=20, blank=True)
    #: ``temperature``, ``top_p``, ``seed``, ``stop``, ``max_output_tokens``, ``headers``.
    params = models.JSONField(default=dict, blank=True)
    #: The provider the team's runs use when a loop names no model.
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TeamScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="provider_name_unique_in_team"),
            models.UniqueConstraint(
                fields=["team"],
                condition=models.Q(is_default=True),
                name="provider_one_default_per_team",
            ),
        ]

    def __str__(self) -> str:
        return f"team:{self.name}"

    def set_api_key(self, value: str) -> None:
        """Store ``value`` encrypted (an empty value removes the key)."""
        self.api_key_encrypted = crypto.encrypt(value) if value else ""
        self.api_key_hint = crypto.mask(value) if value else ""

    def api_key(self) -> str:
        """Return the decrypted key ("" when none); raise ``crypto.UnreadableKey``."""
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    def for_engine(self) -> EngineProvider:
        """Return the engine's view of this provider, with the key decrypted."""
        params: dict[str, Any] = dict(self.params or {})
        return EngineProvider(
            name=self.name,
            model=self.model,
            api_base=self.api_base or None,
            api_key=self.api_key() or None,
            params=params,
            default=self.is_default,
        )
