-- The claim an accept holds on a request while it calls Zoom, committed before the call:
-- accept no longer keeps a transaction (and a pooled connection) open across Zoom's answer.
-- A racing accept that finds a live claim waits for its outcome; a claim whose holder died
-- lapses at accept_claimed_until, so the request can be accepted again.
-- (Depends on 090, the newest migration numbered below it, so that the stairway test applies
-- the files in the order of their names.)
-- depends: 090_time_ordered_webhook_event_ids
ALTER TABLE booking_requests ADD COLUMN accept_claim UUID;
ALTER TABLE booking_requests ADD COLUMN accept_claimed_until TIMESTAMPTZ;
