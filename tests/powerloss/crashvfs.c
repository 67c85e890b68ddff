/*
 * crashvfs: the power-cut simulating VFS shim (see crashvfs.h for the
 * model). Every watched file is one struct mfile, shared by all the
 * sqlite3_file objects that have it open (the page cache is per inode, and
 * an fdatasync through any descriptor flushes all of it). A name can have
 * two records: the live file and a "ghost", an unlinked inode whose unlink
 * is not durable yet (it may come back after a cut until the directory is
 * synced).
 */
#include "crashvfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

struct bytes {
	unsigned char *p;
	size_t n, cap;
};

struct op {
	bool truncate;
	int64_t off; /* truncate: the new size */
	size_t len;
	unsigned char *data;
};

struct mfile {
	char *path;
	enum crashvfs_file kind;
	struct bytes cur, dur;
	struct op *ops;
	size_t nops, capops;
	bool linked_now; /* the name points at this inode now */
	bool linked_dur; /* ... and the device's directory says so */
	bool gone;       /* unlinked, and that is durable: forgotten */
	struct mfile *next;
};

struct crashvfs {
	sqlite3_vfs vfs;
	sqlite3_vfs *real;
	char dir[PATH_MAX];
	size_t dirlen;
	struct mfile *files;
	bool discard;
	crashvfs_hook hook;
	void *hook_arg;
	uint64_t rand_state;
	struct crashvfs_counts counts;
	sqlite3_syscall_ptr real_opendir;
	pthread_mutex_t mu; /* recursive: the hook may take an image */
};

/* A file as SQLite sees it: our methods in front, the unix file behind. */
struct cfile {
	sqlite3_file base;
	struct crashvfs *cv;
	struct mfile *m; /* NULL: not watched */
	sqlite3_file *real;
};

enum keep { KEEP_NONE, KEEP_ALL, KEEP_TORN };

static struct crashvfs *the_shim; /* for openDirectory, which has no context */

/* One lock around the model, held across a recorded operation and its
 * hooks: a store that syncs from a committer thread still sees a
 * consistent model (the real I/O is serialized; this is a test). */
static void lock(struct crashvfs *cv)
{
	pthread_mutex_lock(&cv->mu);
}

static void unlock(struct crashvfs *cv)
{
	pthread_mutex_unlock(&cv->mu);
}

static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void set_err(char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vsnprintf(err, n, fmt, ap) < 0 && n)
		err[0] = '\0';
	va_end(ap);
}

/* ---- byte images ---------------------------------------------------------- */

static bool bytes_reserve(struct bytes *b, size_t n)
{
	if (n <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < n)
		cap *= 2;
	unsigned char *p = realloc(b->p, cap);
	if (!p)
		return false;
	b->p = p;
	b->cap = cap;
	return true;
}

/* Grows to n bytes (zero filled) or shrinks to n. */
static bool bytes_resize(struct bytes *b, size_t n)
{
	if (!bytes_reserve(b, n))
		return false;
	if (n > b->n)
		memset(b->p + b->n, 0, n - b->n);
	b->n = n;
	return true;
}

static bool bytes_write(struct bytes *b, int64_t off, const void *data, size_t len)
{
	size_t end = (size_t)off + len;
	if (end > b->n && !bytes_resize(b, end))
		return false;
	memcpy(b->p + off, data, len);
	return true;
}

static bool bytes_copy(struct bytes *dst, const struct bytes *src)
{
	if (!bytes_reserve(dst, src->n))
		return false;
	if (src->n)
		memcpy(dst->p, src->p, src->n);
	dst->n = src->n;
	return true;
}

static void bytes_free(struct bytes *b)
{
	free(b->p);
	*b = (struct bytes){0};
}

/* ---- the model ------------------------------------------------------------ */

static void ops_clear(struct mfile *m)
{
	for (size_t i = 0; i < m->nops; i++)
		free(m->ops[i].data);
	m->nops = 0;
}

