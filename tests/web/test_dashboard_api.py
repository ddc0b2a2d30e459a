"""The JSON API at /api/dashboard: the dashboard's figures, the runs list, one loop's figures."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from loopkit_web.accounts.models import ApiToken

from .dashboard_fixtures import PERIOD, Seeded, seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(make_team: Any) -> Seeded:
    return seed(make_team)


@pytest.fixture
def api(seeded: Seeded, bearer_client: Any) -> Any:
    _, raw = ApiToken.issue(user=seeded.users["viewer"], team=seeded.team, name="reports")
    return bearer_client(raw)


def test_the_api_returns_the_same_figures_as_the_dashboard(seeded: Seeded, api: Any) -> None:
    response = api.get("/api/dashboard?" + urlencode(PERIOD))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["period"] == {
        "key": "custom",
        "label": "2026-03-01 to 2026-03-07",
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-03-08T00:00:00Z",
        "bucket": "day",
    }
    t = data["totals"]
    assert (t["runs"], t["success_rate"], t["verification_pass_rate"], t["mean_rounds"]) == (
        9,
        0.5,
        0.6667,
        1.5,
    )
    assert (t["tokens_in"], t["tokens_out"], t["cost"], t["unknown_cost_runs"]) == (
        47400,
        17800,
        1.76,
        1,
    )
    assert [r["runs"] for r in data["series"]] == [2, 2, 1, 1, 2, 1, 0]
    assert data["series"][-1]["cost"] is None
    assert [(r["loop_name"], r["cost"]) for r in data["by_loop"]] == [
        ("triage", 1.7),
        ("review", 0.06),
    ]
    assert [(r["model_name"], r["cost"]) for r in data["by_model"]] == [
        ("gpt-4o-mini", 1.51),
        ("claude-sonnet-4-5", 0.25),
        (None, 0.0),
        ("local/llama", None),
    ]
    assert [(r["loop_name"], r["usage"], r["over"]) for r in data["budgets"]] == [
        ("triage", 1.1, True)
    ]
    assert [r["id"] for r in data["most_expensive"]][:3] == [
        seeded.runs[5].pk,
        seeded.runs[2].pk,
        seeded.runs[1].pk,
    ]
    assert [(r["name"], r["lrs_grade"]) for r in data["low_lrs"]] == [
        ("review", "D"),
        ("legacy", "C"),
    ]


def test_the_api_lists_filtered_runs_with_unknown_costs_as_null(seeded: Seeded, api: Any) -> None:
    params = {"loop": seeded.loops["review"].pk, "sort": "-cost", "limit": 3, **PERIOD}
    data = api.get("/api/dashboard/runs?" + urlencode(params)).json()
    assert data["count"] == 4
    assert [r["id"] for r in data["runs"]] == [seeded.runs[n].pk for n in (4, 6, 8)]
    page2 = api.get("/api/dashboard/runs?" + urlencode({**params, "offset": 3})).json()
    [failed] = page2["runs"]
    assert (failed["status"], failed["cost_usd"], failed["cost_known"], failed["models_used"]) == (
        "failed",
        None,
        False,
        ["local/llama"],
    )


def test_one_loops_figures_come_from_its_own_runs(seeded: Seeded, api: Any) -> None:
    loop = seeded.loops["triage"]
    data = api.get(f"/api/dashboard/loops/{loop.pk}?" + urlencode(PERIOD)).json()
    assert (data["loop_name"], data["lrs_grade"], data["lrs_score"]) == ("triage", "B", 80)
    assert (data["totals"]["runs"], data["totals"]["cost"], data["totals"]["cost_per_run"]) == (
        5,
        1.7,
        0.34,
    )
    assert [r["runs"] for r in data["series"]] == [2, 1, 0, 1, 1, 0, 0]


def test_another_teams_loop_is_not_found(seeded: Seeded, api: Any) -> None:
    from builder.models import Loop

    foreign = Loop.objects.get(team=seeded.other_team)
    response = api.get(f"/api/dashboard/loops/{foreign.pk}")
    assert (response.status_code, response.json()) == (
        404,
        {"code": "not_found", "message": "not found", "details": []},
    )


def test_an_api_token_sees_only_its_own_teams_figures(seeded: Seeded, bearer_client: Any) -> None:
    _, raw = ApiToken.issue(user=seeded.other_users["owner"], team=seeded.other_team, name="b")
    data = bearer_client(raw).get("/api/dashboard?" + urlencode(PERIOD)).json()
    assert (data["totals"]["runs"], data["totals"]["cost"]) == (3, 300.0)
    assert {r["model_name"] for r in data["by_model"]} == {"gpt-4o-mini", "bravo-model"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("period=year", "period must be one of 24h, 7d, 30d or custom, not 'year'"),
        ("period=custom&since=2026-03-01", "a custom period needs until as a date like 2026-01-31"),
    ],
)
def test_a_bad_period_is_a_422_with_a_message(api: Any, query: str, message: str) -> None:
    response = api.get(f"/api/dashboard?{query}")
    assert (response.status_code, response.json()) == (
        422,
        {"code": "invalid", "message": message, "details": []},
    )


def test_bad_runs_filters_are_a_422_that_names_them(api: Any) -> None:
    response = api.get("/api/dashboard/runs?status=done&limit=5")
    assert response.status_code == 422
    assert response.json()["message"].startswith("status must be one of queued, running,")
    response = api.get("/api/dashboard/runs?limit=5000")
    # The limits are in the OpenAPI now, so the request validation refuses them.
    assert response.json() == {
        "code": "invalid",
        "message": "invalid input",
        "details": [
            {
                "loc": ["query", "limit"],
                "msg": "Input should be less than or equal to 500",
                "type": "less_than_equal",
            }
        ],
    }
