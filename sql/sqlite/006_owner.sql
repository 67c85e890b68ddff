-- 006_owner: every record belongs to the client that created it.
--
-- owner is the client name of the API key that made the request
-- (CONSUMA_API_KEYS_FILE), NULL when the service runs open or for rows
-- from before this migration: those are seen by an admin key only once
-- keys are on. GET /requests for a client key lists WHERE owner = ?
-- newest first; requests_owner serves that walk (owner, then seq, the
-- acceptance order) without reading other clients' rows. It is partial:
-- an open service (owner NULL) writes no page of it, so intake costs what
-- it did before unless keys are on.
ALTER TABLE requests ADD COLUMN owner TEXT;
CREATE INDEX IF NOT EXISTS requests_owner ON requests (owner, seq) WHERE owner IS NOT NULL;
