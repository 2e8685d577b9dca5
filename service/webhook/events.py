"""A verified webhook body -> the WebhookEvent row stored for it, with its dedupe key; pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from service.zoom_payload import (
    OCCURRED_AT_FIELD,
    PARTICIPANT_EVENTS,
    STORED_EVENTS,
    InvalidEvent,
    meeting_id_text,
    meeting_object,
    occurred_at,
    participant_object,
    read_participant,
    text,
)


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
    meeting = meeting_object(body)
    if meeting is None:
        raise InvalidEvent("payload.object is required and must be an object")
    meeting_id = meeting_id_text(meeting.get("id"))
    participant = participant_object(meeting)
    if event_type in PARTICIPANT_EVENTS:
        if participant is None:
            raise InvalidEvent("payload.object.participant is required for participant events")
    else:
        participant = None

    event_ts = body.get("event_ts")
    moment = occurred_at(event_type, meeting, participant, event_ts)
    if moment is None:
        container, field = OCCURRED_AT_FIELD[event_type]
        raise InvalidEvent(f"neither {container}.{field} nor event_ts gives the event's time")

    meeting_uuid = text(meeting.get("uuid"))
    person = read_participant(participant) if participant is not None else None
    return WebhookEvent(
        event_type=event_type,
        zoom_meeting_id=meeting_id,
        meeting_uuid=meeting_uuid,
        occurred_at=moment,
        participant_name=person.name if person else None,
        participant_email=person.email if person else None,
        participant_user_id=person.stored_id if person else None,
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
    participant: Mapping[str, Any] | None,
) -> bytes:
    """Return the key under which redeliveries of one event collide.

    Zoom sends no event id, and a retry may be re-signed, so the key is built from what
    identifies the event itself: its type, event_ts, the meeting instance (uuid, and the meeting
    id, which a retry never changes) and, for participant events, who the participant is.
    """
    identity: list[str] | tuple[str, ...]
    if participant:
        identity = [text(participant.get(name)) or "" for name in IDENTITY_FIELDS]
    else:
        identity = NO_IDENTITY  # meeting.started and meeting.ended
    material = orjson.dumps([event_type, str(event_ts), meeting_id, meeting_uuid, identity])
    return hashlib.sha256(material).digest()


def raw_json_text(raw: bytes) -> str:
    """Return the body as text for the jsonb column (which cannot hold \\u0000 either)."""
    decoded = raw.decode("utf-8")
    return decoded.replace("\\u0000", "\\ufffd") if "\\u0000" in decoded else decoded
