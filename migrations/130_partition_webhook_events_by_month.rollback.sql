-- Back to one plain zoom_webhook_events table, every row, column, default, check, foreign key
-- and index kept (the primary key on id, the dedupe key on dedupe_key alone), and 090's ingest.
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

DO $$
DECLARE
    index_definitions TEXT[];
    foreign_keys TEXT[];
    triggers TEXT[];
    statement TEXT;
BEGIN
    SELECT coalesce(array_agg(replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ')
                              ORDER BY i.indexrelid), '{}')
      INTO index_definitions
      FROM pg_index AS i
     WHERE i.indrelid = 'zoom_webhook_events'::regclass
       AND NOT i.indisprimary;
    SELECT coalesce(array_agg(format('ALTER TABLE zoom_webhook_events ADD CONSTRAINT %I %s',
                                     c.conname, pg_get_constraintdef(c.oid)) ORDER BY c.conname),
                    '{}')
      INTO foreign_keys
      FROM pg_constraint AS c
     WHERE c.conrelid = 'zoom_webhook_events'::regclass
       AND c.contype = 'f';
    SELECT coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}')
      INTO triggers
      FROM pg_trigger AS t
     WHERE t.tgrelid = 'zoom_webhook_events'::regclass
       AND NOT t.tgisinternal
       AND t.tgparentid = 0;

    CREATE TABLE zoom_webhook_events_unpartitioned
        (LIKE zoom_webhook_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
    INSERT INTO zoom_webhook_events_unpartitioned SELECT * FROM zoom_webhook_events;
    DROP TABLE zoom_webhook_events;
    ALTER TABLE zoom_webhook_events_unpartitioned RENAME TO zoom_webhook_events;

    ALTER TABLE zoom_webhook_events ADD CONSTRAINT zoom_webhook_events_pkey PRIMARY KEY (id);
    FOREACH statement IN ARRAY foreign_keys LOOP
        EXECUTE statement;
    END LOOP;
    FOREACH statement IN ARRAY index_definitions LOOP
        IF statement LIKE '%zoom_webhook_events_dedupe_key_idx%' THEN
            statement := replace(statement, '(dedupe_key, occurred_at)', '(dedupe_key)');
        END IF;
        EXECUTE statement;
    END LOOP;
    FOREACH statement IN ARRAY triggers LOOP
        EXECUTE statement;
    END LOOP;
    ANALYZE zoom_webhook_events;
END;
$$;

DROP FUNCTION create_zoom_webhook_events_partitions(INTEGER);
DROP FUNCTION create_zoom_webhook_events_partition(DATE);
