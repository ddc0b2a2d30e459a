"""Replay pr-review's cassette cold: wall time and CPU per replayed model call.

Records pr-review once, in this process, with a scripted model (the checker
fails rounds 1-3 and passes round 4; ``maxRounds`` raised to 4 so the run
makes 20 model calls: 4 makers x 4 rounds + 4 checker calls) and a local
stand-in for its GitHub connector (the diff it reads, the review it posts),
through the same recording wrappers ``loopkit run --record`` uses. Then
replays the test file N times, each in a fresh Python process, two ways:

- ``replay()``: ``loopkit.testing.replay`` timed inside the process (loading
  the test file, the loop and the cassette, the run, the checks) after its
  imports, and the whole process from the outside;
- ``loopkit test``: the console script, cold, as CI runs it.

Prints one JSON document. Target: the 20-call loop replays in under 1 s
cold (the whole ``loopkit test`` process).

    .venv/bin/python bench/replay.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ROUNDS = 4
DIFF = "\n".join(
    f"@@ -{i},3 +{i},4 @@ def handler_{i}(request):\n+    value = cache.get(key_{i})\n"
    f"     return render(request, value)"
    for i in range(1, 60)
)
PAYLOAD = {
    "action": "opened",
    "repository": {"name": "shop", "owner": {"login": "acme"}},
    "pull_request": {"number": 42, "title": "Cache the product page"},
}
PROBE = (
    "import json, sys, time\n"
    "started = time.perf_counter()\n"
    "from loopkit.testing import replay\n"
    "imported = time.perf_counter()\n"
    "result = replay(sys.argv[1])\n"
    "done = time.perf_counter()\n"
    "print(json.dumps({'passed': result.passed, 'calls': result.replayed,\n"
    "    'import_s': imported - started, 'replay_s': done - imported,\n"
    "    'failures': [f.message for f in result.failures]}))\n"
)


def record(project: Path) -> int:
    """Record pr-review into ``project/tests``; return the model calls recorded."""
    from loopkit.cassette import default_cassette
    from loopkit.connectors import Connector, ConnectorTool, Toolbox, tool_name
    from loopkit.connectors.provider import ConnectorTools
    from loopkit.engine.approval import StaticApprover
    from loopkit.engine.events import Tokens
    from loopkit.engine.runner import RunOptions, run_loop
    from loopkit.llm import LLMRequest, LLMResponse, ScriptedLLM
    from loopkit.project import find_project
    from loopkit.recording import Recorder, RecordingLLM, RecordingToolbox
    from loopkit.testfile import write_test
    from loopkit.tools import ToolResult

    class Stand(ConnectorTool):
        def __init__(self, tool: str) -> None:
            self.connector, self.tool = "github", tool
            self.name, self.description = tool_name("github", tool), f"github {tool}"
            self.parameters = {"type": "object", "properties": {}}

        async def call(self, arguments: dict[str, Any]) -> ToolResult:
            return ToolResult(DIFF if self.tool == "get_pull_diff" else '{"id": 1}')

    class LocalGithub(Connector):
        name = "github"

        async def start(self) -> None:
            return None

        async def stop(self) -> None:
            return None

        def tools(self) -> list[ConnectorTool]:
            return [Stand("get_pull_diff"), Stand("create_review")]

    def answer(request: LLMRequest) -> LLMResponse:
        tokens = Tokens(input=len(str(request.messages)) // 4, output=120)
        if request.role == "checker":
            passed = request.round >= ROUNDS
            text = json.dumps(
                {
                    "pass": passed,
                    "score": 0.9 if passed else 0.5,
                    "issues": []
                    if passed
                    else [
                        f"round {request.round}: the security review misses the cache key's scope"
                    ],
                }
            )
        else:
            text = f"{request.step}, round {request.round}: " + "one finding per line. " * 40
        return LLMResponse(content=text, tokens=tokens, cost=0.0004, model=request.model)

    found = find_project(project)
    loop = found.load("pr-review")
    recorder = Recorder(loop)
    recorder.payload = PAYLOAD
    recorder.defaults = {"model": "gpt-4o-mini"}
    # The stand-in answers instead of api.github.com (a built connector wins over its declaration).
    toolbox = Toolbox(loop.connectors, root=project, extra={"github": LocalGithub()})
    tools = ConnectorTools(
        loop, found.project, root=project, toolbox=RecordingToolbox(toolbox, recorder)
    )
    result = asyncio.run(
        run_loop(
            loop,
            RecordingLLM(ScriptedLLM(answer, prices=(1.5e-7, 6e-7)), recorder),
            sinks=[],
            approver=StaticApprover(True),
            tool_provider=tools,
            options=RunOptions(payload=PAYLOAD, project_model="gpt-4o-mini", checkpoint=False),
            project=found.project,
        )
    )
    if result.status != "succeeded" or result.rounds != ROUNDS:
        raise SystemExit(f"the recording run did not go as scripted: {result}")
    cassette = default_cassette(project, loop.name)
    recorder.cassette().save(cassette)
    write_test(
        cassette.with_name("pr-review.test.yaml"),
        "../loops/pr-review.yaml",
        cassette,
        result.status,
        {"passed": True, "rounds": ROUNDS},
    )
    return len(recorder.calls)


def cold(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``argv`` as a fresh process; return its wall time, CPU time and output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPKIT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "loops").mkdir()
        text = (REPO / "loops" / "pr-review.yaml").read_text()
        (project / "loops" / "pr-review.yaml").write_text(
            text.replace("maxRounds: 3", f"maxRounds: {ROUNDS}")
        )
        sys.path.insert(0, str(REPO))
        calls = record(project)
        test_file = project / "tests" / "pr-review.test.yaml"
        cassette_bytes = (project / "tests" / "pr-review.cassette.yaml").stat().st_size

        inner, outer, outer_cpu, imports = [], [], [], []
        for _ in range(args.repeat):
            wall, cpu, out = cold([sys.executable, "-c", PROBE, str(test_file)], project, env)
            probe = json.loads(out)
            if not probe["passed"] or probe["calls"] != calls:
                raise SystemExit(f"the replay did not pass: {probe}")
            inner.append(probe["replay_s"])
            imports.append(probe["import_s"])
            outer.append(wall)
            outer_cpu.append(cpu)
        cli_wall, cli_cpu = [], []
        for _ in range(args.repeat):
            wall, cpu, _out = cold([str(BIN / "loopkit"), "test"], project, env)
            cli_wall.append(wall)
            cli_cpu.append(cpu)
        shutil.rmtree(project / "tests", ignore_errors=True)

    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 1)

    print(
        json.dumps(
            {
                "calls": calls,
                "cassette_bytes": cassette_bytes,
                "repeat": args.repeat,
                "replay_ms": ms(inner),
                "replay_ms_per_call": round(ms(inner) / calls, 2),
                "imports_ms": ms(imports),
                "process_wall_ms": ms(outer),
                "process_cpu_ms": ms(outer_cpu),
                "process_cpu_ms_per_call": round(ms(outer_cpu) / calls, 2),
                "loopkit_test_wall_ms": ms(cli_wall),
                "loopkit_test_cpu_ms": ms(cli_cpu),
                "target_ms": 1000,
                "load": round(os.getloadavg()[0], 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
