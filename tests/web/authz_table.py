"""The authorization matrix: every page and API operation, and who may use it.

test_authz_matrix.py walks the URL resolver and the ninja API and FAILS for a
route that has no row here, so add a row with every route you add.

A row: ``Case(method, path, access, ...)``.

* ``path`` is the route as a template: Django's ``teams/<int:team_id>/`` is
  written ``/teams/{team_id}/``, ninja's ``/api/teams/{team_id}`` as in
  OpenAPI. Placeholders are filled from the test world (tests/web/conftest.py,
  ``World.ids``): ``team_id``, ``membership_id``, ``invitation_id``,
  ``token_id``, ``token`` (an invitation link's secret); apps add their own
  ids there (e.g. ``loop_id``, ``run_id``).
* ``access`` says who is allowed:
    - ``"public"``: everyone, also without login;
    - ``"login"``: any logged-in user (objects in the URL must be theirs);
    - ``"viewer"`` / ``"editor"`` / ``"admin"`` / ``"owner"``: that role or
      higher in the team that owns the object in the URL; members of other
      teams get 404, as if it did not exist;
    - ``"current:<role>"``: that role in the caller's *current* team (list
      pages, dashboards): users of another team see their own team's data.
* ``ok``: the status codes of an allowed request. Denied: 302 to the login
  page (pages) or 401 (API) without login, 404 for another team's objects,
  403 for a role too low.
* ``data``: form fields (pages) or JSON body (API); strings are templates too.
* ``bearer_ok``: False if API tokens are refused (403) even for allowed roles.
* ``download``: True for a page that is a file download (CSV, JSON, zip, YAML):
  it also takes ``Authorization: Bearer <token>``, so it is walked with tokens too.
* ``foreign``: False if the URL holds no team-owned id (e.g. an invitation
  secret), so the "another team's ids" variants do not apply.
* ``leak_check``: False if the page legitimately shows the other team's name
  (an invitation link shows the team it invites to).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    access: str
    ok: tuple[int, ...] = (200,)
    data: dict[str, Any] = field(default_factory=dict)
    bearer_ok: bool = True
    download: bool = False
    foreign: bool = True
    leak_check: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


# Loop YAML for the builder rows (no braces: data strings are format templates).
BUILDER_NEW_LOOP = "name: matrix-new\npipeline:\n  - prompt: Say hello.\n"
BUILDER_IMPORTED_LOOP = "name: matrix-imported\npipeline:\n  - prompt: Say hello.\n"
BUILDER_SAVED_LOOP = "name: matrix-loop\npipeline:\n  - prompt: Say goodbye.\n"

# A provider the matrix adds (its base URL a closed port: a test call fails fast).
PROVIDER_FORM = {"name": "matrix-new", "model": "openai/m", "api_base": "http://127.0.0.1:9/v1"}
PROVIDER_API = {**PROVIDER_FORM, "api_key": "sk-matrix-key-1234"}

PAGES: list[Case] = [
    Case("GET", "/", "login"),
    Case("GET", "/accounts/login/", "public", ok=(200, 302)),
    Case("POST", "/accounts/logout/", "public", ok=(302,)),
    Case("GET", "/accounts/signup/", "public", ok=(200, 302)),
    Case("GET", "/accounts/password/", "login"),
    Case("GET", "/accounts/password/done/", "login"),
    Case("GET", "/accounts/tokens/", "current:viewer"),
    Case("POST", "/accounts/tokens/", "current:viewer", ok=(302,), data={"name": "ci"}),
    Case("POST", "/accounts/tokens/{token_id}/revoke/", "login", ok=(302,)),
    Case("GET", "/teams/", "login"),
    Case("POST", "/teams/", "login", ok=(302,), data={"name": "Another team"}),
    Case("POST", "/teams/switch/", "viewer", ok=(302,), data={"team": "{team_id}"}),
    Case("GET", "/teams/current/", "login", ok=(302,)),
    Case("GET", "/teams/join/{token}/", "login", foreign=False, leak_check=False),
    Case("POST", "/teams/join/{token}/", "login", ok=(302,), foreign=False, leak_check=False),
    Case("GET", "/teams/{team_id}/", "viewer"),
    Case("POST", "/teams/{team_id}/rename/", "admin", ok=(302,), data={"name": "Renamed"}),
    Case("POST", "/teams/{team_id}/leave/", "viewer", ok=(302,)),
    Case(
        "POST",
        "/teams/{team_id}/members/{membership_id}/role/",
        "admin",
        ok=(302,),
        data={"role": "editor"},
    ),
    Case("POST", "/teams/{team_id}/members/{membership_id}/remove/", "admin", ok=(302,)),
    Case("POST", "/teams/{team_id}/invitations/", "admin", ok=(302,), data={"role": "viewer"}),
    Case("POST", "/teams/{team_id}/invitations/{invitation_id}/revoke/", "admin", ok=(302,)),
    Case("GET", "/audit/", "current:admin"),
    Case("GET", "/audit/export.csv", "current:admin", download=True),
    Case("GET", "/audit/export.json", "current:admin", download=True),
    Case("GET", "/api/", "public", ok=(404,)),  # ninja's root: only there to name the API
    Case("GET", "/api/docs", "public"),
    Case("GET", "/api/openapi.json", "public"),
    # builder pages
    Case("GET", "/loops/", "current:viewer"),
    Case("GET", "/loops/new/", "current:editor"),
    Case("GET", "/loops/templates/", "current:editor"),
    Case("POST", "/loops/new/", "current:editor", ok=(302,), data={"yaml": BUILDER_NEW_LOOP}),
    Case("GET", "/loops/import/", "current:editor"),
    # Allowed, then refused for want of files (400): the table cannot carry uploads.
    Case("POST", "/loops/import/", "current:editor", ok=(400,)),
    Case("GET", "/loops/export.zip", "current:viewer", download=True),
    Case("GET", "/loops/repository/", "current:viewer"),
    Case("POST", "/loops/repository/", "current:admin", ok=(302,), data={"url": "{repo_url}"}),
    Case("POST", "/loops/repository/export/", "current:editor", ok=(302,)),
    Case(
        "POST", "/loops/repository/import/", "current:editor", ok=(302,), data={"overwrite": "on"}
    ),
    Case("GET", "/loops/{loop_id}/", "viewer"),
    Case("GET", "/loops/{loop_id}/edit/", "viewer"),
    Case(
        "POST",
        "/loops/{loop_id}/edit/",
        "editor",
        ok=(302,),
        data={"yaml": BUILDER_SAVED_LOOP, "base_version": "1"},
    ),
    Case("GET", "/loops/{loop_id}/diff/", "viewer"),
    Case("POST", "/loops/{loop_id}/delete/", "editor", ok=(302,)),
    Case("GET", "/loops/{loop_id}/export.yaml", "viewer", download=True),
    Case("GET", "/loops/{loop_id}/export.md", "viewer", download=True),
    Case("POST", "/loops/{loop_id}/versions/{number}/restore/", "editor", ok=(302,)),
    # runs pages; the webhook is public and refuses an unsigned delivery
    Case("GET", "/runs/{run_id}/", "viewer"),
    Case("POST", "/runs/start/{loop_id}/", "editor", ok=(302,), data={"dry_run": "1"}),
    # loop tests (runs.looptests): the run waits (nothing to keep yet: back to its page)
    Case("POST", "/runs/{run_id}/keep-as-test/", "editor", ok=(302,)),
    Case("POST", "/loops/{loop_id}/tests/run/", "editor", ok=(302,)),
    Case("POST", "/loops/{loop_id}/tests/{test_id}/delete/", "editor", ok=(302,)),
    Case("POST", "/hooks/{team_slug}/{loop_name}/", "public", ok=(401,), foreign=False),
    # dashboard (the runs list at /runs/, the dashboard, their CSV exports)
    Case("GET", "/runs/", "current:viewer"),
    # streamed (no .content to search); tests/web/test_dashboard_pages.py checks its rows
    Case("GET", "/runs/export.csv", "current:viewer", leak_check=False, download=True),
    Case("GET", "/dashboard/", "current:viewer"),
    Case("GET", "/dashboard/{dashboard_table}.csv", "current:viewer", foreign=False, download=True),
    # providers (a test call to a closed port answers its error in words, 200)
    Case("GET", "/providers/", "current:viewer"),
    Case("POST", "/providers/", "current:admin", ok=(302,), data=PROVIDER_FORM),
    Case("POST", "/providers/{provider_id}/", "admin", ok=(302,), data=PROVIDER_FORM),
    Case("POST", "/providers/{provider_id}/delete/", "admin", ok=(302,)),
    Case("POST", "/providers/{provider_id}/test/", "admin"),
    # a team's notification settings (admins); a test with nothing set sends nothing
    Case("GET", "/teams/{team_id}/notifications/", "admin"),
    Case(
        "POST",
        "/teams/{team_id}/notifications/",
        "admin",
        ok=(302,),
        data={"email_recipients": "oncall@example.com", "on_failure": "on"},
    ),
    Case("POST", "/teams/{team_id}/notifications/test/", "admin"),
]

API: list[Case] = [
    Case("GET", "/api/health", "public"),
    Case("GET", "/api/me", "login"),
    Case("GET", "/api/tokens", "current:viewer"),
    Case("POST", "/api/tokens", "current:viewer", ok=(201,), data={"name": "ci"}, bearer_ok=False),
    Case("DELETE", "/api/tokens/{token_id}", "login", ok=(204,)),
    Case("GET", "/api/teams", "login"),
    Case("POST", "/api/teams", "login", ok=(201,), data={"name": "New"}, bearer_ok=False),
    Case("GET", "/api/teams/{team_id}", "viewer"),
    Case("PATCH", "/api/teams/{team_id}", "admin", data={"name": "Renamed"}),
    Case("GET", "/api/teams/{team_id}/members", "viewer"),
    Case(
        "PATCH",
        "/api/teams/{team_id}/members/{membership_id}",
        "admin",
        data={"role": "editor"},
    ),
    Case("DELETE", "/api/teams/{team_id}/members/{membership_id}", "admin", ok=(204,)),
    Case("GET", "/api/teams/{team_id}/invitations", "admin"),
    Case("POST", "/api/teams/{team_id}/invitations", "admin", ok=(201,), data={"role": "viewer"}),
    Case("DELETE", "/api/teams/{team_id}/invitations/{invitation_id}", "admin", ok=(204,)),
    Case("GET", "/api/audit", "current:admin"),
    # builder (loops, versions, import/export, git)
    Case(
        "POST",
        "/api/loops/validate",
        "login",
        data={"yaml": "name: x\npipeline:\n  - prompt: Hi\n"},
    ),
    Case("GET", "/api/loops", "current:viewer"),
    Case("POST", "/api/loops", "current:editor", ok=(201,), data={"yaml": BUILDER_NEW_LOOP}),
    Case("GET", "/api/loops/export", "current:viewer"),
    Case(
        "POST",
        "/api/loops/import",
        "current:editor",
        data={"files": [{"name": "imported.yaml", "content": BUILDER_IMPORTED_LOOP}]},
    ),
    Case("GET", "/api/loops/repository", "current:viewer"),
    Case("PUT", "/api/loops/repository", "current:admin", data={"url": "{repo_url}"}),
    Case("DELETE", "/api/loops/repository", "current:admin", ok=(204,)),
    Case("POST", "/api/loops/repository/export", "current:editor", data={"message": "matrix"}),
    Case("POST", "/api/loops/repository/import", "current:editor", data={"overwrite": True}),
    Case("GET", "/api/loops/{loop_id}", "viewer"),
    Case(
        "PUT",
        "/api/loops/{loop_id}",
        "editor",
        data={"yaml": BUILDER_SAVED_LOOP, "base_version": 1, "message": "matrix"},
    ),
    Case("DELETE", "/api/loops/{loop_id}", "editor", ok=(204,)),
    Case("GET", "/api/loops/{loop_id}/export", "viewer"),
    Case("GET", "/api/loops/{loop_id}/export/gh-aw", "viewer"),
    Case("GET", "/api/loops/{loop_id}/versions", "viewer"),
    Case("GET", "/api/loops/{loop_id}/versions/{number}", "viewer"),
    Case("GET", "/api/loops/{loop_id}/diff", "viewer"),
    Case("POST", "/api/loops/{loop_id}/versions/{number}/restore", "editor"),
    # runs (start, read, events, cancel, re-run, approvals, custom events)
    Case(
        "POST",
        "/api/runs",
        "editor",
        ok=(201,),
        data={"loop_id": "{run_loop_id}", "dry_run": True},
    ),
    Case("GET", "/api/runs", "current:viewer"),
    # test runs of a draft from the editor (runs.drafts)
    Case(
        "POST",
        "/api/loops/{loop_id}/test-runs",
        "editor",
        ok=(201,),
        data={"spec": {"name": "matrix-draft", "pipeline": [{"prompt": "Hi", "label": "A"}]}},
    ),
    Case(
        "POST",
        "/api/loops/new/test-runs",
        "current:editor",
        ok=(201,),
        data={"spec": {"name": "matrix-draft", "pipeline": [{"prompt": "Hi", "label": "A"}]}},
    ),
    Case("GET", "/api/runs/{run_id}", "viewer"),
    # loop tests: keeping a run that has not finished is a conflict
    Case("POST", "/api/runs/{run_id}/keep-as-test", "editor", ok=(409,)),
    Case("GET", "/api/loops/{loop_id}/tests", "viewer"),
    Case("POST", "/api/loops/{loop_id}/tests/run", "editor", data={"version": 1}),
    Case("GET", "/api/loops/{loop_id}/tests/{test_id}", "viewer"),
    Case(
        "PUT",
        "/api/loops/{loop_id}/tests/{test_id}",
        "editor",
        data={"test_yaml": "loop: ../loops/matrix-loop.yaml\nexpect:\n  status: failed\n"},
    ),
    Case("DELETE", "/api/loops/{loop_id}/tests/{test_id}", "editor", ok=(204,)),
    Case("GET", "/api/runs/{run_id}/events", "viewer"),
    Case("POST", "/api/runs/{run_id}/cancel", "editor", ok=(202,)),
    Case("POST", "/api/runs/{run_id}/rerun", "editor", ok=(201,)),
    Case(
        "POST",
        "/api/runs/{run_id}/approvals/{approval_id}/approve",
        "editor",
        data={"comment": "ok"},
    ),
    Case(
        "POST",
        "/api/runs/{run_id}/approvals/{approval_id}/reject",
        "editor",
        data={"comment": "no"},
    ),
    Case("POST", "/api/events", "current:editor", ok=(202,), data={"event": "deploy"}),
    # dashboard
    Case("GET", "/api/dashboard", "current:viewer"),
    Case("GET", "/api/dashboard/runs", "current:viewer"),
    Case("GET", "/api/dashboard/loops/{loop_id}", "viewer"),
    # providers
    Case("GET", "/api/providers", "current:viewer"),
    Case("POST", "/api/providers", "current:admin", ok=(201,), data=PROVIDER_API),
    Case("PATCH", "/api/providers/{provider_id}", "admin", data={"model": "openai/other"}),
    Case("DELETE", "/api/providers/{provider_id}", "admin", ok=(204,)),
    Case("POST", "/api/providers/{provider_id}/test", "admin"),
    # notifications
    Case("GET", "/api/teams/{team_id}/notifications", "admin"),
    Case(
        "PATCH",
        "/api/teams/{team_id}/notifications",
        "admin",
        data={"email_recipients": ["oncall@example.com"], "on_approval": False},
    ),
    Case("POST", "/api/teams/{team_id}/notifications/test", "admin"),
]

CASES: list[Case] = PAGES + API
