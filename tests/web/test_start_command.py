"""`loopkit serve --dev --demo` from a clone (what `make run` calls), run as a new user would.

The project's files are copied as a clone would have them (tracked and
not-ignored files, no database) into a temporary folder; the command runs
there with the embedded defaults and LOOPKIT_HOME in the temporary folder,
serves the login page and the health endpoint, runs tasks in its worker, and
stops both children on Ctrl-C. (The installed wheel: test_installed_package.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .procs import child_env, clone_like_copy, free_port, manage

STARTUP_TIMEOUT = 90.0


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Started:
    proc: subprocess.Popen[str]
    base_url: str
    checkout: Path
    env: dict[str, str]
    output: list[str]


SERVE = [sys.executable, "-m", "loopkit.cli", "serve"]


def start(
    tmp_path: Path, args: tuple[str, ...] = ("--dev", "--demo"), **env_vars: str
) -> Iterator[Started]:
    """Start `loopkit serve` in a clone-like copy; yield once it serves; kill what is left."""
    checkout = clone_like_copy(tmp_path / "loopkit")
    port = free_port()
    env = child_env(LOOPKIT_PORT=str(port), LOOPKIT_HOME=str(tmp_path / "home"), **env_vars)
    proc = subprocess.Popen(
        [*SERVE, *args],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a signal to the test's group must not reach it
    )
    output: list[str] = []
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    try:
        while time.monotonic() < deadline:
            output.extend(proc.stdout.readlines())
            if proc.poll() is not None:
                pytest.fail("loopkit serve exited early:\n" + "".join(output))
            # The URL is printed only once the port answers.
            if "LoopKit is running at" in "".join(output):
                break
            time.sleep(0.1)
        else:
            pytest.fail("loopkit serve did not serve within the timeout:\n" + "".join(output))
        yield Started(proc, base_url, checkout, env, output)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    """One started instance shared by the tests that do not stop it."""
    yield from start(tmp_path_factory.mktemp("running"))


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    """A started instance of the test's own (to stop it)."""
    yield from start(tmp_path)


def _read(started: Started) -> str:
    assert started.proc.stdout is not None
    started.output.extend(started.proc.stdout.readlines())
    return "".join(started.output)


def test_it_serves_the_login_page_health_and_the_demo_account(running: Started) -> None:
    started = running
    output = _read(started)
    assert f"LoopKit is running at {started.base_url}/" in output
    match = re.search(r"Demo team “Demo”: log in as (\S+) / (\S+)", output)
    assert match, output
    assert "Admin account created: log in as admin / " in output
    username, password = match.groups()

    login_page = httpx.get(f"{started.base_url}/accounts/login/")
    health = httpx.get(f"{started.base_url}/api/health")
    css = httpx.get(f"{started.base_url}/static/loopkit_web/base.css")

    assert "Log in" in login_page.text
    assert health.status_code == 200, health.text
    assert {k: (c["ok"], c["backend"]) for k, c in health.json()["checks"].items()} == {
        "database": (True, "sqlite"),
        "huey": (True, "SqliteHuey"),
        "channel_layer": (True, "SQLiteChannelLayer"),
    }
    assert css.status_code == 200 and "--accent" in css.text
    assert Path(started.env["LOOPKIT_HOME"], "loopkit.sqlite3").is_file()
    assert not (started.checkout / "var").exists()

    with httpx.Client(base_url=started.base_url) as browser:
        browser.get("/accounts/login/")
        response = browser.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
            headers={"Referer": f"{started.base_url}/accounts/login/"},
        )
        assert response.status_code == 302 and response.headers["Location"] == "/"
        me = browser.get("/api/me").json()
    assert me["username"] == "demo"
    assert me["current_team"]["name"] == "Demo" and me["current_team"]["role"] == "owner"


def test_its_worker_runs_tasks(running: Started) -> None:
    started = running
    script = (
        "import json; from loopkit_web.tasks import ping; "
        "print('TASK ' + json.dumps(ping('hello').get(blocking=True, timeout=30)))"
    )

    proc = manage("shell", "-c", script, env=started.env, cwd=started.checkout, timeout=60)

    result = json.loads(proc.stdout.split("TASK ", 1)[1])
    assert result["payload"] == "hello"
    assert result["pid"] in children_of(started.proc.pid)


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False)],
    ids=["ctrl-c in a terminal", "sigint to the command", "sigterm to the command"],
)
def test_a_signal_stops_the_server_and_the_worker(
    started: Started, signum: int, whole_group: bool
) -> None:
    children = children_of(started.proc.pid)
    assert len(children) == 2, children

    # A terminal's Ctrl-C signals the whole foreground process group.
    if whole_group:
        os.killpg(started.proc.pid, signum)
    else:
        started.proc.send_signal(signum)

    assert started.proc.wait(timeout=20) == 0, _read(started)
    assert "Stopped." in _read(started)
    assert [pid for pid in children if alive(pid)] == []
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{started.base_url}/api/health", timeout=2)


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    checkout = clone_like_copy(tmp_path / "loopkit")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [*SERVE, "--dev", "--port", str(port)],
            cwd=checkout,
            env=child_env(LOOPKIT_HOME=str(tmp_path / "home")),
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
        )

    # Deliberately changed: the taken port is found before any child starts (a
    # listener there would otherwise answer the readiness probe in Daphne's place).
    assert proc.returncode == 1
    assert (
        f"port {port} on 127.0.0.1 is in use (another server?): choose another with --port.\n"
        in proc.stderr
    )
    assert "LoopKit is running" not in proc.stdout


def test_with_debug_off_it_serves_hashed_static_files_and_secure_cookies(tmp_path: Path) -> None:
    # Without --dev DEBUG is off; LOOPKIT_HTTPS: a TLS proxy in front sets X-Forwarded-Proto.
    production = {"DEBUG": "", "ALLOWED_HOSTS": "127.0.0.1", "LOOPKIT_HTTPS": "true"}
    https = {"X-Forwarded-Proto": "https"}
    with contextmanager(start)(tmp_path, (), **production) as started:
        login = httpx.get(f"{started.base_url}/accounts/login/", headers=https)
        css_url = re.search(r'href="(/static/loopkit_web/base\.[0-9a-f]{12}\.css)"', login.text)
        assert css_url, login.text
        css = httpx.get(started.base_url + css_url.group(1), headers=https)

        assert login.status_code == 200
        assert "Secure" in login.headers["set-cookie"]  # the CSRF cookie
        assert css.status_code == 200 and "--accent" in css.text
        assert "immutable" in css.headers["cache-control"]
        assert httpx.get(f"{started.base_url}/api/health").json()["status"] == "ok"
        assert "Demo team" not in _read(started)  # no demo account with a known password
        assert httpx.get(f"{started.base_url}/accounts/login/").status_code == 301  # to HTTPS
