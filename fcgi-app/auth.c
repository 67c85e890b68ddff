/*
 * auth: API keys on the request side (see auth.h).
 *
 * Reload. A process keeps the set it last read and a snapshot of the
 * file's stat (device, inode, size, mtime, ctime) taken before that read:
 * when the file changes after the stat, the next look sees a difference
 * and reads it again, so a change is never missed for longer than a
 * second. A set that fails to load is not installed; the snapshot is still
 * taken, so the same bad file is reported once, not every second, and the
 * fix (a new stat) is read at once.
 *
 * Threads. The set is read under a read lock (a lookup is one SHA-256 and
 * a compare per key, microseconds) and swapped under the write lock; the
 * file is read and parsed before the swap, with no lock but reload_mu,
 * which makes one thread at a time look at the file (the others skip the
 * look: trylock). The once-a-second gate is an atomic, so the common path
 * takes no lock at all beyond the read lock of the lookup.
 *
 * What a refusal says. 401 for a missing header (WWW-Authenticate: Bearer
 * realm) and for a key that is malformed, unknown or revoked (the same
 * answer for all three, with error="invalid_token", RFC 6750); 403 with
 * error="insufficient_scope" for a client key on an admin route. None of
 * them names a client or says whether a key ever existed.
 */
#include "auth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <openssl/crypto.h>

#include "alloc.h"
#include "apikeys.h"
#include "ids.h"
#include "log.h"
#include "why.h"

#define CHECK_EVERY_MS 1000
#define REALM          "consuma"

struct auth {
	char path[CONFIG_PATH_MAX]; /* "" when open */
	bool keyed;                 /* a keys file is configured (fixed at open) */
	pthread_rwlock_t keys_lock; /* read: a lookup; write: the swap */
	struct apikeys *keys;       /* the last good set; NULL when open */
	pthread_mutex_t reload_mu;  /* one thread looks at the file at a time */
	struct stat seen;           /* the file when it was last read (reload_mu) */
	bool seen_ok;               /* seen is valid (reload_mu) */
	bool stat_warned;           /* logged that the file cannot be stat'ed (reload_mu) */
	atomic_llong checked_ms;    /* last look (monotonic) */
};

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Reads the file into a new set; NULL with why filled. */
static struct apikeys *read_keys(struct auth *a, enum apikeys_err *err, char *why, size_t whylen)
{
	a->seen_ok = stat(a->path, &a->seen) == 0;
	return apikeys_load(a->path, err, why, whylen);
}

struct auth *auth_open(const struct config *cfg, enum apikeys_err *err, char *why, size_t whylen)
{
	struct auth *a = cz_calloc(1, sizeof(*a));
	char reason[APIKEYS_WHY_MAX + CONFIG_PATH_MAX];

	*err = APIKEYS_OK;
	if (a == NULL) {
		*err = APIKEYS_NOMEM;
		why_set(why, whylen, "out of memory");
		return NULL;
	}
	pthread_rwlock_init(&a->keys_lock, NULL);
	pthread_mutex_init(&a->reload_mu, NULL);
	atomic_store(&a->checked_ms, ids_mono_ms());
	if (cfg->api_keys_file[0] == '\0') {
		log_event(L_WARN, "auth.open",
		          "why=\"CONSUMA_API_KEYS_FILE is not set\" effect=\"no API keys: anyone "
		          "who reaches the service reads and writes every record\"");
		return a;
	}
	snprintf(a->path, sizeof(a->path), "%s", cfg->api_keys_file);
	a->keys = read_keys(a, err, reason, sizeof(reason));
	if (a->keys == NULL) {
		why_set(why, whylen, "CONSUMA_API_KEYS_FILE: %s", reason);
		auth_close(a);
		return NULL;
	}
	a->keyed = true;
	log_event(L_INFO, "auth.keys", "file=%s keys=%zu", log_q(a->path), apikeys_count(a->keys));
	return a;
}

void auth_close(struct auth *a)
{
	if (a == NULL)
		return;
	apikeys_free(a->keys);
	pthread_rwlock_destroy(&a->keys_lock);
	pthread_mutex_destroy(&a->reload_mu);
	cz_free(a);
}

const char *auth_mode(const struct auth *a)
{
	return a != NULL && a->keyed ? "keys" : "open";
}

/* Reads the file and swaps the set in; called with reload_mu held, which
 * makes this thread the only writer of a->keys (so reading it here needs
 * no read lock). */
static void reload(struct auth *a, const char *cause)
{
	char why[APIKEYS_WHY_MAX + CONFIG_PATH_MAX];
	enum apikeys_err err;
	struct apikeys *k = read_keys(a, &err, why, sizeof(why));
	struct apikeys *old;

	if (k == NULL) {
		log_event(L_WARN, "auth.reload_failed", "file=%s cause=%s why=%s keeping=%zu",
		          log_q(a->path), cause, log_q(why), apikeys_count(a->keys));
		return;
	}
	log_event(L_INFO, "auth.reloaded", "file=%s cause=%s keys=%zu was=%zu", log_q(a->path),
	          cause, apikeys_count(k), apikeys_count(a->keys));
	pthread_rwlock_wrlock(&a->keys_lock);
	old = a->keys;
	a->keys = k;
	pthread_rwlock_unlock(&a->keys_lock);
	apikeys_free(old);
}

