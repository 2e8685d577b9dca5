"""zoom_webhook_events by month (migration 130): where events land, the months ahead, and the
conversion of a table that already holds events, both ways."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import psycopg
from yoyo import get_backend, read_migrations

from service.db import MIGRATIONS_DIR
from service.jobs.migrate import yoyo_url
from tests.processes import ROOT, service_env
from tests.zoom_payloads import meeting_event, post_signed

PARTITIONING = "130_partition_webhook_events_by_month"


async def partition_of(db, meeting_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT tableoid::regclass::text AS part FROM zoom_webhook_events "
        "WHERE zoom_meeting_id = $1",
        meeting_id,
    )
    return [r["part"] for r in rows]


async def test_an_event_lands_in_its_months_partition_and_a_redelivery_is_found_there(client, db):
    now = datetime.now(UTC)
    payload = meeting_event(
        "meeting.started",
        meeting_id="7001",
        event_ts=int(now.timestamp() * 1000),
        start_time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    first = await post_signed(client, payload)
    again = await post_signed(client, payload)

    assert (await first.json())["status"] == "stored"
    assert (await again.json())["status"] == "duplicate"
    assert await partition_of(db, "7001") == [f"zoom_webhook_events_{now:%Y_%m}"]


async def test_an_event_of_a_month_without_partition_waits_in_default_until_its_month_exists(
    client, db
):
    payload = meeting_event("meeting.started", meeting_id="7002", start_time="2003-04-05T06:07:08Z")
    assert (await (await post_signed(client, payload)).json())["status"] == "stored"
    assert await partition_of(db, "7002") == ["zoom_webhook_events_default"]

    created = await db.fetchval("SELECT create_zoom_webhook_events_partition('2003-04-01')")

    assert created is True
    assert await partition_of(db, "7002") == ["zoom_webhook_events_2003_04"]
    again = await post_signed(client, payload)
    assert (await again.json())["status"] == "duplicate"
    assert await db.fetchval("SELECT count(*) FROM zoom_webhook_events") == 1
    await db.execute("DROP TABLE zoom_webhook_events_2003_04")  # leave the months as found


def run_partitions_command(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "partitions", *args],
        cwd=ROOT,
        env=service_env(database_url, 0),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_partitions_command_creates_the_missing_months_ahead_once(database_url):
    first = run_partitions_command(database_url, "--months-ahead", "5")
    second = run_partitions_command(database_url, "--months-ahead", "5")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    with psycopg.connect(database_url) as conn:
        months = {
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relname ~ '^zoom_webhook_events_\\d{4}_\\d{2}$'"
            )
        }
    this_month = datetime.now(UTC).replace(day=1)
    fifth = this_month.replace(
        year=this_month.year + (this_month.month + 4) // 12, month=(this_month.month + 4) % 12 + 1
    )
    assert f"zoom_webhook_events_{this_month:%Y_%m}" in months
    assert f"zoom_webhook_events_{fifth:%Y_%m}" in months
    assert second.stdout.strip() == "created partitions of zoom_webhook_events: none missing"


def test_converting_a_table_that_holds_events_keeps_every_one_and_the_rollback_too(
    empty_database_url,
):
    backend = get_backend(yoyo_url(empty_database_url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        before = [m for m in migrations if m.id < PARTITIONING]
        (partitioning,) = [m for m in migrations if m.id == PARTITIONING]
        with backend.lock():
            for migration in before:
                backend.apply_one(migration)
        with psycopg.connect(empty_database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO bookings (coach_id, athlete_id, status, zoom_meeting_id) "
                "VALUES (gen_random_uuid(), gen_random_uuid(), 'paid', '42')"
            )
            conn.execute(
                "INSERT INTO zoom_webhook_events (event_type, zoom_meeting_id, occurred_at, "
                "dedupe_key, booking_id, raw_data) "
                "SELECT 'meeting.started', '42', t, sha256(t::text::bytea), "
                "       (SELECT id FROM bookings), '{}'::jsonb "
                "  FROM unnest(ARRAY['2019-01-15'::timestamptz, '2019-01-20', '2024-06-01', "
                "                    now()]) AS t"
            )
            stored = conn.execute("SELECT * FROM zoom_webhook_events ORDER BY id").fetchall()

            with backend.lock():
                backend.apply_one(partitioning)
            parts = conn.execute(
                "SELECT tableoid::regclass::text, count(*) FROM zoom_webhook_events "
                "GROUP BY 1 ORDER BY 1"
            ).fetchall()
            assert conn.execute("SELECT * FROM zoom_webhook_events ORDER BY id").fetchall() == (
                stored
            )
            with backend.lock():
                backend.rollback_one(partitioning)
            after_rollback = conn.execute("SELECT * FROM zoom_webhook_events ORDER BY id")
            assert after_rollback.fetchall() == stored
            kind = conn.execute(
                "SELECT relkind FROM pg_class WHERE relname = 'zoom_webhook_events'"
            ).fetchone()
    finally:
        backend.connection.close()
    now = datetime.now(UTC)
    assert parts == sorted(
        [
            ("zoom_webhook_events_2019_01", 2),
            ("zoom_webhook_events_2024_06", 1),
            (f"zoom_webhook_events_{now:%Y_%m}", 1),
        ]
    )
    assert kind == ("r",)  # a plain table again
