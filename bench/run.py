"""make bench: webhook ingest throughput against its two baselines, on a durable PostgreSQL.

Starts its own PostgreSQL (fsync and synchronous_commit on) under var/bench/, then, with the
same pre-signed distinct Zoom events and the same wrk load, measures:
  (a) a bare aiohttp handler: verify the signature, parse the body, store nothing;
  (b) the same handler storing each event in its own transaction (INSERT ... ON CONFLICT);
  the service (python -m service, group commit) with one process (WEB_CONCURRENCY=1) and with
  two (WEB_CONCURRENCY=2), then an overload run at about twice the rate it sustained, then the
  service again, with one and with two processes, with 3 million events already stored.
After each storing run it checks in SQL that every event answered "stored" is there exactly
once, and that booking links and completions are right.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import hmac
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import psycopg

from devtools.devdb import DURABLE_SETTINGS, VAR, Cluster
from service.jobs.migrate import apply_migrations

ROOT = Path(__file__).resolve().parent.parent
WORK = VAR / "bench"
LUA = ROOT / "bench" / "webhook.lua"
SECRET = "bench-only-not-a-real-secret"
DATABASE = "bench"
EVENTS_PER_MEETING = 50
CONCURRENT_MEETINGS = 500
BOOKED_EVERY = 4  # one meeting in four has a paid booking; the rest stay orphans
BENCH_MEETING_BASE = 90_000_000_000  # prefilled events use 7xxxxxxxxxx, so the two never mix
# Durable as in production (fsync, synchronous_commit and full_page_writes on), with buffers
# sized as a production server's would be: the 128 MB default holds under a tenth of the 3M-event
# table and its indexes, so every random index insert (uuid primary key, dedupe key) would copy
# a page in from the OS cache. 1 GB is still a small fraction of this machine's memory.
# The WAL is sized as a production server's too. A new cluster has no WAL segments to reuse,
# so every 16 MB of WAL (about 10 000 events) means creating and zero-filling a new file while
# commits wait: 10-20 ms stalls of the whole group commit, measured, which a server in steady
# state does not have (checkpoints recycle old segments, and min_wal_size keeps 1 GB of them).
# The warm-up run below writes the WAL that the measured runs then reuse.
BENCH_PG_SETTINGS = {
    **DURABLE_SETTINGS,
    "shared_buffers": "1GB",
    "min_wal_size": "1GB",
    "max_wal_size": "4GB",
}
# With --pin, the server under test gets CPU 0 to itself; PostgreSQL, wrk and this script share
# the rest. In production the database and Zoom are other machines. On a 2-core box, left to
# itself, Linux's wake-affine scheduling keeps moving the server onto the core of the
# PostgreSQL backend that just answered it, so the two take turns on one core while the other
# idles: measured, identical service rounds then ranged from 5 400 to 8 100 events/s. By
# default nothing is pinned (what a user's VM gives, and the only way two server processes
# can use both cores); every run, the baselines included, gets the same layout.
SERVER_CPUS = {0}
TARGETS = {
    "vs_bare": 0.75,
    "vs_insert": 3.0,
    "p99_ms": 15.0,
    "prefilled_vs_bare": 0.6,
    "two_vs_one": 1.3,
}
# The runs of the service with several processes, and how many each has.
PROCESSES = {"service": 1, "service2": 2, "prefilled": 1, "prefilled2": 2, "overload": 1}


def main() -> int:
    args = parse_args()
    ensure_wrk()
    raise_open_files_limit()
    server_cpus = split_cpus(args)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    datadir = Path(args.datadir).resolve() if args.datadir else WORK / "pgdata"
    cluster = Cluster(datadir, BENCH_PG_SETTINGS)
    cluster.start()
    try:
        cluster.create_database(DATABASE)
        url = cluster.url(DATABASE)
        if args.before_migration:
            apply_migrations_before(url, args.before_migration)
        else:
            apply_migrations(url)
        return run_all(args, url, server_cpus, datadir)
    finally:
        cluster.stop()
        if not args.keep and not args.datadir:
            shutil.rmtree(datadir, ignore_errors=True)


def apply_migrations_before(url: str, migration_id: str) -> None:
    """Apply the migrations older than migration_id only: measure the schema before it."""
    from yoyo import get_backend, read_migrations

    from service.db import MIGRATIONS_DIR
    from service.jobs.migrate import yoyo_url

    backend = get_backend(yoyo_url(url))
    try:
        with backend.lock():
            for migration in backend.to_apply(read_migrations(str(MIGRATIONS_DIR))):
                if migration.id >= migration_id:
                    break
                backend.apply_one(migration)
    finally:
        backend.connection.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a), (b), service")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--overload-connections", type=int, default=4096)
    parser.add_argument("--prefill", type=int, default=3_000_000)
    parser.add_argument(
        "--only",
        default="",
        help="comma list of runs: bare,insert,service,service2,gunicorn2,overload,prefilled,"
        "prefilled2 (gunicorn2 only when named; it needs gunicorn installed)",
    )
    parser.add_argument("--keep", action="store_true", help="keep var/bench/pgdata")
    parser.add_argument(
        "--before-migration",
        default="",
        help="apply only the migrations older than this id (measure the schema before it)",
    )
    parser.add_argument(
        "--datadir",
        default="",
        help="PostgreSQL data directory to use and keep (prefilled once, reused by later runs)",
    )
    parser.add_argument("--no-warmup", action="store_true", help="measure from a cold database")
    parser.add_argument(
        "--wrk-priority",
        choices=sorted(WRK_PRIORITY),
        default="normal",
        help="wrk's scheduling priority (see WRK_PRIORITY); realtime needs root",
    )
    parser.add_argument(
        "--pin", action="store_true", help="the server alone on CPU 0, the rest elsewhere"
    )
    return parser.parse_args()


def split_cpus(args: argparse.Namespace) -> set[int] | None:
    """Keep this process (so PostgreSQL and wrk, started from it) off the server's CPUs."""
    available = os.sched_getaffinity(0)
    rest = available - SERVER_CPUS
    if not args.pin or not SERVER_CPUS < available or not rest:
        return None
    os.sched_setaffinity(0, rest)
    return SERVER_CPUS


