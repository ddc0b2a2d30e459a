"""``loopkit run LOOP`` and ``loopkit-runtime [--dry-run] run LOOP``.

Exit codes: 0 succeeded; 1 failed, verification_failed or budget_exceeded;
2 the loop file or the command line is wrong; 130 cancelled (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from loopkit.engine.approval import ApprovalDecision, ApprovalRequest, Approver, StaticApprover

EXIT_CODES = {
    "succeeded": 0,
    "failed": 1,
    "verification_failed": 1,
    "budget_exceeded": 1,
    "cancelled": 130,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "loop",
        metavar="LOOP",
        help="a loop name (from loops/ or written inline in loopkit.yaml) or a path to a "
        ".yaml file",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="no model calls, no cost: a deterministic provider"
    )
    parser.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a run input (available to prompts as inputs.KEY); repeatable",
    )
    parser.add_argument(
        "--payload", metavar="FILE", help="a JSON file with the trigger's payload (trigger.payload)"
    )
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="also print the agents' text as the model streams it",
    )
    parser.add_argument(
        "--no-stream",
        dest="stream",
        action="store_false",
        help="do not stream the agents' text (no step_output events; one response per call)",
    )
    parser.add_argument(
        "--resume", metavar="RUN_ID", help="continue a run that stopped, skipping finished steps"
    )
    gate = parser.add_mutually_exclusive_group()
    gate.add_argument("--approve", action="store_true", help="approve every approval gate")
    gate.add_argument("--reject", action="store_true", help="reject every approval gate")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="parallel agents at most (default 32)"
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="record the run's model, tool and approval exchanges into a cassette for "
        "'loopkit test' (and a test file, when there is none)",
    )
    parser.add_argument(
        "--cassette",
        metavar="PATH",
        help="where --record writes (default: tests/LOOP.cassette.yaml in the project)",
    )
    parser.add_argument(
        "--remote",
        action="store_true",
        help="run on the LoopKit server LOOPKIT_SERVER with the API token LOOPKIT_TOKEN",
    )


def _inputs(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--input expects KEY=VALUE, got '{pair}'")
        out[key.strip()] = value
    return out


class TerminalApprover(Approver):
    """Ask on the terminal (y/N) without blocking the event loop.

    The question is read in a daemon thread of its own, not the loop's
    executor: a run cancelled (Ctrl-C) while waiting must not wait for Enter.
    """

    async def decide(self, request: ApprovalRequest) -> ApprovalDecision:
        event_loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = event_loop.create_future()

        def deliver(text: str) -> None:
            if not answer.done():
                answer.set_result(text)

        def ask() -> None:
            sys.stderr.write(f"Approve '{request.label or request.key}'? {request.question} [y/N] ")
            sys.stderr.flush()
            text = sys.stdin.readline().strip().lower()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                event_loop.call_soon_threadsafe(deliver, text)

        threading.Thread(target=ask, name="loopkit-approval", daemon=True).start()
        approved = (await answer) in ("y", "yes")
        return ApprovalDecision(
            approved=approved, by="terminal", reason=None if approved else "answered no"
        )


def _approver(args: argparse.Namespace, dry_run: bool) -> Approver:
    if args.approve:
        return StaticApprover(True, by="--approve")
    if args.reject:
        return StaticApprover(False, by="--reject", reason="rejected with --reject")
    if dry_run:
        return StaticApprover(True, by="dry run")
    if sys.stdin.isatty():
        return TerminalApprover()
    return StaticApprover(False, by="cli", reason="no terminal to ask (pass --approve or --reject)")


def execute(args: argparse.Namespace, *, dry_run: bool) -> int:
    """Load the loop, run it with the console (or JSON) sink, return the exit code."""
    from loopkit.errors import SpecError
    from loopkit.project import find_project, is_project_file, open_project

    try:
        inputs = _inputs(args.input)
    except ValueError as exc:
        print(f"loopkit run: {exc}", file=sys.stderr)
        return 2
    record = bool(getattr(args, "record", False))
    if record and (dry_run or args.resume):
        why = "a dry run calls no model" if dry_run else "a resumed run skips finished steps"
        print(f"loopkit run: --record records a whole live run ({why})", file=sys.stderr)
        return 2
    if getattr(args, "cassette", None) and not record:
        print("loopkit run: --cassette names where --record writes: add --record", file=sys.stderr)
        return 2
    payload = None
    if args.payload:
        import json

        try:
            payload = json.loads(Path(args.payload).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"loopkit run: cannot read --payload {args.payload}: {exc}", file=sys.stderr)
            return 2
    try:
        target = Path(args.loop)
        if is_project_file(target) and target.is_file():
            project = open_project(target)  # its one inline loop (the first release's form)
        else:
            project = find_project()
        loop, path = project.locate(args.loop)
    except SpecError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return 2
    try:
        config = str(path.resolve().relative_to(project.root))
    except ValueError:
        config = str(path)

    from loopkit.engine.cancellation import CancelToken
    from loopkit.engine.runner import RunOptions, run_loop
    from loopkit.memory import open_store
    from loopkit.providers import Providers, from_project
    from loopkit.sinks import ConsoleSink, JsonlSink, Sink

    providers = Providers()
    if not dry_run and project.project.providers:
        from loopkit.errors import ConfigError

        try:
            providers = from_project(project.project.providers)
        except ConfigError as exc:
            print(f"loopkit run: {exc}", file=sys.stderr)
            return 2
    llm: Any
    if dry_run:
        from loopkit.llm import DryRunProvider

        options = loop.dry_run
        llm = DryRunProvider(
            checker_scores=[float(s) for s in options.checker_scores] if options else [],
            latency_ms=(options.latency_ms or 0) if options else 0,
        )
    else:
        from loopkit.llm import LiteLLMProvider

        llm = LiteLLMProvider(providers=providers)
    defaults = project.project.defaults
    memory = loop.memory or (defaults.memory if defaults else None)
    store = open_store(memory, project.root)
    sink: Sink = (
        JsonlSink() if args.json else ConsoleSink(stream_text=getattr(args, "verbose", False))
    )
    run_options = RunOptions(
        inputs=inputs,
        payload=payload,
        run_id=args.resume,
        resume=bool(args.resume),
        project_model=(defaults.model if defaults else None) or providers.default_model(),
        config_path=config,
        stream_output=getattr(args, "stream", True),
    )
    if args.concurrency:
        run_options.concurrency = max(1, args.concurrency)
    from loopkit import tracing
    from loopkit.errors import ConfigError

    try:
        # With OTEL_EXPORTER_OTLP_ENDPOINT set, the run is exported as a trace.
        llm, sinks = tracing.instrument(llm, [sink])
    except ConfigError as exc:
        print(f"loopkit run: {exc}", file=sys.stderr)
        store.close()
        return 2
    cancel = CancelToken()
    # A dry run calls no tool: its connectors are not started (no server, no secret needed).
    tools = None
    if not dry_run:
        from loopkit.connectors.provider import ConnectorTools

        tools = ConnectorTools(loop, project.project, root=project.root)
    approver = _approver(args, dry_run)
    recorder = None
    if record:
        from loopkit.cassette import recorded_defaults
        from loopkit.connectors import Toolbox
        from loopkit.connectors.provider import ConnectorTools
        from loopkit.recording import Recorder, RecordingApprover, RecordingLLM, RecordingToolbox

        recorder = Recorder(loop)
        recorder.inputs, recorder.payload = inputs, payload
        namespace = (loop.memory.namespace if loop.memory else None) or loop.name
        if _reads_memory(path):  # a loop that never reads memory does not depend on it
            recorder.memory = store.get_memory(namespace)
        recorder.defaults = recorded_defaults(run_options.project_model)
        llm = RecordingLLM(llm, recorder)
        approver = RecordingApprover(approver, recorder)
        toolbox = RecordingToolbox(
            Toolbox.for_loop(loop, project.project, root=project.root), recorder
        )
        tools = ConnectorTools(loop, project.project, root=project.root, toolbox=toolbox)

    async def main() -> Any:
        event_loop = asyncio.get_running_loop()
        for sig, why in ((signal.SIGINT, "interrupted (Ctrl-C)"), (signal.SIGTERM, "terminated")):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
                event_loop.add_signal_handler(sig, cancel.cancel, why)
        result = await run_loop(
            loop,
            llm,
            sinks=sinks,
            store=store,
            approver=approver,
            cancel=cancel,
            options=run_options,
            project=project.project,
            tool_provider=tools,
        )
        return result

    try:
        result = asyncio.run(main())
    finally:
        sink.close()
        store.close()
        tracing.flush()
    if recorder is not None:
        save_recording(recorder, result, project, path, getattr(args, "cassette", None))
    return EXIT_CODES.get(result.status, 1)


def _reads_memory(loop_path: Path) -> bool:
    """Whether the loop file's templates may read ``memory`` (its recording keeps it)."""
    import re

    try:
        text = loop_path.read_text(encoding="utf-8")
    except OSError:
        return True
    return re.search(r"\bmemory\s*[.\[|]", text) is not None