static bool ops_push(struct mfile *m, bool truncate, int64_t off, const void *data, size_t len)
{
	if (m->nops == m->capops) {
		size_t cap = m->capops ? m->capops * 2 : 64;
		struct op *ops = realloc(m->ops, cap * sizeof *ops);
		if (!ops)
			return false;
		m->ops = ops;
		m->capops = cap;
	}
	struct op *o = &m->ops[m->nops];
	*o = (struct op){.truncate = truncate, .off = off, .len = len};
	if (len) {
		o->data = malloc(len);
		if (!o->data)
			return false;
		memcpy(o->data, data, len);
	}
	m->nops++;
	return true;
}

static void mfile_free(struct mfile *m)
{
	ops_clear(m);
	free(m->ops);
	bytes_free(&m->cur);
	bytes_free(&m->dur);
	free(m->path);
	free(m);
}

static struct mfile *find_live(struct crashvfs *cv, const char *path)
{
	for (struct mfile *m = cv->files; m; m = m->next)
		if (m->linked_now && strcmp(m->path, path) == 0)
			return m;
	return NULL;
}

static bool watched(const struct crashvfs *cv, const char *path)
{
	return path && strncmp(path, cv->dir, cv->dirlen) == 0 && path[cv->dirlen] == '/' &&
	       !strchr(path + cv->dirlen + 1, '/');
}

static bool read_whole(const char *path, struct bytes *b)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	bool ok = fstat(fd, &st) == 0 && bytes_resize(b, (size_t)st.st_size);
	size_t got = 0;
	while (ok && got < b->n) {
		ssize_t r = pread(fd, b->p + got, b->n - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			ok = false;
		else
			got += (size_t)r;
	}
	close(fd);
	return ok;
}

/* The record for a file SQLite is about to open: a new inode when the
 * name does not exist (its directory entry not durable yet), else the file
 * as found, taken as durable (it predates the shim). */
static struct mfile *model_open(struct crashvfs *cv, const char *path, enum crashvfs_file kind)
{
	struct mfile *m = find_live(cv, path);
	if (m)
		return m;
	m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->path = strdup(path);
	m->kind = kind;
	m->linked_now = true;
	if (!m->path) {
		mfile_free(m);
		return NULL;
	}
	if (access(path, F_OK) == 0) {
		if (!read_whole(path, &m->cur) || !bytes_copy(&m->dur, &m->cur)) {
			mfile_free(m);
			return NULL;
		}
		m->linked_dur = true;
	}
	m->next = cv->files;
	cv->files = m;
	return m;
}

static void fire(struct crashvfs *cv, enum crashvfs_op op, enum crashvfs_file file, bool after,
                 int64_t offset, int64_t len)
{
	if (!cv->hook || cv->discard)
		return;
	struct crashvfs_event ev = {op, file, after, offset, len};
	cv->hook(cv->hook_arg, &ev);
}

/* The device's directory now matches the page cache's. */
static void dir_synced(struct crashvfs *cv)
{
	for (struct mfile *m = cv->files; m; m = m->next) {
		m->linked_dur = m->linked_now;
		if (!m->linked_now)
			m->gone = true;
	}
}

/* ---- openDirectory: the unix VFS's directory fsyncs ------------------------ */

typedef int (*opendir_fn)(const char *, int *);

static int shim_opendir_locked(const char *path, int *fd)
{
	struct crashvfs *cv = the_shim;
	int rc = ((opendir_fn)cv->real_opendir)(path, fd);
	if (rc != SQLITE_OK || cv->discard || !watched(cv, path))
		return rc;
	/* the unix VFS fsyncs *fd next: from the model's view it is done */
	fire(cv, CRASHVFS_DIRSYNC, CRASHVFS_DIR, false, 0, 0);
	cv->counts.dirsyncs++;
	dir_synced(cv);
	fire(cv, CRASHVFS_DIRSYNC, CRASHVFS_DIR, true, 0, 0);
	return rc;
}

