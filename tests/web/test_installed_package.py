"""The wheel, installed as a new user installs it: no checkout, no Node, no CDN.

The wheel is built from a clone-like copy of the working tree plus the built
browser bundles, installed with ``[web]`` into a fresh virtual environment in a
temporary folder (dependencies come from the package index; no pyc compiling,
to stay fast), and ``loopkit serve --demo`` runs from there with
``LOOPKIT_HOME`` in the temporary folder and the working directory outside
the checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from .procs import REPO, child_env, clone_like_copy, free_port

BUNDLE_DIR = Path("loopkit_web", "static", "editor")
BUNDLES = ("editor.js", "editor.css", "graph.js", "graph.css", "run.js")
STARTUP_TIMEOUT = 120.0


@dataclass
class Installed:
    venv: Path
    site_packages: Path
    wheel: Path
    home: Path


def pip_env() -> dict[str, str]:
    # PYTHONPATH (the checkout, in tests) would show pip the checkout's *.egg-info.
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def build_wheel(source: Path, dist: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        env=pip_env(),
    )


def copy_bundles(dest: Path) -> None:
    missing = [name for name in BUNDLES if not (REPO / BUNDLE_DIR / name).is_file()]
    if missing:
        pytest.fail(f"{BUNDLE_DIR} lacks {missing}: build the bundles first (make frontend)")
    (dest / BUNDLE_DIR).mkdir(parents=True, exist_ok=True)
    for name in BUNDLES:
        shutil.copy2(REPO / BUNDLE_DIR / name, dest / BUNDLE_DIR / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("installed")
    source = clone_like_copy(root / "source")
    copy_bundles(source)
    built = build_wheel(source, root / "dist")
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "dist").glob("loopkit_ai-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "-q", "--no-compile", f"{wheel}[web]"],
        capture_output=True, text=True, timeout=600, env=pip_env(),
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    return Installed(venv, site_packages, wheel, root / "home")


def venv_env(installed: Installed, **overrides: str) -> dict[str, str]:
    """The environment of a user's shell: the venv's bin first, no PYTHONPATH, no test settings."""
    env = child_env(LOOPKIT_HOME=str(installed.home))
    for name in ("PYTHONPATH", "DEBUG", "DJANGO_SETTINGS_MODULE"):  # DEBUG: the production default
        env.pop(name, None)
    env["PATH"] = f"{installed.venv / 'bin'}{os.pathsep}{env['PATH']}"
    return {**env, **overrides}


def test_the_build_refuses_to_package_without_the_browser_bundles(tmp_path: Path) -> None:
    source = clone_like_copy(tmp_path / "source")
    shutil.rmtree(source / BUNDLE_DIR, ignore_errors=True)

    built = build_wheel(source, tmp_path / "dist")

    assert built.returncode != 0
    assert (
        "error: loopkit_web/static/editor/editor.js, loopkit_web/static/editor/editor.css, "
        "loopkit_web/static/editor/graph.js, loopkit_web/static/editor/graph.css, "
        "loopkit_web/static/editor/run.js missing: "
        "the wheel must carry the built editor and run-graph bundles. Build them first with "
        "`make frontend` (scripts/build-frontend.sh; needs Node 20.19+), then build again."
    ) in built.stdout + built.stderr
    assert not list((tmp_path / "dist").glob("*.whl"))


def test_the_wheel_carries_every_app_its_files_and_the_example_loops(
    installed: Installed, tmp_path: Path
) -> None:
    script = (
        "import django, json; from django.conf import settings; django.setup(); "
        "from importlib import import_module; from loopkit import examples; "
        "print('RESULT ' + json.dumps({"
        "'apps': {a: import_module(a).__file__ for a in settings.INSTALLED_APPS}, "
        "'examples': examples.names(), 'pr_review': examples.read('pr-review')}))"
    )
    before = sorted(p for p in installed.site_packages.rglob("*") if "__pycache__" not in p.parts)

    proc = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", script],
        env=venv_env(installed, DJANGO_SETTINGS_MODULE="loopkit_web.settings"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    check = subprocess.run(
        [str(installed.venv / "bin" / "django-admin"), "check", "--fail-level", "WARNING"],
        env=venv_env(installed, DJANGO_SETTINGS_MODULE="loopkit_web.settings"),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    ours = {a: f for a, f in result["apps"].items() if not a.startswith(("django", "huey"))}
    outside = {a: f for a, f in ours.items() if not f.startswith(str(installed.site_packages))}
    assert outside == {}
    assert {"pr-review", "daily-triage"} <= set(result["examples"])
    assert result["pr_review"] == (REPO / "loops" / "pr-review.yaml").read_text()
    assert check.returncode == 0 and "System check identified no issues" in check.stdout, (
        check.stdout + check.stderr
    )
    after = sorted(p for p in installed.site_packages.rglob("*") if "__pycache__" not in p.parts)
    assert after == before  # nothing written into the installed package
    assert (installed.home / "secret_key").is_file()
    for static in ("templates/base.html", "static/editor/editor.js", "static/loopkit_web/base.css"):
        assert (installed.site_packages / "loopkit_web" / static).is_file(), static


@dataclass
class Serving:
    proc: subprocess.Popen[str]
    base_url: str
    output: list[str]

    def read(self) -> str:
        assert self.proc.stdout is not None
        self.output.extend(self.proc.stdout.readlines())
        return "".join(self.output)


@pytest.fixture
def serving(installed: Installed, tmp_path: Path) -> Iterator[Serving]:
    port = free_port()
    proc = subprocess.Popen(
        [str(installed.venv / "bin" / "loopkit"), "serve", "--demo", "--port", str(port)],
        env=venv_env(installed, LOOPKIT_HOME=str(tmp_path / "home")),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    started = Serving(proc, f"http://127.0.0.1:{port}", [])
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while "LoopKit is running at" not in started.read():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("loopkit serve did not start:\n" + started.read())
            time.sleep(0.1)
        yield started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def login(browser: httpx.Client, base_url: str, username: str, password: str) -> None:
    browser.get("/accounts/login/")
    response = browser.post(
        "/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        headers={"Referer": f"{base_url}/accounts/login/"},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/", response.text


async def call_over_mcp(url: str, token: str, tool: str) -> tuple[list[str], Any]:
    """List the tools at *url* and call *tool* as a dry run, with the mcp SDK's client."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with Client(streamable_http_client(url, http_client=http)) as client:
        listed = await client.list_tools()
        result = await client.call_tool(tool, {"dry_run": True})
    return [t.name for t in listed.tools], result


