"""Embedded PostgreSQL for development: `make run` and `make test` when DATABASE_URL is unset.

Binaries come from the `pgserver` wheel (a dev dependency that ships PostgreSQL 16), so a machine
with only Python can run the service; a system PostgreSQL (pg_ctl on PATH or under
/usr/lib/postgresql) is the fallback, and PG_BINDIR overrides both. The cluster listens only on
a Unix socket inside its data directory, so several checkouts never fight over a port.

We take only pgserver's binaries, not its server API (pgserver.get_server), which does not fit:
it starts the server with fixed options (no fsync=off for tests, no bench settings, no
max_connections before the first start), gives pg_ctl 10 s to start on a busy machine, and,
run as root, makes every parent directory of the data directory group- and world-readable and
creates a login user; here the parents get o+x only and an existing `postgres` user is used.

    python -m devtools.devdb run                 # var/pgdata, migrate, dev secrets, serve
    python -m devtools.devdb test -- CMD ...     # throwaway cluster, DATABASE_URL set for CMD
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
DEV_DATABASE = "zoom_session_logs"
# initdb and postgres refuse to run as root; as root we run them as this user.
SYSTEM_USER_CANDIDATES = ("postgres", "pgserver")

DURABLE_SETTINGS: dict[str, str] = {}
# A throwaway test cluster need not survive a power cut.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def find_bindir() -> Path:
    """Locate initdb/pg_ctl: PG_BINDIR, then the pgserver wheel, then a system PostgreSQL."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    # Locate the wheel without importing it: its import has side effects we do not need.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise SystemExit(
        "error: no PostgreSQL binaries found; run `make install` (it brings the pgserver wheel), "
        "install PostgreSQL, or set DATABASE_URL to a running server"
    )


def system_user() -> str | None:
    """The user to run PostgreSQL as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in SYSTEM_USER_CANDIDATES:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pgserver"],
        check=True,
    )
    return "pgserver"


def make_traversable(path: Path) -> None:
    """Let the PostgreSQL user reach path: add o+x (never read) to each parent directory."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def socket_url(socket_dir: Path, database: str) -> str:
    """The DSN of a database on a cluster listening on a Unix socket in socket_dir."""
    return f"postgresql://postgres@/{database}?host={quote(str(socket_dir), safe='/')}"


def dev_database_url() -> str:
    """Where `make run` keeps its data: the DSN of its embedded cluster's database."""
    return socket_url((VAR / "pgdata").resolve(), DEV_DATABASE)


