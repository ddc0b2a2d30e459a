"""The loop standard: the YAML schema as pydantic models.

This module is the single source of truth for what a loop file may say. YAML
keys are camelCase (``maxRounds``); Python attributes are snake_case. Unknown
keys are errors. Optional settings default to ``None`` ("not said"), so that a
loop dumps back exactly what its author wrote; the engine applies defaults
through the ``effective_*`` helpers below.

Parsing a file (with positions and legacy forms) lives in ``loopkit.yamlio``;
cross-references (labels, makers, checker, skills, connectors) are checked by
``loopkit.checks``.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

#: The schema version this LoopKit writes. Version 1 is the first release's
#: format (migrated on load, see ``loopkit.migrate``).
SPEC_VERSION = 2

#: Built-in checker names: the adversarial verifier that ships with LoopKit.
BUILTIN_CHECKERS = frozenset({"Adversarial Verifier", "adversarial"})

DEFAULT_MAX_ROUNDS = 3
DEFAULT_PASS_SCORE = 0.8
#: A checker's issue severities, most severe first, and those that block by default.
Severity = Literal["blocker", "major", "minor"]
SEVERITIES: tuple[str, ...] = ("blocker", "major", "minor")
DEFAULT_BLOCK_ON: tuple[str, ...] = ("blocker", "major")
DEFAULT_MEMORY_PATH = ".loopkit/state"
#: The highest ``maxToolRounds`` a step or subagent may set.
MAX_TOOL_ROUNDS_LIMIT = 100
#: The highest ``maxOutputTokens`` a step may set.
MAX_OUTPUT_TOKENS_LIMIT = 1_000_000

RunStatus = Literal["succeeded", "failed", "verification_failed", "budget_exceeded", "cancelled"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


def _one_or_many(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    return value


#: An int or a float, kept as written (``30`` stays ``30``, ``0.5`` stays ``0.5``).
Number = Annotated[int | float, BeforeValidator(_number)]
Names = Annotated[list[str], BeforeValidator(_one_or_many)]


class SpecModel(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
        # No coercion: `maxTokens: true` or `retries: "2"` is a mistake to report, not 1 or 2.
        strict=True,
    )


# ── Trigger ──────────────────────────────────────────────────────────────


class _TriggerBase(SpecModel):
    description: str | None = None


class ManualTrigger(_TriggerBase):
    """Started by a person: the CLI, the API or the run button."""

    type: Literal["manual"]


#: How far back a due time missed while no worker ran still fires, unless ``catchUpMinutes`` says.
CATCH_UP_MINUTES_DEFAULT = 5
CATCH_UP_MINUTES_LIMIT = 7 * 24 * 60


class CronTrigger(_TriggerBase):
    """Started on a schedule (a five-field cron expression) in a time zone."""

    type: Literal["cron"]
    schedule: str
    timezone: str | None = None
    catch_up: Literal["all", "latest"] | None = Field(
        default=None,
        description="Due times missed while no worker ran: 'all' fires each, oldest first "
        "(the default); 'latest' fires only the last.",
    )
    catch_up_minutes: int | None = Field(
        default=None,
        ge=1,
        le=CATCH_UP_MINUTES_LIMIT,
        description="How old, in minutes, a missed due time may be and still fire "
        f"(default {CATCH_UP_MINUTES_DEFAULT}).",
    )

    @property
    def catch_up_window(self) -> timedelta:
        """How far back a missed due time still fires."""
        return timedelta(minutes=self.catch_up_minutes or CATCH_UP_MINUTES_DEFAULT)

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        fields = value.split()
        if len(fields) not in (5, 6) or not croniter.is_valid(value):
            raise ValueError(f"'{value}' is not a valid cron expression: {_cron_reason(fields)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone '{value}' (use an IANA name such as 'Europe/Paris' or 'UTC')"
                ) from None
        return value


_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


def _cron_reason(fields: list[str]) -> str:
    """Say what is wrong with a cron expression that croniter refused."""
    example = "e.g. '0 9 * * 1-5' for 09:00 on weekdays"
    if len(fields) not in (5, 6):
        return (
            f"it has {len(fields)} field{'s' if len(fields) != 1 else ''}; write five "
            f"(minute hour day-of-month month day-of-week), {example}"
        )
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=False):
        for number in re.findall(r"\d+", text.split("/")[0]):
            if not low <= int(number) <= high:
                return f"{name} {number} is out of range ({low}-{high})"
    return f"a field is not understood (minute hour day-of-month month day-of-week), {example}"


class WebhookTrigger(_TriggerBase):
    """Started by a signed HTTP delivery (GitHub-compatible ``X-Hub-Signature-256``)."""

    type: Literal["webhook"]
    event: str
    actions: list[str] = Field(default_factory=list)
    secret_env: str | None = Field(
        default=None, description="Name of the environment variable holding the signing secret."
    )


class EventTrigger(_TriggerBase):
    """Started by another loop's completion or by a named custom event."""

    type: Literal["event"]
    loop: str | None = None
    status: list[RunStatus] = Field(default_factory=list)
    event: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EventTrigger:
        if (self.loop is None) == (self.event is None):
            raise ValueError("an event trigger needs exactly one of 'loop' or 'event'")
        if self.status and self.loop is None:
            raise ValueError("'status' only applies to a 'loop' completion trigger")
        return self


