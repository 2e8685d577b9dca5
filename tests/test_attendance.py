"""The pure attendance function: one person across rejoins, intervals, and order independence."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from service.bookings.attendance import (
    MEETING_ENDED,
    MEETING_STARTED,
    PARTICIPANT_JOINED,
    PARTICIPANT_LEFT,
    ZoomFact,
    attendance,
    fact_from_row,
)

T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
HOST_ID = "host-zoom-id"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def meeting(event_type: str, minutes: float) -> ZoomFact:
    return ZoomFact(at(minutes), event_type, meeting_uuid="inst-1", host_id=HOST_ID)


def person(event_type: str, minutes: float, **keys: str) -> ZoomFact:
    return ZoomFact(at(minutes), event_type, meeting_uuid="inst-1", host_id=HOST_ID, **keys)


COACH = {"participant_uuid": "pu-coach", "stable_id": HOST_ID, "zoom_id": HOST_ID,
         "email": "coach@example.com", "name": "Carl Coach"}  # fmt: skip
ATHLETE = {"participant_uuid": "pu-ath", "stable_id": "ath-id", "zoom_id": "ath-id",
           "email": "jchill@example.com", "name": "Jill Chill"}  # fmt: skip


def test_rejoin_with_a_new_per_join_user_id_is_one_person_with_two_intervals():
    facts = [
        meeting(MEETING_STARTED, 0),
        person(PARTICIPANT_JOINED, 1, join_user_id="100", **ATHLETE),
        person(PARTICIPANT_LEFT, 10, join_user_id="100", **ATHLETE),
        person(PARTICIPANT_JOINED, 12, join_user_id="200", **ATHLETE),
        person(PARTICIPANT_LEFT, 30, join_user_id="200", **ATHLETE),
        meeting(MEETING_ENDED, 31),
    ]
    summary = attendance("b", facts, [])
    [athlete] = summary["participants"]
    assert athlete["user_id"] == "ath-id"
    assert athlete["is_host"] is False
    assert athlete["intervals"] == [
        {"joined_at": at(1), "left_at": at(10)},
        {"joined_at": at(12), "left_at": at(30)},
    ]
    assert athlete["seconds_present"] == 27 * 60


def test_host_is_the_participant_whose_zoom_id_is_the_meetings_host_id():
    facts = [
        person(PARTICIPANT_JOINED, 0, join_user_id="1", **COACH),
        person(PARTICIPANT_JOINED, 0, join_user_id="2", **ATHLETE),
    ]
    hosts = {p["name"]: p["is_host"] for p in attendance("b", facts, [])["participants"]}
    assert hosts == {"Carl Coach": True, "Jill Chill": False}


def test_a_join_with_no_leave_lasts_until_the_meeting_ended():
    facts = [
        meeting(MEETING_STARTED, 0),
        person(PARTICIPANT_JOINED, 5, **ATHLETE),
        meeting(MEETING_ENDED, 45),
    ]
    [athlete] = attendance("b", facts, [])["participants"]
    assert athlete["intervals"] == [{"joined_at": at(5), "left_at": at(45)}]
    assert athlete["seconds_present"] == 40 * 60


def test_while_the_meeting_runs_left_at_is_null_and_time_counts_to_the_last_event():
    facts = [
        meeting(MEETING_STARTED, 0),
        person(PARTICIPANT_JOINED, 5, **ATHLETE),
        person(PARTICIPANT_JOINED, 20, **COACH),
    ]
    summary = attendance("b", facts, [])
    assert summary["meeting_ended_at"] is None
    athlete = next(p for p in summary["participants"] if p["name"] == "Jill Chill")
    assert athlete["intervals"] == [{"joined_at": at(5), "left_at": None}]
    assert athlete["seconds_present"] == 15 * 60


def test_a_leave_with_no_join_is_ignored_in_the_sums():
    facts = [meeting(MEETING_STARTED, 0), person(PARTICIPANT_LEFT, 5, **ATHLETE)]
    [athlete] = attendance("b", facts, [])["participants"]
    assert (athlete["intervals"], athlete["seconds_present"]) == ([], 0)


def test_two_devices_of_one_person_are_merged_into_one_interval():
    phone = {**ATHLETE, "participant_uuid": "pu-phone"}
    facts = [
        person(PARTICIPANT_JOINED, 0, join_user_id="1", **ATHLETE),
        person(PARTICIPANT_JOINED, 5, join_user_id="2", **phone),
        person(PARTICIPANT_LEFT, 20, join_user_id="1", **ATHLETE),
        person(PARTICIPANT_LEFT, 30, join_user_id="2", **phone),
    ]
    [athlete] = attendance("b", facts, [])["participants"]
    assert athlete["intervals"] == [{"joined_at": at(0), "left_at": at(30)}]


def test_guests_are_matched_by_name_but_signed_in_namesakes_stay_apart():
    guest = {"name": "iPhone"}
    facts = [
        person(PARTICIPANT_JOINED, 0, join_user_id="1", **guest),
        person(PARTICIPANT_LEFT, 3, join_user_id="1", **guest),
        person(PARTICIPANT_JOINED, 4, join_user_id="2", **guest),
        person(PARTICIPANT_JOINED, 1, name="Sam", stable_id="a", participant_uuid="pa"),
        person(PARTICIPANT_JOINED, 2, name="Sam", stable_id="b", participant_uuid="pb"),
    ]
    names = [p["name"] for p in attendance("b", facts, [])["participants"]]
    assert sorted(names) == ["Sam", "Sam", "iPhone"]


def test_intervals_are_clipped_to_the_meeting():
    facts = [
        meeting(MEETING_STARTED, 10),
        person(PARTICIPANT_JOINED, 9, **ATHLETE),  # clocks differ a little
        person(PARTICIPANT_LEFT, 41, **ATHLETE),
        meeting(MEETING_ENDED, 40),
    ]
    [athlete] = attendance("b", facts, [])["participants"]
    assert athlete["intervals"] == [{"joined_at": at(10), "left_at": at(40)}]
    assert athlete["seconds_present"] == 30 * 60


def test_first_clicks_and_meeting_times_are_reported():
    facts = [meeting(MEETING_STARTED, 0), meeting(MEETING_ENDED, 60)]
    clicks = [("join_meeting", at(2)), ("start_meeting", at(-1)), ("join_meeting", at(1))]
    summary = attendance("b", facts, clicks)
    assert summary["meeting_started_at"] == at(0)
    assert summary["meeting_ended_at"] == at(60)
    assert summary["first_start_click_at"] == at(-1)
    assert summary["first_join_click_at"] == at(1)


def test_nothing_known_gives_nulls_and_no_participants():
    assert attendance("b", [], []) == {
        "booking_id": "b",
        "meeting_started_at": None,
        "meeting_ended_at": None,
        "first_start_click_at": None,
        "first_join_click_at": None,
        "participants": [],
    }


def test_fact_from_row_reads_the_stable_id_and_host_from_the_raw_body():
    raw = {
        "event": PARTICIPANT_JOINED,
        "payload": {
            "object": {
                "id": "1",
                "uuid": "inst",
                "host_id": "h",
                "participant": {
                    "user_id": "16778240",
                    "user_name": "Jill",
                    "id": "",
                    "participant_uuid": "pu",
                    "email": "j@example.com",
                },
            }
        },
    }
    row = {"event_type": PARTICIPANT_JOINED, "occurred_at": T0, "raw_data": raw}
    fact = fact_from_row(row)
    assert (fact.stable_id, fact.join_user_id, fact.host_id, fact.meeting_uuid) == (
        "",
        "16778240",
        "h",
        "inst",
    )


def test_attendance_and_timeline_load_without_aiohttp_or_asyncpg():
    probe = (
        "import sys, service.bookings.attendance, service.bookings.timeline;"
        "print(sorted(m for m in ('aiohttp', 'asyncpg') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- properties -------------------------------------------------------------------------

IDENTITIES = [
    COACH,
    ATHLETE,
    {**ATHLETE, "participant_uuid": "pu-ath-2"},  # same person, another device
    {"name": "Guest"},
    {"name": "guest", "email": "Guest@Example.com"},
    {"participant_uuid": "pu-x", "name": "Sam"},
    {"stable_id": "sam-2", "name": "Sam"},
]

minutes = st.integers(min_value=0, max_value=120).map(lambda m: at(m / 2))
instances = st.sampled_from(["inst-1", "inst-1", "inst-2"])  # mostly one, sometimes a restart
participant_facts = st.builds(
    lambda kind, when, who, join, inst: ZoomFact(
        when, kind, meeting_uuid=inst, host_id=HOST_ID, join_user_id=join, **who
    ),
    st.sampled_from([PARTICIPANT_JOINED, PARTICIPANT_LEFT]),
    minutes,
    st.sampled_from(IDENTITIES),
    st.sampled_from(["", "1", "2"]),
    instances,
)
meeting_facts = st.builds(
    lambda kind, when, inst: ZoomFact(when, kind, meeting_uuid=inst, host_id=HOST_ID),
    st.sampled_from([MEETING_STARTED, MEETING_ENDED]),
    minutes,
    instances,
)
scenarios = st.lists(st.one_of(participant_facts, meeting_facts), max_size=25)
clicks = st.lists(st.tuples(st.sampled_from(["start_meeting", "join_meeting"]), minutes))


@settings(deadline=None, max_examples=150)
@given(scenarios, clicks, st.randoms(use_true_random=False), st.data())
def test_any_order_and_any_duplication_gives_the_same_summary(facts, taps, rnd, data):
    repeated = facts + data.draw(st.lists(st.sampled_from(facts), max_size=10)) if facts else []
    rnd.shuffle(repeated)
    taps_again = taps + taps[:2]
    rnd.shuffle(taps_again)
    assert attendance("b", repeated, taps_again) == attendance("b", facts, taps)


@settings(deadline=None, max_examples=150)
@given(scenarios)
def test_one_persons_intervals_never_overlap_and_fit_in_the_meeting(facts):
    summary = attendance("b", facts, [])
    started, ended = summary["meeting_started_at"], summary["meeting_ended_at"]
    for p in summary["participants"]:
        intervals = p["intervals"]
        for earlier, later in pairwise(intervals):
            assert earlier["left_at"] is not None
            assert earlier["left_at"] < later["joined_at"]
        for i in intervals:
            assert i["left_at"] is None or i["joined_at"] <= i["left_at"]
            assert started is None or i["joined_at"] >= started
            assert ended is None or (i["left_at"] is not None and i["left_at"] <= ended)
        if started is not None and ended is not None:
            # Zoom's times can contradict each other (an end before the start): length 0.
            assert p["seconds_present"] <= max(0, (ended - started).total_seconds())


def test_a_leave_whose_user_id_differs_from_its_join_still_closes_it():
    facts = [
        meeting(MEETING_STARTED, 0),
        person(PARTICIPANT_JOINED, 1, join_user_id="100", **ATHLETE),
        person(PARTICIPANT_LEFT, 10, join_user_id="999", **ATHLETE),
        meeting(MEETING_ENDED, 30),
    ]
    [athlete] = attendance("b", facts, [])["participants"]
    assert athlete["intervals"] == [{"joined_at": at(1), "left_at": at(10)}]


def test_a_new_instance_started_after_the_end_means_the_meeting_runs_again():
    restart = ZoomFact(at(50), MEETING_STARTED, meeting_uuid="inst-2", host_id=HOST_ID)
    facts = [meeting(MEETING_STARTED, 0), meeting(MEETING_ENDED, 40), restart]
    assert attendance("b", facts, [])["meeting_ended_at"] is None
    same_instance = [meeting(MEETING_STARTED, 0), meeting(MEETING_ENDED, 40)]
    same_instance.append(meeting(MEETING_STARTED, 50))  # bad data, not a restart
    assert attendance("b", same_instance, [])["meeting_ended_at"] == at(40)


def test_thousands_of_joins_and_leaves_are_summarised_in_linear_time():
    """Grouping and pairing never compare every record with every other."""
    facts = [meeting(MEETING_STARTED, 0), meeting(MEETING_ENDED, 600)]
    people = 3000
    for n in range(people):
        guest = {"name": f"Guest {n}", "join_user_id": f"j{n}"}  # no strong key: the name rule
        facts += [person(PARTICIPANT_JOINED, n / 10, **guest)]
        facts += [person(PARTICIPANT_LEFT, n / 10 + 5, **guest)]
    started = time.perf_counter()
    summary = attendance("b", facts, [])
    elapsed = time.perf_counter() - started
    assert len(summary["participants"]) == people
    assert {p["seconds_present"] for p in summary["participants"]} == {300}
    # Linear: a few hundred milliseconds at most on a busy machine; every pair took minutes.
    assert elapsed < 5
