"""Audit logins, failed logins and logouts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from loopkit_web.audit.services import record


@receiver(user_logged_in, dispatch_uid="loopkit_audit_login")
def audit_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    record(
        request if request is not None else user,
        "user.login",
        user,
        target_label=user.get_username(),
    )


@receiver(user_login_failed, dispatch_uid="loopkit_audit_login_failed")
def audit_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username", ""))[:150]
    record(
        request,
        "user.login_failed",
        target_type="auth.user",
        target_label=username,
        actor_label=username,
    )


@receiver(user_logged_out, dispatch_uid="loopkit_audit_logout")
def audit_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(request if request is not None else user, "user.logout", user)
