"""Named providers (``model: team:NAME``) against real OpenAI-compatible servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply

from loopkit import secrets
from loopkit.cli import main
from loopkit.engine import RunOptions, run_loop
from loopkit.llm import LiteLLMProvider
from loopkit.providers import Provider, Providers, UnknownProvider
from loopkit.sinks import ListSink
from loopkit.yamlio import loop_from_data

KEY_A = "sk-team-a-0000000000001111"
KEY_B = "sk-team-b-0000000000002222"


@pytest.fixture
def servers() -> Iterator[tuple[LLMServer, LLMServer]]:
    with LLMServer() as a, LLMServer() as b:
        yield a, b


def loop(**data: Any) -> Any:
    data.setdefault("name", "t")
    data.setdefault("pipeline", [{"prompt": "Say hello."}])
    return loop_from_data(data)


async def run(loop_: Any, providers: Providers, **options: Any) -> tuple[Any, ListSink]:
    sink = ListSink()
    result = await run_loop(
        loop_,
        LiteLLMProvider(providers=providers),
        sinks=[sink],
        options=RunOptions(retries=0, **options),
    )
    return result, sink


async def test_two_runs_in_one_process_each_send_only_their_own_key_and_base(
    servers: tuple[LLMServer, LLMServer],
) -> None:
    a, b = servers
    a.default = Reply("from a", delay=0.3)
    b.default = Reply("from b", delay=0.3)
    team_a = Providers([Provider("fast", "openai/a-model", f"{a.url}/team-a", KEY_A)])
    team_b = Providers([Provider("fast", "openai/b-model", f"{b.url}/team-b", KEY_B)])
    (ra, _), (rb, _) = await asyncio.gather(
        run(loop(model="team:fast"), team_a), run(loop(model="team:fast"), team_b)
    )
    assert (ra.status, rb.status) == ("succeeded", "succeeded")
    assert (list(ra.outputs.values()), list(rb.outputs.values())) == (["from a"], ["from b"])
    assert [(r.headers["authorization"], r.path, r.body["model"]) for r in a.requests] == [
        (f"Bearer {KEY_A}", "/v1/team-a/chat/completions", "a-model")
    ]
    assert [(r.headers["authorization"], r.path, r.body["model"]) for r in b.requests] == [
        (f"Bearer {KEY_B}", "/v1/team-b/chat/completions", "b-model")
    ]


async def test_provider_params_and_step_params_reach_the_call(
    servers: tuple[LLMServer, LLMServer],
) -> None:
    a, _ = servers
    providers = Providers(
        [
            Provider(
                "fast",
                "openai/m",
                a.url,
                KEY_A,
                params={"temperature": 0.2, "max_output_tokens": 64, "headers": {"X-Team": "a"}},
            )
        ]
    )
    steps = [
        {"prompt": "one", "model": "team:fast"},
        {"prompt": "two", "model": "team:fast", "params": {"temperature": 0.9, "topP": 0.5}},
    ]
    result, _ = await run(loop(pipeline=steps), providers)
    assert result.status == "succeeded"
    first, second = a.requests
    assert (first.body["temperature"], first.body["max_tokens"], first.headers["x-team"]) == (
        0.2,
        64,
        "a",
    )
    assert (second.body["temperature"], second.body["top_p"]) == (0.9, 0.5)


async def test_a_loop_without_a_model_uses_the_default_provider(
    servers: tuple[LLMServer, LLMServer],
) -> None:
    a, _ = servers
    providers = Providers(
        [
            Provider("slow", "openai/slow", a.url, KEY_A),
            Provider("fast", "openai/fast", a.url, KEY_A, default=True),
        ]
    )
    result, _ = await run(loop(), providers, project_model=providers.default_model())
    assert result.status == "succeeded"
    assert [r.body["model"] for r in a.requests] == ["fast"]


async def test_a_step_falls_back_to_the_next_provider_when_its_model_fails(
    servers: tuple[LLMServer, LLMServer], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = servers
    plain = "plain-primary-token-5678"  # LiteLLM masks sk-... itself; this it does not know
    a.default = Reply(status=404, error=f"no such model for key {plain}")
    b.default = Reply("rescued")
    providers = Providers(
        [
            Provider("primary", "openai/p", a.url, plain),
            Provider("backup", "openai/q", b.url, KEY_B),
        ]
    )
    providers.register_keys()
    step = {"prompt": "Say hello.", "model": "team:primary", "fallbacks": ["team:backup"]}
    result, _ = await run(loop(pipeline=[step]), providers)
    assert result.status == "succeeded"
    assert list(result.outputs.values()) == ["rescued"]
    assert [r.headers["authorization"] for r in b.requests] == [f"Bearer {KEY_B}"]
    # LiteLLM logs the failed attempt with the provider's words: the key is masked there.
    assert "no such model for key [redacted:provider primary key]" in caplog.text
    assert plain not in caplog.text


async def test_a_provider_that_quotes_its_key_back_leaves_no_key_in_events_or_error(
    servers: tuple[LLMServer, LLMServer],
) -> None:
    a, _ = servers
    a.default = Reply(status=401, error=f"Incorrect API key provided: Bearer {KEY_A}")
    providers = Providers([Provider("fast", "openai/m", a.url, KEY_A)])
    providers.register_keys()
    result, sink = await run(loop(model="team:fast"), providers)
    assert result.status == "failed"
    assert KEY_A not in (result.error or "")
    assert "[redacted:provider fast key]" in (result.error or "")
    dumped = json.dumps([e.as_dict() for e in sink.events])
    assert KEY_A not in dumped
    assert "[redacted:provider fast key]" in dumped


def test_an_unknown_provider_name_is_an_error_that_lists_the_known_ones() -> None:
    providers = Providers([Provider("fast", "openai/m"), Provider("big", "openai/n")])
    with pytest.raises(UnknownProvider) as caught:
        providers.resolve("team:small")
    assert str(caught.value) == (
        "model 'team:small' names no provider 'small' (providers: big, fast); "
        "add it on the team's Providers page, or under 'providers:' in loopkit.yaml"
    )


def test_the_cli_reads_providers_from_loopkit_yaml_with_the_key_from_the_environment(
    servers: tuple[LLMServer, LLMServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, _ = servers
    a.default = Reply("hi from the cli")
    (tmp_path / "loops").mkdir()
    (tmp_path / "loopkit.yaml").write_text(
        "version: 1\n"
        "providers:\n"
        "  local:\n"
        "    model: openai/cli-model\n"
        f"    apiBase: {a.url}/cli\n"
        "    apiKey: ${CLI_PROVIDER_KEY}\n"
        "    default: true\n"
        "    params: {temperature: 0.1}\n"
    )
    (tmp_path / "loops" / "hello.yaml").write_text(
        "name: hello\npipeline:\n  - prompt: Say hello.\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPKIT_MODEL", raising=False)
    monkeypatch.delenv("LOOPKIT_API_BASE", raising=False)
    monkeypatch.setenv("CLI_PROVIDER_KEY", "sk-cli-key-33334444")
    assert main(["run", "hello", "--json"]) == 0
    assert [
        (r.headers["authorization"], r.path, r.body["model"], r.body["temperature"])
        for r in a.requests
    ] == [("Bearer sk-cli-key-33334444", "/v1/cli/chat/completions", "cli-model", 0.1)]
    assert "hi from the cli" in capsys.readouterr().out


def test_the_cli_names_an_unset_provider_key_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "loops").mkdir()
    (tmp_path / "loopkit.yaml").write_text(
        "version: 1\nproviders:\n  x:\n    model: openai/m\n    apiKey: ${NOT_SET_KEY_XYZ}\n"
    )
    (tmp_path / "loops" / "hello.yaml").write_text(
        "name: hello\nmodel: team:x\npipeline:\n  - prompt: Say hello.\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NOT_SET_KEY_XYZ", raising=False)
    assert main(["run", "hello"]) == 2
    assert capsys.readouterr().err == (
        "loopkit run: provider 'x' apiKey refers to ${NOT_SET_KEY_XYZ}, but the environment "
        "variable NOT_SET_KEY_XYZ is not set (set it in the environment of the process that "
        "runs the loop)\n"
    )


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    yield
    secrets.REGISTRY.clear()
