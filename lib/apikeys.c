/*
 * apikeys: the keys file and the key check (see apikeys.h).
 *
 * The parser is one pass over the text, a line at a time, with every bound
 * fixed up front (line length, entry count, file size); a problem stops it
 * and names the line. Duplicates are found after the pass by sorting a copy
 * of the entries, by hash and then by client, so a file of
 * APIKEYS_ENTRIES_MAX lines costs n log n, not n^2.
 *
 * The comparison is OpenSSL's CRYPTO_memcmp, which touches every byte
 * whatever it finds; the lookup loop runs over every entry and only records
 * the match, so its length depends on the number of keys only.
 */
#include "apikeys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "alloc.h"
#include "hex.h"

struct entry {
	unsigned char hash[APIKEYS_HASH_LEN];
	char client[APIKEYS_CLIENT_MAX + 1];
	enum apikeys_role role;
	size_t line; /* 1-based, for messages */
};

struct apikeys {
	size_t n;
	struct entry *e;
};

const char *apikeys_strerror(enum apikeys_err err)
{
	switch (err) {
	case APIKEYS_OK:
		return "ok";
	case APIKEYS_IO:
		return "cannot read the file";
	case APIKEYS_TOO_LARGE:
		return "file too large";
	case APIKEYS_LINE_TOO_LONG:
		return "line too long";
	case APIKEYS_FIELDS:
		return "expected three fields: <client> <role> <hex sha256 of the key>";
	case APIKEYS_BAD_CLIENT:
		return "client name must be 1..48 of A-Z a-z 0-9 . _ -, starting with a letter or "
		       "digit";
	case APIKEYS_BAD_ROLE:
		return "role must be client or admin";
	case APIKEYS_BAD_HASH:
		return "key hash must be 64 hex digits (sha256 of the key)";
	case APIKEYS_DUP_HASH:
		return "the same key hash appears twice";
	case APIKEYS_ROLE_CONFLICT:
		return "one client with two roles";
	case APIKEYS_TOO_MANY:
		return "too many keys";
	case APIKEYS_NUL:
		return "NUL byte in the file";
	case APIKEYS_NOMEM:
		return "out of memory";
	case APIKEYS_RANDOM:
		return "no random bytes from the kernel";
	}
	return "unknown error";
}

const char *apikeys_role_name(enum apikeys_role role)
{
	return role == APIKEYS_ROLE_ADMIN ? "admin" : "client";
}

enum apikeys_role apikeys_role_parse(const char *name)
{
	if (strcmp(name, "client") == 0)
		return APIKEYS_ROLE_CLIENT;
	if (strcmp(name, "admin") == 0)
		return APIKEYS_ROLE_ADMIN;
	return 0;
}

static bool alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool apikeys_client_valid(const char *name)
{
	size_t i;

	if (!alnum(name[0]))
		return false;
	for (i = 0; name[i] != '\0'; i++) {
		if (i >= APIKEYS_CLIENT_MAX)
			return false;
		if (!alnum(name[i]) && name[i] != '.' && name[i] != '_' && name[i] != '-')
			return false;
	}
	return true;
}

