-- 002_deliverer: an index for the deliverer's owner-wide writes.
--
-- Lease renewal (every few seconds), the hand-back at shutdown and the
-- recovery of a dead deliverer's leases all select "the unfinished jobs this
-- owner holds". Without this index they walk every unfinished job; with it
-- they touch only the rows the owner holds (at most its in-hand capacity).
-- Released and finished jobs have lease_owner NULL and stay out of it.
CREATE INDEX IF NOT EXISTS requests_lease_owner
    ON requests (lease_owner) WHERE lease_owner IS NOT NULL;
