"""JSON in and out: orjson responses, request bodies, and small field parsers."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

import orjson
from aiohttp import web

from service.http.errors import NotFound, Unprocessable

JSON_CONTENT_TYPE = "application/json"


def dumps(value: Any) -> bytes:
    """Serialise to JSON; datetimes become ISO 8601 and UUIDs strings (orjson natives)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z)


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID):  # asyncpg's own UUID subclass, which orjson does not know
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(
    value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(value),
        status=status,
        content_type=JSON_CONTENT_TYPE,
        headers=headers,
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """Read the body as a JSON object, or 422: the contract's "bad body" for internal routes.

    (The webhook reads its own body: for Zoom, unparseable JSON is 400.)
    """
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Unprocessable("invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Unprocessable("invalid_body", "The request body must be a JSON object.")
    return body


def parse_uuid_text(value: str, what: str) -> uuid.UUID:
    """Parse a UUID taken from a path; an unknown shape is simply not found (404)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(
            f"{what}_not_found", f"No {what.replace('_', ' ')} with id {value!r}."
        ) from None


def parse_uuid(body: Mapping[str, Any], name: str) -> uuid.UUID:
    """Return body[name] as a UUID, or 422 naming the field."""
    value = body.get(name)
    if not isinstance(value, str):
        raise Unprocessable("invalid_field", f"{name} is required and must be a UUID string.")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Unprocessable("invalid_field", f"{name} must be a UUID, got {value!r}.") from None


def parse_choice(body: Mapping[str, Any], name: str, choices: Collection[str]) -> str:
    """Return body[name] when it is one of choices, or 422 listing them."""
    value = body.get(name)
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(sorted(choices))
        raise Unprocessable("invalid_field", f"{name} must be one of: {allowed}.")
    return value
