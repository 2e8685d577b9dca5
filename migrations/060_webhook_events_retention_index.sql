-- Retention (`python -m service retention --days N`) strips participant details from old events.
-- This partial index holds only the rows that still carry them, so the daily run reaches its
-- work directly instead of re-reading every event it already stripped. Built CONCURRENTLY so
-- that webhook ingest keeps writing while it builds.
-- depends: 032_webhook_event_dedupe_and_linking
-- transactional: false
CREATE INDEX CONCURRENTLY zoom_webhook_events_unstripped_idx
    ON zoom_webhook_events (occurred_at, id)
 WHERE participant_name IS NOT NULL
    OR participant_email IS NOT NULL
    OR (raw_data IS NOT NULL AND NOT raw_data @> '{"redacted": true}');
