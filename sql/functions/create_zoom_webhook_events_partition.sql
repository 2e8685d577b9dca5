-- create_zoom_webhook_events_partition: the monthly partition of zoom_webhook_events (migration
-- 130) holding in_month (its UTC calendar month), named zoom_webhook_events_YYYY_MM. Events of
-- a month without a partition wait in zoom_webhook_events_default; creating the month's
-- partition moves them into it, in the same transaction, so nothing is lost or seen twice.
-- Returns true when it created the partition, false when it existed already.
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
