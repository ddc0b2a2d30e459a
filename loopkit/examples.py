"""The example loops: ``loops/*.yaml`` of the source tree, shipped in the wheel.

A wheel carries them as package data in ``loopkit/data/loops/`` (setup.py
copies them there at build time); a source checkout or an editable install
reads the checkout's ``loops/`` folder. Either way, callers (``loopkit init``,
the web app's demo loader) use :func:`names` and :func:`read` and never a path.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

#: Where the build puts the example loops inside the ``loopkit`` package.
PACKAGED_DIR = ("data", "loops")


def _folder() -> Traversable:
    packaged = resources.files("loopkit").joinpath(*PACKAGED_DIR)
    if packaged.is_dir():
        return packaged
    # A source checkout: loopkit/ sits beside loops/.
    return Path(__file__).resolve().parent.parent / "loops"


def _files() -> dict[str, Traversable]:
    folder = _folder()
    if not folder.is_dir():
        return {}
    return {
        entry.name.rsplit(".", 1)[0]: entry
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith((".yaml", ".yml"))
    }


def names() -> list[str]:
    """Return the names of the example loops (file names without ``.yaml``), sorted."""
    return sorted(_files())


def filename(name: str) -> str:
    """Return the file name of example *name* (``pr-review.yaml``)."""
    return _entry(name).name


def read(name: str) -> str:
    """Return the YAML text of example loop *name* (e.g. ``"pr-review"``)."""
    return _entry(name).read_text(encoding="utf-8")


def _entry(name: str) -> Traversable:
    found = _files()
    if name not in found:
        raise LookupError(
            f"no example loop named {name!r}: the examples are {', '.join(sorted(found))}."
        )
    return found[name]
