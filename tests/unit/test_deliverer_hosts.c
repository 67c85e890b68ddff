/*
 * test_deliverer_hosts: the per-host concurrency bound and circuit breaker
 * (deliverer/hosts.h), per origin.
 *
 * A scripted table drives one host through holds, starts and outcomes with
 * a fake monotonic clock and checks what the bound and the breaker say after
 * each step (tried jobs' share of the slots included); separate tests
 * cover host and origin independence, the claim exclusion
 * list, the next-change time, the sweep that bounds the table, and the
 * disabled breaker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "alloc.h"
#include "buf.h"
#include "hosts.h"

enum op {
	END = 0,
	HOLD,     /* a job for the host entered the delivery thread */
	LEAVE,    /* it left */
	START,    /* hosts_may_start must say arg (1/0); when 1, hosts_started */
	OK,       /* a delivery ended well; arg: whether it opened the breaker (never) */
	FAIL,     /* a retryable failure; arg: 1 when it must open the breaker */
	NEUTRAL,  /* nothing learnt */
	UNSTART,  /* a delivery that never left */
	AT,       /* the clock moves to arg */
	IS_OPEN,  /* hosts_open must say arg (1/0) */
	UNTIL,    /* hosts_open's *until must be arg */
	MAYSTART, /* hosts_may_start must say arg, nothing started */
	/* the same for a suspect job (its share of the slots is capped) */
	TSTART,
	TMAYSTART,
	TOK,
	TFAIL,
	TUNSTART,
};

struct step {
	enum op op;
	int64_t arg;
};

struct script {
	const char *name;
	int64_t max_per_host;
	int64_t breaker_failures;
	int64_t cooldown_ms;
	struct step steps[40];
};

