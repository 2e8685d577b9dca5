"""Attendance from a booking's stored Zoom events and clicks; pure functions, no I/O.

Who is one person. Zoom gives every join a fresh `user_id`, so that value cannot tie a
rejoin to the earlier join. Two joins/leaves belong to the same person when they share
  1. the `participant_uuid`, or
  2. the stable Zoom id (`participant_user_id`, else the participant's `id`), or
  3. the email (compared case-insensitively), or
  4. the person token retention gives every participant event before it strips names and
     emails (one random token per person so grouped; service/jobs/retention.py), or
  5. the display name (case-insensitive), but only when one of the two records has none of
     the three keys above (a guest without an account or email): two signed-in people who
     happen to share a name stay apart.
The relation is closed transitively (in linear time, by the keys the records share), so the
grouping does not depend on the order the events arrived in. The summary's `user_id` is the
stable id (null for guests).

Intervals. Joins and leaves are paired per join session (Zoom's per-join `user_id` within one
meeting instance), oldest first; what is left over then pairs across sessions (a leave whose
user_id differs from its join's). A leave with no open join is ignored in the sums (the
timeline still shows it). A join with no leave lasts until the first `meeting.ended` at or
after it; when there is none the meeting still runs, `left_at` is null, and the time counted
for it runs up to the latest stored event of the booking: we count only what the stored facts
prove, and the figure grows as events arrive. Every interval is clipped to the meeting
(`meeting.started` .. `meeting.ended`, where known), one person's intervals are merged where
they overlap (two devices, duplicated joins), so `seconds_present` never exceeds the meeting's
length. Events are deduplicated first, so a redelivered event changes nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from service.zoom_payload import (
    MEETING_ENDED,
    MEETING_STARTED,
    PARTICIPANT_EVENTS,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    REPORT_FIELDS,
    meeting_object,
    participant_object,
    read_meeting,
    read_participant,
    text,
)

# zoom_webhook_events.source of a delivered event; a row without the column was delivered.
DELIVERED_SOURCE = "webhook"
# zoom_webhook_events.source of a fact recovered from Zoom's REST API (service/jobs/reconcile.py).
RECOVERED_SOURCE = "zoom_api"
START_CLICK = "start_meeting"
JOIN_CLICK = "join_meeting"


class Row(Protocol):
    """A stored row read by column name: an asyncpg Record, or a plain dict."""

    def __getitem__(self, key: str, /) -> Any: ...
    def get(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True, order=True)
class ZoomFact:
    """One stored Zoom event, reduced to what attendance and the timeline need."""

    occurred_at: datetime
    event_type: str
    meeting_uuid: str = ""
    host_id: str = ""
    participant_uuid: str = ""
    stable_id: str = ""  # participant_user_id, else the participant's Zoom id (zoom_payload)
    zoom_id: str = ""  # the participant's `id`, compared with the meeting's host_id
    join_user_id: str = ""  # Zoom's per-join user_id
    email: str = ""
    name: str = ""
    source: str = DELIVERED_SOURCE  # how the event reached us: "webhook" or "zoom_api"
    person: str = ""  # the person token retention wrote before stripping names and emails

    @property
    def is_participant_event(self) -> bool:
        return self.event_type in PARTICIPANT_EVENTS

    @property
    def strong_keys(self) -> tuple[tuple[str, str], ...]:
        email = self.email.strip().casefold()
        keys = (
            ("uuid", self.participant_uuid),
            ("id", self.stable_id),
            ("email", email),
            ("person", self.person),
        )
        return tuple((kind, value) for kind, value in keys if value)

    @property
    def name_key(self) -> str:
        return self.name.strip().casefold()


@dataclass(frozen=True, slots=True)
class Interval:
    joined_at: datetime
    left_at: datetime | None  # None: still in a meeting that has not ended
    counted_until: datetime  # left_at, or the latest known event while the meeting runs
    sources: frozenset[str] = frozenset({DELIVERED_SOURCE})  # where its joins and leaves came from

    @property
    def source(self) -> str:
        """The interval's evidence: "webhook", "zoom_api", or "webhook+zoom_api" when merged."""
        return "+".join(sorted(self.sources))

    @property
    def seconds(self) -> float:
        return max(0.0, (self.counted_until - self.joined_at).total_seconds())


