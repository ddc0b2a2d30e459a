"""Load and dump loop YAML: positions in every error, canonical output.

Loading builds plain data from PyYAML's event stream (never its object
constructor), so hostile input is refused early and cheaply: only the YAML
core tags are accepted, nesting depth and alias expansion are bounded, and
duplicate keys are errors. Every value's ``line:column`` is remembered by its
path, so that a validation error deep in the pipeline names
``loops/x.yaml:12:5`` and ``pipeline[0].parallel[2].prompt``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from loopkit import emitter, spec
from loopkit.errors import Problem, SpecError
from loopkit.migrate import LEGACY_KEYS, migrate_loop, migrate_project

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
#: A real loop holds a few thousand values at most; this bounds parse time on hostile input.
MAX_NODES = 20_000
#: Integers longer than this are refused (Python converts at most 4,300 digits).
MAX_INT_DIGITS = 4000
_INT_LIMIT = 10**MAX_INT_DIGITS
_REFUSED = object()

# libyaml's parser is about 20 times faster than the pure-Python one; both give
# the same events, and neither constructs objects here.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FLOW_BRACKETS = re.compile(r"[\[\]{}]")

PathKey = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

_CORE_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
}
_ALLOWED_TAGS = frozenset(("!", *_CORE_TAGS))
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass
class Document:
    """Plain data read from YAML, with the position of every value and key."""

    data: Any
    file: str | None
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: PathKey, *, key: bool = False) -> tuple[int, int] | None:
        """Return ``(line, column)`` of ``path``, else of its nearest known parent."""
        candidates = [path, _legacy_path(path)]
        for candidate in candidates:
            table = self.keys if key and candidate in self.keys else self.values
            if candidate in table:
                return table[candidate]
        for end in range(len(path) - 1, -1, -1):
            for candidate in (path[:end], _legacy_path(path[:end])):
                if candidate in self.values:
                    return self.values[candidate]
        return None


def _legacy_path(path: PathKey) -> PathKey:
    return tuple(LEGACY_KEYS.get(p, p) if isinstance(p, str) else p for p in path)


def format_path(path: PathKey) -> str:
    """Return ``pipeline[0].parallel[2].prompt`` for ``('pipeline', 0, 'parallel', 2, 'prompt')``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


# ── Reading ──────────────────────────────────────────────────────────────