void auth_sighup(struct auth *a)
{
	if (a == NULL || !a->keyed)
		return;
	pthread_mutex_lock(&a->reload_mu);
	atomic_store(&a->checked_ms, ids_mono_ms());
	reload(a, "sighup");
	pthread_mutex_unlock(&a->reload_mu);
}

void auth_refresh(struct auth *a)
{
	struct stat now_st;
	int64_t now;

	if (a == NULL || !a->keyed)
		return;
	now = ids_mono_ms();
	if (now - atomic_load(&a->checked_ms) < CHECK_EVERY_MS)
		return;
	if (pthread_mutex_trylock(&a->reload_mu) != 0)
		return; /* another thread is looking */
	if (now - atomic_load(&a->checked_ms) < CHECK_EVERY_MS)
		goto out; /* it just looked */
	atomic_store(&a->checked_ms, now);
	if (stat(a->path, &now_st) != 0) {
		if (!a->stat_warned)
			log_event(L_WARN, "auth.file_missing", "file=%s keeping=%zu",
			          log_q(a->path), apikeys_count(a->keys));
		a->stat_warned = true;
		goto out;
	}
	a->stat_warned = false;
	if (!a->seen_ok || !same_file(&now_st, &a->seen))
		reload(a, "changed");
out:
	pthread_mutex_unlock(&a->reload_mu);
}

/* The token of "Bearer <token>" (scheme case-insensitive, RFC 6750's
 * token68 characters); NULL when the header is not that. */
static const char *bearer_token(const char *h, size_t *len)
{
	size_t n;

	if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
		return NULL;
	h += 6;
	while (*h == ' ' || *h == '\t')
		h++;
	n = strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
	while (h[n] == '=')
		n++;
	if (n == 0 || n > APIKEYS_TOKEN_MAX || h[n + strspn(h + n, " \t")] != '\0')
		return NULL;
	*len = n;
	return h;
}

bool auth_check(struct auth *a, struct http_exchange *x, enum auth_need need)
{
	char client[APIKEYS_CLIENT_MAX + 1];
	enum apikeys_role role = APIKEYS_ROLE_CLIENT;
	const char *header;
	const char *token;
	size_t len = 0;
	bool found = false;

	x->owner[0] = '\0';
	x->admin = false;
	if (need == AUTH_NONE || a == NULL || !a->keyed)
		return true;
	header = http_param(x, "HTTP_AUTHORIZATION");
	if (header == NULL || header[0] == '\0') {
		http_header(x, "WWW-Authenticate", "Bearer realm=\"%s\"", REALM);
		http_error(x, 401,
		           "authorization: an API key is required (Authorization: Bearer "
		           "<key>)");
		return false;
	}
	token = bearer_token(header, &len);
	if (token != NULL) {
		pthread_rwlock_rdlock(&a->keys_lock);
		found = apikeys_lookup(a->keys, token, len, client, &role);
		pthread_rwlock_unlock(&a->keys_lock);
	}
	if (!found) {
		http_header(x, "WWW-Authenticate", "Bearer realm=\"%s\", error=\"invalid_token\"",
		            REALM);
		http_error(x, 401, "authorization: unknown, revoked or malformed API key");
		return false;
	}
	snprintf(x->owner, sizeof(x->owner), "%s", client);
	x->admin = role == APIKEYS_ROLE_ADMIN;
	OPENSSL_cleanse(client, sizeof(client));
	if (need == AUTH_ADMIN && !x->admin) {
		http_header(x, "WWW-Authenticate",
		            "Bearer realm=\"%s\", error=\"insufficient_scope\"", REALM);
		http_error(x, 403, "authorization: this route needs an admin key");
		return false;
	}
	return true;
}

const char *auth_owner(const struct http_exchange *x)
{
	return x->owner[0] != '\0' ? x->owner : NULL;
}

const char *auth_scope(const struct http_exchange *x)
{
	return x->admin ? NULL : auth_owner(x);
}

int auth_mint_key(const char *client, const char *role)
{
	char key[APIKEYS_KEY_LEN + 1];
	char line[APIKEYS_LINE_MAX + 1];
	enum apikeys_err err = apikeys_mint(client, role, key, sizeof(key), line, sizeof(line));

	if (err != APIKEYS_OK) {
		fprintf(stderr, "consuma-fcgi: --mint-key: %s\n", apikeys_strerror(err));
		return err == APIKEYS_RANDOM ? 1 : 2;
	}
	printf("%s\n%s\n", key, line);
	fflush(stdout);
	fprintf(stderr,
	        "consuma-fcgi: line 1 is the key: give it to %s, it is not stored anywhere.\n"
	        "consuma-fcgi: line 2 goes into CONSUMA_API_KEYS_FILE (it holds the key's "
	        "sha256 only); running processes pick it up within a second.\n",
	        client);
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}
