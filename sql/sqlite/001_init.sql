-- 001_init: the request table (sync records and the durable async job queue),
-- the attempt log, the deliverer heartbeat and O(1) counters.
--
-- One row of `requests` is one accepted request. For async jobs the row is
-- also the queue entry: it is unfinished while finished_at IS NULL, due when
-- next_attempt_at <= now, and owned by a deliverer while its lease is live.
-- Times are Unix epoch milliseconds (UTC); the API formats them as RFC 3339.

CREATE TABLE IF NOT EXISTS requests (
    seq              INTEGER PRIMARY KEY,            -- acceptance order
    id               TEXT    NOT NULL UNIQUE,        -- UUIDv7
    mode             TEXT    NOT NULL CHECK (mode IN ('sync', 'async')),
    status           TEXT    NOT NULL
                     CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    callback_status  TEXT
                     CHECK (callback_status IN ('pending', 'delivering', 'delivered',
                                                'retrying', 'failed')),
    input_data       TEXT    NOT NULL,
    iterations       INTEGER NOT NULL CHECK (iterations >= 1),
    callback_url     TEXT,
    callback_host    TEXT,                           -- lowercased host of callback_url
    client_addr      TEXT,
    idempotency_key  TEXT,
    body_hash        TEXT,                           -- sha256 hex of the request body
    result           TEXT,                           -- 64 hex once computed
    duration_ms      REAL,                           -- compute time
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER,                        -- work completed
    finished_at      INTEGER,                        -- nothing left to do (async: delivered/failed)
    attempts         INTEGER NOT NULL DEFAULT 0,     -- callback attempts started
    next_attempt_at  INTEGER,                        -- due time while unfinished
    lease_owner      TEXT,
    lease_token      INTEGER,
    lease_expires_at INTEGER,
    last_error       TEXT
);

CREATE INDEX IF NOT EXISTS requests_due
    ON requests (next_attempt_at, seq) WHERE finished_at IS NULL AND mode = 'async';
CREATE INDEX IF NOT EXISTS requests_created ON requests (created_at DESC, seq DESC);
CREATE INDEX IF NOT EXISTS requests_mode_created ON requests (mode, created_at DESC, seq DESC);
CREATE UNIQUE INDEX IF NOT EXISTS requests_idempotency
    ON requests (client_addr, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS attempts (
    request_seq     INTEGER NOT NULL REFERENCES requests (seq),
    number          INTEGER NOT NULL CHECK (number >= 1),
    state           TEXT    NOT NULL CHECK (state IN ('sending', 'done', 'unknown')),
    started_at      INTEGER NOT NULL,
    duration_ms     REAL,
    http_status     INTEGER,
    error_class     TEXT,
    error_message   TEXT,
    next_attempt_at INTEGER,
    lease_token     INTEGER,
    PRIMARY KEY (request_seq, number)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS heartbeats (
    owner        TEXT PRIMARY KEY,
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    beat_at      INTEGER NOT NULL,
    busy_workers INTEGER NOT NULL DEFAULT 0,
    workers      INTEGER NOT NULL DEFAULT 0,
    inflight     INTEGER NOT NULL DEFAULT 0
);

-- O(1) counters maintained by triggers, so intake checks (queue depth,
-- pending per destination host, per client) never scan the table.
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO counters (name, value) VALUES ('queue_depth', 0);

CREATE TABLE IF NOT EXISTS host_pending (
    host TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS client_pending (
    client TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS requests_enqueued AFTER INSERT ON requests
WHEN NEW.mode = 'async' AND NEW.finished_at IS NULL
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'queue_depth';
    INSERT INTO host_pending (host, n) VALUES (coalesce(NEW.callback_host, ''), 1)
        ON CONFLICT (host) DO UPDATE SET n = n + 1;
    INSERT INTO client_pending (client, n) VALUES (coalesce(NEW.client_addr, ''), 1)
        ON CONFLICT (client) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER IF NOT EXISTS requests_finished AFTER UPDATE OF finished_at ON requests
WHEN NEW.mode = 'async' AND OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL
BEGIN
    UPDATE counters SET value = value - 1 WHERE name = 'queue_depth';
    UPDATE host_pending SET n = n - 1 WHERE host = coalesce(NEW.callback_host, '');
    DELETE FROM host_pending WHERE host = coalesce(NEW.callback_host, '') AND n <= 0;
    UPDATE client_pending SET n = n - 1 WHERE client = coalesce(NEW.client_addr, '');
    DELETE FROM client_pending WHERE client = coalesce(NEW.client_addr, '') AND n <= 0;
END;