def run_all(args: argparse.Namespace, url: str, server_cpus: set[int] | None, datadir: Path) -> int:
    bodies = args.duration * 30_000
    meetings = write_bodies(WORK, bodies, args.threads)
    print(f"{bodies} distinct signed events over {meetings} meetings written to {WORK}")
    only = set(filter(None, args.only.split(",")))
    results: dict[str, dict] = {}

    def wanted(name: str) -> bool:
        return not only or name in only

    load = {
        "duration": args.duration,
        "connections": args.connections,
        "threads": args.threads,
        "wrk": args.wrk_priority,
    }
    env = server_env(url)
    measure = functools.partial(measure_run, server_cpus=server_cpus, datadir=datadir)
    storing = ("service", "service2", "insert", "prefilled", "prefilled2")
    if not args.no_warmup and any(wanted(n) for n in storing):
        # Discarded: fills PostgreSQL's buffers and its WAL segments, so that the first measured
        # round does not pay for what later rounds get for free (see BENCH_PG_SETTINGS).
        measure("warm-up", SERVICE_CMD, env, url, load, meetings)
    # The three are measured in alternation, `rounds` times, and each keeps its median round:
    # on a machine shared with other work, that compares them under the same conditions.
    rounds: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        if wanted("bare"):
            bare = measure("bare", baseline_cmd("bare"), env, url, load, store=False)
            rounds.setdefault("bare", []).append(bare)
        if wanted("insert"):
            insert = measure("insert", baseline_cmd("insert"), env, url, load, meetings)
            rounds.setdefault("insert", []).append(insert)
        for name in ("service", "service2"):
            if wanted(name):
                run = measure(name, SERVICE_CMD, processes(env, name), url, load, meetings)
                rounds.setdefault(name, []).append(run)
        if "gunicorn2" in only:
            run = measure("gunicorn2", gunicorn_cmd(env, 2), env, url, load, meetings)
            rounds.setdefault("gunicorn2", []).append(run)
    for name, runs in rounds.items():
        runs_by_rate = sorted(runs, key=lambda r: r["events_per_s"])
        results[name] = dict(runs_by_rate[len(runs) // 2], rounds=[r["events_per_s"] for r in runs])
        results[name]["check_all"] = all(r.get("check", {"ok": True})["ok"] for r in runs)
    if wanted("overload"):
        sustained = results.get("service", {}).get("events_per_s") or 10_000
        rate = 2 * sustained
        connections = args.overload_connections
        overload = dict(load, connections=connections, delay_ms=round(connections * 1000 / rate))
        results["overload"] = measure("overload", SERVICE_CMD, env, url, overload, meetings)
        results["overload"]["offered_per_s"] = rate
    if wanted("prefilled") or wanted("prefilled2"):
        prefill(url, args.prefill)
        for name in ("prefilled", "prefilled2"):
            if wanted(name):
                run_env = processes(env, name)
                results[name] = measure(name, SERVICE_CMD, run_env, url, load, meetings)
                results[name]["prefilled_events"] = args.prefill
    (WORK / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return report(results, args, server_cpus)


SERVICE_CMD = [sys.executable, "-m", "service"]


def gunicorn_cmd(env: dict[str, str], workers: int) -> list[str]:
    """The same app under gunicorn's aiohttp worker (uvloop), `workers` processes."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "bench.gunicorn_app:app",
        "--worker-class",
        "aiohttp.GunicornUVLoopWebWorker",
        "--workers",
        str(workers),
        "--bind",
        f"{env['HOST']}:{env['PORT']}",
        "--backlog",
        "4096",
        "--graceful-timeout",
        "25",
    ]


def processes(env: dict[str, str], run: str) -> dict[str, str]:
    """The server's environment for a run: WEB_CONCURRENCY as PROCESSES says."""
    return dict(env, WEB_CONCURRENCY=str(PROCESSES[run]))


def baseline_cmd(mode: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "baseline.py"), mode]


def server_env(url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        ZOOM_WEBHOOK_SECRET=SECRET,
        INTERNAL_API_TOKENS="bench-only-" + os.urandom(8).hex(),
        HOST="127.0.0.1",
        PORT=str(free_port()),
        PYTHONPATH=str(ROOT),
    )
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


def measure_run(
    name, cmd, env, url, load, meetings=0, store=True, server_cpus=None, datadir=None
) -> dict:
    """Start the server, drive it with wrk, stop it, and check the rows it stored."""
    if store:
        reset_database(url, meetings)
    print(f"\n== {name}: {' '.join(Path(c).name for c in cmd)}  {load}", flush=True)
    log = open(WORK / f"{name}.log", "wb")
    pin = (lambda: os.sched_setaffinity(0, server_cpus)) if server_cpus else None
    server = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin
    )
    try:
        base = f"http://127.0.0.1:{env['PORT']}"
        wait_healthy(base, server)
        workers = int(env.get("WEB_CONCURRENCY", "1"))
        wait_listening(int(env["PORT"]), workers, server)
        if "gunicorn" in cmd:
            # One listening socket shared by its workers: wrk must not connect before both
            # accept, or the first to boot takes every connection.
            wait_for_children(server, 2)
        result = run_wrk(base, load, server.pid, datadir)
        result["peak_rss_mb"] = sum(peak_rss_mb(pid) for pid in process_tree(server.pid))
        result["processes"] = workers
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    seconds = result["duration_us"] / 1e6
    result["events_per_s"] = round(result["ok"] / seconds)
    result["requests_per_s"] = round(result["requests"] / seconds)
    # CPU time the service and its database spent per event answered 200, in microseconds.
    busy = result["cpu"]["server"] + result["cpu"]["postgres"]
    result["cpu_us_per_event"] = round(busy / max(result["events_per_s"], 1) * 1e6)
    if store:
        result["check"] = check_database(url, result, load)
    print_result(name, result)
    return result


def process_tree(pid: int) -> list[int]:
    """pid and its children (the workers of a server with WEB_CONCURRENCY > 1)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(int(c) for c in children)]


def wait_listening(port: int, sockets: int, server: subprocess.Popen) -> None:
    """Wait until `sockets` listening sockets hold the port: every worker can take connections.

    wrk opens its connections once and keeps them; one opened before a worker listens would
    never reach it.
    """
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}; see {WORK}/*.log")
        listening = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                listening += 1
        if listening >= sockets:
            return
        time.sleep(0.05)
    raise SystemExit(f"{sockets} listening sockets did not appear within 30 s")


def connections_per_process(server_pid: int, port: int) -> list[int]:
    """How many of the load's connections each serving process holds (workers, or the server)."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            established.add(fields[9])  # the socket's inode
    tree = process_tree(server_pid)
    serving = tree[1:] or tree
    counts = []
    for pid in serving:
        held = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in established:
                    held += 1
        except OSError:
            pass
        counts.append(held)
    return sorted(counts, reverse=True)


def wait_for_children(server: subprocess.Popen, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(process_tree(server.pid)) < count + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # the workers' app start-up (pool, writers) after the fork


def peak_rss_mb(pid: int) -> int:
    """The most memory the process has held at once (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def cpu_snapshot() -> tuple[float, dict[int, tuple[str, int, int]], list[int]]:
    """Per-process CPU ticks (comm, ppid, ticks) and the machine's (busy, total) ticks."""
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        procs[int(entry)] = (comm, int(fields[1]), int(fields[11]) + int(fields[12]))
    cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = cpu[3] + cpu[4]
    return time.monotonic(), procs, [sum(cpu) - idle, sum(cpu)]


def cpu_usage(before, after, server_pid: int, datadir: Path) -> dict[str, float]:
    """Cores used during the run: the server, our PostgreSQL, wrk, and everything else."""
    _, procs_a, (busy_a, total_a) = before
    _, procs_b, (busy_b, total_b) = after
    cores = os.cpu_count() or 1
    scale = cores / max(total_b - total_a, 1)
    postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
    used = {"server": 0.0, "postgres": 0.0, "wrk": 0.0}
    for pid, (comm, ppid, ticks) in procs_b.items():
        delta = ticks - procs_a.get(pid, (comm, ppid, 0))[2]
        if pid == server_pid or ppid == server_pid:  # the server or one of its workers
            used["server"] += delta * scale
        elif pid == postmaster or ppid == postmaster:
            used["postgres"] += delta * scale
        elif comm == "wrk":
            used["wrk"] += delta * scale
    machine = (busy_b - busy_a) * scale
    used["others"] = max(0.0, machine - sum(used.values()))
    used["machine"] = machine
    return {k: round(v, 2) for k, v in used.items()}


def realtime_priority() -> None:
    """Run wrk (in its child process) at real-time priority, above PostgreSQL's backends."""
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))


