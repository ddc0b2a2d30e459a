"""API: teams, members, roles and invitation links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from loopkit_web.teams import services
from loopkit_web.teams.models import Invitation, Membership, Role, Team
from loopkit_web.teams.scoping import get_scoped_or_404, request_token, require_role

router = Router(tags=["teams"])


class TeamOut(Schema):
    id: int
    name: str
    slug: str
    created_at: datetime


class TeamIn(Schema):
    name: str = Field(min_length=1, max_length=100)


class MemberOut(Schema):
    id: int
    user_id: int
    username: str = Field(alias="user.username")
    role: Role
    created_at: datetime


class RoleIn(Schema):
    role: Role


class InvitationIn(Schema):
    role: Role = Role.EDITOR


class InvitationOut(Schema):
    id: int
    role: Role
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    url: str


def _rule_error(exc: services.TeamRuleError) -> HttpError:
    return HttpError(409, exc.message)


def _invitation_out(request: HttpRequest, inv: Invitation) -> dict[str, Any]:
    return {
        "id": inv.pk,
        "role": inv.role,
        "created_at": inv.created_at,
        "expires_at": inv.expires_at,
        "accepted_at": inv.accepted_at,
        "revoked_at": inv.revoked_at,
        "url": request.build_absolute_uri(reverse("teams:invitation", args=[inv.token])),
    }


def _team(request: HttpRequest, team_id: int, role: str) -> tuple[Team, Membership]:
    team = get_scoped_or_404(Team, request, pk=team_id)
    return team, require_role(request, role, team=team)


@router.get("", response=list[TeamOut])
def list_teams(request: HttpRequest) -> Any:
    """List the teams the caller may act in."""
    return Team.objects.for_request(request)


@router.post("", response={201: TeamOut})
def create_team(request: HttpRequest, payload: TeamIn) -> Status[Any]:
    """Create a team; the caller becomes its owner."""
    if request_token(request) is not None:
        raise PermissionDenied("api tokens are bound to one team and cannot create teams")
    return Status(201, services.create_team(request, request.user, payload.name))


@router.get("/{team_id}", response=TeamOut)
def get_team(request: HttpRequest, team_id: int) -> Team:
    return _team(request, team_id, "viewer")[0]


@router.patch("/{team_id}", response=TeamOut)
def rename_team(request: HttpRequest, team_id: int, payload: TeamIn) -> Team:
    team, _ = _team(request, team_id, "admin")
    return services.rename_team(request, team, payload.name)


@router.get("/{team_id}/members", response=list[MemberOut])
def list_members(request: HttpRequest, team_id: int) -> Any:
    team, _ = _team(request, team_id, "viewer")
    return Membership.objects.for_team(team).select_related("user")


@router.patch("/{team_id}/members/{membership_id}", response=MemberOut)
def change_role(
    request: HttpRequest, team_id: int, membership_id: int, payload: RoleIn
) -> Membership:
    team, actor = _team(request, team_id, "admin")
    membership = get_scoped_or_404(Membership.objects.for_team(team), request, pk=membership_id)
    try:
        return services.change_role(request, actor, membership, payload.role)
    except services.TeamRuleError as exc:
        raise _rule_error(exc) from None


@router.delete("/{team_id}/members/{membership_id}", response={204: None})
def remove_member(request: HttpRequest, team_id: int, membership_id: int) -> Status[Any]:
    team, actor = _team(request, team_id, "admin")
    membership = get_scoped_or_404(Membership.objects.for_team(team), request, pk=membership_id)
    try:
        services.remove_member(request, actor, membership)
    except services.TeamRuleError as exc:
        raise _rule_error(exc) from None
    return Status(204, None)


@router.get("/{team_id}/invitations", response=list[InvitationOut])
def list_invitations(request: HttpRequest, team_id: int) -> list[dict[str, Any]]:
    team, _ = _team(request, team_id, "admin")
    return [_invitation_out(request, i) for i in Invitation.objects.for_team(team)]


@router.post("/{team_id}/invitations", response={201: InvitationOut})
def create_invitation(request: HttpRequest, team_id: int, payload: InvitationIn) -> Status[Any]:
    """Create an invitation link; whoever opens it (signed in) joins with the role."""
    _, actor = _team(request, team_id, "admin")
    try:
        invitation = services.create_invitation(request, actor, payload.role)
    except services.TeamRuleError as exc:
        raise _rule_error(exc) from None
    return Status(201, _invitation_out(request, invitation))


@router.delete("/{team_id}/invitations/{invitation_id}", response={204: None})
def revoke_invitation(request: HttpRequest, team_id: int, invitation_id: int) -> Status[Any]:
    team, _ = _team(request, team_id, "admin")
    invitation = get_scoped_or_404(Invitation.objects.for_team(team), request, pk=invitation_id)
    services.revoke_invitation(request, invitation)
    return Status(204, None)
