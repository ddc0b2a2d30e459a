"""API: the caller (/api/me) and their API tokens (/api/tokens)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Router, Schema, Status

from loopkit_web.accounts import services
from loopkit_web.accounts.models import ApiToken
from loopkit_web.errors import Forbidden, errors
from loopkit_web.http import AuthenticatedHttpRequest
from loopkit_web.teams.models import Membership
from loopkit_web.teams.scoping import current_team, get_scoped_or_404, request_token, require_role

router = Router(tags=["accounts"])


class TeamRoleOut(Schema):
    id: int
    name: str
    slug: str
    role: str


class MeOut(Schema):
    id: int
    username: str
    email: str
    current_team: TeamRoleOut | None
    teams: list[TeamRoleOut]
    token_bound: bool = Field(
        description="True when the request used an API token (one team only)."
    )


class TokenIn(Schema):
    name: str = Field(min_length=1, max_length=100)


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    team_id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The raw token. It is shown this once and never stored.")


def _team_role(m: Membership) -> dict[str, Any]:
    return {"id": m.team.pk, "name": m.team.name, "slug": m.team.slug, "role": m.role}


@router.get("/me", response={200: MeOut, **errors()})
def me(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    """Return the caller, their current team and every team they may act in."""
    memberships = (
        Membership.objects.for_request(request).filter(user=request.user).select_related("team")
    )
    team = current_team(request)
    current = next((m for m in memberships if team is not None and m.team_id == team.pk), None)
    return {
        "id": request.user.pk,
        "username": request.user.get_username(),
        "email": getattr(request.user, "email", ""),
        "current_team": _team_role(current) if current else None,
        "teams": [_team_role(m) for m in memberships],
        "token_bound": request_token(request) is not None,
    }


@router.get("/tokens", response={200: list[TokenOut], **errors(404)})
def list_tokens(request: AuthenticatedHttpRequest) -> Any:
    """List the caller's API tokens in the current team."""
    membership = require_role(request, "viewer")
    return ApiToken.objects.for_team(membership.team).filter(user=request.user)


@router.post("/tokens", response={201: TokenCreatedOut, **errors(400, 403, 404, 413, 422)})
def create_token(request: AuthenticatedHttpRequest, payload: TokenIn) -> Status[Any]:
    """Create an API token in the current team; the raw token is in this response only."""
    if request_token(request) is not None:
        raise Forbidden("api tokens cannot create api tokens: sign in to create one")
    membership = require_role(request, "viewer")
    token, raw = services.issue_token(request, request.user, membership.team, payload.name)
    data = TokenOut.from_orm(token).dict()
    return Status(201, {**data, "token": raw})


@router.delete("/tokens/{id:token_id}", response={204: None, **errors(403, 404)})
def revoke_token(request: AuthenticatedHttpRequest, token_id: int) -> Status[Any]:
    """Revoke one of the caller's tokens."""
    token = get_scoped_or_404(ApiToken.objects.filter(user=request.user), request, pk=token_id)
    services.revoke_token(request, token)
    return Status(204, None)
