"""POST /api/zoom/webhook: verify Zoom's signature, then answer the CRC or store the event."""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from service.config import Config
from service.http.access_log import annotate
from service.http.errors import BadRequest, Unauthorized, Unavailable, is_database_unavailable
from service.http.payloads import json_response
from service.keys import CONFIG, EVENT_STORE, METRICS
from service.webhook.events import STORED_EVENTS, URL_VALIDATION, InvalidEvent, parse_event
from service.webhook.ingest import Overloaded
from service.webhook.signature import SignatureCheck, url_validation, verify

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

TIMESTAMP_CHECKS = frozenset(
    {SignatureCheck.STALE, SignatureCheck.FUTURE, SignatureCheck.MALFORMED_TIMESTAMP}
)
RETRY_SOON = {"Retry-After": "1"}
# What PostgreSQL says about an event it cannot store, whenever it is tried: a value out of
# range or too large to index. parse_event refuses what it can foresee; this is the rest.
REFUSED_BY_DATABASE = (asyncpg.DataError, asyncpg.exceptions.ProgramLimitExceededError)


@routes.post("/api/zoom/webhook")
async def receive_webhook(request: web.Request) -> web.Response:
    config, delivered = request.app[CONFIG], request.app[METRICS].delivered
    store = request.app[EVENT_STORE]
    if store.full:
        # Shed load before the HMAC and the parse: when the queue is full those would only
        # slow down the events already waiting. Zoom retries a 503 whatever its signature.
        delivered["rejected_overload"].inc()
        raise overloaded(store.refusal)
    # aiohttp refuses bodies over client_max_size (1 MiB) here, answering 413.
    raw = await request.read()
    check = verify_delivery(config, request, raw)
    if check is not SignatureCheck.OK:
        reason = "timestamp" if check in TIMESTAMP_CHECKS else "signature"
        delivered[f"rejected_{reason}"].inc()
        raise Unauthorized(f"invalid_{reason}", check.reason)

    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        delivered["rejected_body"].inc()
        raise BadRequest("invalid_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        delivered["rejected_body"].inc()
        raise BadRequest("invalid_body", "The body must be a JSON object.")

    event_type = body.get("event")
    annotate_delivery(request, body)
    if event_type == URL_VALIDATION:
        payload = body.get("payload")
        plain_token = payload.get("plainToken") if isinstance(payload, dict) else None
        if not isinstance(plain_token, str) or not plain_token:
            delivered["rejected_body"].inc()
            raise BadRequest("invalid_body", "payload.plainToken must be a non-empty string.")
        delivered["url_validation"].inc()
        return json_response(url_validation(config.webhook_secrets[0], plain_token))

    # A non-string event (a list or object would not even hash) is just another event we ignore.
    if not isinstance(event_type, str) or event_type not in STORED_EVENTS:
        delivered["ignored"].inc()
        shown = event_type if isinstance(event_type, str) else None
        return json_response({"status": "ignored", "event": shown})

    try:
        event = parse_event(body, raw)
    except InvalidEvent as exc:
        delivered["rejected_body"].inc()
        raise BadRequest("invalid_event", f"{exc}.") from None

    try:
        is_new = await store.store(event)
    except Overloaded as exc:
        delivered["rejected_overload"].inc()
        # Zoom retries a 5xx; shedding load fast beats answering after Zoom's 3 s timeout.
        raise overloaded(str(exc)) from None
    except REFUSED_BY_DATABASE as exc:
        # Only this event: a batch that fails so is retried event by event (ingest.py).
        delivered["rejected_body"].inc()
        # The database's message may quote a value (a participant's name): log only its code.
        log.warning("the database refused a webhook event: SQLSTATE %s", exc.sqlstate)
        raise BadRequest(
            "invalid_event", "The event cannot be stored: a value is out of range or too large."
        ) from None
    except Exception as exc:
        if is_database_unavailable(exc):
            delivered["unavailable"].inc()
        raise  # the error middleware answers 503, and Zoom retries
    outcome = "stored" if is_new else "duplicate"
    delivered[outcome].inc()
    return json_response({"status": outcome, "event": event_type})


def verify_delivery(config: Config, request: web.Request, raw: bytes) -> SignatureCheck:
    """Check the delivery's x-zm-signature and timestamp against the configured secrets."""
    return verify(
        secrets=config.webhook_secrets,
        timestamp=request.headers.get("x-zm-request-timestamp"),
        signature=request.headers.get("x-zm-signature"),
        body=raw,
        now=time.time(),
        tolerance_seconds=config.webhook_tolerance_seconds,
        max_future_seconds=config.webhook_max_future_seconds,
    )


def annotate_delivery(request: web.Request, body: dict[str, Any]) -> None:
    """Put the event type and meeting id (nothing about participants) on the access line."""
    event = body.get("event")
    if isinstance(event, str):
        annotate(request, event=event[:64])
    payload = body.get("payload")
    meeting = payload.get("object") if isinstance(payload, dict) else None
    meeting_id = meeting.get("id") if isinstance(meeting, dict) else None
    if isinstance(meeting_id, (str, int)):
        annotate(request, meeting_id=str(meeting_id)[:64])


def overloaded(reason: str) -> Unavailable:
    return Unavailable("overloaded", f"{reason} Try again shortly.", headers=RETRY_SOON)
