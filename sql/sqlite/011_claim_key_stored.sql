-- 011_claim_key_stored: the due index keeps the claim key as a stored
-- column, claim_origin, written at insert (lib/store.c's store_claim_key,
-- the same function of callback_url as 008's claim_key: tests/unit/
-- test_queue.c checks they agree), instead of 008's virtual column.
--
-- SQLite computes a virtual column each time it builds an index entry from
-- the row, and requests_due's entry of a job is built four times (its
-- insert, the claim's delete and insert when next_attempt_at moves, the
-- end's delete): eight string functions each time. Counted by
-- tools/bench.sh store (callgrind), the deliverer's writes fell from
-- ~162,000 to ~142,000 instructions per job with the key left out of the
-- index, the bound of what a stored key saves.
--
-- Every async row gets its key here, finished ones too (a redelivery puts
-- them back in the index): one pass over the table, in the migration's
-- transaction. A row written by hand without claim_origin is never left
-- out of a claim (the claim's test is on claim_origin IS NULL first).
ALTER TABLE requests ADD COLUMN claim_origin TEXT;
UPDATE requests SET claim_origin = claim_key WHERE mode = 'async';
DROP INDEX IF EXISTS requests_due;
CREATE INDEX requests_due
    ON requests (next_attempt_at, seq, claim_origin) WHERE finished_at IS NULL AND mode = 'async';
