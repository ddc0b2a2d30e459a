"""Cross-reference checks on a loop that passed schema validation.

Labels are unique, makers name existing steps, no checker is a
maker, subagents, skills and connectors that steps name are defined, every
template (prompts, ``when:``, subagent prompts, approval questions, plan
templates) compiles, and what each template reads will exist when it renders
(``loopkit.template_context``). Every problem is returned at once.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from loopkit import spec
from loopkit.errors import Problem
from loopkit.references import condition_refs, prompt_refs
from loopkit.template_context import check_templates
from loopkit.templating import TemplateSyntaxError


def _close(name: str, names: list[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


#: A pipeline longer than this is refused before its templates are compiled.
MAX_STEPS = 1000
#: Jinja2 compiles about 10,000 tags a second: bound the work a file can ask for.
MAX_TEMPLATE_TAGS = 5000


def _too_big(loop: spec.Loop) -> Problem | None:
    steps = list(spec.iter_loop_steps(loop))
    if len(steps) > MAX_STEPS:
        return Problem(
            f"the pipeline has {len(steps):,} steps; a loop is limited to {MAX_STEPS:,}",
            path="pipeline",
            code="too_large",
            hint="split the work into several loops chained by event triggers",
        )
    tags = 0
    for _, step in steps:
        text = getattr(step, "prompt", None) or getattr(step, "when", None) or ""
        if isinstance(step, spec.ToolStep):
            text = "".join(source for _, source in step.argument_templates())
        tags += text.count("{{") + text.count("{%")
    if tags > MAX_TEMPLATE_TAGS:
        return Problem(
            f"the prompts hold {tags:,} template tags; a loop is limited to {MAX_TEMPLATE_TAGS:,}",
            path="pipeline",
            code="too_large",
        )
    return None


def check_loop(
    loop: spec.Loop,
    project: spec.Project | None = None,
    skills: Collection[str] | None = None,
    base: Path | None = None,
) -> list[Problem]:
    """Return every cross-reference problem of ``loop`` (empty when it is sound).

    ``skills`` are the names of the skills found for the project (its skills
    folders and installed packages, see ``loopkit.skills.discover``). When it
    is given, those count as declared and every skill the loop names must be
    among them; without it, a step's skills must be listed in the loop's
    ``skills:``.

    ``base`` is the folder of the file the loop is written in: the schema files
    of ``verify.checks`` are read from there (and kept on the loop for its runs).
    Without it, a check's schema must be written inline.
    """
    too_big = _too_big(loop)
    if too_big is not None:
        return [too_big]
    problems: list[Problem] = []
    labels: dict[str, str] = {}
    subagents = {**(project.subagents if project else {}), **loop.subagents}
    connectors = {**(project.connectors if project else {}), **loop.connectors}
    declared = set(loop.skills) | set(skills or ())
    if skills is not None:
        problems += _check_found_skills(loop, set(skills))

    for path, step in spec.iter_loop_steps(loop):
        label = getattr(step, "label", None)
        if label is not None:
            if label in labels:
                problems.append(
                    Problem(
                        f"duplicate label '{label}' (already used at {labels[label]})",
                        path=f"{path}.label",
                        code="duplicate_label",
                        hint="give every step its own label",
                    )
                )
            else:
                labels[label] = path
        if isinstance(step, spec.AgentStep):
            problems += _check_agent(step, path, subagents, connectors, declared)
        elif isinstance(step, spec.PlanStep):
            problems += _check_plan(step, path, subagents, connectors, declared)
        elif isinstance(step, spec.ApprovalStep):
            problems += _template_problems(step.approve, "the question", f"{path}.approve")
        elif isinstance(step, spec.ToolStep):
            problems += _check_tool_step(step, path, connectors)
        elif isinstance(step, spec.ConditionalStep):
            try:
                condition_refs(step.when)
            except TemplateSyntaxError as exc:
                problems.append(
                    Problem(
                        "'when' is not a valid expression: "
                        + str(exc.message).replace("'end of template'", "end of expression"),
                        path=f"{path}.when",
                        code="invalid_when",
                        hint="write a Jinja2 expression, e.g. \"steps['Triage'].output != ''\"",
                    )
                )

    if loop.verify is not None:
        problems += _check_verify(loop.verify, labels)
        if loop.verify.checks:
            problems += _check_checks(loop, labels, connectors, base)
    problems += _check_actions(loop)
    for name, agent in loop.subagents.items():
        if agent.prompt:
            problems += _template_problems(
                agent.prompt, "the prompt", f"subagents[{name!r}].prompt"
            )
        for index, ref in enumerate(agent.connectors):
            if ref not in connectors:
                problems.append(
                    Problem(
                        f"connector '{ref}' is not defined",
                        path=f"subagents[{name!r}].connectors[{index}]",
                        code="unknown_connector",
                        hint=_close(ref, list(connectors)),
                    )
                )
    problems += check_templates(loop)
    return problems


def _template_problems(source: str, what: str, path: str, hint: str | None = None) -> list[Problem]:
    """Return the problem of a template that does not parse (none when it does)."""
    try:
        prompt_refs(source)
    except TemplateSyntaxError as exc:
        return [
            Problem(
                f"{what} is not a valid template: {exc.message} (template line {exc.lineno})",
                path=path,
                code="invalid_prompt",
                hint=hint,
            )
        ]
    return []


def _check_agent(
    step: spec.AgentStep,
    path: str,
    subagents: dict[str, spec.SubAgent],
    connectors: dict[str, spec.Connector],
    skills: set[str],
) -> list[Problem]:
    problems: list[Problem] = []
    problems += _template_problems(
        step.prompt,
        "the prompt",
        f"{path}.prompt",
        hint="prompts are Jinja2 templates: write {{ '{{' }} for a literal '{{'",
    )
    if step.subagent is not None and step.subagent not in subagents:
        problems.append(
            Problem(
                f"subagent '{step.subagent}' is not defined",
                path=f"{path}.subagent",
                code="unknown_subagent",
                hint=_close(step.subagent, list(subagents)) or "define it under 'subagents:'",
            )
        )
    for index, ref in enumerate(step.connectors):
        if ref not in connectors:
            problems.append(
                Problem(
                    f"connector '{ref}' is not defined",
                    path=f"{path}.connectors[{index}]",
                    code="unknown_connector",
                    hint=_close(ref, list(connectors)) or "define it under 'connectors:'",
                )
            )
    agent = subagents.get(step.subagent) if step.subagent else None
    attached = [
        c for c in [*step.connectors, *(agent.connectors if agent else [])] if c in connectors
    ]
    if attached:
        problems += _check_allow_list(step.tools, attached, connectors, f"{path}.tools")
    for index, ref in enumerate(step.skills):
        is_path = "/" in ref or ref.endswith(".md")
        if not is_path and ref not in skills:
            problems.append(
                Problem(
                    f"skill '{ref}' is not declared",
                    path=f"{path}.skills[{index}]",
                    code="unknown_skill",
                    hint=_close(ref, sorted(skills)) or "list it under the loop's 'skills:'",
                )
            )
    return problems


def _check_verify(verify: spec.Verify, labels: dict[str, str]) -> list[Problem]:
    """Check the makers' labels and that no checker is a maker.

    A checker is a subagent, or else the built-in adversarial verifier under the
    name given (the first release's ``checker: Triage Verifier`` labelled its
    one adversarial checker): any name is valid. A name close to a subagent's
    is flagged by the LRS, not here.
    """
    problems: list[Problem] = []
    for index, maker in enumerate(verify.maker):
        if maker in labels and not labels[maker].startswith("pipeline"):
            problems.append(
                Problem(
                    f"maker '{maker}' is a step of {labels[maker].split('[')[0]}, which runs "
                    "after verification: makers are pipeline steps",
                    path=f"verify.maker[{index}]",
                    code="unknown_maker",
                    hint="name a pipeline step whose output the checker judges",
                )
            )
        elif maker not in labels:
            problems.append(
                Problem(
                    f"maker '{maker}' is not the label of any step",
                    path=f"verify.maker[{index}]",
                    code="unknown_maker",
                    hint=_close(maker, list(labels)) or "label the step that makes the output",
                )
            )
    for index, checker in enumerate(verify.checkers):
        where = "verify.checker" if isinstance(verify.checker, str) else f"verify.checker[{index}]"
        if checker in verify.maker:
            problems.append(
                Problem(
                    f"the checker '{checker}' is also a maker: a loop cannot check its own work",
                    path=where,
                    code="checker_is_maker",
                    hint="use a separate verifier subagent or the built-in 'Adversarial Verifier'",
                )
            )
    return problems


def _check_found_skills(loop: spec.Loop, found: set[str]) -> list[Problem]:
    """Report each skill the loop or its subagents name that no skills folder or package has."""
    problems: list[Problem] = []
    refs = [(f"skills[{i}]", ref) for i, ref in enumerate(loop.skills)]
    for name, agent in loop.subagents.items():
        refs += [(f"subagents[{name!r}].skills[{i}]", ref) for i, ref in enumerate(agent.skills)]
    for path, ref in refs:
        if ref not in found and not ("/" in ref or ref.endswith(".md")):
            problems.append(
                Problem(
                    f"skill '{ref}' was not found in the project's skills folders or installed packages",
                    path=path,
                    code="unknown_skill",
                    hint=_close(ref, sorted(found))
                    or f"add skills/{ref}/SKILL.md (see `loopkit skills` for the skills found)",
                )
            )
    return problems


def _check_plan(
    step: spec.PlanStep,
    path: str,
    subagents: dict[str, spec.SubAgent],
    connectors: dict[str, spec.Connector],
    skills: set[str],
) -> list[Problem]:
    """Check a plan step: its prompt, its planner and executor roles, and each template."""
    problems: list[Problem] = []
    problems += _template_problems(step.plan, "the plan", f"{path}.plan")
    for field, role in (("planner", "planner"), ("executor", "executor")):
        ref = getattr(step, field)
        if ref is None:
            continue
        agent = subagents.get(ref)
        if agent is None:
            problems.append(
                Problem(
                    f"subagent '{ref}' is not defined",
                    path=f"{path}.{field}",
                    code="unknown_subagent",
                    hint=_close(ref, list(subagents))
                    or f"define a subagent with role '{role}' under 'subagents:'",
                )
            )
        elif agent.role != role:
            problems.append(
                Problem(
                    f"the {field} '{ref}' has role '{agent.role}', not '{role}'",
                    path=f"{path}.{field}",
                    code="wrong_role",
                    hint=f"name a subagent whose role is '{role}'",
                )
            )
    for name, template in step.templates.items():
        as_step = spec.AgentStep(
            prompt=template.prompt,
            subagent=template.subagent,
            skills=template.skills,
            connectors=template.connectors,
            tools=template.tools,
        )
        problems += _check_agent(
            as_step, f"{path}.templates[{name!r}]", subagents, connectors, skills
        )
    return problems


def _static_tools(connector: spec.Connector) -> set[str] | None:
    """Return the tool names a connector will offer, or None when only a run can tell (MCP)."""
    if isinstance(connector, spec.HttpConnector):
        return set(connector.operations)
    if isinstance(connector, spec.SqlConnector):
        return {"query", "tables"}
    if isinstance(connector, spec.SlackConnector | spec.EmailConnector):
        return {"send"}
    return None


def _check_allow_list(
    tools: list[str], attached: list[str], connectors: dict[str, spec.Connector], path: str
) -> list[Problem]:
    """Report allow-list entries that can match no tool of the step's connectors.

    A typo there would silently leave the model without the tool. Globs are not
    checked, nor tools of MCP servers (listed only when the server runs).
    """
    problems: list[Problem] = []
    known = {name: _static_tools(connectors[name]) for name in attached}
    for index, entry in enumerate(tools):
        if any(ch in entry for ch in "*?["):
            continue
        owner, sep, tool = entry.partition(".")
        if not sep:
            owner, sep, tool = entry.partition("__")
        where = f"{path}[{index}]"
        if sep and owner not in known:
            problems.append(
                Problem(
                    f"tool '{entry}' names connector '{owner}', which this step does not use",
                    path=where,
                    code="unknown_tool",
                    hint=_close(owner, list(known)) or f"add '{owner}' to the step's connectors",
                )
            )
        elif sep:
            names = known[owner]
            if names is not None and tool not in names:
                problems.append(
                    Problem(
                        f"connector '{owner}' has no tool '{tool}'",
                        path=where,
                        code="unknown_tool",
                        hint=_close(tool, sorted(names))
                        or f"its tools are: {', '.join(sorted(names)) or 'none'}",
                    )
                )
        elif all(v is not None for v in known.values()) and not any(
            entry in v for v in known.values() if v is not None
        ):
            every = sorted({t for v in known.values() if v is not None for t in v})
            problems.append(
                Problem(
                    f"no connector of this step has a tool '{entry}'",
                    path=where,
                    code="unknown_tool",
                    hint=_close(entry, every) or f"the tools here are: {', '.join(every)}",
                )
            )
    return problems


# ── verify.checks (issue 18) ─────────────────────────────────────────────

#: The largest schema file a check may name.
MAX_SCHEMA_FILE_BYTES = 1_000_000


def _check_checks(
    loop: spec.Loop,
    labels: dict[str, str],
    connectors: dict[str, spec.Connector],
    base: Path | None,
) -> list[Problem]:
    """Check ``verify.checks``: steps that answer, declared tools, templates and schemas."""
    assert loop.verify is not None
    answering = {
        step.label
        for _, step in spec.iter_steps(loop.pipeline)
        if isinstance(step, spec.AgentStep | spec.PlanStep) and step.label
    }
    problems: list[Problem] = []
    for index, check in enumerate(loop.verify.checks):
        where = f"verify.checks[{index}]"
        if isinstance(check, spec.SchemaCheck | spec.RegexCheck) and check.step not in answering:
            problems.append(_not_an_output(check.step, labels, answering, f"{where}.step"))
        if isinstance(check, spec.SchemaCheck):
            problems += _check_schema(check, f"{where}.schema", base)
        elif isinstance(check, spec.ToolCheck):
            problems += _check_tool(check, f"{where}.tool", connectors)
    for path, source, condition in spec.check_templates(loop.verify.checks):
        if not condition:
            problems += _template_problems(source, "the argument", path)
            continue
        try:
            condition_refs(source)
        except TemplateSyntaxError as exc:
            problems.append(
                Problem(
                    "'expect' is not a valid expression: "
                    + str(exc.message).replace("'end of template'", "end of expression"),
                    path=path,
                    code="invalid_expect",
                    hint="write a Jinja2 expression over 'result', e.g. \"result.exit_code == 0\"",
                )
            )
    return problems


def _not_an_output(name: str, labels: dict[str, str], answering: set[str], path: str) -> Problem:
    if name in labels:
        return Problem(
            f"step '{name}' gives no output to check (at {labels[name]}): "
            "a check reads an agent or plan step's answer",
            path=path,
            code="not_an_output",
            hint="name the label of an agent step (a group's members are checked one by one)",
        )
    return Problem(
        f"step '{name}' is not the label of any step",
        path=path,
        code="unknown_step",
        hint=_close(name, sorted(answering)) or "label the step whose output is checked",
    )


def _check_tool(
    check: spec.ToolCheck, path: str, connectors: dict[str, spec.Connector]
) -> list[Problem]:
    declared = connectors.get(check.connector)
    if declared is None:
        return [
            Problem(
                f"connector '{check.connector}' is not defined",
                path=path,
                code="unknown_connector",
                hint=_close(check.connector, list(connectors)) or "define it under 'connectors:'",
            )
        ]
    names = _static_tools(declared)
    if names is not None and check.tool_name not in names:
        return [
            Problem(
                f"connector '{check.connector}' has no tool '{check.tool_name}'",
                path=path,
                code="unknown_tool",
                hint=_close(check.tool_name, sorted(names))
                or f"its tools are: {', '.join(sorted(names)) or 'none'}",
            )
        ]
    return []


def _check_schema(check: spec.SchemaCheck, path: str, base: Path | None) -> list[Problem]:
    """Read a check's schema file (relative to ``base``) and check that the schema is valid."""
    from loopkit import structured

    schema: Any = check.json_schema
    if isinstance(schema, str):
        found = _read_schema(schema, path, base)
        if isinstance(found, Problem):
            return [found]
        schema = found
        check.load_schema(schema)
    try:
        structured.validator(schema)
    except structured.BadSchema as exc:
        return [
            Problem(
                f"the schema is not a valid JSON Schema: {exc}",
                path=path,
                code="invalid_schema",
                hint="see https://json-schema.org/understanding-json-schema/",
            )
        ]
    return []


