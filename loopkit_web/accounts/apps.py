from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "loopkit_web.accounts"
    label = "accounts"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        from loopkit_web.accounts import signals  # noqa: F401
