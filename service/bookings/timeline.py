"""A booking's clicks and Zoom events as one story a support agent can read; pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.bookings.attendance import (
    JOIN_CLICK,
    START_CLICK,
    Row,
    ZoomFact,
    group_people,
    pair_joins_and_leaves,
)
from service.zoom_payload import (
    MEETING_ENDED,
    MEETING_STARTED,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
)

# What an entry is: a click in the web app, or an event Zoom sent.
CLICK_KIND = "click"
ZOOM_EVENT_KIND = "zoom_event"
CLICKS = {
    START_CLICK: ("coach", "Coach clicked Start Meeting"),
    JOIN_CLICK: ("athlete", "Athlete clicked Join Meeting"),
}
# At the same instant: clicks, then the meeting starting, joins, leaves, the meeting ending.
ORDER = {
    CLICK_KIND: 0,
    MEETING_STARTED: 1,
    PARTICIPANT_JOINED: 2,
    PARTICIPANT_LEFT: 3,
    MEETING_ENDED: 4,
}


def who(fact: ZoomFact) -> str:
    """Name a participant the way a person would: "Jill Chill (jchill@example.com)"."""
    if fact.name and fact.email:
        return f"{fact.name} ({fact.email})"
    return fact.name or fact.email or fact.stable_id or "A participant without a name"


def event_description(fact: ZoomFact, *, is_host: bool, unmatched_leave: bool) -> str:
    """Say in words what a Zoom event means."""
    if fact.event_type == MEETING_STARTED:
        return "Meeting started"
    if fact.event_type == MEETING_ENDED:
        return "Meeting ended"
    host = " as host" if is_host else ""
    if fact.event_type == PARTICIPANT_JOINED:
        return f"{who(fact)} joined the meeting{host}"
    if fact.event_type == PARTICIPANT_LEFT:
        note = " (no join matches this leave)" if unmatched_leave else ""
        return f"{who(fact)} left the meeting{note}"
    return f"Zoom sent {fact.event_type or 'an event without a type'}"


def timeline(events: Iterable[tuple[Any, ZoomFact]], clicks: Iterable[Row]) -> list[dict[str, Any]]:
    """Merge clicks and Zoom events, oldest first, each with at, kind, actor and description.

    events are (event id, ZoomFact) pairs; clicks are zoom_session_logs rows.
    """
    events = list(events)
    facts = [fact for _, fact in events]
    host_ids = {f.host_id for f in facts if f.host_id}
    # The leaves attendance leaves out of the sums, by the same pairing.
    unmatched: set[ZoomFact] = set()
    for person in group_people(f for f in facts if f.is_participant_event):
        unmatched.update(pair_joins_and_leaves(person).stray_leaves)

    entries = []
    for click in clicks:
        actor, description = CLICKS[click["action_type"]]
        entries.append(
            {
                "at": click["created_at"],
                "kind": CLICK_KIND,
                "type": click["action_type"],
                "actor": actor,
                "actor_id": click["coach_id"] if actor == "coach" else click["athlete_id"],
                "description": description,
                "id": click["id"],
                "source": None,
            }
        )
    for event_id, fact in events:
        is_host = bool(fact.zoom_id) and fact.zoom_id in host_ids
        entries.append(
            {
                "at": fact.occurred_at,
                "kind": ZOOM_EVENT_KIND,
                "type": fact.event_type,
                "actor": who(fact) if fact.is_participant_event else "zoom",
                "actor_id": fact.stable_id or None,
                "description": event_description(
                    fact, is_host=is_host, unmatched_leave=fact in unmatched
                ),
                "id": event_id,
                "source": fact.source,  # delivered by Zoom's webhook, or recovered from its API
            }
        )
    entries.sort(key=lambda e: (e["at"], ORDER.get(e["type"], ORDER[CLICK_KIND]), str(e["id"])))
    return entries