static int shim_opendir(const char *path, int *fd)
{
	struct crashvfs *cv = the_shim;
	lock(cv);
	int rc = shim_opendir_locked(path, fd);
	unlock(cv);
	return rc;
}

/* ---- io methods ------------------------------------------------------------ */

static int x_close(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;
	int rc = c->real->pMethods ? c->real->pMethods->xClose(c->real) : SQLITE_OK;
	sqlite3_free(c->real);
	c->real = NULL;
	return rc;
}

static int x_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xRead(c->real, buf, amt, off);
}

static bool recording(const struct cfile *c)
{
	return c->m && !c->cv->discard;
}

static int x_write_locked(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	struct cfile *c = (struct cfile *)f;
	if (!recording(c))
		return c->real->pMethods->xWrite(c->real, buf, amt, off);
	struct crashvfs *cv = c->cv;
	struct mfile *m = c->m;
	fire(cv, CRASHVFS_WRITE, m->kind, false, off, amt);
	int rc = c->real->pMethods->xWrite(c->real, buf, amt, off);
	if (rc != SQLITE_OK)
		return rc;
	cv->counts.writes++;
	if (m->kind == CRASHVFS_DB)
		cv->counts.db_writes++;
	if (m->kind == CRASHVFS_WAL && off == 0 && m->cur.n > (size_t)amt)
		cv->counts.wal_restarts++;
	if (!bytes_write(&m->cur, off, buf, (size_t)amt) ||
	    !ops_push(m, false, off, buf, (size_t)amt))
		return SQLITE_IOERR_NOMEM;
	fire(cv, CRASHVFS_WRITE, m->kind, true, off, amt);
	return SQLITE_OK;
}

static int x_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	struct crashvfs *cv = ((struct cfile *)f)->cv;
	lock(cv);
	int rc = x_write_locked(f, buf, amt, off);
	unlock(cv);
	return rc;
}

static int x_truncate_locked(sqlite3_file *f, sqlite3_int64 size)
{
	struct cfile *c = (struct cfile *)f;
	if (!recording(c))
		return c->real->pMethods->xTruncate(c->real, size);
	struct crashvfs *cv = c->cv;
	struct mfile *m = c->m;
	fire(cv, CRASHVFS_TRUNCATE, m->kind, false, 0, size);
	int rc = c->real->pMethods->xTruncate(c->real, size);
	if (rc != SQLITE_OK)
		return rc;
	cv->counts.truncates++;
	if (m->kind == CRASHVFS_WAL)
		cv->counts.wal_truncates++;
	if (!bytes_resize(&m->cur, (size_t)size))
		return SQLITE_IOERR_NOMEM;
	if (!ops_push(m, true, size, NULL, 0))
		return SQLITE_IOERR_NOMEM;
	fire(cv, CRASHVFS_TRUNCATE, m->kind, true, 0, size);
	return SQLITE_OK;
}

static int x_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct crashvfs *cv = ((struct cfile *)f)->cv;
	lock(cv);
	int rc = x_truncate_locked(f, size);
	unlock(cv);
	return rc;
}

static int x_sync_locked(sqlite3_file *f, int flags)
{
	struct cfile *c = (struct cfile *)f;
	if (!recording(c))
		return c->real->pMethods->xSync(c->real, flags);
	struct crashvfs *cv = c->cv;
	struct mfile *m = c->m;
	fire(cv, CRASHVFS_SYNC, m->kind, false, 0, 0);
	int rc = c->real->pMethods->xSync(c->real, flags);
	if (rc != SQLITE_OK)
		return rc;
	cv->counts.syncs++;
	if (!bytes_copy(&m->dur, &m->cur))
		return SQLITE_IOERR_NOMEM;
	ops_clear(m);
	fire(cv, CRASHVFS_SYNC, m->kind, true, 0, 0);
	return SQLITE_OK;
}