class _Refused(Exception):
    def __init__(self, message: str, mark: Any, code: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.mark, self.code, self.hint = message, mark, code, hint


def _pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def parse(text: str | bytes, file: str | None = None) -> Document:
    """Read one YAML document into plain data with positions; raise ``SpecError``."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise SpecError([_too_big(len(text), file)])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                [
                    Problem(
                        f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})",
                        file=file,
                        code="encoding",
                    )
                ]
            ) from None
    if len(text) > MAX_BYTES:
        raise SpecError([_too_big(len(text), file)])
    doc = Document(data=None, file=file)
    try:
        _check_flow_depth(text)
        doc.data = _build(text, doc)
    except _Refused as exc:
        at_line, at_column = _pos(exc.mark)
        raise SpecError(
            [
                Problem(
                    exc.message,
                    file=file,
                    line=at_line,
                    column=at_column,
                    code=exc.code,
                    hint=exc.hint,
                )
            ]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos: tuple[int | None, int | None] = _pos(mark) if mark else (None, None)
        line, column = pos
        message, hint = _syntax_message(exc, text, line)
        raise SpecError(
            [
                Problem(
                    message,
                    file=file,
                    line=line,
                    column=column,
                    code="yaml_syntax",
                    hint=hint,
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(f"YAML error: {exc}", file=file, code="yaml_syntax")]) from None
    return doc


def _syntax_message(
    exc: yaml.MarkedYAMLError, text: str, line: int | None
) -> tuple[str, str | None]:
    """Return a readable message and hint for PyYAML's (or libyaml's) syntax error."""
    problem = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    lines = text.splitlines()
    source = lines[line - 1] if line is not None and 0 < line <= len(lines) else ""
    indent = source[: len(source) - len(source.lstrip(" \t"))]
    if "\t" in indent:
        return (
            "YAML syntax error: a tab character cannot indent YAML",
            "indent with spaces only",
        )
    if (
        "expected <block end>" in problem
        or "did not find expected key" in problem
        or "did not find expected '-' indicator" in problem
    ):
        return (
            "YAML syntax error: bad indentation (this line does not line up with "
            "the keys or items before it)",
            "keys of one mapping and items of one list must start in the same column",
        )
    if "mapping values are not allowed" in problem:
        return (
            "YAML syntax error: unexpected ':' (bad indentation, or a value with ': ' "
            "that needs quotes)",
            "line the key up with the keys above it, or quote a value that contains ': ', "
            'e.g. prompt: "Review: bugs"',
        )
    if "found unexpected end of stream" in problem or "found unexpected end" in problem:
        return (f"YAML syntax error: {context} {problem}".replace("  ", " "), "close the quote")
    message = " ".join(p for p in (context, problem) if p) or "invalid YAML"
    return f"YAML syntax error: {message}", None


def _check_flow_depth(text: str) -> None:
    """Refuse absurdly nested ``[[[...`` before the scanner sees it (its cost is quadratic)."""
    if "[" not in text and "{" not in text:
        return
    depth = 0
    for match in _FLOW_BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                offset = match.start()
                line = text.count("\n", 0, offset)
                column = offset - (text.rfind("\n", 0, offset) + 1)
                raise _Refused(
                    f"the document nests deeper than {MAX_DEPTH} levels",
                    yaml.Mark("", offset, line, column, "", 0),
                    "too_deep",
                )
        elif depth:
            depth -= 1


def _too_big(size: int, file: str | None) -> Problem:
    return Problem(
        f"the file is {size:,} bytes; loop files are limited to {MAX_BYTES:,} bytes",
        file=file,
        code="too_large",
    )


def _build(text: str, doc: Document) -> Any:
    """Build plain data from the event stream, iteratively (no recursion to exhaust)."""
    loader = _Loader(text)
    aliased = False
    anchors: dict[str, tuple[Any, int]] = {}
    # Each frame: [container, path, pending_key, key_mark, anchor, start_count, merges]
    stack: list[list[Any]] = []
    result: Any = None
    documents = 0
    nodes = 0
    values = doc.values

    def place(value: Any, start: Any, size: int) -> None:
        nonlocal result, nodes
        nodes += size
        if nodes > MAX_NODES:
            raise _Refused(
                f"the document expands to more than {MAX_NODES:,} values through aliases"
                if aliased
                else f"the document holds more than {MAX_NODES:,} values",
                start,
                "too_large",
            )
        if not stack:
            result = value
            return
        frame = stack[-1]
        container, path = frame[0], frame[1]
        if type(container) is list:
            here = (*path, len(container))
            container.append(value)
            if here not in values:
                values[here] = (start.line + 1, start.column + 1)
            return
        if frame[2] is _NO_KEY:
            if not isinstance(value, str | int | float | bool) and value is not None:
                raise _Refused("a mapping key must be a plain value", start, "invalid_key")
            frame[2], frame[3] = value, start
            return
        key, key_mark = frame[2], frame[3]
        frame[2] = _NO_KEY
        if key == "<<":
            frame[6].append((value, start))
            return
        if key in container:
            raise _Refused(f"duplicate key '{key}'", key_mark, "duplicate_key")
        name = key if isinstance(key, str) else str(key)
        container[name] = value
        here = (*path, name)
        doc.keys[here] = (key_mark.line + 1, key_mark.column + 1)
        values[here] = (start.line + 1, start.column + 1)

    get_event = loader.get_event
    while True:
        event = get_event()
        kind = type(event)
        # Scalars first: they are most of the events.
        if kind is yaml.ScalarEvent:
            tag = event.tag
            if tag is not None and tag not in _ALLOWED_TAGS:
                _check_tag(event)
            if (
                tag is None
                and stack
                and stack[-1][2] is _NO_KEY
                and isinstance(stack[-1][0], dict)
                and event.value != "<<"
            ):
                # Keys are names: `on:` is the key "on", not YAML 1.1's boolean true.
                value = event.value
            else:
                value = _scalar(loader, event)
            place(value, event.start_mark, 1)
            if event.anchor:
                anchors[event.anchor] = (value, 1)
            continue
        if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            _check_tag(event)
            if len(stack) >= MAX_DEPTH:
                raise _Refused(
                    f"the document nests deeper than {MAX_DEPTH} levels",
                    event.start_mark,
                    "too_deep",
                )
            container: Any = {} if kind is yaml.MappingStartEvent else []
            parent_path = _child_path(stack, container)
            stack.append(
                [container, parent_path, _NO_KEY, None, event.anchor, nodes, [], event.start_mark]
            )
            continue
        if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            frame = stack.pop()
            container, anchor, start_count, merges, start = (
                frame[0],
                frame[4],
                frame[5],
                frame[6],
                frame[7],
            )
            for merged, mark in merges:
                for source in merged if isinstance(merged, list) else [merged]:
                    if not isinstance(source, dict):
                        raise _Refused("a merge key ('<<') needs a mapping", mark, "yaml_syntax")
                    for k, v in source.items():
                        container.setdefault(k, v)
            size = nodes - start_count + 1
            nodes = start_count
            place(container, start, size)
            if anchor:
                anchors[anchor] = (container, size)
            continue
        if kind is yaml.AliasEvent:
            if event.anchor not in anchors:
                raise _Refused(f"unknown alias '*{event.anchor}'", event.start_mark, "yaml_syntax")
            value, size = anchors[event.anchor]
            aliased = True
            place(value, event.start_mark, size)
            continue
        if kind is yaml.StreamEndEvent:
            break
        if kind is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise _Refused(
                    "the file holds more than one YAML document (one loop per file)",
                    event.start_mark,
                    "multiple_documents",
                )
            continue
    if documents == 0 or result is None:
        raise _Refused("the file is empty", yaml.Mark(doc.file or "", 0, 0, 0, "", 0), "empty")
    return result


class _NoKey:
    pass


_NO_KEY = _NoKey()


def _child_path(stack: list[list[Any]], container: Any) -> PathKey:
    if not stack:
        return ()
    frame = stack[-1]
    parent, path = frame[0], frame[1]
    if isinstance(parent, list):
        return (*path, len(parent))
    key = frame[2]
    if key is _NO_KEY:
        return (*path, "?")
    return (*path, key if isinstance(key, str) else str(key))


def _check_tag(event: Any) -> None:
    tag = getattr(event, "tag", None)
    if tag and tag not in _ALLOWED_TAGS:
        raise _Refused(
            f"the YAML tag '{tag}' is not allowed (loop files hold plain data only)",
            event.start_mark,
            "forbidden_tag",
        )


def _scalar(loader: Any, event: yaml.ScalarEvent) -> Any:
    tag = event.tag
    if tag is None and event.style in ("'", '"', "|", ">"):
        return event.value  # a quoted or block scalar without a tag is always text
    if tag is None or tag == "!":
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR_TAG:
            return event.value
    if tag == "tag:yaml.org,2002:merge":
        return "<<"
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)  # type: ignore[arg-type]
    if tag == "tag:yaml.org,2002:timestamp":
        return event.value  # keep dates as written: loops hold text, not datetimes
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError:  # Python converts at most 4,300 digits to an int
        value = _REFUSED
    if value is not _REFUSED and (not isinstance(value, int) or -_INT_LIMIT < value < _INT_LIMIT):
        return value
    raise _Refused(
        f"this number is too large ({len(event.value):,} characters); numbers in a loop file "
        f"are limited to {MAX_INT_DIGITS:,} digits",
        event.start_mark,
        "invalid_number",
        hint="quote it to keep it as text",
    )


# ── Validation ───────────────────────────────────────────────────────────


def _known_keys() -> list[str]:
    keys: set[str] = set()
    todo: list[type[spec.SpecModel]] = [spec.SpecModel]
    while todo:
        model = todo.pop()
        todo.extend(model.__subclasses__())
        keys.update(info.alias or name for name, info in model.model_fields.items())
    return sorted(keys)


_KEYS: list[str] = []


def suggest_key(key: str) -> str | None:
    """Return the known key closest to a misspelt one, if any is close."""
    if not _KEYS:
        _KEYS.extend(_known_keys())
    match = difflib.get_close_matches(key, _KEYS, n=1, cutoff=0.7)
    return match[0] if match else None


def _clean_loc(loc: tuple[Any, ...]) -> PathKey:
    return tuple(
        p for p in loc if not (isinstance(p, str) and p.startswith("<") and p.endswith(">"))
    )


_KINDS = {dict: "mapping", list: "list"}
_STEP_KINDS = tuple(key for key, _ in spec.STEP_KEYS)
#: The top-level keys that hold step lists.
_STEP_LISTS = ("pipeline", *(key for key, _ in spec.ACTION_LISTS))
_CHECK_KINDS = tuple(key for key, _ in spec.CHECK_KEYS)
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_MISSING_HINTS = {
    "checker": "add 'checker: Adversarial Verifier' (built in) or the name of a verifier subagent",
    "maker": "list the labels of the steps whose output the checker judges",
    "pipeline": "add 'pipeline:' with at least one step, e.g. '- prompt: ...'",
    "name": "add 'name:', e.g. 'name: pr-review'",
    "schedule": "add 'schedule:' with a cron expression, e.g. '0 9 * * 1-5'",
    "event": "add 'event:', e.g. 'event: pull_request'",
}


def problems_from_validation(error: ValidationError, doc: Document | None) -> list[Problem]:
    """Turn pydantic's errors into positioned problems with field paths."""
    problems: list[Problem] = []
    seen: set[tuple[PathKey, str]] = set()
    for err in error.errors(include_url=False):
        path = _clean_loc(tuple(err["loc"]))
        kind = err["type"]
        hint = None
        if kind == "extra_forbidden":
            key = str(path[-1]) if path else ""
            message = f"unknown key '{key}'"
            suggestion = suggest_key(key)
            hint = f"did you mean '{suggestion}'?" if suggestion and suggestion != key else None
            if key in _STEP_KINDS and path and path[0] in _STEP_LISTS:
                message = f"a step holds one kind only: '{key}' cannot be added to this one"
                hint = "split it into two steps (" + ", ".join(f"'{k}'" for k in _STEP_KINDS) + ")"
                if key == "tool":
                    hint = (
                        "did you mean 'tools' (the tools an agent step may call)? "
                        "'tool: connector.tool' is a step of its own"
                    )
            if key in _CHECK_KINDS and "checks" in path:  # verify.checks (issue 18)
                message = f"a check holds one kind only: '{key}' cannot be added to this one"
                hint = (
                    "split it into two checks (" + ", ".join(f"'{k}'" for k in _CHECK_KINDS) + ")"
                )
        elif kind == "missing":
            message = f"missing required key '{path[-1]}'" if path else "missing required key"
            hint = _MISSING_HINTS.get(str(path[-1])) if path else None
        elif kind in ("value_error", "assertion_error"):
            message = str(err["msg"]).removeprefix("Value error, ")
        elif kind in ("invalid_step", "invalid_trigger", "invalid_connector", "invalid_check"):
            message = str(err["msg"])
            given = err.get("input")
            if kind == "invalid_step" and isinstance(given, dict):
                for key in given:
                    close = difflib.get_close_matches(
                        str(key), [k for k, _ in spec.STEP_KEYS], n=1, cutoff=0.7
                    )
                    if close:
                        hint = f"unknown key '{key}': did you mean '{close[0]}'?"
                        break
        elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
            message = str(err["msg"])
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict | list) else f"a {_KINDS[type(got)]}"
            expected = _EXPECTED.get(kind)
            if expected:
                message = f"expected {expected}, got {shown}"
                if kind == "string_type" and isinstance(got, bool | int | float):
                    hint = "YAML reads yes, no, on, off, true, false and numbers as such: quote the value"
            else:
                message = f"{err['msg'][0].lower()}{err['msg'][1:]}, got {shown}"
        if (path, message) in seen:
            continue
        seen.add((path, message))
        line = column = None
        if doc is not None:
            pos = doc.position(path, key=kind == "extra_forbidden")
            if pos:
                line, column = pos
        problems.append(
            Problem(
                message,
                path=format_path(path),
                file=doc.file if doc else None,
                line=line,
                column=column,
                code=kind,
                hint=hint,
            )
        )
    return problems


def position_problems(problems: list[Problem], doc: Document | None) -> list[Problem]:
    """Attach file and ``line:column`` to problems found on a validated model."""
    if doc is None:
        return problems
    out = []
    for problem in problems:
        pos = doc.position(parse_path(problem.path))
        line, column = pos if pos else (None, None)
        out.append(
            Problem(
                problem.message,
                path=problem.path,
                file=doc.file,
                line=line,
                column=column,
                code=problem.code,
                hint=problem.hint,
            )
        )
    return out


def parse_path(path: str) -> PathKey:
    """Return ``('pipeline', 0, 'prompt')`` for ``pipeline[0].prompt`` (the inverse of format_path)."""
    parts: list[str | int] = []
    for name, index, quoted in re.findall(
        r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]", path
    ):
        if name:
            parts.append(name)
        elif index:
            parts.append(int(index))
        else:
            parts.append(quoted)
    return tuple(parts)


def validate_data(
    model: type[M], data: Any, doc: Document | None, migrate: Callable[[Any], Any]
) -> M:
    """Migrate and validate plain data; raise ``SpecError`` with positioned problems."""
    if not isinstance(data, dict):
        where = doc.file if doc else None
        kind = type(data).__name__ if data is not None else "nothing"
        raise SpecError(
            [
                Problem(
                    f"the top level must be a mapping of keys (name, pipeline, ...), got {kind}",
                    file=where,
                    line=1 if doc else None,
                    column=1 if doc else None,
                    code="not_a_mapping",
                )
            ]
        )
    try:
        migrated = migrate(data)
    except SpecError as exc:
        raise SpecError(position_problems(exc.problems, doc)) from None
    try:
        return model.model_validate(migrated)
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, doc)) from None
    except RecursionError:
        raise SpecError(
            [
                Problem(
                    "the document nests too deeply", file=doc.file if doc else None, code="too_deep"
                )
            ]
        ) from None