def _trigger_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"<{kind}>" if kind in ("manual", "cron", "webhook", "event") else None


Trigger = Annotated[
    Annotated[ManualTrigger, Tag("<manual>")]
    | Annotated[CronTrigger, Tag("<cron>")]
    | Annotated[WebhookTrigger, Tag("<webhook>")]
    | Annotated[EventTrigger, Tag("<event>")],
    Discriminator(
        _trigger_kind,
        custom_error_type="invalid_trigger",
        custom_error_message="trigger 'type' must be one of manual, cron, webhook, event",
    ),
]


# ── Pipeline ─────────────────────────────────────────────────────────────


class OutputSchema(SpecModel):
    """Structured output: the model must answer JSON matching ``schema``."""

    json_schema: dict[str, Any] = Field(alias="schema")


def _output(value: Any) -> Any:
    if value is None or value == "text" or isinstance(value, dict | OutputSchema):
        return value
    raise ValueError("output must be 'text' or a mapping with a JSON 'schema'")


class CallParams(SpecModel):
    """Provider parameters of a model call (a step's ``params:``, a provider's ``params``)."""

    temperature: Number | None = Field(default=None, ge=0, le=2)
    top_p: Number | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    stop: list[str] | None = None
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra HTTP headers sent with each call."
    )


class ProviderParams(CallParams):
    """A provider's parameters: a step's, plus the longest answer when the step sets none."""

    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS_LIMIT)


class ProviderSpec(SpecModel):
    """A named model provider of ``loopkit.yaml`` (``model: team:NAME`` in a loop uses it)."""

    model: str = Field(min_length=1, description="A LiteLLM model string, e.g. openai/gpt-4o-mini.")
    api_base: str | None = None
    api_key: str | None = Field(
        default=None, description="Write it as ${ENV_VAR}: resolved when a run starts."
    )
    params: ProviderParams = Field(default_factory=ProviderParams)
    default: bool = False


class AgentStep(SpecModel):
    """One agent call: a prompt (a Jinja2 template) answered by a model."""

    prompt: str = Field(min_length=1)
    label: str | None = None
    model: str | None = None
    subagent: str | None = None
    skills: list[str] = Field(default_factory=list)
    connectors: list[str] = Field(default_factory=list)
    tools: list[str] = Field(
        default_factory=list,
        description="Allow-list of tool names this step may call (empty: all of its connectors' tools).",
    )
    output: Annotated[Literal["text"] | OutputSchema | None, BeforeValidator(_output)] = None
    timeout: Number | None = Field(default=None, gt=0, description="Seconds per model call.")
    retries: int | None = Field(default=None, ge=0, le=10)
    max_tool_rounds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOOL_ROUNDS_LIMIT,
        description="Tool rounds per execution of the step (default: its subagent's, else 10).",
    )
    max_output_tokens: int | None = Field(
        default=None,
        ge=1,
        le=MAX_OUTPUT_TOKENS_LIMIT,
        description=(
            "The longest answer the step needs, sent as max_tokens. Without it, no cap is sent "
            "(the provider's default applies) unless a token or cost budget needs one."
        ),
    )
    allow_truncation: bool | None = Field(
        default=None,
        description=(
            "Accept an answer the model cut at its output cap (finish_reason 'length'); "
            "by default such an answer fails the step (output_truncated)."
        ),
    )
    params: CallParams | None = Field(
        default=None, description="Provider parameters of the step's calls (temperature, ...)."
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Models (or team:NAME providers) LiteLLM tries when the step's model fails.",
    )


class ParallelStep(SpecModel):
    """Steps run concurrently; the group finishes when its slowest member does."""

    parallel: list[Step] = Field(min_length=1)
    label: str | None = None
    max_concurrency: int | None = Field(default=None, ge=1)


class SequentialStep(SpecModel):
    """Steps run one after the other (the first release wrote ``agents:``)."""

    sequential: list[Step] = Field(min_length=1)
    label: str | None = None


