"""Loop tests in the web app: keep a recorded run as a test, replay a loop's tests.

A live run is recorded into a cassette as it runs (``runs.engine_adapter``,
a ``RunCassette`` row). "Keep as test" copies that cassette into a
``LoopTest`` with a test file (docs/testing.md) that asserts the run's status
and verification rounds, like ``loopkit run --record`` writes. Running a
loop's tests writes the version's YAML, each test file and cassette into a
temporary project laid out as the export writes it (``loops/<loop>.yaml``,
``tests/<test>.test.yaml``, ``tests/<test>.cassette.yaml``) and replays each
with ``loopkit.testing.replay``: no network, no cost.
"""

from __future__ import annotations

import gzip
import posixpath
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify

from builder.models import Loop, LoopVersion
from loopkit import emitter
from loopkit.cassette import CASSETTE_SUFFIX, TEST_SUFFIX
from loopkit.errors import SpecError
from loopkit.testfile import load_test
from loopkit.testing import replay
from loopkit_web.audit.services import record
from loopkit_web.errors import Conflict, Invalid
from runs.inputs import parse_loop
from runs.models import TERMINAL, LoopTest, LoopTestResult, Run, RunCassette

LOOPS_DIR = "loops"
TESTS_DIR = "tests"
HEADER = (
    "# A LoopKit test: `loopkit test` replays the loop against the cassette (no network,\n"
    "# no cost) and checks what is expected below. Reference: docs/testing.md.\n"
)


def file_stem(loop_name: str, name: str) -> str:
    """Return the file name (without suffix) of a loop's test called ``name``: prefixed
    with the loop's name unless it starts with it, so two loops' tests never share a file."""
    slug = slugify(name) or "test"
    return slug if slug.startswith(loop_name) else f"{loop_name}.{slug}"


def test_paths(loop: Loop, test: LoopTest) -> dict[str, str]:
    """Return the paths a test's files have in a project (from its root)."""
    stem = file_stem(loop.name, test.name)
    return {
        "loop": f"{LOOPS_DIR}/{loop.name}.yaml",
        "test": f"{TESTS_DIR}/{stem}{TEST_SUFFIX}",
        "cassette": f"{TESTS_DIR}/{stem}{CASSETTE_SUFFIX}",
    }


_LOOP_KEY = re.compile(r"^loop:.*$", re.MULTILINE)


def with_loop(text: str, loop_ref: str) -> str:
    """Return a test file whose ``loop:`` is ``loop_ref``: the app says where its loop is
    (the stored file's own ``loop:`` is only a default)."""
    return _LOOP_KEY.sub(lambda _: f"loop: {loop_ref}", text, count=1)


def export_files(loops: list[Loop], folder: str) -> list[tuple[str, str]]:
    """Return ``(path, text)`` of the test files and cassettes of ``loops`` for an export
    whose loop files are ``<folder>/<loop>.yaml``: they go to ``tests/`` beside the folder
    (``loops/`` → ``tests/``), their ``loop:`` the path from there to the loop file."""
    base = PurePosixPath(folder.strip("/") or ".")
    tests_dir = base.parent / TESTS_DIR if base.name else PurePosixPath(TESTS_DIR)
    out = []
    for test in LoopTest.objects.filter(loop__in=loops).select_related("loop"):
        paths = test_paths(test.loop, test)
        target = base / f"{test.loop.name}.yaml"
        ref = posixpath.relpath(str(target), str(tests_dir))
        name = PurePosixPath(paths["test"]).name
        out.append((str(tests_dir / name), with_loop(test.test_yaml, ref)))
        cassette = PurePosixPath(paths["cassette"]).name
        out.append((str(tests_dir / cassette), test.cassette_text))
    return out


def default_test_yaml(loop: Loop, name: str, run: Run) -> str:
    """Return the test file ``loopkit run --record`` would write for ``run``."""
    expect: dict[str, Any] = {"status": run.status}
    if parse_loop(run.loop_yaml, run.loop_name).verify is not None:
        finished = run.events.filter(type="run_finished").order_by("-seq").first()
        payload = finished.payload if finished is not None else {}
        expect["verification"] = {
            "passed": payload.get("verification") == "passed",
            "rounds": int(payload.get("rounds") or run.verification_rounds),
        }
    data = {
        "loop": f"../{LOOPS_DIR}/{loop.name}.yaml",
        "cassette": f"{file_stem(loop.name, name)}{CASSETTE_SUFFIX}",
        "name": name,
        "expect": expect,
    }
    return HEADER + emitter.dump(data)


def check_test_yaml(text: str, loop: Loop, name: str) -> None:
    """Raise ``Invalid`` (422) with every problem at its line and column unless ``text``
    is a valid test file."""
    shown = f"{TESTS_DIR}/{file_stem(loop.name, name)}{TEST_SUFFIX}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.test.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_test(path, shown)
        except SpecError as exc:
            problems = [
                {
                    "message": p.message,
                    "path": p.path,
                    "line": p.line,
                    "column": p.column,
                    "hint": p.hint,
                    "location": p.location,
                }
                for p in exc.problems
            ]
            first = exc.problems[0]
            raise Invalid(
                f"the test file is not valid: {first}",
                code="invalid_test",
                errors=problems,
            ) from None


def _compress(text: str) -> bytes:
    return gzip.compress(text.encode("utf-8"))