static const struct script scripts[] = {
    {"cap reached and freed",
     2,
     3,
     1000,
     {{HOLD, 0},
      {HOLD, 0},
      {HOLD, 0},
      {START, 1},
      {START, 1},
      {START, 0},
      {MAYSTART, 0},
      {OK, 0},
      {MAYSTART, 1},
      {START, 1},
      {START, 0},
      {UNSTART, 0},
      {START, 1},
      {NEUTRAL, 0},
      {START, 1},
      {START, 0},
      {END, 0}}},
    {"cap 0 means 1",
     0,
     3,
     1000,
     {{HOLD, 0}, {START, 1}, {START, 0}, {OK, 0}, {START, 1}, {END, 0}}},
    {"opens after N consecutive failures, cool-down, trial, success closes",
     4,
     3,
     1000,
     {{HOLD, 0},
      {AT, 100},
      {START, 1},
      {FAIL, 0},
      {START, 1},
      {FAIL, 0},
      {IS_OPEN, 0},
      {START, 1},
      {FAIL, 1},
      {IS_OPEN, 1},
      {UNTIL, 1100},
      {MAYSTART, 0},
      {AT, 1099},
      {IS_OPEN, 1},
      {MAYSTART, 0},
      {AT, 1100},
      {IS_OPEN, 0},
      {MAYSTART, 1},
      /* half-open: one trial at a time, whatever the cap */
      {START, 1},
      {MAYSTART, 0},
      {OK, 0},
      {IS_OPEN, 0},
      /* closed again: the cap applies, failures count from zero */
      {START, 1},
      {START, 1},
      {START, 1},
      {START, 1},
      {START, 0},
      {FAIL, 0},
      {FAIL, 0},
      {OK, 0},
      {FAIL, 0},
      {FAIL, 0},
      {IS_OPEN, 0},
      {END, 0}}},
    {"a failed trial opens again for a full cool-down",
     4,
     2,
     500,
     {{HOLD, 0},  {START, 1}, {START, 1},   {FAIL, 0},     {FAIL, 1}, {UNTIL, 500},  {AT, 500},
      {START, 1}, {FAIL, 1},  {IS_OPEN, 1}, {UNTIL, 1000}, {AT, 999}, {MAYSTART, 0}, {AT, 1000},
      {START, 1}, {OK, 0},    {IS_OPEN, 0}, {START, 1},    {FAIL, 0}, {IS_OPEN, 0},  {END, 0}}},
    {"neutral outcomes neither count nor reset",
     4,
     3,
     1000,
     {{HOLD, 0},
      {START, 1},
      {FAIL, 0},
      {START, 1},
      {NEUTRAL, 0},
      {START, 1},
      {FAIL, 0},
      {START, 1},
      {NEUTRAL, 0},
      {IS_OPEN, 0},
      {START, 1},
      {FAIL, 1},
      {IS_OPEN, 1},
      {END, 0}}},
    {"a success resets the count",
     4,
     3,
     1000,
     {{HOLD, 0},
      {START, 1},
      {FAIL, 0},
      {START, 1},
      {FAIL, 0},
      {START, 1},
      {OK, 0},
      {START, 1},
      {FAIL, 0},
      {START, 1},
      {FAIL, 0},
      {IS_OPEN, 0},
      {START, 1},
      {FAIL, 1},
      {END, 0}}},
    {"breaker_failures 1",
     4,
     1,
     10,
     {{HOLD, 0}, {START, 1}, {FAIL, 1}, {IS_OPEN, 1}, {AT, 10}, {IS_OPEN, 0}, {END, 0}}},
    {"breaker_failures 0 disables the breaker",
     2,
     0,
     1000,
     {{HOLD, 0},
      {START, 1},
      {FAIL, 0},
      {START, 1},
      {FAIL, 0},
      {START, 1},
      {FAIL, 0},
      {START, 1},
      {FAIL, 0},
      {IS_OPEN, 0},
      {MAYSTART, 1},
      {END, 0}}},
    {"cool-down 0 disables the breaker",
     2,
     1,
     0,
     {{HOLD, 0}, {START, 1}, {FAIL, 0}, {START, 1}, {FAIL, 0}, {IS_OPEN, 0}, {END, 0}}},
    {"a failure while open neither extends nor closes it",
     4,
     2,
     1000,
     {{HOLD, 0},
      {START, 1},
      {START, 1},
      {START, 1},
      {FAIL, 0},
      {FAIL, 1},
      {AT, 300},
      {FAIL, 0},
      {IS_OPEN, 1},
      {UNTIL, 1000},
      {END, 0}}},
    {"a neutral trial leaves the host half-open for another trial",
     4,
     1,
     100,
     {{HOLD, 0},
      {START, 1},
      {FAIL, 1},
      {AT, 100},
      {START, 1},
      {MAYSTART, 0},
      {NEUTRAL, 0},
      {IS_OPEN, 0},
      {START, 1},
      {MAYSTART, 0},
      {FAIL, 1},
      {UNTIL, 200},
      {END, 0}}},
    {"a success from before the breaker opened closes it",
     4,
     1,
     1000,
     {{HOLD, 0},
      {START, 1},
      {START, 1},
      {FAIL, 1},
      {AT, 10},
      {IS_OPEN, 1},
      {OK, 0},
      {IS_OPEN, 0},
      {START, 1},
      {START, 1},
      {END, 0}}},
    {"a host failing one job at a time keeps its count across leaves",
     4,
     3,
     1000,
     {{HOLD, 0},
      {START, 1},
      {FAIL, 0},
      {LEAVE, 0},
      {HOLD, 0},
      {START, 1},
      {FAIL, 0},
      {LEAVE, 0},
      {HOLD, 0},
      {START, 1},
      {FAIL, 1},
      {LEAVE, 0},
      {IS_OPEN, 1},
      {END, 0}}},
    /* issue 11, item 1: failing URLs of an origin never hold all its slots */
    {"tried jobs take at most half the slots, rounded up",
     8,
     100,
     1000,
     {{HOLD, 0},
      {TSTART, 1},
      {TSTART, 1},
      {TSTART, 1},
      {TSTART, 1},
      {TSTART, 0},
      {TMAYSTART, 0},
      /* the other half stays for jobs never tried */
      {START, 1},
      {START, 1},
      {START, 1},
      {START, 1},
      {START, 0},
      {MAYSTART, 0},
      /* a tried job that ends frees its slot for another tried job */
      {TFAIL, 0},
      {TSTART, 1},
      {TSTART, 0},
      {TUNSTART, 0},
      {TSTART, 1},
      {TSTART, 0},
      /* a never-tried job that ends lets a never-tried one in, not a tried one */
      {OK, 0},
      {TMAYSTART, 0},
      {START, 1},
      {END, 0}}},
    {"never-tried jobs may take every slot",
     4,
     100,
     1000,
     {{HOLD, 0},
      {START, 1},
      {START, 1},
      {START, 1},
      {START, 1},
      {START, 0},
      {TSTART, 0},
      {OK, 0},
      {TSTART, 1},
      {TSTART, 0},
      {END, 0}}},
    {"odd and one: the share rounds up, so max_per_host 1 lets a tried job in",
     1,
     100,
     1000,
     {{HOLD, 0},
      {TSTART, 1},
      {START, 0},
      {TOK, 0},
      {START, 1},
      {TSTART, 0},
      {OK, 0},
      {TSTART, 1},
      {END, 0}}},
    {"3 slots: 2 for tried jobs",
     3,
     100,
     1000,
     {{HOLD, 0}, {TSTART, 1}, {TSTART, 1}, {TSTART, 0}, {START, 1}, {START, 0}, {END, 0}}},
    {"half-open: one trial; a tried one only after the grace (a quarter cool-down)",
     4,
     1,
     100,
     {{HOLD, 0},
      {TSTART, 1},
      {TFAIL, 1},
      {AT, 100},
      /* the grace: the trial is kept for a job never tried */
      {TMAYSTART, 0},
      {AT, 124},
      {TMAYSTART, 0},
      {MAYSTART, 1},
      {START, 1},
      {TMAYSTART, 0},
      {MAYSTART, 0},
      {FAIL, 1},
      {UNTIL, 224},
      {AT, 224},
      {TMAYSTART, 0},
      {AT, 248},
      {TMAYSTART, 0},
      /* no never-tried job came: a tried one is the trial */
      {AT, 249},
      {TSTART, 1},
      {START, 0},
      {TOK, 0},
      {IS_OPEN, 0},
      /* closed: the share applies again, not the grace */
      {TSTART, 1},
      {TSTART, 1},
      {TSTART, 0},
      {START, 1},
      {START, 1},
      {START, 0},
      {END, 0}}},
    {"a tried job's failures count toward the breaker like any",
     4,
     3,
     1000,
     {{HOLD, 0},
      {TSTART, 1},
      {TFAIL, 0},
      {START, 1},
      {FAIL, 0},
      {TSTART, 1},
      {TFAIL, 1},
      {IS_OPEN, 1},
      {TMAYSTART, 0},
      {MAYSTART, 0},
      {END, 0}}},
};

