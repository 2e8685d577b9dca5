"""Group commit: concurrent deliveries share transactions, and 200 still means committed."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import orjson
import pytest

from service.app import create_app
from service.keys import EVENT_STORE
from service.webhook.ingest import new_event_ids
from tests.conftest import test_config
from tests.factories import make_booking
from tests.zoom_payloads import meeting_event, participant, post_signed, sign

# Each test runs straight to PostgreSQL and again through PgBouncer in transaction mode.
pytestmark = pytest.mark.pgbouncer_too

STARTED = "meeting.started"
ENDED = "meeting.ended"
JOINED = "meeting.participant_joined"
LOCKED_MEETING = "424242"


def unreachable_database_url() -> str:
    """A DSN at a 127.0.0.1 port where nothing listens: connecting fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/nothing"


async def hold_meeting_lock(db, meeting_id: str) -> None:
    """Block the writers on meeting_id's advisory lock, as a booking being inserted would."""
    await db.execute("SELECT pg_advisory_lock(zoom_meeting_lock_key($1))", meeting_id)


async def wait_for_writer_blocked(db, count: int = 1, *, besides: int = 0) -> list[int]:
    """Return the pids of writer connections waiting on an advisory lock, once there are count."""
    for _ in range(500):
        pids = await db.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' "
            "AND pid NOT IN (pg_backend_pid(), $1)",
            besides,
        )
        if len(pids) >= count:
            return [r["pid"] for r in pids]
        await asyncio.sleep(0.01)
    raise AssertionError("no writer ever waited on the advisory lock")


async def wait_for_queue_depth(app, depth: int) -> None:
    for _ in range(500):
        if app[EVENT_STORE].depth >= depth:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the queue never reached {depth}")


async def stuck_writer(aiohttp_client, database_url, db, **overrides):
    """A service whose one writer is stuck on LOCKED_MEETING's lock with a first delivery."""
    settings = {"ingest_writers": 1, "ingest_lock_timeout_seconds": 60.0, **overrides}
    app = create_app(test_config(database_url, **settings))
    client = await aiohttp_client(app)
    await hold_meeting_lock(db, LOCKED_MEETING)
    body = meeting_event(STARTED, meeting_id=LOCKED_MEETING, uuid="first==")
    first = asyncio.ensure_future(post_signed(client, body, expect=None))  # each test checks it
    await wait_for_writer_blocked(db)
    return app, client, first


async def test_concurrent_deliveries_with_duplicates_are_each_stored_exactly_once(client, db):
    paid = await make_booking(db, status="paid", zoom_meeting_id="9001")
    cancelled = await make_booking(db, status="cancelled", zoom_meeting_id="9002")
    distinct = []
    for meeting in range(5):
        meeting_id = f"900{meeting + 1}"  # 9001 and 9002 have bookings, the others are orphans
        uuid = f"instance-{meeting}=="
        distinct.append(meeting_event(STARTED, meeting_id=meeting_id, uuid=uuid))
        distinct.append(meeting_event(ENDED, meeting_id=meeting_id, uuid=uuid, event_ts=2 * 10**12))
        for n in range(28):
            person = participant(f"Person {n}", stable_id=f"p{n}", email=f"p{n}@example.com")
            distinct.append(
                meeting_event(
                    JOINED,
                    meeting_id=meeting_id,
                    uuid=uuid,
                    event_ts=10**12 + n,
                    participant=person,
                )
            )
    deliveries = distinct + distinct[::3]  # 150 events, 50 of them delivered twice
    assert len(deliveries) == 200

    responses = await asyncio.gather(*(post_signed(client, body) for body in deliveries))
    assert [r.status for r in responses] == [200] * 200
    outcomes = [(await r.json())["status"] for r in responses]
    assert outcomes.count("stored") == 150
    assert outcomes.count("duplicate") == 50

    rows = await db.fetch("SELECT zoom_meeting_id, booking_id, event_type FROM zoom_webhook_events")
    assert len(rows) == 150
    links = {r["zoom_meeting_id"]: r["booking_id"] for r in rows}
    assert links == {
        "9001": paid["id"],
        "9002": cancelled["id"],
        "9003": None,
        "9004": None,
        "9005": None,
    }
    statuses = dict(await db.fetch("SELECT zoom_meeting_id, status FROM bookings"))
    assert statuses == {"9001": "completed", "9002": "cancelled"}

    metrics = await (await client.get("/metrics")).text()
    batches = metric(metrics, "zoom_webhook_ingest_batch_size_count")
    assert 1 <= batches < 150  # several events shared a transaction
    # Copies of one event in one batch are sent to the database once.
    assert 150 <= metric(metrics, "zoom_webhook_ingest_batch_size_sum") <= 200


