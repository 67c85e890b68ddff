/*
 * Unit tests of lib/ratelimit: the sliding window (exact counts and exact
 * Retry-After against an injected clock), exactness across four forked
 * processes that also race to create the zone, eviction of the stalest key,
 * re-creation of a zone that does not match, repair after a process is
 * SIGKILLed in the middle of an update (the hook of ratelimit_test.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ratelimit.h"
#include "ratelimit_test.h"

static char dir[256];

static int make_dir(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/consuma-rl.XXXXXX",
	         getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int remove_dir(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void zone_path(char *out, size_t outlen, const char *name)
{
	snprintf(out, outlen, "%s/%s", dir, name);
}

static struct ratelimit *open_zone(const char *name, int64_t limit, int64_t window_ms,
                                   int64_t entries)
{
	struct ratelimit_params p = {limit, window_ms, entries};
	enum ratelimit_err err;
	char path[512], why[256];
	struct ratelimit *rl;

	zone_path(path, sizeof(path), name);
	rl = ratelimit_open(path, &p, &err, why, sizeof(why));
	if (rl == NULL)
		fail_msg("open %s: %s (%s)", path, ratelimit_strerror(err), why);
	return rl;
}

/* In a forked child: cmocka's failure path belongs to the parent. */
static struct ratelimit *open_zone_child(const char *name, int64_t limit, int64_t window_ms,
                                         int64_t entries)
{
	struct ratelimit_params p = {limit, window_ms, entries};
	enum ratelimit_err err;
	char path[512], why[256];
	struct ratelimit *rl;

	zone_path(path, sizeof(path), name);
	rl = ratelimit_open(path, &p, &err, why, sizeof(why));
	if (rl == NULL) {
		fprintf(stderr, "child: open %s: %s\n", path, why);
		_exit(2);
	}
	return rl;
}

static void assert_consistent(struct ratelimit *rl)
{
	char why[256] = "";
	enum ratelimit_err rc = ratelimit_verify(rl, why, sizeof(why));

	if (rc != RATELIMIT_OK)
		fail_msg("zone inconsistent: %s", why);
}

/* ---- parameters ---- */

static void test_params(void **state)
{
	static const struct {
		struct ratelimit_params p;
		enum ratelimit_err want;
	} cases[] = {
	    {{1, 1, 1}, RATELIMIT_OK},
	    {{100, 60000, 8192}, RATELIMIT_OK},
	    {{0, 1000, 64}, RATELIMIT_INVALID},
	    {{100001, 1000, 64}, RATELIMIT_INVALID},
	    {{10, 0, 64}, RATELIMIT_INVALID},
	    {{10, 86400001, 64}, RATELIMIT_INVALID},
	    {{10, 1000, 0}, RATELIMIT_INVALID},
	    {{10, 1000, 1048577}, RATELIMIT_INVALID},
	    {{100000, 1000, 1048576}, RATELIMIT_TOOBIG},
	    {{1000, 1000, 40000}, RATELIMIT_TOOBIG},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum ratelimit_err err = RATELIMIT_OK;
		char path[512], why[256] = "";
		struct ratelimit *rl;

		snprintf(path, sizeof(path), "%s/params-%zu", dir, i);
		rl = ratelimit_open(path, &cases[i].p, &err, why, sizeof(why));
		if (cases[i].want == RATELIMIT_OK) {
			assert_non_null(rl);
			assert_int_equal(ratelimit_zone_bytes(&cases[i].p),
			                 4096 + (cases[i].p.entries * 8 + 63) / 64 * 64 +
			                     cases[i].p.entries * (80 + 8 * cases[i].p.limit));
		} else {
			assert_null(rl);
			assert_int_equal(err, cases[i].want);
			assert_true(why[0] != '\0');
		}
		ratelimit_close(rl);
	}
	assert_int_equal(ratelimit_zone_bytes(NULL), -1);
}

static void test_retry_after_s(void **state)
{
	static const int64_t cases[][2] = {
	    {-5, 1}, {0, 1}, {1, 1}, {999, 1}, {1000, 1}, {1001, 2}, {1999, 2}, {60000, 60},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(ratelimit_retry_after_s(cases[i][0]), cases[i][1]);
}

/* ---- the window ---- */

struct step {
	const char *key;
	int64_t now;
	bool allowed;
	int64_t retry_ms;
};

static void run_steps(struct ratelimit *rl, const struct step *steps, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		bool allowed = !steps[i].allowed;
		int64_t retry = -1;

		assert_int_equal(ratelimit_hit(rl, steps[i].key, steps[i].now, &allowed, &retry),
		                 RATELIMIT_OK);
		if (allowed != steps[i].allowed || retry != steps[i].retry_ms)
			fail_msg("step %zu (%s at %lld): allowed=%d retry=%lld, want %d %lld", i,
			         steps[i].key, (long long)steps[i].now, allowed, (long long)retry,
			         steps[i].allowed, (long long)steps[i].retry_ms);
	}
}