# wrk shares its core with PostgreSQL (see SERVER_CPUS). At normal priority it waits while a
# batch executes, so the load it offers drops exactly when the service has answers to give:
# the service then idles for want of requests, not for want of speed (in production, Zoom
# does not wait for our database). wrk sleeps in epoll between answers (a fifth to a third
# of a core here), so above PostgreSQL it takes what it needs and no more. Every run, the
# baselines included, gets the same priority. Measured in alternating rounds: the service
# +8 % (7 of 8 rounds), (a) unchanged within the noise.
WRK_PRIORITY = {"realtime": realtime_priority, "normal": None}


def run_wrk(base: str, load: dict, server_pid: int, datadir: Path) -> dict:
    """Run wrk; measure the CPU each party uses over the middle 60 % of the run."""
    env = dict(os.environ)
    if load.get("delay_ms"):
        env["BENCH_DELAY_MS"] = str(load["delay_ms"])
    cmd = [
        "wrk",
        f"-t{load['threads']}",
        f"-c{load['connections']}",
        f"-d{load['duration']}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        base,
        "--",
        str(WORK),
    ]
    wrk = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=WRK_PRIORITY.get(load["wrk"])
    )
    ready = 0
    while ready < load["threads"]:
        line = wrk.stdout.readline()
        if not line:
            break
        ready += line.startswith("BENCH_READY")
    time.sleep(load["duration"] * 0.2)
    before = cpu_snapshot()
    connections = connections_per_process(server_pid, int(base.rsplit(":", 1)[1]))
    time.sleep(load["duration"] * 0.6)
    cpu = cpu_usage(before, cpu_snapshot(), server_pid, datadir)
    out = wrk.communicate()[0]
    if wrk.returncode != 0:
        raise SystemExit(f"wrk failed ({wrk.returncode}):\n{out}")
    for line in out.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.removeprefix("BENCH_RESULT "))
            return dict(result, cpu=cpu, connections_per_process=connections)
    raise SystemExit(f"wrk printed no result:\n{out}")