def fact_from_row(row: Row) -> ZoomFact:
    """Read a stored zoom_webhook_events row: its type, time, raw body and stored columns.

    The raw body is read with the same reader as at ingest (service.zoom_payload), so a person
    is the same person at ingest and here; it holds the host id and every participant id. A row
    without one (written by hand) falls back to the stored columns. A row recovered from Zoom's
    API holds Zoom's REST record instead of a webhook body (see fact_from_recovered_row).
    """
    if row.get("source") == RECOVERED_SOURCE:
        return fact_from_recovered_row(row)
    event_type = row["event_type"] or ""
    source = text(row.get("source")) or DELIVERED_SOURCE
    meeting = meeting_object(row.get("raw_data")) or {}
    instance = read_meeting(meeting)
    meeting_uuid = instance.uuid or text(row.get("meeting_uuid")) or ""
    if event_type not in PARTICIPANT_EVENTS:
        return ZoomFact(
            row["occurred_at"], event_type, meeting_uuid, instance.host_id or "", source=source
        )
    person_object = participant_object(meeting)
    if not person_object:
        stable_id = text(row.get("participant_user_id"))  # all that a row without a body tells
        person = read_participant({})
    else:
        person = read_participant(person_object)
        stable_id = person.stable_id
    return ZoomFact(
        occurred_at=row["occurred_at"],
        event_type=event_type,
        meeting_uuid=meeting_uuid,
        host_id=instance.host_id or "",
        participant_uuid=person.participant_uuid or "",
        stable_id=stable_id or "",
        zoom_id=person.zoom_id or "",
        join_user_id=person.join_user_id or "",
        email=person.email or text(row.get("participant_email")) or "",
        name=person.name or text(row.get("participant_name")) or "",
        source=source,
        person=person_token(row),
    )


def fact_from_recovered_row(row: Row) -> ZoomFact:
    """Read a row reconciliation stored: raw_data is a participant report record, read with
    REPORT_FIELDS, or for the meeting's start and end the instance's details (uuid, host_id)."""
    event_type, record = row["event_type"] or "", row.get("raw_data")
    record = record if isinstance(record, Mapping) else {}
    meeting_uuid = text(row.get("meeting_uuid")) or ""
    if event_type not in PARTICIPANT_EVENTS:
        instance = read_meeting(record)
        return ZoomFact(
            row["occurred_at"],
            event_type,
            instance.uuid or meeting_uuid,
            instance.host_id or "",
            source=RECOVERED_SOURCE,
        )
    person = read_participant(record, REPORT_FIELDS)
    return ZoomFact(
        occurred_at=row["occurred_at"],
        event_type=event_type,
        meeting_uuid=meeting_uuid,
        participant_uuid=person.participant_uuid or "",
        stable_id=person.stable_id or "",
        zoom_id=person.zoom_id or "",
        join_user_id=person.join_user_id or "",
        email=person.email or text(row.get("participant_email")) or "",
        name=person.name or text(row.get("participant_name")) or "",
        source=RECOVERED_SOURCE,
        person=person_token(row),
    )


def person_token(row: Row) -> str:
    """The row's person token (participant_person), written by retention; "" before it ran."""
    token = row.get("participant_person")
    return str(token) if token else ""


def same_person(a: ZoomFact, b: ZoomFact) -> bool:
    """Tell whether two participant records are one person (the rule in the module docstring)."""
    if set(a.strong_keys) & set(b.strong_keys):
        return True
    if a.strong_keys and b.strong_keys:
        return False
    return bool(a.name_key) and a.name_key == b.name_key


def group_people(facts: Iterable[ZoomFact]) -> list[list[ZoomFact]]:
    """Partition participant records into people; deterministic whatever the input order."""
    records = sorted(set(facts))
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    # same_person, in linear time: records sharing a strong key are one person; records sharing
    # a name are one person when one of them has no strong key, and then, transitively, all of
    # that name are (the keyless record joins each of them).
    first_with_key: dict[tuple[str, str], int] = {}
    by_name: dict[str, list[int]] = {}
    keyless_names: set[str] = set()
    for i, record in enumerate(records):
        for key in record.strong_keys:
            join(first_with_key.setdefault(key, i), i)
        if record.name_key:
            by_name.setdefault(record.name_key, []).append(i)
            if not record.strong_keys:
                keyless_names.add(record.name_key)
    for name in keyless_names:
        first, *rest = by_name[name]
        for i in rest:
            join(first, i)
    groups: dict[int, list[ZoomFact]] = {}
    for i, record in enumerate(records):
        groups.setdefault(root(i), []).append(record)
    return list(groups.values())


