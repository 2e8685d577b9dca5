-- zoom_webhook_events partitioned by month of occurred_at (UTC), converted from the plain table.
-- Why: the random dedupe_key index of one table grows with every event ever stored, and once
-- it outgrows memory each insert reads and dirties a page of it anywhere; per month, the
-- current partition's indexes stay small and hot (README, Performance; docs/SCALING.md).
--  * A unique key on a partitioned table must include the partition key: the primary key
--    becomes (id, occurred_at) and the dedupe key (dedupe_key, occurred_at). A redelivery
--    carries the same body, so the same occurred_at, and lands in the same partition, where
--    the unique index finds it.
--  * zoom_webhook_events_default takes events of a month without a partition (nothing is ever
--    refused); create_zoom_webhook_events_partition moves them when it creates their month.
--  * `python -m service partitions` (a daily job) creates the months ahead; this migration
--    creates every month from the oldest stored event to three months ahead.
--  * The table is rebuilt: every column, default, check, foreign key and index that exists by
--    now is carried over (LIKE, and the index and foreign key definitions read back), so the
--    ingest keeps working on whatever the earlier migrations made. It holds an exclusive lock
--    while it copies: webhooks meanwhile get 503 and Zoom retries them.
-- depends: 090_time_ordered_webhook_event_ids
CREATE OR REPLACE FUNCTION create_zoom_webhook_events_partition(in_month DATE) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    month_start TIMESTAMPTZ := date_trunc('month', in_month::timestamp) AT TIME ZONE 'UTC';
    month_end TIMESTAMPTZ := (date_trunc('month', in_month::timestamp) + INTERVAL '1 month')
                             AT TIME ZONE 'UTC';
    partition_name TEXT := 'zoom_webhook_events_' || to_char(in_month, 'YYYY_MM');
BEGIN
    IF to_regclass(partition_name) IS NOT NULL THEN
        RETURN FALSE;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE zoom_webhook_events INCLUDING DEFAULTS '
                   'INCLUDING CONSTRAINTS)', partition_name);
    EXECUTE format('WITH moved AS (DELETE FROM zoom_webhook_events_default '
                   'WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', partition_name)
      USING month_start, month_end;
    EXECUTE format('ALTER TABLE zoom_webhook_events ATTACH PARTITION %I '
                   'FOR VALUES FROM (%L) TO (%L)', partition_name, month_start, month_end);
    RETURN TRUE;
END;
$$;

CREATE OR REPLACE FUNCTION create_zoom_webhook_events_partitions(in_months_ahead INTEGER)
RETURNS SETOF DATE
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    this_month DATE := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    month DATE;
BEGIN
    FOR n IN 0 .. in_months_ahead LOOP
        month := (this_month + make_interval(months => n))::date;
        IF create_zoom_webhook_events_partition(month) THEN
            RETURN NEXT month;
        END IF;
    END LOOP;
END;
$$;

DO $$
DECLARE
    index_definitions TEXT[];
    foreign_keys TEXT[];
    statement TEXT;
    triggers TEXT[];
BEGIN
    SELECT coalesce(array_agg(pg_get_indexdef(i.indexrelid) ORDER BY i.indexrelid), '{}')
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
       AND NOT t.tgisinternal;

    ALTER TABLE zoom_webhook_events RENAME TO zoom_webhook_events_unpartitioned;
    -- Free the index names for the new table; the rows need no index to be copied.
    FOR statement IN
        SELECT format('DROP INDEX %I', i.indexrelid::regclass::text)
          FROM pg_index AS i
         WHERE i.indrelid = 'zoom_webhook_events_unpartitioned'::regclass
           AND NOT i.indisprimary
    LOOP
        EXECUTE statement;
    END LOOP;
    ALTER TABLE zoom_webhook_events_unpartitioned DROP CONSTRAINT zoom_webhook_events_pkey;

    CREATE TABLE zoom_webhook_events
        (LIKE zoom_webhook_events_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
        PARTITION BY RANGE (occurred_at);
    CREATE TABLE zoom_webhook_events_default PARTITION OF zoom_webhook_events DEFAULT;
    -- A partition for each month that has events, then this month and the next three.
    PERFORM create_zoom_webhook_events_partition(m.month)
       FROM (SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date AS month
               FROM zoom_webhook_events_unpartitioned) AS m;
    PERFORM create_zoom_webhook_events_partitions(3);
    INSERT INTO zoom_webhook_events SELECT * FROM zoom_webhook_events_unpartitioned;
    DROP TABLE zoom_webhook_events_unpartitioned;

    ALTER TABLE zoom_webhook_events
        ADD CONSTRAINT zoom_webhook_events_pkey PRIMARY KEY (id, occurred_at);
    FOREACH statement IN ARRAY foreign_keys LOOP
        EXECUTE statement;
    END LOOP;
    FOREACH statement IN ARRAY index_definitions LOOP
        IF statement LIKE '%zoom_webhook_events_dedupe_key_idx%' THEN
            statement := replace(statement, '(dedupe_key)', '(dedupe_key, occurred_at)');
        END IF;
        EXECUTE statement;
    END LOOP;
    FOREACH statement IN ARRAY triggers LOOP
        EXECUTE statement;
    END LOOP;
    ANALYZE zoom_webhook_events;
END;
$$;

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
