"""POST /api/requests/{id}/accept through the real app, the real database and the fake Zoom."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from devtools.fake_zoom import BASIC, CLIENT_SECRET, HOST_USER
from service.app import create_app
from service.config import ZOOM_API_VARIABLES
from service.keys import POOL
from tests.conftest import INTERNAL_TOKEN, test_config, zoom_config
from tests.factories import make_booking_request
from tests.zoom_payloads import meeting_event, post_signed

# Each test runs straight to PostgreSQL and again through PgBouncer in transaction mode.
pytestmark = pytest.mark.pgbouncer_too

AUTH = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
BOOKING_FIELDS = {
    "id",
    "coach_id",
    "athlete_id",
    "status",
    "zoom_meeting_id",
    "zoom_join_url",
    "zoom_start_url",
    "created_at",
}


async def accept(client, request_id, coach_id):
    return await client.post(
        f"/api/requests/{request_id}/accept", json={"coach_id": str(coach_id)}, headers=AUTH
    )


async def assert_still_pending(db, request_row) -> None:
    """What a failed accept must leave: the request pending, unlinked, and no booking at all."""
    row = await db.fetchrow(
        "SELECT status, booking_id FROM booking_requests WHERE id = $1", request_row["id"]
    )
    assert (row["status"], row["booking_id"]) == ("pending", None)
    assert await db.fetchval("SELECT count(*) FROM bookings") == 0


async def test_accept_creates_the_meeting_and_a_paid_booking(zoom_client, fake_zoom, db):
    starts_at = datetime(2031, 3, 4, 17, 30, tzinfo=UTC)
    req = await make_booking_request(db, starts_at=starts_at, duration_minutes=45)

    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 201
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert BOOKING_FIELDS <= body.keys()
    (meeting_id, meeting), *others = fake_zoom.meetings.items()
    assert others == []
    assert meeting["type"] == 2
    assert meeting["start_time"] == "2031-03-04T17:30:00Z"
    assert meeting["duration"] == 45
    assert meeting["settings"]["use_pmi"] is False
    assert "TeachTape" in meeting["topic"] and "2031-03-04 17:30" in meeting["topic"]
    create = fake_zoom.calls_to("create")[0]
    assert create.path == f"/v2/users/{HOST_USER}/meetings"
    assert create.raw_path == create.path  # the host user's email is sent as it is, "@" and all
    assert body["coach_id"] == str(req["coach_id"])
    assert body["athlete_id"] == str(req["athlete_id"])
    assert body["status"] == "paid"
    assert body["zoom_meeting_id"] == meeting_id == str(meeting["id"])
    assert body["zoom_join_url"] == meeting["join_url"]
    assert body["zoom_start_url"].startswith(f"https://zoom.example/s/{meeting_id}")
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None

    booking = await db.fetchrow("SELECT * FROM bookings")
    assert str(booking["id"]) == body["id"]
    assert (booking["status"], booking["zoom_meeting_id"]) == ("paid", meeting_id)
    assert booking["zoom_join_url"] == body["zoom_join_url"]
    assert booking["zoom_start_url"] == body["zoom_start_url"]
    assert (booking["coach_id"], booking["athlete_id"]) == (req["coach_id"], req["athlete_id"])
    request_row = await db.fetchrow("SELECT * FROM booking_requests WHERE id = $1", req["id"])
    assert (request_row["status"], request_row["booking_id"]) == ("accepted", booking["id"])


async def test_accepting_again_answers_200_with_the_same_booking(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)
    first = await accept(zoom_client, req["id"], req["coach_id"])
    again = await accept(zoom_client, req["id"], req["coach_id"])

    assert (first.status, again.status) == (201, 200)
    assert await again.json() == await first.json()
    assert len(fake_zoom.calls_to("create")) == 1
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1


async def test_ten_racing_accepts_create_one_meeting_and_one_booking(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)

    responses = await asyncio.gather(
        *(accept(zoom_client, req["id"], req["coach_id"]) for _ in range(10))
    )

    assert sorted(r.status for r in responses) == [200] * 9 + [201]
    bodies = [await r.json() for r in responses]
    assert len({b["id"] for b in bodies}) == 1
    assert len(fake_zoom.calls_to("create")) == 1
    assert len(fake_zoom.meetings) == 1
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1
    assert (
        await db.fetchval("SELECT booking_id::text FROM booking_requests WHERE id = $1", req["id"])
        == bodies[0]["id"]
    )


async def test_racing_accepts_wait_while_zoom_is_slow_and_answer_its_booking(
    zoom_client, fake_zoom, db
):
    fake_zoom.create_latency = 0.5
    req = await make_booking_request(db)

    responses = await asyncio.gather(
        *(accept(zoom_client, req["id"], req["coach_id"]) for _ in range(10))
    )

    assert sorted(r.status for r in responses) == [200] * 9 + [201]
    assert len({(await r.json())["id"] for r in responses}) == 1
    assert len(fake_zoom.calls_to("create")) == 1
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1


async def test_racing_accept_takes_over_after_zoom_hung_for_the_first(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)
    fake_zoom.fail("hang", target="create")

    first = asyncio.ensure_future(accept(zoom_client, req["id"], req["coach_id"]))
    await asyncio.sleep(0.2)
    second = await accept(zoom_client, req["id"], req["coach_id"])

    assert (await first).status == 502
    assert second.status == 201
    assert len(fake_zoom.meetings) == 1
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1


async def test_accept_gives_up_with_502_while_the_request_stays_locked(
    aiohttp_client, database_url, fake_zoom, db
):
    config = zoom_config(database_url, fake_zoom, zoom_budget_seconds=0.5)
    client = await aiohttp_client(create_app(config))
    req = await make_booking_request(db)

    async with db.transaction():
        await db.execute("SELECT 1 FROM booking_requests WHERE id = $1 FOR UPDATE", req["id"])
        started = time.monotonic()
        resp = await accept(client, req["id"], req["coach_id"])
        elapsed = time.monotonic() - started

    assert resp.status == 502
    assert (await resp.json())["error"] == "zoom_timeout"
    assert elapsed < 2
    assert fake_zoom.calls == []
    await assert_still_pending(db, req)


async def test_one_token_serves_several_accepts(zoom_client, fake_zoom, db):
    sequential = [await make_booking_request(db) for _ in range(3)]
    concurrent = [await make_booking_request(db) for _ in range(4)]

    for req in sequential:
        assert (await accept(zoom_client, req["id"], req["coach_id"])).status == 201
    responses = await asyncio.gather(
        *(accept(zoom_client, r["id"], r["coach_id"]) for r in concurrent)
    )

    assert [r.status for r in responses] == [201] * 4
    assert len(fake_zoom.token_requests) == 1
    token_call = fake_zoom.token_requests[0]
    assert token_call.headers["Authorization"] == BASIC
    assert token_call.body["grant_type"] == "account_credentials"
    assert len(fake_zoom.meetings) == 7


async def test_another_coach_is_refused_with_403(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)

    resp = await accept(zoom_client, req["id"], uuid.uuid4())

    assert resp.status == 403
    assert (await resp.json())["error"] == "not_your_request"
    await assert_still_pending(db, req)
    assert fake_zoom.calls == []


async def test_another_coach_cannot_read_an_accepted_booking(zoom_client, db):
    req = await make_booking_request(db)
    assert (await accept(zoom_client, req["id"], req["coach_id"])).status == 201

    resp = await accept(zoom_client, req["id"], uuid.uuid4())

    assert resp.status == 403


async def test_unknown_request_is_404(zoom_client, fake_zoom):
    resp = await accept(zoom_client, uuid.uuid4(), uuid.uuid4())

    assert resp.status == 404
    assert (await resp.json())["error"] == "booking_request_not_found"
    assert fake_zoom.calls == []


async def test_malformed_request_id_is_404(zoom_client):
    resp = await accept(zoom_client, "not-a-uuid", uuid.uuid4())

    assert resp.status == 404
    assert set(await resp.json()) == {"error", "message"}


@pytest.mark.parametrize("status", ["declined", "cancelled"])
async def test_declined_or_cancelled_request_is_409(zoom_client, fake_zoom, db, status):
    req = await make_booking_request(db, status=status)

    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 409
    assert (await resp.json())["error"] == "request_not_pending"
    assert await db.fetchval("SELECT status FROM booking_requests") == status
    assert await db.fetchval("SELECT count(*) FROM bookings") == 0
    assert fake_zoom.calls == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 422, "JSON"),
        (b"[]", 422, "object"),
        (b"{}", 422, "coach_id"),
        (b'{"coach_id": 42}', 422, "coach_id"),
        (b'{"coach_id": "coach-7"}', 422, "coach_id"),
    ],
)
async def test_malformed_body_is_400_or_422_naming_the_field(
    zoom_client, fake_zoom, db, body, status, says
):
    req = await make_booking_request(db)

    resp = await zoom_client.post(
        f"/api/requests/{req['id']}/accept",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )

    assert resp.status == status
    assert says in (await resp.json())["message"]
    await assert_still_pending(db, req)


async def test_accept_needs_the_internal_token(zoom_client, db):
    req = await make_booking_request(db)

    resp = await zoom_client.post(
        f"/api/requests/{req['id']}/accept", json={"coach_id": str(req["coach_id"])}
    )

    assert resp.status == 401
    await assert_still_pending(db, req)


async def test_without_zoom_credentials_accept_is_503_naming_them(
    aiohttp_client, database_url, clean_database, db
):
    config = test_config(database_url, missing_zoom_api_variables=ZOOM_API_VARIABLES)
    client = await aiohttp_client(create_app(config))
    req = await make_booking_request(db)

    resp = await accept(client, req["id"], req["coach_id"])

    assert resp.status == 503
    body = await resp.json()
    assert body["error"] == "zoom_not_configured"
    assert all(name in body["message"] for name in ZOOM_API_VARIABLES)
    await assert_still_pending(db, req)


async def test_orphan_webhook_event_is_linked_when_the_booking_is_accepted(
    zoom_client, fake_zoom, db
):
    req = await make_booking_request(db)
    started = meeting_event("meeting.started", meeting_id=str(fake_zoom.next_meeting_id))
    assert (await post_signed(zoom_client, started)).status == 200
    assert await db.fetchval("SELECT booking_id FROM zoom_webhook_events") is None

    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 201
    booking_id = (await resp.json())["id"]
    assert str(await db.fetchval("SELECT booking_id FROM zoom_webhook_events")) == booking_id


async def test_orphan_meeting_ended_completes_the_accepted_booking(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)
    ended = meeting_event(
        "meeting.ended", meeting_id=fake_zoom.next_meeting_id, end_time="2031-01-01T10:00:00Z"
    )
    assert (await post_signed(zoom_client, ended)).status == 200

    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 201
    assert (await resp.json())["status"] == "completed"
    assert await db.fetchval("SELECT status FROM bookings") == "completed"


# --- Zoom failing: 502 in time, the request still pending, nothing written, a later accept works.


async def assert_recovers(client, fake_zoom, db, req) -> None:
    await assert_still_pending(db, req)
    resp = await accept(client, req["id"], req["coach_id"])
    assert resp.status == 201
    assert len(fake_zoom.meetings) == 1
    assert await db.fetchval("SELECT status FROM booking_requests") == "accepted"


async def test_expired_token_is_renewed_once_and_the_call_retried(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)
    other = await make_booking_request(db)
    assert (await accept(zoom_client, other["id"], other["coach_id"])).status == 201
    fake_zoom.fail("expired_token", target="create")

    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 201
    assert len(fake_zoom.token_requests) == 2
    creates = fake_zoom.calls_to("create")
    assert len(creates) == 3
    assert creates[1].headers["Authorization"] != creates[2].headers["Authorization"]
    assert len(fake_zoom.meetings) == 2


async def test_token_rejected_twice_is_502_and_nothing_is_written(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)
    fake_zoom.fail("expired_token", target="create", times=2)

    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 502
    body = await resp.json()
    assert "124" in body["message"] and "Invalid access token" in body["message"]
    assert len(fake_zoom.token_requests) == 2
    await assert_recovers(zoom_client, fake_zoom, db, req)


async def test_rate_limit_waits_retry_after_seconds_then_succeeds(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)
    fake_zoom.fail("rate_limited", target="create", retry_after="1")

    started = time.monotonic()
    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 201
    assert time.monotonic() - started >= 0.9
    assert len(fake_zoom.calls_to("create")) == 2
    assert len(fake_zoom.meetings) == 1


async def test_rate_limit_honours_retry_after_as_an_http_date(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    fake_zoom.fail("rate_limited", target="create", retry_after=format_datetime(when, usegmt=True))

    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 201
    assert datetime.now(UTC) >= when - timedelta(milliseconds=50)
    assert len(fake_zoom.calls_to("create")) == 2


async def test_rate_limit_beyond_our_time_budget_is_502_at_once(zoom_client, fake_zoom, db):
    req = await make_booking_request(db)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    fake_zoom.fail("rate_limited", target="create", retry_after=tomorrow)

    started = time.monotonic()
    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 502
    assert time.monotonic() - started < 1
    body = await resp.json()
    assert body["error"] == "zoom_rate_limited"
    assert "429" in body["message"] and "rate limit" in body["message"]
    await assert_recovers(zoom_client, fake_zoom, db, req)


async def test_server_error_on_create_is_502_at_once_and_the_next_accept_creates_one_meeting(
    zoom_client, fake_zoom, db
):
    """A 5xx may come after Zoom created the meeting: repeating the create could make two."""
    req = await make_booking_request(db)
    fake_zoom.fail("server_error", target="create", times=1)

    resp = await accept(zoom_client, req["id"], req["coach_id"])
    assert resp.status == 502
    assert len(fake_zoom.calls_to("create")) == 1
    await assert_still_pending(db, req)

    again = await accept(zoom_client, req["id"], req["coach_id"])
    assert again.status == 201
    assert len(fake_zoom.calls_to("create")) == 2
    assert len(fake_zoom.meetings) == 1


@pytest.mark.parametrize(
    ("kind", "times", "code", "says"),
    [
        ("server_error", 1, "zoom_error", ["HTTP 500"]),
        ("refused", 1, "zoom_error", ["HTTP 400", "3161", "not allowed meeting hosting"]),
        ("malformed", 1, "zoom_bad_response", ["not JSON"]),
    ],
)
async def test_zoom_failure_is_502_with_zooms_answer_and_nothing_written(
    zoom_client, fake_zoom, db, kind, times, code, says
):
    req = await make_booking_request(db)
    fake_zoom.fail(kind, target="create", times=times)

    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 502
    body = await resp.json()
    assert body["error"] == code
    assert all(part in body["message"] for part in says)
    # A create is never repeated after Zoom answered: it may have created the meeting.
    assert len(fake_zoom.calls_to("create")) == times
    await assert_recovers(zoom_client, fake_zoom, db, req)


@pytest.mark.parametrize("target", ["create", "oauth"])
async def test_hanging_zoom_is_502_long_before_30_seconds(zoom_client, fake_zoom, db, target):
    req = await make_booking_request(db)
    fake_zoom.fail("hang", target=target)

    started = time.monotonic()
    resp = await accept(zoom_client, req["id"], req["coach_id"])

    assert resp.status == 502
    assert time.monotonic() - started < 3
    assert (await resp.json())["error"] == "zoom_timeout"
    await assert_recovers(zoom_client, fake_zoom, db, req)


async def test_unreachable_zoom_is_502(
    aiohttp_client, database_url, fake_zoom, db, unused_tcp_port
):
    closed = f"http://127.0.0.1:{unused_tcp_port}"
    config = zoom_config(database_url, fake_zoom, zoom_api_url=closed, zoom_oauth_url=closed)
    client = await aiohttp_client(create_app(config))
    req = await make_booking_request(db)

    resp = await accept(client, req["id"], req["coach_id"])

    assert resp.status == 502
    assert (await resp.json())["error"] == "zoom_unreachable"
    await assert_still_pending(db, req)


async def test_wrong_client_secret_is_502_and_never_shown_or_logged(
    aiohttp_client, database_url, fake_zoom, db, caplog
):
    caplog.set_level(logging.DEBUG)
    good = zoom_config(database_url, fake_zoom).zoom_api
    wrong = type(good)(good.account_id, good.client_id, "wrong-secret-value", good.host_user)
    client = await aiohttp_client(create_app(zoom_config(database_url, fake_zoom, zoom_api=wrong)))
    req = await make_booking_request(db)

    resp = await accept(client, req["id"], req["coach_id"])

    assert resp.status == 502
    text = await resp.text()
    assert "zoom_auth_failed" in text and "invalid_client" in text
    for secret in ("wrong-secret-value", CLIENT_SECRET, BASIC.split()[1]):
        assert secret not in text
        assert secret not in caplog.text
    await assert_still_pending(db, req)


async def test_zoom_failures_are_logged_with_the_tracking_id(zoom_client, fake_zoom, db, caplog):
    caplog.set_level(logging.WARNING)
    req = await make_booking_request(db)
    fake_zoom.fail("refused", target="create")

    assert (await accept(zoom_client, req["id"], req["coach_id"])).status == 502

    assert "fake-tracking-" in caplog.text
    token = fake_zoom.calls_to("create")[0].headers["Authorization"].split()[1]
    assert token not in caplog.text
    assert CLIENT_SECRET not in caplog.text


@pytest.mark.parametrize(
    "trigger",
    [
        "CREATE TRIGGER refuse_booking BEFORE INSERT ON bookings",
        # Fails at COMMIT: the server answered, so the transaction surely rolled back.
        "CREATE CONSTRAINT TRIGGER refuse_booking AFTER INSERT ON bookings"
        " DEFERRABLE INITIALLY DEFERRED",
    ],
    ids=["insert", "commit"],
)
async def test_failed_booking_write_deletes_the_new_meeting(zoom_client, fake_zoom, db, trigger):
    req = await make_booking_request(db)
    # A real database failure on the write, after Zoom created the meeting.
    await db.execute(
        """
        CREATE FUNCTION refuse_booking() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'bookings are refused in this test'; END; $$;
        """
        + trigger
        + " FOR EACH ROW EXECUTE FUNCTION refuse_booking();"
    )
    try:
        resp = await accept(zoom_client, req["id"], req["coach_id"])
    finally:
        await db.execute("DROP TRIGGER refuse_booking ON bookings; DROP FUNCTION refuse_booking();")

    assert resp.status == 500
    assert set(await resp.json()) == {"error", "message"}
    assert len(fake_zoom.calls_to("create")) == 1
    assert len(fake_zoom.deleted) == 1
    assert fake_zoom.meetings == {}
    await assert_recovers(zoom_client, fake_zoom, db, req)


async def test_accepts_waiting_for_zoom_hold_no_connection_and_reads_go_on(
    aiohttp_client, database_url, fake_zoom, db
):
    """Accept commits its claim before calling Zoom: slow Zoom calls never drain the pool."""
    config = zoom_config(database_url, fake_zoom, db_pool_max_size=3)
    client = await aiohttp_client(create_app(config))
    fake_zoom.create_latency = 0.6  # under the test's Zoom request timeout of 1 s
    requests = [await make_booking_request(db) for _ in range(6)]
    accepts = [asyncio.ensure_future(accept(client, r["id"], r["coach_id"])) for r in requests]
    for _ in range(200):  # until every accept is waiting for Zoom
        if len(fake_zoom.calls_to("create")) == len(requests):
            break
        await asyncio.sleep(0.01)

    started = time.monotonic()
    assert (await client.get("/readyz")).status == 200
    assert time.monotonic() - started < 0.5
    holding = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%'"
    )
    assert holding == 0
    claimed = await db.fetchval(
        "SELECT count(*) FROM booking_requests "
        "WHERE accept_claim IS NOT NULL AND status = 'pending'"
    )
    assert claimed == len(requests)  # each claim committed before its Zoom call

    assert [(await a).status for a in accepts] == [201] * len(requests)
    assert len(fake_zoom.meetings) == len(requests)
    released = "SELECT count(*) FROM booking_requests WHERE accept_claim IS NULL"
    assert await db.fetchval(released) == len(requests)


async def test_a_drained_pool_is_503_after_the_acquire_timeout_not_a_hang(
    aiohttp_client, database_url, fake_zoom, db
):
    config = zoom_config(
        database_url, fake_zoom, db_pool_max_size=2, db_acquire_timeout_seconds=0.3
    )
    app = create_app(config)
    client = await aiohttp_client(app)
    req = await make_booking_request(db)
    pool = app[POOL]
    held = [await pool.acquire(), await pool.acquire()]
    try:
        started = time.monotonic()
        resp = await accept(client, req["id"], req["coach_id"])
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        logs = await client.get(f"/api/bookings/{uuid.uuid4()}/zoom-logs", headers=AUTH)
        assert logs.status == 503
        assert time.monotonic() - started < 2
    finally:
        for conn in held:
            await pool.release(conn)
    assert fake_zoom.calls_to("create") == []
    await assert_still_pending(db, req)


async def terminate_other_backends(db) -> int:
    """pg_terminate_backend every other client connection to the test database."""
    rows = await db.fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'"
    )
    return len(rows)


async def test_backends_terminated_while_zoom_is_called_still_make_one_booking(
    zoom_client, fake_zoom, db
):
    """Nothing is held across the Zoom call, so a database that drops every connection
    meanwhile costs nothing: the booking is written on a fresh one, exactly once."""
    fake_zoom.create_latency = 0.5
    req = await make_booking_request(db)
    first = asyncio.ensure_future(accept(zoom_client, req["id"], req["coach_id"]))
    for _ in range(200):
        if fake_zoom.calls_to("create"):
            break
        await asyncio.sleep(0.01)
    assert await terminate_other_backends(db) >= 1
    racing = await accept(zoom_client, req["id"], req["coach_id"])

    assert (await first).status == 201
    assert racing.status == 200
    assert await terminate_other_backends(db) >= 1
    again = await accept(zoom_client, req["id"], req["coach_id"])  # the very next use: fine
    assert again.status == 200
    assert len(fake_zoom.meetings) == 1
    assert await db.fetchval("SELECT count(*) FROM bookings") == 1
    status = "SELECT status, accept_claim FROM booking_requests WHERE id = $1"
    assert tuple(await db.fetchrow(status, req["id"])) == ("accepted", None)
