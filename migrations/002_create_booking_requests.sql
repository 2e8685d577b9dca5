-- An athlete's request for a session; a coach accepts it, which creates the booking.
-- depends: 001_create_bookings
CREATE TABLE booking_requests (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    coach_id         UUID NOT NULL,
    athlete_id       UUID NOT NULL,
    starts_at        TIMESTAMPTZ NOT NULL,
    duration_minutes INTEGER NOT NULL
                     CONSTRAINT booking_requests_duration_check
                     CHECK (duration_minutes > 0 AND duration_minutes <= 1440),
    status           TEXT NOT NULL DEFAULT 'pending'
                     CONSTRAINT booking_requests_status_check
                     CHECK (status IN ('pending', 'accepted', 'declined', 'cancelled')),
    booking_id       UUID REFERENCES bookings (id),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX booking_requests_coach_id_idx ON booking_requests (coach_id);
CREATE INDEX booking_requests_booking_id_idx ON booking_requests (booking_id);

CREATE TRIGGER booking_requests_set_updated_at
    BEFORE UPDATE ON booking_requests
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
