"""API errors and the one middleware that turns every failure into the JSON error body."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 500

    def __init__(self, code: str, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Unprocessable(ApiError):
    status = 422


class BadGateway(ApiError):
    status = 502


class Unavailable(ApiError):
    status = 503


# Failures that mean "the database is not reachable right now": answer 503 and let the pool
# reconnect on the next request, so an outage heals without a restart.
DATABASE_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A connection the server closed at an unlucky moment: asyncpg finds it mid-operation.
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def is_database_unavailable(exc: BaseException) -> bool:
    """Tell an outage (503, retry later) from a bug; asyncpg's DataError is a bug, not an outage."""
    return isinstance(exc, DATABASE_UNAVAILABLE) and not isinstance(exc, asyncpg.DataError)


HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Build the documented error body: {"error": <machine code>, "message": <human sentence>}."""
    return web.Response(
        body=orjson.dumps({"error": code, "message": message}),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def database_unavailable() -> web.Response:
    return error_response(
        503,
        "database_unavailable",
        "The database is not reachable; try again shortly.",
        headers={"Retry-After": "5"},
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure with the JSON error body; never a stack trace."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_ERROR_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 413 else "The request body is larger than 1 MiB."
        if exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}."
        elif exc.status == 404:
            message = f"Nothing is served at {request.path}."
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error_response(exc.status, code, message, headers or None)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if is_database_unavailable(exc):
            log.warning("database unavailable on %s %s: %r", request.method, request.path, exc)
            return database_unavailable()
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side.")
