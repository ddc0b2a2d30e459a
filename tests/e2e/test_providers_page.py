"""An admin adds a provider on the Providers page and tests it, in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from providers.models import Provider
from tests.e2e.conftest import screenshot
from tests.engine.llm_server import LLMServer, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KEY = "sk-browser-key-00004321"


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


def test_an_admin_adds_a_provider_presses_test_and_sees_the_answer(
    page: Any, live_server: Any, make_team: Any, password: str, server: LLMServer
) -> None:
    server.default = Reply("Hello from the test server")
    _, users = make_team("Browser Team", roles=["admin"])
    admin = users["admin"]
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", admin.get_username())
    page.fill("#id_password", password)
    page.click("form [type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/accounts/login/).*$"))

    page.click("nav.mainnav >> text=Providers")
    form = page.locator("#add-provider")
    form.locator("input[name=name]").fill("fast")
    form.locator("input[name=model]").fill("openai/browser-model")
    form.locator("input[name=api_base]").fill(f"{server.url}/browser")
    form.locator("input[name=api_key]").fill(KEY)
    form.locator("input[name=temperature]").fill("0.4")
    form.locator("input[name=default]").check()
    form.locator("button:has-text('Add provider')").click()
    page.wait_for_load_state()
    assert "Added provider team:fast." in page.inner_text(".messages")
    row = page.locator("tr[data-provider=fast]")
    assert "sk-…4321" in row.inner_text()
    assert KEY not in page.content()

    row.locator("button:has-text('Test')").click()
    page.wait_for_selector("[data-testid=test-answer]")
    assert page.inner_text("[data-testid=test-answer]") == "Hello from the test server"
    assert re.search(r"· \d+ ms", page.inner_text("#test-result"))
    screenshot(page, "providers-test")

    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.path == "/v1/browser/chat/completions"
    assert (request.body["model"], request.body["temperature"]) == ("browser-model", 0.4)
    assert Provider.objects.get(name="fast").is_default
