/*
 * crashvfs: a test-only SQLite VFS that simulates a power cut (in the spirit
 * of SQLite's src/test6.c "crash" VFS). It is a shim over the default unix
 * VFS, registered by tests/powerloss only and never linked into a program.
 *
 * Model. Every file SQLite opens by name under the watched directory (the
 * database, its WAL, a rollback journal) has, besides the real file the
 * connections keep using, two images in memory:
 *   cur  what the page cache holds: every xWrite/xTruncate applied;
 *   dur  what the device holds: cur as of the file's last successful xSync
 *        (fdatasync also makes the size durable);
 * plus the log of writes and truncations since that sync. The directory
 * entry is modelled too: a file created (or deleted) since the last
 * directory fsync may or may not exist after the cut. The unix VFS fsyncs a
 * directory inside xSync (the one-time DIRSYNC of a new WAL or journal) and
 * in xDelete(dirSync): both go through its "openDirectory" system call,
 * which the shim replaces (xSetSystemCall) to see them.
 *
 * A crash image (crashvfs_crash_image) is what the device could hold if the
 * power failed now: for each file its durable image plus, depending on a
 * seed, none, all, or a random subset of the unsynced writes torn at 512-byte
 * sectors (each piece of a write inside one sector is the old bytes, the new
 * bytes or garbage: the unix VFS claims powersafe overwrite, so bytes a
 * write did not touch are never damaged). The -shm file lives in mmapped
 * memory: after a real cut it is absent, stale or torn, so the image holds
 * one of those (SQLite must rebuild it from the WAL). The image is written
 * into a fresh directory; the live connections never notice, so one run can
 * be "cut" at many points.
 *
 * Crash points. The hook (crashvfs_set_hook) runs before and after every
 * write, truncate, sync, delete and directory sync of a watched file; a test
 * takes its images there. The hook must not call into SQLite.
 *
 * Threads: one recursive lock covers the model, each recorded operation and
 * its hooks, so connections may sync from other threads (a store's
 * committer); the hook then runs on that thread. There is one shim per
 * process (the openDirectory replacement has no context argument).
 */
#ifndef CONSUMA_CRASHVFS_H
#define CONSUMA_CRASHVFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRASHVFS_SECTOR 512

enum crashvfs_op {
	CRASHVFS_WRITE,
	CRASHVFS_TRUNCATE,
	CRASHVFS_SYNC,
	CRASHVFS_DIRSYNC,
	CRASHVFS_DELETE,
};

enum crashvfs_file {
	CRASHVFS_DB,
	CRASHVFS_WAL,
	CRASHVFS_JOURNAL,
	CRASHVFS_DIR,
};

struct crashvfs_event {
	enum crashvfs_op op;
	enum crashvfs_file file;
	bool after; /* false: about to happen; true: done */
	int64_t offset;
	int64_t len; /* bytes written, or the new size of a truncate */
};

typedef void (*crashvfs_hook)(void *arg, const struct crashvfs_event *ev);

struct crashvfs_counts {
	int64_t writes, truncates, syncs, dirsyncs, deletes;
	int64_t wal_restarts;  /* a WAL header rewritten at offset 0 over older frames */
	int64_t wal_truncates; /* the WAL truncated (checkpoint TRUNCATE) */
	int64_t db_writes;     /* writes into the database file: checkpoints */
};

/* What one crash image kept of the unsynced writes. */
struct crashvfs_image {
	int files;
	int64_t pieces_kept, pieces_dropped, pieces_garbage, truncates_dropped;
	int shm; /* 0 absent, 1 stale copy, 2 torn copy */
};

struct crashvfs;

/* Registers the shim as the default VFS, watching the files under dir (an
 * absolute path without a trailing slash). NULL when SQLite refused or
 * memory ran out. Deterministic randomness: xRandomness returns bytes from
 * rand_seed (reseed SQLite's PRNG with sqlite3_randomness(0, NULL)). */
struct crashvfs *crashvfs_install(const char *dir, uint64_t rand_seed);
/* Unregisters the shim (restoring the unix VFS as default and its
 * openDirectory) and frees the model. Every connection must be closed. */
void crashvfs_uninstall(struct crashvfs *cv);
void crashvfs_set_hook(struct crashvfs *cv, crashvfs_hook hook, void *arg);
/* From now on the shim passes everything through without recording or
 * calling the hook (to close the abandoned connections at the end). */
void crashvfs_discard(struct crashvfs *cv);
/* The counters; read them only while no other thread does I/O. */
const struct crashvfs_counts *crashvfs_counts(const struct crashvfs *cv);
/* WAL restarts plus truncations so far; safe from any thread. */
int64_t crashvfs_wal_resets(struct crashvfs *cv);

/* Writes the device image a power cut now could leave into outdir (an
 * existing, empty directory), choosing from seed. Also checks the model
 * against the real files (every recorded file's cur equals its content on
 * disk). Returns 0, or -1 with a message in err. Callable from the hook. */
int crashvfs_crash_image(struct crashvfs *cv, uint64_t seed, const char *outdir,
                         struct crashvfs_image *info, char *err, size_t errlen);

#endif