def load_loop(
    text: str | bytes,
    file: str | None = None,
    *,
    check: bool = True,
    project: spec.Project | None = None,
    skills: Collection[str] | None = None,
    base: Path | None = None,
) -> spec.Loop:
    """Parse, migrate and validate one loop file; with ``check``, also its cross-references.

    ``skills`` are the names of the skills found for the project (see ``check_loop``);
    ``base`` is the loop file's folder (where ``verify.checks`` schema files are read).
    With ``check``, this is ``loopkit.document.analyze(...).require()``.
    """
    if check:
        from loopkit.document import analyze  # document builds on this module

        return analyze(text, file=file, project=project, skills=skills, base=base).require()
    doc = parse(text, file)
    return validate_data(spec.Loop, doc.data, doc, migrate_loop)


def loop_from_data(
    data: Any,
    *,
    check: bool = True,
    project: spec.Project | None = None,
    skills: Collection[str] | None = None,
) -> spec.Loop:
    """Validate loop data that came as JSON (the editor) rather than YAML."""
    if not check or isinstance(data, str | bytes):  # text is not loop data: refused as such
        return validate_data(spec.Loop, data, None, migrate_loop)
    from loopkit.document import analyze  # document builds on this module

    return analyze(data, project=project, skills=skills).require()


def load_loop_file(
    path: str | Path,
    *,
    check: bool = True,
    project: spec.Project | None = None,
    skills: Collection[str] | None = None,
) -> spec.Loop:
    """Read and load a loop file from disk."""
    path = Path(path)
    return load_loop(
        path.read_bytes(),
        str(path),
        check=check,
        project=project,
        skills=skills,
        base=path.resolve().parent,
    )


