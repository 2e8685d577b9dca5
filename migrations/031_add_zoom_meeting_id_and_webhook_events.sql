-- The seed migration, one-to-one: the meeting id on bookings and the webhook events table.
-- depends: 001_create_bookings
ALTER TABLE bookings ADD COLUMN zoom_meeting_id TEXT;

CREATE INDEX bookings_zoom_meeting_id_idx ON bookings (zoom_meeting_id);

CREATE TABLE zoom_webhook_events (
  id UUID PRIMARY KEY,
  zoom_meeting_id TEXT NOT NULL,
  booking_id UUID REFERENCES bookings(id),
  event_type TEXT CHECK (event_type IN (
    'meeting.started',
    'meeting.ended',
    'meeting.participant_joined',
    'meeting.participant_left'
  )),
  participant_name TEXT,
  participant_email TEXT,
  participant_user_id TEXT,
  occurred_at TIMESTAMPTZ NOT NULL,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  raw_data JSONB
);

CREATE INDEX zoom_webhook_events_meeting_id_idx ON zoom_webhook_events (zoom_meeting_id);
CREATE INDEX zoom_webhook_events_booking_id_idx ON zoom_webhook_events (booking_id);
CREATE INDEX zoom_webhook_events_occurred_at_idx ON zoom_webhook_events (occurred_at);
CREATE INDEX zoom_webhook_events_event_type_idx ON zoom_webhook_events (event_type);
