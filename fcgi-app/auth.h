/*
 * auth: access control of consuma-fcgi, the request side of lib/apikeys.
 *
 * With CONSUMA_API_KEYS_FILE set, every route that asks for it needs
 * `Authorization: Bearer <key>` whose SHA-256 is in the file: a missing or
 * wrong key is 401 with WWW-Authenticate: Bearer and a JSON detail; a client
 * key on an admin-only route is 403. The caller's client name and role go
 * into the exchange (x->owner, x->admin): records are owned by the client
 * that created them and reads are scoped to it, an admin sees all.
 *
 * Without a keys file the service runs open (local development): a warning
 * at start-up, every request passes, nothing is scoped, and /healthz says
 * "auth": "open".
 *
 * The file is read again, without a restart, on SIGHUP and when it changes
 * (its inode, size, mtime or ctime; looked at most once a second, at the
 * start of a request). A file that does not parse keeps the last good set
 * and logs why; so does a file that vanished. Replace the file atomically
 * (write a new one, mv it over) so a reader never sees half of it.
 *
 * One struct auth per process, shared by its worker threads: every call is
 * thread safe. Lookups share a read lock on the key set; a reload reads and
 * parses the file outside any lock and holds the write lock only to swap
 * the set in, so a reload never stalls requests for the time of a parse.
 */
#ifndef CONSUMA_FCGI_AUTH_H
#define CONSUMA_FCGI_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include "apikeys.h"
#include "config.h"
#include "http.h"

/* What a route needs (router.c's table). */
enum auth_need {
	AUTH_NONE = 0, /* anyone: /healthz */
	AUTH_KEY,      /* any valid key */
	AUTH_ADMIN,    /* a key with role admin */
};

struct auth;

/* Loads CONSUMA_API_KEYS_FILE (or notes that there is none: open). NULL
 * when the file is set but cannot be read or parsed (a bad configuration,
 * exit 2) or memory ran out (APIKEYS_NOMEM), with *err and why filled.
 * auth_close(NULL) is a no-op. */
struct auth *auth_open(const struct config *cfg, enum apikeys_err *err, char *why, size_t whylen);
void auth_close(struct auth *a);

/* "open" without a keys file, "keys" with one: for /healthz. */
const char *auth_mode(const struct auth *a);

/* Reads the file again now (SIGHUP, taken by main.c's sigwait). Logs what
 * it did; a bad file keeps the set in use. */
void auth_sighup(struct auth *a);

/* Reads the file again when it changed since it was last read (looked at
 * at most once a second, by one thread at a time: the others go on with
 * the set in use). Logs what it did. */
void auth_refresh(struct auth *a);

/* Checks the exchange's Authorization header against need. true: go on
 * (x->owner and x->admin set when a key was given); false: 401 or 403 has
 * been answered. */
bool auth_check(struct auth *a, struct http_exchange *x, enum auth_need need);

/* The owner to record on what the exchange creates: the client's name, or
 * NULL when the service runs open. */
const char *auth_owner(const struct http_exchange *x);
/* The owner filter of the exchange's reads: the client's name, or NULL
 * (everything) for an admin key or when the service runs open. */
const char *auth_scope(const struct http_exchange *x);

/* `consuma-fcgi --mint-key CLIENT ROLE`: prints a new random key and its
 * line for the keys file on stdout (two lines), what to do with them on
 * stderr. Returns the exit code (0, or 2 for a bad CLIENT or ROLE). */
int auth_mint_key(const char *client, const char *role);

#endif
