"""Bearer-token check for the internal routes (the web app is the only caller)."""

from __future__ import annotations

import hmac

from aiohttp import web

from service.errors import Unauthorized
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


# Everything under /api/ is internal except what Zoom itself calls.
PUBLIC_API_PATHS = frozenset({"/api/zoom/webhook"})


@web.middleware
async def internal_auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Require the internal bearer token on every /api/ route but Zoom's webhook."""
    routed = request.match_info.route.resource is not None
    if routed and request.path.startswith("/api/") and request.path not in PUBLIC_API_PATHS:
        require_internal_caller(request)
    return await handler(request)