static bool parse_hash(const char *s, unsigned char out[APIKEYS_HASH_LEN])
{
	size_t i;

	if (strlen(s) != APIKEYS_HEX_LEN)
		return false;
	for (i = 0; i < APIKEYS_HASH_LEN; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Splits line (NUL-terminated, writable) into at most 4 fields in place;
 * returns the count (4 meaning "more than three"). */
static int split(char *line, char *field[4])
{
	int n = 0;
	char *p = line;

	while (*p != '\0' && n < 4) {
		while (blank(*p))
			p++;
		if (*p == '\0')
			break;
		field[n++] = p;
		while (*p != '\0' && !blank(*p))
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	return n;
}

/* Parses one line into e; APIKEYS_OK with *used false for a comment or a
 * blank line. */
static enum apikeys_err parse_line(char *line, struct entry *e, bool *used)
{
	char *field[4];
	char *p = line;
	int n;

	*used = false;
	while (blank(*p))
		p++;
	if (*p == '\0' || *p == '#')
		return APIKEYS_OK;
	n = split(p, field);
	if (n != 3)
		return APIKEYS_FIELDS;
	if (!apikeys_client_valid(field[0]))
		return APIKEYS_BAD_CLIENT;
	e->role = apikeys_role_parse(field[1]);
	if (e->role == 0)
		return APIKEYS_BAD_ROLE;
	if (!parse_hash(field[2], e->hash))
		return APIKEYS_BAD_HASH;
	snprintf(e->client, sizeof(e->client), "%s", field[0]);
	*used = true;
	return APIKEYS_OK;
}

static int by_hash(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = memcmp(x->hash, y->hash, APIKEYS_HASH_LEN);

	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

static int by_client(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->client, y->client);

	return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* Finds a repeated hash or a client with two roles; *line is the later of
 * the two lines. */
static enum apikeys_err find_duplicates(const struct apikeys *k, size_t *line)
{
	struct entry *copy;
	enum apikeys_err err = APIKEYS_OK;
	size_t i;

	if (k->n < 2)
		return APIKEYS_OK;
	copy = cz_malloc(k->n * sizeof(*copy));
	if (copy == NULL)
		return APIKEYS_NOMEM;
	memcpy(copy, k->e, k->n * sizeof(*copy));
	qsort(copy, k->n, sizeof(*copy), by_hash);
	for (i = 1; i < k->n && err == APIKEYS_OK; i++) {
		if (memcmp(copy[i - 1].hash, copy[i].hash, APIKEYS_HASH_LEN) == 0) {
			err = APIKEYS_DUP_HASH;
			*line = copy[i].line;
		}
	}
	if (err == APIKEYS_OK) {
		qsort(copy, k->n, sizeof(*copy), by_client);
		for (i = 1; i < k->n && err == APIKEYS_OK; i++) {
			if (strcmp(copy[i - 1].client, copy[i].client) == 0 &&
			    copy[i - 1].role != copy[i].role) {
				err = APIKEYS_ROLE_CONFLICT;
				*line = copy[i].line;
			}
		}
	}
	cz_free(copy);
	return err;
}

struct apikeys *apikeys_parse(const char *text, size_t len, enum apikeys_err *err, char *why,
                              size_t whylen)
{
	struct apikeys *k = cz_calloc(1, sizeof(*k));
	char line[APIKEYS_LINE_MAX + 1];
	size_t pos = 0, lineno = 0, cap = 0;
	enum apikeys_err rc = APIKEYS_OK;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (k == NULL) {
		rc = APIKEYS_NOMEM;
		goto fail;
	}
	if (len > APIKEYS_FILE_MAX) {
		rc = APIKEYS_TOO_LARGE;
		goto fail;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		struct entry e;
		bool used;

		lineno++;
		if (n > 0 && text[pos + n - 1] == '\r')
			n--; /* a file edited on Windows */
		if (n > APIKEYS_LINE_MAX) {
			rc = APIKEYS_LINE_TOO_LONG;
			goto fail;
		}
		if (memchr(text + pos, '\0', n) != NULL) {
			rc = APIKEYS_NUL;
			goto fail;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += nl != NULL ? (size_t)(nl - (text + pos)) + 1 : len - pos;
		memset(&e, 0, sizeof(e));
		rc = parse_line(line, &e, &used);
		if (rc != APIKEYS_OK)
			goto fail;
		if (!used)
			continue;
		if (k->n == APIKEYS_ENTRIES_MAX) {
			rc = APIKEYS_TOO_MANY;
			goto fail;
		}
		if (!cz_grow(&k->e, &cap, k->n, sizeof(*k->e))) {
			rc = APIKEYS_NOMEM;
			goto fail;
		}
		e.line = lineno;
		k->e[k->n++] = e;
	}
	rc = find_duplicates(k, &lineno);
	if (rc != APIKEYS_OK)
		goto fail;
	*err = APIKEYS_OK;
	return k;
fail:
	*err = rc;
	if (why != NULL && whylen > 0) {
		if (lineno > 0 && rc != APIKEYS_NOMEM && rc != APIKEYS_TOO_LARGE)
			snprintf(why, whylen, "line %zu: %s", lineno, apikeys_strerror(rc));
		else
			snprintf(why, whylen, "%s", apikeys_strerror(rc));
	}
	apikeys_free(k);
	return NULL;
}

struct apikeys *apikeys_load(const char *path, enum apikeys_err *err, char *why, size_t whylen)
{
	struct apikeys *k = NULL;
	struct stat st;
	char *text = NULL;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	*err = APIKEYS_IO;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (why != NULL)
			snprintf(why, whylen, "%s: %s", path,
			         fd < 0 ? strerror(errno) : "not a regular file");
		goto out;
	}
	if (st.st_size > APIKEYS_FILE_MAX) {
		*err = APIKEYS_TOO_LARGE;
		if (why != NULL)
			snprintf(why, whylen, "%s: %s", path, apikeys_strerror(*err));
		goto out;
	}
	/* one byte more than the size, to see a file that grew meanwhile */
	text = cz_malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		*err = APIKEYS_NOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size + 1) {
		ssize_t r = read(fd, text + got, (size_t)st.st_size + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			if (why != NULL)
				snprintf(why, whylen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > (size_t)st.st_size) {
		if (why != NULL)
			snprintf(why, whylen, "%s: changed while being read", path);
		goto out;
	}
	k = apikeys_parse(text, got, err, why, whylen);
out:
	if (fd >= 0)
		close(fd);
	cz_free(text);
	return k;
}

void apikeys_free(struct apikeys *k)
{
	if (k == NULL)
		return;
	if (k->e != NULL)
		OPENSSL_cleanse(k->e, k->n * sizeof(*k->e));
	cz_free(k->e);
	cz_free(k);
}

size_t apikeys_count(const struct apikeys *k)
{
	return k != NULL ? k->n : 0;
}

bool apikeys_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

bool apikeys_lookup(const struct apikeys *k, const char *key, size_t keylen,
                    char client[APIKEYS_CLIENT_MAX + 1], enum apikeys_role *role)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	const struct entry *found = NULL;
	size_t i;

	if (k == NULL || key == NULL || keylen == 0 || keylen > APIKEYS_TOKEN_MAX)
		return false;
	if (EVP_Digest(key, keylen, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != APIKEYS_HASH_LEN)
		return false;
	for (i = 0; i < k->n; i++) {
		bool same = apikeys_equal(k->e[i].hash, md, APIKEYS_HASH_LEN);

		/* no break: every entry costs the same, match or not */
		if (same && found == NULL)
			found = &k->e[i];
	}
	OPENSSL_cleanse(md, sizeof(md));
	if (found == NULL)
		return false;
	snprintf(client, APIKEYS_CLIENT_MAX + 1, "%s", found->client);
	*role = found->role;
	return true;
}

enum apikeys_err apikeys_mint(const char *client, const char *role, char *key, size_t keylen,
                              char *line, size_t linelen)
{
	unsigned char raw[APIKEYS_HASH_LEN];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[APIKEYS_HEX_LEN + 1];
	size_t got = 0;
	enum apikeys_err rc = APIKEYS_OK;

	if (client == NULL || !apikeys_client_valid(client))
		return APIKEYS_BAD_CLIENT;
	if (role == NULL || apikeys_role_parse(role) == 0)
		return APIKEYS_BAD_ROLE;
	if (keylen < APIKEYS_KEY_LEN + 1 || linelen < APIKEYS_LINE_MAX + 1)
		return APIKEYS_NOMEM;
	while (got < sizeof(raw)) {
		ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = APIKEYS_RANDOM;
			goto out;
		}
		got += (size_t)r;
	}
	memcpy(key, "ck_", 3);
	to_hex(raw, sizeof(raw), key + 3);
	if (EVP_Digest(key, APIKEYS_KEY_LEN, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != APIKEYS_HASH_LEN) {
		rc = APIKEYS_NOMEM;
		goto out;
	}
	to_hex(md, APIKEYS_HASH_LEN, hex);
	snprintf(line, linelen, "%s %s %s", client, role, hex);
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	if (rc != APIKEYS_OK)
		key[0] = line[0] = '\0';
	return rc;
}
