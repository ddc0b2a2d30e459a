"""Streamed agent output in the web app: stored as step_output events, replayed by the socket."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from loopkit import secrets
from loopkit_web.asgi import application
from runs.engine_adapter import DatabaseSink
from runs.models import Run, RunEvent

from .runs_support import make_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # Secrets resolved by other tests in this process would make the stream hold
    # text back until the end of a call (docs/engine.md): each test starts with none.
    monkeypatch.setattr(secrets, "REGISTRY", secrets.Registry())


def _dry_run(make_team: Any, client_for: Any) -> tuple[Run, Any]:
    acme, users = make_team("Acme", roles=["editor"])
    # 600 ms per model call, streamed in 4 pieces 150 ms apart (each worth an event).
    loop = make_loop(acme, latency_ms=600)
    response = client_for(users["editor"]).post(
        "/api/runs", {"loop_id": loop.pk, "dry_run": True}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    return Run.objects.get(pk=response.json()["id"]), users["editor"]


def _streamed(events: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, int], str]:
    text: dict[tuple[str, int], str] = {}
    for type_, payload in events:
        if type_ == "step_output":
            where = (payload["key"], payload["round"])
            text[where] = text.get(where, "") + payload["text"]
    return text


def _finished(events: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, int], str]:
    return {
        (p["key"], p["round"]): p["output"]
        for t, p in events
        if t == "step_finished" and p.get("kind") == "agent"
    }


def test_the_database_sink_wants_deltas() -> None:
    assert DatabaseSink.wants_deltas is True


def test_a_dry_run_with_latency_stores_each_agents_streamed_text(
    make_team: Any, client_for: Any
) -> None:
    run, _ = _dry_run(make_team, client_for)
    assert run.status == "succeeded"
    rows = list(run.events.order_by("seq").values_list("type", "payload"))
    streamed, finished = _streamed(rows), _finished(rows)
    assert set(finished) == {
        ("pipeline[0].parallel[0]", 1),
        ("pipeline[0].parallel[1]", 1),
        ("pipeline[1]", 1),
    }
    assert streamed == finished
    per_step = [p for t, p in rows if t == "step_output" and p["key"] == "pipeline[1]"]
    assert len(per_step) == 4
    assert [p["chars"] for p in per_step] == sorted(p["chars"] for p in per_step)
    assert run.outputs["Summary"] == finished[("pipeline[1]", 1)]


async def test_the_socket_replays_the_streamed_text_once_in_order(
    make_team: Any, client_for: Any
) -> None:
    run, editor = await sync_to_async(_dry_run)(make_team, client_for)
    stored = await sync_to_async(
        lambda: list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", "type"))
    )()

    def cookie() -> list[tuple[bytes, bytes]]:
        client = Client()
        client.force_login(editor)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        return [
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()),
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
        ]

    async def replay(after: int) -> list[dict[str, Any]]:
        communicator = WebsocketCommunicator(
            application, f"/ws/runs/{run.pk}/?after={after}", headers=await sync_to_async(cookie)()
        )
        assert (await communicator.connect())[0]
        received = [
            (await communicator.receive_json_from(timeout=3))["event"]
            for _ in range(len(stored) - after)
        ]
        assert await communicator.receive_nothing(timeout=0.3)  # nothing twice
        await communicator.disconnect()
        return received

    everything = await replay(0)
    assert [e["seq"] for e in everything] == [seq for seq, _ in stored]
    rows = [(e["type"], e["payload"]) for e in everything]
    assert [t for t, _ in rows].count("step_output") >= 3 * 4
    assert _streamed(rows) == _finished(rows)
    # A client that reconnects holding the first streamed piece gets the rest once.
    held = next(seq for seq, type_ in stored if type_ == "step_output")
    rest = await replay(held)
    assert [e["seq"] for e in rest] == [seq for seq, _ in stored if seq > held]
    assert _streamed(rows[:held] + [(e["type"], e["payload"]) for e in rest]) == _finished(rows)


def test_a_writer_behind_stores_one_event_per_call_and_keeps_each_steps_order() -> None:
    from runs.engine_adapter import coalesce_deltas

    def piece(key: str, text: str, chars: int, call: int = 1) -> dict[str, Any]:
        return {"type": "step_output", "key": key, "round": 1, "call": call, "text": text,
                "chars": chars}  # fmt: skip

    batch = [
        piece("a", "He", 2),
        piece("b", "Wo", 2),
        piece("a", "llo", 5),
        piece("b", "rld", 5),
        {"type": "step_finished", "key": "a", "output": "Hello"},
        piece("b", "!", 6),
        piece("b", "again", 5, call=2),
    ]
    coalesce_deltas(batch)
    assert [(e["type"], e["key"], e.get("text"), e.get("chars")) for e in batch] == [
        ("step_output", "a", "Hello", 5),
        ("step_output", "b", "World!", 6),
        ("step_finished", "a", None, None),
        ("step_output", "b", "again", 5),
    ]
