-- 001_init (PostgreSQL): the whole schema of the SQLite migrations
-- sql/sqlite/001..006 in one step, in PostgreSQL's terms: requests (the
-- /sync records and the durable async job queue), attempts, heartbeats,
-- drain, and the intake counters. Times are Unix epoch milliseconds (UTC,
-- bigint) as in SQLite; lib/store_pg.c holds the statements and says why
-- they are shaped so.
--
-- Counters without a hot row. SQLite has one writer at a time, so one
-- counter row per name costs it nothing. Here every committer (one per
-- consuma-fcgi process, on every host) and every deliverer would update
-- the same queue_depth row (and, in a storm aimed at one receiver, the same
-- host_pending and client_pending rows), and a row lock is held until
-- COMMIT returns, that is across the WAL flush of synchronous_commit=on:
-- all writers would take turns through one flush at a time. So every
-- counter is split by writer: a writer only ever adds to its own row,
-- (name, pg_backend_pid()), a backend process runs one transaction at a
-- time, so no two live transactions ever write the same counter row and a
-- counter write never waits or deadlocks. A reader sums a key's rows
-- (a handful: one per backend that wrote it since the last fold). Shard 0
-- holds what consuma_fold_counters() has folded in (store_prune calls it),
-- so the row count stays at about the number of live backends per key.
-- The price: an intake bound is read from committed rows plus the
-- transaction's own, so jobs committing at the same moment in other
-- transactions are not seen; across hosts a bound can be passed by at most
-- the jobs of the batches in flight at that moment (within one committer's
-- batch it is exact, as in SQLite). Measured on the 2-core test machine
-- (8 connections committing 5-job batches at synchronous_commit=on): one
-- counter row per name took 475-675 jobs/s (the committers took turns
-- through one WAL flush each, ~135 commits/s), the split rows 1434-1851
-- jobs/s; with a bound of 1000 and 8 committers of 20-job batches, 1082
-- jobs got in.

