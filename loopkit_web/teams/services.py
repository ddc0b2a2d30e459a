"""Team mutations, shared by the pages and the API; each writes one audit event."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from loopkit_web.audit.services import record, snapshot
from loopkit_web.errors import Conflict, Invalid
from loopkit_web.teams.models import ROLE_RANK, Invitation, Membership, Role, Team


class TeamRuleError(Conflict):
    """A team change that would break a rule (e.g. leave a team without an owner)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


def _check_role_value(role: str) -> None:
    if role not in ROLE_RANK:
        raise TeamRuleError(
            "unknown_role", f"unknown role {role!r}: use one of {', '.join(ROLE_RANK)}"
        )


def _check_may_grant(actor: Membership, role: str) -> None:
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise TeamRuleError("owner_required", "only an owner can grant or take away the owner role")


def _is_last_owner(membership: Membership) -> bool:
    return (
        membership.role == Role.OWNER
        and not Membership.objects.filter(team=membership.team, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def create_team(request: HttpRequest | Any, user: Any, name: str) -> Team:
    """Create a team with *user* as its owner."""
    team = Team.objects.create(name=name.strip()[:100] or "Team")
    Membership.objects.create(team=team, user=user, role=Role.OWNER)
    record(request, "team.created", team, after=snapshot(team, ["name", "slug"]))
    return team


@transaction.atomic
def check_timezone(name: str) -> str:
    """Return *name* if it is an IANA time zone; raise Invalid naming the field otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'"
        raise Invalid(
            message, details=[{"loc": ["body", "timezone"], "msg": message, "type": "timezone"}]
        ) from None
    return name


def rename_team(
    request: HttpRequest, team: Team, name: str | None, timezone: str | None = None
) -> Team:
    """Rename *team* and/or set its time zone (the zone of its cron schedules that name none)."""
    fields = ["name", "timezone"]
    before = snapshot(team, fields)
    if name is not None:
        team.name = name.strip()[:100] or team.name
    if timezone is not None:
        team.timezone = check_timezone(timezone.strip())
    team.save(update_fields=fields)
    record(request, "team.updated", team, before=before, after=snapshot(team, fields))
    return team


@transaction.atomic
def change_role(
    request: HttpRequest, actor: Membership, membership: Membership, role: str
) -> Membership:
    """Give *membership* the *role*; *actor* is the caller's membership in the same team."""
    _check_role_value(role)
    if role == membership.role:
        return membership
    _check_may_grant(actor, role)
    _check_may_grant(actor, membership.role)
    if _is_last_owner(membership):
        raise TeamRuleError(
            "last_owner", "a team needs at least one owner: make someone else owner first"
        )
    before = snapshot(membership, ["role"])
    membership.role = role
    membership.save(update_fields=["role"])
    record(
        request,
        "membership.updated",
        membership,
        before=before,
        after=snapshot(membership, ["role"]),
    )
    return membership


@transaction.atomic
def remove_member(request: HttpRequest, actor: Membership, membership: Membership) -> None:
    _check_may_grant(actor, membership.role)
    if _is_last_owner(membership):
        raise TeamRuleError(
            "last_owner", "a team needs at least one owner: make someone else owner first"
        )
    before = snapshot(membership, ["user", "role"])
    record(request, "membership.deleted", membership, before=before, after=None)
    membership.delete()


@transaction.atomic
def leave_team(request: HttpRequest, membership: Membership) -> None:
    """Remove the caller's own *membership* (any role may leave; the last owner may not)."""
    if _is_last_owner(membership):
        raise TeamRuleError(
            "last_owner", "a team needs at least one owner: make someone else owner first"
        )
    record(request, "membership.deleted", membership, before=snapshot(membership, ["user", "role"]))
    membership.delete()


@transaction.atomic
def create_invitation(request: HttpRequest, actor: Membership, role: str) -> Invitation:
    _check_role_value(role)
    _check_may_grant(actor, role)
    invitation = Invitation.objects.create(team=actor.team, role=role, created_by=actor.user)
    record(
        request,
        "invitation.created",
        invitation,
        after=snapshot(invitation, ["role", "expires_at"]),
    )
    return invitation


@transaction.atomic
def revoke_invitation(request: HttpRequest, invitation: Invitation) -> Invitation:
    if invitation.revoked_at is not None:
        return invitation
    before = snapshot(invitation, ["revoked_at"])
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    record(
        request,
        "invitation.revoked",
        invitation,
        before=before,
        after=snapshot(invitation, ["revoked_at"]),
    )
    return invitation


@transaction.atomic
def accept_invitation(request: HttpRequest, invitation: Invitation, user: Any) -> Membership:
    """Add *user* to the invitation's team; a member keeps the higher of the two roles."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_usable:
        raise TeamRuleError(
            "invitation_unusable", "this invitation link was used, revoked or has expired"
        )
    membership = Membership.objects.filter(team=invitation.team, user=user).first()
    invitation.accepted_by = user
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_by", "accepted_at"])
    if membership is None:
        membership = Membership.objects.create(
            team=invitation.team, user=user, role=invitation.role
        )
        record(
            request,
            "membership.created",
            membership,
            after=snapshot(membership, ["user", "role"]),
        )
    elif ROLE_RANK[invitation.role] > ROLE_RANK[membership.role]:
        before = snapshot(membership, ["role"])
        membership.role = invitation.role
        membership.save(update_fields=["role"])
        record(
            request,
            "membership.updated",
            membership,
            before=before,
            after=snapshot(membership, ["role"]),
        )
    else:
        record(request, "invitation.accepted", invitation, after={"accepted_by_id": user.pk})
    return membership
