"""A live run from the browser, end to end: an admin adds the team's provider on the
Providers page, starts the loop live from its Run dialog with an input, and watches it
finish; a provider that refuses the request leaves a failed run whose page settles.

The app runs as a user runs it (``manage.py loopkit_start``: Daphne and a Huey
worker, SQLite); the model is the project's OpenAI-compatible test server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from loopkit import yamlio
from tests.e2e.conftest import ROOT, screenshot
from tests.e2e.runner import FINISHED, login, node_states
from tests.engine.llm_server import LLMServer, Reply, verdict
from tests.web.procs import child_env, manage, running_loopkit, shell

pytestmark = pytest.mark.e2e

SCRIPTS = ROOT / "tests" / "web" / "scripts"
KEY = "sk-live-browser-key-0000777"
LOOP = yamlio.dump(
    yamlio.loop_from_data(
        {
            "name": "live-review",
            "inputs": {"repo": {"type": "string", "required": True}},
            "pipeline": [
                {"prompt": "Review the repository {{ inputs.repo }}", "label": "Review"},
                {"prompt": "Summarise: {{ steps['Review'].output }}", "label": "Summary"},
            ],
            "verify": {"maker": ["Review"], "checker": "Checker", "maxRounds": 1},
        }
    )
)


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("live-run")
    env = child_env(LOOPKIT_HOME=str(tmp_path / "var"), LOOPKIT_HUEY_IMMEDIATE="false")
    manage("migrate", "--no-input", env=env)
    proc = shell(SCRIPTS / "run_dialog_setup.py", env={**env, "RUNS_LOOP_YAML": LOOP})
    loops = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    with running_loopkit(env, tmp_path / "server.log") as url:
        yield {"url": url, "loop": loops["live-review"]}


def add_default_provider(page: Any, url: str, server: LLMServer) -> None:
    page.goto(f"{url}/providers/")
    form = page.locator("#add-provider")
    form.locator("input[name=name]").fill("fast")
    form.locator("input[name=model]").fill("openai/team-model")
    form.locator("input[name=api_base]").fill(f"{server.url}/team")
    form.locator("input[name=api_key]").fill(KEY)
    form.locator("input[name=default]").check()
    form.locator("button:has-text('Add provider')").click()
    page.wait_for_load_state()
    assert "Added provider team:fast." in page.inner_text(".messages")


def start_live(page: Any, url: str, loop: int, repo: str) -> str:
    """Start ``loop`` live from its Run dialog; wait for its end; return its status."""
    page.goto(f"{url}/loops/{loop}/")
    page.click("[data-testid=run-open]")
    page.wait_for_selector("[data-testid=run-dialog]", state="visible")
    page.fill("[data-testid=input-repo]", repo)
    # The team's providers are offered by name; the default one serves a loop naming no model.
    options = page.eval_on_selector_all(
        "[data-testid=run-providers] option", "els => els.map(e => [e.value, e.textContent])"
    )
    assert options == [["team:fast", "the team's default"]]
    page.check("[data-testid=mode-live]")
    page.click("[data-testid=run-start]")
    page.wait_for_url(f"{url}/runs/*/")
    ended = ", ".join(f'#run-status[data-status="{s}"]' for s in FINISHED)
    return str(page.wait_for_selector(ended, timeout=60_000).get_attribute("data-status"))


def test_a_live_run_from_the_run_dialog_uses_the_teams_provider_and_finishes(
    page: Any, app: dict[str, Any], server: LLMServer
) -> None:
    server.reset()
    server.default = Reply("Looks fine: two small issues.")
    server.when("adversarial verifier", verdict(True, 0.93))
    url = app["url"]
    login(page, url)
    add_default_provider(page, url, server)

    assert start_live(page, url, app["loop"], "acme/api") == "succeeded"
    screenshot(page, "live-run-finished")
    page.reload()
    page.wait_for_function("window.LoopKitRun && window.LoopKitRun.settled")
    assert node_states(page) == {"Review": "done", "Summary": "done"}

    # Every call went to the team's base URL with the team's key and model.
    assert len(server.requests) == 3
    for request in server.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.path == "/v1/team/chat/completions"
        assert request.body["model"] == "team-model"
    first = server.requests[0].body["messages"][-1]["content"]
    assert first == "Review the repository acme/api"
    assert KEY not in page.content()


def test_a_live_run_the_provider_refuses_fails_and_its_page_settles(
    page: Any, app: dict[str, Any], server: LLMServer
) -> None:
    server.reset()
    server.default = Reply(status=400, error=f"bad request for Bearer {KEY}")
    url = app["url"]
    login(page, url)
    if "team:fast" not in page.goto(f"{url}/providers/").text():
        add_default_provider(page, url, server)

    assert start_live(page, url, app["loop"], "acme/web") == "failed"
    page.reload()
    page.wait_for_function("window.LoopKitRun && window.LoopKitRun.settled")
    assert page.get_attribute("#live-state", "data-state") == "finished"
    assert node_states(page) == {"Review": "failed", "Summary": "skipped"}
    # The provider echoed the key in its error: the page shows it masked.
    assert KEY not in page.content()
