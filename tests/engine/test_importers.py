"""``loopkit import``: Dify, CrewAI, GitHub agentic workflows and Agent Spec files become loops.

Every fixture is a real-format file (tests/fixtures/import/README.md says where
each comes from). Each converted loop must validate as the engine validates
a loop file; what did not map is listed with where it was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loopkit import spec
from loopkit.cli import main
from loopkit.document import analyze
from loopkit.errors import SpecError
from loopkit.importers import Imported, convert_path, convert_text, convert_upload, detect
from loopkit.templating import environment

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "import"


def imported(relative: str, fmt: str = "auto") -> Imported:
    result = convert_path(FIXTURES / relative, fmt)
    # What `loopkit validate` would say of the written file: no problem at all.
    analysis = analyze(result.yaml, file="imported.yaml")
    assert analysis.ok, [str(p) for p in analysis.problems]
    return result


def loop_of(result: Imported) -> spec.Loop:
    assert result.analysis is not None and result.analysis.loop is not None
    return result.analysis.loop


def labels(steps: list[Any]) -> list[Any]:
    out: list[Any] = []
    for step in steps:
        if isinstance(step, spec.ParallelStep):
            out.append(("parallel", labels(step.parallel)))
        elif isinstance(step, spec.ConditionalStep):
            out.append(("when", step.when, labels(step.then), labels(step.else_ or [])))
        else:
            out.append(step.label)
    return out


def notes(result: Imported) -> list[str]:
    return [str(n) for n in result.notes]


# ── Dify ─────────────────────────────────────────────────────────────────


def test_a_dify_workflow_becomes_inputs_steps_and_a_condition() -> None:
    result = imported("dify/translation_workflow.yml")
    loop = loop_of(result)
    assert result.format == "dify"
    assert loop.name == "translation_workflow"
    assert loop.model == "deepseek/deepseek-chat"
    assert set(loop.inputs) == {"target_lang", "source_text", "source_lang", "country"}
    assert loop.inputs["source_text"].required is True
    assert loop.inputs["country"].default == ""  # optional: Dify sends an empty string
    assert labels(loop.pipeline) == [
        "TRANSLATION",
        ("when", "not inputs.country", ["EXPERT_SUGGESTIONS"], ["EXPERT_SUGGESTIONS_WITH_COUNTRY"]),
        "IMPORVE_TRANSLATE",
    ]
    first, _, last = loop.pipeline
    assert isinstance(first, spec.AgentStep) and isinstance(last, spec.AgentStep)
    assert "{{ inputs.source_lang }} to {{ inputs.target_lang }}" in first.prompt
    # The variable aggregator reads whichever branch ran.
    assert (
        "{{ (steps['EXPERT_SUGGESTIONS'].output if steps['EXPERT_SUGGESTIONS'] is defined else "
        "(steps['EXPERT_SUGGESTIONS_WITH_COUNTRY'].output if "
        "steps['EXPERT_SUGGESTIONS_WITH_COUNTRY'] is defined else '')) }}"
    ) in last.prompt
    assert last.params is not None and last.params.temperature == 0.7
    assert result.notes == []


def test_dify_nodes_without_a_loopkit_step_are_noted_where_they_are() -> None:
    result = imported("dify/LanguageConsistencyChecker.yml")
    loop = loop_of(result)
    assert [type(s).__name__ for s in loop.pipeline] == ["ParallelStep"]
    said = notes(result)
    assert (
        f"{FIXTURES / 'dify/LanguageConsistencyChecker.yml'}:261:7: tool node '英文': not mapped:"
        " a tool node calls a Dify tool; declare a connector and add a tool step"
    ) in said
    assert any("code node '处理英文': not mapped" in n for n in said)
    assert any(
        "the variable {{#1732377867403.result#}} (an output of the code node '处理中文') has no "
        "LoopKit counterpart" in n
        for n in said
    )
    assert any("OpenAI-compatible endpoint" in n for n in said)


def test_a_dify_file_of_a_chat_app_is_refused_with_its_mode() -> None:
    text = "app:\n  mode: chat\n  name: bot\nkind: app\nversion: 0.1.0\nmodel_config: {}\n"
    with pytest.raises(SpecError) as error:
        convert_text(text, "bot.yml")
    assert str(error.value.problems[0]).startswith(
        "bot.yml: the Dify app's mode is 'chat': only 'workflow' and 'advanced-chat' apps"
    )


# ── CrewAI ───────────────────────────────────────────────────────────────


def test_a_crewai_project_folder_becomes_subagents_steps_and_a_guardrail_checker() -> None:
    result = imported("crewai/release_notes")
    loop = loop_of(result)
    assert result.format == "crewai"
    assert loop.name == "release_notes"
    assert set(loop.inputs) == {"repository", "version"}
    assert labels(loop.pipeline) == [
        ("parallel", ["collect_pull_requests", "collect_issues"]),
        "draft_notes",
        "polish_notes",
    ]
    assert {k: s.role for k, s in loop.subagents.items()} == {
        "researcher": "executor",
        "writer": "executor",
        "editor": "executor",
        "guardrail": "verifier",
    }
    assert loop.subagents["writer"].model == "anthropic/claude-sonnet-4-5"
    draft = loop.pipeline[1]
    assert isinstance(draft, spec.AgentStep) and draft.subagent == "writer"
    assert "{{ steps['collect_issues'].output }}" in draft.prompt  # its context
    polish = loop.pipeline[2]
    assert isinstance(polish, spec.AgentStep)
    assert "{{ steps['draft_notes'].output }}" in polish.prompt  # the previous task, by default
    assert loop.verify is not None and loop.verify.maker == ["polish_notes"]
    assert loop.verify.checker == "guardrail"
    assert any("output_file is not mapped" in n for n in notes(result))
    assert any("its tools (github_search) are not mapped" in n for n in notes(result))


def test_a_hierarchical_crew_in_jsonc_becomes_a_plan_step() -> None:
    result = imported("crewai/trip_planner/config/tasks.jsonc")
    loop = loop_of(result)
    assert loop.name == "trip_planner"
    (plan,) = loop.pipeline
    assert isinstance(plan, spec.PlanStep)
    assert list(plan.templates) == ["pick_places", "plan_days"]
    assert plan.planner == "manager" and loop.subagents["manager"].role == "planner"
    assert loop.subagents["manager"].model == "openai/gpt-4o"
    assert any("the crew's process is hierarchical" in n for n in notes(result))


def test_a_crewai_tasks_file_with_a_bad_task_says_where() -> None:
    text = "write:\n  description: Write it\n  expected_output: A text\nreview: just words\n"
    with pytest.raises(SpecError) as error:
        convert_text(text, "tasks.yaml", "crewai")
    assert str(error.value.problems[0]) == (
        "tasks.yaml:4:9: task 'review' must be a mapping of settings (review)"
    )


# ── GitHub agentic workflows ─────────────────────────────────────────────


def test_a_gh_aw_workflow_becomes_a_webhook_loop_with_the_github_mcp_server() -> None:
    result = imported("gh-aw/issue-triage.md")
    loop = loop_of(result)
    assert result.format == "gh-aw"
    assert loop.trigger == spec.WebhookTrigger(
        type="webhook", event="issues", actions=["opened", "reopened"]
    )
    assert loop.model == "anthropic/claude-sonnet-4-5"
    (step,) = loop.pipeline
    assert isinstance(step, spec.AgentStep) and step.label == "Issue Triage"
    assert "issue #{{ trigger.payload.issue.number }}" in step.prompt
    assert step.connectors == ["github"]
    assert step.tools == ["get_issue", "list_issue_comments", "search_issues"]
    assert loop.budget is not None and loop.budget.max_duration_minutes == 10
    said = notes(result)
    path = FIXTURES / "gh-aw/issue-triage.md"
    assert (
        f"{path}:10:14: permissions are not mapped: a loop's connectors carry their own credentials"
        in said
    )
    assert any("the safe output 'add-comment' is not mapped" in n for n in said)
    assert any("the tool 'web-fetch' is not mapped" in n for n in said)


def test_a_scheduled_gh_aw_workflow_keeps_its_cron_and_dispatch_inputs() -> None:
    result = imported("gh-aw/weekly-digest.md")
    loop = loop_of(result)
    assert loop.trigger == spec.CronTrigger(type="cron", schedule="0 8 * * 1", timezone="UTC")
    assert loop.inputs["topic"].default == "releases"
    (step,) = loop.pipeline
    assert isinstance(step, spec.AgentStep)
    assert "about {{ inputs.topic }}" in step.prompt and "{{ run.id }}" in step.prompt
    connector = loop.connectors["docs"]
    assert isinstance(connector, spec.McpConnector) and connector.command == "npx"
    assert loop.memory is not None  # cache-memory
    assert any("also triggered by 'workflow_dispatch'" in n for n in notes(result))


def test_markdown_without_front_matter_is_not_a_workflow() -> None:
    with pytest.raises(SpecError) as error:
        convert_text("# Notes\n\nno front matter\n", "notes.md", "gh-aw")
    assert str(error.value.problems[0]).startswith(
        "notes.md:1:1: not a GitHub agentic workflow: the file must start with '---'"
    )


# ── Open Agent Spec ──────────────────────────────────────────────────────


def test_an_agent_spec_flow_that_loops_back_becomes_maker_checker() -> None:
    result = imported("agentspec/howto_flow_with_conditional_branches.yaml")
    loop = loop_of(result)
    assert result.format == "agentspec"
    assert list(loop.inputs) == ["user_request"]
    assert labels(loop.pipeline) == [
        "Generate code node",
        "Review code node",
        "Check if code is ready node",
    ]
    generate, review, check = loop.pipeline
    assert isinstance(generate, spec.AgentStep) and "{{ feedback }}" in generate.prompt
    assert isinstance(review, spec.AgentStep)
    assert "{{ steps['Generate code node'].output }}" in review.prompt
    assert isinstance(check, spec.AgentStep) and isinstance(check.output, spec.OutputSchema)
    assert loop.verify is not None and loop.verify.maker == ["Generate code node"]
    assert any("the branch 'no' leads back to 'Generate code node'" in n for n in notes(result))


def test_an_agent_spec_json_flow_notes_its_tool_nodes() -> None:
    result = imported("agentspec/howto_parallelflownode.json")
    loop = loop_of(result)
    assert labels(loop.pipeline) == ["prepare_marketing_message_node"]
    said = notes(result)
    assert sum("ToolNode" in n and "not mapped" in n for n in said) == 4
    assert any("OutputMessageNode 'output_message_node': not mapped" in n for n in said)


# ── detection and the web app's grouping ─────────────────────────────────


@pytest.mark.parametrize(
    ("relative", "fmt"),
    [
        ("dify/seo_slug_generator.yml", "dify"),
        ("gh-aw/weekly-digest.md", "gh-aw"),
        ("agentspec/howto_parallelflownode.json", "agentspec"),
        ("crewai/release_notes/src/release_notes/config/tasks.yaml", "crewai"),
        ("crewai/trip_planner/config/agents.jsonc", "crewai"),
    ],
)
def test_the_format_is_detected_from_the_content(relative: str, fmt: str) -> None:
    path = FIXTURES / relative
    assert detect(path.read_text(), path.name) == fmt


def test_a_loopkit_loop_is_no_foreign_format() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in (root / "loops").glob("*.yaml"):
        assert detect(path.read_text(), path.name) is None, path


def test_an_upload_pairs_crewai_agents_and_tasks_and_leaves_loops_alone() -> None:
    config = FIXTURES / "crewai/release_notes/src/release_notes/config"
    loop = "name: mine\npipeline:\n  - prompt: Hi\n"
    converted, rest = convert_upload(
        [
            ("agents.yaml", (config / "agents.yaml").read_text()),
            ("tasks.yaml", (config / "tasks.yaml").read_text()),
            ("mine.yaml", loop),
        ]
    )
    assert [(c.format, c.name) for c in converted] == [("crewai", "crew")]
    assert loop_of(converted[0]).subagents["writer"].role == "executor"
    assert rest == [("mine.yaml", loop)]


# ── the command line ─────────────────────────────────────────────────────


def test_loopkit_import_writes_the_loop_into_loops_and_prints_notes_and_lrs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    source = FIXTURES / "gh-aw/issue-triage.md"
    assert main(["import", str(source)]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "loops" / "issue-triage.yaml"
    assert f"Imported {source} (gh-aw) as the loop 'issue-triage' → {written}" in out
    assert "Not mapped (7):" in out
    assert "issue-triage — LRS: 34/100 (Grade F)" in out
    assert main(["validate", str(written)]) == 0
    assert main(["import", str(source)]) == 1  # no silent overwrite
    assert "already exists; use --force" in capsys.readouterr().err


def test_loopkit_import_with_a_format_that_does_not_fit_exits_2_with_a_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "flow.yml"
    broken.write_text("app:\n  mode: workflow\nkind: app\nworkflow: [\n")
    assert main(["import", str(broken), "-o", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"loopkit import: {broken}:5:1: ")
    unknown = tmp_path / "notes.txt"
    unknown.write_text("just text\n")
    assert main(["import", str(unknown)]) == 2
    assert "cannot tell the format" in capsys.readouterr().err


def test_loopkit_import_of_a_malformed_file_names_the_syntax_error_not_the_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "workflow.yml"
    broken.write_text("app:\n  mode: workflow\nnodes: [1, 2\n")
    assert main(["import", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"loopkit import: {broken}:4:1: YAML syntax error: ")
    assert "cannot tell the format" not in err
    broken_json = tmp_path / "flow.json"
    broken_json.write_text('{"component_type": "Flow",\n')
    assert main(["import", str(broken_json)]) == 2
    assert f"{broken_json}:2:1: YAML syntax error" in capsys.readouterr().err


def test_loopkit_import_into_a_folder_writes_the_loop_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = FIXTURES / "gh-aw" / "issue-triage.md"
    folder = tmp_path / "imported"
    folder.mkdir()
    assert main(["import", str(source), "-o", str(folder)]) == 0
    written = folder / "issue-triage.yaml"
    assert f"as the loop 'issue-triage' → {written}" in capsys.readouterr().out
    assert main(["validate", str(written)]) == 0


def test_loopkit_export_writes_a_gh_aw_workflow_that_imports_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[2]
    for name in ("pr-review", "daily-triage", "release-notes"):
        target = tmp_path / f"{name}.md"
        assert (
            main(
                [
                    "export",
                    str(root / "loops" / f"{name}.yaml"),
                    "--format",
                    "gh-aw",
                    "-o",
                    str(target),
                ]
            )
            == 0
        )
        text = target.read_text()
        assert text.startswith("---\n") and "\non:\n" in text
        back = convert_path(target)
        assert back.analysis is not None and back.analysis.ok, name
    err = capsys.readouterr().err
    assert "Maker/Checker verification became a self-check" in err
    pr = (tmp_path / "pr-review.md").read_text()
    assert "on:\n  pull_request:\n    types:\n    - opened\n" in pr
    assert "### Bug Review" in pr and "${{ github.event.pull_request.title }}" in pr
    again = convert_path(tmp_path / "pr-review.md")
    assert loop_of(again).trigger == spec.WebhookTrigger(
        type="webhook", event="pull_request", actions=["opened", "synchronize", "reopened"]
    )


def test_loopkit_import_runs_as_a_program(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopkit.cli",
            "import",
            str(FIXTURES / "crewai/release_notes"),
            "-o",
            "-",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("name: release_notes\n")
    assert "release_notes — LRS: " in done.stderr
    # The description names the crew, not the importer's folders (it goes into prompts).
    assert "description: Imported from the CrewAI crew 'release_notes' (tasks.yaml).\n" in (
        done.stdout
    )
    assert str(FIXTURES) not in done.stdout


def test_a_dify_question_classifier_classifies_with_a_schema_then_routes() -> None:
    result = imported("dify/intent_reply.yml")
    loop = loop_of(result)
    classify = loop.pipeline[1]
    assert isinstance(classify, spec.AgentStep) and classify.label == "问题分类器"
    assert isinstance(classify.output, spec.OutputSchema)
    assert classify.output.json_schema["properties"]["class"]["enum"] == ["健康咨询", "使用帮助"]
    route = loop.pipeline[2]
    assert isinstance(route, spec.ConditionalStep) and route.label == "Route by 问题分类器"
    assert route.when == "steps['问题分类器'].output['class'] == '健康咨询'"
    assert any("knowledge-retrieval node '知识检索': not mapped" in n for n in notes(result))


def test_literal_jinja_in_a_source_prompt_stays_literal() -> None:
    text = (
        (FIXTURES / "gh-aw/weekly-digest.md")
        .read_text()
        .replace("what shipped", "what shipped ({{ not a template }}, {% raw %})")
    )
    result = convert_text(text, "digest.md")
    (step,) = loop_of(result).pipeline
    assert isinstance(step, spec.AgentStep)
    assert "{{ '{{' }} not a template }}, {{ '{%' }} raw %})" in step.prompt
    rendered = (
        environment()
        .from_string(step.prompt)
        .render(inputs={"repository": "a/b", "topic": "x"}, run={"id": 1})
    )
    assert "what shipped ({{ not a template }}, {% raw %})" in rendered


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "flow.yml",
            "app: {mode: workflow}\nkind: app\nworkflow: {graph: {nodes: 5, edges: []}}\n",
            "workflow.graph.nodes and .edges must be lists",
        ),
        (
            "flow.yml",
            "app: {mode: workflow}\nkind: app\nworkflow:\n  graph:\n    nodes:\n"
            "      - {id: a, data: {type: start, variables: 7}}\n    edges: []\n",
            "the file does not have the shape of a dify file",
        ),
        ("wf.md", "---\non: 5\n---\nDo it.\n", "'on:' must be an event name, a list or a mapping"),
        (
            "tasks.yaml",
            "- description: x\n  expected_output: y\n",
            "a CrewAI tasks file must map each task's name to its settings",
        ),
        (
            "flow.json",
            '{"component_type": "Flow", "agentspec_version": "25.4.1", "start_node": 3}',
            "the flow 'None' has no start_node",
        ),
    ],
)
def test_malformed_sources_are_refused_with_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main(["import", str(path), "-o", "-"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"loopkit import: {path}")
    assert message in err
    assert "Traceback" not in err


def test_a_dify_http_request_becomes_an_http_connector_and_a_tool_step() -> None:
    result = imported("dify/chart_demo.yml")
    loop = loop_of(result)
    (call,) = loop.pipeline
    assert isinstance(call, spec.ToolStep) and call.label == "获取天气数据"
    assert call.tool == "weather_cma_cn.request_1731568176573"
    assert call.arguments == {"stationid": "58367"}
    connector = loop.connectors["weather_cma_cn"]
    assert isinstance(connector, spec.HttpConnector)
    assert connector.base_url == "https://weather.cma.cn"
    operation = connector.operations["request_1731568176573"]
    assert (operation.method, operation.path) == ("GET", "/api/climate")
    assert loop.inputs["query"].required is True  # advanced-chat's sys.query
    assert any("answer node '直接回复': not mapped" in n for n in notes(result))
