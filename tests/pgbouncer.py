"""PgBouncer (Debian's package) in transaction mode in front of the test server, for tests.

Started by the tests that need it, on a free 127.0.0.1 port; installed with apt-get when it is
missing and we are root. Where it cannot be had, those tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from devtools.devdb import system_user
from tests.processes import free_port

PGBOUNCER_PATHS = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


class PgBouncerUnavailable(Exception):
    """PgBouncer is not installed and cannot be installed here; the message says why."""


def find_pgbouncer() -> str:
    """The pgbouncer binary, installing Debian's package first when we can."""
    found = shutil.which("pgbouncer") or next(
        (p for p in PGBOUNCER_PATHS if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PgBouncerUnavailable(
            "pgbouncer is not installed and this is not a root Debian machine to install it "
            "on (`sudo apt-get install -y pgbouncer`)"
        )
    install = ["apt-get", "install", "-y", "-qq", "pgbouncer"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": False}
    if subprocess.run(install, **quiet).returncode != 0:  # type: ignore[call-overload]
        subprocess.run(["apt-get", "update", "-qq"], **quiet)  # type: ignore[call-overload]
        if subprocess.run(install, **quiet).returncode != 0:  # type: ignore[call-overload]
            raise PgBouncerUnavailable("`apt-get install -y pgbouncer` failed")
    for path in PGBOUNCER_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise PgBouncerUnavailable("pgbouncer was installed but its binary is not where expected")


def server_settings(database_url: str) -> tuple[str, str, int, str, str]:
    """(host or socket directory, user, port, password, database) of a postgresql:// URL."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "/var/run/postgresql"])[0]
    port = int(query.get("port", [parts.port or 5432])[0])
    user = unquote(parts.username or "postgres")
    password = unquote(parts.password or "")
    return host, user, port, password, parts.path.lstrip("/")


@contextlib.contextmanager
def running_pgbouncer(database_url: str, pool_size: int = 40) -> Iterator[str]:
    """PgBouncer in transaction mode before database_url's server; yields the URL through it."""
    binary = find_pgbouncer()
    host, user, port, password, database = server_settings(database_url)
    listen_port = free_port()
    # PgBouncer refuses to run as root: as root, run it as the test PostgreSQL's own user,
    # which can also reach that server's socket directory.
    run_as = system_user()
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as workdir:
        work = Path(workdir)
        server = f"host={host} port={port} user={user}" + (
            f" password={password}" if password else ""
        )
        (work / "userlist.txt").write_text(f'"{user}" "{password}"\n')
        (work / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = {server}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {listen_port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {work / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 1000\n"
            "server_reset_query =\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"pidfile = {work / 'pgbouncer.pid'}\n"
        )
        drop: dict[str, object] = {}
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            for path in (work, *work.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            drop = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        log = open(work / "pgbouncer.log", "w+")
        process = subprocess.Popen(
            [binary, str(work / "pgbouncer.ini")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work,
            **drop,  # type: ignore[arg-type]
        )
        try:
            wait_listening(listen_port, process, work / "pgbouncer.log")
            yield f"postgresql://{user}@127.0.0.1:{listen_port}/{database}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen within 15 s:\n{log.read_text()}")
