/*
 * test_apikeys: the keys file parser (a table of files: comments, blank
 * lines, bad hex, bad roles, bad names, duplicates, long lines, NULs, CRLF),
 * the lookup of a presented key (hashes computed outside this code with
 * `printf %s KEY | sha256sum`), the constant-time compare's answers (its
 * timing is CRYPTO_memcmp's and is not measured here), minting, and loading
 * from a file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "apikeys.h"

/* printf %s ck_test | sha256sum */
#define H_TEST "942d317dc7797b98b262d88716422069144f262ddc1ea8bfe041c3a5ede7c27a"
/* printf %s k2 | sha256sum */
#define H_K2   "015f7e6bc5aeaf483724089e9252cc13b50951a6b69412522765cff4d780306e"
#define H_ZERO "0000000000000000000000000000000000000000000000000000000000000000"

struct file_case {
	const char *name;
	const char *text;
	enum apikeys_err want;
	size_t keys;         /* on APIKEYS_OK */
	const char *why_has; /* on failure: a substring of why ("line N") */
};

static const struct file_case files[] = {
    {"empty", "", APIKEYS_OK, 0, NULL},
    {"only comments", "# keys\n  # indented\n\n\t\n", APIKEYS_OK, 0, NULL},
    {"one key", "alice client " H_TEST "\n", APIKEYS_OK, 1, NULL},
    {"no final newline", "alice client " H_TEST, APIKEYS_OK, 1, NULL},
    {"tabs and spaces", "\talice \t admin\t" H_TEST "  \n", APIKEYS_OK, 1, NULL},
    {"CRLF", "alice client " H_TEST "\r\nbob admin " H_K2 "\r\n", APIKEYS_OK, 2, NULL},
    {"upper-case hex",
     "alice client 942D317DC7797B98B262D88716422069144F262DDC1EA8BFE041C3A5EDE7C27A\n", APIKEYS_OK,
     1, NULL},
    {"two keys of one client (rotation)", "alice client " H_TEST "\nalice client " H_K2 "\n",
     APIKEYS_OK, 2, NULL},
    {"name characters", "a.b_c-D9 client " H_TEST "\n", APIKEYS_OK, 1, NULL},
    {"48-byte name", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa client " H_TEST "\n",
     APIKEYS_OK, 1, NULL},

    {"49-byte name", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa client " H_TEST "\n",
     APIKEYS_BAD_CLIENT, 0, "line 1"},
    {"name starting with a dot", ".alice client " H_TEST "\n", APIKEYS_BAD_CLIENT, 0, "line 1"},
    {"name with a slash", "al/ice client " H_TEST "\n", APIKEYS_BAD_CLIENT, 0, "line 1"},
    {"name with non-ASCII", "\xc3\xa4lice client " H_TEST "\n", APIKEYS_BAD_CLIENT, 0, "line 1"},
    {"bad role", "# c\nalice root " H_TEST "\n", APIKEYS_BAD_ROLE, 0, "line 2"},
    {"role in capitals", "alice Admin " H_TEST "\n", APIKEYS_BAD_ROLE, 0, "line 1"},
    {"hash one digit short",
     "alice client 942d317dc7797b98b262d88716422069144f262ddc1ea8bfe041c3a5ede7c27\n",
     APIKEYS_BAD_HASH, 0, "line 1"},
    {"hash one digit long",
     "alice client 942d317dc7797b98b262d88716422069144f262ddc1ea8bfe041c3a5ede7c27a0\n",
     APIKEYS_BAD_HASH, 0, "line 1"},
    {"hash not hex",
     "alice client 942d317dc7797b98b262d88716422069144f262ddc1ea8bfe041c3a5ede7c27g\n",
     APIKEYS_BAD_HASH, 0, "line 1"},
    {"the key instead of its hash", "alice client ck_test\n", APIKEYS_BAD_HASH, 0, "line 1"},
    {"two fields", "alice client\n", APIKEYS_FIELDS, 0, "line 1"},
    {"four fields", "alice client " H_TEST " extra\n", APIKEYS_FIELDS, 0, "line 1"},
    {"trailing comment is a field", "alice client " H_TEST " # note\n", APIKEYS_FIELDS, 0,
     "line 1"},
    {"duplicate hash, two clients", "alice client " H_TEST "\nbob client " H_TEST "\n",
     APIKEYS_DUP_HASH, 0, "line 2"},
    {"duplicate line", "alice client " H_TEST "\n\n\nalice client " H_TEST "\n", APIKEYS_DUP_HASH,
     0, "line 4"},
    {"duplicate hash, other case",
     "alice client " H_K2 "\nbob client " H_ZERO "\ncarol admin "
     "015F7E6BC5AEAF483724089E9252CC13B50951A6B69412522765CFF4D780306E\n",
     APIKEYS_DUP_HASH, 0, "line 3"},
    {"one client, two roles", "alice client " H_TEST "\nalice admin " H_K2 "\n",
     APIKEYS_ROLE_CONFLICT, 0, "line 2"},
    {"NUL in a line", "alice client " H_TEST "\nb\0b client " H_K2 "\n", APIKEYS_NUL, 0, "line 2"},
};

