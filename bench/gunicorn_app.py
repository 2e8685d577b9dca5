"""The service under gunicorn's aiohttp worker: the bench's gunicorn2 run.

The comparison behind WEB_CONCURRENCY's own supervisor (docs/SCALING.md): the same app, the
same start-up tuning, N workers, but gunicorn's arbiter and its one shared listening socket.
Not part of the service: gunicorn is installed only for this run (`pip install gunicorn`).
"""

from __future__ import annotations

import os

from aiohttp import web

from service.__main__ import tune_garbage_collection
from service.app import create_app
from service.config import Config
from service.http.access_log import configure_logging


async def app() -> web.Application:
    """gunicorn's aiohttp worker awaits this factory in each worker."""
    configure_logging(os.environ.get("LOG_LEVEL", "").strip() or "INFO")
    application = create_app(Config.from_env(os.environ))
    application.on_startup.append(tune_garbage_collection)
    return application
