/*
 * store_int: what the store's own files share and nobody else sees (the
 * shape of SQLite's sqliteInt.h beside sqlite3.h). store.c is one
 * connection; store_commit.c is the group committer that owns one such
 * connection and writes for every thread of a process.
 */
#ifndef CONSUMA_STORE_INT_H
#define CONSUMA_STORE_INT_H

#include "store.h"

/* The intake of one job inside the caller's open write transaction: the
 * idempotency key, the intake bounds, the row. STORE_OK (res says new or
 * replayed), STORE_FULL or STORE_CONFLICT are this job's answer and leave
 * the transaction usable; any other error means the transaction must be
 * rolled back. */
enum store_err store_job_in_tx(struct store *s, const struct job_insert *job,
                               struct job_result *res);
/* Inserts a /sync record inside the caller's open write transaction. */
enum store_err store_sync_record_in_tx(struct store *s, const struct sync_record *r);
/* fdatasync of the WAL through SQLite's own handle: every transaction
 * committed so far on the database, by any connection, survives a power
 * cut once it returns STORE_OK (store.c's header says why). Needs no lock. */
enum store_err store_wal_sync(struct store *s);
/* True when the connection is inside a transaction (SQLite rolled a failed
 * one back by itself when this turns false after an error). */
bool store_in_tx(struct store *s);

/* The committer's entry points, reached through store_insert_job and
 * store_insert_sync of a store that store_use_committer attached. */
enum store_err store_committer_submit(struct store_committer *c, const struct job_insert *job,
                                      struct job_result *res, char *msg, size_t msglen);
enum store_err store_committer_log(struct store_committer *c, const struct sync_record *r);

#endif