def test_loopkit_serve_runs_the_whole_app_from_the_installed_package(serving: Serving) -> None:
    base_url = serving.base_url
    # The URL is printed once the port answers: the very first request succeeds.
    assert httpx.get(f"{base_url}/api/health", timeout=5).status_code == 200
    output = serving.read()
    assert f"LoopKit is running at {base_url}/ (Ctrl-C to stop)" in output
    admin = re.search(r"Admin account created: log in as (\S+) / (\S+) \(shown once", output)
    assert admin and admin.group(1) == "admin", output

    with httpx.Client(base_url=base_url, timeout=30) as browser:
        login(browser, base_url, "demo", "loopkit-demo")
        loops = {loop["name"]: loop["id"] for loop in browser.get("/api/loops").json()}
        assert {"pr-review", "daily-triage"} <= set(loops)

        editor = browser.get(f"/loops/{loops['pr-review']}/edit/")
        assert editor.status_code == 200
        bundle = re.search(
            r'<script src="(/static/editor/editor\.[0-9a-f]{12}\.js)" defer>', editor.text
        )
        assert bundle, editor.text
        script = browser.get(bundle.group(1))
        assert script.status_code == 200 and len(script.content) > 100_000
        assert "javascript" in script.headers["content-type"]

        started = browser.post(
            "/api/runs",
            # daily-triage needs no trigger payload and no inputs.
            json={"loop_id": loops["daily-triage"], "dry_run": True},
            headers={"X-CSRFToken": browser.cookies["csrftoken"], "Referer": base_url + "/"},
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
        deadline = time.monotonic() + 60
        while (run := browser.get(f"/api/runs/{run_id}").json())["status"] in {"queued", "running"}:
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
        assert run["status"] == "succeeded", run

        # The team's loops are MCP tools at /mcp/, for an API token.
        csrf = {"X-CSRFToken": browser.cookies["csrftoken"], "Referer": base_url + "/"}
        token = browser.post("/api/tokens", json={"name": "mcp"}, headers=csrf).json()["token"]
        tools, result = anyio.run(call_over_mcp, f"{base_url}/mcp/", token, "daily-triage")
        assert {"pr-review", "daily-triage"} <= set(tools)
        assert not result.is_error and result.meta["loopkit/run"]["status"] == "succeeded"

        # Swagger UI from the package's own files: every script and style is same-origin.
        docs = browser.get("/api/docs")
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', docs.text)
        assert docs.status_code == 200 and len(assets) >= 3, docs.text
        assert [a for a in assets if not a.startswith("/static/")] == []
        assert {a: browser.get(a).status_code for a in assets} == {a: 200 for a in assets}

    admin_client = httpx.Client(base_url=base_url, timeout=30)
    with admin_client:
        login(admin_client, base_url, admin.group(1), admin.group(2))
        assert admin_client.get("/admin/").status_code == 200

    serving.proc.send_signal(signal.SIGINT)
    assert serving.proc.wait(timeout=30) == 0, serving.read()
    output = serving.read()
    assert output.rstrip().endswith("Stopped.")
    assert "Traceback" not in output
