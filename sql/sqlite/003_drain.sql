-- 003_drain: async jobs finished per second, so the Retry-After of a full
-- queue can be estimated from the recent drain rate with a read of a few
-- rows (fcgi-app/limits.c sums the last 10 seconds), whatever the queue
-- depth. Kept by a trigger next to requests_finished of 001_init; rows
-- older than an hour are dropped as new ones arrive, so the table stays at
-- most 3601 rows.

CREATE TABLE IF NOT EXISTS drain (
    second INTEGER PRIMARY KEY,  -- finished_at / 1000 (Unix seconds)
    n      INTEGER NOT NULL      -- async jobs that finished in that second
);

CREATE TRIGGER IF NOT EXISTS requests_drained AFTER UPDATE OF finished_at ON requests
WHEN NEW.mode = 'async' AND OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL
BEGIN
    INSERT INTO drain (second, n) VALUES (NEW.finished_at / 1000, 1)
        ON CONFLICT (second) DO UPDATE SET n = n + 1;
    DELETE FROM drain WHERE second < NEW.finished_at / 1000 - 3600;
END;
