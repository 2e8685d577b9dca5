-- create_zoom_webhook_events_partitions: the partitions of zoom_webhook_events from this UTC
-- month to in_months_ahead months ahead, those missing (`python -m service partitions`, a
-- daily job, and migration 130). Returns the months it created partitions for.
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
