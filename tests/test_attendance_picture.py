"""GET /api/bookings/{id}/attendance.svg: the attendance JSON drawn, over real deliveries."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.bookings.attendance import ZoomFact, attendance
from service.bookings.picture import LABEL_CHARS, PLOT_LEFT, PLOT_RIGHT, Schedule, attendance_svg
from tests.factories import make_booking, make_booking_request
from tests.test_reading_attendance import click, deliver, session
from tests.zoom_payloads import meeting_event, participant

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(1)</script>"


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def classes(node: ET.Element) -> set[str]:
    return set(node.get("class", "").split())


def drawn(svg: ET.Element, kind: str) -> list[ET.Element]:
    return [node for node in svg.iter() if kind in classes(node)]


def title_of(node: ET.Element) -> str:
    title = node.find(f"{SVG}title")
    assert title is not None, ET.tostring(node)
    return title.text or ""


def assert_standalone(body: bytes) -> ET.Element:
    """Well-formed SVG that runs nothing and loads nothing; return its root."""
    root = ET.fromstring(body)  # noqa: S314 (the service's own output, under test)
    assert root.tag == f"{SVG}svg"
    assert root.get("width") == "900"
    for node in root.iter():
        assert node.tag.startswith(SVG), node.tag  # no foreignObject HTML, no other namespace
        assert node.tag not in (f"{SVG}script", f"{SVG}foreignObject", f"{SVG}image")
        for name, value in node.attrib.items():
            assert not name.lower().startswith("on"), name  # no event handlers
            assert "href" not in name.lower(), name
            if "url(" in value:
                assert value.startswith("url(#"), value  # only patterns inside the document
    assert b"http" not in body.replace(b'xmlns="http://www.w3.org/2000/svg"', b"")
    return root


async def get_svg(client, booking_id, headers) -> tuple[bytes, ET.Element]:
    resp = await client.get(f"/api/bookings/{booking_id}/attendance.svg", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "image/svg+xml"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    body = await resp.read()
    return body, assert_standalone(body)


async def booked(db, meeting_id: str, starts_at: str = "2026-09-21T15:00:00Z", minutes: int = 60):
    """A booking that came from an accepted request scheduled at starts_at."""
    booking = await make_booking(db, zoom_meeting_id=meeting_id)
    await make_booking_request(
        db,
        coach_id=booking["coach_id"],
        athlete_id=booking["athlete_id"],
        starts_at=parse_time(starts_at),
        duration_minutes=minutes,
        status="accepted",
        booking_id=booking["id"],
    )
    return booking


async def test_the_picture_draws_the_same_lanes_bars_and_marks_as_the_json(
    client, db, auth_headers
):
    booking = await booked(db, "111")
    await click(db, booking, "start_meeting", "2026-09-21T14:59:30Z")
    await click(db, booking, "join_meeting", "2026-09-21T15:01:40Z")
    await deliver(client, session("111"))
    resp = await client.get(f"/api/bookings/{booking['id']}/attendance", headers=auth_headers)
    summary = await resp.json()
    _, svg = await get_svg(client, booking["id"], auth_headers)

    lanes = drawn(svg, "lane")
    assert [lane.get("data-name") for lane in lanes] == [p["name"] for p in summary["participants"]]
    assert [lane.get("data-host") for lane in lanes] == ["true", "false"]
    for lane, person in zip(lanes, summary["participants"], strict=True):
        bars = drawn(lane, "bar")
        drawn_times = [(b.get("data-joined-at"), b.get("data-left-at")) for b in bars]
        json_times = [(i["joined_at"], i["left_at"] or "") for i in person["intervals"]]
        assert [tuple(map(parse_time, t)) for t in drawn_times] == [
            tuple(map(parse_time, t)) for t in json_times
        ]
        [total] = drawn(lane, "total")
        assert int(total.get("data-seconds", "")) == person["seconds_present"]
        assert person["name"] in title_of(lane)
    marks = {kind: drawn(svg, kind) for kind in ("meeting-start", "meeting-end")}
    marks |= {kind: drawn(svg, kind) for kind in ("start-click", "join-click")}
    assert {k: parse_time(v[0].get("data-at")) for k, v in marks.items()} == {
        "meeting-start": parse_time(summary["meeting_started_at"]),
        "meeting-end": parse_time(summary["meeting_ended_at"]),
        "start-click": parse_time(summary["first_start_click_at"]),
        "join-click": parse_time(summary["first_join_click_at"]),
    }
    [scheduled] = drawn(svg, "scheduled")
    assert scheduled.get("data-starts-at") == "2026-09-21T15:00:00Z"
    assert scheduled.get("data-ends-at") == "2026-09-21T16:00:00Z"

    # Where things are drawn follows the axis: x grows linearly with time, ticks included.
    ticks = drawn(svg, "tick")
    assert len(ticks) >= 4
    (t0, x0), (t1, x1) = [
        (parse_time(t.get("data-at")), float(t[0].get("x1", ""))) for t in ticks[:2]
    ]
    per_second = (x1 - x0) / (t1 - t0).total_seconds()

    def x_of(moment: str) -> float:
        return x0 + (parse_time(moment) - t0).total_seconds() * per_second

    jill_bars = drawn(lanes[1], "bar")
    for bar, interval in zip(jill_bars, summary["participants"][1]["intervals"], strict=True):
        assert float(bar.get("x", "")) == pytest.approx(x_of(interval["joined_at"]), abs=0.05)
        right = float(bar.get("x", "")) + float(bar.get("width", ""))
        assert right == pytest.approx(x_of(interval["left_at"]), abs=0.05)
        assert "15:02:10" in title_of(bar) or "15:11:30" in title_of(bar)
    start_line = marks["meeting-start"][0].find(f"{SVG}line")
    assert float(start_line.get("x1", "")) == pytest.approx(x_of("2026-09-21T15:00:00Z"), abs=0.05)
    assert all(PLOT_LEFT <= float(t[0].get("x1", "")) <= PLOT_RIGHT for t in ticks)
    assert all(bar.get("data-source") == "webhook" for bar in drawn(svg, "bar"))
    text = "".join(svg.itertext())
    assert "UTC" in text and "15:10" in text and "scheduled" in text


async def test_a_hostile_name_is_drawn_as_text(client, db, auth_headers):
    booking = await booked(db, "111")
    joined = meeting_event(
        "meeting.participant_joined",
        meeting_id="111",
        event_ts=1790002930000,
        participant=participant(HOSTILE, email="x@example.com", join_time="2026-09-21T15:02:10Z"),
    )
    await deliver(client, [joined])
    body, svg = await get_svg(client, booking["id"], auth_headers)
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert b"<script" not in body
    [lane] = drawn(svg, "lane")
    assert lane.get("data-name") == HOSTILE
    assert HOSTILE in "".join(lane.itertext())


async def test_a_booking_without_anything_recorded_is_still_a_picture(client, db, auth_headers):
    booking = await make_booking(db)
    _, svg = await get_svg(client, booking["id"], auth_headers)
    assert drawn(svg, "lane") == [] and drawn(svg, "bar") == []
    assert "Nothing recorded yet" in "".join(svg.itertext())


async def test_the_picture_needs_the_internal_token_and_a_known_booking(client, db, auth_headers):
    booking = await make_booking(db)
    resp = await client.get(f"/api/bookings/{booking['id']}/attendance.svg")
    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthorized"
    for unknown in ("8f7bbd52-9d0b-4a4f-9e51-0c8dbf1f1a3e", "not-a-uuid"):
        resp = await client.get(f"/api/bookings/{unknown}/attendance.svg", headers=auth_headers)
        assert resp.status == 404
        assert (await resp.json())["error"] == "booking_not_found"


# The drawing itself, for the shapes a booking can have (pure: no database needed).

START = datetime(2026, 9, 21, 15, 0, tzinfo=UTC)
SCHEDULE = Schedule(START, START + timedelta(hours=1))


def person(index: int, *, left: bool = True, source: str | None = None) -> dict[str, Any]:
    joined = START + timedelta(minutes=index % 40, seconds=7 * index)
    interval: dict[str, Any] = {
        "joined_at": joined,
        "left_at": joined + timedelta(minutes=12) if left else None,
    }
    if source is not None:
        interval["source"] = source
    return {
        "name": f"Participant number {index} with a name longer than any lane label",
        "email": f"p{index}@example.com",
        "user_id": f"id-{index}",
        "is_host": index == 0,
        "intervals": [interval],
        "seconds_present": 720 if left else 0,
    }


def summary(people: list[dict[str, Any]], *, ended: bool) -> dict[str, Any]:
    return {
        "booking_id": "a92ad26a-9da5-4ca8-aaa6-afb2c3380d3f",
        "meeting_started_at": START,
        "meeting_ended_at": START + timedelta(minutes=55) if ended else None,
        "first_start_click_at": START - timedelta(seconds=30),
        "first_join_click_at": None,
        "participants": people,
    }


@pytest.mark.parametrize("count", [0, 1, 2, 30])
@pytest.mark.parametrize("ended", [True, False], ids=["ended", "running"])
def test_every_size_of_meeting_is_a_standalone_picture(count: int, ended: bool):
    people = [person(i, left=ended or i % 2 == 0) for i in range(count)]
    svg = assert_standalone(attendance_svg(summary(people, ended=ended), SCHEDULE))
    lanes = drawn(svg, "lane")
    assert len(lanes) == count
    assert len(drawn(svg, "meeting-end")) == (1 if ended else 0)
    assert len(drawn(svg, "open")) == sum(1 for p in people if p["intervals"][0]["left_at"] is None)
    height = float(svg.get("height", ""))
    lane_boxes = [float(r.get("y", "")) for lane in lanes for r in drawn(lane, "bar")]
    assert all(0 < y < height for y in lane_boxes)
    for lane, p in zip(lanes, people, strict=True):
        shown = "".join(lane.find(f"{SVG}text").itertext())  # type: ignore[union-attr]
        assert len(shown) <= LABEL_CHARS and shown.rstrip(" (host)").endswith("\u2026")
        assert p["name"] in title_of(lane)
    if count == 0:
        assert "Nobody joined" in "".join(svg.itertext())


def test_each_source_of_evidence_looks_different():
    people = [person(0, source="webhook"), person(1, source="zoom_api")]
    people.append(person(2, source="webhook+zoom_api"))
    svg = assert_standalone(attendance_svg(summary(people, ended=True), SCHEDULE))
    bars = drawn(svg, "bar")
    assert [b.get("data-source") for b in bars] == ["webhook", "zoom_api", "webhook+zoom_api"]
    assert len({b.get("fill") for b in bars}) == 3  # a solid fill and two hatchings
    assert "recovered from Zoom" in title_of(bars[1])


def test_characters_xml_cannot_hold_and_direction_overrides_are_dropped():
    people = [person(0), person(1), person(2)]
    people[0]["name"] = "Bell\x07 and escape\x1b[31m"
    people[1]["name"] = "Coach \u202egnp.exe"
    people[2] |= {"name": None, "email": None}
    svg = assert_standalone(attendance_svg(summary(people, ended=True), None))
    names = [lane.get("data-name") for lane in drawn(svg, "lane")]
    assert names == ["Bell and escape[31m", "Coach gnp.exe", "unknown"]
    assert drawn(svg, "scheduled") == []


def fact(kind: str, minute: int, user_id: str, source: str) -> ZoomFact:
    """Athlete Alex's join or leave at START + minute, delivered or recovered."""
    return ZoomFact(
        occurred_at=START + timedelta(minutes=minute),
        event_type=f"meeting.participant_{kind}",
        meeting_uuid="inst==",
        stable_id="alex-id",
        join_user_id=user_id,
        name="Athlete Alex",
        source=source,
    )