def _read_schema(name: str, path: str, base: Path | None) -> dict[str, Any] | Problem:
    """Return the schema held by the file ``name`` (JSON, or YAML), or the problem reading it."""
    import json

    from loopkit.errors import SpecError
    from loopkit.yamlio import parse

    if base is None:
        return Problem(
            f"the schema '{name}' names a file, but this loop was not read from a file, "
            "so there is no folder to find it in",
            path=path,
            code="schema_file",
            hint="write the schema inline (schema: {type: object, ...})",
        )
    file = base / name
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_SCHEMA_FILE_BYTES + 1)
    except OSError as exc:
        return Problem(
            f"cannot read the schema file '{name}': {exc.strerror or exc}",
            path=path,
            code="schema_file",
            hint=f"the path is relative to the loop's folder ({base})",
        )
    if len(data) > MAX_SCHEMA_FILE_BYTES:
        return Problem(
            f"the schema file '{name}' is over {MAX_SCHEMA_FILE_BYTES:,} bytes",
            path=path,
            code="schema_file",
        )
    value: Any
    try:
        value = json.loads(data) if file.suffix.lower() == ".json" else parse(data, str(file)).data
    except (ValueError, SpecError) as exc:
        detail = "; ".join(p.message for p in exc.problems) if isinstance(exc, SpecError) else exc
        return Problem(
            f"the schema file '{name}' is not valid JSON or YAML: {detail}",
            path=path,
            code="schema_file",
        )
    if not isinstance(value, dict):
        return Problem(
            f"the schema file '{name}' does not hold a mapping (a JSON Schema object)",
            path=path,
            code="schema_file",
        )
    return value


