"""Real processes for tests: `python -m service` on a free 127.0.0.1 port, throwaway databases."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.conftest import INTERNAL_TOKEN, WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    """The environment `python -m service` runs with in tests (dev-only secrets)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "INTERNAL_"))}
    env.update(
        DATABASE_URL=database_url,
        ZOOM_WEBHOOK_SECRET=WEBHOOK_SECRET,
        INTERNAL_API_TOKENS=INTERNAL_TOKEN,
        HOST="127.0.0.1",
        PORT=str(port),
    )
    env.update(extra)
    return env


def python_argv(argv: Sequence[str]) -> list[str]:
    """Run a `python ...` command line with this interpreter (the venv's)."""
    return [sys.executable, *argv[1:]] if argv and argv[0] == "python" else list(argv)


def http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A blocking HTTP request to a test server: status, headers and body (also for 4xx/5xx)."""
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http only
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@dataclass
class Service:
    process: subprocess.Popen
    port: int
    env: dict[str, str]
    # A file, not a pipe: a chatty server must never block on a full pipe buffer.
    output: IO[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        self.output.flush()
        self.output.seek(0)
        return self.output.read()

    def terminate(self, timeout: float = 30) -> int:
        """Send SIGTERM and wait for the process to exit; return its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def child_pids(pid: int) -> set[int]:
    """The processes pid started that still run (its workers, under WEB_CONCURRENCY > 1)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(child) for child in text.split()}


def is_running(pid: int) -> bool:
    """True while pid exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    raise RuntimeError("the service did not answer /healthz in time")


@contextlib.contextmanager
def running_service(
    database_url: str, argv: Sequence[str] = ("python", "-m", "service"), **extra_env: str
) -> Iterator[Service]:
    """Start the server as a real process from the repository root; stop it afterwards."""
    port = free_port()
    env = service_env(database_url, port, **extra_env)
    with tempfile.NamedTemporaryFile("w+", encoding="utf-8") as output:
        process = subprocess.Popen(
            python_argv(argv), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        service = Service(process, port, env, output)
        try:
            wait_until_healthy(service.url, process)
            yield service
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
