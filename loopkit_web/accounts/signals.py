"""Audit logins, failed logins, logouts and changes made in the Django admin."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
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


@receiver(post_save, sender=LogEntry, dispatch_uid="loopkit_audit_admin")
def audit_admin_change(sender: Any, instance: LogEntry, created: bool, **kwargs: Any) -> None:
    """Record every change made through the Django admin (staff bypass the services)."""
    if not created:
        return
    verb = {ADDITION: "created", CHANGE: "updated", DELETION: "deleted"}.get(
        instance.action_flag, "changed"
    )
    if instance.content_type is not None and instance.content_type.app_label == "audit":
        return  # the admin cannot change audit events; never log about the log
    team = None
    if instance.action_flag != DELETION:
        try:
            team = getattr(instance.get_edited_object(), "team", None)
        except Exception:  # the object may be gone already
            team = None
    target_type = (
        f"{instance.content_type.app_label}.{instance.content_type.model}"
        if instance.content_type is not None
        else ""
    )
    record(
        instance.user,
        f"admin.{verb}",
        team=team,
        target_type=target_type,
        target_id=instance.object_id or "",
        target_label=instance.object_repr[:200],
        after={"change": instance.get_change_message()} if instance.change_message else None,
    )
