"""Accounts and teams in a real browser: sign up, invite, join, roles, switcher, audit, tokens."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-unusual-pass-42"


def sign_up(page: Any, base: str, username: str) -> None:
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@example.com")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button:has-text('Create account')")


def test_a_team_grows_from_sign_up_to_invitation_to_roles(browser: Any, live_server: Any) -> None:
    base = live_server.url
    grace_ctx, alan_ctx = browser.new_context(), browser.new_context()
    grace, alan = grace_ctx.new_page(), alan_ctx.new_page()
    try:
        # Grace signs up and gets her own team.
        grace.goto(f"{base}/accounts/signup/")
        sign_up(grace, base, "grace")
        grace.wait_for_url(f"{base}/")
        assert "Current team: grace's team (owner)" in grace.inner_text("main")

        # She creates an invitation link on the team settings page.
        grace.click("nav.mainnav >> text=Team settings")
        grace.select_option("#invite-role", "editor")
        grace.click("button:has-text('Create invitation link')")
        link = grace.input_value("input.link-field")
        assert link.startswith(f"{base}/teams/join/")

        # Alan opens it, is sent to log in, signs up instead and joins.
        alan.goto(link)
        assert alan.url.startswith(f"{base}/accounts/login/?next=/teams/join/")
        alan.click("main >> text=Sign up")
        sign_up(alan, base, "alan")
        alan.wait_for_url(link)
        alan.click('button:has-text("Join grace\'s team")')
        assert "You joined “grace's team” as editor." in alan.inner_text(".messages")

        # Alan is in two teams now and switches with the switcher.
        alan.select_option("#team-switcher", label="alan's team")
        alan.wait_for_load_state()
        assert alan.locator("#team-switcher option:checked").inner_text() == "alan's team"
        alan.select_option("#team-switcher", label="grace's team")
        alan.wait_for_load_state()
        assert alan.locator("#team-switcher option:checked").inner_text() == "grace's team"

        # Grace makes Alan an admin; the audit log shows the change with its diff.
        grace.reload()
        grace.select_option("select[aria-label='Role of alan']", "admin")
        grace.click("tr:has-text('alan') >> button:has-text('Change')")
        assert "alan is now admin." in grace.inner_text(".messages")
        grace.click("nav.mainnav >> text=Audit")
        grace.fill("input[name=action]", "membership.")
        grace.click("button:has-text('Filter')")
        rows = grace.inner_text("table.audit tbody")
        assert "membership.updated" in rows and "role: editor → admin" in rows
        assert "membership.created" in rows
        screenshot(grace, "accounts-audit-log")

        # Alan, now admin, reads the audit log too; the export downloads.
        alan.goto(f"{base}/audit/")
        with alan.expect_download() as download:
            alan.click("text=CSV")
        assert download.value.suggested_filename.startswith("audit-graces-team-")
    finally:
        grace_ctx.close()
        alan_ctx.close()


def test_a_token_made_in_the_browser_works_once_shown(page: Any, live_server: Any) -> None:
    base = live_server.url
    page.goto(f"{base}/accounts/signup/")
    sign_up(page, base, "ada")
    page.wait_for_url(f"{base}/")

    page.click("text=API tokens")
    page.fill("#id_name", "laptop")
    page.click("button:has-text('Create token')")
    raw = page.inner_text("#new-token").strip()
    page.reload()

    assert raw.startswith("lk_")
    assert raw not in page.content()
    assert "laptop" in page.inner_text("table")
    me = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {raw}"})
    assert me.status_code == 200 and me.json()["username"] == "ada"
    page.reload()
    assert "never" not in page.inner_text("table tbody tr")  # last used is shown

    page.click("button:has-text('Revoke')")
    assert (
        httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    )


def test_wrong_password_then_right_one(page: Any, live_server: Any, django_user_model: Any) -> None:
    django_user_model.objects.create_user("mia", password=PASSWORD)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "mia")
    page.fill("#id_password", "nope")
    page.click("button:has-text('Log in')")
    assert "Please enter a correct username and password" in page.inner_text("main")

    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"{live_server.url}/")
    page.click("button:has-text('Log out')")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