static void test_window_slides(void **state)
{
	/* 3 per 1000 ms. */
	static const struct step steps[] = {
	    {"a", 1000, true, 0},     {"a", 1010, true, 0}, {"a", 1020, true, 0},
	    {"a", 1030, false, 970}, /* the 4th: wait until 1000 leaves the window */
	    {"b", 1030, true, 0},    /* other keys are independent */
	    {"a", 1999, false, 1},    {"a", 2000, true, 0}, /* 1000 left exactly now: t <= now - window is gone */
	    {"a", 2001, false, 9},    {"a", 2010, true, 0}, {"a", 2020, true, 0},
	    {"a", 2020, false, 980},  {"a", 5000, true, 0}, /* everything expired */
	    {"a", 5000, true, 0},     {"a", 5000, true, 0}, {"a", 5000, false, 1000},
	    {"a", 4000, false, 1000}, /* a clock read before the last hit counts as the last hit */
	    {"b", 1500, true, 0},     {"b", 1600, true, 0}, {"b", 1700, false, 330},
	};
	struct ratelimit *rl = open_zone("slides", 3, 1000, 64);

	(void)state;
	run_steps(rl, steps, sizeof(steps) / sizeof(steps[0]));
	assert_consistent(rl);
	ratelimit_close(rl);
}

static void test_limit_one(void **state)
{
	static const struct step steps[] = {
	    {"1.2.3.4", 0, true, 0},          {"1.2.3.4", 0, false, 60000},
	    {"1.2.3.4", 59999, false, 1},     {"1.2.3.4", 60000, true, 0},
	    {"1.2.3.4", 60001, false, 59999},
	};
	struct ratelimit *rl = open_zone("one", 1, 60000, 64);

	(void)state;
	run_steps(rl, steps, sizeof(steps) / sizeof(steps[0]));
	ratelimit_close(rl);
}

static void test_bad_keys(void **state)
{
	char long_key[RATELIMIT_KEY_MAX + 1];
	const char *keys[] = {"", long_key, NULL};
	struct ratelimit *rl = open_zone("keys", 2, 1000, 64);
	size_t i;

	(void)state;
	memset(long_key, 'k', RATELIMIT_KEY_MAX);
	long_key[RATELIMIT_KEY_MAX] = '\0';
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		bool allowed = false;
		int64_t retry = -1;

		assert_int_equal(ratelimit_hit(rl, keys[i], 1, &allowed, &retry),
		                 RATELIMIT_INVALID);
		assert_true(allowed);
		assert_int_equal(retry, 0);
	}
	long_key[RATELIMIT_KEY_MAX - 1] = '\0'; /* 63 bytes: the longest allowed */
	{
		bool allowed = false;
		int64_t retry = -1;

		assert_int_equal(ratelimit_hit(rl, long_key, 1, &allowed, &retry), RATELIMIT_OK);
		assert_true(allowed);
	}
	ratelimit_close(rl);
}

/* ---- four processes ---- */

#define PROCS 4

/* Each child opens the zone itself (all four race to create it), waits on
 * the barrier, hits key `tries` times and writes how many passed. */
static int64_t hammer(const char *name, int64_t limit, int64_t tries, bool fixed_clock)
{
	int go[2], results[2];
	pid_t pids[PROCS];
	int64_t total = 0;
	int i;

	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(results), 0);
	for (i = 0; i < PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct ratelimit *rl;
			int64_t passed = 0, t;
			char c;

			close(go[1]);
			close(results[0]);
			if (read(go[0], &c, 1) != 0) /* released when the parent closes */
				_exit(3);
			rl = open_zone_child(name, limit, 60000, 1024);
			for (t = 0; t < tries; t++) {
				bool allowed;
				int64_t retry;
				int64_t now = fixed_clock ? 5000 : ratelimit_now_ms();

				if (ratelimit_hit(rl, "10.0.0.1", now, &allowed, &retry) !=
				    RATELIMIT_OK)
					_exit(4);
				if (allowed)
					passed++;
				else if (retry < 1 || retry > 60000)
					_exit(5);
			}
			if (write(results[1], &passed, sizeof(passed)) != sizeof(passed))
				_exit(6);
			ratelimit_close(rl);
			_exit(0);
		}
	}
	close(go[0]);
	close(results[1]);
	close(go[1]); /* all children start together */
	for (i = 0; i < PROCS; i++) {
		int64_t passed;
		int status;

		assert_int_equal(read(results[0], &passed, sizeof(passed)), sizeof(passed));
		total += passed;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	close(results[0]);
	return total;
}