@dataclass
class Cluster:
    datadir: Path
    settings: dict[str, str]

    def __post_init__(self) -> None:
        self.datadir = self.datadir.resolve()
        self.bindir = find_bindir()
        self.user = system_user()

    @property
    def socket_dir(self) -> Path:
        return self.datadir

    def url(self, database: str) -> str:
        return socket_url(self.socket_dir, database)

    def _as_postgres_user(self) -> dict:
        """subprocess arguments that drop root: user, its own group, and no root groups."""
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _run(self, *args: str, quiet: bool = True) -> None:
        out = subprocess.DEVNULL if quiet else None
        subprocess.run(args, check=True, stdout=out, cwd="/", **self._as_postgres_user())

    def start(self) -> None:
        """Initialise the data directory when new, then start the server and wait for it."""
        if self.user is not None:
            make_traversable(self.bindir)
        if not (self.datadir / "PG_VERSION").exists():
            self.datadir.mkdir(parents=True, exist_ok=True)
            self.datadir.chmod(0o700)
            if self.user is not None:
                make_traversable(self.datadir.parent)
                entry = pwd.getpwnam(self.user)
                os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        if self.is_running():
            return
        options = [f"-k {self.socket_dir}", "-c listen_addresses=''", "-c max_connections=200"]
        options += [f"-c {key}={value}" for key, value in self.settings.items()]
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.datadir / "server.log"),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )

    def is_running(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "status"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            check=False,
            **self._as_postgres_user(),
        )
        return result.returncode == 0

    def stop(self) -> None:
        if self.is_running():
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"
            )

    def create_database(self, name: str) -> None:
        """Create the database when it does not exist yet."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')


def dev_secrets() -> dict[str, str]:
    """Webhook secret and internal token for local use, generated once and kept under var/."""
    path = VAR / "dev-secrets.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key] = value
    if not values.get("ZOOM_WEBHOOK_SECRET") or not values.get("INTERNAL_API_TOKENS"):
        values = {
            "ZOOM_WEBHOOK_SECRET": "dev-only-" + secrets.token_hex(16),
            "INTERNAL_API_TOKENS": "dev-only-" + secrets.token_hex(16),
        }
        VAR.mkdir(exist_ok=True)
        path.write_text(
            "# DEV ONLY: generated by `make run` for this checkout; never use in production.\n"
            + "".join(f"{k}={v}\n" for k, v in values.items())
        )
        path.chmod(0o600)
    return values


def signed_example(url: str, secret: str) -> str:
    """A ready-to-paste curl that posts a signed meeting.started event."""
    from service.webhook.signature import expected_signature

    now = int(time.time())
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    body = orjson.dumps(
        {
            "event": "meeting.started",
            "event_ts": now * 1000,
            "payload": {
                "account_id": "dev-account",
                "object": {
                    "id": "85746065432",
                    "uuid": f"dev-{uuid.uuid4().hex[:12]}==",
                    "host_id": "dev-host",
                    "topic": "TeachTape session",
                    "type": 2,
                    "start_time": started,
                    "duration": 60,
                },
            },
        }
    ).decode()
    signature = expected_signature(secret, str(now), body.encode())
    return (
        f"curl -sS -X POST {url}/api/zoom/webhook \\\n"
        f"  -H 'content-type: application/json' \\\n"
        f"  -H 'x-zm-request-timestamp: {now}' \\\n"
        f"  -H 'x-zm-signature: {signature}' \\\n"
        f"  --data-binary '{body}'"
    )


def run(args: argparse.Namespace) -> int:
    """Serve like production, on an embedded PostgreSQL when DATABASE_URL is unset."""
    from service.jobs.migrate import apply_migrations

    env = dict(os.environ)
    cluster = None
    if not env.get("DATABASE_URL"):
        cluster = Cluster(VAR / "pgdata", DURABLE_SETTINGS)
        cluster.start()
        cluster.create_database(DEV_DATABASE)
        env["DATABASE_URL"] = cluster.url(DEV_DATABASE)
    for key, value in dev_secrets().items():
        env.setdefault(key, value)
    standin = None
    try:
        standin = start_zoom_standin(env)
        applied = apply_migrations(env["DATABASE_URL"])
        print(f"migrations applied: {', '.join(applied) or 'none pending'}")
        host = env.get("HOST") or "127.0.0.1"
        env["HOST"] = host
        base = f"http://{host}:{env.get('PORT') or 8080}"
        secret = env["ZOOM_WEBHOOK_SECRET"].split(",")[0].strip()
        database = env["DATABASE_URL"] if cluster else "(DATABASE_URL from the environment)"
        print(
            f"\nDEV ONLY secrets (kept in var/dev-secrets.env):\n"
            f"  ZOOM_WEBHOOK_SECRET={env['ZOOM_WEBHOOK_SECRET']}\n"
            f"  INTERNAL_API_TOKENS={env['INTERNAL_API_TOKENS']}\n"
            f"\nDatabase: {database}\n"
            + (f"  psql '{env['DATABASE_URL']}'\n" if cluster else "")
            + f"\nServing on {base}. A signed example event (valid for 2 hours):\n\n"
            f"{signed_example(base, secret)}\n",
            flush=True,
        )
        service = subprocess.Popen([sys.executable, "-m", "service"], env=env, cwd=ROOT)
        _forward_signals(service)
        return service.wait()
    finally:
        if standin is not None:
            standin.terminate()
            standin.wait(timeout=10)
        if cluster is not None:
            cluster.stop()


ZOOM_CREDENTIALS = ("ZOOM_ACCOUNT_ID", "ZOOM_CLIENT_ID", "ZOOM_CLIENT_SECRET", "ZOOM_HOST_USER")


def start_zoom_standin(env: dict[str, str]) -> subprocess.Popen[bytes] | None:
    """Start the local Zoom stand-in and point env at it, unless Zoom credentials are set."""
    from devtools.zoom_standin import DEFAULT_PORT, credentials

    configured = [name for name in ZOOM_CREDENTIALS if env.get(name)]
    if configured:
        print(f"Zoom API: real Zoom, with {', '.join(configured)} from the environment.")
        return None
    port = int(env.get("ZOOM_STANDIN_PORT") or DEFAULT_PORT)
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.zoom_standin", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not _listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(
                f"error: the local Zoom stand-in did not start on {url} (port taken? set "
                "ZOOM_STANDIN_PORT, or configure real Zoom credentials)"
            )
        time.sleep(0.1)
    env.update(credentials(url))
    print(
        f"Zoom API: no Zoom credentials configured, so the service uses the local Zoom stand-in "
        f"at {url} (DEV ONLY: devtools/zoom_standin.py, dev-only credentials; its meetings "
        f"exist nowhere else). Set {', '.join(ZOOM_CREDENTIALS)} to use real Zoom.\n"
        "Try `make demo` in another terminal: a booking, a session with lost deliveries, "
        "reconciliation and the picture."
    )
    return process


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test(args: argparse.Namespace) -> int:
    """Run a command against DATABASE_URL, or against a throwaway cluster started for it."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("usage: python -m devtools.devdb test -- COMMAND ...", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if env.get("DATABASE_URL"):
        return subprocess.call(command, env=env)
    VAR.mkdir(exist_ok=True)
    cluster = Cluster(VAR / f"pg-test-{os.getpid()}", FAST_SETTINGS)
    try:
        cluster.start()
        env["DATABASE_URL"] = cluster.url("postgres")
        process = subprocess.Popen(command, env=env)
        _forward_signals(process)
        return process.wait()
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(cluster.datadir, ignore_errors=True)


def _forward_signals(process: subprocess.Popen) -> None:
    def forward(signum, _frame):
        process.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.devdb",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("run", help="serve on an embedded PostgreSQL (make run)").set_defaults(func=run)
    test_parser = sub.add_parser("test", help="run a command with DATABASE_URL set (make test)")
    test_parser.add_argument("command", nargs=argparse.REMAINDER)
    test_parser.set_defaults(func=test)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
