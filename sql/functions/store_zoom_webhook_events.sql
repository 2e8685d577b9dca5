-- store_zoom_webhook_events: the webhook ingest's one statement (service/webhook/ingest.py,
-- called by the store_webhook_events query in sql/zoom_webhook_events.sql). This is its current
-- definition, the one the migrations have installed (last by 130). To change it, edit this
-- file and add a migration that repeats it; tests/test_sql_functions.py fails while the
-- database's installed function and this file differ.
--
-- in_events: a JSON array with one array per event, positional, as batch_json() sends it:
--   0 event_type, 1 zoom_meeting_id, 2 meeting_uuid, 3 occurred_at (ISO 8601),
--   4 participant_name, 5 participant_email, 6 participant_user_id, 7 dedupe_key (hex),
--   8 raw_data (the body as received), 9 id (a UUIDv7; when absent, gen_random_uuid()).
-- Steps: per-meeting advisory locks in key order (the lock the booking-linking trigger takes),
-- then, in a new statement and so a new snapshot, the insert that skips redeliveries (same
-- dedupe_key and occurred_at, the unique key of the partitioned table of migration 130) and
-- links each event to its booking, and meeting.ended completing paid bookings.
-- Returns the dedupe_key of each event actually inserted; none when all were redeliveries.
CREATE OR REPLACE FUNCTION store_zoom_webhook_events(in_events JSONB) RETURNS SETOF BYTEA
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(k.key)
       FROM (SELECT DISTINCT zoom_meeting_lock_key(e ->> 1) AS key
               FROM jsonb_array_elements(in_events) AS e
              ORDER BY key) AS k;
    RETURN QUERY
    WITH inserted AS (
        INSERT INTO zoom_webhook_events
               (id, event_type, zoom_meeting_id, meeting_uuid, occurred_at, participant_name,
                participant_email, participant_user_id, dedupe_key, raw_data, booking_id)
        SELECT COALESCE((e ->> 9)::uuid, gen_random_uuid()),
               e ->> 0, e ->> 1, e ->> 2, (e ->> 3)::timestamptz, e ->> 4, e ->> 5, e ->> 6,
               decode(e ->> 7, 'hex'), e -> 8,
               (SELECT b.id
                  FROM bookings AS b
                 WHERE b.zoom_meeting_id = e ->> 1
                 ORDER BY b.created_at DESC
                 LIMIT 1)
          FROM jsonb_array_elements(in_events) AS e
            ON CONFLICT (dedupe_key, occurred_at) DO NOTHING
        RETURNING zoom_webhook_events.dedupe_key, zoom_webhook_events.booking_id,
                  zoom_webhook_events.event_type
    ), completed AS (
        UPDATE bookings
           SET status = 'completed'
         WHERE id IN (SELECT booking_id FROM inserted WHERE event_type = 'meeting.ended')
           AND status = 'paid'
    )
    SELECT inserted.dedupe_key FROM inserted;
END;
$$;
