"""Team isolation, in one place.

Every view and API endpoint that touches team-owned data goes through this
module:

* ``TeamScopedQuerySet`` -- give a model ``objects = TeamScopedQuerySet.as_manager()``
  (or a subclass with another ``team_field``, e.g. ``"loop__team"``) and read it
  with ``Model.objects.for_request(request)`` (every team the request may see),
  ``.for_team(team)`` or ``.for_user(user)``.
* ``current_team(request)`` -- the team the user switched to (kept in the
  session), or the team an API token is bound to.
* ``require_role(request, "editor", team=obj.team)`` -- the caller's membership,
  or ``Http404`` when the caller is not in that team (so ids of other teams do
  not leak) and ``PermissionDenied`` when the role is too low.
* ``get_scoped_or_404(queryset, request, pk=...)`` -- one object, 404 if the
  request may not see it.

Roles rank owner > admin > editor > viewer. An API token acts with its user's
current role in the token's team and sees nothing of the user's other teams.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse

if TYPE_CHECKING:
    from loopkit_web.accounts.models import ApiToken
    from loopkit_web.teams.models import Membership, Team

SESSION_KEY = "loopkit_team_id"

_M = TypeVar("_M", bound=models.Model)


def request_token(request: object) -> ApiToken | None:
    """Return the API token the request authenticated with, if any."""
    return getattr(request, "api_token", None)


class TeamScopedQuerySet(models.QuerySet[_M]):
    """A queryset of team-owned rows; ``team_field`` is the lookup path to the Team."""

    team_field = "team"

    def for_team(self, team: Team | int | None) -> TeamScopedQuerySet[_M]:
        """Return the rows of *team* (none for ``None``)."""
        if team is None:
            return self.none()
        return self.filter(**{self.team_field: team})

    def for_user(self, user: Any) -> TeamScopedQuerySet[_M]:
        """Return the rows of every team *user* is a member of."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        # (team, user) is unique, so the join adds no duplicate rows.
        return self.filter(**{f"{self.team_field}__memberships__user": user})

    def for_request(self, request: HttpRequest) -> TeamScopedQuerySet[_M]:
        """Return the rows the request may see: the user's teams, or the token's team."""
        token = request_token(request)
        qs = self.for_user(request.user)
        if token is not None:
            qs = qs.filter(**{self.team_field: token.team_id})
        return qs

    def for_current_team(self, request: HttpRequest) -> TeamScopedQuerySet[_M]:
        """Return the rows of the request's current team (lists, dashboards)."""
        return self.for_team(current_team(request))


def get_scoped_or_404(queryset: Any, request: HttpRequest, **lookup: Any) -> Any:
    """Return the one object matching *lookup* that the request may see, else raise Http404."""
    if isinstance(queryset, type) and issubclass(queryset, models.Model):
        queryset = queryset._default_manager.all()
    try:
        return queryset.for_request(request).get(**lookup)
    except queryset.model.DoesNotExist:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from None


def visible_teams(request: HttpRequest) -> models.QuerySet[Team]:
    """Return the teams the request may act in, by name."""
    from loopkit_web.teams.models import Team

    return Team.objects.for_request(request)


def current_team(request: HttpRequest) -> Team | None:
    """Return the request's current team, or None for a user without teams.

    API tokens are bound to their team. A browser session keeps the team chosen
    with the team switcher and falls back to the user's first team.
    """
    cached = getattr(request, "_loopkit_team", False)
    if cached is not False:
        return cast("Team | None", cached)  # what the assignment below cached
    team: Team | None = None
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        teams = visible_teams(request)
        session = getattr(request, "session", None)
        wanted = session.get(SESSION_KEY) if session is not None else None
        if wanted is not None:
            team = teams.filter(pk=wanted).first()
        if team is None:
            team = teams.order_by("memberships__created_at", "pk").first()
    # A per-request cache on Django's request object, which declares no such attribute.
    request._loopkit_team = team  # type: ignore[attr-defined]
    return team


def set_current_team(request: HttpRequest, team: Team) -> None:
    """Make *team* the session's current team (the team switcher)."""
    request.session[SESSION_KEY] = team.pk
    # A per-request cache on Django's request object, which declares no such attribute.
    request._loopkit_team = team  # type: ignore[attr-defined]


def membership_for(request: HttpRequest, team: Team | None) -> Membership | None:
    """Return the request user's membership in *team*, honouring token binding."""
    from loopkit_web.teams.models import Membership

    if team is None or not request.user.is_authenticated:
        return None
    token = request_token(request)
    if token is not None and token.team_id != team.pk:
        return None
    return Membership.objects.filter(team=team, user=request.user).first()


def require_role(request: HttpRequest, role: str, team: Team | None = None) -> Membership:
    """Return the caller's membership in *team* (default: the current team).

    Raise Http404 when the caller is not a member -- another team's objects
    must look like they do not exist -- and PermissionDenied when the
    caller's role ranks below *role*.
    """
    from loopkit_web.teams.models import ROLE_RANK

    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLE_RANK)}")
    if team is None:
        team = current_team(request)
    membership = membership_for(request, team)
    if membership is None:
        raise Http404("No team matches the given query.")
    if ROLE_RANK[membership.role] < ROLE_RANK[role]:
        raise PermissionDenied(
            f"This needs the {role} role in team {team!s}; you are {membership.role}."
        )
    return membership


def team_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a page about the current team: without any team, go to the teams page.

    Apply under ``login_required``. API endpoints need no such thing: they get 404.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if current_team(request) is None:
            from django.contrib import messages
            from django.shortcuts import redirect

            messages.info(request, "Create a team or open an invitation link first.")
            return redirect("teams:list")
        return view(request, *args, **kwargs)

    return wrapper