static void test_exact_across_processes(void **state)
{
	static const struct {
		const char *name;
		int64_t limit, tries;
		bool fixed_clock;
	} cases[] = {
	    {"procs-a", 1, 200, true},
	    {"procs-b", 500, 400, true},
	    {"procs-c", 1000, 2000, false}, /* the real shared clock; 60 s window */
	    {"procs-d", 5000, 1000, false}, /* fewer hits than the limit: all pass */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t want = cases[i].limit < PROCS * cases[i].tries ? cases[i].limit
		                                                       : PROCS * cases[i].tries;
		struct ratelimit *rl;
		struct ratelimit_stats st;

		assert_int_equal(
		    hammer(cases[i].name, cases[i].limit, cases[i].tries, cases[i].fixed_clock),
		    want);
		/* One zone, one slot: all four found the same file. */
		rl = open_zone(cases[i].name, cases[i].limit, 60000, 1024);
		ratelimit_stats(rl, &st);
		assert_int_equal(st.used, 1);
		assert_consistent(rl);
		ratelimit_close(rl);
	}
}

/* ---- eviction ---- */

static void hit_expect(struct ratelimit *rl, const char *key, int64_t now, bool want)
{
	bool allowed;
	int64_t retry;

	assert_int_equal(ratelimit_hit(rl, key, now, &allowed, &retry), RATELIMIT_OK);
	if (allowed != want)
		fail_msg("%s at %lld: allowed=%d, want %d", key, (long long)now, allowed, want);
}

static void test_eviction_stalest(void **state)
{
	/* 16 entries = one probe window: eviction is exactly least recently seen. */
	struct ratelimit *rl = open_zone("evict16", 1, 100000, 16);
	struct ratelimit_stats st;
	char key[32];
	int i;

	(void)state;
	for (i = 0; i < 16; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		hit_expect(rl, key, 1000 + i, true);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.used, 16);
	assert_int_equal(st.evictions, 0);
	hit_expect(rl, "k0", 1100, false); /* k0 is now the freshest; k1 the stalest */
	hit_expect(rl, "new", 1200, true); /* evicts k1 */
	ratelimit_stats(rl, &st);
	assert_int_equal(st.used, 16);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.live_evictions, 1);
	hit_expect(rl, "k0", 1300, false);  /* kept */
	hit_expect(rl, "k15", 1300, false); /* kept */
	hit_expect(rl, "new", 1300, false); /* kept */
	hit_expect(rl, "k1", 1400, true);   /* forgotten: counts afresh (evicts k2) */
	hit_expect(rl, "k3", 1500, false);  /* kept */
	assert_consistent(rl);
	ratelimit_close(rl);
}

static void test_eviction_full(void **state)
{
	/* 64 entries, 1000 keys: the zone stays within its slots, the most
	 * recent keys keep their state, and the structure stays valid. */
	struct ratelimit *rl = open_zone("evict64", 2, 1000000, 64);
	struct ratelimit_stats st;
	char key[32];
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "192.0.2.%d/%d", i % 256, i);
		hit_expect(rl, key, 10 + i, true);
		hit_expect(rl, key, 10 + i, true);
		hit_expect(rl, key, 10 + i, false);
	}
	ratelimit_stats(rl, &st);
	assert_true(st.used <= 64);
	assert_int_equal(st.evictions, 1000 - st.used);
	hit_expect(rl, "192.0.2.231/999", 2000, false); /* the newest is never the stalest */
	assert_consistent(rl);
	ratelimit_close(rl);
}

/* ---- the zone file ---- */

static void test_zone_recreated(void **state)
{
	static const char *garbage[] = {"", "not a zone", NULL};
	struct ratelimit_params p = {5, 1000, 64};
	char path[512], why[256];
	enum ratelimit_err err;
	struct ratelimit *rl;
	struct stat st;
	size_t i;

	(void)state;
	zone_path(path, sizeof(path), "recreate");
	rl = open_zone("recreate", 5, 1000, 64);
	hit_expect(rl, "x", 1, true);
	ratelimit_close(rl);
	/* Same parameters: the same zone, state kept. */
	rl = open_zone("recreate", 5, 1000, 64);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, ratelimit_zone_bytes(&p));
	{
		struct ratelimit_stats s;

		ratelimit_stats(rl, &s);
		assert_int_equal(s.used, 1);
	}
	ratelimit_close(rl);
	/* Other parameters: replaced. */
	rl = open_zone("recreate", 7, 1000, 128);
	p.limit = 7;
	p.entries = 128;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, ratelimit_zone_bytes(&p));
	ratelimit_close(rl);
	/* A file of the right size with a wrong magic, and junk files. */
	for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		int fd = open(path, O_WRONLY | O_TRUNC);

		assert_true(fd >= 0);
		if (garbage[i] != NULL)
			assert_int_equal(write(fd, garbage[i], strlen(garbage[i])),
			                 (ssize_t)strlen(garbage[i]));
		else
			assert_int_equal(ftruncate(fd, ratelimit_zone_bytes(&p)), 0);
		close(fd);
		rl = ratelimit_open(path, &p, &err, why, sizeof(why));
		assert_non_null(rl);
		hit_expect(rl, "x", 1, true);
		assert_consistent(rl);
		ratelimit_close(rl);
	}
	/* A directory where the zone should be: an error, not a crash. */
	zone_path(path, sizeof(path), "adir");
	assert_int_equal(mkdir(path, 0700), 0);
	assert_null(ratelimit_open(path, &p, &err, why, sizeof(why)));
	assert_int_equal(err, RATELIMIT_IO);
	rmdir(path);
}