@dataclass(frozen=True, slots=True)
class MeetingWindow:
    started_at: datetime | None
    ended_at: datetime | None
    ends: tuple[datetime, ...]  # every meeting.ended time, sorted
    last_known: datetime | None  # the latest event of any kind

    def end_after(self, moment: datetime) -> datetime | None:
        """Return the first meeting end at or after moment; None while that meeting runs."""
        at = bisect.bisect_left(self.ends, moment)
        return self.ends[at] if at < len(self.ends) else None


def meeting_window(facts: Sequence[ZoomFact]) -> MeetingWindow:
    """Find when the meeting started and ended.

    A new instance (another Zoom uuid) started after the last end, and not ended itself, means
    the meeting runs again: no end yet.
    """
    starts = sorted(f for f in facts if f.event_type == MEETING_STARTED)
    ended = [f for f in facts if f.event_type == MEETING_ENDED]
    ends = tuple(sorted({f.occurred_at for f in ended}))
    ended_at = ends[-1] if ends else None
    if ended_at is not None and starts and starts[-1].occurred_at > ended_at:
        if starts[-1].meeting_uuid not in {f.meeting_uuid for f in ended}:
            ended_at = None
    last_known = max((f.occurred_at for f in facts), default=None)
    return MeetingWindow(starts[0].occurred_at if starts else None, ended_at, ends, last_known)


# A join and its leave, with the sources of the two events.
Visit = tuple[datetime, datetime, frozenset[str]]


@dataclass(frozen=True, slots=True)
class Pairing:
    """One person's joins and leaves, paired."""

    visits: list[Visit]  # (join, leave, their sources)
    open_joins: list[ZoomFact]  # joins no leave closes
    stray_leaves: list[
        ZoomFact
    ]  # leaves with no join: ignored in the sums, flagged in the timeline


def pair_joins_and_leaves(records: Iterable[ZoomFact]) -> Pairing:
    """Pair one person's joins and leaves: within a join session first, then across sessions.

    A join session is one meeting instance and per-join user_id, as Zoom sends them; what is
    left over (a leave whose user_id differs from its join's) is paired across sessions in time
    order. This is the one definition of "a leave with no join".
    """
    sessions: dict[tuple[str, str], list[ZoomFact]] = {}
    for record in records:
        sessions.setdefault((record.meeting_uuid, record.join_user_id), []).append(record)
    visits: list[Visit] = []
    leftovers: list[ZoomFact] = []
    for session in sessions.values():
        closed, unpaired = pair(session)
        visits += closed
        leftovers += unpaired
    closed, unpaired = pair(leftovers)
    visits += closed
    return Pairing(
        visits=visits,
        open_joins=[r for r in unpaired if r.event_type == PARTICIPANT_JOINED],
        stray_leaves=[r for r in unpaired if r.event_type == PARTICIPANT_LEFT],
    )


def person_intervals(records: Sequence[ZoomFact], window: MeetingWindow) -> list[Interval]:
    """Pair one person's joins and leaves, close open joins, clip to the meeting, and merge."""
    pairing = pair_joins_and_leaves(records)
    raw: list[tuple[datetime, datetime | None, frozenset[str]]] = list(pairing.visits)
    # A join with no leave lasts until the meeting ended; a stray leave proves nothing.
    raw += [
        (r.occurred_at, window.end_after(r.occurred_at), frozenset({r.source}))
        for r in pairing.open_joins
    ]
    return merge(clip(raw, window))


def pair(records: Iterable[ZoomFact]) -> tuple[list[Visit], list[ZoomFact]]:
    """Pair each leave with the open join before it; return the intervals and the unpaired."""
    # At the same instant a join sorts before a leave, so a zero-length visit pairs up.
    ordered = sorted(records, key=lambda r: (r.occurred_at, r.event_type != PARTICIPANT_JOINED))
    closed: list[Visit] = []
    unpaired: list[ZoomFact] = []
    opened: ZoomFact | None = None
    for record in ordered:
        if record.event_type == PARTICIPANT_JOINED:
            opened = opened or record  # a second join while in: the first one counts
        elif opened is not None:
            closed.append(
                (opened.occurred_at, record.occurred_at, frozenset({opened.source, record.source}))
            )
            opened = None
        else:
            unpaired.append(record)
    if opened is not None:
        unpaired.append(opened)
    return closed, unpaired