# ── Actions after verification and tool steps (issue 18) ─────────────────


def _check_tool_step(
    step: spec.ToolStep, path: str, connectors: dict[str, spec.Connector]
) -> list[Problem]:
    """Check a tool step: its connector and tool exist, its arguments' templates parse,
    and an HTTP operation gets every argument it requires."""
    problems: list[Problem] = []
    for where, source in step.argument_templates():
        problems += _template_problems(source, "the argument", f"{path}.{where}")
    connector = connectors.get(step.connector)
    if connector is None:
        return [
            *problems,
            Problem(
                f"connector '{step.connector}' is not defined",
                path=f"{path}.tool",
                code="unknown_connector",
                hint=_close(step.connector, list(connectors)) or "define it under 'connectors:'",
            ),
        ]
    names = _static_tools(connector)
    if names is not None and step.tool_name not in names:
        return [
            *problems,
            Problem(
                f"connector '{step.connector}' has no tool '{step.tool_name}'",
                path=f"{path}.tool",
                code="unknown_tool",
                hint=_close(step.tool_name, sorted(names))
                or f"its tools are: {', '.join(sorted(names)) or 'none'}",
            ),
        ]
    if isinstance(connector, spec.HttpConnector):
        from loopkit.connectors.http import operation_schema

        schema = operation_schema(connector.operations[step.tool_name])
        missing = [name for name in schema.get("required", []) if name not in step.arguments]
        if missing:
            problems.append(
                Problem(
                    f"the tool {step.tool} requires the argument"
                    f"{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)}",
                    path=f"{path}.arguments",
                    code="missing_argument",
                    hint=f"add {missing[0]}: ... under 'arguments:'",
                )
            )
    return problems


def _check_actions(loop: spec.Loop) -> list[Problem]:
    """``onFail`` runs after a verification that did not pass: without ``verify`` it never runs."""
    if loop.on_fail and loop.verify is None:
        return [
            Problem(
                "onFail runs only after verification fails, and this loop has no 'verify:': "
                "its steps would never run",
                path="onFail",
                code="on_fail_without_verify",
                hint="add 'verify:' (makers and a checker), or move the steps to onPass",
            )
        ]
    return []