def save_recording(
    recorder: Any, result: Any, project: Any, loop_path: Path, where: str | None
) -> None:
    """Write the cassette (and a test file when the loop has none there); say so on stderr."""
    from loopkit.cassette import default_cassette, secret_names, test_file_for
    from loopkit.testfile import write_test
    from loopkit.testing import shown_path

    cassette_path = Path(where) if where else default_cassette(project.root, recorder.loop.name)
    texts = [loop_path.read_text(encoding="utf-8")]
    if project.file is not None:
        texts.append(project.file.read_text(encoding="utf-8"))
    cassette = recorder.cassette(extra_secrets=secret_names(texts))
    calls, tools = len(cassette.calls), len(cassette.tools)
    if result.status != "succeeded" and not (calls or tools or cassette.approvals):
        # The run stopped before anything (a missing input, Ctrl-C): a test of it would only
        # pin that mistake, and an existing cassette is worth more than an empty one.
        print(
            f"Nothing recorded: the run {result.status} before any model or tool call"
            f" ({result.error or 'no error given'}); {shown_path(cassette_path)} is unchanged",
            file=sys.stderr,
        )
        return
    cassette.save(cassette_path)
    print(
        f"Recorded {calls} model call(s), {tools} tool call(s) and "
        f"{len(cassette.approvals)} approval(s) to {shown_path(cassette_path)}",
        file=sys.stderr,
    )
    test_path = test_file_for(cassette_path)
    if test_path.exists():
        print(f"Kept the test file {shown_path(test_path)}", file=sys.stderr)
        return
    verification = None
    if recorder.loop.verify is not None:
        verification = {"passed": result.verification == "passed", "rounds": result.rounds}
    inline = project.file is not None and loop_path.resolve() == project.file.resolve()
    # A loop written inline in loopkit.yaml is named; a loop file is a path from the test.
    loop_ref = recorder.loop.name if inline else _relative_to(loop_path, test_path.parent)
    write_test(test_path, loop_ref, cassette_path, result.status, verification)
    print(
        f"Wrote the test file {shown_path(test_path)} (status {result.status}"
        + (f", {result.rounds} verification round(s)" if verification else "")
        + "); run it with 'loopkit test'",
        file=sys.stderr,
    )


