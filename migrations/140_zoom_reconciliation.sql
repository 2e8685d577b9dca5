-- Reconciliation (service/jobs/reconcile.py): evidence recovered from Zoom's REST API.
--  * zoom_webhook_events.source: 'webhook' for deliveries, 'zoom_api' for recovered facts;
--  * zoom_reconciliation_runs: one row per reconciliation of a booking (when, outcome, counts);
--    a booking with a final outcome ('recovered', 'complete', 'no_meeting') is no longer due;
--  * indexes for finding due bookings by their scheduled end: the request's starts_at (the end
--    is starts_at + duration_minutes), or for a booking without a request its created_at.
-- depends: 130_partition_webhook_events_by_month
ALTER TABLE zoom_webhook_events
    ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook'
    CONSTRAINT zoom_webhook_events_source_check CHECK (source IN ('webhook', 'zoom_api'));

CREATE TABLE zoom_reconciliation_runs (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    booking_id      UUID NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    zoom_meeting_id TEXT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    outcome         TEXT NOT NULL
                    CONSTRAINT zoom_reconciliation_runs_outcome_check
                    CHECK (outcome IN ('recovered', 'complete', 'no_meeting', 'pending', 'failed')),
    instances       INTEGER NOT NULL DEFAULT 0,
    recovered       INTEGER NOT NULL DEFAULT 0,
    detail          TEXT
);

CREATE INDEX zoom_reconciliation_runs_booking_idx
    ON zoom_reconciliation_runs (booking_id, finished_at);
CREATE INDEX zoom_reconciliation_runs_final_idx
    ON zoom_reconciliation_runs (booking_id)
 WHERE outcome IN ('recovered', 'complete', 'no_meeting');

CREATE INDEX booking_requests_scheduled_idx
    ON booking_requests (starts_at)
 WHERE booking_id IS NOT NULL;
CREATE INDEX bookings_reconcilable_created_idx
    ON bookings (created_at)
 WHERE zoom_meeting_id IS NOT NULL AND status IN ('paid', 'completed');
