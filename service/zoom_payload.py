"""Reading what Zoom sends: the one place that knows its field names; pure functions, no I/O.

A webhook body is `{"event", "event_ts", "payload": {"object": {meeting, "participant": {..}}}}`.
Ingest reads it here (service.webhook.events), attendance and the timeline read the stored
`raw_data` here again, the simulator writes its fields from here, and Zoom's REST report
records (`/report/meetings/{uuid}/participants`) map through `read_participant(record,
REPORT_FIELDS)`: so a participant is identified the same way wherever they are read.

Who a participant is (see `Participant`):
  - `stable_id`: `participant_user_id`, else `id`; the same on every join of a signed-in
    person, empty for a guest. Attendance groups people by it.
  - `join_user_id`: `user_id`, which Zoom gives afresh to every join.
  - `stored_id`: the first non-empty of `participant_user_id`, `id`, `user_id`; what the
    `participant_user_id` column holds (the contract's rule), so a guest still has one.
Text is kept as sent, except NUL (which PostgreSQL text cannot hold) becomes U+FFFD; a value
that is missing, empty or not a scalar reads as None, and blank ids never identify anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
ZOOM_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class InvalidEvent(ValueError):
    """The payload cannot be stored: a required field is missing or of the wrong type."""


# ---- text and times ---------------------------------------------------------------------


def clean_text(value: str) -> str:
    """Return value with NUL replaced: PostgreSQL text cannot hold it, the rest is kept."""
    return value.replace("\x00", "\ufffd")


def text(value: Any) -> str | None:
    """Return a scalar Zoom sent as text (numbers too); None when absent, empty or not a scalar."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value != "":
        return clean_text(value)
    return None


def first_text(source: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """Return the first of source's fields names that holds non-blank text."""
    for name in names:
        value = text(source.get(name))
        if value is not None and value.strip():
            return value
    return None


def meeting_id_text(value: Any) -> str:
    """Zoom sends the meeting id as a JSON number or a digit string; return it as text."""
    if isinstance(value, bool):
        raise InvalidEvent("payload.object.id must be a number or a string")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        stripped = value.strip()
    else:
        raise InvalidEvent("payload.object.id is required (a number or a non-empty string)")
    if len(stripped) > MAX_MEETING_ID_CHARS:
        raise InvalidEvent(f"payload.object.id is longer than {MAX_MEETING_ID_CHARS} characters")
    return clean_text(stripped)


def parse_time(value: Any, *, strict: bool = False) -> datetime | None:
    """Parse Zoom's ISO 8601 time ("2021-07-13T21:44:51Z"); None when absent or unreadable.

    A well-formed time that Python cannot hold in UTC (0001-01-01T00:00:00+01:00 falls in year
    0) is unreadable too, or with strict an InvalidEvent: the event is refused with 400.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Zoom's times are UTC
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        if strict:
            raise InvalidEvent(f"the time {value[:40]!r} is out of range") from None
        return None


def format_time(value: datetime) -> str:
    """Write a time the way Zoom does in payloads: UTC, whole seconds, a trailing Z."""
    return value.astimezone(UTC).strftime(ZOOM_TIME_FORMAT)


def time_from_event_ts(value: Any) -> datetime | None:
    """Convert event_ts (epoch milliseconds), keeping the milliseconds exactly."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if not EVENT_TS_RANGE[0] <= value <= EVENT_TS_RANGE[1]:
        return None
    return EPOCH + timedelta(milliseconds=value)


# ---- the body's parts -------------------------------------------------------------------


def meeting_object(body: Any) -> Mapping[str, Any] | None:
    """Return body's payload.object (the meeting), or None when it is not an object."""
    payload = body.get("payload") if isinstance(body, Mapping) else None
    meeting = payload.get("object") if isinstance(payload, Mapping) else None
    return meeting if isinstance(meeting, Mapping) else None


def participant_object(meeting: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return the meeting's participant object, or None when it has none."""
    person = meeting.get("participant")
    return person if isinstance(person, Mapping) else None


def occurred_at(
    event_type: str,
    meeting: Mapping[str, Any],
    participant: Mapping[str, Any] | None,
    event_ts: Any,
) -> datetime | None:
    """Return when a stored event happened: its payload time (OCCURRED_AT_FIELD), else event_ts."""
    container, field = OCCURRED_AT_FIELD[event_type]
    source = meeting if container == "object" else participant
    moment = parse_time(source.get(field), strict=True) if source is not None else None
    return moment or time_from_event_ts(event_ts)


@dataclass(frozen=True, slots=True)
class Meeting:
    """The meeting instance a payload is about (fields as in `payload.object`)."""

    uuid: str | None  # the instance; a recurring meeting's id stays, its uuid changes
    host_id: str | None  # the host's Zoom user id, equal to the host participant's `id`


def read_meeting(meeting: Mapping[str, Any]) -> Meeting:
    """Read the instance and host of a meeting object (the id is read by meeting_id_text)."""
    return Meeting(uuid=text(meeting.get("uuid")), host_id=first_text(meeting, ("host_id",)))


@dataclass(frozen=True, slots=True)
class ParticipantFields:
    """Where a participant record keeps what the webhook and the REST report name differently."""

    name: str
    email: str


WEBHOOK_FIELDS = ParticipantFields(name="user_name", email="email")
REPORT_FIELDS = ParticipantFields(name="name", email="user_email")

STABLE_ID_FIELDS = ("participant_user_id", "id")
STORED_ID_FIELDS = ("participant_user_id", "id", "user_id")


@dataclass(frozen=True, slots=True)
class Participant:
    """Who a participant record names (the rules are in the module docstring)."""

    stable_id: str | None  # participant_user_id, else id; None for a guest
    zoom_id: str | None  # `id`, compared with the meeting's host_id
    join_user_id: str | None  # `user_id`: new on every join
    participant_uuid: str | None
    email: str | None
    name: str | None

    @property
    def stored_id(self) -> str | None:
        """Return the participant_user_id column's value: participant_user_id, id, user_id."""
        if self.stable_id is not None:
            return self.stable_id
        user_id = self.join_user_id
        return user_id if user_id is not None and user_id.strip() else None


def read_participant(
    record: Mapping[str, Any], fields: ParticipantFields = WEBHOOK_FIELDS
) -> Participant:
    """Read a participant object (a webhook's, or a REST report record with REPORT_FIELDS)."""
    return Participant(
        stable_id=first_text(record, STABLE_ID_FIELDS),
        zoom_id=first_text(record, ("id",)),
        join_user_id=text(record.get("user_id")),
        participant_uuid=first_text(record, ("participant_uuid",)),
        email=text(record.get(fields.email)),
        name=text(record.get(fields.name)),
    )
