"""The builder API: validate, CRUD, optimistic concurrency, versions, diff, restore."""

from __future__ import annotations

from typing import Any

import pytest

from builder.models import Loop, LoopVersion
from loopkit import yamlio
from loopkit_web.audit.models import AuditEvent

from .builder_fixtures import create, loop_yaml, save

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(make_team: Any, client_for: Any) -> Any:
    team, users = make_team("Acme", roles=["owner", "editor", "viewer"])
    return team, users, client_for(users["editor"])


def validate(client: Any, body: dict[str, Any]) -> Any:
    return client.post("/api/loops/validate", body, content_type="application/json")


def test_it_validates_yaml_into_canonical_spec_yaml_and_lrs(acme: Any) -> None:
    _, _, client = acme
    text = loop_yaml()
    body = validate(client, {"yaml": text}).json()
    assert body["ok"] is True
    assert body["errors"] == []
    assert body["yaml"] == text
    assert body["spec"]["pipeline"][0] == {
        "prompt": "Summarise the new issues.",
        "label": "Summarise",
    }
    assert body["lrs"]["grade"] in "ABCDF"
    assert len(body["lrs"]["dimensions"]) == 7


def test_it_validates_spec_json_into_the_same_canonical_yaml(acme: Any) -> None:
    _, _, client = acme
    text = loop_yaml()
    spec = validate(client, {"yaml": text}).json()["spec"]
    assert validate(client, {"spec": spec}).json()["yaml"] == text


def test_it_returns_yaml_that_loads_when_a_text_keeps_its_final_line_breaks(acme: Any) -> None:
    _, _, client = acme
    text = loop_yaml().replace(
        "description: Triage new issues every morning.\n",
        "description: |+\n  Triage new issues every morning.\n\n",
    )
    body = validate(client, {"yaml": text}).json()
    assert body["ok"] is True
    assert body["spec"]["description"] == "Triage new issues every morning.\n\n"
    assert body["yaml"] == yamlio.dump(yamlio.load_loop(text))
    assert yamlio.to_data(yamlio.load_loop(body["yaml"])) == body["spec"]


def test_it_reports_malformed_yaml_with_line_and_column(acme: Any) -> None:
    _, _, client = acme
    body = validate(client, {"yaml": "name: x\npipeline:\n  - prompt: [unclosed\n"}).json()
    assert body["ok"] is False
    assert body["spec"] is None and body["lrs"] is None
    (error,) = body["errors"]
    assert error["code"] == "yaml_syntax"
    assert error["line"] == 4 and error["column"] == 1


def test_it_reports_an_unknown_key_with_path_position_and_hint(acme: Any) -> None:
    _, _, client = acme
    text = loop_yaml().replace("maxRounds: 2", "maxRound: 2")
    body = validate(client, {"yaml": text}).json()
    assert body["ok"] is False
    (error,) = body["errors"]
    assert error["path"] == "verify.maxRound"
    assert error["message"] == "unknown key 'maxRound'"
    assert error["hint"] == "did you mean 'maxRounds'?"
    assert error["line"] == text.splitlines().index("  maxRound: 2") + 1


def test_it_keeps_spec_and_lrs_when_only_a_cross_reference_fails(acme: Any) -> None:
    _, _, client = acme
    text = loop_yaml().replace("    - Label\n", "    - Labell\n")
    body = validate(client, {"yaml": text}).json()
    assert body["ok"] is False
    assert body["spec"] is not None and body["lrs"] is not None
    assert [e["code"] for e in body["errors"]] == ["unknown_maker"]
    assert body["errors"][0]["path"] == "verify.maker[1]"
    assert body["errors"][0]["line"] is not None


def test_it_wants_exactly_one_of_yaml_or_spec(acme: Any) -> None:
    _, _, client = acme
    response = validate(client, {})
    assert response.status_code == 422
    assert response.json()["message"] == "send exactly one of 'yaml' or 'spec'"


def test_it_creates_a_loop_with_its_first_version_and_audits_it(acme: Any) -> None:
    team, users, client = acme
    body = create(client, message="first draft")
    assert body["name"] == "triage" and body["version"] == 1
    assert body["yaml"] == loop_yaml()
    assert body["author"] == users["editor"].username
    assert body["lrs"]["score"] == body["lrs_score"]
    loop = Loop.objects.get(pk=body["id"])
    assert loop.team == team and loop.versions.count() == 1
    event = AuditEvent.objects.get(action="loop.created")
    assert event.target_id == str(loop.pk) and event.team_id == team.pk


