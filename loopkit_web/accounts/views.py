"""Pages: sign up, password change (audited), API tokens."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.views import PasswordChangeView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from loopkit_web.accounts import services
from loopkit_web.accounts.forms import SignUpForm, TokenForm
from loopkit_web.accounts.models import ApiToken
from loopkit_web.http import AuthenticatedHttpRequest
from loopkit_web.teams.scoping import get_scoped_or_404, require_role, team_required


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return str(reverse_lazy("home"))


def _invited(request: HttpRequest) -> bool:
    """Return True if the sign-up continues to a usable team invitation link."""
    from loopkit_web.teams.models import Invitation

    target = request.POST.get("next") or request.GET.get("next") or ""
    try:
        match = resolve(target.split("?")[0]) if target.startswith("/") else None
    except Resolver404:
        match = None
    if match is None or match.view_name != "teams:invitation":
        return False
    invitation = Invitation.objects.filter(token=match.kwargs["token"]).first()
    return invitation is not None and invitation.is_usable


SIGNUP_REFUSED = {
    "closed": "Sign-up is closed on this server: ask its administrator for an account.",
    "invite": "Sign-up on this server is by invitation: open the invitation link "
    "a team admin sent you, then choose “Sign up”.",
}


def signup(request: HttpRequest) -> HttpResponse:
    """Create an account, as ``LOOPKIT_SIGNUP`` allows (open, invite or closed)."""
    if request.user.is_authenticated:
        return redirect("home")
    policy = settings.LOOPKIT_SIGNUP
    if policy == "closed" or (policy == "invite" and not _invited(request)):
        return render(
            request,
            "registration/signup_refused.html",
            {"message": SIGNUP_REFUSED[policy]},
            status=403,
        )
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.sign_up(
            request,
            form.cleaned_data["username"],
            form.cleaned_data["email"],
            form.cleaned_data["password1"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to LoopKit. Your own team is ready.")
        return redirect(_safe_next(request))
    return render(
        request, "registration/signup.html", {"form": form, "next": request.GET.get("next", "")}
    )


class AuditedPasswordChangeView(PasswordChangeView):
    success_url = reverse_lazy("password_change_done")

    def form_valid(self, form: PasswordChangeForm) -> HttpResponse:
        response = super().form_valid(form)
        services.password_changed(self.request, self.request.user)
        return response


NEW_TOKEN_SESSION_KEY = "loopkit_new_token"


@login_required
@team_required
def tokens(request: AuthenticatedHttpRequest) -> HttpResponse:
    """List the user's tokens in the current team; create one (shown once, after a redirect
    so that reloading the page neither creates another token nor shows it again)."""
    membership = require_role(request, "viewer")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _, raw = services.issue_token(
            request, request.user, membership.team, form.cleaned_data["name"]
        )
        request.session[NEW_TOKEN_SESSION_KEY] = raw
        return redirect("tokens")
    context: dict[str, Any] = {
        "form": form,
        "created": request.session.pop(NEW_TOKEN_SESSION_KEY, None),
        "tokens": ApiToken.objects.for_team(membership.team).filter(user=request.user),
        "team": membership.team,
    }
    return render(request, "accounts/tokens.html", context)


@login_required
@require_POST
def token_revoke(request: AuthenticatedHttpRequest, token_id: int) -> HttpResponse:
    token = get_scoped_or_404(ApiToken.objects.filter(user=request.user), request, pk=token_id)
    services.revoke_token(request, token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("tokens")