def check_database(url: str, result: dict, load: dict) -> dict:
    """Exactly once, in SQL: no duplicates, no event answered "stored" missing, links right."""
    with psycopg.connect(url) as conn:
        rows, keys = conn.execute(
            "SELECT count(*), count(DISTINCT dedupe_key) FROM zoom_webhook_events "
            "WHERE zoom_meeting_id LIKE '9%'"
        ).fetchone()
        mislinked = conn.execute(
            "SELECT count(*) FROM zoom_webhook_events AS e "
            "LEFT JOIN bookings AS b ON b.zoom_meeting_id = e.zoom_meeting_id "
            "WHERE e.zoom_meeting_id LIKE '9%' AND e.booking_id IS DISTINCT FROM b.id"
        ).fetchone()[0]
        wrong_status = conn.execute(
            "SELECT count(*) FROM bookings AS b "
            "WHERE (b.status = 'completed') <> EXISTS (SELECT 1 FROM zoom_webhook_events AS e "
            "        WHERE e.booking_id = b.id AND e.event_type = 'meeting.ended')"
        ).fetchone()[0]
    stored = result["stored"]
    # wrk stops with up to `connections` requests in flight: those may be committed unanswered,
    # as may events answered 503 after their batch had started. Nothing else may be extra.
    unanswered_bound = load["connections"] + result["unavailable"]
    check = {
        "rows": rows,
        "answered_stored": stored,
        "answered_duplicate": result["duplicate"],
        "duplicated": rows - keys,
        "lost": max(0, stored - rows),
        "committed_unanswered": rows - stored,
        "mislinked": mislinked,
        "wrong_booking_status": wrong_status,
    }
    check["ok"] = (
        check["duplicated"] == 0
        and check["lost"] == 0
        and 0 <= check["committed_unanswered"] <= unanswered_bound
        and (result["wrapped"] > 0 or result["duplicate"] == 0)
        and mislinked == 0
        and wrong_status == 0
    )
    return check


