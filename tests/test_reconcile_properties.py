"""Property: however a meeting's facts split between deliveries and Zoom's report, in any order
and with duplicates, attendance equals the attendance of every fact delivered once.

The pieces are the service's own: the facts a report stands for (recovered_rows), the matching
that keeps only what no stored event records (missing_rows), the reading of stored rows
(fact_from_row) and the summary (attendance). One test runs the same through the database and
the route, with fewer examples.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from devtools.fake_zoom import FakeZoom, PastInstance, participant_record, zoom_time
from service.bookings.attendance import attendance, fact_from_row
from service.jobs.reconcile import InstanceReport, missing_rows, recovered_rows
from tests.conftest import INTERNAL_TOKEN
from tests.factories import make_booking
from tests.zoom_payloads import meeting_event, post_signed

MEETING_ID = "81999999999"
INSTANCE = "prop/instance//uuid=="
HOST_ID = "host-zoom-id"
START = datetime(2030, 5, 6, 14, 0, tzinfo=UTC)
MINUTES = 60
END = START + timedelta(minutes=MINUTES)
BOOKING_ID = uuid.UUID(int=1)


@dataclass(frozen=True)
class Session:
    """One join of one person: Zoom's per-join user_id, and when they joined and left."""

    person: int
    user_id: str
    joined: datetime
    left: datetime


@dataclass(frozen=True)
class Person:
    name: str
    stable_id: str  # "" for a guest who did not sign in
    email: str


PEOPLE = [
    Person("Carl Coach", HOST_ID, "coach@example.com"),
    Person("Jill Chill", "athlete-zoom-id", "jill@example.com"),
    Person("Guest Parent", "", ""),
]


@st.composite
def sessions(draw: st.DrawFn) -> list[Session]:
    """Up to three joins each for up to three people, anywhere in the meeting (may overlap).

    One person never joins twice, nor leaves twice, within one second: the contract deems a
    stored event of the same type, second and person to record the fact already.
    """
    found = []
    counter = 16778240
    for person in range(draw(st.integers(1, len(PEOPLE)))):
        joins: set[int] = set()
        leaves: set[int] = set()
        for _ in range(draw(st.integers(1, 3))):
            joined = draw(st.integers(0, MINUTES * 60 - 1))
            left = draw(st.integers(joined, MINUTES * 60))
            assume(joined not in joins and left not in leaves)
            joins.add(joined)
            leaves.add(left)
            counter += 1024
            found.append(
                Session(
                    person,
                    str(counter),
                    START + timedelta(seconds=joined),
                    START + timedelta(seconds=left),
                )
            )
    return found


