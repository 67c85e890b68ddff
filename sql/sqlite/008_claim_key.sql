-- 008_claim_key: the claim key lives in requests_due, so a claim walks
-- past an excluded origin's jobs in the index alone.
--
-- A claim (and the due-time read) leaves out the origins the deliverer
-- excludes: an open breaker, or an origin with twice its per-host bound in
-- hand (deliverer/hosts.h). The key was computed per row from callback_url
-- with string functions, after a seek into the table for that column.
-- With one busy origin, every callback of a storm going to one receiver,
-- the whole backlog is that origin's, and each scan walked all of it:
-- 2.9 ms for 1,689 unfinished rows (a snapshot taken mid-storm, sqlite3
-- from Python). claim_key is a virtual generated column, stored only in
-- the index: 0.33 ms for the same walk, and no write computes it but the
-- index's own.
--
-- The expression is the claim key store_claim_key (lib/store.c) computes
-- in C, character for character (tests/unit/test_queue.c checks both
-- agree on every URL shape); it was the CLAIM_KEY macro of
-- lib/store_sqlite_queue.c, which now reads this column. PostgreSQL has
-- had the same column, stored, since its first migration.
ALTER TABLE requests ADD COLUMN claim_key TEXT GENERATED ALWAYS AS (
    lower(substr(callback_url, 1, instr(callback_url, '://') + 2
        + instr(replace(replace(substr(callback_url, instr(callback_url, '://') + 3),
                                '?', '/'), '#', '/') || '/', '/') - 1))
) VIRTUAL;

DROP INDEX IF EXISTS requests_due;
CREATE INDEX requests_due
    ON requests (next_attempt_at, seq, claim_key) WHERE finished_at IS NULL AND mode = 'async';