static int x_sync(sqlite3_file *f, int flags)
{
	struct crashvfs *cv = ((struct cfile *)f)->cv;
	lock(cv);
	int rc = x_sync_locked(f, flags);
	unlock(cv);
	return rc;
}

static int x_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xFileSize(c->real, size);
}

static int x_lock(sqlite3_file *f, int lock)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xLock(c->real, lock);
}

static int x_unlock(sqlite3_file *f, int lock)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xUnlock(c->real, lock);
}

static int x_check_reserved(sqlite3_file *f, int *out)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xCheckReservedLock(c->real, out);
}

/* A size hint may ftruncate the file longer (the unix VFS does when the
 * file is mmapped): recorded as a truncate that grows it. */
static int size_hint(struct cfile *c, void *arg)
{
	struct crashvfs *cv = c->cv;
	struct mfile *m = c->m;
	sqlite3_int64 size = 0;
	lock(cv);
	fire(cv, CRASHVFS_TRUNCATE, m->kind, false, 0, *(sqlite3_int64 *)arg);
	int rc = c->real->pMethods->xFileControl(c->real, SQLITE_FCNTL_SIZE_HINT, arg);
	if (c->real->pMethods->xFileSize(c->real, &size) == SQLITE_OK && (size_t)size != m->cur.n) {
		cv->counts.truncates++;
		if (!bytes_resize(&m->cur, (size_t)size) || !ops_push(m, true, size, NULL, 0))
			rc = SQLITE_IOERR_NOMEM;
	}
	fire(cv, CRASHVFS_TRUNCATE, m->kind, true, 0, size);
	unlock(cv);
	return rc;
}

static int x_file_control(sqlite3_file *f, int op, void *arg)
{
	struct cfile *c = (struct cfile *)f;
	if (op == SQLITE_FCNTL_CHUNK_SIZE && recording(c))
		return SQLITE_NOTFOUND; /* a chunk size would grow files behind the model */
	if (op == SQLITE_FCNTL_SIZE_HINT && recording(c))
		return size_hint(c, arg);
	return c->real->pMethods->xFileControl(c->real, op, arg);
}

static int x_sector_size(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xSectorSize(c->real);
}

static int x_device_chars(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xDeviceCharacteristics(c->real);
}

static int x_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xShmMap(c->real, pg, pgsz, extend, pp);
}

static int x_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xShmLock(c->real, offset, n, flags);
}

static void x_shm_barrier(sqlite3_file *f)
{
	struct cfile *c = (struct cfile *)f;
	c->real->pMethods->xShmBarrier(c->real);
}

static int x_shm_unmap(sqlite3_file *f, int del)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xShmUnmap(c->real, del);
}

static int x_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xFetch(c->real, off, amt, pp);
}

static int x_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	struct cfile *c = (struct cfile *)f;
	return c->real->pMethods->xUnfetch(c->real, off, p);
}

static const sqlite3_io_methods io_methods = {
    .iVersion = 3,
    .xClose = x_close,
    .xRead = x_read,
    .xWrite = x_write,
    .xTruncate = x_truncate,
    .xSync = x_sync,
    .xFileSize = x_file_size,
    .xLock = x_lock,
    .xUnlock = x_unlock,
    .xCheckReservedLock = x_check_reserved,
    .xFileControl = x_file_control,
    .xSectorSize = x_sector_size,
    .xDeviceCharacteristics = x_device_chars,
    .xShmMap = x_shm_map,
    .xShmLock = x_shm_lock,
    .xShmBarrier = x_shm_barrier,
    .xShmUnmap = x_shm_unmap,
    .xFetch = x_fetch,
    .xUnfetch = x_unfetch,
};

/* ---- vfs methods ------------------------------------------------------------ */

static bool kind_of(int flags, enum crashvfs_file *kind)
{
	if (flags & SQLITE_OPEN_MAIN_DB)
		*kind = CRASHVFS_DB;
	else if (flags & SQLITE_OPEN_WAL)
		*kind = CRASHVFS_WAL;
	else if (flags & (SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_SUPER_JOURNAL))
		*kind = CRASHVFS_JOURNAL;
	else
		return false;
	return true;
}