class ConditionalStep(SpecModel):
    """``then`` runs when the Jinja2 expression ``when`` is true, else ``else``."""

    when: str = Field(min_length=1)
    then: list[Step] = Field(min_length=1)
    else_: list[Step] | None = Field(default=None, alias="else")
    label: str | None = None


class ApprovalStep(SpecModel):
    """A human hand-off: the run waits until someone allowed approves or rejects."""

    approve: str = Field(min_length=1, description="The question put to the approver.")
    label: str | None = None
    approvers: list[str] = Field(
        default_factory=list, description="Roles (owner, admin, editor) or user names."
    )
    timeout_minutes: Number | None = Field(default=None, gt=0)
    on_timeout: Literal["reject", "approve"] | None = None


DEFAULT_PLAN_MAX_STEPS = 5
DEFAULT_PLAN_MAX_ITERATIONS = 3


class PlanTemplate(SpecModel):
    """A kind of step a planner may choose; ``prompt`` sees ``task``, ``input`` and ``results``."""

    description: str = Field(min_length=1, description="What the planner reads to choose it.")
    prompt: str = Field(min_length=1)
    subagent: str | None = Field(default=None, description="Executor subagent for this template.")
    model: str | None = None
    skills: list[str] = Field(default_factory=list)
    connectors: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    max_tool_rounds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOOL_ROUNDS_LIMIT,
        description="Tool rounds per planned step (default: its subagent's, else 10).",
    )


class PlanStep(SpecModel):
    """A planner decides the next steps at run time, among allowed templates, within limits.

    Each iteration the planner answers a JSON plan (steps chosen from
    ``templates``, each with an ``input``); the steps run in order as executor
    agent steps; the planner then sees their results and either finishes or
    plans again, up to ``maxIterations`` plans of at most ``maxSteps`` steps.
    """

    plan: str = Field(min_length=1, description="The task put to the planner (a Jinja2 template).")
    label: str | None = None
    planner: str | None = Field(default=None, description="A subagent with role 'planner'.")
    executor: str | None = Field(default=None, description="A subagent with role 'executor'.")
    model: str | None = None
    templates: dict[str, PlanTemplate] = Field(min_length=1)
    max_steps: int | None = Field(default=None, ge=1, le=50, description="Steps per plan.")
    max_iterations: int | None = Field(
        default=None, ge=1, le=20, description="Plans per run of the step."
    )

    @property
    def effective_max_steps(self) -> int:
        return self.max_steps or DEFAULT_PLAN_MAX_STEPS

    @property
    def effective_max_iterations(self) -> int:
        return self.max_iterations or DEFAULT_PLAN_MAX_ITERATIONS


# ── Tool step (issue 18: deterministic delivery, e.g. in onPass) ──────────


class ToolStep(SpecModel):
    """One connector tool called with the arguments the loop writes: no model call.

    ``tool`` is ``connector.tool`` (an HTTP connector's operation, a SQL
    connector's ``query`` or ``tables``, an MCP server's tool). Each string in
    ``arguments`` (at any depth) is a Jinja2 template rendered in the sandbox;
    a string that is one ``{{ expression }}`` and nothing else keeps the
    expression's type (``{{ trigger.payload.pull_request.number }}`` is a number).
    """

    tool: str = Field(min_length=1, description="The tool to call, as connector.tool.")
    label: str | None = None
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="The tool's arguments; strings are Jinja2 templates.",
    )

    @field_validator("tool")
    @classmethod
    def _dotted(cls, value: str) -> str:
        connector, dot, tool = value.partition(".")
        if not dot or not connector.strip() or not tool.strip() or value != value.strip():
            raise ValueError(
                f"'{value}' does not name a tool as connector.tool (e.g. github.create_review)"
            )
        return value

    @property
    def connector(self) -> str:
        return self.tool.partition(".")[0]

    @property
    def tool_name(self) -> str:
        return self.tool.partition(".")[2]

    def argument_templates(self) -> list[tuple[str, str]]:
        """Return ``(path, template)`` for each string of ``arguments`` (at any depth),
        the path relative to the step (``arguments.body``, ``arguments.labels[0]``)."""
        return _strings(self.arguments, "arguments")


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [
            found
            for key, item in value.items()
            for found in _strings(
                item, f"{path}.{key}" if _IDENTIFIER.fullmatch(key) else f"{path}[{key!r}]"
            )
        ]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _strings(item, f"{path}[{i}]")]
    return []


STEP_KEYS: tuple[tuple[str, str], ...] = (
    ("parallel", "<parallel>"),
    ("sequential", "<sequential>"),
    ("when", "<conditional>"),
    ("approve", "<approval>"),
    ("plan", "<plan>"),
    ("prompt", "<agent>"),
    ("tool", "<tool>"),
)
_STEP_TYPES: dict[type[BaseModel], str] = {}


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, tag in STEP_KEYS:
            if key in value:
                return tag
        return None
    return _STEP_TYPES.get(type(value))