static void run_script(const struct script *s)
{
	struct hosts *hs = hosts_new(s->max_per_host, s->breaker_failures, s->cooldown_ms);
	struct host *h;
	int64_t now = 0;

	assert_non_null(hs);
	h = hosts_get(hs, "receiver.example", "receiver.example");
	assert_non_null(h);
	assert_string_equal(hosts_name(h), "receiver.example");
	for (size_t i = 0; s->steps[i].op != END; i++) {
		const struct step *st = &s->steps[i];
		int64_t until = -7;
		bool got;

		print_message("%s: step %zu op %d arg %lld\n", s->name, i, (int)st->op,
		              (long long)st->arg);
		switch (st->op) {
		case END:
			break;
		case HOLD:
			/* a host may be forgotten while nothing is in hand: look it up again */
			h = hosts_get(hs, "receiver.example", "receiver.example");
			assert_non_null(h);
			hosts_hold(hs, h);
			break;
		case LEAVE:
			hosts_leave(hs, h);
			h = NULL;
			break;
		case START:
			got = hosts_may_start(hs, h, false, now);
			assert_int_equal(got, st->arg != 0);
			if (got)
				hosts_started(hs, h, false);
			break;
		case MAYSTART:
			assert_int_equal(hosts_may_start(hs, h, false, now), st->arg != 0);
			break;
		case TSTART:
			got = hosts_may_start(hs, h, true, now);
			assert_int_equal(got, st->arg != 0);
			if (got)
				hosts_started(hs, h, true);
			break;
		case TMAYSTART:
			assert_int_equal(hosts_may_start(hs, h, true, now), st->arg != 0);
			break;
		case TOK:
			assert_false(hosts_finished(hs, h, true, 0, false, false, now));
			break;
		case TFAIL:
			assert_int_equal(hosts_finished(hs, h, true, 0, true, false, now),
			                 st->arg != 0);
			break;
		case TUNSTART:
			hosts_unstart(hs, h, true);
			break;
		case OK:
			assert_false(hosts_finished(hs, h, false, 0, false, false, now));
			break;
		case FAIL:
			assert_int_equal(hosts_finished(hs, h, false, 0, true, false, now),
			                 st->arg != 0);
			break;
		case NEUTRAL:
			assert_false(hosts_finished(hs, h, false, 0, true, true, now));
			break;
		case UNSTART:
			hosts_unstart(hs, h, false);
			break;
		case AT:
			now = st->arg;
			break;
		case IS_OPEN:
			if (h == NULL)
				h = hosts_get(hs, "receiver.example", "receiver.example");
			assert_int_equal(hosts_open(hs, h, now, &until), st->arg != 0);
			if (st->arg == 0)
				assert_int_equal(until, -7); /* untouched when closed */
			assert_int_equal(hosts_open(hs, h, now, NULL), st->arg != 0);
			break;
		case UNTIL:
			assert_true(hosts_open(hs, h, now, &until));
			assert_int_equal(until, st->arg);
			break;
		}
	}
	hosts_free(hs);
}

