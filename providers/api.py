"""API: the current team's model providers (``/api/providers``).

Viewers and editors list them (to name them in loops); admins and owners
create, change, delete and test them. The key is write-only: answers carry
``api_key_set`` and the masked ``api_key_hint``, never the key.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from loopkit_web.errors import NotFound, errors
from loopkit_web.teams.scoping import current_team, get_scoped_or_404, require_role
from providers import services
from providers.models import Provider

router = Router(tags=["providers"])


class ParamsIn(Schema):
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    max_output_tokens: int | None = None
    headers: dict[str, str] | None = None


class ProviderIn(Schema):
    name: str = Field(min_length=1, max_length=50)
    model: str = Field(min_length=1, max_length=200)
    api_base: str = Field(default="", max_length=500)
    api_key: str = Field(default="", max_length=2000)
    params: ParamsIn = Field(default_factory=ParamsIn)
    default: bool = False


class ProviderPatch(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=50)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    api_base: str | None = Field(default=None, max_length=500)
    #: Absent or null: keep the key; "": remove it.
    api_key: str | None = Field(default=None, max_length=2000)
    params: ParamsIn | None = None
    default: bool | None = None


class ProviderOut(Schema):
    id: int
    name: str
    model: str
    api_base: str
    api_key_set: bool
    api_key_hint: str
    params: dict[str, Any]
    default: bool


class TestOut(Schema):
    ok: bool
    answer: str
    latency_ms: int
    error: str


def _out(provider: Provider) -> dict[str, Any]:
    return {
        "id": provider.pk,
        "name": provider.name,
        "model": provider.model,
        "api_base": provider.api_base,
        "api_key_set": bool(provider.api_key_encrypted),
        "api_key_hint": provider.api_key_hint,
        "params": provider.params or {},
        "default": provider.is_default,
    }


def _data(payload: Schema) -> dict[str, Any]:
    data = payload.dict(exclude_unset=True)
    if isinstance(data.get("params"), dict):
        data["params"] = {k: v for k, v in data["params"].items() if v is not None}
    return data


def _provider(request: HttpRequest, provider_id: int) -> Provider:
    provider: Provider = get_scoped_or_404(
        Provider.objects.select_related("team"), request, pk=provider_id
    )
    require_role(request, "admin", team=provider.team)
    return provider


@router.get("", response={200: list[ProviderOut], **errors()})
def list_providers(request: HttpRequest) -> Any:
    """List the current team's providers (keys masked)."""
    return [_out(p) for p in Provider.objects.for_current_team(request)]


@router.post("", response={201: ProviderOut, **errors(400, 403, 404, 409, 413, 422)})
def create_provider(request: HttpRequest, payload: ProviderIn) -> Any:
    """Add a provider to the current team (admins and owners)."""
    team = current_team(request)
    if team is None:
        raise NotFound("you belong to no team: create or join one first")
    require_role(request, "admin", team=team)
    return Status(201, _out(services.create(request, team, _data(payload))))


@router.patch(
    "/{id:provider_id}", response={200: ProviderOut, **errors(400, 403, 404, 409, 413, 422)}
)
def update_provider(request: HttpRequest, provider_id: int, payload: ProviderPatch) -> Any:
    """Change a provider's fields; a missing or null ``api_key`` keeps the key."""
    provider = _provider(request, provider_id)
    return _out(services.update(request, provider, _data(payload)))


@router.delete("/{id:provider_id}", response={204: None, **errors(403, 404)})
def delete_provider(request: HttpRequest, provider_id: int) -> Any:
    """Delete a provider (loops naming it fail until one of that name exists again)."""
    services.delete(request, _provider(request, provider_id))
    return Status(204, None)


@router.post("/{id:provider_id}/test", response={200: TestOut, **errors(403, 404)})
def test_provider(request: HttpRequest, provider_id: int) -> Any:
    """Make one tiny call; answer the model's reply, the latency and any error in words."""
    result = services.test_call(_provider(request, provider_id))
    return result.__dict__