static int v_open_locked(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
                         int *out_flags)
{
	struct crashvfs *cv = vfs->pAppData;
	struct cfile *c = (struct cfile *)f;
	enum crashvfs_file kind;
	*c = (struct cfile){.cv = cv};
	c->real = sqlite3_malloc(cv->real->szOsFile);
	if (!c->real)
		return SQLITE_NOMEM;
	memset(c->real, 0, (size_t)cv->real->szOsFile);
	struct mfile *m = NULL;
	if (!cv->discard && watched(cv, name) && kind_of(flags, &kind)) {
		m = model_open(cv, name, kind);
		if (!m) {
			sqlite3_free(c->real);
			return SQLITE_NOMEM;
		}
	}
	int rc = cv->real->xOpen(cv->real, name, c->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		if (c->real->pMethods)
			c->real->pMethods->xClose(c->real);
		sqlite3_free(c->real);
		c->real = NULL;
		if (m && !m->linked_dur && m->cur.n == 0 && access(name, F_OK) != 0) {
			m->linked_now = false; /* it was never created */
			m->gone = true;
		}
		return rc;
	}
	c->m = m;
	c->base.pMethods = &io_methods;
	return SQLITE_OK;
}

static int v_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
                  int *out_flags)
{
	struct crashvfs *cv = vfs->pAppData;
	lock(cv);
	int rc = v_open_locked(vfs, name, f, flags, out_flags);
	unlock(cv);
	return rc;
}

static int v_delete_locked(sqlite3_vfs *vfs, const char *name, int dir_sync)
{
	struct crashvfs *cv = vfs->pAppData;
	struct mfile *m = cv->discard ? NULL : find_live(cv, name);
	if (m) {
		fire(cv, CRASHVFS_DELETE, m->kind, false, 0, 0);
		/* before the call: a dirSync inside it must see the name gone */
		m->linked_now = false;
		if (!m->linked_dur)
			m->gone = true;
		cv->counts.deletes++;
	}
	int rc = cv->real->xDelete(cv->real, name, dir_sync);
	if (m)
		fire(cv, CRASHVFS_DELETE, m->kind, true, 0, 0);
	return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int dir_sync)
{
	struct crashvfs *cv = vfs->pAppData;
	lock(cv);
	int rc = v_delete_locked(vfs, name, dir_sync);
	unlock(cv);
	return rc;
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xAccess(cv->real, name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xFullPathname(cv->real, name, n, out);
}

static void *v_dlopen(sqlite3_vfs *vfs, const char *name)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xDlOpen(cv->real, name);
}

static void v_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	struct crashvfs *cv = vfs->pAppData;
	cv->real->xDlError(cv->real, n, msg);
}

static void (*v_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xDlSym(cv->real, h, sym);
}

static void v_dlclose(sqlite3_vfs *vfs, void *h)
{
	struct crashvfs *cv = vfs->pAppData;
	cv->real->xDlClose(cv->real, h);
}

/* Seeded, so that a run (WAL salts included) repeats byte for byte. */
static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	struct crashvfs *cv = vfs->pAppData;
	for (int i = 0; i < n; i++)
		out[i] = (char)(next_rand(&cv->rand_state) & 0xff);
	return n;
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xSleep(cv->real, us);
}

static int v_current_time(sqlite3_vfs *vfs, double *t)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xCurrentTime(cv->real, t);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xGetLastError(cv->real, n, msg);
}

static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xCurrentTimeInt64(cv->real, t);
}

static int v_set_syscall(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr p)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xSetSystemCall(cv->real, name, p);
}

static sqlite3_syscall_ptr v_get_syscall(sqlite3_vfs *vfs, const char *name)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xGetSystemCall(cv->real, name);
}