def keep_as_test(
    request: HttpRequest, run: Run, name: str = "", test_yaml: str | None = None
) -> LoopTest:
    """Make a test of ``run``'s loop from its cassette; refuse a run that has none."""
    loop = run.loop
    if loop is None:
        raise Conflict("the run's loop was deleted: there is no loop to test")
    if run.status not in TERMINAL:
        raise Conflict(f"the run has not finished yet ({run.status}): keep it when it has")
    cassette = RunCassette.objects.filter(run=run).first()
    if cassette is None:
        why = (
            "a dry run is not recorded (it calls no model): start a live run"
            if run.dry_run
            else "only a live run of a saved version that ran start to end in one worker "
            "is recorded (not a test run of a draft, nor a run resumed after an approval)"
        )
        raise Conflict(f"run #{run.pk} has no recording: {why}", code="no_recording")
    name = name.strip() or f"{loop.name}-run-{run.pk}"
    text = test_yaml if test_yaml is not None else default_test_yaml(loop, name, run)
    check_test_yaml(text, loop, name)
    try:
        with transaction.atomic():
            test = LoopTest.objects.create(
                loop=loop,
                name=name,
                test_yaml=text,
                cassette=bytes(cassette.data),
                source_run=run,
                source_version=run.version_number,
                created_by=request.user if request.user.is_authenticated else None,
            )
            record(
                request,
                "loop_test.kept",
                test,
                team=loop.team,
                after={"name": name, "loop": loop.name, "run": run.pk, "calls": cassette.calls},
            )
    except IntegrityError:
        raise Conflict(
            f"loop '{loop.name}' has a test named '{name}' already: choose another name",
            code="name_taken",
        ) from None
    return test


def update_test(request: HttpRequest, test: LoopTest, test_yaml: str) -> LoopTest:
    """Replace a test's file (its expectations), validated first."""
    check_test_yaml(test_yaml, test.loop, test.name)
    before = {"test_yaml": test.test_yaml}
    test.test_yaml = test_yaml
    test.updated_at = timezone.now()
    test.save(update_fields=["test_yaml", "updated_at"])
    record(
        request,
        "loop_test.updated",
        test,
        team=test.loop.team,
        before=before,
        after={"test_yaml": test_yaml},
    )
    return test


def delete_test(request: HttpRequest, test: LoopTest) -> None:
    with transaction.atomic():
        record(
            request,
            "loop_test.deleted",
            test,
            team=test.loop.team,
            before={"name": test.name, "loop": test.loop.name},
        )
        test.delete()


def run_tests(
    request: HttpRequest | None,
    loop: Loop,
    version: LoopVersion | None = None,
    *,
    trigger: str = "manual",
) -> list[LoopTestResult]:
    """Replay every test of ``loop`` against ``version`` (default: the current one); store
    and return the results."""
    version = version or loop.current()
    tests = list(LoopTest.objects.filter(loop=loop))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / LOOPS_DIR).mkdir()
        (root / TESTS_DIR).mkdir()
        (root / LOOPS_DIR / f"{loop.name}.yaml").write_text(version.yaml, encoding="utf-8")
        for test in tests:
            paths = test_paths(loop, test)
            text = with_loop(test.test_yaml, f"../{paths['loop']}")
            (root / paths["test"]).write_text(text, encoding="utf-8")
            (root / paths["cassette"]).write_text(test.cassette_text, encoding="utf-8")
            outcome = replay(root / paths["test"])
            results.append(
                LoopTestResult(
                    test=test,
                    version_number=version.number,
                    passed=outcome.passed,
                    status=outcome.status or "",
                    failures=[
                        {
                            "message": f.message,
                            "location": _relative(f.location, root),
                            "diff": f.diff,
                            "kind": f.kind,
                        }
                        for f in outcome.failures
                    ],
                    replayed=outcome.replayed,
                    duration_s=round(outcome.duration_s, 3),
                    trigger=trigger,
                )
            )
    LoopTestResult.objects.bulk_create(results)
    if results:
        passed = sum(1 for r in results if r.passed)
        record(
            request,
            "loop_tests.run",
            loop,
            after={
                "version": version.number,
                "trigger": trigger,
                "passed": passed,
                "failed": len(results) - passed,
            },
        )
    return results


def _relative(location: str, root: Path) -> str:
    for prefix in {str(root), str(root.resolve())}:
        if location.startswith(prefix + "/"):
            return location[len(prefix) + 1 :]
    return location


def summary(results: list[LoopTestResult]) -> dict[str, Any]:
    """Return the API's summary of a run of a loop's tests."""
    passed = sum(1 for r in results if r.passed)
    return {
        "version": results[0].version_number if results else None,
        "total": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "results": [result_out(r) for r in results],
    }


def result_out(result: LoopTestResult) -> dict[str, Any]:
    return {
        "test_id": result.test_id,
        "test": result.test.name,
        "version": result.version_number,
        "passed": result.passed,
        "status": result.status,
        "failures": result.failures,
        "replayed": result.replayed,
        "duration_s": result.duration_s,
        "trigger": result.trigger,
        "created_at": result.created_at,
    }


def test_out(test: LoopTest, *, full: bool = False) -> dict[str, Any]:
    last = test.last_result()
    out: dict[str, Any] = {
        "id": test.pk,
        "loop_id": test.loop_id,
        "name": test.name,
        "source_run": test.source_run_id,
        "source_version": test.source_version,
        "created_at": test.created_at,
        "test_yaml": test.test_yaml,
        "last_result": result_out(last) if last is not None else None,
    }
    if full:
        out["cassette"] = test.cassette_text
    return out