Step = Annotated[
    Annotated[AgentStep, Tag("<agent>")]
    | Annotated[ParallelStep, Tag("<parallel>")]
    | Annotated[SequentialStep, Tag("<sequential>")]
    | Annotated[ConditionalStep, Tag("<conditional>")]
    | Annotated[ApprovalStep, Tag("<approval>")]
    | Annotated[PlanStep, Tag("<plan>")]
    | Annotated[ToolStep, Tag("<tool>")],
    Discriminator(
        _step_kind,
        custom_error_type="invalid_step",
        custom_error_message=(
            "a step needs one of 'prompt' (an agent), 'parallel', 'sequential', "
            "'when' (a condition), 'approve' (a human gate), 'plan' (a planner) "
            "or 'tool' (a connector tool call)"
        ),
    ),
]
_STEP_TYPES.update(
    {
        AgentStep: "<agent>",
        ParallelStep: "<parallel>",
        SequentialStep: "<sequential>",
        ConditionalStep: "<conditional>",
        ApprovalStep: "<approval>",
        PlanStep: "<plan>",
        ToolStep: "<tool>",
    }
)
for _model in (ParallelStep, SequentialStep, ConditionalStep):
    _model.model_rebuild()


# ── Deterministic checks (verify.checks) ────────────────────────────────
#
# Checks run before the checker each round and cost no model call: a JSON Schema
# or a regular expression on a step's output, or a connector tool whose result
# must satisfy a condition. The engine runs them in ``loopkit.engine.checks``;
# ``loopkit.checks`` cross-checks their steps, tools, templates and schema files.

CheckSeverity = Literal["blocker", "major", "minor"]
#: A check's severity when it says none: its failure fails the round.
DEFAULT_CHECK_SEVERITY: CheckSeverity = "blocker"
_TOOL_RE = re.compile(r"^([^.\s]+)\.([^\s]+)$")


class _CheckBase(SpecModel):
    name: str | None = Field(
        default=None, min_length=1, description="What the check is called in issues and events."
    )
    severity: CheckSeverity | None = Field(
        default=None,
        description="blocker or major: a failure fails the round without asking the checker; "
        "minor: the failure is reported and the checker is asked (default blocker).",
    )
    message: str | None = Field(
        default=None, min_length=1, description="Said when the check fails (before the detail)."
    )

    @property
    def effective_severity(self) -> CheckSeverity:
        return self.severity or DEFAULT_CHECK_SEVERITY


class SchemaCheck(_CheckBase):
    """A step's output must be JSON that matches a JSON Schema."""

    step: str = Field(min_length=1, description="The label of the step whose output is checked.")
    json_schema: dict[str, Any] | str = Field(
        alias="schema",
        description="A JSON Schema, or the path of a JSON or YAML file holding one "
        "(relative to the loop's file).",
    )
    #: The schema read from ``json_schema``'s file when the loop was loaded (``loopkit.checks``).
    _loaded: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def schema_file(self) -> str | None:
        return self.json_schema if isinstance(self.json_schema, str) else None

    @property
    def resolved_schema(self) -> dict[str, Any] | None:
        """Return the schema: written inline, or read from its file (None: not read)."""
        return self.json_schema if isinstance(self.json_schema, dict) else self._loaded

    def load_schema(self, schema: dict[str, Any]) -> None:
        self._loaded = schema

    @field_validator("json_schema")
    @classmethod
    def _file_named(cls, value: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(value, str) and not value.strip():
            raise ValueError("a schema is a mapping, or the path of a file that holds one")
        return value


class RegexCheck(_CheckBase):
    """A step's output must match a regular expression (or must not, with ``mustNotMatch``)."""

    step: str = Field(min_length=1, description="The label of the step whose output is checked.")
    regex: str = Field(
        min_length=1,
        description="Searched anywhere in the output; (?i) ignores case, (?m) makes ^ and $ "
        "match at lines, (?s) lets . match newlines.",
    )
    must_not_match: bool | None = Field(
        default=None, description="Fail when the expression is found instead (default false)."
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        import regex

        try:
            regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"'{value}' is not a valid regular expression: {exc}") from None
        return value


class ToolCheck(_CheckBase):
    """A connector tool is called (no model involved); its result must satisfy ``expect``."""

    tool: str = Field(description="<connector>.<tool>, e.g. ci.run_tests.")
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="The tool's arguments; text values are Jinja2 templates over the run context.",
    )
    expect: str | None = Field(
        default=None,
        min_length=1,
        description="A Jinja2 condition over 'result' (the tool's JSON answer, else its text) "
        "and the run context; without it, the check passes when the tool answers without error.",
    )

    @field_validator("tool")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not _TOOL_RE.match(value):
            raise ValueError(
                f"'{value}' does not name a connector's tool: write <connector>.<tool>, "
                "e.g. 'ci.run_tests'"
            )
        return value

    @property
    def connector(self) -> str:
        return self.tool.split(".", 1)[0]

    @property
    def tool_name(self) -> str:
        return self.tool.split(".", 1)[1]


