"""Pages: my teams, the team switcher, team settings (members, roles, invitations)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from loopkit_web.errors import ApiError
from loopkit_web.http import AuthenticatedHttpRequest
from loopkit_web.teams import services
from loopkit_web.teams.forms import RoleForm, TeamForm
from loopkit_web.teams.models import ROLE_RANK, Invitation, Membership, Role, Team
from loopkit_web.teams.scoping import (
    SESSION_KEY,
    current_team,
    get_scoped_or_404,
    require_role,
    set_current_team,
    visible_teams,
)


@login_required
def team_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = services.create_team(request, request.user, form.cleaned_data["name"])
        set_current_team(request, team)
        messages.success(request, f"Team “{team.name}” created.")
        return redirect("teams:settings", team_id=team.pk)
    memberships = Membership.objects.for_request(request).filter(user=request.user)
    return render(
        request,
        "teams/team_list.html",
        {"form": form, "memberships": memberships.select_related("team")},
    )


@login_required
@require_POST
def switch(request: HttpRequest) -> HttpResponse:
    try:
        team_id = int(request.POST.get("team", ""))
    except ValueError:
        raise Http404("No team matches the given query.") from None
    team = get_scoped_or_404(Team, request, pk=team_id)
    set_current_team(request, team)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("home")
    return redirect(target)


@login_required
def current(request: HttpRequest) -> HttpResponse:
    team = current_team(request)
    if team is None:
        return redirect("teams:list")
    return redirect("teams:settings", team_id=team.pk)


@login_required
def team_settings(request: HttpRequest, team_id: int) -> HttpResponse:
    team = get_scoped_or_404(Team, request, pk=team_id)
    membership = require_role(request, "viewer", team=team)
    is_admin = ROLE_RANK[membership.role] >= ROLE_RANK[Role.ADMIN]
    invitations = Invitation.objects.for_team(team) if is_admin else Invitation.objects.none()
    return render(
        request,
        "teams/team_settings.html",
        {
            "team": team,
            "membership": membership,
            "is_admin": is_admin,
            "members": Membership.objects.for_team(team).select_related("user"),
            "invitations": invitations,
            "roles": Role.choices,
            "rename_form": TeamForm(initial={"name": team.name, "timezone": team.timezone}),
        },
    )


def _admin_of(request: HttpRequest, team_id: int) -> Membership:
    team = get_scoped_or_404(Team, request, pk=team_id)
    return require_role(request, "admin", team=team)


@login_required
@require_POST
def rename(request: HttpRequest, team_id: int) -> HttpResponse:
    actor = _admin_of(request, team_id)
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            services.rename_team(
                request,
                actor.team,
                form.cleaned_data["name"],
                form.cleaned_data["timezone"] or None,
            )
        except ApiError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Team settings saved.")
    return redirect("teams:settings", team_id=team_id)


@login_required
@require_POST
def change_role(request: HttpRequest, team_id: int, membership_id: int) -> HttpResponse:
    actor = _admin_of(request, team_id)
    member = get_object_or_404(Membership.objects.for_team(actor.team), pk=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
    else:
        try:
            services.change_role(request, actor, member, form.cleaned_data["role"])
            messages.success(request, f"{member.user} is now {member.role}.")
        except services.TeamRuleError as exc:
            messages.error(request, exc.message)
    return redirect("teams:settings", team_id=team_id)


@login_required
@require_POST
def remove_member(request: HttpRequest, team_id: int, membership_id: int) -> HttpResponse:
    actor = _admin_of(request, team_id)
    member = get_object_or_404(Membership.objects.for_team(actor.team), pk=membership_id)
    try:
        services.remove_member(request, actor, member)
        messages.success(request, f"{member.user} was removed from the team.")
    except services.TeamRuleError as exc:
        messages.error(request, exc.message)
    return redirect("teams:settings", team_id=team_id)


@login_required
@require_POST
def leave(request: HttpRequest, team_id: int) -> HttpResponse:
    team = get_scoped_or_404(Team, request, pk=team_id)
    membership = require_role(request, "viewer", team=team)
    try:
        services.leave_team(request, membership)
    except services.TeamRuleError as exc:
        messages.error(request, exc.message)
        return redirect("teams:settings", team_id=team_id)
    if request.session.get(SESSION_KEY) == team.pk:
        del request.session[SESSION_KEY]
    messages.success(request, f"You left “{team.name}”.")
    return redirect("teams:list")


@login_required
@require_POST
def invite(request: HttpRequest, team_id: int) -> HttpResponse:
    actor = _admin_of(request, team_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
    else:
        try:
            services.create_invitation(request, actor, form.cleaned_data["role"])
            messages.success(request, "Invitation link created: copy it from the list below.")
        except services.TeamRuleError as exc:
            messages.error(request, exc.message)
    return redirect("teams:settings", team_id=team_id)


@login_required
@require_POST
def revoke_invitation(request: HttpRequest, team_id: int, invitation_id: int) -> HttpResponse:
    actor = _admin_of(request, team_id)
    invitation = get_object_or_404(Invitation.objects.for_team(actor.team), pk=invitation_id)
    services.revoke_invitation(request, invitation)
    messages.success(request, "Invitation revoked.")
    return redirect("teams:settings", team_id=team_id)


@login_required
def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Show an invitation (GET) and join its team (POST); the token is the secret."""
    invitation = get_object_or_404(Invitation.objects.select_related("team"), token=token)
    if request.method == "POST":
        try:
            membership = services.accept_invitation(request, invitation, request.user)
        except services.TeamRuleError as exc:
            messages.error(request, exc.message)
            return redirect("home")
        set_current_team(request, membership.team)
        messages.success(request, f"You joined “{membership.team}” as {membership.role}.")
        return redirect("teams:settings", team_id=membership.team_id)
    already = visible_teams(request).filter(pk=invitation.team_id).exists()
    return render(
        request,
        "teams/invitation.html",
        {"invitation": invitation, "already_member": already},
    )
