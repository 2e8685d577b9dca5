"""python -m service: serve (configured from the environment; never migrates).

python -m service migrate: apply pending migrations to DATABASE_URL and exit.
python -m service retention --days N: strip participant details from older events (daily job).
python -m service partitions: create the months ahead of zoom_webhook_events (daily job).
python -m service reconcile [--booking ID] [--days N]: recover what webhooks missed (periodic job).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from typing import TYPE_CHECKING

import asyncpg

from service.config import Config, ConfigError, database_url_from_env

if TYPE_CHECKING:
    from aiohttp import web

# On SIGTERM the server stops accepting at once, then gives requests in flight up to this long
# to finish before the cleanup contexts flush pending writes and close the pool. Webhooks take
# milliseconds; an accept may spend Zoom's whole 20 s budget (cutting it short could leave a
# meeting at Zoom without its booking). Only the slowest request waits this long; the process
# exits as soon as the last one is answered. Give the container a stop timeout of 30 s.
SHUTDOWN_TIMEOUT_SECONDS = 25.0
# On the hour Zoom opens many connections at once; 128 pending (the default) drops some.
LISTEN_BACKLOG = 4096


def serve() -> int:
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from service.http.access_log import configure_logging

    configure_logging(os.environ.get("LOG_LEVEL", "").strip() or "INFO")
    if config.missing_zoom_api_variables:
        logging.getLogger("service").warning(
            "accepting booking requests is disabled until %s are set",
            ", ".join(config.missing_zoom_api_variables),
        )
    if config.web_concurrency == 1:
        return serve_in_this_process(config)
    from service.processes import Supervisor

    # Whatever start-up made is shared with the workers page by page until one writes to it.
    gc.freeze()
    supervisor = Supervisor(
        config.web_concurrency,
        lambda: serve_in_this_process(config, reuse_port=True),
        # Each worker gives its requests SHUTDOWN_TIMEOUT_SECONDS; then a little for cleanup.
        stop_timeout=SHUTDOWN_TIMEOUT_SECONDS + 5,
    )
    return supervisor.run()


def serve_in_this_process(config: Config, *, reuse_port: bool = False) -> int:
    """Serve until SIGTERM or SIGINT, then drain; reuse_port lets sibling workers share the port."""
    from aiohttp import web

    from service.app import create_app
    from service.http.access_log import ACCESS_LINES

    try:
        import uvloop
    except ImportError:  # not on every platform; asyncio's own loop works, only slower
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = create_app(config)
    app.on_startup.append(tune_garbage_collection)  # after the pool and the writers exist
    # access_log=None: service.http.access_log writes one JSON line per request, not aiohttp.
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        print=None,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        backlog=LISTEN_BACKLOG,
        reuse_port=reuse_port or None,
    )
    ACCESS_LINES.flush()
    logging.getLogger("service").info("stopped")
    return 0


# Collect the youngest objects after 50 000 net allocations, not 700: requests waiting for
# their batch keep thousands of objects alive, and under overload walking them again at every
# collection took much of the CPU (README, Performance). Objects in reference cycles wait
# longer to be freed; the queue bounds how many requests make them.
GC_THRESHOLDS = (50_000, 20, 100)


async def tune_garbage_collection(app: web.Application) -> None:
    """Exempt what start-up made from collection, and collect less often under load.

    A full collection otherwise walks every module, the app and the pool while requests wait,
    long enough to show in the p99 latency (README, Performance).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def job_database_url() -> str | None:
    """Return DATABASE_URL for a command, or None after saying on stderr why it is unusable."""
    try:
        return database_url_from_env(os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


# What ends a database job early with exit 1: the database is unreachable, or refused a batch.
JOB_DATABASE_ERRORS = (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def migrate() -> int:
    database_url = job_database_url()
    if database_url is None:
        return 2
    from service.jobs.migrate import apply_migrations

    applied = apply_migrations(database_url)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def retention(argv: list[str]) -> int:
    """Strip participant details from events older than --days (a daily job)."""
    import argparse

    from service.jobs.retention import DEFAULT_BATCH_SIZE, run_retention

    parser = argparse.ArgumentParser(
        prog="python -m service retention",
        description="Strip participant names, emails and raw payloads from old Zoom events.",
    )
    parser.add_argument("--days", type=int, required=True, help="keep details this many days")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args(argv)
    if args.days < 1 or args.batch_size < 1:
        parser.error("--days and --batch-size must be at least 1")
    database_url = job_database_url()
    if database_url is None:
        return 2
    try:
        stripped, cutoff = asyncio.run(run_retention(database_url, args.days, args.batch_size))
    except JOB_DATABASE_ERRORS as exc:
        print(f"error: retention stopped (finished batches stay done): {exc}", file=sys.stderr)
        return 1
    print(f"stripped participant details from {stripped} event(s) before {cutoff.isoformat()}")
    return 0


def partitions(argv: list[str]) -> int:
    """Create the monthly partitions of zoom_webhook_events ahead of need (a daily job)."""
    import argparse

    from service.jobs.partitions import DEFAULT_MONTHS_AHEAD, create_partitions

    parser = argparse.ArgumentParser(
        prog="python -m service partitions",
        description="Create the monthly partitions of zoom_webhook_events ahead of need.",
    )
    parser.add_argument("--months-ahead", type=int, default=DEFAULT_MONTHS_AHEAD)
    args = parser.parse_args(argv)
    if args.months_ahead < 0:
        parser.error("--months-ahead must be at least 0")
    database_url = job_database_url()
    if database_url is None:
        return 2
    try:
        created = asyncio.run(create_partitions(database_url, args.months_ahead))
    except JOB_DATABASE_ERRORS as exc:
        print(f"error: partitions not created: {exc}", file=sys.stderr)
        return 1
    months = ", ".join(f"{m:%Y-%m}" for m in created) or "none missing"
    print(f"created partitions of zoom_webhook_events: {months}")
    return 0


def reconcile(argv: list[str]) -> int:
    """Recover from Zoom's API what the webhooks of due bookings missed (a periodic job).

    Exit 0 when every booking reached a final outcome, 1 when some are left for the next run,
    2 on bad configuration or arguments.
    """
    import argparse
    import uuid

    from service.config import zoom_job_config_from_env
    from service.jobs.reconcile import DEFAULT_DAYS, UnknownBooking, run_reconcile

    parser = argparse.ArgumentParser(
        prog="python -m service reconcile",
        description="Store what Zoom's API reports and the webhooks missed, booking by booking.",
    )
    parser.add_argument("--booking", type=uuid.UUID, help="this booking only, due or not")
    parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help="bookings whose end lies this many days back"
    )
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    try:
        config = zoom_job_config_from_env(os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = asyncio.run(
            run_reconcile(config, booking_id=args.booking, days=args.days, out=sys.stdout)
        )
    except UnknownBooking as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except JOB_DATABASE_ERRORS as exc:
        print(f"error: reconcile stopped (finished bookings stay done): {exc}", file=sys.stderr)
        return 1
    return summary.exit_status


COMMANDS = {"serve": serve, "migrate": migrate}
# Commands that take options of their own.
COMMANDS_WITH_ARGS = {"retention": retention, "partitions": partitions, "reconcile": reconcile}


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command in COMMANDS_WITH_ARGS:
        return COMMANDS_WITH_ARGS[command](argv[1:])
    if command not in COMMANDS or len(argv) > 1:
        names = [*COMMANDS, *COMMANDS_WITH_ARGS]
        print(f"usage: python -m service [{'|'.join(names)}]", file=sys.stderr)
        return 2
    return COMMANDS[command]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
