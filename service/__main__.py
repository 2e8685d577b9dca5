"""python -m service: serve (configured from the environment; never migrates).

python -m service migrate: apply pending migrations to DATABASE_URL and exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from service.config import Config, ConfigError, database_url_from_env

LISTEN_BACKLOG = 4096


def serve() -> int:
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from aiohttp import web

    from service.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if config.missing_zoom_api_variables:
        logging.getLogger("service").warning(
            "accepting booking requests is disabled until %s are set",
            ", ".join(config.missing_zoom_api_variables),
        )
    try:
        import uvloop
    except ImportError:  # not on every platform; asyncio's own loop works, only slower
        uvloop = None
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    access_log = web.access_logger if config.access_log else None
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        print=None,
        access_log=access_log,
        # On the hour Zoom opens many connections at once; 128 pending (the default) drops some.
        backlog=LISTEN_BACKLOG,
    )
    return 0


def migrate() -> int:
    try:
        database_url = database_url_from_env(os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from service.migrate import apply_migrations

    applied = apply_migrations(database_url)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


COMMANDS = {"serve": serve, "migrate": migrate}


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command not in COMMANDS or len(argv) > 1:
        print(f"usage: python -m service [{'|'.join(COMMANDS)}]", file=sys.stderr)
        return 2
    return COMMANDS[command]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
