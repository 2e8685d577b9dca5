-- Who a participant event's person is, as an opaque token (a random uuid per person of a
-- meeting), written by retention (service/jobs/retention.py) before it strips names and emails:
-- a guest's name or email was the only thing tying their join to their leave, and attendance
-- groups by this token once they are gone, so it means the same before and after retention.
-- depends: 110_booking_request_accept_claims
ALTER TABLE zoom_webhook_events ADD COLUMN participant_person UUID;
