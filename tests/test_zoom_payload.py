"""The one reader of Zoom's payloads: a participant is identified alike at ingest and read time."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from devtools.simulator import Meeting, Person, session_events
from service.bookings.attendance import ZoomFact, attendance, fact_from_row
from service.bookings.timeline import timeline
from service.webhook.events import parse_event
from service.zoom_payload import (
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    REPORT_FIELDS,
    read_participant,
)
from tests.factories import make_booking
from tests.zoom_payloads import meeting_event, post_signed

# Participant objects as Zoom may send them, each with what identifies the person.
# (fields sent, stable id: the same on every join, stored id: the participant_user_id column)
IDENTITIES = {
    "all three ids": (
        {"participant_user_id": "puid", "id": "zid", "user_id": "16778240"},
        "puid",
        "puid",
    ),
    "only id": ({"id": "zid"}, "zid", "zid"),
    "only participant_user_id": ({"participant_user_id": "puid"}, "puid", "puid"),
    "empty participant_user_id, then id": (
        {"participant_user_id": "", "id": "zid", "user_id": "16778240"},
        "zid",
        "zid",
    ),
    "blank ids, then user_id": (
        {"participant_user_id": " ", "id": "", "user_id": "16778240"},
        None,
        "16778240",
    ),
    "only user_id (a guest)": ({"user_id": "16778240"}, None, "16778240"),
    "a numeric id": ({"id": 16778240}, "16778240", "16778240"),
    "no id at all": ({"user_name": "iPhone"}, None, None),
}


def joined(fields: dict, *, user_name: str = "Jill", meeting_id: str = "555") -> dict:
    person = {"user_name": user_name, "join_time": "2026-09-21T15:02:10Z", **fields}
    return meeting_event(PARTICIPANT_JOINED, meeting_id=meeting_id, participant=person)


def stored_row(body: dict) -> dict:
    """The row ingest stores for body, as the read path fetches it back."""
    event = parse_event(body, orjson.dumps(body))
    return {
        "event_type": event.event_type,
        "occurred_at": event.occurred_at,
        "meeting_uuid": event.meeting_uuid,
        "participant_name": event.participant_name,
        "participant_email": event.participant_email,
        "participant_user_id": event.participant_user_id,
        "raw_data": orjson.loads(event.raw_data),
    }


@pytest.mark.parametrize("case", IDENTITIES)
def test_the_reader_names_the_stable_and_the_stored_id(case):
    fields, stable_id, stored_id = IDENTITIES[case]
    person = read_participant(fields)
    assert (person.stable_id, person.stored_id) == (stable_id, stored_id)


@pytest.mark.parametrize("case", IDENTITIES)
def test_ingest_stores_the_readers_id_and_read_time_finds_the_same_person(case):
    fields, stable_id, stored_id = IDENTITIES[case]
    row = stored_row(joined(fields))
    assert row["participant_user_id"] == stored_id
    fact = fact_from_row(row)
    assert fact.stable_id == (stable_id or "")
    assert fact.join_user_id == str(fields.get("user_id", ""))


def test_a_row_without_a_body_is_read_from_the_column_ingest_filled():
    row = {**stored_row(joined({"id": "zid"})), "raw_data": None}
    assert fact_from_row(row).stable_id == "zid"


def test_nul_is_cleaned_alike_in_the_columns_and_at_read_time():
    row = stored_row(joined({"id": "z\x00id"}, user_name="Ji\x00ll"))
    assert (row["participant_user_id"], row["participant_name"]) == ("z\ufffdid", "Ji\ufffdll")
    fact = fact_from_row(row)
    assert (fact.stable_id, fact.name) == ("z\ufffdid", "Ji\ufffdll")


def test_a_rest_report_record_is_read_with_its_own_field_names():
    record = {
        "id": "zid",
        "user_id": "16778240",
        "participant_user_id": "",
        "name": "Jill Chill",
        "user_email": "jchill@example.com",
        "join_time": "2026-09-21T15:02:10Z",
    }
    person = read_participant(record, REPORT_FIELDS)
    assert (person.stable_id, person.stored_id, person.join_user_id) == ("zid", "zid", "16778240")
    assert (person.name, person.email) == ("Jill Chill", "jchill@example.com")


def test_the_simulators_people_read_back_as_themselves():
    start = datetime(2026, 9, 21, 15, tzinfo=UTC)
    host = Person("Coach Casey", "coach@example.com", "host-zoom-id")
    guest = Person("Athlete Alex", "athlete@example.com", "guest-zoom-id")
    bodies = session_events(Meeting("123", "inst==", host.stable_id, start, 60), host, guest)
    facts = [fact_from_row(stored_row(body)) for body in bodies]
    people = attendance("b", facts, [])["participants"]
    assert [(p["user_id"], p["is_host"]) for p in people] == [
        ("host-zoom-id", True),
        ("guest-zoom-id", False),
    ]
    assert all(f.occurred_at >= start for f in facts)


def test_a_leave_with_no_join_is_the_same_leave_for_attendance_and_the_timeline():
    def fact(event_type: str, minute: int) -> ZoomFact:
        when = datetime(2026, 9, 21, 15, minute, tzinfo=UTC)
        return ZoomFact(when, event_type, "inst", stable_id="zid", name="Jill", join_user_id="1")

    # Joined, left, then a second leave that no join opened.
    facts = [fact(PARTICIPANT_JOINED, 0), fact(PARTICIPANT_LEFT, 10), fact(PARTICIPANT_LEFT, 20)]
    [jill] = attendance("b", facts, [])["participants"]
    assert jill["seconds_present"] == 600
    entries = timeline(enumerate(facts), [])
    flagged = [e["at"].minute for e in entries if "no join" in e["description"]]
    assert flagged == [20]


async def test_a_participant_is_the_same_person_in_every_read(client, db, auth_headers):
    """A person identified only by `id`: two joins (new user_id each), one stored id."""
    booking = await make_booking(db, zoom_meeting_id="555")
    for user_id, kind, field, clock in [
        ("16778240", PARTICIPANT_JOINED, "join_time", "15:02:10"),
        ("16778240", PARTICIPANT_LEFT, "leave_time", "15:10:00"),
        ("16779264", PARTICIPANT_JOINED, "join_time", "15:11:30"),
    ]:
        person = {
            "id": "zid",
            "user_id": user_id,
            "user_name": "Jill",
            field: f"2026-09-21T{clock}Z",
        }
        resp = await post_signed(client, meeting_event(kind, meeting_id="555", participant=person))
        assert resp.status == 200

    base = f"/api/bookings/{booking['id']}"
    events = await (await client.get(f"{base}/zoom-events", headers=auth_headers)).json()
    people = await (await client.get(f"{base}/attendance", headers=auth_headers)).json()
    story = await (await client.get(f"{base}/timeline", headers=auth_headers)).json()
    assert {e["participant_user_id"] for e in events["items"]} == {"zid"}
    [jill] = people["participants"]
    assert jill["user_id"] == "zid"
    assert len(jill["intervals"]) == 2
    assert {e["actor_id"] for e in story["items"]} == {"zid"}


async def test_a_guest_with_only_a_per_join_user_id_is_one_person_across_rejoins(
    client, db, auth_headers
):
    booking = await make_booking(db, zoom_meeting_id="556")
    for user_id, kind, field, clock in [
        ("16778240", PARTICIPANT_JOINED, "join_time", "15:02:10"),
        ("16778240", PARTICIPANT_LEFT, "leave_time", "15:10:00"),
        ("16779264", PARTICIPANT_JOINED, "join_time", "15:11:30"),
    ]:
        person = {"user_id": user_id, "user_name": "iPhone", field: f"2026-09-21T{clock}Z"}
        resp = await post_signed(client, meeting_event(kind, meeting_id="556", participant=person))
        assert resp.status == 200

    base = f"/api/bookings/{booking['id']}"
    events = await (await client.get(f"{base}/zoom-events", headers=auth_headers)).json()
    people = await (await client.get(f"{base}/attendance", headers=auth_headers)).json()
    # The column holds each join's user_id (the contract's rule); no stable id exists.
    assert [e["participant_user_id"] for e in events["items"]] == ["16778240"] * 2 + ["16779264"]
    [guest] = people["participants"]
    assert (guest["name"], guest["user_id"], len(guest["intervals"])) == ("iPhone", None, 2)
