"""``POST /hooks/<team-slug>/<loop-name>/``: start a loop from a signed webhook delivery.

Compatible with GitHub: the body is signed with HMAC-SHA256 in
``X-Hub-Signature-256`` using the secret in the environment variable the
loop's trigger names (``secretEnv``); ``X-GitHub-Event`` must be the
trigger's ``event`` (``ping`` is answered), the payload's ``action`` one of
its ``actions`` (if any); ``X-GitHub-Delivery`` is remembered so a replayed
delivery starts nothing. Answers are JSON ``{"message": ...}``:

401 bad or missing signature, 404 unknown team or loop (or no webhook
trigger), 413 body too large, 400 malformed, 202 run started, 200 ignored
or duplicate, 503 the server lacks the secret.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from builder.models import Loop
from loopkit import spec
from runs import conf
from runs.inputs import RunRefused
from runs.lifecycle import start_run
from runs.models import TriggerType, WebhookDelivery
from runs.triggers import current_spec, signature_valid


def _answer(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"message": message, **extra}, status=status)


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """Return the body, or None if it is larger than *limit* bytes (read no further)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@csrf_exempt
@require_POST
def receive(request: HttpRequest, team_slug: str, loop_name: str) -> JsonResponse:
    loop = (
        Loop.objects.filter(team__slug=team_slug, name=loop_name, version__gt=0)
        .select_related("team")
        .first()
    )
    parsed = current_spec(loop) if loop is not None else None
    if loop is None or parsed is None or not isinstance(parsed.trigger, spec.WebhookTrigger):
        return _answer(404, "no loop with a webhook trigger at this address")
    trigger = parsed.trigger
    limit = conf.webhook_max_bytes()
    body = _read_body(request, limit)
    if body is None:
        return _answer(413, f"the body is larger than {limit} bytes")
    if not trigger.secret_env:
        return _answer(
            401, "this loop's webhook trigger names no secretEnv: unsigned deliveries are refused"
        )
    secret = os.environ.get(trigger.secret_env, "")
    if not secret:
        return _answer(
            503, f"the server has no secret: set the environment variable {trigger.secret_env}"
        )
    if not signature_valid(secret, body, request.headers.get("X-Hub-Signature-256")):
        return _answer(401, "bad signature (X-Hub-Signature-256)")
    event = request.headers.get("X-GitHub-Event", "")
    if event == "ping":
        return _answer(200, "pong")
    if event != trigger.event:
        return _answer(200, f"ignored: event '{event}' is not '{trigger.event}'", ignored=True)
    delivery_id = request.headers.get("X-GitHub-Delivery", "").strip()
    if not delivery_id:
        return _answer(400, "missing X-GitHub-Delivery header")
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return _answer(400, "the body is not JSON")
    if not isinstance(payload, dict):
        return _answer(400, "the body must be a JSON object")
    action = str(payload.get("action") or "")
    if trigger.actions and action not in trigger.actions:
        return _answer(
            200,
            f"ignored: action '{action}' is not one of {', '.join(trigger.actions)}",
            ignored=True,
        )
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                loop=loop, delivery_id=delivery_id, event=event, action=action
            )
            run = start_run(
                loop,
                trigger_type=TriggerType.WEBHOOK,
                payload=payload,
                label=f"webhook {event}" + (f".{action}" if action else "") + f" {delivery_id}",
            )
            delivery.run = run
            delivery.save(update_fields=["run"])
    except IntegrityError:
        key = WebhookDelivery.key_for(delivery_id)
        previous = WebhookDelivery.objects.filter(loop=loop, delivery_key=key).first()
        return _answer(
            200,
            "duplicate delivery: already received",
            duplicate=True,
            run_id=previous.run_id if previous else None,
        )
    except RunRefused as exc:
        return _answer(422, exc.message)
    return _answer(202, "run started", run_id=run.pk, url=f"/runs/{run.pk}/")
