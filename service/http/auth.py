"""Bearer-token check for the internal routes (the web app is the only caller)."""

from __future__ import annotations

import functools
import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from service.http.errors import Unauthorized
from service.keys import CONFIG


def require_internal_caller(request: web.Request) -> None:
    """Raise 401 unless the request carries one of INTERNAL_API_TOKENS as a bearer token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("unauthorized", "Send Authorization: Bearer <internal API token>.")
    presented = token.encode("utf-8", "surrogateescape")
    # Compare against every token, in constant time, so timing tells nothing about which matched.
    matched = False
    for known in request.app[CONFIG].internal_api_tokens:
        matched |= hmac.compare_digest(presented, known.encode())
    if not matched:
        raise Unauthorized("unauthorized", "The bearer token is not valid.")


def internal_routes(table: web.RouteTableDef) -> list[web.RouteDef]:
    """The table's routes, each answering 401 to a caller without an internal API token.

    A check on the routes rather than a middleware, which would be one more coroutine around
    every request, Zoom's webhook included, though it needs no token.
    """
    guarded = []
    for route in table:
        if not isinstance(route, web.RouteDef):
            raise TypeError(f"only handler routes can require a token, not {route!r}")
        guarded.append(
            web.RouteDef(route.method, route.path, _requiring_token(route.handler), route.kwargs)
        )
    return guarded


def _requiring_token(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        require_internal_caller(request)
        return await handler(request)

    return checked
