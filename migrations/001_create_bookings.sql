-- The bookings table as it stood before the Zoom session logs feature.
-- coach_id / athlete_id point at users kept in another system, so they reference no table here.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE bookings (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    coach_id       UUID NOT NULL,
    athlete_id     UUID NOT NULL,
    status         TEXT NOT NULL DEFAULT 'paid'
                   CONSTRAINT bookings_status_check
                   CHECK (status IN ('paid', 'completed', 'cancelled', 'refunded')),
    zoom_join_url  TEXT,
    zoom_start_url TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX bookings_coach_id_idx ON bookings (coach_id);
CREATE INDEX bookings_athlete_id_idx ON bookings (athlete_id);

CREATE TRIGGER bookings_set_updated_at
    BEFORE UPDATE ON bookings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