async def test_same_event_twice_in_one_batch_is_stored_once_and_answered_both_times(
    aiohttp_client, database_url, clean_database, db
):
    app, client, first = await stuck_writer(aiohttp_client, database_url, db)
    body = meeting_event(STARTED, meeting_id=LOCKED_MEETING)
    twins = [asyncio.ensure_future(post_signed(client, body)) for _ in range(2)]
    await wait_for_queue_depth(app, 2)  # both copies wait for the same next batch
    await db.execute("SELECT pg_advisory_unlock_all()")

    assert (await first).status == 200
    answers = sorted([(await (await twin).json())["status"] for twin in twins])
    assert answers == ["duplicate", "stored"]
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 2


async def test_stored_events_get_time_ordered_ids_of_when_they_were_stored(client, db):
    before_ms = time.time_ns() // 1_000_000
    first = await post_signed(client, meeting_event(STARTED, meeting_id="5101"))
    await asyncio.sleep(0.005)  # the next batch starts in a later millisecond
    second = await post_signed(client, meeting_event(ENDED, meeting_id="5101"))
    after_ms = time.time_ns() // 1_000_000
    assert (first.status, second.status) == (200, 200)

    rows = await db.fetch("SELECT id, event_type FROM zoom_webhook_events")
    ids = {r["event_type"]: r["id"] for r in rows}
    for event_id in ids.values():
        assert (event_id.version, event_id.variant) == (7, uuid.RFC_4122)
        assert before_ms <= event_id.int >> 80 <= after_ms  # UUIDv7: the millisecond first
    assert ids[STARTED] < ids[ENDED]


async def test_events_from_a_caller_without_ids_still_get_one(db):
    """A service of the previous release (migration 080's nine fields) during a rolling deploy."""
    event = [STARTED, "5202", "old==", "2026-11-26T10:00:00Z", None, None, None, "ab" * 32, {}]
    stored = await db.fetch(
        "SELECT store_zoom_webhook_events($1::jsonb)", orjson.dumps([event]).decode()
    )
    assert len(stored) == 1
    row = await db.fetchrow("SELECT id FROM zoom_webhook_events WHERE zoom_meeting_id = '5202'")
    assert row["id"].version == 4


@pytest.fixture
async def blocked_service(aiohttp_client, database_url, clean_database, db):
    """A service with one writer, stuck on a meeting lock, and room for one queued event."""
    app, client, in_flight = await stuck_writer(
        aiohttp_client, database_url, db, ingest_queue_size=1
    )
    queued = asyncio.ensure_future(
        post_signed(client, meeting_event(STARTED, meeting_id="77", uuid="queued=="))
    )
    await wait_for_queue_depth(app, 1)
    return client, in_flight, queued


async def test_full_queue_answers_503_with_retry_after_at_once(blocked_service, db):
    client, in_flight, queued = blocked_service
    refused = meeting_event(STARTED, meeting_id="78", uuid="refused==")
    resp = await post_signed(client, refused, expect=503)
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["error"] == "overloaded"

    await db.execute("SELECT pg_advisory_unlock_all()")
    assert [(await in_flight).status, (await queued).status] == [200, 200]
    meetings = await db.fetch("SELECT zoom_meeting_id FROM zoom_webhook_events ORDER BY 1")
    assert [r["zoom_meeting_id"] for r in meetings] == [LOCKED_MEETING, "77"]


