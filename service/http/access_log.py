"""Structured logs: one JSON object per line, and one access line per request.

Never logged: headers, bodies, query strings, secrets, participant names or emails. A webhook's
line carries only its event type and meeting id, which the handler hands over (annotate()).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

ACCESS_LOGGER = "service.access"
REQUEST_ID_HEADER = "X-Request-Id"
# A caller's request id is echoed and logged only when it is short and plain (no log injection).
REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
# The fields a LogRecord always has; anything else came in through `extra=` and is logged.
RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

# Made request ids: a random per-process prefix and a counter, 32 hex digits in all. Unique
# across replicas without asking the OS for randomness on every request, as uuid4 did.
_REQUEST_ID_PREFIX = secrets.token_hex(8)
_request_counter = itertools.count(1)


def _new_request_id_prefix() -> None:
    """Give a forked worker (WEB_CONCURRENCY > 1) request ids of its own."""
    global _REQUEST_ID_PREFIX
    _REQUEST_ID_PREFIX = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_request_id_prefix)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
access_log = logging.getLogger(ACCESS_LOGGER)


class JsonFormatter(logging.Formatter):
    """Render a record as one line of JSON: ts, level, logger, msg, request_id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class AccessLines:
    """The access lines of a serving process, handed to the stream in batches.

    At thousands of webhooks a second, `logging` per access line (a LogRecord, the formatter,
    a write and a flush each) took a large share of the service's CPU (README, Performance).
    Here the same JSON line is one orjson call into a buffer, written at most FLUSH_SECONDS
    later (or once MAX_BUFFER fills) and at shutdown. Without an attached stream (tests,
    library use) each line goes through the `service.access` logger instead.
    """

    FLUSH_SECONDS = 0.1
    MAX_BUFFER = 64 * 1024

    def __init__(self) -> None:
        self.stream: IO[bytes] | None = None  # set by configure_logging
        self._buffer = bytearray()
        self._pending: asyncio.TimerHandle | None = None

    def write(self, fields: dict[str, Any]) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        if self.stream is None:
            access_log.info("request", extra=fields)
            return
        entry = {
            "ts": utc_timestamp(),
            "level": "info",
            "logger": ACCESS_LOGGER,
            "msg": "request",
            **fields,
        }
        self._buffer += orjson.dumps(entry, default=str, option=orjson.OPT_APPEND_NEWLINE)
        if len(self._buffer) >= self.MAX_BUFFER:
            self.flush()
        elif self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._buffer and self.stream is not None:
            self.stream.write(bytes(self._buffer))
            self.stream.flush()
            self._buffer.clear()


ACCESS_LINES = AccessLines()

_second_shown: tuple[int, str] = (0, "")


def utc_timestamp() -> str:
    """Now as ISO 8601 with milliseconds, as JsonFormatter writes it.

    The date and time are formatted once a second, because isoformat() for every access line
    showed in the service's CPU profile under load.
    """
    global _second_shown
    second, millisecond = divmod(time.time_ns() // 1_000_000, 1000)
    if second != _second_shown[0]:
        shown = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_shown = (second, shown)
    return f"{_second_shown[1]}.{millisecond:03d}+00:00"


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Send every log record to stderr (or stream) as JSON lines."""
    # Our lines carry none of these: skip collecting them per record (the logging HOWTO's
    # "Optimization" section).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access lines bypass the handler in batches, when the stream has a binary side to write to.
    ACCESS_LINES.flush()
    ACCESS_LINES.stream = getattr(stream or sys.stderr, "buffer", None)


def request_id_for(request: web.Request) -> str:
    """The caller's X-Request-Id when it is plain, else a new one."""
    given = request.headers.get(REQUEST_ID_HEADER)
    if given and REQUEST_ID_SHAPE.fullmatch(given):
        return given
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):016x}"


# What a handler adds to its request's access line (the webhook: event type and meeting id).
LOG_FIELDS: web.RequestKey[dict[str, str]] = web.RequestKey("log_fields", dict)


def annotate(request: web.Request, **fields: str) -> None:
    """Add fields to this request's access line; never a participant's name or email."""
    try:
        request[LOG_FIELDS].update(fields)
    except KeyError:  # no access_log_middleware (a handler tested on its own)
        request[LOG_FIELDS] = fields


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log one line per request and echo X-Request-Id; outermost, so it sees the final status."""
    request_id = request_id_for(request)
    token = request_id_var.set(request_id)
    # Handlers add to this dict (annotate()); set up front, since a missing key is a slow
    # KeyError inside request.get().
    annotations: dict[str, str] = {}
    request[LOG_FIELDS] = annotations
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away before the answer
        raise
    finally:
        fields: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "status": status,
            # Hundredths of a millisecond, rounded half up without round(), which costs more.
            "latency_ms": int((time.perf_counter() - started) * 100_000 + 0.5) / 100,
            "request_id": request_id,
        }
        fields.update(annotations)
        ACCESS_LINES.write(fields)
        request_id_var.reset(token)