def test_it_stores_the_canonical_dump_of_non_canonical_yaml(acme: Any) -> None:
    _, _, client = acme
    messy = "# a comment\n" + loop_yaml().replace("maxTokens: 50000", "maxTokens:    50000  # why")
    body = create(client, messy)
    assert body["yaml"] == loop_yaml()


def test_it_refuses_an_invalid_loop_on_create_and_saves_nothing(acme: Any) -> None:
    _, _, client = acme
    response = client.post("/api/loops", {"yaml": "name: x\n"}, content_type="application/json")
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "the loop is not valid: missing required key 'pipeline'"
    assert body["errors"][0]["path"] == "pipeline"
    assert not Loop.objects.exists()


def test_it_refuses_a_name_clash_on_create(acme: Any) -> None:
    _, _, client = acme
    create(client)
    response = client.post("/api/loops", {"yaml": loop_yaml()}, content_type="application/json")
    assert response.status_code == 409
    assert response.json()["message"] == (
        "a loop named 'triage' already exists in this team: rename this one or edit the existing loop"
    )
    assert Loop.objects.count() == 1


def test_it_saves_a_new_version_when_the_base_is_current(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    response = save(client, loop["id"], loop_yaml(extra_step="Assign"), base=1, message="assign")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 2 and body["saved"] is True and body["message"] == "assign"
    assert LoopVersion.objects.filter(loop_id=loop["id"]).count() == 2
    assert AuditEvent.objects.filter(action="loop.saved").count() == 1


def test_a_save_reads_the_loop_once_and_answers_with_its_canonical_spec(
    acme: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, client = acme
    loop = create(client)
    read: list[str] = []
    parse = yamlio.parse

    def counted(text: str | bytes, file: str | None = None) -> yamlio.Document:
        read.append(text if isinstance(text, str) else text.decode())
        return parse(text, file)

    monkeypatch.setattr(yamlio, "parse", counted)
    text = loop_yaml(extra_step="Assign")
    response = save(client, loop["id"], text, base=1)
    assert response.status_code == 200
    assert response.json()["spec"]["pipeline"][2] == {
        "prompt": "Assign the issues.",
        "label": "Assign",
    }
    assert read == [text]


def test_it_refuses_a_stale_save_with_the_other_change(acme: Any, client_for: Any) -> None:
    _, users, client = acme
    loop = create(client)
    other = client_for(users["owner"])
    assert (
        save(
            other, loop["id"], loop_yaml(extra_step="Assign"), base=1, message="theirs"
        ).status_code
        == 200
    )
    response = save(client, loop["id"], loop_yaml(budget=False), base=1, message="mine")
    assert response.status_code == 409
    body = response.json()
    assert body["message"].startswith(
        "version 1 is not the current version of 'triage': acme-owner saved version 2"
    )
    assert body["current"]["version"] == 2
    assert body["current"]["message"] == "theirs"
    assert body["current"]["author"] == users["owner"].username
    assert body["current"]["yaml"] == loop_yaml(extra_step="Assign")
    assert [(c["kind"], c["path"]) for c in body["changes"]] == [("added", "pipeline[2]")]
    assert Loop.objects.get(pk=loop["id"]).version == 2  # nothing overwritten


def test_it_does_not_make_a_version_when_nothing_changed(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    body = save(client, loop["id"], loop_yaml(), base=1).json()
    assert body["version"] == 1 and body["saved"] is False


def test_it_renames_a_loop_through_its_yaml_but_not_onto_another_name(acme: Any) -> None:
    _, _, client = acme
    first = create(client)
    create(client, loop_yaml("other"))
    assert save(client, first["id"], loop_yaml("renamed"), base=1).json()["name"] == "renamed"
    response = save(client, first["id"], loop_yaml("other"), base=2)
    assert response.status_code == 409
    assert Loop.objects.get(pk=first["id"]).name == "renamed"


def test_it_lists_versions_newest_first_and_shows_one(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    save(client, loop["id"], loop_yaml(budget=False), base=1, message="drop budget")
    versions = client.get(f"/api/loops/{loop['id']}/versions").json()
    assert [(v["version"], v["message"]) for v in versions] == [(2, "drop budget"), (1, "first")]
    one = client.get(f"/api/loops/{loop['id']}/versions/1").json()
    assert one["yaml"] == loop_yaml() and one["lrs"]["score"] == one["lrs_score"]
    assert client.get(f"/api/loops/{loop['id']}/versions/9").status_code == 404


def test_it_diffs_two_versions_with_a_change_list_and_lrs_before_and_after(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    save(client, loop["id"], loop_yaml(budget=False, extra_step="Assign"), base=1)
    body = client.get(f"/api/loops/{loop['id']}/diff?from=1&to=2").json()
    assert body["yaml_from"] == loop_yaml()
    assert body["yaml_to"] == loop_yaml(budget=False, extra_step="Assign")
    summaries = [c["summary"] for c in body["changes"]]
    assert "removed budget" in summaries
    assert "added agent step 'Assign'" in summaries
    assert body["lrs_from"]["score"] > body["lrs_to"]["score"]
    lrs = [c for c in body["changes"] if c["section"] == "lrs"]
    assert lrs[0]["summary"] == (
        f"LRS {body['lrs_from']['score']} ({body['lrs_from']['grade']}) → "
        f"{body['lrs_to']['score']} ({body['lrs_to']['grade']})"
    )
    default = client.get(f"/api/loops/{loop['id']}/diff").json()
    assert (default["from_version"], default["to_version"]) == (1, 2)
    assert client.get(f"/api/loops/{loop['id']}/diff?from=1&to=7").json() == {
        "code": "not_found",
        "message": "'triage' has no version 7",
        "details": [],
    }


def test_it_restores_an_old_version_as_a_new_version(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    save(client, loop["id"], loop_yaml(budget=False), base=1)
    body = client.post(f"/api/loops/{loop['id']}/versions/1/restore").json()
    assert body["version"] == 3 and body["yaml"] == loop_yaml()
    assert body["message"] == "Restored version 1"
    assert LoopVersion.objects.get(loop_id=loop["id"], number=3).restored_from == 1
    event = AuditEvent.objects.get(action="loop.restored")
    assert event.changes["restored_from"] == [None, 1]


def test_it_deletes_a_loop_with_its_versions_and_audits_it(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    assert client.delete(f"/api/loops/{loop['id']}").status_code == 204
    assert not Loop.objects.exists() and not LoopVersion.objects.exists()
    assert AuditEvent.objects.get(action="loop.deleted").target_label == "triage"


def test_it_lets_a_viewer_read_but_not_save(acme: Any, client_for: Any) -> None:
    _, users, client = acme
    loop = create(client)
    viewer = client_for(users["viewer"])
    assert viewer.get(f"/api/loops/{loop['id']}").status_code == 200
    response = save(viewer, loop["id"], loop_yaml(budget=False), base=1)
    assert response.status_code == 403
    assert response.json()["message"] == "This needs the editor role in team Acme; you are viewer."


def test_it_hides_another_teams_loops_versions_and_exports(
    acme: Any, make_team: Any, client_for: Any
) -> None:
    _, _, client = acme
    loop = create(client)
    _, others = make_team("Other", roles=["owner"])
    outsider = client_for(others["owner"])
    for url in (
        f"/api/loops/{loop['id']}",
        f"/api/loops/{loop['id']}/versions",
        f"/api/loops/{loop['id']}/versions/1",
        f"/api/loops/{loop['id']}/diff?from=1&to=1",
        f"/api/loops/{loop['id']}/export",
    ):
        assert outsider.get(url).status_code == 404, url
    assert outsider.post(f"/api/loops/{loop['id']}/versions/1/restore").status_code == 404
    assert save(outsider, loop["id"], loop_yaml(), base=1).status_code == 404
    assert outsider.get("/api/loops").json() == []
    assert outsider.get("/api/loops/export").status_code == 200
    assert b"triage" not in outsider.get("/api/loops/export").content


def test_it_lists_the_current_teams_loops_for_an_api_token(acme: Any, bearer_client: Any) -> None:
    from loopkit_web.accounts.models import ApiToken

    team, users, client = acme
    create(client)
    _, raw = ApiToken.issue(user=users["editor"], team=team, name="ci")
    body = bearer_client(raw).get("/api/loops").json()
    assert [(loop["name"], loop["version"]) for loop in body] == [("triage", 1)]


def test_it_answers_413_in_json_for_a_body_over_the_request_limit(acme: Any) -> None:
    _, _, client = acme
    response = validate(client, {"yaml": "name: x\n" + "#" * 3_000_000})
    assert response.status_code == 413
    assert response.json() == {
        "code": "too_large",
        "message": "the request body is larger than 2,621,440 bytes",
        "details": [],
    }


def test_it_reports_a_loop_file_over_the_size_limit(acme: Any) -> None:
    _, _, client = acme
    body = validate(client, {"yaml": "name: x\n" + "#" * 2_100_000}).json()
    assert body["ok"] is False
    assert body["errors"][0]["code"] == "too_large"