def reset_database(url: str, meetings: int) -> None:
    """Remove the previous run's events and bookings, then book one meeting in four."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM zoom_webhook_events WHERE zoom_meeting_id LIKE '9%'")
        conn.execute("DELETE FROM bookings")
        conn.execute(
            "INSERT INTO bookings (coach_id, athlete_id, status, zoom_meeting_id) "
            "SELECT gen_random_uuid(), gen_random_uuid(), 'paid', (%s::bigint + m)::text "
            "  FROM generate_series(0, %s - 1, %s) AS m",
            (BENCH_MEETING_BASE, meetings, BOOKED_EVERY),
        )
        conn.execute("VACUUM ANALYZE zoom_webhook_events")
        conn.execute("VACUUM ANALYZE bookings")
        conn.execute("CHECKPOINT")


def prefill(url: str, count: int) -> None:
    """Store count events of past meetings (years of them), in SQL, a million rows at a time.

    Rows already there (a kept --datadir) count: a second run adds only what is missing.
    """
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute(
            "SELECT count(*) FROM zoom_webhook_events WHERE zoom_meeting_id LIKE '7%'"
        ).fetchone()[0]
        print(f"\n== prefilling {count} events ({have} already stored) ...", flush=True)
        for first in range(have + 1, count + 1, PREFILL_CHUNK):
            last = min(first + PREFILL_CHUNK - 1, count)
            conn.execute(PREFILL_SQL, {"first": first, "last": last, "count": count})
            print(f"   {last} rows, {time.monotonic() - started:.0f} s", flush=True)
        if have < count:
            conn.execute("VACUUM ANALYZE zoom_webhook_events")
            conn.execute("CHECKPOINT")
        size = conn.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) "
            "  FROM pg_partition_tree('zoom_webhook_events')"
        ).fetchone()[0]
    print(f"   prefilled in {time.monotonic() - started:.0f} s, table and indexes: {size}")


PREFILL_CHUNK = 1_000_000
# One event every 10 s for count events, the newest now: 3 M span a year, 30 M ten years.
# Small raw bodies (the shape of Zoom's, few fields): the table's size is in its rows and
# indexes, and a smaller prefill is a quicker one.
PREFILL_SQL = """
INSERT INTO zoom_webhook_events
       (event_type, zoom_meeting_id, meeting_uuid, occurred_at, participant_name,
        participant_email, participant_user_id, dedupe_key, raw_data)
