"""The runs list (filters, sorting, pages, CSV) and the dashboard page (links, tables, CSV)."""

from __future__ import annotations

import csv
import io
import re
from html import unescape
from typing import Any
from urllib.parse import urlencode

import pytest

from .dashboard_fixtures import PERIOD, Seeded, at, make_run, seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(make_team: Any) -> Seeded:
    return seed(make_team)


@pytest.fixture
def viewer(seeded: Seeded, client_for: Any) -> Any:
    return client_for(seeded.users["viewer"])


def listed_ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content[:500]
    return [int(x) for x in re.findall(r'<a href="/runs/(\d+)/">#', response.content.decode())]


def ids(seeded: Seeded, *numbers: int) -> list[int]:
    """Return the pks of the table's runs #n (1-based, as in dashboard_fixtures)."""
    return [seeded.runs[n - 1].pk for n in numbers]


def get_list(client: Any, **params: Any) -> Any:
    return client.get("/runs/?" + urlencode(params, doseq=True))


def test_the_runs_list_shows_the_teams_runs_newest_first_with_their_figures(
    seeded: Seeded, viewer: Any
) -> None:
    response = viewer.get("/runs/")
    o = seeded.outside
    assert listed_ids(response) == [o[1].pk, *ids(seeded, 9, 8, 7, 6, 5, 4, 3, 2, 1), o[0].pk]
    html = response.content.decode()
    assert "Bravo" not in html and "bravo-model" not in html
    row = html[html.index(f'href="/runs/{seeded.runs[1].pk}/"') :].split("</tr>")[0]
    for text in ("triage", "Succeeded", "Manual", "acme-owner", "2026-03-01 14:00:00", "1h03m",
                 "2,000", "1,000", "$0.3000", "0.80", ">2<"):  # fmt: skip
        assert text in row, text
    unknown = html[html.index(f'href="/runs/{seeded.runs[3].pk}/"') :].split("</tr>")[0]
    assert "unknown" in unknown and "$0" not in unknown


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "succeeded", **PERIOD}, [9, 5, 2, 1]),
        ({"status": ["failed", "verification_failed"]}, [4, 3]),
        ({"trigger": "cron", "since": "2026-03-01", "until": "2026-03-07"}, [6, 1]),
        ({"user": "acme-editor"}, [7, 3]),
        ({"model": "claude-sonnet-4-5"}, [2]),
        ({"model": "gpt-4o"}, []),  # a prefix of gpt-4o-mini is another model
        ({"since": "2026-03-02T09:00:00Z", "until": "2026-03-03T08:00:00Z"}, [4, 3]),
        ({"since": "2026-03-05", "until": "2026-03-05"}, [8, 7]),
        ({"verified": "1", **PERIOD}, [6, 3, 2, 1]),
        ({"cost": "unknown"}, [4]),
    ],
)
def test_the_runs_list_filters(
    seeded: Seeded, viewer: Any, params: dict[str, Any], expected: list[int]
) -> None:
    assert listed_ids(get_list(viewer, **params)) == ids(seeded, *expected)


def test_the_runs_list_filters_by_loop(seeded: Seeded, viewer: Any) -> None:
    response = get_list(viewer, loop=seeded.loops["review"].pk, **PERIOD)
    assert listed_ids(response) == ids(seeded, 9, 7, 5, 4)


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-cost", [6, 3, 2, 1, 5, 7, 9, 8, 4]),  # unknown cost last
        ("cost", [8, 9, 7, 5, 1, 2, 3, 6, 4]),
        ("-tokens_in", [6, 3, 2, 1, 5, 4, 7, 9, 8]),
        ("-duration", [2, 9, 8, 5, 4, 3, 1, 6, 7]),  # ties newest first; running: last
        ("created", [1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ("-rounds", [3, 2, 6, 1, 9, 8, 7, 5, 4]),
    ],
)
def test_the_runs_list_sorts(seeded: Seeded, viewer: Any, sort: str, expected: list[int]) -> None:
    response = get_list(viewer, sort=sort, since="2026-03-01", until="2026-03-07")
    assert listed_ids(response) == ids(seeded, *expected)


def test_sort_links_flip_the_direction_and_keep_the_filters(seeded: Seeded, viewer: Any) -> None:
    html = unescape(get_list(viewer, status="succeeded", sort="-cost").content.decode())
    assert 'href="?status=succeeded&sort=cost" class="sort desc"' in html
    assert 'href="?status=succeeded&sort=-tokens_in" class="sort "' in html


def test_bad_filters_are_reported_and_left_out(seeded: Seeded, viewer: Any) -> None:
    response = get_list(viewer, status="done", since="yesterday", sort="price")
    html = unescape(response.content.decode())
    assert response.status_code == 200
    assert "status must be one of queued, running" in html
    assert (
        "since must be a date like 2026-01-31 or a datetime like 2026-01-31T09:00:00Z, not 'yesterday'"
        in html
    )
    assert "sort must be one of created, started" in html
    assert len(listed_ids(response)) == 11


