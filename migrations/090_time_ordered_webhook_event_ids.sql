-- The batch store of 080, with each event's id chosen by the service: a UUIDv7 (RFC 9562),
-- the millisecond of its batch followed by random bits, as the tenth element of each event.
-- Why not the column's default, gen_random_uuid():
--   - Random ids land anywhere in the primary key's b-tree; time-ordered ones land on its
--     rightmost page, which PostgreSQL inserts into without descending the tree, and the pages
--     a year of events has filled are left alone.
--   - A PostgreSQL built without OpenSSL (the embedded one of `make run`, tests and `make bench`)
--     reads each random uuid from /dev/urandom: an open, a read and a close per event, about a
--     tenth of the backend's CPU under the bench's load (perf).
-- An event without a tenth element (a service of the previous release, during a rolling
-- deploy) still gets gen_random_uuid(). Everything else is 080's, unchanged.
-- depends: 080_store_zoom_webhook_events_from_json
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
            ON CONFLICT (dedupe_key) DO NOTHING
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