static const char *v_next_syscall(sqlite3_vfs *vfs, const char *name)
{
	struct crashvfs *cv = vfs->pAppData;
	return cv->real->xNextSystemCall(cv->real, name);
}

/* ---- public ------------------------------------------------------------------- */

struct crashvfs *crashvfs_install(const char *dir, uint64_t rand_seed)
{
	sqlite3_vfs *real = sqlite3_vfs_find("unix");
	if (the_shim || !real || real->iVersion < 3 || strlen(dir) >= PATH_MAX)
		return NULL;
	struct crashvfs *cv = calloc(1, sizeof *cv);
	if (!cv)
		return NULL;
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	int mrc = pthread_mutex_init(&cv->mu, &attr);
	pthread_mutexattr_destroy(&attr);
	if (mrc != 0) {
		free(cv);
		return NULL;
	}
	cv->real = real;
	cv->rand_state = rand_seed;
	snprintf(cv->dir, sizeof cv->dir, "%s", dir);
	cv->dirlen = strlen(cv->dir);
	cv->vfs = (sqlite3_vfs){
	    .iVersion = 3,
	    .szOsFile = (int)sizeof(struct cfile),
	    .mxPathname = real->mxPathname,
	    .zName = "consuma-crash",
	    .pAppData = cv,
	    .xOpen = v_open,
	    .xDelete = v_delete,
	    .xAccess = v_access,
	    .xFullPathname = v_full_pathname,
	    .xDlOpen = v_dlopen,
	    .xDlError = v_dlerror,
	    .xDlSym = v_dlsym,
	    .xDlClose = v_dlclose,
	    .xRandomness = v_randomness,
	    .xSleep = v_sleep,
	    .xCurrentTime = v_current_time,
	    .xGetLastError = v_last_error,
	    .xCurrentTimeInt64 = v_current_time64,
	    .xSetSystemCall = v_set_syscall,
	    .xGetSystemCall = v_get_syscall,
	    .xNextSystemCall = v_next_syscall,
	};
	cv->real_opendir = real->xGetSystemCall(real, "openDirectory");
	if (!cv->real_opendir) {
		pthread_mutex_destroy(&cv->mu);
		free(cv);
		return NULL;
	}
	the_shim = cv;
	if (real->xSetSystemCall(real, "openDirectory", (sqlite3_syscall_ptr)shim_opendir) !=
	        SQLITE_OK ||
	    sqlite3_vfs_register(&cv->vfs, 1) != SQLITE_OK) {
		real->xSetSystemCall(real, "openDirectory", cv->real_opendir);
		the_shim = NULL;
		pthread_mutex_destroy(&cv->mu);
		free(cv);
		return NULL;
	}
	return cv;
}

void crashvfs_uninstall(struct crashvfs *cv)
{
	if (!cv)
		return;
	sqlite3_vfs_unregister(&cv->vfs);
	sqlite3_vfs_register(cv->real, 1);
	cv->real->xSetSystemCall(cv->real, "openDirectory", cv->real_opendir);
	the_shim = NULL;
	while (cv->files) {
		struct mfile *m = cv->files;
		cv->files = m->next;
		mfile_free(m);
	}
	pthread_mutex_destroy(&cv->mu);
	free(cv);
}

void crashvfs_set_hook(struct crashvfs *cv, crashvfs_hook hook, void *arg)
{
	cv->hook = hook;
	cv->hook_arg = arg;
}

void crashvfs_discard(struct crashvfs *cv)
{
	cv->discard = true;
}

const struct crashvfs_counts *crashvfs_counts(const struct crashvfs *cv)
{
	return &cv->counts;
}

int64_t crashvfs_wal_resets(struct crashvfs *cv)
{
	lock(cv);
	int64_t n = cv->counts.wal_restarts + cv->counts.wal_truncates;
	unlock(cv);
	return n;
}

/* ---- crash images ----------------------------------------------------------- */

