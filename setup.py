"""Build hooks; the project's metadata is in pyproject.toml.

A wheel must carry the browser bundles (built from frontend/ by
``scripts/build-frontend.sh``; this build never runs Node) and the example
loops of ``loops/`` (copied into ``loopkit/data/loops``, read through
``loopkit.examples``). An editable install needs neither: it reads the checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLE_DIR = Path("loopkit_web", "static", "editor")
BUNDLES = ("editor.js", "editor.css", "graph.js", "graph.css", "run.js")
EXAMPLES_DIR = Path("loops")
PACKAGED_EXAMPLES = Path("loopkit", "data", "loops")


class BuildPyWithAssets(build_py):
    """Refuse to build without the browser bundles; package the example loops."""

    def run(self) -> None:
        if not getattr(self, "editable_mode", False):
            missing = [
                str(BUNDLE_DIR / name)
                for name in BUNDLES
                if not (ROOT / BUNDLE_DIR / name).is_file()
            ]
            if missing:
                raise SystemExit(
                    f"error: {', '.join(missing)} missing: the wheel must carry the built editor "
                    "and run-graph bundles. Build them first with `make frontend` "
                    "(scripts/build-frontend.sh; needs Node 20.19+), then build again."
                )
        super().run()
        if getattr(self, "editable_mode", False):
            return
        examples = sorted((ROOT / EXAMPLES_DIR).glob("*.yaml"))
        if not examples:
            raise SystemExit(f"error: no example loops in {EXAMPLES_DIR}/: the wheel ships them.")
        target = Path(self.build_lib) / PACKAGED_EXAMPLES
        target.mkdir(parents=True, exist_ok=True)
        for path in examples:
            shutil.copyfile(path, target / path.name)


setup(cmdclass={"build_py": BuildPyWithAssets})