def delivery_row(body: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    """A stored delivery, as select_meeting_events returns it."""
    person = body["payload"]["object"].get("participant") or {}
    return {
        "event_type": body["event"],
        "occurred_at": occurred_at,
        "meeting_uuid": INSTANCE,
        "participant_name": person.get("user_name"),
        "participant_email": person.get("email") or None,
        "participant_user_id": person.get("participant_user_id") or person.get("user_id"),
        "raw_data": body,
        "source": "webhook",
    }


def deliveries(played: list[Session]) -> list[tuple[dict[str, Any], datetime]]:
    """Every webhook of the meeting, with the time it records."""
    out = [
        (meeting_event("meeting.started", **meeting(START), start_time=zoom_time(START)), START),
        (meeting_event("meeting.ended", **meeting(END), end_time=zoom_time(END)), END),
    ]
    for s in played:
        for kind, at, field in (("joined", s.joined, "join_time"), ("left", s.left, "leave_time")):
            person = PEOPLE[s.person]
            participant = {
                "user_id": s.user_id,
                "user_name": person.name,
                "id": person.stable_id,
                "participant_user_id": person.stable_id,
                # Zoom's participant_uuid names the person in the meeting, across rejoins.
                "participant_uuid": f"pu-{s.person}",
                "email": person.email,
                field: zoom_time(at),
            }
            body = meeting_event(
                f"meeting.participant_{kind}", **meeting(at), participant=participant
            )
            out.append((body, at))
    return out


def meeting(at: datetime) -> dict[str, Any]:
    return {
        "meeting_id": MEETING_ID,
        "uuid": INSTANCE,
        "host_id": HOST_ID,
        "event_ts": int(at.timestamp() * 1000) + 431,
    }


def report(played: list[Session]) -> PastInstance:
    """Zoom's view of the same meeting: details and one report record per join."""
    records = [
        participant_record(
            name=PEOPLE[s.person].name,
            user_id=s.user_id,
            participant_user_id=PEOPLE[s.person].stable_id,
            email=PEOPLE[s.person].email,
            join_time=s.joined,
            leave_time=s.left,
        )
        for s in played
    ]
    return PastInstance(INSTANCE, START, END, records, host_id=HOST_ID)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return attendance(BOOKING_ID, [fact_from_row(r) for r in rows], [])


@settings(max_examples=300, deadline=None)
@given(
    played=sessions(),
    data=st.data(),
)
def test_attendance_is_the_same_however_facts_split_between_deliveries_and_the_report(played, data):
    every = [delivery_row(body, at) for body, at in deliveries(played)]
    expected = summary(every)
    # What arrived before reconciliation: any subset, in any order, some of it twice.
    early = data.draw(st.lists(st.sampled_from(every), max_size=2 * len(every)), label="early")
    past = report(played)
    zoom = InstanceReport(INSTANCE, past.details(MEETING_ID), past.participants)
    recovered = missing_rows(recovered_rows(MEETING_ID, zoom), early)
    # Zoom's retries of what was lost, after reconciliation (any of them, any order, twice).
    late = data.draw(st.lists(st.sampled_from(every), max_size=2 * len(every)), label="late")

    got = summary(early + recovered + late)

    assert got["meeting_started_at"] == expected["meeting_started_at"]
    assert got["meeting_ended_at"] == expected["meeting_ended_at"]
    assert got["participants"] == expected["participants"]
    # Reconciling again adds nothing.
    assert missing_rows(recovered_rows(MEETING_ID, zoom), early + recovered + late) == []


@pytest.mark.parametrize("seed", range(8))
async def test_through_the_database_a_split_counts_nothing_twice(
    zoom_client, fake_zoom: FakeZoom, db, seed
):
    """The same through the route and the database, on seeded random splits."""
    rng = random.Random(seed)
    played = [
        Session(
            n % 3, str(16778240 + n), START + timedelta(seconds=j), START + timedelta(seconds=lv)
        )
        for n, (j, lv) in enumerate(
            # No zero-length join: Zoom's report of one (duration 0) means "not finished yet".
            sorted(
                (a, rng.randint(a + 1, MINUTES * 60)) for a in rng.sample(range(MINUTES * 60), 5)
            )
        )
    ]
    every = deliveries(played)
    early = rng.sample(every, rng.randint(0, len(every))) * rng.randint(1, 2)
    late = rng.sample(every, rng.randint(0, len(every)))
    booking = await make_booking(db, zoom_meeting_id=MEETING_ID)
    fake_zoom.add_past_meeting(MEETING_ID, report(played))
    auth = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}

    for body, _ in early:
        await post_signed(zoom_client, body)
    resp = await zoom_client.post(f"/api/bookings/{booking['id']}/reconcile", headers=auth)
    assert resp.status == 200, await resp.text()
    reconciled = await resp.json()
    assert reconciled["outcome"] in ("recovered", "complete")
    for body, _ in late:
        await post_signed(zoom_client, body)
    resp = await zoom_client.get(f"/api/bookings/{booking['id']}/attendance", headers=auth)
    got = await resp.json()

    expected = summary([delivery_row(body, at) for body, at in every])
    assert got["meeting_ended_at"] == zoom_time(END)
    assert [(p["name"], p["seconds_present"]) for p in got["participants"]] == [
        (p["name"], p["seconds_present"]) for p in expected["participants"]
    ]
    sources = {"webhooks"} if early or late else set()
    sources |= {"zoom_api"} if reconciled["recovered"] else set()
    assert got["evidence"] == "+".join(sorted(sources))
