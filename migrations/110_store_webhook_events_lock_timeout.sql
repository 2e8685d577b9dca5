-- The batch store of 130, with a bound on how long the batch may wait for a lock: the meeting's
-- advisory lock, a booking row, or a redelivery another transaction is inserting. A lock held
-- for long (one meeting's booking in a slow transaction) then fails the batch with SQLSTATE
-- 55P03 instead of holding up every event in it; the service stores such a batch again meeting
-- by meeting, so only that meeting's events wait (and are answered 503 while it stays locked).
-- in_lock_timeout_ms NULL (a service of the previous release, calling with one argument) keeps
-- the server's lock_timeout, as before. The function as it stands is
-- sql/functions/store_zoom_webhook_events.sql.
-- depends: 130_partition_webhook_events_by_month
DROP FUNCTION store_zoom_webhook_events(JSONB);

CREATE FUNCTION store_zoom_webhook_events(
    in_events JSONB, in_lock_timeout_ms INTEGER DEFAULT NULL
) RETURNS SETOF BYTEA
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF in_lock_timeout_ms IS NOT NULL THEN
        -- Local to this statement's transaction: the connection's own setting is left alone.
        PERFORM set_config('lock_timeout', in_lock_timeout_ms::text, TRUE);
    END IF;
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
