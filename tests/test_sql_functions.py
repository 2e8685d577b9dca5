"""sql/functions/ holds each database function as installed, and the ingest wire format fits it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from service.db import SQL_DIR, load_queries
from service.webhook.events import WebhookEvent
from service.webhook.ingest import BATCH_FIELDS, batch_json, store_events

FUNCTIONS_DIR = SQL_DIR / "functions"
FUNCTION_FILES = sorted(FUNCTIONS_DIR.glob("*.sql"))
FUNCTION_TEXTS = {path: path.read_text(encoding="utf-8") for path in FUNCTION_FILES}
STORE_FUNCTION = FUNCTIONS_DIR / "store_zoom_webhook_events.sql"
PROBE_SCHEMA = "sql_file_probe"


async def definitions(db, schema: str, name: str) -> list[str]:
    """Every overload of schema.name as pg_get_functiondef prints it, the schema left out."""
    rows = await db.fetch(
        "SELECT pg_get_functiondef(p.oid) AS definition"
        "  FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
        " WHERE n.nspname = $1 AND p.proname = $2"
        " ORDER BY pg_get_function_identity_arguments(p.oid)",
        schema,
        name,
    )
    return [r["definition"].replace(f" {schema}.{name}(", f" {name}(", 1) for r in rows]


def test_there_is_a_file_for_the_ingest_function():
    assert STORE_FUNCTION in FUNCTION_FILES


async def test_every_database_function_a_query_calls_has_its_file(db):
    """A function the code calls through sql/*.sql is read in sql/functions/, not in migrations."""
    rows = await db.fetch(
        "SELECT DISTINCT p.proname FROM pg_proc AS p"
        "  JOIN pg_namespace AS n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
    )
    queries = " ".join(path.read_text(encoding="utf-8") for path in SQL_DIR.glob("*.sql"))
    called = {r["proname"] for r in rows if re.search(rf"\b{r['proname']}\s*\(", queries)}
    assert STORE_FUNCTION.stem in called  # the search finds what it should
    assert called <= {path.stem for path in FUNCTION_FILES}


@pytest.mark.parametrize("path", FUNCTION_FILES, ids=lambda p: p.name)
async def test_the_installed_function_is_the_one_in_sql_functions(db, path: Path):
    """The migrated database runs exactly the file's function: a migration changing it must
    change the file too, and the file cannot change without a migration."""
    name = path.stem
    installed = await definitions(db, "public", name)
    assert installed, f"the migrations install no function {name}"
    transaction = db.transaction()
    await transaction.start()
    try:
        await db.execute(f"CREATE SCHEMA {PROBE_SCHEMA}")
        await db.execute(f"SET LOCAL search_path = {PROBE_SCHEMA}, public")
        await db.execute(FUNCTION_TEXTS[path])
        from_file = await definitions(db, PROBE_SCHEMA, name)
    finally:
        await transaction.rollback()
    assert from_file == installed


def positions_read(function_text: str) -> set[int]:
    """The array positions the function reads from each event (`e ->> 3`, `e -> 8`)."""
    return {int(n) for n in re.findall(r"\be\s*->>?\s*(\d+)", function_text)}


def sample_event(**overrides) -> WebhookEvent:
    fields = {
        "event_type": "meeting.participant_joined",
        "zoom_meeting_id": "918273645",
        "meeting_uuid": "inst-wire==",
        "occurred_at": datetime(2026, 9, 21, 15, 2, 10, 123000, tzinfo=UTC),
        "participant_name": "Name Field",
        "participant_email": "email@field.example",
        "participant_user_id": "user-id-field",
        "dedupe_key": bytes(range(32)),
        "raw_data": '{"event":"meeting.participant_joined","marker":"raw-data-field"}',
    }
    fields.update(overrides)
    return WebhookEvent(**fields)


def test_batch_json_sends_every_position_the_function_reads_and_no_other():
    [element] = orjson.loads(batch_json([sample_event()]))
    read = positions_read(FUNCTION_TEXTS[STORE_FUNCTION])
    assert len(element) == len(BATCH_FIELDS)
    assert read == set(range(len(BATCH_FIELDS)))


async def test_each_field_batch_json_sends_lands_in_its_own_column(db):
    event = sample_event()
    new_keys = await store_events(db, load_queries(), [event], lock_timeout_ms=1000)
    assert new_keys == {event.dedupe_key}
    row = await db.fetchrow(
        f"SELECT {', '.join(BATCH_FIELDS)} FROM zoom_webhook_events WHERE dedupe_key = $1",
        event.dedupe_key,
    )
    stored = dict(row)
    assert (stored.pop("id").version, stored.pop("raw_data")) == (7, orjson.loads(event.raw_data))
    expected = {name: getattr(event, name) for name in stored}
    assert stored == expected
    assert set(BATCH_FIELDS) - set(stored) == {"id", "raw_data"}
