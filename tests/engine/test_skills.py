"""Skills: SKILL.md discovery (project folders and installed packages), validation,
``loopkit skills``, and progressive disclosure inside a real run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import LLMServer, Reply

from loopkit import skills
from loopkit.cli import main
from loopkit.connectors.provider import ConnectorTools
from loopkit.engine import RunOptions, run_loop
from loopkit.errors import SpecError
from loopkit.llm import LiteLLMProvider
from loopkit.project import find_project
from loopkit.sinks import ListSink
from loopkit.yamlio import loop_from_data

REVIEW = """\
---
name: code-review
description: Review a diff for bugs, security holes and missing tests.
---
# Code review

1. Read the whole diff before commenting.
2. Use checklist.md.
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "loopkit.yaml", "name: demo\n")
    write(tmp_path / "skills/code-review/SKILL.md", REVIEW)
    write(tmp_path / "skills/code-review/checklist.md", "- tests?\n- secrets in the diff?\n")
    write(
        tmp_path / "skills/writing/release-notes/SKILL.md",
        "---\nname: release-notes\ndescription: Write release notes people read.\n---\nGroup by impact.\n",
    )
    return tmp_path


@pytest.fixture
def installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution 'demo-skills' on sys.path whose entry point names a module of skills."""
    site = tmp_path / "site"
    write(site / "demo_skills/__init__.py", "")
    write(
        site / "demo_skills/pdf-forms/SKILL.md",
        "---\nname: pdf-forms\ndescription: Fill PDF forms field by field.\n---\nUse the field names.\n",
    )
    write(
        site / "demo_skills/code-review/SKILL.md",
        "---\nname: code-review\ndescription: The package's own review skill.\n---\nShadowed.\n",
    )
    dist = site / "demo_skills-1.0.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: demo-skills\nVersion: 1.0\n")
    write(dist / "entry_points.txt", "[loopkit.skills]\ndemo = demo_skills\n")
    monkeypatch.syspath_prepend(str(site))
    yield site


def test_it_finds_project_skills_with_their_files(project: Path) -> None:
    catalog = skills.discover(project, ["skills"], packages=False)

    assert catalog.names() == ["code-review", "release-notes"]
    review = catalog.skills["code-review"]
    assert review.description == "Review a diff for bugs, security holes and missing tests."
    assert review.body.startswith("# Code review\n\n1. Read the whole diff")
    assert review.files() == ["checklist.md"]
    assert review.source == "project"
    assert catalog.problems == []


def test_it_finds_skills_of_installed_packages_and_the_project_wins(
    project: Path, installed_package: Path
) -> None:
    catalog = skills.discover(project, ["skills"])

    assert catalog.skills["pdf-forms"].source == "package:demo-skills"
    assert catalog.skills["pdf-forms"].body == "Use the field names."
    assert catalog.skills["code-review"].source == "project"


def test_a_broken_skill_md_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "skills/bad/SKILL.md", "---\nname: Bad Name!\n---\nbody\n")
    write(tmp_path / "skills/plain/SKILL.md", "no front matter here\n")

    catalog = skills.discover(tmp_path, ["skills"], packages=False)

    assert catalog.names() == []
    assert [(p.file, p.line, p.code, p.message) for p in catalog.problems] == [
        (str(bad), 2, "skill_name", "'Bad Name!' is not a valid skill name"),
        (
            str(bad),
            1,
            "skill_description",
            "'description' is missing: it is what the model reads to decide whether the skill applies",
        ),
        (
            str(tmp_path / "skills/plain/SKILL.md"),
            1,
            "skill_front_matter",
            "SKILL.md must start with YAML front matter between '---' lines",
        ),
    ]


def test_validation_reports_a_missing_skill_by_name(project: Path) -> None:
    write(
        project / "loops/review.yaml",
        """\
name: review
skills: [code-review, code-reveiw-v2]
pipeline:
  - prompt: Review the diff.
    skills: [release-notes]