async def test_full_queue_refuses_before_checking_the_signature(blocked_service, db):
    client, in_flight, queued = blocked_service
    body = b'{"event": "meeting.started"}'
    resp = await client.post("/api/zoom/webhook", data=body, headers=sign(body, secret="wrong"))
    assert resp.status == 503  # not 401: Zoom retries it once the queue has room
    assert resp.headers["Retry-After"] == "1"
    await db.execute("SELECT pg_advisory_unlock_all()")
    assert [(await in_flight).status, (await queued).status] == [200, 200]


async def blocked_batch(aiohttp_client, database_url, db, size: int = 20):
    """A batch of size events of meeting 4343 whose writer waits on that meeting's lock."""
    await hold_meeting_lock(db, "4343")
    app, client, first = await stuck_writer(aiohttp_client, database_url, db)
    batch = [
        asyncio.ensure_future(
            post_signed(client, meeting_event(STARTED, meeting_id="4343", event_ts=ts), expect=None)
        )
        for ts in range(10**12, 10**12 + size)
    ]
    await wait_for_queue_depth(app, size)
    await db.execute("SELECT pg_advisory_unlock(zoom_meeting_lock_key($1))", LOCKED_MEETING)
    assert (await first).status == 200
    [writer_pid] = await wait_for_writer_blocked(db)
    return client, batch, writer_pid


async def test_batch_whose_connection_dies_is_stored_again_on_a_fresh_connection(
    aiohttp_client, database_url, clean_database, db
):
    _, batch, writer_pid = await blocked_batch(aiohttp_client, database_url, db)
    await db.execute("SELECT pg_terminate_backend($1)", writer_pid)
    # The same batch, on another connection.
    await wait_for_writer_blocked(db, besides=writer_pid)
    await db.execute("SELECT pg_advisory_unlock_all()")

    responses = [await f for f in batch]
    assert [r.status for r in responses] == [200] * 20
    assert {(await r.json())["status"] for r in responses} == {"stored"}
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 21


async def test_batch_that_loses_its_connection_twice_answers_503_to_every_waiter(
    aiohttp_client, database_url, clean_database, db
):
    client, batch, writer_pid = await blocked_batch(aiohttp_client, database_url, db)
    await db.execute("SELECT pg_terminate_backend($1)", writer_pid)
    [retry_pid] = await wait_for_writer_blocked(db, besides=writer_pid)
    await db.execute("SELECT pg_terminate_backend($1)", retry_pid)

    responses = [await f for f in batch]
    assert [r.status for r in responses] == [503] * 20
    assert all(r.headers["Retry-After"] for r in responses)
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 1
    await db.execute("SELECT pg_advisory_unlock_all()")

    retry = await post_signed(client, meeting_event(STARTED, meeting_id="4343", event_ts=10**12))
    assert (await retry.json())["status"] == "stored"  # Zoom's retry heals it


async def test_events_waiting_longer_than_max_wait_get_503_queued_or_in_flight(
    aiohttp_client, database_url, clean_database, db
):
    app, client, in_flight = await stuck_writer(aiohttp_client, database_url, db)
    app[EVENT_STORE].max_wait = 0.3  # Zoom's 3 s, scaled down
    queued_body = meeting_event(STARTED, meeting_id="88", uuid="queued==")
    queued = asyncio.ensure_future(post_signed(client, queued_body, expect=503))
    await wait_for_queue_depth(app, 1)
    loop = asyncio.get_running_loop()
    waited_from = loop.time()

    responses = [await in_flight, await queued]
    assert [r.status for r in responses] == [503, 503]
    assert all(r.headers["Retry-After"] == "1" for r in responses)
    assert loop.time() - waited_from < 0.3 + 0.25  # answered soon after max_wait, not later

    # The writer was still holding the first event; it commits once the lock is free. Zoom
    # retries both 503s: the first is then a duplicate, the queued one is stored only now.
    await db.execute("SELECT pg_advisory_unlock_all()")
    first_retry = meeting_event(STARTED, meeting_id=LOCKED_MEETING, uuid="first==")
    assert (await (await post_signed(client, first_retry)).json())["status"] == "duplicate"
    assert (await (await post_signed(client, queued_body)).json())["status"] == "stored"
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 2