def load_project(text: str | bytes, file: str | None = None) -> spec.Project:
    """Parse, migrate and validate a project file (``loopkit.yaml``)."""
    doc = parse(text, file)
    return validate_data(spec.Project, doc.data, doc, migrate_project)


# ── Writing ──────────────────────────────────────────────────────────────


def to_data(model: BaseModel) -> Any:
    """Return the canonical plain data of a model: camelCase keys, nothing unsaid.

    Fields left at their defaults are left out (an empty list, an unset limit,
    the default MCP transport); a section written empty (``memory: {}``, which
    means "persist, with the defaults") is kept.
    """
    return _type_first(model.model_dump(mode="json", by_alias=True, exclude_defaults=True))


def _type_first(value: Any) -> Any:
    if isinstance(value, dict):
        ordered = {k: _type_first(v) for k, v in value.items()}
        if isinstance(ordered.get("type"), str):
            # A trigger's or connector's kind reads best first.
            return {"type": ordered.pop("type"), **ordered}
        return ordered
    if isinstance(value, list):
        return [_type_first(v) for v in value]
    return value


def dump(model: BaseModel) -> str:
    """Return the canonical YAML of a loop or project: ``dump(load(dump(m))) == dump(m)``.

    The format is PyYAML's block style as ``loopkit.emitter.pyyaml_dump``
    defines it; ``loopkit.emitter.dump`` writes the same bytes faster.
    """
    return emitter.dump(to_data(model))
