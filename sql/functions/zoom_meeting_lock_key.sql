-- zoom_meeting_lock_key: the advisory-lock key of one Zoom meeting id, as installed by migration
-- 032. Ingest (store_zoom_webhook_events), the booking-linking trigger and reconciliation take
-- pg_advisory_xact_lock on it, so an event, its booking and a recovered fact of one meeting
-- never interleave. To change it, edit this file and add a migration that repeats it;
-- tests/test_sql_functions.py compares the installed function with this file.
CREATE OR REPLACE FUNCTION zoom_meeting_lock_key(meeting_id TEXT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT hashtextextended('zoom_meeting:' || meeting_id, 0)
$$;