static void test_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		const struct file_case *c = &files[i];
		/* the NUL case needs its real length */
		size_t len = strcmp(c->name, "NUL in a line") == 0
		                 ? strlen(c->text) + 1 + strlen(c->text + strlen(c->text) + 1)
		                 : strlen(c->text);
		enum apikeys_err err = APIKEYS_NOMEM;
		char why[APIKEYS_WHY_MAX] = "";
		struct apikeys *k = apikeys_parse(c->text, len, &err, why, sizeof(why));

		if (err != c->want)
			fail_msg("%s: got %s (%s), want %s", c->name, apikeys_strerror(err), why,
			         apikeys_strerror(c->want));
		if (c->want == APIKEYS_OK) {
			assert_non_null(k);
			if (apikeys_count(k) != c->keys)
				fail_msg("%s: %zu keys, want %zu", c->name, apikeys_count(k),
				         c->keys);
		} else {
			assert_null(k);
			if (strstr(why, c->why_has) == NULL)
				fail_msg("%s: why [%s] lacks [%s]", c->name, why, c->why_has);
		}
		apikeys_free(k);
	}
}

static void test_bounds(void **state)
{
	char *text = cz_malloc(APIKEYS_FILE_MAX + 2);
	char line[APIKEYS_LINE_MAX + 2];
	enum apikeys_err err;
	char why[APIKEYS_WHY_MAX];
	struct apikeys *k;
	size_t i, pos = 0;

	(void)state;
	assert_non_null(text);
	/* a comment of exactly APIKEYS_LINE_MAX bytes passes; one more does not */
	memset(line, 'x', sizeof(line));
	line[0] = '#';
	k = apikeys_parse(line, APIKEYS_LINE_MAX, &err, why, sizeof(why));
	assert_int_equal(err, APIKEYS_OK);
	apikeys_free(k);
	k = apikeys_parse(line, APIKEYS_LINE_MAX + 1, &err, why, sizeof(why));
	assert_null(k);
	assert_int_equal(err, APIKEYS_LINE_TOO_LONG);
	assert_non_null(strstr(why, "line 1"));
	/* APIKEYS_ENTRIES_MAX keys pass, one more is refused */
	for (i = 0; i < APIKEYS_ENTRIES_MAX; i++)
		pos += (size_t)snprintf(text + pos, 128, "c%zu client %064zx\n", i, i);
	k = apikeys_parse(text, pos, &err, why, sizeof(why));
	assert_int_equal(err, APIKEYS_OK);
	assert_int_equal(apikeys_count(k), APIKEYS_ENTRIES_MAX);
	apikeys_free(k);
	pos += (size_t)snprintf(text + pos, 128, "c%zu client %064zx\n", i, i);
	k = apikeys_parse(text, pos, &err, why, sizeof(why));
	assert_null(k);
	assert_int_equal(err, APIKEYS_TOO_MANY);
	/* a file over the size bound is refused before it is parsed */
	memset(text, '\n', APIKEYS_FILE_MAX + 1);
	k = apikeys_parse(text, APIKEYS_FILE_MAX + 1, &err, why, sizeof(why));
	assert_null(k);
	assert_int_equal(err, APIKEYS_TOO_LARGE);
	cz_free(text);
}