""",
    )

    with pytest.raises(SpecError) as caught:
        find_project(project).load("review")

    (problem,) = caught.value.problems
    assert problem.message == (
        "skill 'code-reveiw-v2' was not found in the project's skills folders or installed packages"
    )
    assert (problem.path, problem.line, problem.column, problem.code) == (
        "skills[1]",
        2,
        23,
        "unknown_skill",
    )
    assert problem.hint == "did you mean 'code-review'?"


def test_a_discovered_skill_counts_as_declared(project: Path) -> None:
    write(
        project / "loops/notes.yaml",
        "name: notes\npipeline:\n  - prompt: Write.\n    skills: [release-notes]\n",
    )

    loop = find_project(project).load("notes")

    assert loop.pipeline[0].skills == ["release-notes"]  # type: ignore[union-attr]


def test_loopkit_skills_lists_them(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["skills", "--project", str(project), "--no-packages"])

    out = capsys.readouterr().out
    assert code == 0
    assert out == (
        "code-review    Review a diff for bugs, security holes and missing tests.\n"
        "               (skills/code-review/)\n"
        "release-notes  Write release notes people read.\n"
        "               (skills/writing/release-notes/)\n"
    )


def test_loopkit_skills_json_and_problems(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(project / "skills/broken/SKILL.md", "---\nname: broken\n---\n")

    code = main(["skills", "--project", str(project), "--no-packages", "--json"])

    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [s["name"] for s in data["skills"]] == ["code-review", "release-notes"]
    assert data["skills"][0]["files"] == ["checklist.md"]
    assert [p["code"] for p in data["problems"]] == ["skill_description"]


# ── Progressive disclosure in a run ──────────────────────────────────────


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


async def run(server: LLMServer, project: Path, step: dict[str, Any]) -> tuple[Any, ListSink]:
    loop = loop_from_data(
        {"name": "skilled", "model": "openai/test", "pipeline": [{"label": "Review", **step}]},
        check=False,
    )
    sink = ListSink()
    result = await run_loop(
        loop,
        LiteLLMProvider(api_base=server.url),
        sinks=[sink],
        options=RunOptions(retry_base_delay=0.01),
        tool_provider=ConnectorTools(loop, root=project),
    )
    return result, sink


async def test_a_step_gets_descriptions_first_and_the_body_when_it_loads_the_skill(
    server: LLMServer, project: Path
) -> None:
    server.reset()
    server.tool_call("load_skill", {"name": "code-review"})
    server.tool_call("read_skill_file", {"skill": "code-review", "path": "checklist.md"})
    server.tool_call("read_skill_file", {"skill": "code-review", "path": "../../loopkit.yaml"})
    server.script(Reply("Reviewed."))

    result, sink = await run(
        server, project, {"prompt": "Review this diff.", "skills": ["code-review"]}
    )

    assert result.status == "succeeded", result.error
    first = server.requests[0].body
    system = first["messages"][0]
    assert system["role"] == "system"
    assert (
        "- code-review: Review a diff for bugs, security holes and missing tests."
        in system["content"]
    )
    assert "Read the whole diff" not in json.dumps(first)  # the body waits until it is asked for
    assert sorted(t["function"]["name"] for t in first["tools"]) == [
        "load_skill",
        "read_skill_file",
    ]
    tool_messages = [
        m["content"] for m in server.requests[-1].body["messages"] if m["role"] == "tool"
    ]
    assert tool_messages[0].startswith(
        "# Skill: code-review\n\n# Code review\n\n1. Read the whole diff"
    )
    assert tool_messages[0].endswith(
        "Files in this skill (read one with read_skill_file):\n- checklist.md"
    )
    assert tool_messages[1] == "- tests?\n- secrets in the diff?\n"
    assert tool_messages[2] == "'../../loopkit.yaml' is not inside the skill 'code-review'"
    assert [e.is_error for e in sink.of_type("tool_called")] == [False, False, True]


async def test_a_skill_missing_at_run_time_fails_the_run_by_name(
    server: LLMServer, project: Path
) -> None:
    server.reset()

    result, _ = await run(server, project, {"prompt": "Go.", "skills": ["no-such-skill"]})

    assert result.status == "failed"
    assert result.error_code == "unknown_skill"
    assert result.error == "Review: skill 'no-such-skill' was not found"
    assert server.requests == []