static void test_scripts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
		run_script(&scripts[i]);
}

/* Trip host a's breaker: its own bound and state never touch host b. */
static void test_hosts_independent(void **state)
{
	struct hosts *hs = hosts_new(1, 2, 1000);
	struct host *a;
	struct host *b;

	(void)state;
	assert_non_null(hs);
	a = hosts_get(hs, "a.example", "a.example");
	b = hosts_get(hs, "b.example", "b.example");
	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	assert_ptr_equal(hosts_get(hs, "a.example", "a.example"), a);
	/* names are compared exactly: the caller lowercases */
	assert_ptr_not_equal(hosts_get(hs, "A.example", "A.example"), a);
	hosts_hold(hs, a);
	hosts_hold(hs, b);
	assert_true(hosts_may_start(hs, a, false, 0));
	hosts_started(hs, a, false);
	assert_false(hosts_may_start(hs, a, false, 0));
	assert_true(hosts_may_start(hs, b, false, 0)); /* a's bound is a's */
	assert_false(hosts_finished(hs, a, false, 0, true, false, 0));
	hosts_started(hs, a, false);
	assert_true(hosts_finished(hs, a, false, 0, true, false, 0));
	assert_true(hosts_open(hs, a, 1, NULL));
	assert_false(hosts_open(hs, b, 1, NULL));
	assert_true(hosts_may_start(hs, b, false, 1));
	hosts_started(hs, b, false);
	assert_false(hosts_finished(hs, b, false, 0, true, false, 1)); /* b's first failure */
	hosts_free(hs);
}

static const char *excl(struct hosts *hs, int64_t now, struct buf *b, bool *changed);

/* issue 11, item 1: two services on different ports (or schemes) of one
 * host are two origins: one's open breaker and full slots leave the other
 * alone, in claims too. */
static void test_origins_independent(void **state)
{
	struct hosts *hs = hosts_new(1, 1, 1000);
	struct buf b;
	bool changed;

	(void)state;
	assert_non_null(hs);
	buf_init(&b, 4096);
	struct host *a = hosts_get(hs, "http://127.0.0.1:8001", "http://127.0.0.1:8001");
	struct host *c = hosts_get(hs, "http://127.0.0.1:8002", "http://127.0.0.1:8002");
	struct host *t = hosts_get(hs, "https://127.0.0.1:8001", "https://127.0.0.1:8001");
	assert_non_null(a);
	assert_non_null(c);
	assert_non_null(t);
	assert_ptr_not_equal(a, c);
	assert_ptr_not_equal(a, t);
	assert_string_equal(hosts_name(c), "http://127.0.0.1:8002");
	hosts_hold(hs, a);
	hosts_hold(hs, c);
	hosts_hold(hs, t);
	assert_true(hosts_may_start(hs, a, false, 0));
	hosts_started(hs, a, false);
	assert_false(hosts_may_start(hs, a, false, 0));
	assert_true(hosts_may_start(hs, c, false, 0));
	assert_true(hosts_may_start(hs, t, false, 0));
	assert_true(hosts_finished(hs, a, false, 0, true, false, 0));
	assert_true(hosts_open(hs, a, 1, NULL));
	assert_false(hosts_open(hs, c, 1, NULL));
	assert_false(hosts_open(hs, t, 1, NULL));
	assert_true(hosts_may_start(hs, c, true, 1));
	/* the exclusion names the open origin's claim key only */
	assert_string_equal(excl(hs, 1, &b, &changed), "[\"http://127.0.0.1:8001\"]");
	buf_free(&b);
	hosts_free(hs);
}

