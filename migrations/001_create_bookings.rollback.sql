DROP TABLE bookings;
DROP FUNCTION set_updated_at();
