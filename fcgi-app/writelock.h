/*
 * writelock: serializes the database writes of every consuma-fcgi process
 * of a host with one flock(2) on "<database>.wlock", taken around each
 * store_insert_sync / store_insert_job_unsynced (POST /async releases it
 * before store_sync, so the WAL fsyncs of several processes overlap).
 *
 * Why: SQLite lets one writer in at a time and makes the others poll (the
 * store's busy handler sleeps and retries). With several processes writing
 * back to back, a waiter is often asleep when the lock frees, so the write
 * lock sits idle; and a process almost always holds a snapshot while
 * another commits, so WAL checkpoints never complete and the WAL grows
 * without bound (350 MB in 5 s of POST /sync measured), every commit past
 * wal_autocheckpoint paying for a partial checkpoint. Queued on a kernel
 * lock instead, the next writer is woken the moment the lock is released
 * and checkpoints complete: measured +28% POST /sync and +64% POST /async
 * throughput, WAL steady at ~4 MB (tools/bench/api.sh).
 *
 * Writers that do not take this lock (the deliverer) still meet the store's
 * busy handler, so correctness never depends on it; a lock file that cannot
 * be opened only costs the speed-up. One per process; not thread safe.
 */
#ifndef CONSUMA_FCGI_WRITELOCK_H
#define CONSUMA_FCGI_WRITELOCK_H

#include <stddef.h>

struct writelock;

/* Opens (creating) "<db_path>.wlock". NULL when it cannot, with why filled;
 * the caller may go on without it. Free with writelock_close. */
struct writelock *writelock_open(const char *db_path, char *why, size_t whylen);
/* writelock_close(NULL) is a no-op. */
void writelock_close(struct writelock *w);

/* Blocks until this process holds the lock; a no-op when w is NULL. */
void writelock_hold(struct writelock *w);
/* Releases it; a no-op when w is NULL or not held. */
void writelock_drop(struct writelock *w);

#endif