def _relative_to(target: Path, base: Path) -> str:
    import os

    return Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()


def handle(args: argparse.Namespace) -> int:
    if getattr(args, "remote", False):
        return execute_remote(args)
    return execute(args, dry_run=args.dry_run)


#: Options of a local run the server cannot honour, and why (``--remote`` refuses them).
REMOTE_REFUSED = {
    "resume": "--resume cannot be used with --remote: the server resumes its own runs "
    "when a worker stops; to run a finished run again, press Re-run on its page "
    "(or POST /api/runs/ID/rerun)",
    "approve": "--approve cannot be used with --remote: decide approvals on the run's page "
    "on the server",
    "reject": "--reject cannot be used with --remote: decide approvals on the run's page "
    "on the server",
    "record": "--record cannot be used with --remote: record the run here (without --remote)",
    "cassette": "--cassette cannot be used with --remote: record the run here (without --remote)",
    "concurrency": "--concurrency cannot be used with --remote: the server's workers set "
    "how many agents run at once",
}


def _remote_payload(path: str | None) -> dict[str, Any] | None:
    """Return the JSON object of ``--payload FILE``, or raise ValueError saying what is wrong."""
    if not path:
        return None
    import json

    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read --payload {path}: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"--payload {path} must hold a JSON object, not {type(value).__name__}")
    return value


def execute_remote(args: argparse.Namespace) -> int:
    """Run the loop on a LoopKit server (``--remote``) and follow it; return the exit code."""
    from loopkit.remote import RemoteError, run_remote

    for option, message in REMOTE_REFUSED.items():
        if getattr(args, option, None) not in (None, False):
            print(f"loopkit run --remote: {message}", file=sys.stderr)
            return 2
    try:
        status = run_remote(
            args.loop,
            inputs=_inputs(args.input),
            payload=_remote_payload(getattr(args, "payload", None)),
            dry_run=args.dry_run,
            as_json=args.json,
            verbose=getattr(args, "verbose", False),
        )
    except (RemoteError, ValueError) as exc:
        print(f"loopkit run --remote: {exc}", file=sys.stderr)
        return 2
    return EXIT_CODES.get(status, 1)


def runtime_main(argv: list[str]) -> int:
    """``loopkit-runtime [--dry-run] run LOOP [options]``: the seed's Python runtime."""
    parser = argparse.ArgumentParser(prog="loopkit-runtime", description="Run LoopKit loops.")
    parser.add_argument(
        "--dry-run", dest="global_dry_run", action="store_true", help="no model calls, no cost"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run a loop", description="run a loop")
    add_arguments(run)
    args = parser.parse_args(argv)
    if args.command != "run":
        parser.print_help()
        return 2
    if args.global_dry_run or args.dry_run:
        # A dry run needs no pydantic plugins; looking them up scans every
        # installed distribution's entry points (~15 ms of a cold start).
        import os

        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        return execute(args, dry_run=args.global_dry_run or args.dry_run)
    except KeyboardInterrupt:
        return 130


__all__ = ["add_arguments", "execute", "handle", "runtime_main"]
