"""POST /api/zoom/webhook: verify Zoom's signature, then answer the CRC or store the event."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from aiohttp import web

from service.config import Config
from service.http.access_log import annotate
from service.http.errors import BadRequest, Unauthorized, Unavailable
from service.http.metrics import DeliveryOutcome
from service.http.payloads import json_response
from service.keys import CONFIG, EVENT_STORE, METRICS
from service.webhook.events import parse_event
from service.webhook.ingest import REFUSED_BY_DATABASE, NotStored, Overloaded
from service.webhook.signature import SignatureCheck, url_validation, verify
from service.zoom_payload import STORED_EVENTS, URL_VALIDATION, InvalidEvent

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

TIMESTAMP_CHECKS = frozenset(
    {SignatureCheck.STALE, SignatureCheck.FUTURE, SignatureCheck.MALFORMED_TIMESTAMP}
)
RETRY_SOON = {"Retry-After": "1"}


# What a delivery comes to: the outcome it is counted under (zoom_webhook_deliveries_total), or
# None for a failure that is no delivery's fault, and the response or the error to raise.
CountedAnswer = tuple[DeliveryOutcome | None, web.Response | Exception]


@routes.post("/api/zoom/webhook")
async def receive_webhook(request: web.Request) -> web.Response:
    """Answer a delivery, then count its outcome once; an error goes on to the error middleware."""
    outcome, answer = await answer_delivery(request)
    if outcome is not None:
        request.app[METRICS].delivered[outcome].inc()
    if isinstance(answer, Exception):
        raise answer
    return answer


async def answer_delivery(request: web.Request) -> CountedAnswer:
    """Verify the delivery, then answer Zoom's CRC, ignore the event, or store it."""
    config, store = request.app[CONFIG], request.app[EVENT_STORE]
    if store.full:
        # Shed load before the HMAC and the parse: when the queue is full those would only
        # slow down the events already waiting. Zoom retries a 503 whatever its signature.
        return "rejected_overload", overloaded(store.refusal)
    # aiohttp refuses bodies over client_max_size (1 MiB) here, answering 413.
    raw = await request.read()
    check = verify_delivery(config, request, raw)
    if check is not SignatureCheck.OK:
        if check in TIMESTAMP_CHECKS:
            return "rejected_timestamp", Unauthorized("invalid_timestamp", check.reason)
        return "rejected_signature", Unauthorized("invalid_signature", check.reason)

    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "rejected_body", BadRequest("invalid_json", "The body is not valid JSON.")
    if not isinstance(body, dict):
        return "rejected_body", BadRequest("invalid_body", "The body must be a JSON object.")

    event_type = body.get("event")
    annotate_delivery(request, body)
    if event_type == URL_VALIDATION:
        payload = body.get("payload")
        plain_token = payload.get("plainToken") if isinstance(payload, dict) else None
        if not isinstance(plain_token, str) or not plain_token:
            message = "payload.plainToken must be a non-empty string."
            return "rejected_body", BadRequest("invalid_body", message)
        answer = url_validation(config.webhook_secrets[0], plain_token)
        return "url_validation", json_response(answer)

    # A non-string event (a list or object would not even hash) is just another event we ignore.
    if not isinstance(event_type, str) or event_type not in STORED_EVENTS:
        shown = event_type if isinstance(event_type, str) else None
        return "ignored", json_response({"status": "ignored", "event": shown})

    try:
        event = parse_event(body, raw)
    except InvalidEvent as exc:
        return "rejected_body", BadRequest("invalid_event", f"{exc}.")

    try:
        is_new = await store.store(event)
    except NotStored as exc:
        # Zoom retries a 5xx; shedding load fast beats answering after Zoom's 3 s timeout.
        outcome: DeliveryOutcome = (
            "rejected_overload" if isinstance(exc, Overloaded) else "unavailable"
        )
        return outcome, Unavailable(exc.code, f"{exc} Try again shortly.", headers=RETRY_SOON)
    except REFUSED_BY_DATABASE as exc:
        # parse_event refuses what it can foresee; this is the rest, found by the database.
        # Only this event: a batch that fails so is retried event by event (ingest.py).
        # The database's message may quote a value (a participant's name): log only its code.
        log.warning("the database refused a webhook event: SQLSTATE %s", exc.sqlstate)
        message = "The event cannot be stored: a value is out of range or too large."
        return "rejected_body", BadRequest("invalid_event", message)
    stored: DeliveryOutcome = "stored" if is_new else "duplicate"
    return stored, json_response({"status": stored, "event": event_type})


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
