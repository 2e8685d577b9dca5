-- Start Meeting / Join Meeting clicks in the web app.
-- depends: 001_create_bookings
CREATE TABLE zoom_session_logs (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    booking_id  UUID NOT NULL REFERENCES bookings (id),
    coach_id    UUID NOT NULL,
    athlete_id  UUID NOT NULL,
    action_type TEXT NOT NULL
                CONSTRAINT zoom_session_logs_action_type_check
                CHECK (action_type IN ('start_meeting', 'join_meeting')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX zoom_session_logs_booking_id_idx ON zoom_session_logs (booking_id, created_at);
