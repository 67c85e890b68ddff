/*
 * test_fcgi_auth: the request side of API keys (fcgi-app/auth.h) through a
 * fake FCGX_Request (as in test_fcgi_http): one table of Authorization
 * headers x what the route needs, each passing with the right owner and
 * role or answering 401/403 with the right WWW-Authenticate; the open mode;
 * a reload on SIGHUP that revokes a key; reloads racing lookups from
 * several threads; a bad file that keeps the last
 * good set; a bad file at start-up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>
#include "auth.h"
#include "fake_fcgx.h"
#include "http.h"

/* printf %s ck_test | sha256sum; printf %s k2 | sha256sum */
#define LINE_ALICE "alice client 942d317dc7797b98b262d88716422069144f262ddc1ea8bfe041c3a5ede7c27a\n"
#define LINE_ROOT  "root admin 015f7e6bc5aeaf483724089e9252cc13b50951a6b69412522765cff4d780306e\n"

static char tmpdir[] = "/tmp/test_fcgi_auth.XXXXXX";
static char keys_path[256];
static struct app app;

/* A GET /requests whose Authorization header is authz (NULL: none). */
static struct fake *fake_new(const char *authz)
{
	struct fake *f = calloc(1, sizeof(*f));
	char authz_var[1024];
	const char *env[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/requests", NULL, NULL};

	assert_non_null(f);
	if (authz != NULL) {
		snprintf(authz_var, sizeof(authz_var), "HTTP_AUTHORIZATION=%s", authz);
		env[2] = authz_var;
	}
	fake_init(f, env, NULL, 0);
	return f;
}

static void write_keys(const char *text)
{
	char tmp[300];
	FILE *fp;

	snprintf(tmp, sizeof(tmp), "%s.tmp", keys_path);
	fp = fopen(tmp, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(rename(tmp, keys_path), 0);
}

static struct auth *open_keys(void)
{
	struct config cfg;
	char why[512] = "";
	struct auth *a;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.api_keys_file, sizeof(cfg.api_keys_file), "%s", keys_path);
	a = auth_open(&cfg, &(enum apikeys_err){APIKEYS_OK}, why, sizeof(why));
	if (a == NULL)
		fail_msg("auth_open: %s", why);
	return a;
}

struct check_case {
	const char *authz;
	enum auth_need need;
	int status;        /* 0: passes */
	const char *www;   /* WWW-Authenticate value on a refusal */
	const char *owner; /* on a pass: auth_owner, NULL for none */
	const char *scope; /* on a pass: auth_scope */
};

#define REALM   "Bearer realm=\"consuma\""
#define INVALID REALM ", error=\"invalid_token\""

static const struct check_case cases[] = {
    {NULL, AUTH_KEY, 401, REALM, NULL, NULL},
    {"", AUTH_KEY, 401, REALM, NULL, NULL},
    {"Bearer ck_test", AUTH_KEY, 0, NULL, "alice", "alice"},
    {"bearer ck_test", AUTH_KEY, 0, NULL, "alice", "alice"},
    {"BEARER \t ck_test  ", AUTH_KEY, 0, NULL, "alice", "alice"},
    {"Bearer k2", AUTH_KEY, 0, NULL, "root", NULL},
    {"Bearer k2", AUTH_ADMIN, 0, NULL, "root", NULL},
    {"Bearer ck_test", AUTH_ADMIN, 403, REALM ", error=\"insufficient_scope\"", NULL, NULL},
    {"Bearer nope", AUTH_KEY, 401, INVALID, NULL, NULL},
    {"Bearer nope", AUTH_ADMIN, 401, INVALID, NULL, NULL},
    {"Bearer", AUTH_KEY, 401, INVALID, NULL, NULL},
    {"Bearer ", AUTH_KEY, 401, INVALID, NULL, NULL},
    {"Bearerck_test", AUTH_KEY, 401, INVALID, NULL, NULL},
    {"Basic Y2tfdGVzdDo=", AUTH_KEY, 401, INVALID, NULL, NULL},
    {"Bearer ck_test extra", AUTH_KEY, 401, INVALID, NULL, NULL},
    {"Bearer ck_te\"st", AUTH_KEY, 401, INVALID, NULL, NULL},
    {"Bearer ck_test=", AUTH_KEY, 401, INVALID, NULL, NULL},
    /* no key needed: nothing is looked at, nothing is owned */
    {NULL, AUTH_NONE, 0, NULL, NULL, NULL},
    {"Bearer nope", AUTH_NONE, 0, NULL, NULL, NULL},
};

/* Runs one check; returns the status sent (0 when it passed). */
static int run_check(struct auth *a, const char *authz, enum auth_need need,
                     struct http_exchange *x, struct fake **fp)
{
	struct fake *f = fake_new(authz);
	bool passed;

