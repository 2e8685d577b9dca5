-- name: store_webhook_events
-- Store a batch of events in one statement: the function in
-- sql/functions/store_zoom_webhook_events.sql, which says what it does. $1 is a JSON array with
-- one ten-element array per event (batch_json in service/webhook/ingest.py): [event_type,
-- zoom_meeting_id, meeting_uuid, occurred_at, participant_name, participant_email,
-- participant_user_id, dedupe_key as hex, raw_data, id].
-- $2 the longest the batch may wait for any lock, in milliseconds as text (else SQLSTATE 55P03,
-- and the service stores the batch meeting by meeting): set for this statement's transaction
-- only, and before the function runs, because the function's argument depends on it (LATERAL).
-- An empty array stores nothing and proves the database takes writes (/readyz).
-- One row per event actually inserted: its dedupe_key. No row: every event was a redelivery.
SELECT k AS dedupe_key
  FROM set_config('lock_timeout', $2, TRUE) AS lock_timeout,
       LATERAL store_zoom_webhook_events(
           CASE WHEN lock_timeout IS NOT NULL THEN $1::jsonb END) AS k;

-- name: select_booking_events_page
-- One page of a booking's events in time order (keyset on the (booking_id, occurred_at, id)
-- index). $1 booking_id, $2/$3 the last (occurred_at, id) already seen ('-infinity' and the nil
-- uuid for the first page), $4 how many rows, $5 whether to include raw_data.
SELECT e.id, e.event_type, e.occurred_at, e.zoom_meeting_id, e.participant_name,
       e.participant_email, e.participant_user_id, e.source,
       CASE WHEN $5::boolean THEN e.raw_data END AS raw_data
  FROM zoom_webhook_events AS e
 WHERE e.booking_id = $1
   AND (e.occurred_at, e.id) > ($2::timestamptz, $3::uuid)
 ORDER BY e.occurred_at, e.id
 LIMIT $4;

