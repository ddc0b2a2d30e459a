"""Re-encrypt every stored provider key (and team webhook URL) with the first key of
LOOPKIT_SECRETS_KEY."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from providers import crypto
from providers.models import Provider


class Command(BaseCommand):
    help = (
        "Re-encrypt the teams' provider keys and notification webhook URLs with the first "
        "key of LOOPKIT_SECRETS_KEY "
        "(put the new key first, keep the old ones after it, run this, then drop them)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        done = 0
        with transaction.atomic():
            for provider in Provider.objects.exclude(api_key_encrypted="").select_for_update():
                try:
                    provider.api_key_encrypted = crypto.rotate(provider.api_key_encrypted)
                except Exception:
                    raise CommandError(
                        f"the key of provider '{provider.name}' (team {provider.team_id}) is "
                        "not readable with any key of LOOPKIT_SECRETS_KEY: nothing was changed"
                    ) from None
                provider.save(update_fields=["api_key_encrypted"])
                done += 1
            hooks = self._rotate_webhooks()
        self.stdout.write(f"re-encrypted {done} provider key(s) and {hooks} webhook URL(s)")

    def _rotate_webhooks(self) -> int:
        """The teams' notification webhook URLs are encrypted with the same keys."""
        from notifications.models import TeamNotifications

        done = 0
        rows = TeamNotifications.objects.exclude(webhook_url_encrypted="").select_for_update()
        for row in rows:
            try:
                row.webhook_url_encrypted = crypto.rotate(row.webhook_url_encrypted)
            except Exception:
                raise CommandError(
                    f"the notification webhook URL of team {row.team_id} is not readable with "
                    "any key of LOOPKIT_SECRETS_KEY: nothing was changed"
                ) from None
            row.save(update_fields=["webhook_url_encrypted"])
            done += 1
        return done