def test_the_runs_list_is_paginated_by_fifty(seeded: Seeded, viewer: Any) -> None:
    for minute in range(45):
        make_run(seeded.loops["review"], at(f"2026-04-01T10:{minute:02d}"), "succeeded")
    first = get_list(viewer)
    assert len(listed_ids(first)) == 50
    assert "Page 1 of 2" in first.content.decode()
    second = get_list(viewer, page=2)
    assert len(listed_ids(second)) == 6
    assert listed_ids(second)[-1] == seeded.outside[0].pk


def test_the_runs_list_exports_the_filtered_runs_as_csv(seeded: Seeded, viewer: Any) -> None:
    response = get_list_csv(viewer, loop=seeded.loops["review"].pk, **PERIOD)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.match(
        r'attachment; filename="runs-acme-\d{8}T\d{6}Z.csv"', response["Content-Disposition"]
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["id"]) for r in rows] == ids(seeded, 9, 7, 5, 4)
    failed = rows[3]
    assert (failed["status"], failed["cost_usd"], failed["cost_known"], failed["models"]) == (
        "failed",
        "",  # unknown, not 0
        "false",
        "local/llama",
    )
    assert (rows[2]["cost_usd"], rows[2]["duration_seconds"], rows[2]["started_by"]) == (
        "0.050000",
        "120.0",
        "acme-owner",
    )


def get_list_csv(client: Any, **params: Any) -> Any:
    return client.get("/runs/export.csv?" + urlencode(params, doseq=True))


def test_the_dashboard_shows_the_periods_figures_and_links_them_to_the_runs_list(
    seeded: Seeded, viewer: Any
) -> None:
    response = viewer.get("/dashboard/?" + urlencode(PERIOD))
    assert response.status_code == 200
    html = unescape(response.content.decode())
    window = "since=2026-03-01T00:00:00Z&until=2026-03-08T00:00:00Z"
    figures = dict(re.findall(r'<a href="(/runs/\?[^"]+)" data-figure="(\w+)"', html))
    figures = {name: link for link, name in figures.items()}
    assert figures["runs"] == f"/runs/?{window}"
    assert figures["success_rate"] == f"/runs/?{window}&status=succeeded"
    assert figures["unknown_cost_runs"] == f"/runs/?{window}&cost=unknown"
    value = dict(re.findall(r'data-figure="(\w+)"[^>]*><span class="value">([^<]+)</span>', html))
    assert value == {
        "runs": "9",
        "success_rate": "50.0%",
        "verification_pass_rate": "66.7%",
        "tokens": "65,200",
        "cost": "$1.76",
        "unknown_cost_runs": "1",
    }
    assert "mean rounds 1.5" in html
    # Following a number lists exactly the runs it counts.
    assert listed_ids(viewer.get(figures["success_rate"])) == ids(seeded, 9, 5, 2, 1)
    assert listed_ids(viewer.get(figures["unknown_cost_runs"])) == ids(seeded, 4)
    finished = re.search(r'href="(/runs/\?[^"]*status=failed&status=[^"]+)"', html)
    assert finished is None or "verification_failed" in finished.group(1)
    assert "Bravo" not in html and "bravo-model" not in html and "$300" not in html


def test_the_dashboard_tables_link_each_loop_and_model_to_its_runs(
    seeded: Seeded, viewer: Any
) -> None:
    html = unescape(viewer.get("/dashboard/?" + urlencode(PERIOD)).content.decode())
    review = seeded.loops["review"].pk
    link = f"/runs/?since=2026-03-01T00:00:00Z&until=2026-03-08T00:00:00Z&loop={review}"
    assert f'<a href="{link}">4</a>' in html
    model_link = re.search(r'<a href="(/runs/\?[^"]*model=claude-sonnet-4-5)">1</a>', html)
    assert model_link is not None
    assert listed_ids(viewer.get(model_link.group(1))) == ids(seeded, 2)
    assert "over budget" in html and 'class="over"' in html
    assert "review</a></td><td>55</td>" in html  # low LRS table


def test_the_dashboard_switches_between_preset_periods(seeded: Seeded, viewer: Any) -> None:
    for key, label in (("24h", "last 24 h"), ("7d", "last 7 days"), ("30d", "last 30 days")):
        html = viewer.get(f"/dashboard/?period={key}").content.decode()
        assert f"Runs created in the {label}" in html
        assert f'data-period="{key}" class="active"' in html
    assert "last 7 days" in viewer.get("/dashboard/").content.decode()


def test_a_bad_period_shows_its_error_on_the_dashboard(seeded: Seeded, viewer: Any) -> None:
    response = viewer.get("/dashboard/?period=custom&since=2026-03-09&until=2026-03-01")
    assert response.status_code == 400
    assert "until must be on or after since" in response.content.decode()