CHECK_KEYS: tuple[tuple[str, str], ...] = (
    ("schema", "<schema>"),
    ("regex", "<regex>"),
    ("tool", "<tool>"),
)
_CHECK_TYPES: dict[type[BaseModel], str] = {
    SchemaCheck: "<schema>",
    RegexCheck: "<regex>",
    ToolCheck: "<tool>",
}


def _check_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, tag in CHECK_KEYS:
            if key in value:
                return tag
        return None
    return _CHECK_TYPES.get(type(value))


Check = Annotated[
    Annotated[SchemaCheck, Tag("<schema>")]
    | Annotated[RegexCheck, Tag("<regex>")]
    | Annotated[ToolCheck, Tag("<tool>")],
    Discriminator(
        _check_kind,
        custom_error_type="invalid_check",
        custom_error_message=(
            "a check needs one of 'schema' (a JSON Schema on a step's output), 'regex' "
            "(a regular expression on a step's output) or 'tool' (a connector tool call)"
        ),
    ),
]


def check_templates(checks: list[Any]) -> Any:
    """Yield ``(path, source, is_condition)`` for every template of ``verify.checks``:
    a tool check's text arguments (at any depth) and its ``expect`` condition."""

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, str):
            yield path, value, False
        elif isinstance(value, dict):
            for key, item in value.items():
                here = (
                    f"{path}.{key}"
                    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)
                    else (f"{path}[{key!r}]")
                )
                yield from walk(item, here)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, f"{path}[{index}]")

    for index, check in enumerate(checks):
        if isinstance(check, ToolCheck):
            yield from walk(check.arguments, f"verify.checks[{index}].arguments")
            if check.expect is not None:
                yield f"verify.checks[{index}].expect", check.expect, True


def check_name(check: SchemaCheck | RegexCheck | ToolCheck) -> str:
    """Return what a check is called: its ``name``, else what it checks."""
    if check.name:
        return check.name
    if isinstance(check, SchemaCheck):
        return f"{check.step} schema"
    if isinstance(check, RegexCheck):
        return f"{check.step} {'must not match' if check.must_not_match else 'regex'}"
    return check.tool


# ── Verify, budget, memory ───────────────────────────────────────────────


