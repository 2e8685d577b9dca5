"""The two baselines the service is measured against, served like the service itself.

    python bench/baseline.py bare     # (a) verify the signature and parse the body, store nothing
    python bench/baseline.py insert   # (b) ... and store each event in its own transaction

Both read the service's environment (DATABASE_URL, ZOOM_WEBHOOK_SECRET, HOST, PORT) and use its
own signature check, event parser and SQL, so that the only difference from the service is how
events reach the database.
"""

from __future__ import annotations

import asyncio
import os
import sys

import orjson
from aiohttp import web

from service.config import Config
from service.db import create_pool, load_queries
from service.http.errors import error_middleware
from service.http.payloads import json_response
from service.webhook.events import parse_event
from service.webhook.handler import verify_delivery
from service.webhook.ingest import store_events
from service.webhook.signature import SignatureCheck
from service.zoom_payload import STORED_EVENTS

POOL = web.AppKey("pool", object)
LOCK_TIMEOUT_MS = round(Config.ingest_lock_timeout_seconds * 1000)


def make_app(config: Config, mode: str) -> web.Application:
    queries = load_queries()

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        check = verify_delivery(config, request, raw)
        if check is not SignatureCheck.OK:
            return json_response({"error": "unauthorized", "message": check.reason}, status=401)
        body = orjson.loads(raw)
        if body.get("event") not in STORED_EVENTS:
            return json_response({"status": "ignored"})
        event = parse_event(body, raw)
        status = "stored"
        if mode == "insert":
            async with request.app[POOL].acquire() as conn:
                # The service's own lock wait (Config.ingest_lock_timeout_seconds).
                new = await store_events(conn, queries, [event], lock_timeout_ms=LOCK_TIMEOUT_MS)
            status = "stored" if event.dedupe_key in new else "duplicate"
        return json_response({"status": status, "event": event.event_type})

    async def pool_ctx(app: web.Application):
        app[POOL] = await create_pool(config)
        yield
        await app[POOL].close()

    app = web.Application(middlewares=[error_middleware], client_max_size=1024 * 1024)
    if mode == "insert":
        app.cleanup_ctx.append(pool_ctx)
    app.router.add_post("/api/zoom/webhook", webhook)
    app.router.add_get("/healthz", lambda request: json_response({"status": "ok"}))
    return app


def main(argv: list[str]) -> int:
    if argv not in (["bare"], ["insert"]):
        print(__doc__, file=sys.stderr)
        return 2
    config = Config.from_env(os.environ)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(make_app(config, argv[0]), host=config.host, port=config.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