	assert_true(http_exchange_init(x, &app, &f->fr));
	passed = auth_check(a, x, need);
	*fp = f;
	assert_true(passed == (x->status == 0));
	return x->status;
}

static void test_check(void **state)
{
	struct auth *a;

	(void)state;
	write_keys("# test keys\n" LINE_ALICE LINE_ROOT);
	a = open_keys();
	assert_string_equal(auth_mode(a), "keys");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct check_case *c = &cases[i];
		struct http_exchange x;
		struct fake *f;
		int status = run_check(a, c->authz, c->need, &x, &f);
		const char *out = fake_output(f);

		if (status != c->status)
			fail_msg("case %zu [%s]: status %d, want %d", i, c->authz ? c->authz : "-",
			         status, c->status);
		if (status == 0) {
			const char *owner = auth_owner(&x), *scope = auth_scope(&x);

			if ((owner == NULL) != (c->owner == NULL) ||
			    (owner != NULL && strcmp(owner, c->owner) != 0))
				fail_msg("case %zu: owner %s", i, owner ? owner : "(none)");
			if ((scope == NULL) != (c->scope == NULL) ||
			    (scope != NULL && strcmp(scope, c->scope) != 0))
				fail_msg("case %zu: scope %s", i, scope ? scope : "(all)");
		} else {
			char want[256];

			snprintf(want, sizeof(want), "WWW-Authenticate: %s\r\n", c->www);
			if (strstr(out, want) == NULL)
				fail_msg("case %zu: no [%s] in\n%s", i, c->www, out);
			if (strstr(out, "{\"detail\":\"authorization: ") == NULL)
				fail_msg("case %zu: no JSON detail in\n%s", i, out);
			/* a refusal names no client */
			assert_null(strstr(out, "alice"));
			assert_null(strstr(out, "root"));
		}
		http_exchange_done(&x);
		free(f);
	}
	auth_close(a);
}

static void test_open(void **state)
{
	struct config cfg;
	char why[64];
	struct auth *a;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	a = auth_open(&cfg, &(enum apikeys_err){APIKEYS_OK}, why, sizeof(why));
	assert_non_null(a);
	assert_string_equal(auth_mode(a), "open");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_exchange x;
		struct fake *f;

		/* open: everything passes, nothing is owned, reads see all */
		assert_int_equal(run_check(a, cases[i].authz, cases[i].need, &x, &f), 0);
		assert_null(auth_owner(&x));
		assert_null(auth_scope(&x));
		http_exchange_done(&x);
		free(f);
	}
	auth_refresh(a); /* a no-op without a file */
	auth_close(a);
	auth_close(NULL);
	assert_string_equal(auth_mode(NULL), "open");
}

static int status_of(struct auth *a, const char *authz)
{
	struct http_exchange x;
	struct fake *f;
	int status = run_check(a, authz, AUTH_KEY, &x, &f);

	http_exchange_done(&x);
	free(f);
	return status;
}

static void test_reload(void **state)
{
	struct auth *a;

	(void)state;
	write_keys(LINE_ALICE LINE_ROOT);
	a = open_keys();
	assert_int_equal(status_of(a, "Bearer ck_test"), 0);
	/* revoked in the file: still valid until a reload, refused after it */
	write_keys(LINE_ROOT);
	assert_int_equal(status_of(a, "Bearer ck_test"), 0);
	auth_sighup(a);
	assert_int_equal(status_of(a, "Bearer ck_test"), 401);
	assert_int_equal(status_of(a, "Bearer k2"), 0);
	/* a bad file keeps the last good set */
	write_keys("root admin 00\n");
	auth_sighup(a);
	assert_int_equal(status_of(a, "Bearer k2"), 0);
	/* so does a file that vanished */
	assert_int_equal(unlink(keys_path), 0);
	auth_sighup(a);
	assert_int_equal(status_of(a, "Bearer k2"), 0);
	/* and a fixed one is taken */
	write_keys(LINE_ALICE);
	auth_sighup(a);
	assert_int_equal(status_of(a, "Bearer ck_test"), 0);
	assert_int_equal(status_of(a, "Bearer k2"), 401);
	auth_close(a);
}

/* Lookups in four threads while the main thread swaps the set back and
 * forth: every answer is one of the two sets' (ASan sees any use of a
 * freed set). */
#define RACE_THREADS 4
#define RACE_LOOPS   2000

struct racer {
	struct auth *a;
	int odd; /* answers that neither set gives */
};

static void *race(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < RACE_LOOPS; i++) {
		int root = status_of(r->a, "Bearer k2");
		int alice = status_of(r->a, "Bearer ck_test");

		/* root is in both sets; alice in one of them */
		if (root != 0 || (alice != 0 && alice != 401))
			r->odd++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t t[RACE_THREADS];
	struct racer r[RACE_THREADS];
	struct auth *a;

	(void)state;
	write_keys(LINE_ALICE LINE_ROOT);
	a = open_keys();
	for (int i = 0; i < RACE_THREADS; i++) {
		r[i].a = a;
		r[i].odd = 0;
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (int i = 0; i < 200; i++) {
		write_keys(i % 2 == 0 ? LINE_ROOT : LINE_ALICE LINE_ROOT);
		auth_sighup(a);
		auth_refresh(a);
	}
	for (int i = 0; i < RACE_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(r[i].odd, 0);
	}
	auth_close(a);
}

static void test_bad_at_start(void **state)
{
	struct config cfg;
	enum apikeys_err err = APIKEYS_OK;
	char why[512] = "";

	(void)state;
	write_keys(LINE_ALICE "alice admin 00\n");
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.api_keys_file, sizeof(cfg.api_keys_file), "%s", keys_path);
	assert_null(auth_open(&cfg, &err, why, sizeof(why)));
	assert_int_equal(err, APIKEYS_BAD_HASH);
	assert_non_null(strstr(why, "CONSUMA_API_KEYS_FILE: line 2"));
	snprintf(cfg.api_keys_file, sizeof(cfg.api_keys_file), "%s/none", tmpdir);
	assert_null(auth_open(&cfg, &err, why, sizeof(why)));
	assert_int_equal(err, APIKEYS_IO);
	assert_non_null(strstr(why, "CONSUMA_API_KEYS_FILE: "));
}

static int setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(keys_path, sizeof(keys_path), "%s/keys", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(keys_path);
	return rmdir(tmpdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check),        cmocka_unit_test(test_open),
	    cmocka_unit_test(test_reload),       cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_bad_at_start),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
