"""Hostile YAML is refused quickly with a clear message: never executed, never a crash.

Each case has a hard time limit (pytest-timeout), so that a regression that
hangs fails its test instead of the suite; bench/hostile_yaml.py measures the
refusal times against the one-second target.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loopkit.errors import SpecError
from loopkit.yamlio import MAX_BYTES, MAX_DEPTH, load_loop, load_project

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

CASES: dict[str, tuple[str, str]] = {
    "alias bomb": (
        BILLION_LAUGHS,
        "x.yaml:5:12: the document expands to more than 20,000 values through aliases",
    ),
    "python object": (
        "name: !!python/object/apply:os.system ['touch /tmp/loopkit-pwned']\npipeline: []\n",
        "x.yaml:1:7: the YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not "
        "allowed (loop files hold plain data only)",
    ),
    "python name": (
        "!!python/name:os.system\n",
        "x.yaml:1:1: the YAML tag 'tag:yaml.org,2002:python/name:os.system' is not allowed "
        "(loop files hold plain data only)",
    ),
    "python object on a mapping": (
        "name: x\npipeline: !!python/object:collections.OrderedDict {}\n",
        "x.yaml:2:11: the YAML tag 'tag:yaml.org,2002:python/object:collections.OrderedDict' is "
        "not allowed (loop files hold plain data only)",
    ),
    "local tag": (
        "name: !ruby/object x\npipeline: []\n",
        "x.yaml:1:7: the YAML tag '!ruby/object' is not allowed (loop files hold plain data only)",
    ),
    "flow nesting": (
        "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
        f"x.yaml:1:{3 + MAX_DEPTH + 1}: the document nests deeper than {MAX_DEPTH} levels",
    ),
    "block nesting": (
        "".join("  " * i + f"k{i}:\n" for i in range(500)),
        f"x.yaml:{MAX_DEPTH + 1}:{2 * MAX_DEPTH + 1}: the document nests deeper than {MAX_DEPTH} levels",
    ),
    "sequence top level": (
        "- name: x\n- name: y\n",
        "x.yaml:1:1: the top level must be a mapping of keys (name, pipeline, ...), got list",
    ),
    "scalar top level": (
        "just text\n",
        "x.yaml:1:1: the top level must be a mapping of keys (name, pipeline, ...), got str",
    ),
    "huge file": (
        "name: x\npipeline:\n  - prompt: '" + "a" * MAX_BYTES + "'\n",
        f"x.yaml: the file is {MAX_BYTES + 33:,} bytes; loop files are limited to {MAX_BYTES:,} bytes",
    ),
    "many values": (
        "name: x\n" + "".join(f"k{i}: v\n" for i in range(60_000)),
        "x.yaml:10001:1: the document holds more than 20,000 values",
    ),
    "many steps": (
        "name: x\npipeline:\n" + "".join(f"  - prompt: step {i}\n" for i in range(5000)),
        "x.yaml:3:3: the pipeline has 5,000 steps; a loop is limited to 1,000 (pipeline) "
        "Hint: split the work into several loops chained by event triggers",
    ),
    "template bomb": (
        "name: x\npipeline:\n  - prompt: '" + "{{ a }}" * 20_000 + "'\n",
        "x.yaml:3:3: the prompts hold 20,000 template tags; a loop is limited to 5,000 (pipeline)",
    ),
}


@pytest.mark.timeout(20)  # a hang fails here; the one-second target is measured in bench/
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_refused_with_a_clear_message(case: str) -> None:
    text, message = CASES[case]
    with pytest.raises(SpecError) as caught:
        load_loop(text, "x.yaml")
    assert [str(p) for p in caught.value.problems] == [message]


def test_no_constructor_ever_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"name: !!python/object/apply:os.system ['touch {marker}']\npipeline: []\n"
    with pytest.raises(SpecError):
        load_loop(text)
    assert not marker.exists()


def test_the_project_file_is_read_just_as_carefully() -> None:
    with pytest.raises(SpecError) as caught:
        load_project(BILLION_LAUGHS, "loopkit.yaml")
    assert caught.value.problems[0].code == "too_large"
    with pytest.raises(SpecError) as caught:
        load_project("- a\n", "loopkit.yaml")
    assert caught.value.problems[0].code == "not_a_mapping"