/* ---- crashes ---- */

static void test_die_at_each_stage(void **state)
{
	static const struct {
		int stage;
		const char *key;
		int passes_after; /* of 3, with 2 admitted before the crash */
	} cases[] = {
	    {0, "x", 1},   /* after the journal: nothing counted */
	    {1, "x", 1},   /* ring written, state not published: not counted */
	    {2, "new", 3}, /* a half-installed key is dropped */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[32];
		struct ratelimit *rl;
		struct ratelimit_stats st;
		int status, p;
		pid_t pid;

		snprintf(name, sizeof(name), "stage-%d", cases[i].stage);
		rl = open_zone(name, 3, 100000, 64);
		hit_expect(rl, "x", 10, true);
		hit_expect(rl, "x", 11, true);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct ratelimit *child = open_zone_child(name, 3, 100000, 64);

			ratelimit_test_die_in_update(child, cases[i].key, 12, cases[i].stage);
			_exit(7); /* not reached */
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGKILL);
		for (p = 0; p < cases[i].passes_after; p++)
			hit_expect(rl, cases[i].key, 13, true);
		hit_expect(rl, cases[i].key, 13, false);
		ratelimit_stats(rl, &st);
		assert_int_equal(st.recoveries, 1);
		assert_consistent(rl);
		ratelimit_close(rl);
	}
}

static void test_sigkill_storm(void **state)
{
	struct ratelimit *rl = open_zone("storm", 50, 1000, 64);
	struct ratelimit_stats st;
	struct timespec pause;
	unsigned seed = (unsigned)getpid();
	int round;

	(void)state;
	for (round = 0; round < 50; round++) {
		int ready[2], status;
		pid_t pid;
		char c;

		assert_int_equal(pipe(ready), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct ratelimit *child = open_zone_child("storm", 50, 1000, 64);
			int64_t now = 1000000 + round * 100000;
			char key[32];
			unsigned n;

			close(ready[0]);
			if (write(ready[1], "r", 1) != 1)
				_exit(3);
			/* Many keys so installs and evictions happen too. */
			for (n = 0;; n++) {
				bool allowed;
				int64_t retry;

				snprintf(key, sizeof(key), "key-%u", n % 97);
				ratelimit_hit(child, key, now + n / 8, &allowed, &retry);
			}
		}
		close(ready[1]);
		assert_int_equal(read(ready[0], &c, 1), 1);
		close(ready[0]);
		pause.tv_sec = 0;
		pause.tv_nsec = (long)(rand_r(&seed) % 3000) * 1000 + 200000;
		nanosleep(&pause, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		/* Usable and consistent, and still exact for a fresh key. */
		assert_consistent(rl);
		{
			char key[32];
			int k;

			snprintf(key, sizeof(key), "fresh-%d", round);
			for (k = 0; k < 50; k++)
				hit_expect(rl, key, 5000000 + round * 100000, true);
			hit_expect(rl, key, 5000000 + round * 100000, false);
		}
	}
	ratelimit_stats(rl, &st);
	print_message("# %lld of 50 kills landed inside the lock\n", (long long)st.recoveries);
	assert_consistent(rl);
	ratelimit_close(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_params),           cmocka_unit_test(test_retry_after_s),
	    cmocka_unit_test(test_window_slides),    cmocka_unit_test(test_limit_one),
	    cmocka_unit_test(test_bad_keys),         cmocka_unit_test(test_exact_across_processes),
	    cmocka_unit_test(test_eviction_stalest), cmocka_unit_test(test_eviction_full),
	    cmocka_unit_test(test_zone_recreated),   cmocka_unit_test(test_die_at_each_stage),
	    cmocka_unit_test(test_sigkill_storm),
	};

	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
