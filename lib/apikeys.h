/*
 * apikeys: the API keys file (CONSUMA_API_KEYS_FILE) and the check of a
 * presented key against it.
 *
 * One line per key, fields separated by spaces or tabs:
 *
 *   <client> <role> <hex sha256 of the key>
 *
 * client: 1..APIKEYS_CLIENT_MAX of [A-Za-z0-9._-], starting with a letter
 * or digit; role: "client" or "admin"; the hash: 64 hex digits. Blank lines
 * and lines whose first non-blank character is '#' are ignored. A client may
 * have several keys (to rotate its key without a gap), all with one role;
 * the same hash twice is refused (it could not say whose key it is).
 *
 * Only hashes are kept: a leaked file gives no key away. A lookup hashes
 * the presented key and compares it with every entry in constant time
 * (no early exit), so neither the answer's time nor its content tells which
 * entries exist. A set is read-only once made: thread safe.
 */
#ifndef CONSUMA_APIKEYS_H
#define CONSUMA_APIKEYS_H

#include <stdbool.h>
#include <stddef.h>

#define APIKEYS_CLIENT_MAX  48      /* bytes of a client name */
#define APIKEYS_LINE_MAX    512     /* bytes of one line, newline excluded */
#define APIKEYS_ENTRIES_MAX 10000   /* keys in one file */
#define APIKEYS_FILE_MAX    8388608 /* bytes of the whole file */
#define APIKEYS_TOKEN_MAX   256     /* bytes of a presented key */
#define APIKEYS_HASH_LEN    32      /* SHA-256 */
#define APIKEYS_HEX_LEN     (APIKEYS_HASH_LEN * 2)
/* a minted key: "ck_" + 64 hex digits (32 random bytes) */
#define APIKEYS_KEY_LEN (3 + APIKEYS_HEX_LEN)
#define APIKEYS_WHY_MAX 256

enum apikeys_role {
	APIKEYS_ROLE_CLIENT = 1, /* sees and owns its own records */
	APIKEYS_ROLE_ADMIN,      /* sees every record; may call admin-only routes */
};

enum apikeys_err {
	APIKEYS_OK = 0,
	APIKEYS_IO,            /* the file cannot be opened or read */
	APIKEYS_TOO_LARGE,     /* the file is over APIKEYS_FILE_MAX bytes */
	APIKEYS_LINE_TOO_LONG, /* a line is over APIKEYS_LINE_MAX bytes */
	APIKEYS_FIELDS,        /* a line does not have exactly three fields */
	APIKEYS_BAD_CLIENT,    /* the client name breaks the rules above */
	APIKEYS_BAD_ROLE,      /* the role is not client or admin */
	APIKEYS_BAD_HASH,      /* the hash is not 64 hex digits */
	APIKEYS_DUP_HASH,      /* the same hash on two lines */
	APIKEYS_ROLE_CONFLICT, /* one client with two roles */
	APIKEYS_TOO_MANY,      /* more than APIKEYS_ENTRIES_MAX keys */
	APIKEYS_NUL,           /* a NUL byte in the file */
	APIKEYS_NOMEM,
	APIKEYS_RANDOM, /* no random bytes for a new key */
};

struct apikeys;

const char *apikeys_strerror(enum apikeys_err err);
/* "client" or "admin". */
const char *apikeys_role_name(enum apikeys_role role);
/* Parses a role name; 0 when it is neither. */
enum apikeys_role apikeys_role_parse(const char *name);
/* True when name is a valid client name. */
bool apikeys_client_valid(const char *name);

/* Parses the text of a keys file (len bytes, need not be NUL-terminated).
 * Returns a new set (apikeys_free it), or NULL with *err set and, when why
 * is not NULL, "line N: <what>" written into it. */
struct apikeys *apikeys_parse(const char *text, size_t len, enum apikeys_err *err, char *why,
                              size_t whylen);
/* Reads and parses the file at path, as apikeys_parse. */
struct apikeys *apikeys_load(const char *path, enum apikeys_err *err, char *why, size_t whylen);
/* apikeys_free(NULL) is a no-op. */
void apikeys_free(struct apikeys *k);
/* The number of keys in the set. */
size_t apikeys_count(const struct apikeys *k);

/* Looks the presented key (keylen bytes) up: true when its SHA-256 is in
 * the set, with the client's name copied into client (APIKEYS_CLIENT_MAX + 1
 * bytes) and its role into *role. Every entry is compared, in constant
 * time, whether or not one matched earlier. */
bool apikeys_lookup(const struct apikeys *k, const char *key, size_t keylen,
                    char client[APIKEYS_CLIENT_MAX + 1], enum apikeys_role *role);

/* True when the n bytes at a and b are equal; the time taken depends on n
 * only, never on where they differ. */
bool apikeys_equal(const void *a, const void *b, size_t n);

/* Makes a new random key for client with role: the key into key
 * (APIKEYS_KEY_LEN + 1 bytes) and the line for the keys file into line
 * (at least APIKEYS_LINE_MAX + 1 bytes, no newline). APIKEYS_BAD_CLIENT or
 * APIKEYS_BAD_ROLE for bad arguments, APIKEYS_RANDOM when the kernel gives
 * no random bytes. */
enum apikeys_err apikeys_mint(const char *client, const char *role, char *key, size_t keylen,
                              char *line, size_t linelen);

#endif