def test_each_interval_carries_the_source_of_its_evidence_for_the_picture():
    facts = [
        ZoomFact(START, "meeting.started", "inst=="),
        fact("joined", 2, "1", "webhook"),
        fact("left", 20, "1", "zoom_api"),  # the leave's delivery was lost
        fact("joined", 25, "2", "zoom_api"),  # the whole rejoin was lost
        fact("left", 50, "2", "zoom_api"),
        ZoomFact(START + timedelta(minutes=55), "meeting.ended", "inst==", source="zoom_api"),
    ]
    drawn_summary = attendance("b", facts, [], interval_sources=True)
    [alex] = drawn_summary["participants"]
    assert [i["source"] for i in alex["intervals"]] == ["webhook+zoom_api", "zoom_api"]
    plain = attendance("b", facts, [])
    assert [set(i) for i in plain["participants"][0]["intervals"]] == [{"joined_at", "left_at"}] * 2
    svg = assert_standalone(attendance_svg(drawn_summary, SCHEDULE))
    assert [b.get("data-source") for b in drawn(svg, "bar")] == ["webhook+zoom_api", "zoom_api"]


@pytest.mark.parametrize("days", [0, 3, 400])
def test_the_axis_keeps_a_readable_number_of_ticks_whatever_the_span(days: int):
    people = [person(0)]
    people[0]["intervals"][0]["left_at"] = START + timedelta(days=days, minutes=30)
    svg = assert_standalone(attendance_svg(summary(people, ended=False), SCHEDULE))
    ticks = drawn(svg, "tick")
    assert 3 <= len(ticks) <= 10
    labels = ["".join(t.itertext()).strip() for t in ticks]
    days = {t.get("data-at", "")[:10] for t in ticks}
    dated = [label for label in labels if "-" in label]  # "09-23 00:00"
    assert len(dated) == (len(days) if days != {"2026-09-21"} else 0), labels


def test_the_header_says_where_the_evidence_came_from_and_when_it_was_reconciled():
    shown = summary([person(0, source="zoom_api")], ended=True)
    shown |= {"evidence": "webhooks+zoom_api", "reconciled_at": START + timedelta(hours=2)}
    text = "".join(assert_standalone(attendance_svg(shown, SCHEDULE)).itertext())
    assert "evidence: webhooks + recovered from Zoom, reconciled 17:00:00" in text
