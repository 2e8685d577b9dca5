-- What the service needs beyond the seed:
--  * ids made by the database;
--  * a deduplication key, unique, so that Zoom's redeliveries are stored once;
--  * the meeting instance (Zoom's uuid), which attendance is computed per;
--  * an index for reading one booking's events in time order, page by page;
--  * orphan linking done by the database, however a booking with that meeting id appears
--    (accepted here, or inserted by the web app), under the same per-meeting advisory lock
--    that webhook ingest takes, so an event and its booking arriving together still meet.
-- depends: 031_add_zoom_meeting_id_and_webhook_events
ALTER TABLE zoom_webhook_events ALTER COLUMN id SET DEFAULT gen_random_uuid();
ALTER TABLE zoom_webhook_events ADD COLUMN dedupe_key BYTEA;
ALTER TABLE zoom_webhook_events ADD COLUMN meeting_uuid TEXT;

CREATE UNIQUE INDEX zoom_webhook_events_dedupe_key_idx ON zoom_webhook_events (dedupe_key);
CREATE INDEX zoom_webhook_events_booking_occurred_idx
    ON zoom_webhook_events (booking_id, occurred_at, id);

CREATE FUNCTION zoom_meeting_lock_key(meeting_id TEXT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT hashtextextended('zoom_meeting:' || meeting_id, 0)
$$;

CREATE FUNCTION link_zoom_webhook_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.zoom_meeting_id IS NULL
       OR (TG_OP = 'UPDATE' AND NEW.zoom_meeting_id IS NOT DISTINCT FROM OLD.zoom_meeting_id) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(zoom_meeting_lock_key(NEW.zoom_meeting_id));
    UPDATE zoom_webhook_events
       SET booking_id = NEW.id
     WHERE zoom_meeting_id = NEW.zoom_meeting_id
       AND booking_id IS NULL;
    -- A meeting.ended that arrived before its booking completes the booking now.
    IF FOUND THEN
        UPDATE bookings
           SET status = 'completed'
         WHERE id = NEW.id
           AND status = 'paid'
           AND EXISTS (SELECT 1
                         FROM zoom_webhook_events AS e
                        WHERE e.booking_id = NEW.id
                          AND e.event_type = 'meeting.ended');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER bookings_link_zoom_webhook_events
    AFTER INSERT OR UPDATE OF zoom_meeting_id ON bookings
    FOR EACH ROW EXECUTE FUNCTION link_zoom_webhook_events();