def _checker(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value[0] if len(value) == 1 else value
    if isinstance(value, str):
        return value
    raise ValueError("checker must be a name or a list of names")


class Verify(SpecModel):
    """Maker/Checker: the makers' outputs are judged by a separate checker."""

    maker: Names = Field(min_length=1, description="Labels of the steps whose output is checked.")
    checker: Annotated[str | list[str], BeforeValidator(_checker)] = Field(
        description="A subagent (role verifier), or else the built-in adversarial verifier under "
        "this name (e.g. 'Adversarial Verifier'); a list is several checkers, all of which must pass "
        "(or a majority: 'require')."
    )
    max_rounds: int | None = Field(default=None, ge=1, le=20)
    auto_retry: bool | None = None
    pass_score: Number | None = Field(default=None, ge=0, le=1)
    # Deterministic checks (issue 18, h/checks): run before the checker each round.
    checks: list[Check] = Field(
        default_factory=list,
        description="Checks that cost no model call, run before the checker each round.",
    )

    # ── Convergence (issue 18): severities, several checkers, what a failure does ──
    require: Literal["all", "majority"] | None = Field(
        default=None,
        description="With several checkers: 'all' must pass (the default) or a 'majority' "
        "(more than half).",
    )
    block_on: Annotated[list[Severity], BeforeValidator(_one_or_many)] | None = Field(
        default=None,
        min_length=1,
        description="The issue severities that send the makers back (default blocker and "
        "major); a round whose issues are all below them passes and reports them.",
    )
    on_fail: Literal["fail", "accept-best", "escalate"] | None = Field(
        default=None,
        description="When no round passes (rounds used up, or stalled): 'fail' the run (the "
        "default), 'accept-best' (succeed with the best-scoring round's outputs) or "
        "'escalate' (ask a person whether to accept the best round).",
    )
    stall_on_repeat: bool | None = Field(
        default=None,
        description="End the rounds as stalled when a round's blocking issues all repeat an "
        "earlier round's (default true).",
    )

    @field_validator("block_on")
    @classmethod
    def _blockers_block(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and "blocker" not in value:
            raise ValueError("blockOn must include 'blocker' (a blocker always blocks)")
        return list(dict.fromkeys(value)) if value is not None else None

    @property
    def effective_require(self) -> str:
        return self.require or "all"

    @property
    def effective_block_on(self) -> tuple[str, ...]:
        return tuple(self.block_on) if self.block_on else DEFAULT_BLOCK_ON

    @property
    def effective_on_fail(self) -> str:
        return self.on_fail or "fail"

    @property
    def effective_stall_on_repeat(self) -> bool:
        return True if self.stall_on_repeat is None else self.stall_on_repeat

    @property
    def checkers(self) -> list[str]:
        return [self.checker] if isinstance(self.checker, str) else list(self.checker)

    @property
    def effective_max_rounds(self) -> int:
        return self.max_rounds or DEFAULT_MAX_ROUNDS

    @property
    def effective_auto_retry(self) -> bool:
        return True if self.auto_retry is None else self.auto_retry

    @property
    def effective_pass_score(self) -> float:
        return DEFAULT_PASS_SCORE if self.pass_score is None else float(self.pass_score)


class Budget(SpecModel):
    """Hard limits for one run. A run that would pass one stops as budget_exceeded.

    A loop's keys override its project's ``defaults.budget`` one by one
    (``effective_budget``).
    """

    max_tokens: int | None = Field(
        default=None, ge=1, description="Prompt and completion tokens of the run."
    )
    max_duration_minutes: Number | None = Field(
        default=None, gt=0, description="Wall time of the run, in minutes."
    )
    max_cost_usd: Number | None = Field(
        default=None, gt=0, description="Cost of the run in USD (LiteLLM's prices)."
    )
    max_iterations: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Passes of the loop: the pipeline and one verification round are one "
            "iteration; each retry round is the next."
        ),
    )
    max_model_calls: int | None = Field(
        default=None,
        ge=1,
        description="Model calls of the run (tool-use turns and checker calls included).",
    )

    def dimensions(self) -> list[str]:
        """Return the camelCase names of the limits that are set."""
        return [
            to_camel(name) for name in type(self).model_fields if getattr(self, name) is not None
        ]


class Memory(SpecModel):
    """Where a loop keeps state across runs."""

    store: Literal["filesystem", "database", "memory"] | None = None
    path: str | None = Field(default=None, description="Folder of the filesystem store.")
    url: str | None = Field(default=None, description="Database URL of the database store.")
    persistence: Literal["full", "summary", "minimal"] | None = None
    namespace: str | None = None

    @property
    def effective_store(self) -> str:
        return self.store or "filesystem"


# ── Skills, connectors, subagents ────────────────────────────────────────


class SubAgent(SpecModel):
    """A named role with its own model, system prompt, tools and skills."""

    role: Literal["planner", "executor", "verifier"]
    description: str | None = None
    model: str | None = None
    prompt: str | None = None
    tools: list[str] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)
    connectors: list[str] = Field(default_factory=list)
    max_tool_rounds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOOL_ROUNDS_LIMIT,
        description="Tool rounds per step run as this subagent, or per checker round (default 10).",
    )


class _ConnectorBase(SpecModel):
    description: str | None = None


class McpConnector(_ConnectorBase):
    """An MCP server over stdio (``command``) or streamable HTTP (``url``)."""

    type: Literal["mcp"]
    transport: Literal["stdio", "http"] = "stdio"
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _transport_target(self) -> McpConnector:
        if self.transport == "stdio" and not self.command:
            raise ValueError("an MCP stdio connector needs a 'command'")
        if self.transport == "http" and not self.url:
            raise ValueError("an MCP http connector needs a 'url'")
        return self