SELECT (ARRAY['meeting.participant_joined', 'meeting.participant_left',
              'meeting.started', 'meeting.ended'])[1 + g %% 4],
       (70000000000 + g / 50)::text,
       'prefill-' || (g / 50) || '==',
       now() - make_interval(secs => (%(count)s - g) * 10),
       'Person ' || g %% 50,
       'person' || g %% 50 || '@example.com',
       'user-' || g %% 50,
       sha256(('prefill:' || g)::bytea),
       jsonb_build_object(
           'event', 'meeting.participant_joined',
           'event_ts', 1700000000000 + g,
           'payload', jsonb_build_object(
               'object', jsonb_build_object(
                   'id', 70000000000 + g / 50,
                   'uuid', 'prefill-' || (g / 50) || '==',
                   'participant', jsonb_build_object(
                       'user_name', 'Person ' || g %% 50,
                       'id', 'user-' || g %% 50))))
  FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""


def write_bodies(directory: Path, count: int, threads: int) -> int:
    """Write count distinct signed events, split into one file per wrk thread."""
    timestamp = str(int(time.time()))
    prefix = f"v0:{timestamp}:".encode()
    key = SECRET.encode()
    files = [open(directory / f"bodies-{n}.txt", "wb") for n in range(threads)]
    try:
        for n in range(count):
            body = orjson.dumps(zoom_event(n))
            signature = "v0=" + hmac.new(key, prefix + body, hashlib.sha256).hexdigest()
            files[n % threads].write(f"{timestamp}\t{signature}\t".encode() + body + b"\n")
    finally:
        for f in files:
            f.close()
    block = CONCURRENT_MEETINGS * EVENTS_PER_MEETING
    return -(-count // block) * CONCURRENT_MEETINGS


def zoom_event(n: int) -> dict:
    """Event n: each meeting starts, has 48 joins and leaves (24 people), then ends.

    Meetings run CONCURRENT_MEETINGS at a time, their events interleaved, as on the hour.
    """
    block, rest = divmod(n, CONCURRENT_MEETINGS * EVENTS_PER_MEETING)
    step, slot = divmod(rest, CONCURRENT_MEETINGS)
    meeting = block * CONCURRENT_MEETINGS + slot
    meeting_id = BENCH_MEETING_BASE + meeting
    event_ts = 1764169200000 + n
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event_ts // 1000))
    obj = {
        "id": meeting_id,
        "uuid": f"bench{meeting:08d}AiAiAiiAii==",
        "host_id": "x1yCzABCDEfg23HiJKl4mN",
        "topic": "TeachTape session",
        "type": 2,
        "start_time": "2025-11-26T15:00:00Z",
        "timezone": "UTC",
        "duration": 60,
    }
    if step == 0:
        event = "meeting.started"
    elif step == EVENTS_PER_MEETING - 1:
        event, obj["end_time"] = "meeting.ended", when
    else:
        person = (step - 1) // 2
        event = "meeting.participant_joined" if step % 2 else "meeting.participant_left"
        obj["participant"] = {
            "user_id": str(16778240 + n),
            "user_name": f"Athlete {person}",
            "id": f"iFxeBPYun6SAiWUzB{person:04d}",
            "participant_uuid": f"uuid-{meeting}-{person}",
            ("join_time" if step % 2 else "leave_time"): when,
            "email": f"athlete{person}@example.com",
            "participant_user_id": f"iFxeBPYun6SAiWUzB{person:04d}",
        }
    return {
        "event": event,
        "event_ts": event_ts,
        "payload": {"account_id": "AAAAAABBBB", "object": obj},
    }


def report(results: dict, args: argparse.Namespace, server_cpus: set[int] | None) -> int:
    print("\n" + "=" * 78)
    print(f"machine: {machine()}")
    if server_cpus:
        rest = sorted(os.sched_getaffinity(0))
        print(f"CPUs: server on {sorted(server_cpus)}; PostgreSQL and wrk on {rest}")
    else:
        print("CPUs: not pinned, every process may run on any CPU")
    print(
        f"load: wrk ({args.wrk_priority} priority), {args.threads} thread(s), "
        f"{args.connections} connections, {args.duration} s per run, 127.0.0.1"
    )
    print(
        f"{'run':<40}{'events/s':>9}{'p50 ms':>7}{'p99 ms':>7}{'max ms':>7}{'errors':>7}"
        f"{'503':>6}{'RSS MiB':>8}{'CPU us/ev':>10}   CPU cores: server/pg/wrk/others"
    )
    prefilled = f"{args.prefill / 1e6:g}M events prefilled"
    labels = {
        "bare": "(a) verify+parse, no storage",
        "insert": "(b) per-request INSERT",
        "service": "service, 1 process",
        "service2": "service, 2 processes",
        "gunicorn2": "gunicorn aiohttp worker, 2 processes",
        "prefilled": f"service, 1 process, {prefilled}",
        "prefilled2": f"service, 2 proc., {prefilled}",
        "overload": "overload",
    }
    for name, label in labels.items():
        if name in results:
            r = results[name]
            if name == "overload":
                label = f"overload ({r['offered_per_s']}/s offered, {r['requests']} req)"
            errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
            errors += r["other"]
            per_event = r["cpu_us_per_event"] if name not in ("bare",) else "-"
            print(
                f"{label:<40}{r['events_per_s']:>9}{r['p50_us'] / 1000:>7.1f}"
                f"{r['p99_us'] / 1000:>7.1f}{r['max_us'] / 1000:>7.1f}{errors:>7}"
                f"{r['unavailable']:>6}{r['peak_rss_mb']:>8}{per_event:>10}   "
                f"{cpu_columns(r['cpu'])}"
            )
            if len(r.get("rounds", [])) > 1:
                print(f"{'':<4}rounds (events/s): {r['rounds']}, median shown")
    verdicts = []
    service, bare, insert = (results.get(k) for k in ("service", "bare", "insert"))
    two = results.get("service2")
    if service and bare:
        verdicts.append(ratio("service / (a)", service, bare, TARGETS["vs_bare"]))
    if service and insert:
        verdicts.append(ratio("service / (b)", service, insert, TARGETS["vs_insert"]))
    if two and service:
        verdicts.append(ratio("2 processes / 1", two, service, TARGETS["two_vs_one"]))
    if two and bare:
        ratio("2 processes / (a)", two, bare, None)
    if two and results.get("gunicorn2"):
        ratio("gunicorn, 2 processes / ours, 2", results["gunicorn2"], two, None)
    for name in ("prefilled", "prefilled2"):
        if results.get(name) and bare:
            label = f"{labels[name]} / (a)"
            verdicts.append(ratio(label, results[name], bare, TARGETS["prefilled_vs_bare"]))
    for name in ("service", "service2"):
        if name in results:
            p99 = results[name]["p99_us"] / 1000
            good = p99 <= TARGETS["p99_ms"]
            verdicts.append(good)
            print(
                f"{labels[name]}: p99 at {args.connections} connections: {p99:.1f} ms "
                f"(target <= {TARGETS['p99_ms']:.0f})  {'ok' if good else 'MISSED'}"
            )
    if results.get("overload"):
        r = results["overload"]
        good = r["max_us"] < 3_000_000 and r["timeouts"] == 0
        verdicts.append(good)
        print(
            f"overload: {r['unavailable']} answered 503 ({r['retry_after']} with Retry-After), "
            f"{r['ok']} answered 200, slowest answer {r['max_us'] / 1000:.0f} ms "
            f"(must be < 3000)  {'ok' if good else 'MISSED'}"
        )
    for name, r in results.items():
        if "check" in r:
            c = r["check"]
            verdicts.append(c["ok"] and r.get("check_all", True))
            print(
                f"exactly-once [{name}]: {c['rows']} rows, {c['answered_stored']} answered "
                f"stored, lost {c['lost']}, duplicated {c['duplicated']}, committed but "
                f"unanswered {c['committed_unanswered']}, mislinked {c['mislinked']}, "
                f"wrong booking status {c['wrong_booking_status']}  "
                f"{'ok' if c['ok'] else 'FAILED'}"
            )
    print(f"results: {WORK / 'results.json'}")
    return 0 if all(verdicts) else 1


def cpu_columns(cpu: dict[str, float]) -> str:
    return "/".join(f"{cpu[k]:.2f}" for k in ("server", "postgres", "wrk", "others"))


def ratio(label: str, top: dict, bottom: dict, target: float | None) -> bool:
    """Print (and judge, given a target) the ratio of the medians, then each round's."""
    value = top["events_per_s"] / max(bottom["events_per_s"], 1)
    good = target is None or value >= target
    line = f"{label}: {value:.2f}"
    if target is not None:
        line += f" (target >= {target})  {'ok' if good else 'MISSED'}"
    pairs = list(zip(top.get("rounds", []), bottom.get("rounds", []), strict=False))
    if len(pairs) > 1:
        line += "; round by round " + ", ".join(f"{t / max(b, 1):.2f}" for t, b in pairs)
    print(line)
    return good


def print_result(name: str, r: dict) -> None:
    print(
        f"   {r['events_per_s']} events/s (200), {r['requests_per_s']} req/s, "
        f"p50 {r['p50_us'] / 1000:.1f} ms, p99 {r['p99_us'] / 1000:.1f} ms, "
        f"max {r['max_us'] / 1000:.0f} ms, 503: {r['unavailable']}, other: {r['other']}, "
        f"server peak RSS {r['peak_rss_mb']} MiB, "
        f"socket errors/timeouts: {r['connect_errors'] + r['read_errors'] + r['write_errors']}"
        f"/{r['timeouts']}" + (f", check: {r['check']}" if "check" in r else ""),
        flush=True,
    )
    print(f"   CPU used, in cores of {os.cpu_count()}: {r['cpu']}", flush=True)
    print(f"   connections held per serving process: {r['connections_per_process']}", flush=True)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs, {model}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def wait_healthy(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}; see {WORK}/*.log")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not become healthy within 30 s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        raise SystemExit("error: wrk is missing; install it with `sudo apt-get install -y wrk`")
    print("installing wrk (apt-get install -y wrk) ...", flush=True)
    if subprocess.run(["apt-get", "install", "-y", "wrk"], check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)


def raise_open_files_limit() -> None:
    """The overload run opens a thousand connections; servers and wrk inherit the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))


if __name__ == "__main__":
    sys.exit(main())
