-- 009_checks_without_lists: the CHECK constraints on requests.status,
-- requests.callback_status and attempts.state compare with each value in
-- turn instead of an IN list.
--
-- SQLite codes `x IN (a, b, c, ...)` with more than two constants as a
-- temporary b-tree built, filled and freed on every evaluation, and a CHECK
-- is evaluated on every INSERT and on every UPDATE that sets its column:
-- nine such b-trees per async job (its insert, the claim, the first
-- attempt's two writes, the outcome's two). A chain of equalities is a few
-- comparisons. Measured with the sqlite3 CLI, 200,000 inserts and one
-- update of them all: 0.52 s -> 0.14 s; on the whole async path
-- (consuma-storm --mode async -n 20000 -c 64, three alternating rounds)
-- 7,800 -> 8,950 jobs/s, the deliverer's CPU 88 -> 73 us per job.
--
-- The expressions accept exactly the same values (NULL included: a CHECK
-- that is NULL passes), so every row already stored satisfies them and
-- the on-disk format does not change: this is the edit of the stored
-- CREATE TABLE text that SQLite's documentation ("Making Other Kinds Of
-- Table Schema Changes") allows for a CHECK constraint, without a table
-- rebuild. lib/store_sqlite.c's migrate() raises schema_version after the
-- migrations, so every connection, this one included, parses the new
-- text. Each replace() must match the text 001_init.sql stored;
-- tests/unit/test_store.c checks that no IN list is left.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(replace(sql,
        'CHECK (status IN (''queued'', ''running'', ''completed'', ''failed''))',
        'CHECK (status = ''queued'' OR status = ''running'' OR status = ''completed''
                            OR status = ''failed'')'),
        'CHECK (callback_status IN (''pending'', ''delivering'', ''delivered'',
                                                ''retrying'', ''failed''))',
        'CHECK (callback_status = ''pending'' OR callback_status = ''delivering''
                            OR callback_status = ''delivered'' OR callback_status = ''retrying''
                            OR callback_status = ''failed'')')
WHERE type = 'table' AND name = 'requests';
UPDATE sqlite_schema
SET sql = replace(sql,
        'CHECK (state IN (''sending'', ''done'', ''unknown''))',
        'CHECK (state = ''sending'' OR state = ''done'' OR state = ''unknown'')')
WHERE type = 'table' AND name = 'attempts';
PRAGMA writable_schema = OFF;
