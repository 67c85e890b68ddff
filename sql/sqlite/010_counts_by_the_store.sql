-- 010_counts_by_the_store: the counter tables (counters.queue_depth,
-- host_pending, client_pending, drain) are kept by the store's code, not by
-- row triggers.
--
-- The triggers of 001, 003, 005 and 007 ran per row: three upserts for an
-- enqueued job, nine statements for a finished one (queue depth, two
-- destination keys and the client, each an update and a delete of a count
-- that reached 0, and the drain's upsert and trim). A transaction of the
-- committer or of the deliverer holds many jobs that share one client and
-- a few keys, so lib/store_sqlite.c now sums the changes in memory and
-- writes one statement per counter and key at commit, inside the same
-- transaction ("the transaction's counts"): the tables are exactly what
-- the triggers kept at every commit. Measured with the triggers simply
-- dropped (the bound of what this can save), on the whole async path
-- (consuma-storm --mode async -n 20000 -c 64): the deliverer's CPU
-- ~300 -> ~250 us per job, the API's ~165 -> ~140, jobs/s +15-20%.
--
-- Redelivery (lib/store_sqlite.c, sq_redeliver) already counted its jobs
-- itself, and retention deletes finished rows only, which no count holds.
-- The counts carried over are the triggers': nothing to recompute.
DROP TRIGGER IF EXISTS requests_enqueued;
DROP TRIGGER IF EXISTS requests_finished;
DROP TRIGGER IF EXISTS requests_finished_few_keys;
DROP TRIGGER IF EXISTS requests_finished_keys;
DROP TRIGGER IF EXISTS requests_drained;