/* The exclusion list as a JSON array of strings, for the assertions: b
 * keeps the last list handed out while the set stays the same. */
static const char *excl(struct hosts *hs, int64_t now, struct buf *b, bool *changed)
{
	struct store_exclude *ex = NULL;
	*changed = hosts_exclusions(hs, now, &ex);
	if (!*changed) {
		assert_null(ex);
		return buf_str(b);
	}
	buf_reset(b);
	buf_putc(b, '[');
	for (size_t i = 0; ex && i < ex->n; i++) {
		if (i > 0)
			buf_putc(b, ',');
		buf_json_string(b, ex->keys[i], strlen(ex->keys[i]));
	}
	buf_putc(b, ']');
	cz_free(ex);
	return buf_str(b);
}

/* Open breakers and hosts with 2 * max_per_host jobs in hand are left out
 * of claims; the list says when it changed. */
static void test_exclusions(void **state)
{
	struct hosts *hs = hosts_new(2, 1, 1000);
	struct buf b;
	bool changed;
	struct host *a;
	struct host *q;

	(void)state;
	assert_non_null(hs);
	buf_init(&b, 4096);
	assert_string_equal(excl(hs, 0, &b, &changed), "[]");
	assert_true(changed); /* the first call always counts as a change */
	assert_string_equal(excl(hs, 0, &b, &changed), "[]");
	assert_false(changed);

	a = hosts_get(hs, "a.example", "a.example");
	hosts_hold(hs, a);
	hosts_hold(hs, a);
	hosts_hold(hs, a);
	assert_string_equal(excl(hs, 0, &b, &changed), "[]"); /* 3 < 2 * 2 */
	assert_false(changed);
	hosts_hold(hs, a);
	assert_string_equal(excl(hs, 0, &b, &changed), "[\"a.example\"]");
	assert_true(changed);
	assert_string_equal(excl(hs, 0, &b, &changed), "[\"a.example\"]");
	assert_false(changed);
	hosts_leave(hs, a);
	assert_string_equal(excl(hs, 0, &b, &changed), "[]");
	assert_true(changed);

	/* a name that needs escaping stays valid JSON */
	q = hosts_get(hs, "http://q\"uote.example:80", "q\"uote.example");
	hosts_hold(hs, q);
	hosts_started(hs, q, false);
	assert_true(hosts_finished(hs, q, false, 0, true, false, 50));
	assert_string_equal(excl(hs, 50, &b, &changed), "[\"q\\\"uote.example\"]");
	assert_true(changed);
	assert_string_equal(excl(hs, 1049, &b, &changed), "[\"q\\\"uote.example\"]");
	assert_false(changed);
	/* the cool-down ended: half-open hosts are claimable again */
	assert_string_equal(excl(hs, 1050, &b, &changed), "[]");
	assert_true(changed);
	buf_free(&b);
	hosts_free(hs);
}

static void trip(struct hosts *hs, const char *name, int64_t now)
{
	struct host *h = hosts_get(hs, name, name);

	assert_non_null(h);
	hosts_hold(hs, h);
	hosts_started(hs, h, false);
	assert_true(hosts_finished(hs, h, false, 0, true, false, now));
}