class HttpOperation(SpecModel):
    """One HTTP call exposed to the model as a tool."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str
    description: str | None = None
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="JSON Schema of the tool's arguments."
    )
    headers: dict[str, str] = Field(default_factory=dict)


class HttpConnector(_ConnectorBase):
    """An HTTP API whose declared operations become tools."""

    type: Literal["http"]
    base_url: str
    headers: dict[str, str] = Field(default_factory=dict)
    operations: dict[str, HttpOperation] = Field(default_factory=dict)


class SqlConnector(_ConnectorBase):
    """Read-only SQL queries against a database URL (``${ENV_VAR}`` for secrets)."""

    type: Literal["sql"]
    url: str
    row_limit: int | None = Field(default=None, ge=1)
    timeout_seconds: Number | None = Field(default=None, gt=0)


# ── Notification connectors (slack, email): one ``send`` tool each ──────

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# An address, or a ``${VAR}`` reference resolved when the connector starts.
_ADDRESS_RE = re.compile(r"^(?:[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+|\$\{[A-Za-z_][A-Za-z0-9_]*\})$")


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME_RE.match(value):
        raise ValueError(
            f"'{value}' is not an environment variable name (letters, digits and '_', "
            "not starting with a digit, e.g. SLACK_WEBHOOK_URL): name the variable, "
            "never write the secret itself"
        )
    return value


def _address(value: str) -> str:
    if not _ADDRESS_RE.match(value):
        raise ValueError(
            f"'{value}' is not an email address (name@example.com) or a ${{VAR}} reference"
        )
    return value


EnvName = Annotated[str, BeforeValidator(_env_name)]
Address = Annotated[str, BeforeValidator(_address)]


class SlackConnector(_ConnectorBase):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat...): a ``send`` tool.

    The webhook URL is a secret (whoever has it can post): it is read from the
    environment variable ``webhookEnv`` names, never written in the file.
    """

    type: Literal["slack"]
    webhook_env: EnvName = Field(
        description="Name of the environment variable holding the webhook URL."
    )
    timeout_seconds: Number | None = Field(default=None, gt=0, le=300)


class SmtpSettings(SpecModel):
    """How an email connector reaches its SMTP server."""

    host: str = Field(min_length=1, description="The SMTP server (a ${VAR} reference is allowed).")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Default 587 (starttls), 465 (ssl), 25 (none)."
    )
    tls: Literal["starttls", "ssl", "none"] | None = Field(
        default=None,
        description="starttls (default): upgrade a plain connection; ssl: TLS from the start; "
        "none: no encryption (a relay on localhost).",
    )
    user_env: EnvName | None = Field(
        default=None, description="Name of the environment variable holding the SMTP user."
    )
    password_env: EnvName | None = Field(
        default=None, description="Name of the environment variable holding the SMTP password."
    )
    timeout_seconds: Number | None = Field(default=None, gt=0, le=300)

    @model_validator(mode="after")
    def _user_with_password(self) -> SmtpSettings:
        if (self.user_env is None) != (self.password_env is None):
            raise ValueError("set both 'userEnv' and 'passwordEnv' (SMTP login), or neither")
        return self

    @property
    def effective_tls(self) -> str:
        return self.tls or "starttls"

    @property
    def effective_port(self) -> int:
        return self.port or {"starttls": 587, "ssl": 465, "none": 25}[self.effective_tls]


class EmailConnector(_ConnectorBase):
    """Email through an SMTP server to fixed recipients: a ``send`` tool."""

    type: Literal["email"]
    smtp: SmtpSettings
    from_: Address = Field(alias="from")
    to: Annotated[list[Address], BeforeValidator(_one_or_many)] = Field(min_length=1)
    subject_prefix: str | None = Field(
        default=None, description="Put before every subject (e.g. '[loopkit] ')."
    )


#: The connector kinds whose only tool is ``send`` (a notification).
NOTIFY_KINDS = ("slack", "email")
CONNECTOR_KINDS = ("mcp", "http", "sql", *NOTIFY_KINDS)


def _connector_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"<{kind}>" if kind in CONNECTOR_KINDS else None


Connector = Annotated[
    Annotated[McpConnector, Tag("<mcp>")]
    | Annotated[HttpConnector, Tag("<http>")]
    | Annotated[SqlConnector, Tag("<sql>")]
    | Annotated[SlackConnector, Tag("<slack>")]
    | Annotated[EmailConnector, Tag("<email>")],
    Discriminator(
        _connector_kind,
        custom_error_type="invalid_connector",
        custom_error_message="connector 'type' must be one of mcp, http, sql, slack, email",
    ),
]


# ── The loop and the project ─────────────────────────────────────────────


InputType = Literal["string", "number", "integer", "boolean"]

_INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}


class InputSpec(SpecModel):
    """A declared run input, available to templates as ``inputs.<name>``."""

    description: str | None = None
    type: InputType | None = Field(
        default=None,
        description="What the input holds (default string); a dry run without a value "
        "gets a placeholder of this type.",
    )
    default: str | int | float | bool | None = None
    required: bool | None = None

    @model_validator(mode="after")
    def _default_of_its_type(self) -> InputSpec:
        default, kind = self.default, self.type
        if kind is None or default is None:
            return self
        fits = isinstance(default, _INPUT_TYPES[kind])
        if isinstance(default, bool) and kind != "boolean":
            fits = False
        if not fits:
            raise ValueError(f"the default {default!r} is not of the input's type '{kind}'")
        return self


