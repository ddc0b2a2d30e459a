"""``loopkit calibrate LOOP --labels FILE``: measure a loop's checker against people.

Runs the loop's checker(s) over labelled examples and prints agreement, false
passes (the checker passed work a person failed) and false fails; keeps the
figures in the project state, where ``loopkit validate`` shows them.

Exit codes: 0 done (and at or above ``--min-agreement``); 1 agreement below
``--min-agreement``, or some example could not be judged; 2 the command line,
the loop, the labels file or the model configuration is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from loopkit.calibrate import ExampleResult, Outcome
    from loopkit.errors import Problem

PROG = "loopkit calibrate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "loop",
        metavar="LOOP",
        help="a loop name (from loops/ or written inline in loopkit.yaml) or a path to a "
        ".yaml file",
    )
    parser.add_argument(
        "--labels",
        "-l",
        required=True,
        metavar="FILE",
        help="the labelled examples: JSON Lines (.jsonl) or YAML, one example each",
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=None,
        metavar="PCT",
        help="exit 1 when the checker agrees with the labels on less than PCT%% of the examples",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="checker rounds in flight at once (default 4)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="no model calls, no cost: check the labels file and the prompts (figures "
        "are the dry-run checker's, nothing is saved)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="also print every example's verdict"
    )


def handle(args: argparse.Namespace) -> int:
    from loopkit.calibrate import (
        calibrate,
        checker_models,
        file_hash,
        load_labels,
        make_record,
        save_record,
    )
    from loopkit.errors import ConfigError, SpecError
    from loopkit.project import find_project, is_project_file, open_project

    if args.min_agreement is not None and not 0 <= args.min_agreement <= 100:
        print(f"{PROG}: --min-agreement must be between 0 and 100", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print(f"{PROG}: --concurrency must be 1 or more", file=sys.stderr)
        return 2
    try:
        target = Path(args.loop)
        if is_project_file(target) and target.is_file():
            context = open_project(target)
        else:
            context = find_project()
        loop, _ = context.locate(args.loop)
    except SpecError as exc:
        _print_problems(exc.problems)
        return 2
    if loop.verify is None:
        print(
            f"{PROG}: the loop '{loop.name}' has no 'verify:': there is no checker to calibrate",
            file=sys.stderr,
        )
        return 2
    labels = Path(args.labels)
    shown = _show(labels)
    try:
        examples = load_labels(labels, loop, shown)
    except SpecError as exc:
        _print_problems(exc.problems)
        return 2

    providers, llm, tools = _clients(loop, context, args.dry_run)
    if providers is None:
        return 2
    defaults = context.project.defaults
    project_model = (defaults.model if defaults else None) or providers.default_model()
    try:
        checker_models(loop, llm, context.project, project_model)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2

    async def main() -> Outcome:
        try:
            return await calibrate(
                loop,
                examples,
                llm,
                project=context.project,
                project_model=project_model,
                tool_provider=tools,
                concurrency=args.concurrency,
            )
        finally:
            if tools is not None:
                await tools.close()

    outcome = asyncio.run(main())

    saved: Path | None = None
    if not outcome.dry_run and not outcome.errors and outcome.judged:
        record = make_record(
            outcome,
            loop,
            context.project,
            labels=_relative(labels, context.root),
            labels_hash=file_hash(labels),
        )
        try:
            saved = save_record(record, loop, context)
        except OSError as exc:
            print(f"{PROG}: cannot save the calibration: {exc}", file=sys.stderr)

    agreement = outcome.agreement
    below = (
        args.min_agreement is not None
        and not outcome.dry_run
        and (agreement is None or agreement * 100 < args.min_agreement)
    )
    if args.json:
        document = {
            "loop": loop.name,
            "labels": shown,
            "dryRun": outcome.dry_run,
            "checkers": outcome.checkers,
            "models": outcome.models,
            **outcome.figures(),
            "minAgreement": args.min_agreement,
            "ok": not below and not outcome.errors,
            "saved": _show(saved) if saved else None,
            "results": [r.as_dict() for r in outcome.results],
        }
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        _print_text(outcome, shown, saved, args, sys.stdout)
    return 1 if below or outcome.errors else 0


def _clients(loop: Any, context: Any, dry_run: bool) -> tuple[Any, Any, Any]:
    """Return the providers, the model client and the connector tools, as ``loopkit run`` makes
    them; ``(None, None, None)`` after printing why the providers are wrong."""
    from loopkit.errors import ConfigError
    from loopkit.providers import Providers, from_project

    providers = Providers()
    if not dry_run and context.project.providers:
        try:
            providers = from_project(context.project.providers)
        except ConfigError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return None, None, None
    if dry_run:
        from loopkit.llm import DryRunProvider

        options = loop.dry_run
        scores = [float(s) for s in options.checker_scores] if options else []
        return providers, DryRunProvider(checker_scores=scores), None
    from loopkit.connectors.provider import ConnectorTools
    from loopkit.llm import LiteLLMProvider

    tools = ConnectorTools(loop, context.project, root=context.root)
    return providers, LiteLLMProvider(providers=providers), tools


# ── Output ───────────────────────────────────────────────────────────────


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _print_text(
    outcome: Outcome, shown: str, saved: Path | None, args: argparse.Namespace, out: TextIO
) -> None:
    from loopkit.lrs import percent

    dry = " (dry run: no model was called)" if outcome.dry_run else ""
    out.write(
        f"{outcome.loop} — checker calibration on "
        f"{_plural(len(outcome.results), 'example')} ({shown}){dry}\n"
    )
    for name in outcome.checkers:
        out.write(f"  checker: {name} ({outcome.models.get(name, '?')})\n")
    if args.verbose:
        for result in outcome.results:
            _print_example(result, out)
    agreement = outcome.agreement
    if agreement is None:
        out.write("  agreement: none of the examples could be judged\n")
    else:
        out.write(f"  agreement: {percent(agreement)}% ({outcome.agreed} of {outcome.judged})\n")
    fp = [r for r in outcome.results if r.outcome == "false_pass"]
    ff = [r for r in outcome.results if r.outcome == "false_fail"]
    out.write(
        f"  false passes: {len(fp)} — the checker passed {len(fp)} of the "
        f"{_plural(outcome.human_failed, 'example')} a person failed{_ids(fp)}\n"
    )
    out.write(
        f"  false fails: {len(ff)} — the checker failed {len(ff)} of the "
        f"{_plural(outcome.human_passed, 'example')} a person passed{_ids(ff)}\n"
    )
    warned = [r for r in outcome.results if r.warnings]
    if warned and not args.verbose:
        out.write(
            f"  warnings: {_plural(len(warned), 'example')}{_ids(warned)}: "
            f"{warned[0].warnings[0]} (--verbose shows every one)\n"
        )
    errors = [r for r in outcome.results if r.outcome == "error"]
    if errors:
        out.write(f"  errors: {len(errors)}{_ids(errors)} could not be judged\n")
        for result in errors[:3]:
            out.write(f"    {_where(result)}: {result.error}\n")
    cost = "?" if outcome.cost is None else f"${outcome.cost:.4f}"
    tokens = outcome.tokens.get("total", 0)
    seconds = outcome.duration_ms / 1000
    out.write(
        f"  usage: {_plural(outcome.requests, 'model call')}, {tokens:,} tokens, {cost}, "
        f"{seconds:.1f}s\n"
    )
    if saved is not None:
        out.write(f"  saved: {_show(saved)} (loopkit validate shows it)\n")
    elif outcome.dry_run:
        out.write("  not saved: a dry run's figures are not the checker's\n")
    elif outcome.errors:
        out.write("  not saved: some examples could not be judged\n")
    if args.min_agreement is not None:
        if outcome.dry_run:
            out.write(f"  --min-agreement {args.min_agreement:g} is not applied in a dry run\n")
        elif agreement is None or agreement * 100 < args.min_agreement:
            out.write(f"  below --min-agreement {args.min_agreement:g}%\n")


def _ids(results: list[ExampleResult]) -> str:
    if not results:
        return ""
    shown = ", ".join(r.example.id for r in results[:5])
    more = f", +{len(results) - 5}" if len(results) > 5 else ""
    return f" ({shown}{more})"


def _where(result: ExampleResult) -> str:
    line = f", line {result.example.line}" if result.example.line else ""
    return f"{result.example.id}{line}"


_MARKS = {"agree": "[ok]", "false_pass": "[x] ", "false_fail": "[!] ", "error": "[?] "}
_SAID = {True: "pass", False: "fail", None: "-"}


def _print_example(result: ExampleResult, out: TextIO) -> None:
    verdict = result.verdict
    human = _SAID[result.example.passed]
    label = {
        "agree": "agree",
        "false_pass": "FALSE PASS",
        "false_fail": "false fail",
        "error": "error",
    }[result.outcome]
    if verdict is not None:
        score = f" {verdict.score:.2f}" if verdict.score is not None else ""
        said = f"checker {_SAID[verdict.passed]}{score}"
    else:
        said = "checker -"
    out.write(f"  {_MARKS[result.outcome]} {_where(result)}: {label} (person {human}, {said})\n")
    if result.error:
        out.write(f"       error: {result.error}\n")
    for warning in result.warnings:
        out.write(f"       warning: {warning}\n")
    if verdict is not None:
        for issue in verdict.issues:
            out.write(f"       - {issue}\n")
        if verdict.reason and not verdict.issues:
            out.write(f"       ({verdict.reason})\n")
    for issue in result.example.issues:
        out.write(f"       expected: {issue}\n")


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        where = f" ({problem.path})" if problem.path else ""
        print(f"{problem.location}: {problem.message}{where}", file=sys.stderr)
        if problem.hint:
            print(f"  hint: {problem.hint}", file=sys.stderr)


def _show(path: Path) -> str:
    """Return ``path`` relative to here when it is below, else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())