static void test_next_change(void **state)
{
	struct hosts *hs = hosts_new(2, 1, 1000);

	(void)state;
	assert_non_null(hs);
	assert_int_equal(hosts_next_change(hs, 0), -1);
	trip(hs, "late.example", 500);
	assert_int_equal(hosts_next_change(hs, 500), 1500);
	trip(hs, "early.example", 200);
	assert_int_equal(hosts_next_change(hs, 500), 1200);
	assert_int_equal(hosts_next_change(hs, 1199), 1200);
	/* early is half-open now: its trial grace (1000 / 4) ends at 1450 */
	assert_int_equal(hosts_next_change(hs, 1200), 1450);
	assert_int_equal(hosts_next_change(hs, 1450), 1500);
	assert_int_equal(hosts_next_change(hs, 1500), 1750);
	assert_int_equal(hosts_next_change(hs, 1750), -1);
	/* a trial in flight: nothing to wake for */
	trip(hs, "busy.example", 2000);
	struct host *busy = hosts_get(hs, "busy.example", "busy.example");
	assert_true(hosts_may_start(hs, busy, false, 3000));
	hosts_started(hs, busy, false);
	assert_int_equal(hosts_next_change(hs, 3000), -1);
	assert_int_equal(hosts_trial_grace_ms(hs), 250);
	hosts_free(hs);

	/* the earliest wins wherever it sits in the table */
	for (int k = 0; k < 5; k++) {
		char name[32];

		hs = hosts_new(2, 1, 1000);
		assert_non_null(hs);
		for (int i = 0; i < 5; i++) {
			snprintf(name, sizeof(name), "n%d.example", i);
			trip(hs, name, i == k ? 100 : 300 + i);
		}
		assert_int_equal(hosts_next_change(hs, 150), 1100);
		hosts_free(hs);
	}
}

/* The table stays bounded: past 4096 hosts, idle ones that only remember
 * failures are forgotten on the next leave; open breakers are kept. */
static void test_sweep(void **state)
{
	struct hosts *hs = hosts_new(1, 3, 1000);
	char name[64];
	struct host *h;
	struct buf b;

	(void)state;
	assert_non_null(hs);
	buf_init(&b, 1 << 16);
	h = hosts_get(hs, "open.example", "open.example");
	hosts_hold(hs, h);
	for (int i = 0; i < 3; i++) {
		hosts_started(hs, h, false);
		assert_int_equal(hosts_finished(hs, h, false, 0, true, false, 0), i == 2);
	}
	assert_true(hosts_open(hs, h, 0, NULL));
	hosts_leave(hs, h);

	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "h%d.example", i);
		h = hosts_get(hs, name, name);
		assert_non_null(h);
		hosts_hold(hs, h);
		hosts_started(hs, h, false);
		assert_false(hosts_finished(hs, h, false, 0, true, false, 0));
		hosts_leave(hs, h); /* one failure remembered */
	}
	/* h0 was swept: its count restarted, so two failures do not open it */
	h = hosts_get(hs, "h0.example", "h0.example");
	hosts_hold(hs, h);
	hosts_started(hs, h, false);
	assert_false(hosts_finished(hs, h, false, 0, true, false, 0));
	hosts_started(hs, h, false);
	assert_false(hosts_finished(hs, h, false, 0, true, false, 0));
	/* the last one was not (the sweep ran before it was added): two more open it */
	h = hosts_get(hs, "h4999.example", "h4999.example");
	hosts_hold(hs, h);
	hosts_started(hs, h, false);
	assert_false(hosts_finished(hs, h, false, 0, true, false, 0));
	hosts_started(hs, h, false);
	assert_true(hosts_finished(hs, h, false, 0, true, false, 0));
	/* the open breaker survived the sweep */
	bool changed;
	assert_non_null(strstr(excl(hs, 1, &b, &changed), "\"open.example\""));
	buf_free(&b);
	hosts_free(hs);
}

/* The grace is a quarter of the cool-down, at most one second. */
static void test_grace(void **state)
{
	static const int64_t cases[][2] = {{0, 0},       {3, 0},        {100, 25},      {3000, 750},
	                                   {4000, 1000}, {30000, 1000}, {3600000, 1000}};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hosts *hs = hosts_new(1, 1, cases[i][0]);
		assert_non_null(hs);
		assert_int_equal(hosts_trial_grace_ms(hs), cases[i][1]);
		hosts_free(hs);
	}
}

/* Paths that failed make jobs suspect at their origin until a success on
 * the path; the memory is per origin and bounded (issue 11, item 1). */
