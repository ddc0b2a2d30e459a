"""API: teams, members, roles and invitation links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Router, Schema, Status

from loopkit_web.errors import Forbidden, errors
from loopkit_web.teams import services
from loopkit_web.teams.models import Invitation, Membership, Role, Team
from loopkit_web.teams.scoping import get_scoped_or_404, request_token, require_role

router = Router(tags=["teams"])


class TeamOut(Schema):
    id: int
    name: str
    slug: str
    timezone: str
    created_at: datetime


class TeamIn(Schema):
    name: str = Field(min_length=1, max_length=100)


class TeamPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100)
    timezone: str | None = Field(
        None,
        max_length=64,
        description="An IANA time zone: the zone of the team's cron schedules that name none.",
    )


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


@router.get("", response={200: list[TeamOut], **errors()})
def list_teams(request: HttpRequest) -> Any:
    """List the teams the caller may act in."""
    return Team.objects.for_request(request)


@router.post("", response={201: TeamOut, **errors(400, 403, 413, 422)})
def create_team(request: HttpRequest, payload: TeamIn) -> Status[Any]:
    """Create a team; the caller becomes its owner."""
    if request_token(request) is not None:
        raise Forbidden("api tokens are bound to one team and cannot create teams")
    return Status(201, services.create_team(request, request.user, payload.name))


@router.get("/{id:team_id}", response={200: TeamOut, **errors(404)})
def get_team(request: HttpRequest, team_id: int) -> Team:
    return _team(request, team_id, "viewer")[0]


@router.patch("/{id:team_id}", response={200: TeamOut, **errors(400, 403, 404, 413, 422)})
def rename_team(request: HttpRequest, team_id: int, payload: TeamPatch) -> Team:
    team, _ = _team(request, team_id, "admin")
    return services.rename_team(request, team, payload.name, payload.timezone)


@router.get("/{id:team_id}/members", response={200: list[MemberOut], **errors(404)})
def list_members(request: HttpRequest, team_id: int) -> Any:
    team, _ = _team(request, team_id, "viewer")
    return Membership.objects.for_team(team).select_related("user")


@router.patch(
    "/{id:team_id}/members/{id:membership_id}",
    response={200: MemberOut, **errors(400, 403, 404, 409, 413, 422)},
)
def change_role(
    request: HttpRequest, team_id: int, membership_id: int, payload: RoleIn
) -> Membership:
    team, actor = _team(request, team_id, "admin")
    membership = get_scoped_or_404(Membership.objects.for_team(team), request, pk=membership_id)
    return services.change_role(request, actor, membership, payload.role)


@router.delete(
    "/{id:team_id}/members/{id:membership_id}", response={204: None, **errors(403, 404, 409)}
)
def remove_member(request: HttpRequest, team_id: int, membership_id: int) -> Status[Any]:
    team, actor = _team(request, team_id, "admin")
    membership = get_scoped_or_404(Membership.objects.for_team(team), request, pk=membership_id)
    services.remove_member(request, actor, membership)
    return Status(204, None)


@router.get("/{id:team_id}/invitations", response={200: list[InvitationOut], **errors(403, 404)})
def list_invitations(request: HttpRequest, team_id: int) -> list[dict[str, Any]]:
    team, _ = _team(request, team_id, "admin")
    return [_invitation_out(request, i) for i in Invitation.objects.for_team(team)]


@router.post(
    "/{id:team_id}/invitations",
    response={201: InvitationOut, **errors(400, 403, 404, 409, 413, 422)},
)
def create_invitation(request: HttpRequest, team_id: int, payload: InvitationIn) -> Status[Any]:
    """Create an invitation link; whoever opens it (signed in) joins with the role."""
    _, actor = _team(request, team_id, "admin")
    invitation = services.create_invitation(request, actor, payload.role)
    return Status(201, _invitation_out(request, invitation))


@router.delete(
    "/{id:team_id}/invitations/{id:invitation_id}", response={204: None, **errors(403, 404)}
)
def revoke_invitation(request: HttpRequest, team_id: int, invitation_id: int) -> Status[Any]:
    team, _ = _team(request, team_id, "admin")
    invitation = get_scoped_or_404(Invitation.objects.for_team(team), request, pk=invitation_id)
    services.revoke_invitation(request, invitation)
    return Status(204, None)