struct lookup_case {
	const char *key;
	bool found;
	const char *client;
	enum apikeys_role role;
};

static void test_lookup(void **state)
{
	static const char file[] = "alice client " H_TEST "\nroot admin " H_K2 "\n";
	static const struct lookup_case cases[] = {
	    {"ck_test", true, "alice", APIKEYS_ROLE_CLIENT},
	    {"k2", true, "root", APIKEYS_ROLE_ADMIN},
	    {"ck_tesT", false, NULL, 0},
	    {"ck_tes", false, NULL, 0},
	    {"ck_test ", false, NULL, 0},
	    {"K2", false, NULL, 0},
	    {"", false, NULL, 0},
	    /* the hash itself is not a key */
	    {H_TEST, false, NULL, 0},
	};
	enum apikeys_err err;
	struct apikeys *k = apikeys_parse(file, strlen(file), &err, NULL, 0);
	char client[APIKEYS_CLIENT_MAX + 1];
	enum apikeys_role role;
	char big[APIKEYS_TOKEN_MAX + 2];

	(void)state;
	assert_non_null(k);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got;

		memset(client, 0, sizeof(client));
		role = 0;
		got = apikeys_lookup(k, cases[i].key, strlen(cases[i].key), client, &role);
		if (got != cases[i].found)
			fail_msg("key [%s]: found %d", cases[i].key, got);
		if (got) {
			assert_string_equal(client, cases[i].client);
			assert_int_equal(role, cases[i].role);
		}
	}
	/* only keylen bytes count: "ck_testXYZ" cut at 7 is ck_test */
	assert_true(apikeys_lookup(k, "ck_testXYZ", 7, client, &role));
	/* a key over APIKEYS_TOKEN_MAX bytes is refused without hashing */
	memset(big, 'a', sizeof(big));
	assert_false(apikeys_lookup(k, big, APIKEYS_TOKEN_MAX + 1, client, &role));
	assert_false(apikeys_lookup(NULL, "ck_test", 7, client, &role));
	apikeys_free(k);
	apikeys_free(NULL);
}

static void test_equal(void **state)
{
	unsigned char a[32], b[32];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(a); i++)
		a[i] = b[i] = (unsigned char)(i * 7 + 1);
	assert_true(apikeys_equal(a, b, sizeof(a)));
	assert_true(apikeys_equal(a, b, 0));
	/* a difference anywhere, in any bit, is found */
	for (i = 0; i < sizeof(a); i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (unsigned char)(1u << bit);
			if (apikeys_equal(a, b, sizeof(a)))
				fail_msg("byte %zu bit %d: reported equal", i, bit);
			b[i] ^= (unsigned char)(1u << bit);
		}
	}
	/* a difference past n does not count */
	b[31] ^= 1;
	assert_true(apikeys_equal(a, b, 31));
	assert_false(apikeys_equal(a, b, 32));
}