static void test_suspect_paths(void **state)
{
	struct hosts *hs = hosts_new(8, 100, 1000);
	uint64_t hang = hosts_path_key("http://r.example:80/hang");
	uint64_t ok = hosts_path_key("http://r.example:80/ok");

	(void)state;
	assert_non_null(hs);
	/* the query and fragment are not part of the path */
	assert_int_equal(hosts_path_key("http://r.example:80/hang?job=1"), hang);
	assert_int_equal(hosts_path_key("http://r.example:80/hang#x"), hang);
	assert_int_not_equal(hang, ok);
	assert_int_not_equal(hosts_path_key(""), 0);
	struct host *h = hosts_get(hs, "http://r.example:80", "http://r.example:80");
	struct host *o = hosts_get(hs, "http://r.example:81", "http://r.example:81");
	hosts_hold(hs, h);
	hosts_hold(hs, o);
	assert_false(hosts_suspect(hs, h, hang));
	hosts_started(hs, h, false);
	assert_false(hosts_finished(hs, h, false, hang, true, false, 0));
	assert_true(hosts_suspect(hs, h, hang));
	assert_false(hosts_suspect(hs, h, ok));
	assert_false(hosts_suspect(hs, o, hang)); /* another origin's memory */
	assert_false(hosts_suspect(hs, h, 0));
	/* a neutral outcome says nothing about the path */
	hosts_started(hs, h, true);
	assert_false(hosts_finished(hs, h, true, hang, false, true, 0));
	assert_true(hosts_suspect(hs, h, hang));
	/* a success on another path leaves it; on the path clears it */
	hosts_started(hs, h, false);
	assert_false(hosts_finished(hs, h, false, ok, false, false, 0));
	assert_true(hosts_suspect(hs, h, hang));
	hosts_started(hs, h, true);
	assert_false(hosts_finished(hs, h, true, hang, false, false, 0));
	assert_false(hosts_suspect(hs, h, hang));
	/* bounded: the 17th failing path pushes out the first */
	char url[64];
	for (int i = 0; i < 17; i++) {
		snprintf(url, sizeof url, "http://r.example:80/p%d", i);
		hosts_started(hs, h, false);
		hosts_finished(hs, h, false, hosts_path_key(url), true, false, 0);
	}
	assert_false(hosts_suspect(hs, h, hosts_path_key("http://r.example:80/p0")));
	assert_true(hosts_suspect(hs, h, hosts_path_key("http://r.example:80/p1")));
	assert_true(hosts_suspect(hs, h, hosts_path_key("http://r.example:80/p16")));
	/* a path failing twice takes one slot of the memory */
	hosts_started(hs, h, false);
	hosts_finished(hs, h, false, hosts_path_key("http://r.example:80/p16"), true, false, 0);
	assert_true(hosts_suspect(hs, h, hosts_path_key("http://r.example:80/p1")));
	hosts_free(hs);
}

static void test_free_null(void **state)
{
	(void)state;
	hosts_free(NULL);
}

/* Out of memory: NULL, nothing leaked (ASan), and the table still works. */
static void test_nomem(void **state)
{
	struct hosts *hs;
	struct host *h;

	(void)state;
	alloc_fail_after(0);
	assert_null(hosts_new(1, 1, 1));
	alloc_fail_after(-1);
	hs = hosts_new(1, 1, 1000);
	assert_non_null(hs);
	for (long n = 0; n < 3; n++) {
		alloc_fail_after(n); /* the host, its name, its claim key */
		assert_null(hosts_get(hs, "oom.example", "oom.example"));
		alloc_fail_after(-1);
	}
	h = hosts_get(hs, "oom.example", "oom.example");
	assert_non_null(h);
	assert_string_equal(hosts_name(h), "oom.example");
	/* an existing host needs no memory */
	alloc_fail_after(0);
	assert_ptr_equal(hosts_get(hs, "oom.example", "oom.example"), h);
	alloc_fail_after(-1);
	hosts_free(hs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scripts),
	    cmocka_unit_test(test_hosts_independent),
	    cmocka_unit_test(test_origins_independent),
	    cmocka_unit_test(test_grace),
	    cmocka_unit_test(test_suspect_paths),
	    cmocka_unit_test(test_exclusions),
	    cmocka_unit_test(test_next_change),
	    cmocka_unit_test(test_sweep),
	    cmocka_unit_test(test_free_null),
	    cmocka_unit_test(test_nomem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
