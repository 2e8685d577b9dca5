ALTER TABLE booking_requests DROP COLUMN accept_claimed_until;
ALTER TABLE booking_requests DROP COLUMN accept_claim;