@pytest.fixture
async def refused_name(db):
    """A name the database refuses with a data error (SQLSTATE 22023) whenever it is stored."""
    await db.execute(
        """
        CREATE FUNCTION refuse_name() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.participant_name = 'Refused Rita' THEN
                RAISE EXCEPTION 'cannot store %', NEW.participant_name
                      USING ERRCODE = 'invalid_parameter_value';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_name BEFORE INSERT ON zoom_webhook_events
            FOR EACH ROW EXECUTE FUNCTION refuse_name();
        """
    )
    yield "Refused Rita"
    await db.execute("DROP TRIGGER refuse_name ON zoom_webhook_events; DROP FUNCTION refuse_name()")


async def test_event_the_database_refuses_is_400_and_its_batch_neighbours_are_stored(
    aiohttp_client, database_url, clean_database, db, refused_name, caplog
):
    app, client, first = await stuck_writer(aiohttp_client, database_url, db)
    names = ["Ann", refused_name, "Bob"]
    batch = [
        asyncio.ensure_future(
            post_signed(
                client,
                meeting_event(JOINED, meeting_id="55", participant=participant(n)),
                expect=None,  # checked below: 200, 400, 200
            )
        )
        for n in names
    ]
    await wait_for_queue_depth(app, 3)  # all three wait for the same next batch
    await db.execute("SELECT pg_advisory_unlock_all()")

    assert (await first).status == 200
    responses = [await f for f in batch]
    assert [r.status for r in responses] == [200, 400, 200]
    assert (await responses[1].json())["error"] == "invalid_event"
    stored = await db.fetch(
        "SELECT participant_name FROM zoom_webhook_events WHERE zoom_meeting_id = '55'"
    )
    assert sorted(r["participant_name"] for r in stored) == ["Ann", "Bob"]
    assert "SQLSTATE 22023" in caplog.text
    assert "Rita" not in caplog.text  # the database's message named her; the logs do not


@pytest.fixture
async def connection_killer(db):
    """A name whose first insert ends the connection storing it (pg_terminate_backend)."""
    await db.execute(
        """
        CREATE SEQUENCE kill_once;
        CREATE FUNCTION kill_connection() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- A sequence is not rolled back with the transaction: this fires once only.
            IF NEW.participant_name = 'Killer Ken' AND nextval('kill_once') = 1 THEN
                PERFORM pg_terminate_backend(pg_backend_pid());
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER kill_connection BEFORE INSERT ON zoom_webhook_events
            FOR EACH ROW EXECUTE FUNCTION kill_connection();
        """
    )
    yield "Killer Ken"
    await db.execute(
        "DROP TRIGGER kill_connection ON zoom_webhook_events; "
        "DROP FUNCTION kill_connection(); DROP SEQUENCE kill_once"
    )


async def test_connection_lost_while_a_batch_is_stored_event_by_event_answers_every_waiter(
    aiohttp_client, database_url, clean_database, db, refused_name, connection_killer
):
    app, client, first = await stuck_writer(aiohttp_client, database_url, db)
    names = ["Ann", refused_name, "Bob", connection_killer, "Cy"]
    batch = [
        asyncio.ensure_future(
            post_signed(
                client,
                meeting_event(JOINED, meeting_id="56", participant=participant(n)),
                expect=None,
            )
        )
        for n in names
    ]
    await wait_for_queue_depth(app, len(names))  # all wait for the same next batch
    await db.execute("SELECT pg_advisory_unlock_all()")

    assert (await first).status == 200
    responses = await asyncio.wait_for(asyncio.gather(*batch), timeout=3)
    assert [r.status for r in responses] == [200, 400, 200, 200, 200]
    stored = await db.fetch(
        "SELECT participant_name, count(*) FROM zoom_webhook_events "
        "WHERE zoom_meeting_id = '56' GROUP BY 1"
    )
    assert dict(stored) == {"Ann": 1, "Bob": 1, connection_killer: 1, "Cy": 1}