/* One write of an unsynced op, cut into its sector pieces. */
static bool tear_write(struct bytes *img, const struct op *o, uint64_t *rng,
                       struct crashvfs_image *info)
{
	int64_t pos = o->off, end = o->off + (int64_t)o->len;
	while (pos < end) {
		int64_t sector_end = (pos / CRASHVFS_SECTOR + 1) * CRASHVFS_SECTOR;
		int64_t piece_end = sector_end < end ? sector_end : end;
		size_t n = (size_t)(piece_end - pos);
		unsigned r = (unsigned)(next_rand(rng) % 16);
		if (r < 6) {
			info->pieces_dropped++;
		} else if (r < 14) {
			if (!bytes_write(img, pos, o->data + (pos - o->off), n))
				return false;
			info->pieces_kept++;
		} else {
			unsigned char junk[CRASHVFS_SECTOR];
			for (size_t i = 0; i < n; i++)
				junk[i] = (unsigned char)next_rand(rng);
			if (!bytes_write(img, pos, junk, n))
				return false;
			info->pieces_garbage++;
		}
		pos = piece_end;
	}
	return true;
}

/* What the device holds of m: its durable image plus what `keep` lets
 * through of the writes since its last sync, applied in order. */
static bool device_image(const struct mfile *m, enum keep keep, uint64_t *rng,
                         struct crashvfs_image *info, struct bytes *img)
{
	if (!bytes_copy(img, &m->dur))
		return false;
	for (size_t i = 0; i < m->nops; i++) {
		const struct op *o = &m->ops[i];
		bool take = keep == KEEP_ALL || (keep == KEEP_TORN && (next_rand(rng) & 1));
		if (o->truncate) {
			if (keep == KEEP_ALL || take) {
				if (!bytes_resize(img, (size_t)o->off))
					return false;
			} else {
				info->truncates_dropped++;
			}
			continue;
		}
		if (keep == KEEP_ALL) {
			if (!bytes_write(img, o->off, o->data, o->len))
				return false;
			info->pieces_kept++;
		} else if (keep == KEEP_NONE) {
			info->pieces_dropped++;
		} else if (!tear_write(img, o, rng, info)) {
			return false;
		}
	}
	return true;
}

