"""The Providers page: the current team's providers; admins add, change, delete and test."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from loopkit_web.errors import ApiError, Invalid
from loopkit_web.teams.models import ROLE_RANK
from loopkit_web.teams.scoping import (
    current_team,
    get_scoped_or_404,
    require_role,
    team_required,
)
from providers import services
from providers.models import Provider


def _form_data(request: HttpRequest, *, editing: bool) -> dict[str, Any]:
    """Read the add/edit form: an empty key field keeps the saved key when editing."""
    post = request.POST
    params: dict[str, Any] = {}
    for name, cast in (("temperature", float), ("max_output_tokens", int), ("top_p", float)):
        raw = post.get(name, "").strip()
        if raw:
            try:
                params[name] = cast(raw)
            except ValueError:
                raise Invalid(f"params.{name}: '{raw}' is not a number") from None
    headers = post.get("headers", "").strip()
    if headers:
        try:
            params["headers"] = json.loads(headers)
        except ValueError:
            raise Invalid(
                'params.headers: write the headers as a JSON object, e.g. {"X-Team": "a"}'
            ) from None
    data: dict[str, Any] = {
        "name": post.get("name", "").strip(),
        "model": post.get("model", "").strip(),
        "api_base": post.get("api_base", "").strip(),
        "params": params,
        "default": post.get("default") == "on",
    }
    key = post.get("api_key", "")
    if post.get("clear_key") == "on":
        data["api_key"] = ""
    elif key or not editing:
        data["api_key"] = key
    return data


def _page(request: HttpRequest, test: dict[str, Any] | None = None) -> HttpResponse:
    team = current_team(request)
    membership = require_role(request, "viewer", team=team)
    rows = []
    for provider in Provider.objects.for_team(team):
        params = dict(provider.params or {})
        rows.append(
            {
                "provider": provider,
                "headers": json.dumps(params.pop("headers")) if params.get("headers") else "",
                "params": params,
            }
        )
    return render(
        request,
        "providers/provider_list.html",
        {
            "team": team,
            "rows": rows,
            "is_admin": ROLE_RANK[membership.role] >= ROLE_RANK["admin"],
            "test": test,
        },
    )


@login_required
@team_required
def provider_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        team = current_team(request)
        require_role(request, "admin", team=team)
        if team is None:  # team_required lets no user without a team this far
            raise Http404("no current team")
        try:
            provider = services.create(request, team, _form_data(request, editing=False))
        except ApiError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Added provider team:{provider.name}.")
        return redirect("providers:list")
    return _page(request)


def _admin_provider(request: HttpRequest, provider_id: int) -> Provider:
    provider: Provider = get_scoped_or_404(
        Provider.objects.select_related("team"), request, pk=provider_id
    )
    require_role(request, "admin", team=provider.team)
    return provider


@login_required
@require_POST
def provider_update(request: HttpRequest, provider_id: int) -> HttpResponse:
    provider = _admin_provider(request, provider_id)
    try:
        services.update(request, provider, _form_data(request, editing=True))
    except ApiError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Saved provider team:{provider.name}.")
    return redirect("providers:list")


@login_required
@require_POST
def provider_delete(request: HttpRequest, provider_id: int) -> HttpResponse:
    provider = _admin_provider(request, provider_id)
    services.delete(request, provider)
    messages.success(request, f"Deleted provider team:{provider.name}.")
    return redirect("providers:list")


@login_required
@require_POST
def provider_test(request: HttpRequest, provider_id: int) -> HttpResponse:
    provider = _admin_provider(request, provider_id)
    result = services.test_call(provider)
    return _page(request, test={"name": provider.name, **result.__dict__})
