DROP FUNCTION store_zoom_webhook_events(JSONB);

CREATE FUNCTION store_zoom_webhook_events(
    in_event_types TEXT[],
    in_meeting_ids TEXT[],
    in_meeting_uuids TEXT[],
    in_occurred_at TIMESTAMPTZ[],
    in_names TEXT[],
    in_emails TEXT[],
    in_user_ids TEXT[],
    in_dedupe_keys BYTEA[],
    in_raw_data JSONB[]
) RETURNS SETOF BYTEA
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(k.key)
       FROM (SELECT DISTINCT zoom_meeting_lock_key(m) AS key
               FROM unnest(in_meeting_ids) AS m
              ORDER BY key) AS k;
    RETURN QUERY
    WITH inserted AS (
        INSERT INTO zoom_webhook_events
               (event_type, zoom_meeting_id, meeting_uuid, occurred_at, participant_name,
                participant_email, participant_user_id, dedupe_key, raw_data, booking_id)
        SELECT i.event_type, i.zoom_meeting_id, i.meeting_uuid, i.occurred_at,
               i.participant_name, i.participant_email, i.participant_user_id, i.dedupe_key,
               i.raw_data,
               (SELECT b.id
                  FROM bookings AS b
                 WHERE b.zoom_meeting_id = i.zoom_meeting_id
                 ORDER BY b.created_at DESC
                 LIMIT 1)
          FROM unnest(in_event_types, in_meeting_ids, in_meeting_uuids, in_occurred_at,
                      in_names, in_emails, in_user_ids, in_dedupe_keys, in_raw_data)
               AS i(event_type, zoom_meeting_id, meeting_uuid, occurred_at, participant_name,
                    participant_email, participant_user_id, dedupe_key, raw_data)
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