static bool write_file(const char *path, const unsigned char *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, p + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	return close(fd) == 0 && done == n;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* The model's page cache must be the real file: a write the shim did not
 * see would make every image a lie. */
static int check_model(const struct mfile *m, char *err, size_t errlen)
{
	struct bytes real = {0};
	int rc = 0;
	if (!read_whole(m->path, &real)) {
		set_err(err, errlen, "crashvfs: cannot read %s: %s", m->path, strerror(errno));
		rc = -1;
	} else if (real.n != m->cur.n || (real.n && memcmp(real.p, m->cur.p, real.n) != 0)) {
		set_err(err, errlen,
		        "crashvfs: the model of %s (%zu bytes) differs from the file (%zu)",
		        m->path, m->cur.n, real.n);
		rc = -1;
	}
	bytes_free(&real);
	return rc;
}

static bool device_image(const struct mfile *m, enum keep keep, uint64_t *rng,
                         struct crashvfs_image *info, struct bytes *img);

/* ... and the durable image plus every logged op must be the page cache. */
static int check_log(const struct mfile *m, char *err, size_t errlen)
{
	struct bytes all = {0};
	struct crashvfs_image scratch;
	uint64_t rng = 0;
	int rc = 0;
	if (!device_image(m, KEEP_ALL, &rng, &scratch, &all) || all.n != m->cur.n ||
	    (all.n && memcmp(all.p, m->cur.p, all.n) != 0)) {
		set_err(err, errlen, "crashvfs: the write log of %s does not replay to its content",
		        m->path);
		rc = -1;
	}
	bytes_free(&all);
	return rc;
}

/* Which record of m's name the device's directory shows after the cut:
 * NULL for none. */
static const struct mfile *entry_after_cut(const struct crashvfs *cv, const struct mfile *live,
                                           uint64_t *rng)
{
	const struct mfile *ghost = NULL;
	for (const struct mfile *g = cv->files; g; g = g->next)
		if (g != live && !g->gone && !g->linked_now && g->linked_dur &&
		    strcmp(g->path, live->path) == 0)
			ghost = g;
	if (live->linked_dur)
		return live;
	bool coin = next_rand(rng) & 1;
	if (ghost)
		return coin ? ghost : live;
	return coin ? live : NULL;
}

static int write_shm(const char *db_path, const char *outdir, uint64_t *rng,
                     struct crashvfs_image *info, char *err, size_t errlen)
{
	char live[PATH_MAX + 8], out[PATH_MAX + 8];
	struct bytes b = {0};
	snprintf(live, sizeof live, "%s-shm", db_path);
	info->shm = (int)(next_rand(rng) % 3);
	if (info->shm == 0 || !read_whole(live, &b)) {
		info->shm = 0;
		bytes_free(&b);
		return 0;
	}
	if (info->shm == 2)
		for (size_t s = 0; s < b.n; s += CRASHVFS_SECTOR)
			if (next_rand(rng) % 4 == 0)
				for (size_t i = s; i < b.n && i < s + CRASHVFS_SECTOR; i++)
					b.p[i] = (unsigned char)next_rand(rng);
	snprintf(out, sizeof out, "%s/%s-shm", outdir, base_name(db_path));
	int rc = write_file(out, b.p, b.n) ? 0 : -1;
	if (rc)
		set_err(err, errlen, "crashvfs: cannot write %s", out);
	bytes_free(&b);
	return rc;
}

static int crash_image_locked(struct crashvfs *cv, uint64_t seed, const char *outdir,
                              struct crashvfs_image *info, char *err, size_t errlen)
{
	uint64_t rng = seed;
	struct bytes img = {0};
	int rc = 0;
	*info = (struct crashvfs_image){0};
	enum keep keep = (enum keep)(next_rand(&rng) % 4);
	if (keep > KEEP_TORN)
		keep = KEEP_TORN; /* half of the cuts tear */
	for (const struct mfile *m = cv->files; m && rc == 0; m = m->next) {
		if (!m->linked_now)
			continue; /* a ghost is reached through its live name, or is gone */
		rc = check_model(m, err, errlen);
		if (rc == 0)
			rc = check_log(m, err, errlen);
		if (rc)
			break;
		const struct mfile *e = entry_after_cut(cv, m, &rng);
		if (m->kind == CRASHVFS_DB)
			rc = write_shm(m->path, outdir, &rng, info, err, errlen);
		if (!e || rc)
			continue;
		char out[PATH_MAX + 8];
		snprintf(out, sizeof out, "%s/%s", outdir, base_name(e->path));
		if (!device_image(e, keep, &rng, info, &img) || !write_file(out, img.p, img.n)) {
			set_err(err, errlen, "crashvfs: cannot write %s", out);
			rc = -1;
		}
		info->files++;
	}
	/* A deleted name without a live successor: the unlink may not be durable. */
	for (const struct mfile *g = cv->files; g && rc == 0; g = g->next) {
		if (g->gone || g->linked_now || !g->linked_dur || find_live(cv, g->path))
			continue;
		if (!(next_rand(&rng) & 1))
			continue;
		char out[PATH_MAX + 8];
		snprintf(out, sizeof out, "%s/%s", outdir, base_name(g->path));
		if (!device_image(g, keep, &rng, info, &img) || !write_file(out, img.p, img.n)) {
			set_err(err, errlen, "crashvfs: cannot write %s", out);
			rc = -1;
		}
		info->files++;
	}
	bytes_free(&img);
	return rc;
}

int crashvfs_crash_image(struct crashvfs *cv, uint64_t seed, const char *outdir,
                         struct crashvfs_image *info, char *err, size_t errlen)
{
	lock(cv);
	int rc = crash_image_locked(cv, seed, outdir, info, err, errlen);
	unlock(cv);
	return rc;
}
