"""Import (YAML files, several files, a zip of loops/) and export (one YAML, a team zip)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from builder.models import Loop
from loopkit_web.audit.models import AuditEvent

from .builder_fixtures import create, loop_yaml, save

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(make_team: Any, client_for: Any) -> Any:
    team, users = make_team("Acme", roles=["owner", "editor", "viewer"])
    return team, users, client_for(users["editor"])


def upload(client: Any, *files: tuple[str, bytes], **fields: Any) -> Any:
    parts = [SimpleUploadedFile(name, content) for name, content in files]
    return client.post("/api/loops/import", {"files": parts, **fields})


def zipped(members: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_it_imports_one_yaml_file_and_audits_it(acme: Any) -> None:
    team, _, client = acme
    response = upload(client, ("triage.yaml", loop_yaml().encode()))
    assert response.status_code == 200, response.content
    assert response.json() == {
        "created": ["triage"],
        "updated": [],
        "unchanged": [],
        "converted": [],
    }
    version = Loop.objects.get(team=team, name="triage").current()
    assert version.yaml == loop_yaml() and version.message == "Imported from triage.yaml"
    event = AuditEvent.objects.get(action="loops.imported")
    assert event.changes["created"] == [None, ["triage"]]


def test_it_imports_several_files_at_once(acme: Any) -> None:
    _, _, client = acme
    body = upload(
        client, ("a.yaml", loop_yaml("a").encode()), ("b.yml", loop_yaml("b").encode())
    ).json()
    assert body["created"] == ["a", "b"]


def test_it_imports_a_zip_of_a_repositorys_loops_folder(acme: Any) -> None:
    _, _, client = acme
    archive = zipped(
        {
            "repo-main/loops/a.yaml": loop_yaml("a"),
            "repo-main/loops/b.yaml": loop_yaml("b"),
            "repo-main/README.md": "hello",
            "repo-main/.github/workflows/ci.yaml": "on: push\n",
        }
    )
    body = upload(client, ("repo.zip", archive)).json()
    assert body["created"] == ["a", "b"]


def test_it_imports_json_files_too(acme: Any) -> None:
    _, _, client = acme
    response = client.post(
        "/api/loops/import",
        {"files": [{"name": "a.yaml", "content": loop_yaml("a")}]},
        content_type="application/json",
    )
    assert response.json()["created"] == ["a"]


def test_it_imports_nothing_when_one_file_is_malformed(acme: Any) -> None:
    _, _, client = acme
    response = upload(
        client,
        ("good.yaml", loop_yaml("good").encode()),
        ("bad.yaml", b"name: bad\npipeline: [\n"),
    )
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "nothing was imported: 1 file(s) are not valid loops (bad.yaml)"
    assert body["errors"][0]["file"] == "bad.yaml"
    assert body["errors"][0]["code"] == "yaml_syntax"
    assert body["errors"][0]["line"] is not None
    assert not Loop.objects.exists()
    assert not AuditEvent.objects.filter(action="loops.imported").exists()


def test_it_refuses_a_name_clash_unless_told_to_overwrite(acme: Any) -> None:
    _, _, client = acme
    create(client)
    changed = loop_yaml(budget=False).encode()
    response = upload(client, ("new.yaml", loop_yaml("new").encode()), ("triage.yaml", changed))
    assert response.status_code == 409
    assert response.json()["message"] == (
        "nothing was imported: the team already has loop(s) named 'triage'; "
        "import with overwrite to save them as new versions"
    )
    assert response.json()["conflicts"] == ["triage"]
    assert not Loop.objects.filter(name="new").exists()  # all or nothing

    body = upload(
        client, ("new.yaml", loop_yaml("new").encode()), ("triage.yaml", changed), overwrite="true"
    ).json()
    assert body == {"created": ["new"], "updated": ["triage"], "unchanged": [], "converted": []}
    assert Loop.objects.get(name="triage").version == 2


def test_it_refuses_two_files_defining_the_same_loop(acme: Any) -> None:
    _, _, client = acme
    response = upload(client, ("a.yaml", loop_yaml().encode()), ("b.yaml", loop_yaml().encode()))
    assert response.status_code == 409
    assert response.json()["message"] == (
        "nothing was imported: a.yaml and b.yaml both define the loop 'triage'"
    )


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (
            {"../loops/evil.yaml": "x"},
            "repo.zip: refused the unsafe path '../loops/evil.yaml' in the zip",
        ),
        (
            {"/etc/loops/a.yaml": "x"},
            "repo.zip: refused the unsafe path '/etc/loops/a.yaml' in the zip",
        ),
        ({"README.md": "just docs"}, "repo.zip: the zip holds no loop files (loops/*.yaml)"),
    ],
)
def test_it_refuses_unsafe_or_empty_zips(acme: Any, members: dict[str, str], message: str) -> None:
    _, _, client = acme
    response = upload(client, ("repo.zip", zipped(members)))
    assert response.status_code == 400
    assert response.json()["message"] == message
    assert not Loop.objects.exists()


def test_it_refuses_a_zip_bomb(acme: Any) -> None:
    _, _, client = acme
    bomb = zipped({"loops/bomb.yaml": "a" * (3 * 1024 * 1024)})
    assert len(bomb) < 10_000
    response = upload(client, ("bomb.zip", bomb))
    assert response.status_code == 400
    assert response.json()["message"] == (
        "bomb.zip: 'loops/bomb.yaml' expands too much to be a loop file (a zip bomb?)"
    )


def test_it_refuses_a_symlink_in_a_zip(acme: Any) -> None:
    _, _, client = acme
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("loops/link.yaml")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    response = upload(client, ("repo.zip", buffer.getvalue()))
    assert (
        response.json()["message"]
        == "repo.zip: refused the symbolic link 'loops/link.yaml' in the zip"
    )


def test_it_refuses_junk_that_is_not_a_zip_or_yaml(acme: Any) -> None:
    _, _, client = acme
    assert upload(client, ("loops.zip", b"\x00\x01junk")).json()["message"] == (
        "loops.zip: the file is not a zip archive"
    )
    assert upload(client, ("photo.png", b"\x89PNG")).json()["message"] == (
        "photo.png: not a loop file: upload .yaml/.yml files or a .zip (or a Dify, CrewAI, "
        "GitHub agentic workflow or Agent Spec file)"
    )
    assert upload(client).json()["message"] == (
        "no file was uploaded: send YAML files or a zip of loops/"
    )


def test_it_refuses_a_50_mb_upload_with_413(acme: Any) -> None:
    _, _, client = acme
    big = b"# " + b"x" * (50 * 1024 * 1024)
    response = upload(client, ("huge.yaml", big))
    assert response.status_code == 413
    body = response.json()
    assert body["message"].startswith("the upload is 52,")
    assert body["message"].endswith("bytes; imports are limited to 10,485,760 bytes")
    assert not Loop.objects.exists()


def test_a_multipart_body_without_a_boundary_is_a_json_400(acme: Any) -> None:
    _, _, client = acme

    response = client.post("/api/loops/import", b"junk", content_type="multipart/form-data")

    assert response.status_code == 400
    assert response.json() == {
        "code": "bad_request",
        "message": "the multipart body cannot be read: Invalid boundary in multipart: None",
        "details": [],
    }


def test_a_json_import_may_use_the_whole_import_limit_not_the_request_limit(acme: Any) -> None:
    _, _, client = acme
    padding = "# " + "x" * 900_000 + "\n"  # under the 1 MB per-file limit
    files = [{"name": f"l{i}.yaml", "content": loop_yaml(f"l{i}") + padding} for i in range(4)]
    body = json.dumps({"files": files})
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = client.post("/api/loops/import", body, content_type="application/json")

    assert response.status_code == 200, response.content[:300]
    assert response.json()["created"] == ["l0", "l1", "l2", "l3"]


@override_settings(LOOPKIT_IMPORT_MAX_BYTES=100_000)
def test_a_json_import_over_the_import_limit_is_a_413(acme: Any) -> None:
    _, _, client = acme
    body = json.dumps({"files": [{"name": "a.yaml", "content": "# " + "x" * 200_000}]})

    response = client.post("/api/loops/import", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {
        "code": "too_large",
        "message": f"the upload is {len(body):,} bytes; imports are limited to 100,000 bytes",
        "details": [],
    }
    assert not Loop.objects.exists()


def test_it_exports_one_loop_as_its_yaml_and_audits_it(acme: Any) -> None:
    _, _, client = acme
    loop = create(client)
    response = client.get(f"/api/loops/{loop['id']}/export")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="triage.yaml"'
    assert response.content.decode() == loop_yaml()
    assert AuditEvent.objects.filter(action="loop.exported").count() == 1


def test_it_exports_the_teams_loops_as_a_zip_that_imports_back(
    acme: Any, make_team: Any, client_for: Any
) -> None:
    _, _, client = acme
    first = create(client)
    create(client, loop_yaml("nightly"))
    save(client, first["id"], loop_yaml(budget=False), base=1)
    response = client.get("/api/loops/export")
    assert response["Content-Disposition"] == 'attachment; filename="acme-loops.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["loops/nightly.yaml", "loops/triage.yaml"]
    assert archive.read("loops/triage.yaml").decode() == loop_yaml(budget=False)

    _, others = make_team("Other", roles=["editor"])
    body = upload(client_for(others["editor"]), ("acme-loops.zip", response.content)).json()
    assert body["created"] == ["nightly", "triage"]
