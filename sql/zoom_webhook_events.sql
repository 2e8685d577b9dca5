-- name: lock_meetings
-- Take the per-meeting advisory locks (the booking trigger takes the same ones), in key order
-- so that two writers never wait on each other in a cycle. $1 text[] of meeting ids.
SELECT pg_advisory_xact_lock(k.key)
  FROM (SELECT DISTINCT zoom_meeting_lock_key(m) AS key
          FROM unnest($1::text[]) AS m
         ORDER BY key) AS k;

-- name: insert_webhook_events
-- Store events, linking each to the booking with its meeting id (the newest, should there be
-- several). Parallel arrays, one element per event. A redelivery (same dedupe_key) is skipped:
-- only the rows actually inserted come back.
INSERT INTO zoom_webhook_events
       (event_type, zoom_meeting_id, meeting_uuid, occurred_at, participant_name,
        participant_email, participant_user_id, dedupe_key, raw_data, booking_id)
SELECT i.event_type, i.zoom_meeting_id, i.meeting_uuid, i.occurred_at, i.participant_name,
       i.participant_email, i.participant_user_id, i.dedupe_key, i.raw_data,
       (SELECT b.id
          FROM bookings AS b
         WHERE b.zoom_meeting_id = i.zoom_meeting_id
         ORDER BY b.created_at DESC
         LIMIT 1)
  FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
              $6::text[], $7::text[], $8::bytea[], $9::jsonb[])
       AS i(event_type, zoom_meeting_id, meeting_uuid, occurred_at, participant_name,
            participant_email, participant_user_id, dedupe_key, raw_data)
    ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id, dedupe_key, booking_id, event_type;

-- name: complete_bookings
-- meeting.ended: move paid bookings to completed; cancelled, refunded and completed ones stay.
-- $1 uuid[] of booking ids. Returns the bookings that changed.
UPDATE bookings
   SET status = 'completed'
 WHERE id = ANY($1::uuid[])
   AND status = 'paid'
RETURNING id;