-- A row's claim key (store_claim_key in lib/store.c says what it is; this
-- follows SQLite's string functions step by step, positions 1-based). One
-- expression, so that the planner can inline it.
CREATE OR REPLACE FUNCTION consuma_claim_key(url text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(substr(url, 1, strpos(url, '://') + 2 + strpos(
        replace(replace(substr(url, strpos(url, '://') + 3), '?', '/'), '#', '/') || '/', '/') - 1))
$$;

CREATE TABLE IF NOT EXISTS requests (
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- acceptance order
    id               text   NOT NULL UNIQUE,                          -- UUIDv7
    mode             text   NOT NULL CHECK (mode IN ('sync', 'async')),
    status           text   NOT NULL
                     CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    callback_status  text
                     CHECK (callback_status IN ('pending', 'delivering', 'delivered',
                                                'retrying', 'failed')),
    input_data       text   NOT NULL,
    iterations       bigint NOT NULL CHECK (iterations >= 1),
    callback_url     text,
    callback_host    text,                  -- lowercased host of callback_url
    -- what claims leave a busy destination out by: stored, since a claim
    -- skipping one reads it on every due row (a call per row was most of
    -- a claim's time)
    claim_key        text GENERATED ALWAYS AS (consuma_claim_key(callback_url)) STORED,
    pending_keys     text,                  -- JSON array of the per-destination keys
    client_addr      text,
    idempotency_key  text,
    body_hash        text,                  -- sha256 hex of the request body
    owner            text,                  -- the API key's client name
    result           text,                  -- 64 hex once computed
    duration_ms      double precision,      -- compute time
    created_at       bigint NOT NULL,
    started_at       bigint,
    completed_at     bigint,                -- work completed
    finished_at      bigint,                -- nothing left to do (async: delivered/failed)
    attempts         bigint NOT NULL DEFAULT 0,
    next_attempt_at  bigint,                -- due time while unfinished
    lease_owner      text,
    lease_token      bigint,
    lease_expires_at bigint,
    last_error       text
);

-- The claim's walk, in due order, over the unfinished jobs only.
CREATE INDEX IF NOT EXISTS requests_due
    ON requests (next_attempt_at, seq) WHERE finished_at IS NULL AND mode = 'async';
-- Idempotency is this unique index (never an advisory lock): an intake
-- that loses the race to insert the same key sees ON CONFLICT DO NOTHING
-- and reads the winner's row. coalesce: a missing client address is one
-- client, as SQLite's "client_addr IS ?" finds it.
CREATE UNIQUE INDEX IF NOT EXISTS requests_idempotency
    ON requests ((coalesce(client_addr, '')), idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_async ON requests (seq) WHERE mode = 'async';
CREATE INDEX IF NOT EXISTS requests_owner ON requests (owner, seq) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_lease_owner
    ON requests (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE IF NOT EXISTS attempts (
    request_seq     bigint NOT NULL REFERENCES requests (seq) ON DELETE CASCADE,
    number          bigint NOT NULL CHECK (number >= 1),
    state           text   NOT NULL CHECK (state IN ('sending', 'done', 'unknown')),
    started_at      bigint NOT NULL,
    duration_ms     double precision,
    http_status     integer,
    error_class     text,
    error_message   text,
    next_attempt_at bigint,
    lease_token     bigint,
    PRIMARY KEY (request_seq, number)
);

CREATE TABLE IF NOT EXISTS heartbeats (
    owner        text PRIMARY KEY,
    pid          bigint NOT NULL,
    started_at   bigint NOT NULL,
    beat_at      bigint NOT NULL,
    busy_workers bigint NOT NULL DEFAULT 0,
    workers      bigint NOT NULL DEFAULT 0,
    inflight     bigint NOT NULL DEFAULT 0
);

-- The counters, split by writer (see the top). queue_depth is the row
-- name 'queue_depth' of counters.
CREATE TABLE IF NOT EXISTS counters (
    name  text    NOT NULL,
    shard integer NOT NULL,
    value bigint  NOT NULL,
    PRIMARY KEY (name, shard)
);
CREATE TABLE IF NOT EXISTS host_pending (
    host  text    NOT NULL,
    shard integer NOT NULL,
    n     bigint  NOT NULL,
    PRIMARY KEY (host, shard)
);
CREATE TABLE IF NOT EXISTS client_pending (
    client text    NOT NULL,
    shard  integer NOT NULL,
    n      bigint  NOT NULL,
    PRIMARY KEY (client, shard)
);
-- Async jobs finished per second (the queue's Retry-After), split the same
-- way; store_prune drops the seconds older than an hour.
CREATE TABLE IF NOT EXISTS drain (
    second bigint  NOT NULL,
    shard  integer NOT NULL,
    n      bigint  NOT NULL,
    PRIMARY KEY (second, shard)
);

-- The keys a job counts under (sql/sqlite/005_pending_keys.sql): its
-- pending_keys, or its callback_host alone for a row without them. Once
-- per element, so a repeated key is counted and taken off twice alike.
CREATE OR REPLACE FUNCTION consuma_pending_keys(keys text, host text) RETURNS SETOF text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_array_elements_text(coalesce(keys::jsonb, jsonb_build_array(coalesce(host, ''))))
$$;

-- Adds d to every counter of job r, in this backend's shard.
-- Always an upsert, never a plain UPDATE: a row consuma_fold_counters
-- deleted meanwhile is simply inserted again.
CREATE OR REPLACE FUNCTION consuma_count_job(r requests, d integer) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    me integer := pg_backend_pid();
BEGIN
    INSERT INTO counters (name, shard, value) VALUES ('queue_depth', me, d)
        ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + excluded.value;
    INSERT INTO client_pending (client, shard, n) VALUES (coalesce(r.client_addr, ''), me, d)
        ON CONFLICT (client, shard) DO UPDATE SET n = client_pending.n + excluded.n;
    INSERT INTO host_pending (host, shard, n)
        SELECT k, me, d * count(*) FROM consuma_pending_keys(r.pending_keys, r.callback_host) k
        WHERE k IS NOT NULL GROUP BY k ORDER BY k
        ON CONFLICT (host, shard) DO UPDATE SET n = host_pending.n + excluded.n;
END $$;

-- An async job counts from its insert until finished_at is set, and again
-- from a redelivery (finished_at back to NULL) until it finishes again.
-- Inserts are counted per statement: the intake writes a whole batch of
-- jobs with one INSERT (lib/store_pg.c), and one upsert per counter and
-- key for the batch costs a tenth of a row trigger's plpgsql call and three
-- upserts per job.
CREATE OR REPLACE FUNCTION consuma_requests_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    me integer := pg_backend_pid();
BEGIN
    INSERT INTO counters (name, shard, value)
        SELECT 'queue_depth', me, count(*) FROM new_rows
        WHERE mode = 'async' AND finished_at IS NULL HAVING count(*) > 0
        ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + excluded.value;
    IF NOT FOUND THEN
        RETURN NULL; -- no job among them (a /sync record)
    END IF;
    INSERT INTO client_pending (client, shard, n)
        SELECT coalesce(client_addr, ''), me, count(*) FROM new_rows
        WHERE mode = 'async' AND finished_at IS NULL GROUP BY 1 ORDER BY 1
        ON CONFLICT (client, shard) DO UPDATE SET n = client_pending.n + excluded.n;
    INSERT INTO host_pending (host, shard, n)
        SELECT k, me, count(*) FROM new_rows r, consuma_pending_keys(r.pending_keys, r.callback_host) k
        WHERE r.mode = 'async' AND r.finished_at IS NULL AND k IS NOT NULL GROUP BY k ORDER BY k
        ON CONFLICT (host, shard) DO UPDATE SET n = host_pending.n + excluded.n;
    RETURN NULL;
END $$;

-- A job finishes in one statement only, the deliverer's attempt end
-- (PS_ATTEMPT_END in lib/store_pg.c), which takes it off the counters and
-- counts it in drain itself, in plain SQL: this row trigger's plpgsql call
-- per job halved the deliverer's throughput (1016 against 1940 jobs/s
-- without it). What is left here is the way back: a redelivery (finished_at
-- back to NULL) counts the job again until it finishes again.
CREATE OR REPLACE FUNCTION consuma_requests_reopened() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM consuma_count_job(NEW, 1);
    RETURN NULL;
END $$;

CREATE TRIGGER requests_counted_insert AFTER INSERT ON requests
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION consuma_requests_inserted();
CREATE TRIGGER requests_reopened AFTER UPDATE OF finished_at ON requests
    FOR EACH ROW WHEN (NEW.mode = 'async' AND OLD.finished_at IS NOT NULL AND NEW.finished_at IS NULL)
    EXECUTE FUNCTION consuma_requests_reopened();

-- Folds the counter rows of table tbl (key column k, value column v) that
-- no live transaction holds into shard 0, at most max_rows of them, and
-- drops the shard 0 rows at zero. SKIP LOCKED: a row a writer holds stays
-- for the next fold, so the fold never waits for a writer and a writer
-- waits at most for the fold's own short transaction. Every writer upserts
-- (never a plain UPDATE), so a row folded away meanwhile is simply
-- inserted again.
CREATE OR REPLACE FUNCTION consuma_fold(tbl text, k text, v text, max_rows integer) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'WITH moved AS (DELETE FROM %1$I c USING (SELECT %2$I, shard FROM %1$I '
        'WHERE shard <> 0 ORDER BY %2$I, shard LIMIT $1 FOR UPDATE SKIP LOCKED) m '
        'WHERE c.%2$I = m.%2$I AND c.shard = m.shard RETURNING c.%2$I, c.%3$I) '
        'INSERT INTO %1$I (%2$I, shard, %3$I) '
        'SELECT %2$I, 0, sum(%3$I) FROM moved GROUP BY %2$I ORDER BY %2$I '
        'ON CONFLICT (%2$I, shard) DO UPDATE SET %3$I = %1$I.%3$I + excluded.%3$I',
        tbl, k, v) USING max_rows;
    -- only folds write shard 0, and only one fold runs: these rows are ours
    EXECUTE format('DELETE FROM %1$I WHERE shard = 0 AND %2$I = 0', tbl, v);
END $$;

-- The fold of every counter (store_prune calls it). The transaction-level
-- advisory lock keeps two folds (two deliverers pruning at once) from
-- upserting shard 0 rows in opposite orders; it works behind PgBouncer in
-- transaction mode as a session lock would not.
CREATE OR REPLACE FUNCTION consuma_fold_counters(max_rows integer) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    IF pg_try_advisory_xact_lock(109377355738212) THEN -- "czfold" in ASCII
        PERFORM consuma_fold('counters', 'name', 'value', max_rows);
        PERFORM consuma_fold('host_pending', 'host', 'n', max_rows);
        PERFORM consuma_fold('client_pending', 'client', 'n', max_rows);
    END IF;
END $$;
