"""WEB_CONCURRENCY=2 against a real `python -m service`: two workers on one port, supervised."""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time

from service.__main__ import SHUTDOWN_TIMEOUT_SECONDS
from tests.processes import (
    ROOT,
    child_pids,
    free_port,
    http,
    is_running,
    python_argv,
    running_service,
    service_env,
)

TWO = {"WEB_CONCURRENCY": "2"}


def wait_for(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def serving_workers(url: str, requests: int = 60) -> set[str]:
    """The workers that answered: each gives its request ids a random prefix of its own."""
    prefixes = set()
    for _ in range(requests):  # urllib opens a new connection each time: the kernel picks
        status, headers, _ = http(f"{url}/healthz")
        assert status == 200
        prefixes.add(headers["X-Request-Id"][:16])
    return prefixes


def test_two_processes_answer_on_one_port_and_sigterm_stops_both(database_url):
    with running_service(database_url, **TWO) as service:
        workers = child_pids(service.process.pid)
        assert len(workers) == 2
        assert len(serving_workers(service.url)) == 2
        exit_code = service.terminate(timeout=SHUTDOWN_TIMEOUT_SECONDS + 10)
        logs = service.logs()
    assert exit_code == 0, logs[-2000:]
    assert not any(is_running(pid) for pid in workers)
    assert logs.count('"msg":"stopped"') == 3  # each worker, then the supervisor


def test_a_killed_worker_is_logged_and_replaced(database_url):
    with running_service(database_url, **TWO) as service:
        first, second = sorted(child_pids(service.process.pid))
        subprocess.run(["kill", "-KILL", str(first)], check=True)
        assert wait_for(lambda: len(child_pids(service.process.pid) - {first}) == 2)
        replacement = (child_pids(service.process.pid) - {first, second}).pop()
        assert wait_for(lambda: len(serving_workers(service.url, 20)) == 2)
        logs = service.logs()
        assert service.terminate(timeout=SHUTDOWN_TIMEOUT_SECONDS + 10) == 0
    assert "was killed by SIGKILL" in logs
    assert f'"worker_pid":{replacement}' in logs


def test_workers_stop_when_their_supervisor_is_killed(database_url):
    with running_service(database_url, **TWO) as service:
        workers = child_pids(service.process.pid)
        service.process.kill()
        service.process.wait(timeout=10)
        assert wait_for(lambda: not any(is_running(pid) for pid in workers))
        # Nobody listens any more: the port binds without SO_REUSEPORT. (SO_REUSEADDR only
        # overlooks closed connections waiting out TIME_WAIT, never a listening socket.)
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", service.port))


def test_workers_that_cannot_bind_make_the_supervisor_give_up(database_url):
    port = free_port()
    with socket.socket() as taken, tempfile.TemporaryFile("w+") as output:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        process = subprocess.Popen(
            python_argv(["python", "-m", "service"]),
            cwd=ROOT,
            env=service_env(database_url, port, **TWO),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            exit_code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        output.seek(0)
        logs = output.read()
    assert exit_code == 1
    assert "giving up: workers keep failing to start" in logs
    assert "Traceback" not in logs
