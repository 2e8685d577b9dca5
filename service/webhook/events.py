"""Zoom meeting webhook payloads -> WebhookEvent rows; pure functions, no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

MEETING_STARTED = "meeting.started"
MEETING_ENDED = "meeting.ended"
PARTICIPANT_JOINED = "meeting.participant_joined"
PARTICIPANT_LEFT = "meeting.participant_left"
URL_VALIDATION = "endpoint.url_validation"

STORED_EVENTS = frozenset({MEETING_STARTED, MEETING_ENDED, PARTICIPANT_JOINED, PARTICIPANT_LEFT})
PARTICIPANT_EVENTS = frozenset({PARTICIPANT_JOINED, PARTICIPANT_LEFT})

# The payload time that says when the event happened; event_ts stands in when it is missing.
OCCURRED_AT_FIELD = {
    MEETING_STARTED: ("object", "start_time"),
    MEETING_ENDED: ("object", "end_time"),
    PARTICIPANT_JOINED: ("participant", "join_time"),
    PARTICIPANT_LEFT: ("participant", "leave_time"),
}

# Zoom's meeting ids are 9 to 11 digits. A much longer one is not Zoom's, and PostgreSQL could
# not even index it (a b-tree entry holds about 2.7 kB).
MAX_MEETING_ID_CHARS = 255

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# event_ts bounds: 2000-01-01 .. 2200-01-01 in epoch milliseconds.
EVENT_TS_RANGE = (946_684_800_000, 7_258_118_400_000)


class InvalidEvent(ValueError):
    """The payload cannot be stored: a required field is missing or of the wrong type."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    event_type: str
    zoom_meeting_id: str
    meeting_uuid: str | None
    occurred_at: datetime
    participant_name: str | None
    participant_email: str | None
    participant_user_id: str | None
    dedupe_key: bytes
    raw_data: str


def parse_event(body: dict[str, Any], raw: bytes) -> WebhookEvent:
    """Map a verified meeting event to the row stored in zoom_webhook_events."""
    event_type = body.get("event")
    if event_type not in STORED_EVENTS:
        raise InvalidEvent(f"event {event_type!r} is not a stored meeting event")
    payload = body.get("payload")
    meeting = payload.get("object") if isinstance(payload, dict) else None
    if not isinstance(meeting, dict):
        raise InvalidEvent("payload.object is required and must be an object")
    meeting_id = meeting_id_text(meeting.get("id"))
    participant = meeting.get("participant")
    if event_type in PARTICIPANT_EVENTS:
        if not isinstance(participant, dict):
            raise InvalidEvent("payload.object.participant is required for participant events")
    else:
        participant = {}

    event_ts = body.get("event_ts")
    container, field = OCCURRED_AT_FIELD[event_type]
    source = meeting if container == "object" else participant
    occurred_at = parse_time(source.get(field)) or time_from_event_ts(event_ts)
    if occurred_at is None:
        raise InvalidEvent(f"neither {container}.{field} nor event_ts gives the event's time")

    meeting_uuid = text_or_none(meeting.get("uuid"))
    return WebhookEvent(
        event_type=event_type,
        zoom_meeting_id=meeting_id,
        meeting_uuid=meeting_uuid,
        occurred_at=occurred_at,
        participant_name=text_or_none(participant.get("user_name")),
        participant_email=text_or_none(participant.get("email")),
        participant_user_id=first_text(participant, ("participant_user_id", "id", "user_id")),
        dedupe_key=dedupe_key(event_type, event_ts, meeting_id, meeting_uuid, participant),
        raw_data=raw_json_text(raw),
    )


# What tells one participant from another in a redelivery, strongest first.
IDENTITY_FIELDS = ("participant_uuid", "user_id", "id", "participant_user_id", "email", "user_name")
NO_IDENTITY = ("",) * len(IDENTITY_FIELDS)


def dedupe_key(
    event_type: str,
    event_ts: Any,
    meeting_id: str,
    meeting_uuid: str | None,
    participant: dict[str, Any],
) -> bytes:
    """Return the key under which redeliveries of one event collide.

    Zoom sends no event id, and a retry may be re-signed, so the key is built from what
    identifies the event itself: its type, event_ts, the meeting instance (uuid, and the meeting
    id, which a retry never changes) and, for participant events, who the participant is.
    """
    identity: list[str] | tuple[str, ...]
    if participant:
        identity = [text_or_none(participant.get(name)) or "" for name in IDENTITY_FIELDS]
    else:
        identity = NO_IDENTITY  # meeting.started and meeting.ended
    material = orjson.dumps([event_type, str(event_ts), meeting_id, meeting_uuid, identity])
    return hashlib.sha256(material).digest()


def meeting_id_text(value: Any) -> str:
    """Zoom sends the meeting id as a JSON number or a digit string; store it as text."""
    if isinstance(value, bool):
        raise InvalidEvent("payload.object.id must be a number or a string")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        text = value.strip()
    else:
        raise InvalidEvent("payload.object.id is required (a number or a non-empty string)")
    if len(text) > MAX_MEETING_ID_CHARS:
        raise InvalidEvent(f"payload.object.id is longer than {MAX_MEETING_ID_CHARS} characters")
    return clean_text(text)


def parse_time(value: Any) -> datetime | None:
    """Parse Zoom's ISO 8601 time ("2021-07-13T21:44:51Z"); None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Zoom's times are UTC
    return parsed.astimezone(UTC)


def time_from_event_ts(value: Any) -> datetime | None:
    """Convert event_ts (epoch milliseconds), keeping the milliseconds exactly."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if not EVENT_TS_RANGE[0] <= value <= EVENT_TS_RANGE[1]:
        return None
    return EPOCH + timedelta(milliseconds=value)


def text_or_none(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value != "":
        return clean_text(value)
    return None


def first_text(source: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = text_or_none(source.get(name))
        if value is not None and value.strip():
            return value
    return None


def clean_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; keep the rest of the value rather than refuse the event.
    return value.replace("\x00", "\ufffd")


def raw_json_text(raw: bytes) -> str:
    """Return the body as text for the jsonb column (which cannot hold \\u0000 either)."""
    text = raw.decode("utf-8")
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text