def clip(
    raw: Iterable[tuple[datetime, datetime | None, frozenset[str]]], window: MeetingWindow
) -> list[Interval]:
    """Clip intervals to the meeting; an open one is counted up to the latest known event."""
    clipped = []
    for joined, left, sources in raw:
        if window.started_at is not None and joined < window.started_at:
            joined = window.started_at
        if window.ended_at is not None and (left is None or left > window.ended_at):
            left = window.ended_at  # a join after the last end has no meeting to be in
        until = left if left is not None else max(joined, window.last_known or joined)
        if left is not None and left < joined:
            continue  # the whole visit lies outside the meeting
        clipped.append(Interval(joined, left, until, sources))
    return clipped


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Merge overlapping or touching intervals; an open interval swallows everything after it."""
    merged: list[Interval] = []
    for item in sorted(intervals, key=lambda i: (i.joined_at, i.counted_until)):
        if merged and item.joined_at <= merged[-1].counted_until:
            last = merged[-1]
            if last.left_at is None or item.left_at is None:
                left = None
            else:
                left = max(last.left_at, item.left_at)
            until = max(last.counted_until, item.counted_until)
            merged[-1] = Interval(last.joined_at, left, until, last.sources | item.sources)
        else:
            merged.append(item)
    return merged


def _first(values: Iterable[str]) -> str | None:
    return next((v for v in values if v), None)


def participant_summary(
    records: Sequence[ZoomFact],
    window: MeetingWindow,
    host_ids: frozenset[str],
    interval_sources: bool = False,
) -> dict[str, Any]:
    """Summarise one person: names and ids from their earliest record, intervals and seconds."""
    intervals = person_intervals(records, window)
    shown = []
    for interval in intervals:
        item: dict[str, Any] = {"joined_at": interval.joined_at, "left_at": interval.left_at}
        if interval_sources:
            item["source"] = interval.source
        shown.append(item)
    return {
        "name": _first(r.name for r in records),
        "email": _first(r.email for r in records),
        "user_id": _first(r.stable_id for r in records),
        "is_host": any(r.zoom_id in host_ids for r in records if r.zoom_id),
        "intervals": shown,
        "seconds_present": int(sum(i.seconds for i in intervals)),
    }


def attendance(
    booking_id: Any,
    facts: Iterable[ZoomFact],
    clicks: Iterable[tuple[str, datetime]],
    *,
    interval_sources: bool = False,
) -> dict[str, Any]:
    """Summarise who attended a booking's meeting and when; the contract's attendance shape.

    facts are the booking's Zoom events (see fact_from_row), clicks its (action_type,
    created_at) pairs. The result is the same for any order or repetition of either input.
    interval_sources adds each interval's `source` (the picture draws it; the contract's JSON
    has no such field).
    """
    facts = sorted(set(facts))
    window = meeting_window(facts)
    host_ids = frozenset(f.host_id for f in facts if f.host_id)
    people = group_people(f for f in facts if f.is_participant_event)
    summaries = [participant_summary(p, window, host_ids, interval_sources) for p in people]
    summaries.sort(key=_participant_order)
    clicks = set(clicks)
    return {
        "booking_id": booking_id,
        "meeting_started_at": window.started_at,
        "meeting_ended_at": window.ended_at,
        "first_start_click_at": min((t for a, t in clicks if a == START_CLICK), default=None),
        "first_join_click_at": min((t for a, t in clicks if a == JOIN_CLICK), default=None),
        "participants": summaries,
    }


def evidence(sources: Iterable[str]) -> str:
    """Say where a booking's events came from: "webhooks", "zoom_api", both, or "none"."""
    found = set(sources)
    recovered, delivered = RECOVERED_SOURCE in found, bool(found - {RECOVERED_SOURCE})
    if delivered and recovered:
        return "webhooks+zoom_api"
    if recovered:
        return "zoom_api"
    return "webhooks" if delivered else "none"


def _participant_order(summary: Mapping[str, Any]) -> tuple[str, str, str, str]:
    intervals = summary["intervals"]
    first = intervals[0]["joined_at"].isoformat() if intervals else "~"
    return (first, summary["name"] or "", summary["email"] or "", summary["user_id"] or "")
