"""The OpenAPI 3 document of the whole HTTP interface, served at GET /openapi.json (no auth)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

routes = web.RouteTableDef()

JSON = "application/json"
UUID = {"type": "string", "format": "uuid"}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_TEXT = {"type": ["string", "null"]}
INTERNAL: list[dict[str, list[str]]] = [{"internalToken": []}]
# The id the examples use (for a booking, a booking request and a coach alike).
EXAMPLE_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
EXAMPLE_MEETING_ID = "85746065432"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def error(description: str) -> dict[str, Any]:
    """A response carrying the one error body, {"error": code, "message": sentence}."""
    return json_body(ref("Error"), description)


def obj(properties: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


BOOKING_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The booking's id; a malformed or unknown id is 404.",
    "schema": UUID,
    "example": EXAMPLE_ID,
}

# Answers every internal route can give besides its own.
INTERNAL_ERRORS = {
    "401": error("No bearer token, or not one of INTERNAL_API_TOKENS."),
    "503": error("The database is unreachable; retry shortly."),
}
BOOKING_ERRORS = {**INTERNAL_ERRORS, "404": error("No booking with this id.")}


def booking_read(summary: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": ["reading"],
            "security": INTERNAL,
            "parameters": [BOOKING_ID],
            "responses": {"200": json_body(schema, description), **BOOKING_ERRORS},
        }
    }


# Shaped like Zoom's own examples (tests/zoom_examples/).
EXAMPLE_JOIN = {
    "event": "meeting.participant_joined",
    "event_ts": 1626230691572,
    "payload": {
        "account_id": "Wk9PTV9BQ0NPVU5UX0lE",
        "object": {
            "id": EXAMPLE_MEETING_ID,
            "uuid": "Wk9PTV9NRUVUSU5HX0lE",
            "host_id": "Wk9PTV9VU0VSX0lE",
            "topic": "My Meeting",
            "type": 2,
            "start_time": "2021-07-13T21:44:51Z",
            "duration": 60,
            "participant": {
                "user_id": "16778240",
                "user_name": "Jill Chill",
                "id": "iFxeBPYun6SAiWUzBcEkX",
                "participant_uuid": "55555AAAiAAAAAiAiAiiAii",
                "join_time": "2021-07-13T21:45:51Z",
                "email": "jchill@example.com",
                "participant_user_id": "iFxeBPYun6SAiWUzBcEkX",
            },
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": obj(
        {
            "error": {"type": "string", "description": "Machine-readable code."},
            "message": {"type": "string", "description": "A human sentence."},
        }
    ),
    "Booking": obj(
        {
            "id": UUID,
            "coach_id": UUID,
            "athlete_id": UUID,
            "status": {"type": "string", "enum": ["paid", "completed", "cancelled", "refunded"]},
            "zoom_meeting_id": NULLABLE_TEXT,
            "zoom_join_url": NULLABLE_TEXT,
            "zoom_start_url": NULLABLE_TEXT,
            "created_at": TIME,
            "updated_at": NULLABLE_TIME,
        },
        required=[
            "id",
            "coach_id",
            "athlete_id",
            "status",
            "zoom_meeting_id",
            "zoom_join_url",
            "zoom_start_url",
            "created_at",
        ],
    ),
    "SessionLogCreated": obj(
        {
            "id": UUID,
            "booking_id": UUID,
            "coach_id": UUID,
            "athlete_id": UUID,
            "action_type": {"type": "string", "enum": ["start_meeting", "join_meeting"]},
            "created_at": TIME,
        }
    ),
    "SessionLog": obj(
        {
            "id": UUID,
            "action_type": {"type": "string", "enum": ["start_meeting", "join_meeting"]},
            "coach_id": UUID,
            "athlete_id": UUID,
            "created_at": TIME,
        }
    ),
    "ZoomEvent": obj(
        {
            "id": UUID,
            "event_type": {
                "type": "string",
                "enum": [
                    "meeting.started",
                    "meeting.ended",
                    "meeting.participant_joined",
                    "meeting.participant_left",
                ],
            },
            "occurred_at": TIME,
            "zoom_meeting_id": {"type": "string"},
            "participant_name": NULLABLE_TEXT,
            "participant_email": NULLABLE_TEXT,
            "participant_user_id": NULLABLE_TEXT,
            "source": {
                "type": "string",
                "enum": ["webhook", "zoom_api"],
                "description": "A delivery, or a fact recovered from Zoom's API by reconciliation.",
            },
            "raw_data": {
                "description": "The webhook body as received (for source zoom_api, Zoom's record: "
                "the participant report record, or the instance's details); only with "
                "include=raw."
            },
        },
        required=[
            "id",
            "event_type",
            "occurred_at",
            "zoom_meeting_id",
            "participant_name",
            "participant_email",
            "participant_user_id",
            "source",
        ],
    ),
    "ZoomEventPage": obj(
        {
            "items": {"type": "array", "items": ref("ZoomEvent")},
            "next": {
                "type": ["string", "null"],
                "description": "Pass as `after` for the next page; null on the last page.",
            },
        }
    ),
    "SessionLogList": obj({"items": {"type": "array", "items": ref("SessionLog")}}),
    "Interval": obj({"joined_at": TIME, "left_at": NULLABLE_TIME}),
    "Participant": obj(
        {
            "name": NULLABLE_TEXT,
            "email": NULLABLE_TEXT,
            "user_id": {
                "type": ["string", "null"],
                "description": "Zoom's stable participant id, the same across rejoins.",
            },
            "is_host": {"type": "boolean"},
            "intervals": {"type": "array", "items": ref("Interval")},
            "seconds_present": {"type": "integer", "minimum": 0},
        }
    ),
    "Attendance": obj(
        {
            "booking_id": UUID,
            "meeting_started_at": NULLABLE_TIME,
            "meeting_ended_at": NULLABLE_TIME,
            "first_start_click_at": NULLABLE_TIME,
            "first_join_click_at": NULLABLE_TIME,
            "participants": {"type": "array", "items": ref("Participant")},
            "evidence": {
                "type": "string",
                "enum": ["webhooks", "zoom_api", "webhooks+zoom_api", "none"],
                "description": "Where the booking's Zoom events came from.",
            },
            "reconciled_at": {
                **NULLABLE_TIME,
                "description": "When reconciliation last reached a final outcome; null before.",
            },
        }
    ),
    "Reconciliation": obj(
        {
            "booking_id": UUID,
            "zoom_meeting_id": {"type": "string"},
            "outcome": {
                "type": "string",
                "enum": ["recovered", "complete", "no_meeting", "pending"],
                "description": "recovered, complete and no_meeting are final; pending is tried "
                "again by the next run.",
            },
            "instances": {
                "type": "integer",
                "minimum": 0,
                "description": "Ended instances Zoom lists.",
            },
            "recovered": {
                "type": "integer",
                "minimum": 0,
                "description": "Events this call stored.",
            },
        }
    ),
    "TimelineItem": obj(
        {
            "at": TIME,
            "kind": {"type": "string", "enum": ["click", "zoom_event"]},
            "type": {"type": "string"},
            "actor": {"type": "string"},
            "actor_id": NULLABLE_TEXT,
            "description": {"type": "string"},
            "id": UUID,
            "source": {
                "type": ["string", "null"],
                "enum": ["webhook", "zoom_api", None],
                "description": "A Zoom event's: delivered by webhook, or recovered from Zoom's "
                "API by reconciliation; null for a click.",
            },
        }
    ),
    "Timeline": obj({"booking_id": UUID, "items": {"type": "array", "items": ref("TimelineItem")}}),
    "StartUrl": obj(
        {"booking_id": UUID, "zoom_meeting_id": {"type": "string"}, "start_url": {"type": "string"}}
    ),
    "ZoomWebhook": {
        "type": "object",
        "description": "A Zoom webhook body, signed by Zoom (x-zm-signature).",
        "properties": {
            "event": {"type": "string"},
            "event_ts": {"type": "integer", "description": "Epoch milliseconds."},
            "payload": {"type": "object"},
        },
        "required": ["event", "payload"],
    },
    "UrlValidationAnswer": obj(
        {
            "plainToken": {"type": "string"},
            "encryptedToken": {
                "type": "string",
                "description": "hex HMAC-SHA256(first secret, plainToken)",
            },
        }
    ),
    "WebhookAnswer": obj(
        {
            "status": {"type": "string", "enum": ["stored", "duplicate", "ignored"]},
            "event": {"type": ["string", "null"]},
        }
    ),
    "Status": obj({"status": {"type": "string"}}),
}

PATHS: dict[str, Any] = {
    "/api/zoom/webhook": {
        "post": {
            "summary": "Receive a Zoom webhook (called by Zoom)",
            "description": (
                "The signature is checked on the raw body first: `x-zm-signature` must equal "
                "`v0=` + hex HMAC-SHA256(secret, `v0:{x-zm-request-timestamp}:{body}`) under "
                "one of ZOOM_WEBHOOK_SECRET's tokens, and the timestamp must be within "
                "WEBHOOK_TOLERANCE_SECONDS (and not over 300 s ahead). "
                "`endpoint.url_validation` is answered with the first token. The four meeting "
                "events are stored (once) before 200; other signed events are ignored (200)."
            ),
            "tags": ["zoom"],
            "security": [{"zoomSignature": [], "zoomTimestamp": []}],
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": ref("ZoomWebhook"),
                        "examples": {
                            "participant_joined": {"value": EXAMPLE_JOIN},
                            "url_validation": {
                                "value": {
                                    "event": "endpoint.url_validation",
                                    "event_ts": 1654503849680,
                                    "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
                                }
                            },
                        },
                    }
                },
            },
            "responses": {
                "200": json_body(
                    {"oneOf": [ref("UrlValidationAnswer"), ref("WebhookAnswer")]},
                    "Stored, a redelivery, ignored, or the URL validation answer.",
                ),
                "400": error("Unparseable JSON, or an event missing what must be stored."),
                "401": error("Missing or wrong signature, or a timestamp out of the window."),
                "413": error("Body over 1 MiB."),
                "503": error("The database is unreachable: not stored, Zoom retries."),
            },
        }
    },
    "/api/zoom-logs": {
        "post": {
            "summary": "Record a Start Meeting / Join Meeting click",
            "tags": ["reading"],
            "security": INTERNAL,
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": obj(
                            {
                                "booking_id": UUID,
                                "action_type": {
                                    "type": "string",
                                    "enum": ["start_meeting", "join_meeting"],
                                },
                            }
                        ),
                        "example": {"booking_id": EXAMPLE_ID, "action_type": "start_meeting"},
                    }
                },
            },
            "responses": {
                "201": json_body(ref("SessionLogCreated"), "The stored click."),
                "400": error("The body is not JSON."),
                "404": error("No booking with this id."),
                "422": error("A field is missing or invalid; the message names it."),
                **INTERNAL_ERRORS,
            },
        }
    },
    "/api/requests/{request_id}/accept": {
        "post": {
            "summary": "Accept a booking request: create the Zoom meeting and the paid booking",
            "tags": ["booking"],
            "security": INTERNAL,
            "parameters": [
                {
                    "name": "request_id",
                    "in": "path",
                    "required": True,
                    "description": "The booking request's id; a malformed id is 404.",
                    "schema": UUID,
                    "example": EXAMPLE_ID,
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {"schema": obj({"coach_id": UUID}), "example": {"coach_id": EXAMPLE_ID}}
                },
            },
            "responses": {
                "200": json_body(ref("Booking"), "Already accepted: the same booking."),
                "201": json_body(ref("Booking"), "The new booking."),
                "400": error("The body is not JSON."),
                "403": error("The request belongs to another coach."),
                "404": error("No booking request with this id."),
                "409": error("The request is declined or cancelled."),
                "422": error("coach_id is missing or not a UUID."),
                "502": error("Zoom failed, was unreachable or hung; the request stays pending."),
                **INTERNAL_ERRORS,
                "503": error("Database unreachable, or the Zoom API credentials are not set."),
            },
        }
    },
    "/api/bookings/{id}/zoom-events": {
        "get": {
            "summary": "A booking's Zoom events, oldest first, page by page",
            "tags": ["reading"],
            "security": INTERNAL,
            "parameters": [
                BOOKING_ID,
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
                {
                    "name": "after",
                    "in": "query",
                    "description": "The `next` cursor of the previous page.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "include",
                    "in": "query",
                    "description": "`raw` adds each event's raw_data.",
                    "schema": {"type": "string", "enum": ["raw"]},
                },
            ],
            "responses": {
                "200": json_body(ref("ZoomEventPage"), "One page of events."),
                "400": error("A bad limit, cursor or include."),
                **BOOKING_ERRORS,
            },
        }
    },
    "/api/bookings/{id}/zoom-logs": booking_read(
        "A booking's Start/Join clicks, oldest first", ref("SessionLogList"), "The clicks."
    ),
    "/api/bookings/{id}/attendance": booking_read(
        "Who was in the booking's meeting, and when", ref("Attendance"), "The summary."
    ),
    "/api/bookings/{id}/attendance.svg": {
        "get": {
            "summary": "The attendance drawn: schedule, meeting, a lane per participant, clicks",
            "tags": ["reading"],
            "security": INTERNAL,
            "parameters": [BOOKING_ID],
            "responses": {
                "200": {
                    "description": "A standalone SVG (no script, no external reference).",
                    "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                },
                **BOOKING_ERRORS,
            },
        }
    },
    "/api/bookings/{id}/timeline": booking_read(
        "Clicks and Zoom events merged into one story, oldest first",
        ref("Timeline"),
        "The timeline.",
    ),
    "/api/bookings/{id}/reconcile": {
        "post": {
            "summary": "Ask Zoom now what the booking's webhooks missed, and store it",
            "tags": ["booking"],
            "security": INTERNAL,
            "parameters": [BOOKING_ID],
            "responses": {
                "200": json_body(ref("Reconciliation"), "The outcome and what was stored."),
                "409": error(
                    "The booking has no Zoom meeting, or another reconciliation of it ran too long."
                ),
                "502": error("Zoom failed, was unreachable, hung or rate-limited too long."),
                **BOOKING_ERRORS,
                "503": error("Database unreachable, or the Zoom API credentials are not set."),
            },
        }
    },
    "/api/bookings/{id}/start-url": {
        "get": {
            "summary": "A fresh start URL for the coach (the stored one expires after ~2 h)",
            "tags": ["booking"],
            "security": INTERNAL,
            "parameters": [BOOKING_ID],
            "responses": {
                "200": json_body(ref("StartUrl"), "The start URL, fresh from Zoom."),
                "409": error("The booking has no Zoom meeting."),
                "502": error("Zoom failed."),
                **BOOKING_ERRORS,
                "503": error("Database unreachable, or the Zoom API credentials are not set."),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "200 while the process serves",
            "tags": ["operations"],
            "responses": {"200": json_body(ref("Status"), "Serving.")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "200 when the database answers and no migration is pending",
            "tags": ["operations"],
            "responses": {
                "200": json_body(ref("Status"), "Ready."),
                "503": error("Database unreachable or migrations pending."),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (zoom_webhook_deliveries_total by outcome, ...)",
            "tags": ["operations"],
            "responses": {
                "200": {
                    "description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "tags": ["operations"],
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {}}}}},
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "TeachTape Zoom session logs",
        "version": "1.0.0",
        "description": (
            "Creates the Zoom meeting when a coach accepts a booking request, ingests Zoom's "
            "signed webhooks, stores Start/Join clicks and serves the audit trail. Every error "
            'is {"error": code, "message": sentence}; every body is JSON but /metrics.'
        ),
    },
    "servers": [{"url": "/"}],
    "tags": [
        {"name": "zoom", "description": "Called by Zoom."},
        {"name": "booking", "description": "Internal: the web app."},
        {"name": "reading", "description": "Internal: clicks and the audit trail."},
        {"name": "operations", "description": "Health, readiness, metrics; no auth."},
    ],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "internalToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "One of INTERNAL_API_TOKENS.",
            },
            "zoomSignature": {"type": "apiKey", "in": "header", "name": "x-zm-signature"},
            "zoomTimestamp": {"type": "apiKey", "in": "header", "name": "x-zm-request-timestamp"},
        },
    },
}

DOCUMENT_BYTES = orjson.dumps(DOCUMENT)


@routes.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=DOCUMENT_BYTES, content_type=JSON)
