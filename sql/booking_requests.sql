-- name: claim_booking_request
-- Claim a pending request for one accept, committed before Zoom is called: of racing accepts,
-- on any replica, one holds the claim; the others see it and wait for its outcome. A claim
-- lapses at accept_claimed_until (its holder died). NOWAIT: a row another transaction locks
-- fails at once (SQLSTATE 55P03) and the caller polls, holding no connection meanwhile.
-- $1 request id, $2 coach id, $3 the claim's token, $4 seconds it holds. No row: no such
-- request. claimed: this call holds the claim now (the request was pending, of that coach,
-- and unclaimed, its claim lapsed, or the claim was already this token's: a retry).
WITH target AS (
    SELECT r.id, r.coach_id, r.athlete_id, r.starts_at, r.duration_minutes, r.status,
           r.booking_id, r.accept_claim, r.accept_claimed_until
      FROM booking_requests AS r
     WHERE r.id = $1
       FOR UPDATE NOWAIT
), claim AS (
    UPDATE booking_requests AS r
       SET accept_claim = $3,
           accept_claimed_until = clock_timestamp() + make_interval(secs => $4)
      FROM target AS t
     WHERE r.id = t.id
       AND t.status = 'pending'
       AND t.coach_id = $2
       AND (t.accept_claimed_until IS NULL
            OR t.accept_claimed_until <= clock_timestamp()
            OR t.accept_claim = $3)
    RETURNING r.id
)
SELECT t.id, t.coach_id, t.athlete_id, t.starts_at, t.duration_minutes, t.status, t.booking_id,
       EXISTS (SELECT 1 FROM claim) AS claimed
  FROM target AS t;

-- name: accept_booking_request
-- Mark a claimed pending request accepted, pointing at its new booking, and end the claim.
-- $1 request id, $2 booking id, $3 the claim's token. No row: the request was no longer
-- pending or no longer ours (the claim lapsed and another accept took it); the caller rolls
-- back.
UPDATE booking_requests
   SET status = 'accepted',
       booking_id = $2,
       accept_claim = NULL,
       accept_claimed_until = NULL
 WHERE id = $1
   AND status = 'pending'
   AND accept_claim = $3
RETURNING id;

-- name: release_booking_request_claim
-- End an accept's claim without accepting (Zoom failed): the next accept may go at once.
-- $1 request id, $2 the claim's token. No row: the claim was no longer ours.
UPDATE booking_requests
   SET accept_claim = NULL,
       accept_claimed_until = NULL
 WHERE id = $1
   AND accept_claim = $2
RETURNING id;

-- name: select_booking_schedule
-- When a booking's meeting was planned: its request's start and end. $1 booking id.
-- No row: the booking came without a request (the web app inserted it directly).
SELECT r.starts_at,
       r.starts_at + make_interval(mins => r.duration_minutes) AS ends_at
  FROM booking_requests AS r
 WHERE r.booking_id = $1
 ORDER BY r.starts_at
 LIMIT 1;

-- name: select_request_booking
-- The booking an accepted request points at, for an accept that lost its connection during
-- COMMIT and must learn whether its booking was written. $1 request id. No row: not accepted.
SELECT b.id, b.coach_id, b.athlete_id, b.status, b.zoom_meeting_id, b.zoom_join_url,
       b.zoom_start_url, b.created_at, b.updated_at
  FROM booking_requests AS r
  JOIN bookings AS b ON b.id = r.booking_id
 WHERE r.id = $1
   AND r.status = 'accepted';
