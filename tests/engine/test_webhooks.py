"""GitHub webhook payloads: which trigger.payload paths exist, and realistic samples."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from loopkit import webhooks

ROOT = Path(__file__).resolve().parents[2]


def test_the_common_github_events_are_known() -> None:
    events = webhooks.known_events()
    assert {"pull_request", "push", "issues", "issue_comment", "release", "workflow_run"} <= events
    assert len(events) == 66


def test_paths_of_a_pull_request_payload_exist() -> None:
    for path in (
        ["number"],
        ["action"],
        ["pull_request", "number"],
        ["pull_request", "head", "sha"],
        ["pull_request", "base", "ref"],
        ["pull_request", "user", "login"],
        ["repository", "full_name"],
        ["sender", "login"],
    ):
        assert webhooks.has_path("pull_request", path) is True, path


def test_the_empty_path_is_the_payload_itself() -> None:
    assert webhooks.has_path("push", []) is True


def test_a_key_the_event_does_not_have_does_not_exist() -> None:
    assert webhooks.has_path("pull_request", ["pull_request", "nope"]) is False
    assert webhooks.has_path("pull_request", ["nope"]) is False
    assert webhooks.has_path("push", ["pull_request"]) is False


def test_nothing_exists_below_a_leaf() -> None:
    assert webhooks.has_path("pull_request", ["number", "x"]) is False
    assert webhooks.has_path("pull_request", ["pull_request", "head", "sha", "x"]) is False
    assert webhooks.has_path("pull_request", ["number", 0]) is False


def test_an_unknown_event_is_not_checked() -> None:
    assert webhooks.has_path("no_such_event", ["anything"]) is None
    assert webhooks.children("no_such_event", []) == []
    assert webhooks.sample_payload("no_such_event") is None


def test_a_key_of_any_action_variant_exists() -> None:
    # merged_by is null when a pull request is opened and a user once it is merged.
    assert webhooks.has_path("pull_request", ["pull_request", "merged_by", "login"]) is True
    # `changes` comes with the `edited` action only.
    assert webhooks.has_path("pull_request", ["changes", "title", "from"]) is True
    # `label` comes with `labeled` / `unlabeled` only.
    assert webhooks.has_path("pull_request", ["label", "name"]) is True


def test_an_integer_indexes_an_array_and_a_name_does_not() -> None:
    assert webhooks.has_path("push", ["commits", 0, "id"]) is True
    assert webhooks.has_path("push", ["commits", -1, "message"]) is True
    assert webhooks.has_path("push", ["commits", "id"]) is False
    assert webhooks.has_path("push", ["commits", 0, "nope"]) is False
    assert webhooks.has_path("push", ["head_commit", 0]) is False
    assert webhooks.has_path("push", ["commits", True]) is False


def test_any_key_exists_below_an_object_that_allows_any_key() -> None:
    # A repository_dispatch's client_payload is whatever the sender chose.
    assert webhooks.has_path("repository_dispatch", ["client_payload", "x", "y", 3]) is True
    # workflow_dispatch inputs are the workflow's own.
    assert webhooks.has_path("workflow_dispatch", ["inputs", "environment"]) is True
    assert webhooks.children("repository_dispatch", ["client_payload"]) == []


def test_children_name_the_keys_below_a_path() -> None:
    keys = webhooks.children("pull_request", ["pull_request"])
    assert {"head", "base", "number", "title", "body", "merged"} <= set(keys)
    assert keys == sorted(keys)
    assert webhooks.children("pull_request", ["pull_request", "head"]) == [
        "label",
        "ref",
        "repo",
        "sha",
        "user",
    ]


def test_children_are_empty_for_a_leaf_an_array_and_a_missing_path() -> None:
    assert webhooks.children("pull_request", ["number"]) == []
    assert webhooks.children("push", ["commits"]) == []
    assert webhooks.children("pull_request", ["nope"]) == []
    assert "id" in webhooks.children("push", ["commits", 0])


def test_a_sample_pull_request_payload_is_a_real_one() -> None:
    payload = webhooks.sample_payload("pull_request")
    assert payload is not None
    assert payload["action"] == "opened"
    assert isinstance(payload["pull_request"]["number"], int)
    assert payload["number"] == payload["pull_request"]["number"]
    assert "/" in payload["repository"]["full_name"]
    assert isinstance(payload["pull_request"]["head"]["sha"], str)


def test_a_sample_for_an_action_is_that_actions_payload() -> None:
    opened = webhooks.sample_payload("pull_request", "opened")
    closed = webhooks.sample_payload("pull_request", "closed")
    assert opened is not None and closed is not None
    assert opened["action"] == "opened"
    assert (closed["action"], closed["pull_request"]["state"]) == ("closed", "closed")


def test_a_sample_for_an_action_without_an_example_is_the_default_with_that_action() -> None:
    payload = webhooks.sample_payload("pull_request", "auto_merge_enabled")
    default = webhooks.sample_payload("pull_request")
    assert payload is not None and default is not None
    assert payload["action"] == "auto_merge_enabled"
    assert payload["pull_request"] == default["pull_request"]


def test_an_event_without_actions_has_a_sample() -> None:
    payload = webhooks.sample_payload("push")
    assert payload is not None
    assert "action" not in payload
    assert payload["ref"].startswith("refs/")
    assert isinstance(payload["commits"], list)


def test_each_sample_is_a_fresh_copy() -> None:
    first = webhooks.sample_payload("issues")
    assert first is not None
    first["issue"]["title"] = "changed"
    second = webhooks.sample_payload("issues")
    assert second is not None
    assert second["issue"]["title"] != "changed"


def test_an_event_without_a_published_example_gets_one_built_from_its_schema() -> None:
    payload = webhooks.sample_payload("custom_property")
    assert payload is not None
    assert payload["action"] == "created"
    assert isinstance(payload["definition"]["property_name"], str)
    # The parts every event shares are copied from a real delivery.
    package = webhooks.sample_payload("registry_package")
    assert package is not None
    assert package["repository"]["full_name"] == "octo-org/octo-repo"
    assert package["sender"]["login"] != "example login"


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield path
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _paths(sub, (*path, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _paths(sub, (*path, index))


def _every_sample() -> Iterator[tuple[str, str]]:
    for event in sorted(webhooks.known_events()):
        for action in webhooks._samples()[event]:
            yield event, action


def test_every_path_of_every_sample_payload_exists() -> None:
    missing = []
    checked = 0
    for event, action in _every_sample():
        payload = webhooks.sample_payload(event, action)
        for path in _paths(payload):
            checked += 1
            if not webhooks.has_path(event, path):
                missing.append((event, action, path))
    assert missing == []
    assert checked > 20_000


def test_every_known_event_has_a_sample_with_its_actions() -> None:
    for event in webhooks.known_events():
        payload = webhooks.sample_payload(event)
        assert isinstance(payload, dict), event
        actions = webhooks._trees().events[event]["actions"]
        if actions:
            assert payload["action"] in actions, event


def test_the_data_files_record_their_sources_and_licence() -> None:
    for name in ("github-webhooks.json.gz", "github-webhook-samples.json.gz"):
        raw = files("loopkit").joinpath("data", name).read_bytes()
        doc = json.loads(gzip.decompress(raw))
        assert doc["source"] == {
            "@octokit/webhooks-schemas": {"version": "7.6.1", "license": "MIT"},
            "@octokit/webhooks-examples": {"version": "7.6.1", "license": "MIT"},
        }
        assert len(raw) < 200_000
    assert "MIT License" in files("loopkit").joinpath("data", "NOTICE").read_text()


def test_the_data_is_read_on_first_use_and_the_samples_only_for_a_sample() -> None:
    probe = (
        "import loopkit, loopkit.webhooks as w\n"
        "def loaded(): return [f.cache_info().currsize for f in (w._trees, w._samples)]\n"
        "print(loaded())\n"
        "w.has_path('push', ['ref'])\n"
        "print(loaded())\n"
        "w.sample_payload('push')\n"
        "print(loaded())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == ["[0, 0]", "[1, 0]", "[1, 1]"]


@pytest.mark.skipif(
    shutil.which("npm") is None and not os.environ.get("CI"), reason="needs npm (CI has it)"
)
def test_the_committed_data_is_what_the_vendor_script_makes_from_its_versions() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "vendor-webhooks.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout == (
        "loopkit/data/github-webhooks.json.gz is up to date\n"
        "loopkit/data/github-webhook-samples.json.gz is up to date\n"
    )
    assert result.returncode == 0
