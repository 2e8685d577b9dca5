"""The stairway test: each migration applies, rolls back to exactly the schema before it, and
applies again; plus 031 mirrors the seed one-to-one."""

from __future__ import annotations

import psycopg
from yoyo import get_backend, read_migrations

from service.db import MIGRATIONS_DIR, migration_ids
from service.jobs.migrate import yoyo_url

SCHEMA_QUERIES = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default
          FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_yoyo%%'
           AND table_name <> 'yoyo_lock'
         ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef
          FROM pg_indexes
         WHERE schemaname = 'public' AND tablename NOT LIKE '\\_yoyo%%'
           AND tablename <> 'yoyo_lock'
         ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
          FROM pg_constraint
         WHERE connamespace = 'public'::regnamespace
           AND conrelid::regclass::text NOT LIKE '%%yoyo%%'
         ORDER BY 1, 2""",
    "functions": """
        SELECT proname, pg_get_function_identity_arguments(oid), md5(prosrc)
          FROM pg_proc
         WHERE pronamespace = 'public'::regnamespace
         ORDER BY 1, 2""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname
          FROM pg_trigger
         WHERE NOT tgisinternal
         ORDER BY 1, 2""",
}


def snapshot(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in SCHEMA_QUERIES.items()}


def test_every_migration_has_a_rollback():
    for migration_id in migration_ids():
        assert (MIGRATIONS_DIR / f"{migration_id}.rollback.sql").exists(), migration_id


def test_migrations_are_plain_sql_without_psql_meta_commands():
    for path in MIGRATIONS_DIR.glob("*.sql"):
        for line in path.read_text().splitlines():
            assert not line.lstrip().startswith("\\"), f"{path.name}: {line}"


def test_stairway_apply_rollback_reapply_restores_the_schema_exactly(empty_database_url):
    backend = get_backend(yoyo_url(empty_database_url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        assert [m.id for m in migrations] == sorted(migration_ids())
        for migration in migrations:
            before = snapshot(empty_database_url)
            with backend.lock():
                backend.apply_one(migration)
            after = snapshot(empty_database_url)
            assert after != before, f"{migration.id} changed nothing"
            with backend.lock():
                backend.rollback_one(migration)
            assert snapshot(empty_database_url) == before, f"{migration.id} rollback"
            with backend.lock():
                backend.apply_one(migration)
            assert snapshot(empty_database_url) == after, f"{migration.id} re-apply"
    finally:
        backend.connection.close()


def test_migrate_writes_no_rows(database_url):
    with psycopg.connect(database_url) as conn:
        for table in ("bookings", "booking_requests", "zoom_session_logs", "zoom_webhook_events"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_031_mirrors_the_seed(database_url):
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            """SELECT column_name, data_type, is_nullable
                 FROM information_schema.columns
                WHERE table_name = 'zoom_webhook_events' ORDER BY ordinal_position"""
        ).fetchall()
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname='public'")
        }
        check = conn.execute(
            """SELECT pg_get_constraintdef(oid) FROM pg_constraint
                WHERE conrelid = 'zoom_webhook_events'::regclass AND contype = 'c'"""
        ).fetchone()[0]
        foreign = conn.execute(
            """SELECT pg_get_constraintdef(oid) FROM pg_constraint
                WHERE conrelid = 'zoom_webhook_events'::regclass AND contype = 'f'"""
        ).fetchone()[0]
        booking_column = conn.execute(
            """SELECT data_type FROM information_schema.columns
                WHERE table_name = 'bookings' AND column_name = 'zoom_meeting_id'"""
        ).fetchone()
    seed_columns = [
        ("id", "uuid", "NO"),
        ("zoom_meeting_id", "text", "NO"),
        ("booking_id", "uuid", "YES"),
        ("event_type", "text", "YES"),
        ("participant_name", "text", "YES"),
        ("participant_email", "text", "YES"),
        ("participant_user_id", "text", "YES"),
        ("occurred_at", "timestamp with time zone", "NO"),
        ("created_at", "timestamp with time zone", "YES"),
        ("raw_data", "jsonb", "YES"),
    ]
    assert columns[: len(seed_columns)] == seed_columns
    assert booking_column == ("text",)
    assert {
        "bookings_zoom_meeting_id_idx",
        "zoom_webhook_events_meeting_id_idx",
        "zoom_webhook_events_booking_id_idx",
        "zoom_webhook_events_occurred_at_idx",
        "zoom_webhook_events_event_type_idx",
    } <= indexes
    for event in (
        "meeting.started",
        "meeting.ended",
        "meeting.participant_joined",
        "meeting.participant_left",
    ):
        assert event in check
    assert foreign == "FOREIGN KEY (booking_id) REFERENCES bookings(id)"


def test_web_app_can_insert_bookings_and_requests_naming_only_the_contract_columns(database_url):
    with psycopg.connect(database_url) as conn:
        booking_id = conn.execute(
            "INSERT INTO bookings (coach_id, athlete_id, status) "
            "VALUES (gen_random_uuid(), gen_random_uuid(), 'paid') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO booking_requests (coach_id, athlete_id, starts_at, duration_minutes) "
            "VALUES (gen_random_uuid(), gen_random_uuid(), now(), 30)"
        )
        conn.execute(
            "INSERT INTO zoom_session_logs (booking_id, coach_id, athlete_id, action_type) "
            "VALUES (%s, gen_random_uuid(), gen_random_uuid(), 'join_meeting')",
            (booking_id,),
        )
        conn.rollback()
