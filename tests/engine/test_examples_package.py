"""loopkit.examples: the example loops, read the same way from a checkout and from the wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loopkit import examples

ROOT = Path(__file__).resolve().parents[2]


def test_it_lists_every_example_loop_of_the_checkout() -> None:
    assert examples.names() == sorted(p.stem for p in (ROOT / "loops").glob("*.yaml"))
    assert {"pr-review", "daily-triage"} <= set(examples.names())


def test_it_reads_an_example_by_name() -> None:
    assert examples.read("pr-review") == (ROOT / "loops" / "pr-review.yaml").read_text()
    assert examples.filename("daily-triage") == "daily-triage.yaml"


def test_an_unknown_name_lists_the_examples() -> None:
    with pytest.raises(LookupError) as caught:
        examples.read("nope")

    assert str(caught.value) == (
        f"no example loop named 'nope': the examples are {', '.join(examples.names())}."
    )


def test_loopkit_serve_without_the_web_extra_says_how_to_install_it() -> None:
    script = (
        "import sys; sys.modules['django'] = None; from loopkit.cli import main; "
        "raise SystemExit(main(['serve']))"
    )

    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )

    assert proc.returncode == 2
    assert proc.stderr == (
        "loopkit serve needs the web app's dependencies: pip install 'loopkit-ai[web]'\n"
    )