-- name: select_booking_events
-- A booking's events for attendance and the timeline, oldest first, at most $2 rows (the
-- caller asks one more than it accepts, to know when a booking has too many). $1 booking_id.
-- Of a delivered body only what the readers use travels (the meeting's uuid and host_id and
-- the participant object, in the body's own shape): never a whole body per event. A recovered
-- row's raw_data is Zoom's participant or instance record, small and read whole.
SELECT e.id, e.event_type, e.occurred_at, e.meeting_uuid, e.participant_name,
       e.participant_email, e.participant_user_id, e.source, e.participant_person,
       CASE WHEN e.source = 'zoom_api' OR jsonb_typeof(e.raw_data) <> 'object' THEN e.raw_data
            ELSE jsonb_build_object('payload', jsonb_build_object('object', jsonb_strip_nulls(
                     jsonb_build_object(
                         'uuid', e.raw_data #> '{payload,object,uuid}',
                         'host_id', e.raw_data #> '{payload,object,host_id}',
                         'participant', e.raw_data #> '{payload,object,participant}'))))
       END AS raw_data
  FROM zoom_webhook_events AS e
 WHERE e.booking_id = $1
 ORDER BY e.occurred_at, e.id
 LIMIT $2;

-- name: select_webhook_events_to_strip
-- Retention: the next events that occurred before $1 and still carry participant details, at
-- most $2, locked until the transaction ends; rows another transaction holds are skipped (SKIP
-- LOCKED) and left for the next run, so retention never waits on ingest or blocks it. The
-- WHERE clause repeats zoom_webhook_events_unstripped_idx's predicate so that the index serves
-- it. Fewer than $2 rows means nothing is left to do after them.
SELECT e.id, e.zoom_meeting_id
  FROM zoom_webhook_events AS e
 WHERE e.occurred_at < $1
   AND (e.participant_name IS NOT NULL
        OR e.participant_email IS NOT NULL
        OR (e.raw_data IS NOT NULL AND NOT e.raw_data @> '{"redacted": true}'))
 ORDER BY e.occurred_at, e.id
 LIMIT $2
   FOR UPDATE SKIP LOCKED;

-- name: select_meeting_participant_events
-- Every participant event of the meetings $1 (text[]), as attendance reads them, for retention
-- to find who each person is before it strips their names and emails.
SELECT e.id, e.event_type, e.occurred_at, e.meeting_uuid, e.participant_name,
       e.participant_email, e.participant_user_id, e.raw_data, e.source, e.participant_person
  FROM zoom_webhook_events AS e
 WHERE e.zoom_meeting_id = ANY($1::text[])
   AND e.event_type IN ('meeting.participant_joined', 'meeting.participant_left')
 ORDER BY e.occurred_at, e.id;

-- name: set_webhook_event_persons
-- Give each event its person's token. $1 event ids (uuid[]), $2 their tokens (uuid[]).
UPDATE zoom_webhook_events AS e
   SET participant_person = p.person
  FROM unnest($1::uuid[], $2::uuid[]) AS p (id, person)
 WHERE e.id = p.id
   AND e.participant_person IS DISTINCT FROM p.person;

-- name: strip_webhook_event_pii
-- Retention: forget who took part in the events $1 (uuid[], locked by
-- select_webhook_events_to_strip in the same transaction). Kept: the row, event_type,
-- occurred_at, zoom_meeting_id, meeting_uuid, booking_id, dedupe_key, participant_person and
-- Zoom's participant ids (attendance still counts each person's time). Gone: name, email, and
-- every other part of raw_data, which shrinks to the event's non-personal skeleton marked
-- "redacted" (a row recovered from Zoom's API keeps the ids and times of Zoom's record, which
-- is its raw_data). Returns the ids stripped.
UPDATE zoom_webhook_events AS e
   SET participant_name = NULL,
       participant_email = NULL,
       raw_data = CASE WHEN e.raw_data IS NULL THEN NULL
       WHEN e.source = 'zoom_api' THEN jsonb_strip_nulls(jsonb_build_object(
           'redacted', TRUE,
           'id', e.raw_data -> 'id',
           'uuid', e.raw_data -> 'uuid',
           'host_id', e.raw_data -> 'host_id',
           'user_id', e.raw_data -> 'user_id',
           'participant_user_id', e.raw_data -> 'participant_user_id',
           'start_time', e.raw_data -> 'start_time',
           'end_time', e.raw_data -> 'end_time',
           'join_time', e.raw_data -> 'join_time',
           'leave_time', e.raw_data -> 'leave_time',
           'duration', e.raw_data -> 'duration',
           'status', e.raw_data -> 'status'))
       ELSE jsonb_strip_nulls(jsonb_build_object(
           'redacted', TRUE,
           'event', e.raw_data -> 'event',
           'event_ts', e.raw_data -> 'event_ts',
           'payload', jsonb_build_object('object', jsonb_build_object(
               'id', e.raw_data #> '{payload,object,id}',
               'uuid', e.raw_data #> '{payload,object,uuid}',
               'host_id', e.raw_data #> '{payload,object,host_id}',
               'type', e.raw_data #> '{payload,object,type}',
               'start_time', e.raw_data #> '{payload,object,start_time}',
               'end_time', e.raw_data #> '{payload,object,end_time}',
               'duration', e.raw_data #> '{payload,object,duration}',
               'participant', CASE
                   WHEN jsonb_typeof(e.raw_data #> '{payload,object,participant}') = 'object'
                   THEN jsonb_build_object(
                       'id', e.raw_data #> '{payload,object,participant,id}',
                       'user_id', e.raw_data #> '{payload,object,participant,user_id}',
                       'participant_user_id',
                           e.raw_data #> '{payload,object,participant,participant_user_id}',
                       'participant_uuid',
                           e.raw_data #> '{payload,object,participant,participant_uuid}',
                       'join_time', e.raw_data #> '{payload,object,participant,join_time}',
                       'leave_time', e.raw_data #> '{payload,object,participant,leave_time}')
               END))
       )) END
 WHERE e.id = ANY($1::uuid[])
RETURNING e.id;

-- name: create_webhook_event_partitions
-- The monthly partitions of zoom_webhook_events from this UTC month to $1 months ahead, those
-- missing (sql/functions/create_zoom_webhook_events_partitions.sql). One row per month created.
SELECT month
  FROM create_zoom_webhook_events_partitions($1) AS month
 ORDER BY month;

-- name: lock_zoom_meeting
-- Take the per-meeting advisory lock that webhook ingest takes (migration 032), until the
-- transaction ends: recovered events and deliveries of meeting $1 are stored one at a time.
SELECT pg_advisory_xact_lock(zoom_meeting_lock_key($1));

-- name: select_meeting_events
-- Every stored event of meeting $1, whichever booking it is linked to: what reconciliation
-- compares Zoom's report with. No rows: nothing was delivered or recovered.
SELECT e.id, e.event_type, e.occurred_at, e.meeting_uuid, e.participant_name,
       e.participant_email, e.participant_user_id, e.raw_data, e.source
  FROM zoom_webhook_events AS e
 WHERE e.zoom_meeting_id = $1
 ORDER BY e.occurred_at, e.id;

-- name: insert_recovered_events
-- Store facts recovered from Zoom's API for booking $1 (meeting $2), source 'zoom_api', and
-- complete the booking when it is paid and a meeting.ended is among them, as a delivered one
-- does. Call under lock_zoom_meeting. $3 is a JSON array of objects with id, event_type,
-- meeting_uuid, occurred_at, participant_name, participant_email, participant_user_id,
-- dedupe_key (hex) and raw_data. One row: how many were stored (a fact already stored under
-- the same dedupe_key is skipped) and whether the booking was completed.
WITH inserted AS (
    INSERT INTO zoom_webhook_events
           (id, event_type, zoom_meeting_id, meeting_uuid, occurred_at, participant_name,
            participant_email, participant_user_id, dedupe_key, raw_data, booking_id, source)
    SELECT (e ->> 'id')::uuid, e ->> 'event_type', $2, e ->> 'meeting_uuid',
           (e ->> 'occurred_at')::timestamptz, e ->> 'participant_name',
           e ->> 'participant_email', e ->> 'participant_user_id',
           decode(e ->> 'dedupe_key', 'hex'), e -> 'raw_data', $1, 'zoom_api'
      FROM jsonb_array_elements($3::jsonb) AS e
        ON CONFLICT (dedupe_key, occurred_at) DO NOTHING
    RETURNING zoom_webhook_events.event_type
), completed AS (
    UPDATE bookings
       SET status = 'completed'
     WHERE id = $1
       AND status = 'paid'
       AND EXISTS (SELECT 1 FROM inserted WHERE inserted.event_type = 'meeting.ended')
    RETURNING bookings.id
)
SELECT (SELECT count(*) FROM inserted) AS recovered,
       EXISTS (SELECT 1 FROM completed) AS completed;
