"""``loopkit.emitter.dump`` writes what PyYAML writes, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopkit import emitter, yamlio

ROOT = Path(__file__).resolve().parents[2]
LOOPS = sorted((ROOT / "loops").glob("*.yaml"))

# Strings that exercise every choice PyYAML makes for a scalar: plain, single
# or double quotes, a literal block with its indentation and chomping hints,
# and text that would read back as another type.
NASTY = [
    "",
    " ",
    "x",
    "yes",
    "No",
    "on",
    "~",
    "null",
    "true",
    "1",
    "1.0",
    "-5",
    "+1",
    ".5",
    ".inf",
    "0x1F",
    "0o17",
    "1e3",
    "1_000",
    "12:30",
    "2026-11-24",
    "<<",
    "=",
    " x",
    "x ",
    "a: b",
    "a:b",
    "a:",
    ":",
    ":a",
    "-",
    "- a",
    "-a",
    "?",
    "? a",
    "?a",
    "#",
    "a #b",
    "a#b",
    "---",
    "--- x",
    "...",
    "a, b",
    "[x]",
    "{x}",
    "a{b}",
    "&a",
    "*a",
    "!x",
    "|",
    ">",
    "%",
    "@",
    "`",
    "'",
    '"',
    "it's",
    '"quoted"',
    "\\",
    "ünïcode ✓",
    "emoji \U0001f600",
    "\xa0nbsp",
    "\t",
    "a\tb",
    "\x00",
    "\x1b[0m",
    "\x7f",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "\x85",
    "a\x85b",
    "a\u2028b",
    "a\u2029b",
    "\r",
    "a\r\nb",
    "\n",
    "\n\n",
    "x\n",
    "x\n\n",
    "\nx",
    " x\ny",
    "x\n y",
    "x \ny",
    "x\ny ",
    "x\n\ny",
    "x\n \ny",
    "x\n\ty",
    "x\ny\n",
    "x\ny\n\n",
    "---\nx",
    "- a\n- b",
    "a: b\nc: d",
    "Line one.\n  - indented: yes\n\ttab\n",
    "{{ trigger.payload.title }}",
    "Step 1: review {{ x }} and list problems.",
    "x" * 200,
    "a " * 100,
]

nasty = st.sampled_from(NASTY)
text = st.lists(st.one_of(nasty, st.text(max_size=8), st.characters()), min_size=0, max_size=5).map(
    "".join
)
scalars = st.one_of(
    text,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
)
keys = st.one_of(
    text,
    st.sampled_from(["prompt", "label", "pipeline", "k" * 122, "k" * 123]),
    st.integers(),
)
data = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)
documents = st.dictionaries(keys, data, min_size=1, max_size=5)


def same(value: Any) -> None:
    assert emitter.dump(value) == emitter.pyyaml_dump(value)


@pytest.mark.parametrize("path", LOOPS, ids=lambda p: p.name)
def test_every_example_loop_is_written_as_pyyaml_writes_it(path: Path) -> None:
    data_ = yamlio.to_data(yamlio.load_loop(path.read_bytes(), check=False))
    assert emitter.dump(data_) == emitter.pyyaml_dump(data_) == path.read_text()


def test_the_example_loops_need_no_pyyaml_emitter(monkeypatch: pytest.MonkeyPatch) -> None:
    loops = [yamlio.to_data(yamlio.load_loop(p.read_bytes(), check=False)) for p in LOOPS]
    expected = [emitter.pyyaml_dump(d) for d in loops]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("PyYAML's emitter was used")

    monkeypatch.setattr(emitter, "pyyaml_dump", refuse)
    monkeypatch.setattr(emitter.yaml.emitter.Emitter, "__init__", refuse)
    assert [emitter.dump(d) for d in loops] == expected


@pytest.mark.parametrize("value", NASTY, ids=repr)
def test_a_text_scalar_is_written_as_pyyaml_writes_it_in_every_position(value: str) -> None:
    same({"key": value})
    same({"key": [value, {"inner": value}, [value]]})
    same({"a": {"b": {"c": value}}, "after": 1})
    same({"items": [[[value]]]})


@pytest.mark.parametrize("key", [k for k in NASTY if k], ids=repr)
def test_a_text_key_is_written_as_pyyaml_writes_it(key: str) -> None:
    same({key: 1, "next": {key: [key]}})


NUMBERS = [0, -1, 10**30, 1.5, -0.0, 1e20, 1e-7, 1e16, float("inf"), float("-inf"), float("nan")]


@pytest.mark.parametrize(
    "value",
    [*NUMBERS, True, False, None],
    ids=repr,
)
def test_numbers_booleans_and_null_are_written_as_pyyaml_writes_them(value: Any) -> None:
    same({"value": value, "list": [value, [value]]})


def test_empty_collections_are_written_in_flow_style() -> None:
    same({"a": {}, "b": [], "c": [{}, [], {"d": []}], "e": {"f": {}}})


def test_a_kept_final_line_break_at_the_end_of_the_document_ends_it_with_three_dots() -> None:
    assert (
        emitter.dump({"a": "x\n\n"})
        == emitter.pyyaml_dump({"a": "x\n\n"})
        == ("a: |+\n  x\n\n...\n")
    )
    same({"a": ["x\n\n"]})
    same({"a": "x\n\n", "b": 1})
    same({"a": "x\n\n", "b": "y"})
    same({"a": ["x\n\n", "y\n\n"]})


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1], "b": None},
        [1, 2],
        "text",
        {},
        {1: "int key"},
        {"": "empty key"},
        {"k" * 123: "long key"},
        {"multi\nline": 1},
        {"a\u2028b": 1},
        {(1, 2): "tuple key"},
    ],
    ids=repr,
)
def test_what_the_fast_writer_does_not_model_is_dumped_by_pyyaml(value: Any) -> None:
    same(value)


def test_an_object_met_twice_gets_pyyamls_anchor_and_alias() -> None:
    shared = {"k": 1}
    empty: list[Any] = []
    text = emitter.dump({"a": shared, "b": shared, "c": empty, "d": [empty]})
    assert "&id001" in text
    same({"a": shared, "b": shared, "c": empty, "d": [empty]})


def test_a_value_longer_than_the_width_is_folded_as_pyyaml_folds_it() -> None:
    words = "word " * 200_010 + "end"
    same({"plain": words, "quoted": "a: " + words, "tabbed": "\t" + words})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_plain_data_is_written_as_pyyaml_writes_it(value: dict[Any, Any]) -> None:
    same(value)


@settings(max_examples=100, deadline=None)
@given(data)
def test_any_value_at_the_top_is_written_as_pyyaml_writes_it(value: Any) -> None:
    same(value)