class DryRunOptions(SpecModel):
    """How the dry-run provider behaves for this loop (to demonstrate failing rounds)."""

    checker_scores: list[Annotated[Number, Field(ge=0, le=1)]] = Field(
        default_factory=list, description="The checker's score per round (default 0.95)."
    )
    latency_ms: int | None = Field(default=None, ge=0)


class Loop(SpecModel):
    """A loop: trigger, pipeline, verification, budget and memory."""

    version: int | None = None
    name: str
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    trigger: Trigger | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    model: str | None = None
    pipeline: list[Step] = Field(min_length=1)
    verify: Verify | None = None
    # Actions after verification (issue 18): run once, after the rounds.
    on_pass: list[Step] = Field(
        default_factory=list,
        description="Steps run once after verification passed (or, without verify, "
        "after the pipeline succeeded): deliver the result, e.g. post a review.",
    )
    on_fail: list[Step] = Field(
        default_factory=list,
        description="Steps run once after verification failed (any end of verification "
        "that is not a pass).",
    )
    budget: Budget | None = None
    memory: Memory | None = None
    subagents: dict[str, SubAgent] = Field(default_factory=dict)
    skills: list[str] = Field(default_factory=list)
    connectors: dict[str, Connector] = Field(default_factory=dict)
    dry_run: DryRunOptions | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                f"'{value}' is not a valid loop name (letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, e.g. 'pr-review')"
            )
        return value

    @property
    def effective_trigger(self) -> ManualTrigger | CronTrigger | WebhookTrigger | EventTrigger:
        return self.trigger or ManualTrigger(type="manual")


class ProjectDefaults(SpecModel):
    """Defaults every loop of a project inherits unless it says otherwise."""

    model: str | None = None
    budget: Budget | None = None
    memory: Memory | None = None
    enforce_maker_checker: bool | None = None


class Project(SpecModel):
    """The project file ``loopkit.yaml``."""

    version: int | None = None
    name: str | None = None
    defaults: ProjectDefaults | None = None
    loops_dir: str | None = None
    skills_dirs: list[str] = Field(default_factory=list)
    connectors: dict[str, Connector] = Field(default_factory=dict)
    subagents: dict[str, SubAgent] = Field(default_factory=dict)
    providers: dict[str, ProviderSpec] = Field(default_factory=dict)
    loops: dict[str, Loop] = Field(default_factory=dict)

    @property
    def effective_loops_dir(self) -> str:
        return self.loops_dir or "loops"

    @property
    def effective_skills_dirs(self) -> list[str]:
        return self.skills_dirs or ["skills"]


def effective_budget(loop: Loop, project: Project | None = None) -> Budget:
    """Return the limits a run of ``loop`` obeys: its project's ``defaults.budget``,
    overridden key by key by the loop's own ``budget:`` (the engine, the LRS and
    the ``run_started`` event all read this)."""
    inherited = project.defaults.budget if project and project.defaults else None
    own = loop.budget
    if inherited is None:
        return own or Budget()
    if own is None:
        return inherited
    return inherited.model_copy(update=own.model_dump(exclude_none=True))


def iter_steps(steps: list[Any], path: str = "pipeline") -> Any:
    """Yield ``(path, step)`` for every step, depth first, groups before members."""
    for index, step in enumerate(steps):
        here = f"{path}[{index}]"
        yield here, step
        if isinstance(step, ParallelStep):
            yield from iter_steps(step.parallel, f"{here}.parallel")
        elif isinstance(step, SequentialStep):
            yield from iter_steps(step.sequential, f"{here}.sequential")
        elif isinstance(step, ConditionalStep):
            yield from iter_steps(step.then, f"{here}.then")
            if step.else_:
                yield from iter_steps(step.else_, f"{here}.else")


#: The step lists of a loop, in run order: the pipeline, then the actions after verification.
ACTION_LISTS: tuple[tuple[str, str], ...] = (("onPass", "on_pass"), ("onFail", "on_fail"))


def iter_loop_steps(loop: Loop) -> Any:
    """Yield ``(path, step)`` for every step of the loop: the pipeline's, then
    ``onPass`` and ``onFail`` (paths ``onPass[0]``, ...), depth first."""
    yield from iter_steps(loop.pipeline)
    for key, attribute in ACTION_LISTS:
        yield from iter_steps(getattr(loop, attribute), key)


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a loop file (for yaml-language-server and editors)."""
    schema = Loop.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "LoopKit loop"
    return schema


def project_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of the project file ``loopkit.yaml``."""
    schema = Project.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "LoopKit project (loopkit.yaml)"
    return schema