def test_the_dashboard_loads_the_vendored_chart_library_and_embeds_the_chart_data(
    seeded: Seeded, viewer: Any
) -> None:
    import json

    html = viewer.get("/dashboard/?" + urlencode(PERIOD)).content.decode()
    assert '<script src="/static/dashboard/vendor/chart.umd.min.js">' in html
    data = json.loads(
        re.search(r'id="dashboard-data" type="application/json">(.*?)</script>', html).group(1)
    )
    assert data["runs"] == [2, 2, 1, 1, 2, 1, 0]
    assert data["cost"] == [0.4, 0.5, 0.05, 0.8, 0.01, 0.0, None]
    assert data["by_model"]["labels"] == [
        "gpt-4o-mini",
        "claude-sonnet-4-5",
        "(no model)",
        "local/llama",
    ]


@pytest.mark.parametrize(
    "table", ["series", "by_loop", "by_model", "budgets", "most_expensive", "low_lrs"]
)
def test_each_dashboard_table_exports_as_csv(seeded: Seeded, viewer: Any, table: str) -> None:
    response = viewer.get(f"/dashboard/{table}.csv?" + urlencode(PERIOD))
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    body = {
        "series": 7,
        "by_loop": 2,
        "by_model": 4,
        "budgets": 1,
        "most_expensive": 8,
        "low_lrs": 2,
    }[table]
    assert len(rows) == 1 + body
    if table == "by_model":
        assert rows[0][:2] == ["model_name", "runs"]
        assert rows[-1][0] == "local/llama" and rows[-1][rows[0].index("cost")] == ""


def test_the_by_loop_csv_has_the_hand_computed_figures(seeded: Seeded, viewer: Any) -> None:
    response = viewer.get("/dashboard/by_loop.csv?" + urlencode(PERIOD))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [
        (r["loop_name"], r["runs"], r["cost"], r["success_rate"], r["unknown_cost_runs"])
        for r in rows
    ] == [
        ("triage", "5", "1.700000", "0.4", "0"),
        ("review", "4", "0.060000", "0.6667", "1"),
    ]


def test_an_unknown_dashboard_table_is_not_found(seeded: Seeded, viewer: Any) -> None:
    assert viewer.get("/dashboard/secrets.csv").status_code == 404


def test_the_loop_page_shows_the_loops_runs_costs_pass_rate_and_lrs(
    seeded: Seeded, viewer: Any
) -> None:
    loop = seeded.loops["review"]
    response = viewer.get(f"/loops/{loop.pk}/?" + urlencode(PERIOD))
    assert response.status_code == 200
    html = unescape(response.content.decode())
    section = html[html.index('id="loop-dashboard"') :]
    value = dict(
        re.findall(r'data-figure="(\w+)"[^>]*><span class="value[^"]*">([^<]+)</span>', section)
    )
    assert value == {
        "runs": "4",
        "verification_pass_rate": "—",  # no run of review had verification rounds
        "success_rate": "66.7%",
        "cost_per_run": "$0.0200",
        "lrs": "D",
    }
    assert "1 of unknown cost" in section
    link = re.search(r'<a href="(/runs/\?loop=[^"]+)" data-figure="runs"', section).group(1)
    assert listed_ids(viewer.get(link)) == ids(seeded, 9, 7, 5, 4)
    chart = re.search(r'id="loop-dashboard-data" type="application/json">(.*?)</script>', section)
    import json

    assert json.loads(chart.group(1))["runs"] == [0, 1, 1, 0, 1, 1, 0]


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_stay_text(
    seeded: Seeded, viewer: Any
) -> None:
    run = seeded.runs[0]
    run.started_by_label = '=HYPERLINK("http://evil.example","x")'
    run.models_used = ["@sum"]
    run.save()
    response = get_list_csv(viewer, loop=seeded.loops["triage"].pk, **PERIOD)
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    first = next(r for r in rows if int(r["id"]) == run.pk)
    assert first["started_by"] == '\'=HYPERLINK("http://evil.example","x")'
    assert first["models"] == "'@sum"
    assert first["cost_usd"] == "0.100000"


def test_the_model_filter_suggests_the_models_of_the_last_30_days(
    make_team: Any, client_for: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from dashboard import rollups

    from .dashboard_fixtures import make_loop

    team, users = make_team("Suggest", roles=["viewer"])
    loop = make_loop(team, "s", grade="A", score=90, budget=False)
    now = timezone.now()
    make_run(loop, now - timedelta(days=2), "succeeded", models=["gpt-4o-mini", "o3"],
             split={"gpt-4o-mini": (0, 0, "0"), "o3": (0, 0, "0")})  # fmt: skip
    make_run(loop, now - timedelta(days=40), "succeeded", models=["ancient-model"])
    rollups.advance(team)
    html = client_for(users["viewer"]).get("/runs/").content.decode()
    datalist = html[html.index('<datalist id="models">') :].split("</datalist>")[0]
    assert re.findall(r'<option value="([^"]+)">', datalist) == ["gpt-4o-mini", "o3"]
