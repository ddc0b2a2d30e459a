"""The live run socket: authorization, replay after a seq, no duplicates, gaps filled."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from loopkit_web.asgi import application
from runs import live
from runs.models import Run, RunEvent
from runs.recorder import record_event

from .runs_support import make_loop

pytestmark = pytest.mark.django_db(transaction=True)


def _world(make_team: Any) -> tuple[Any, Any, Any]:
    acme, users = make_team("Acme", roles=["viewer"])
    _, others = make_team("Other", roles=["owner"])
    loop = make_loop(acme)
    run = Run.objects.create(
        team=acme, loop=loop, loop_name=loop.name, loop_yaml="", trigger_type="manual"
    )
    return run, users["viewer"], others["owner"]


def _cookie(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    return [
        (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()),
        (b"origin", b"http://localhost"),
        (b"host", b"localhost"),
    ]


async def _connect(run_id: int, user: Any | None, after: int = 0) -> WebsocketCommunicator:
    headers = (
        await sync_to_async(_cookie)(user)
        if user is not None
        else [(b"origin", b"http://localhost")]
    )
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run_id}/?after={after}", headers=headers
    )
    return communicator


async def _seqs(communicator: WebsocketCommunicator, n: int) -> list[int]:
    out = []
    for _ in range(n):
        message = await communicator.receive_json_from(timeout=3)
        out.append(message["event"]["seq"])
    return out


async def test_it_replays_after_the_clients_seq_then_streams_without_duplicates(
    make_team: Any,
) -> None:
    run, viewer, _ = await sync_to_async(_world)(make_team)
    for _ in range(3):
        await sync_to_async(record_event)(run.pk, "step_started", {"key": "pipeline[0]"})
    communicator = await _connect(run.pk, viewer, after=1)
    connected, _ = await communicator.connect()
    assert connected
    assert await _seqs(communicator, 2) == [2, 3]
    # A new event is stored and pushed: it arrives once.
    await sync_to_async(record_event)(run.pk, "step_finished", {"key": "pipeline[0]"})
    assert await _seqs(communicator, 1) == [4]
    # The same event pushed again (a retry, a second server) is dropped.
    event = await sync_to_async(lambda: RunEvent.objects.get(run=run, seq=4).as_message())()
    await live.apush(run.pk, event)
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_it_reads_back_an_event_the_channel_layer_lost(make_team: Any) -> None:
    run, viewer, _ = await sync_to_async(_world)(make_team)
    communicator = await _connect(run.pk, viewer)
    assert (await communicator.connect())[0]
    # Event 1 is stored but its push is lost; event 2 arrives: the socket sends 1 then 2.
    await sync_to_async(RunEvent.objects.create)(run=run, seq=1, type="run_started", payload={})
    await sync_to_async(RunEvent.objects.create)(run=run, seq=2, type="step_started", payload={})
    second = await sync_to_async(lambda: RunEvent.objects.get(run=run, seq=2).as_message())()
    await live.apush(run.pk, second)
    assert await _seqs(communicator, 2) == [1, 2]
    await communicator.disconnect()


async def test_it_refuses_a_run_id_beyond_any_row_as_not_found(make_team: Any) -> None:
    _, viewer, _ = await sync_to_async(_world)(make_team)
    communicator = await _connect(2**70, viewer, after=2**70)
    connected, code = await communicator.connect()
    assert (connected, code) == (False, 4404)


async def test_it_refuses_another_teams_user_and_anonymous_sockets(make_team: Any) -> None:
    run, _, outsider = await sync_to_async(_world)(make_team)
    communicator = await _connect(run.pk, outsider)
    connected, code = await communicator.connect()
    assert (connected, code) == (False, 4404)
    anonymous = await _connect(run.pk, None)
    connected, code = await anonymous.connect()
    assert (connected, code) == (False, 4401)
