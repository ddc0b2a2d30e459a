"""What the run-page browser tests share: the "runner" user that the setup scripts
in tests/web/scripts make, the statuses a run ends in, and the step list's states."""

from __future__ import annotations

import re
from typing import Any

#: A run's statuses once it has ended.
FINISHED = ("succeeded", "failed", "verification_failed", "budget_exceeded", "cancelled")


def login(page: Any, url: str) -> None:
    """Log in as "runner" (tests/web/scripts/*_setup.py) and wait to leave the login page."""
    page.goto(f"{url}/accounts/login/")
    page.fill("input[name=username]", "runner")
    page.fill("input[name=password]", "x-long-password-1")
    page.click("form [type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/accounts/login/).*$"))


def node_states(page: Any) -> dict[str, str]:
    """Return each step's state in the run page's step list, by label."""
    rows = page.eval_on_selector_all(
        "#step-list > li[data-key]", "els => els.map(e => [e.dataset.label, e.dataset.state])"
    )
    return dict(rows)
