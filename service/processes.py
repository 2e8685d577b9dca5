"""WEB_CONCURRENCY > 1: worker processes serving one port, started, watched and stopped here.

Each worker is a forked copy of this process running the whole service (its own event loop,
pool and group commit). Each binds the port with SO_REUSEPORT, so the kernel spreads new
connections over their listening sockets; this parent never touches a connection. It forwards
SIGTERM or SIGINT to every worker (each drains as a single process does), replaces a worker
that dies, and gives up when workers keep dying right after they start (the port is taken,
say), instead of restarting them for ever.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("service.processes")

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
WATCHED_SIGNALS = STOP_SIGNALS | {signal.SIGCHLD}
# A worker that dies sooner than this after its start failed to start; one that lived longer
# crashed, and its replacement starts at once.
MIN_UPTIME_SECONDS = 5.0
# Failed starts in a row (no worker outliving MIN_UPTIME_SECONDS in between) before giving up.
MAX_FAILED_STARTS = 5
# The wait before replacing a worker that failed to start doubles up to this.
MAX_RESTART_DELAY_SECONDS = 10.0
# Linux prctl(2): the signal a process receives when its parent dies.
PR_SET_PDEATHSIG = 1


@dataclass
class Worker:
    slot: int
    pid: int
    started: float


class Supervisor:
    """Run `count` workers, each `serve()` in a forked child; `run()` returns the exit code."""

    def __init__(self, count: int, serve: Callable[[], int], *, stop_timeout: float) -> None:
        self.count = count
        self.serve = serve
        # After SIGTERM, how long workers may take to drain before they are killed.
        self.stop_timeout = stop_timeout
        self.workers: dict[int, Worker] = {}
        self.failed_starts = 0
        self.failed = False
        # Slots waiting to be refilled, with the monotonic time at which to start them.
        self.restart_at: dict[int, float] = {}
        # The signal mask before run() blocked the watched signals; workers get it back.
        self.previous_mask: set[int | signal.Signals] = set()

    def run(self) -> int:
        # The signals wait in the kernel until sigtimedwait() takes them: no handler runs at
        # a random point of this loop, and a SIGCHLD is never lost between two checks.
        self.previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED_SIGNALS)
        try:
            log.info("starting %d worker processes", self.count)
            for slot in range(self.count):
                self.start(slot)
            stop_signal = self.watch()
            return self.stop(stop_signal)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.previous_mask)

    def start(self, slot: int) -> None:
        """Fork a worker for slot; in the child, serve and exit."""
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(self.child(parent))
        self.workers[pid] = Worker(slot, pid, time.monotonic())
        log.info("worker %d started", slot, extra={"worker_pid": pid})

    def child(self, parent: int) -> int:
        code = 1
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.previous_mask)
            stop_with_parent()
            if os.getppid() != parent:  # the supervisor died before prctl() took effect
                return 1
            code = self.serve()
        except OSError as exc:  # the port cannot be bound: one line, the supervisor decides
            log.error("worker could not serve: %s", exc)
        except BaseException:
            log.exception("worker process failed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return code

    def watch(self) -> signal.Signals:
        """Keep `count` workers alive until a stop signal arrives; return that signal."""
        while True:
            timeout = 1.0
            if self.restart_at:
                timeout = max(0.0, min(self.restart_at.values()) - time.monotonic())
            info = signal.sigtimedwait(WATCHED_SIGNALS, timeout)
            if info is not None and info.si_signo in STOP_SIGNALS:
                return signal.Signals(info.si_signo)
            self.reap_and_replace()
            if self.failed:
                return signal.SIGTERM

    def reap_and_replace(self) -> None:
        now = time.monotonic()
        for pid, status in reap():
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            lived = now - worker.started
            quick = lived < MIN_UPTIME_SECONDS
            self.failed_starts = self.failed_starts + 1 if quick else 0
            delay = 0.0
            if quick:
                delay = min(0.5 * 2 ** (self.failed_starts - 1), MAX_RESTART_DELAY_SECONDS)
            self.failed = self.failed or self.failed_starts >= MAX_FAILED_STARTS
            log.error(
                "worker %d %s after %.1f s; %s",
                worker.slot,
                describe_exit(status),
                lived,
                "giving up: workers keep failing to start"
                if self.failed
                else f"starting a replacement in {delay:.1f} s",
                extra={"worker_pid": pid},
            )
            self.restart_at[worker.slot] = now + delay
        if self.failed:
            return
        if any(now - w.started >= MIN_UPTIME_SECONDS for w in self.workers.values()):
            self.failed_starts = 0
        for slot, when in list(self.restart_at.items()):
            if when <= now:
                del self.restart_at[slot]
                self.start(slot)

    def stop(self, stop_signal: signal.Signals) -> int:
        """Pass the signal on to every worker, wait for them to drain; 0 when all exited 0."""
        if not self.failed:
            log.info("%s: stopping %d worker processes", stop_signal.name, len(self.workers))
        clean = not self.failed
        for pid in self.workers:
            signal_process(pid, stop_signal)
        deadline = time.monotonic() + self.stop_timeout
        while self.workers:
            left = deadline - time.monotonic()
            if left <= 0:
                for pid in self.workers:
                    log.error("worker did not stop in time; killing it", extra={"worker_pid": pid})
                    signal_process(pid, signal.SIGKILL)
                deadline = time.monotonic() + self.stop_timeout
                clean = False
            signal.sigtimedwait(WATCHED_SIGNALS, max(0.0, min(left, 1.0)))
            for pid, status in reap():
                worker = self.workers.pop(pid, None)
                if worker is not None and status != 0:
                    clean = False
                    log.error(
                        "worker %d %s while stopping",
                        worker.slot,
                        describe_exit(status),
                        extra={"worker_pid": pid},
                    )
        log.info("stopped")
        return 0 if clean else 1


def reap() -> list[tuple[int, int]]:
    """Every child that has exited, as (pid, wait status), without blocking."""
    exited: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return exited
        if pid == 0:
            return exited
        exited.append((pid, status))


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


def signal_process(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def stop_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM when the supervisor dies (even by SIGKILL).

    Otherwise a killed supervisor would leave its workers serving the port unsupervised.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
