-- name: store_webhook_events
-- Store a batch of events in one statement (migration 070): per-meeting advisory locks in key
-- order, then insert linking each to its booking, skipping redeliveries (same dedupe_key), then
-- complete paid bookings for new meeting.ended rows. Parallel arrays, one element per event:
-- $1 event_type, $2 zoom_meeting_id, $3 meeting_uuid, $4 occurred_at, $5 participant_name,
-- $6 participant_email, $7 participant_user_id, $8 dedupe_key, $9 raw_data.
-- One row per event actually inserted: its dedupe_key. No row: every event was a redelivery.
SELECT k AS dedupe_key
  FROM store_zoom_webhook_events($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                                 $5::text[], $6::text[], $7::text[], $8::bytea[],
                                 $9::text[]::jsonb[]) AS k;