static void test_mint(void **state)
{
	char key[APIKEYS_KEY_LEN + 1], key2[APIKEYS_KEY_LEN + 1];
	char line[APIKEYS_LINE_MAX + 1], line2[APIKEYS_LINE_MAX + 1];
	char joined[2 * APIKEYS_LINE_MAX + 4];
	char client[APIKEYS_CLIENT_MAX + 1];
	enum apikeys_role role = 0;
	enum apikeys_err err;
	struct apikeys *k;

	(void)state;
	assert_int_equal(apikeys_mint("ops", "admin", key, sizeof(key), line, sizeof(line)),
	                 APIKEYS_OK);
	assert_int_equal(strlen(key), APIKEYS_KEY_LEN);
	assert_memory_equal(key, "ck_", 3);
	assert_int_equal(strspn(key + 3, "0123456789abcdef"), APIKEYS_HEX_LEN);
	assert_memory_equal(line, "ops admin ", 10);
	assert_int_equal(apikeys_mint("app-1", "client", key2, sizeof(key2), line2, sizeof(line2)),
	                 APIKEYS_OK);
	assert_string_not_equal(key, key2);
	/* the minted lines parse, and each key finds its own client */
	snprintf(joined, sizeof(joined), "%s\n%s\n", line, line2);
	k = apikeys_parse(joined, strlen(joined), &err, NULL, 0);
	assert_non_null(k);
	assert_true(apikeys_lookup(k, key, strlen(key), client, &role));
	assert_string_equal(client, "ops");
	assert_int_equal(role, APIKEYS_ROLE_ADMIN);
	assert_true(apikeys_lookup(k, key2, strlen(key2), client, &role));
	assert_string_equal(client, "app-1");
	assert_int_equal(role, APIKEYS_ROLE_CLIENT);
	/* the key is not in the line */
	assert_null(strstr(joined, key + 3));
	apikeys_free(k);
	assert_int_equal(apikeys_mint("bad name", "client", key, sizeof(key), line, sizeof(line)),
	                 APIKEYS_BAD_CLIENT);
	assert_int_equal(apikeys_mint("ops", "root", key, sizeof(key), line, sizeof(line)),
	                 APIKEYS_BAD_ROLE);
	assert_int_equal(apikeys_mint(NULL, "admin", key, sizeof(key), line, sizeof(line)),
	                 APIKEYS_BAD_CLIENT);
}

static void test_load(void **state)
{
	char dir[] = "/tmp/test_apikeys.XXXXXX";
	char path[256];
	enum apikeys_err err;
	char why[APIKEYS_WHY_MAX + 256];
	struct apikeys *k;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/keys", dir);
	k = apikeys_load(path, &err, why, sizeof(why));
	assert_null(k);
	assert_int_equal(err, APIKEYS_IO);
	assert_non_null(strstr(why, path));
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("# test\nalice client " H_TEST "\n", f);
	fclose(f);
	k = apikeys_load(path, &err, why, sizeof(why));
	assert_non_null(k);
	assert_int_equal(apikeys_count(k), 1);
	apikeys_free(k);
	/* a directory is not a keys file */
	k = apikeys_load(dir, &err, why, sizeof(why));
	assert_null(k);
	assert_int_equal(err, APIKEYS_IO);
	unlink(path);
	rmdir(dir);
}

static void test_names(void **state)
{
	(void)state;
	assert_int_equal(apikeys_role_parse("client"), APIKEYS_ROLE_CLIENT);
	assert_int_equal(apikeys_role_parse("admin"), APIKEYS_ROLE_ADMIN);
	assert_int_equal(apikeys_role_parse(""), 0);
	assert_string_equal(apikeys_role_name(APIKEYS_ROLE_ADMIN), "admin");
	assert_string_equal(apikeys_role_name(APIKEYS_ROLE_CLIENT), "client");
	assert_false(apikeys_client_valid(""));
	assert_true(apikeys_client_valid("a"));
	for (int e = APIKEYS_OK; e <= APIKEYS_RANDOM; e++)
		assert_string_not_equal(apikeys_strerror((enum apikeys_err)e), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_files),  cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_lookup), cmocka_unit_test(test_equal),
	    cmocka_unit_test(test_mint),   cmocka_unit_test(test_load),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