async def test_unreachable_database_answers_503_to_every_concurrent_delivery(
    aiohttp_client, clean_database
):
    client = await aiohttp_client(create_app(test_config(unreachable_database_url())))
    bodies = [meeting_event(STARTED, event_ts=10**12 + n) for n in range(10)]
    responses = await asyncio.gather(*(post_signed(client, b, expect=503) for b in bodies))
    assert [r.status for r in responses] == [503] * 10
    assert all("Retry-After" in r.headers for r in responses)


async def test_queued_events_are_stored_when_the_service_shuts_down(
    aiohttp_client, database_url, clean_database, db
):
    app, _, first = await stuck_writer(aiohttp_client, database_url, db)
    store = app[EVENT_STORE]
    pending = [asyncio.ensure_future(store.store(parsed_event(n))) for n in range(5)]
    await wait_for_queue_depth(app, 5)
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0.05)
    await db.execute("SELECT pg_advisory_unlock_all()")
    await closing
    assert await asyncio.gather(*pending) == [True] * 5
    assert (await first).status == 200
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 6


def parsed_event(n: int):
    from service.webhook.events import parse_event

    body = meeting_event(STARTED, meeting_id="31", event_ts=10**12 + n)
    return parse_event(body, orjson.dumps(body))


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.parametrize("noise", [bytes(10), b"\xff" * 10])
def test_one_batch_gets_distinct_ascending_version_7_ids(monkeypatch, noise):
    # The extremes of the batch's random bits: counting up from them never leaves the variant.
    monkeypatch.setattr(os, "urandom", lambda n: noise[:n])
    ids = [uuid.UUID(hex_id) for hex_id in new_event_ids(512)]

    assert len(set(ids)) == 512 and ids == sorted(ids)
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    assert len({i.int >> 80 for i in ids}) == 1  # one millisecond for the batch


async def stored_in_passes(aiohttp_client, database_url, *, web_concurrency: int, passes):
    """Queue one event per entry of passes, that many event-loop passes late; return the
    batches (count, events) that stored them, from /metrics."""
    app = create_app(test_config(database_url, web_concurrency=web_concurrency))
    client = await aiohttp_client(app)
    store = app[EVENT_STORE]

    async def store_late(n: int, late: int) -> bool:
        for _ in range(late):
            await asyncio.sleep(0)
        return await store.store(parsed_event(n))

    stored = await asyncio.gather(*(store_late(n, late) for n, late in enumerate(passes)))
    assert stored == [True] * len(passes)
    text = await (await client.get("/metrics")).text()
    count = metric(text, "zoom_webhook_ingest_batch_size_count")
    return count, metric(text, "zoom_webhook_ingest_batch_size_sum")


async def test_a_worker_among_several_gathers_events_arriving_pass_after_pass_in_one_batch(
    aiohttp_client, database_url, clean_database, db
):
    batches = await stored_in_passes(
        aiohttp_client, database_url, web_concurrency=2, passes=[0, 1, 2]
    )
    assert batches == (1, 3)
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 3


async def test_a_worker_among_several_stops_gathering_at_the_first_pass_that_brings_nothing(
    aiohttp_client, database_url, clean_database
):
    # The second event comes two passes after the first: the first is not kept waiting for it.
    batches = await stored_in_passes(aiohttp_client, database_url, web_concurrency=2, passes=[0, 3])
    assert batches == (2, 2)


async def test_a_single_process_sends_its_first_event_without_gathering(
    aiohttp_client, database_url, clean_database
):
    batches = await stored_in_passes(
        aiohttp_client, database_url, web_concurrency=1, passes=[0, 1, 2]
    )
    assert batches[0] >= 2
    assert batches[1] == 3
