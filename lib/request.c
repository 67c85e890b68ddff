/*
 * request: the JSON body of POST /sync and POST /async, parsed at the
 * boundary through one table (fields[] below: name, type, presence per
 * mode, bounds). Input is hostile, so the body passes four gates in order:
 *
 *   1. size and shape: at most cfg->max_body_bytes (413), not empty, a JSON
 *      object (the first non-blank byte is '{');
 *   2. a lexical scan of the raw bytes (scan_body) for what json-c 0.16
 *      tolerates even with JSON_TOKENER_STRICT but RFC 8259 forbids: NUL
 *      bytes, unescaped control characters in strings, bytes outside
 *      strings that no JSON token uses (single quotes, comments, NaN,
 *      Infinity, a BOM), \uD800-\uDFFF escapes that do not form a
 *      pair, which json-c would silently turn into U+FFFD and so hash
 *      something the client never sent, and \u0000 in an object key, which
 *      json-c cuts at the NUL (so "input_data\u0000x" would be input_data);
 *   3. json-c in strict mode with a nesting limit (REQUEST_MAX_DEPTH, so a
 *      10,000-deep body is an error, not a deep recursion), the whole body
 *      consumed up to trailing whitespace.
 *   4. after the fields (so that a bad input_data is named as such): the
 *      whole body is UTF-8 (RFC 8259 section 8.1), unknown keys and values
 *      included, which json-c does not check.
 *
 * Then each field of the table is checked on the parsed object, and only
 * when every field is good are the strings copied out.
 *
 * The plain path: most bodies are one flat object of strings without
 * escapes and of integers ({"input_data":"hello","iterations":1,...}).
 * parse_plain reads exactly that form and nothing else, and hands the
 * fields to the same checks and to gate 4; gates 2 and 3 hold for such a
 * body by its form (no escapes, no control bytes, only JSON tokens), so
 * they are skipped. Any other body (an escape, a float, a nested value,
 * true/false/null, a known key twice, 19 digits, a byte out of place) goes
 * the whole way above, so every refusal and its message comes from there.
 * The two paths give the same answer for every body: test_request and
 * fuzz_request compare them (request_test.h). The plain path does in one
 * pass what json-c's tokener does with an object per value: ~17% of the
 * request threads' instructions (tools/bench.sh fcgi; README, Benchmarks).
 *
 * Decisions a client can observe:
 *   - a duplicate key: the last one wins (json-c's behaviour, as in
 *     JSON.parse and Python's json); the earlier value is not validated;
 *   - unknown fields are ignored, but the whole body must still be strict
 *     JSON (gate 2 applies to them too); callback_url is ignored on /sync;
 *   - json-c 0.16 turns integers beyond int64 into a saturated int (2^63
 *     reads back as INT64_MAX, with no errno): such values are out of
 *     range, since the saturation points are outside every allowed range;
 *   - "-0" is the integer 0 (out of range); "1e3", "1.0" and "1." are
 *     doubles and refused, as are strings, booleans and null;
 *   - input_data counts Unicode scalar values (code points), not bytes:
 *     10000 x "é" is 20000 bytes and passes.
 */
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "alloc.h"
#include "request_test.h"
#include "why.h"

/* The body is one object of scalars; unknown fields may nest a little. */
#define REQUEST_MAX_DEPTH 32

enum field_type {
	FT_TEXT, /* string, bounds in code points */
	FT_URL,  /* string, bounds in bytes */
	FT_INT,  /* JSON integer */
};

enum presence { IGNORED, OPTIONAL, REQUIRED };

enum field_id { F_INPUT_DATA, F_ITERATIONS, F_CALLBACK_URL, F_COUNT };

struct field {
	const char *name;
	enum field_type type;
	enum presence presence[2]; /* indexed by enum request_mode */
	int64_t min;
	int64_t max;                                   /* when cfg_max is NULL */
	int64_t (*cfg_max)(const struct config *);     /* the bound lives in config */
	int64_t (*cfg_default)(const struct config *); /* for OPTIONAL and absent */
};

static int64_t max_iterations(const struct config *cfg)
{
	return cfg->max_iterations;
}

static int64_t default_iterations(const struct config *cfg)
{
	return cfg->default_iterations;
}

static const struct field fields[F_COUNT] = {
    [F_INPUT_DATA] =
        {"input_data", FT_TEXT, {REQUIRED, REQUIRED}, 1, REQUEST_INPUT_MAX_CHARS, NULL, NULL},
    [F_ITERATIONS] =
        {"iterations", FT_INT, {OPTIONAL, OPTIONAL}, 1, 0, max_iterations, default_iterations},
    [F_CALLBACK_URL] =
        {"callback_url", FT_URL, {IGNORED, REQUIRED}, 1, REQUEST_URL_MAX_BYTES, NULL, NULL},
};

/* A field as the body gave it, from either parser: whether it was there,
 * its JSON type, and the value (strings point into the body or into the
 * parsed object). */
struct found {
	bool present;
	enum json_type type;
	const char *s;
	size_t bytes; /* counts embedded NULs */
	int64_t i;    /* json-c's int64 (saturated past the range) */
};

/* A field's value after its checks (strings point where found's do). */
struct value {
	const char *s;
	size_t bytes;
	size_t chars;
	int64_t i;
};

const char *request_strerror(enum request_err err)
{
	switch (err) {
	case REQUEST_OK:
		return "ok";
	case REQUEST_TOO_LARGE:
		return "request body too large";
	case REQUEST_INVALID:
		return "invalid request body";
	case REQUEST_NOMEM:
		return "out of memory";
	}
	return "unknown request error";
}

static enum request_err fail(struct request_error *err, enum request_err rc, const char *field,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Fills err with "<field>: <fmt...>" and returns rc. */
static enum request_err fail(struct request_error *err, enum request_err rc, const char *field,
                             const char *fmt, ...)
{
	va_list ap;

	switch (rc) {
	case REQUEST_TOO_LARGE:
		err->http_status = 413;
		break;
	case REQUEST_NOMEM:
		err->http_status = 500;
		break;
	default:
		err->http_status = 422;
		break;
	}
	snprintf(err->field, sizeof(err->field), "%s", field);
	why_set(err->detail, sizeof(err->detail), "%s: ", field);
	va_start(ap, fmt);
	why_vappend(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
	return rc;
}

/* Returns the offset of the first byte of s[0..n) that breaks UTF-8 (RFC
 * 3629: no overlong forms, no surrogates, nothing above U+10FFFF, no
 * truncated sequence) or is NUL; n when all is well. *chars gets the
 * number of code points before that offset. */
static size_t utf8_scan(const unsigned char *s, size_t n, size_t *chars)
{
	size_t i = 0;
	size_t count = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t need;
		unsigned char lo = 0x80;
		unsigned char hi = 0xbf;

		if (c == 0)
			break;
		if (c < 0x80) {
			i++;
			count++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0; /* below is overlong */
			else if (c == 0xed)
				hi = 0x9f; /* above is a surrogate */
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90; /* below is overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above is past U+10FFFF */
		} else {
			break; /* 0x80..0xc1 (continuation, overlong lead), 0xf5..0xff */
		}
		if (n - i <= need)
			break; /* truncated */
		if (s[i + 1] < lo || s[i + 1] > hi)
			break;
		size_t k;
		for (k = 2; k <= need; k++) {
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				break;
		}
		if (k <= need)
			break;
		i += need + 1;
		count++;
	}
	*chars = count;
	return i;
}

bool request_utf8_valid(const char *s, size_t n, size_t *chars)
{
	size_t count = 0;
	bool ok;

	if (s == NULL)
		ok = n == 0;
	else
		ok = utf8_scan((const unsigned char *)s, n, &count) == n;
	if (ok && chars != NULL)
		*chars = count;
	return ok;
}

static bool json_blank(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_blank(const char *b, size_t len, size_t i)
{
	while (i < len && json_blank((unsigned char)b[i]))
		i++;
	return i;
}

/* Bytes that may appear outside strings in JSON: structure, blanks, the
 * characters of numbers and the letters of true, false and null. */
static bool json_token_byte(unsigned char c)
{
	if (json_blank(c) || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("{}[]:,-+.eEtrufalsn", c) != NULL;
}

static int hex4(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;

	if (n < 4)
		return -1;
	for (size_t i = 0; i < 4; i++) {
		char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Whether the string that closed just before body[i] is an object key.
 * json-c cuts keys at an embedded NUL, so "input_data\u0000x" would
 * otherwise alias input_data. */
static bool key_follows(const char *body, size_t len, size_t i)
{
	i = skip_blank(body, len, i);
	return i < len && body[i] == ':';
}

/* Gate 2 (see the top of the file): one pass over the raw body. */
static enum request_err scan_body(const char *body, size_t len, struct request_error *err)
{
	bool in_string = false;
	bool want_low = false;   /* the last escape was a high surrogate */
	bool nul_escape = false; /* this string holds a \u0000 */
	size_t high_at = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)body[i];
		unsigned u;

		if (c == '\0')
			return fail(err, REQUEST_INVALID, "body",
			            "contains a NUL byte at offset %zu", i);
		if (!in_string) {
			if (c == '"')
				in_string = true;
			else if (!json_token_byte(c))
				return fail(err, REQUEST_INVALID, "body",
				            "malformed JSON: unexpected byte 0x%02x at offset %zu",
				            c, i);
			continue;
		}
		if (c < 0x20)
			return fail(
			    err, REQUEST_INVALID, "body",
			    "malformed JSON: unescaped control character 0x%02x in a string "
			    "at offset %zu",
			    c, i);
		if (want_low && (c != '\\' || i + 1 >= len || body[i + 1] != 'u'))
			goto lone;
		if (c == '"') {
			in_string = false;
			if (nul_escape && key_follows(body, len, i + 1))
				return fail(err, REQUEST_INVALID, "body",
				            "an object key contains \\u0000 (before offset %zu)",
				            i);
			nul_escape = false;
		} else if (c == '\\' && i + 1 < len) {
			if (body[i + 1] != 'u' || hex4(body + i + 2, len - i - 2, &u) != 0) {
				i++; /* a one-character escape, or a bad one json-c refuses */
				continue;
			}
			bool high = u >= 0xd800 && u <= 0xdbff;
			bool low = u >= 0xdc00 && u <= 0xdfff;

			if (low != want_low) {
				if (!want_low)
					high_at = i;
				goto lone;
			}
			want_low = high;
			if (high)
				high_at = i;
			if (u == 0)
				nul_escape = true;
			i += 5;
		}
	}
	return REQUEST_OK;
lone:
	return fail(err, REQUEST_INVALID, "body",
	            "unpaired UTF-16 surrogate escape at offset %zu (not a Unicode character)",
	            high_at);
}

static const char *json_kind(enum json_type type)
{
	switch (type) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number with a fraction or an exponent";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "an unknown type";
}

/* Checks one field of the table, as the body gave it (*in), into *v. */
static enum request_err check_field(const struct field *f, enum request_mode mode,
                                    const struct found *in, const struct config *cfg,
                                    struct value *v, struct request_error *err)
{
	enum presence presence = f->presence[mode];
	int64_t max = f->cfg_max != NULL ? f->cfg_max(cfg) : f->max;

	memset(v, 0, sizeof(*v));
	if (presence == IGNORED)
		return REQUEST_OK;
	if (!in->present) {
		if (presence == REQUIRED)
			return fail(err, REQUEST_INVALID, f->name, "is required%s",
			            f->presence[REQUEST_SYNC] != f->presence[REQUEST_ASYNC]
			                ? " for /async"
			                : "");
		if (f->cfg_default != NULL)
			v->i = f->cfg_default(cfg);
		return REQUEST_OK;
	}

	if (f->type == FT_INT) {
		if (in->type != json_type_int)
			return fail(err, REQUEST_INVALID, f->name, "must be an integer, got %s",
			            json_kind(in->type));
		/* json-c saturates past int64 at INT64_MIN/INT64_MAX, silently */
		v->i = in->i;
		if (v->i == INT64_MAX || v->i == INT64_MIN || v->i < f->min || v->i > max)
			return fail(err, REQUEST_INVALID, f->name, "must be between %lld and %lld",
			            (long long)f->min, (long long)max);
		return REQUEST_OK;
	}

	if (in->type != json_type_string)
		return fail(err, REQUEST_INVALID, f->name, "must be a string, got %s",
		            json_kind(in->type));
	v->s = in->s;
	v->bytes = in->bytes;
	size_t bad = utf8_scan((const unsigned char *)v->s, v->bytes, &v->chars);
	if (bad < v->bytes && v->s[bad] == '\0')
		return fail(err, REQUEST_INVALID, f->name,
		            "must not contain NUL (\\u0000), found at byte %zu", bad);
	if (bad < v->bytes)
		return fail(err, REQUEST_INVALID, f->name, "is not valid UTF-8 at byte %zu", bad);
	if (f->type == FT_TEXT && (v->chars < (size_t)f->min || v->chars > (size_t)max))
		return fail(err, REQUEST_INVALID, f->name, "must be %lld..%lld characters, got %zu",
		            (long long)f->min, (long long)max, v->chars);
	if (f->type == FT_URL && (v->bytes < (size_t)f->min || v->bytes > (size_t)max))
		return fail(err, REQUEST_INVALID, f->name, "must be %lld..%lld bytes, got %zu",
		            (long long)f->min, (long long)max, v->bytes);
	return REQUEST_OK;
}

/* Gate 3: json-c, strict, depth-limited, whole body consumed. */
static enum request_err parse_json(const char *body, size_t len, struct json_object **root,
                                   struct request_error *err)
{
	struct json_tokener *tok = json_tokener_new_ex(REQUEST_MAX_DEPTH);
	enum request_err rc = REQUEST_OK;
	enum json_tokener_error jerr;
	size_t end;

	*root = NULL;
	if (tok == NULL)
		return fail(err, REQUEST_NOMEM, "body", "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	*root = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (jerr == json_tokener_continue) {
		rc = fail(err, REQUEST_INVALID, "body", "truncated JSON (ends inside the object)");
		goto out;
	}
	if (jerr == json_tokener_error_depth) {
		rc = fail(err, REQUEST_INVALID, "body", "JSON nested deeper than %d levels",
		          REQUEST_MAX_DEPTH);
		goto out;
	}
	if (jerr != json_tokener_success || *root == NULL) {
		rc = fail(err, REQUEST_INVALID, "body", "malformed JSON: %s at offset %zu",
		          json_tokener_error_desc(jerr), end);
		goto out;
	}
	end = skip_blank(body, len, end);
	if (end < len) {
		rc = fail(err, REQUEST_INVALID, "body",
		          "malformed JSON: trailing data after the object at offset %zu", end);
		goto out;
	}
	if (!json_object_is_type(*root, json_type_object))
		rc = fail(err, REQUEST_INVALID, "body", "must be a JSON object, got %s",
		          json_kind(json_object_get_type(*root)));
out:
	if (rc != REQUEST_OK) {
		json_object_put(*root);
		*root = NULL;
	}
	json_tokener_free(tok);
	return rc;
}

/* The fields of the parsed object, as check_field takes them. */
static void found_in_object(struct json_object *root, struct found in[F_COUNT])
{
	for (size_t k = 0; k < F_COUNT; k++) {
		struct json_object *o = NULL;

		memset(&in[k], 0, sizeof(in[k]));
		if (!json_object_object_get_ex(root, fields[k].name, &o))
			continue;
		in[k].present = true;
		in[k].type = json_object_get_type(o);
		if (in[k].type == json_type_int)
			in[k].i = json_object_get_int64(o);
		else if (in[k].type == json_type_string) {
			in[k].s = json_object_get_string(o);
			in[k].bytes = (size_t)json_object_get_string_len(o);
		}
	}
}

/* The closing quote of the string that opens at b[i], when the string
 * holds no escape and no control byte; 0 otherwise (the plain path then
 * leaves the body to json-c). */
static size_t plain_string_end(const char *b, size_t len, size_t i)
{
	for (size_t k = i + 1; k < len; k++) {
		unsigned char c = (unsigned char)b[k];

		if (c == '"')
			return k;
		if (c == '\\' || c < 0x20)
			return 0;
	}
	return 0;
}

/* The integer at b[i]: 0 or -?[1-9][0-9]*, at most 18 digits (so it fits
 * int64 and json-c reads the same value), followed by a blank, ',' or '}'.
 * Its end, or 0 when it is anything else. */
static size_t plain_int_end(const char *b, size_t len, size_t i, int64_t *out)
{
	bool neg = b[i] == '-';
	size_t d = neg ? i + 1 : i;
	size_t k = d;
	int64_t v = 0;

	while (k < len && k - d < 18 && b[k] >= '0' && b[k] <= '9')
		v = v * 10 + (b[k++] - '0');
	if (k == d || (b[d] == '0' && (neg || k - d > 1)))
		return 0; /* no digit, -0, or a leading zero */
	if (k < len && !json_blank((unsigned char)b[k]) && b[k] != ',' && b[k] != '}')
		return 0; /* a 19th digit, a fraction, an exponent, a stray byte */
	*out = neg ? -v : v;
	return k;
}

static int field_named(const char *key, size_t n)
{
	for (int k = 0; k < F_COUNT; k++) {
		if (strlen(fields[k].name) == n && memcmp(fields[k].name, key, n) == 0)
			return k;
	}
	return -1;
}

/* The plain path (the top of the file): true when the body, from its '{'
 * at b[i], is one object of plain strings and integers with no known key
 * twice, then nothing but blanks; in[] holds the known fields then. */
static bool parse_plain(const char *b, size_t len, size_t i, struct found in[F_COUNT])
{
	memset(in, 0, sizeof(*in) * F_COUNT);
	i = skip_blank(b, len, i + 1);
	if (i < len && b[i] == '}')
		return skip_blank(b, len, i + 1) == len;
	for (;;) {
		struct found val = {.present = true};
		size_t key_end = i < len && b[i] == '"' ? plain_string_end(b, len, i) : 0;
		size_t key = i + 1;

		if (key_end == 0)
			return false;
		i = skip_blank(b, len, key_end + 1);
		if (i >= len || b[i] != ':')
			return false;
		i = skip_blank(b, len, i + 1);
		if (i >= len)
			return false;
		if (b[i] == '"') {
			size_t end = plain_string_end(b, len, i);
			if (end == 0)
				return false;
			val.type = json_type_string;
			val.s = b + i + 1;
			val.bytes = end - i - 1;
			i = end + 1;
		} else {
			size_t end = plain_int_end(b, len, i, &val.i);
			if (end == 0)
				return false;
			val.type = json_type_int;
			i = end;
		}
		int k = field_named(b + key, key_end - key);
		if (k >= 0) {
			if (in[k].present)
				return false; /* which one wins is json-c's to say */
			in[k] = val;
		}
		i = skip_blank(b, len, i);
		if (i < len && b[i] == '}')
			return skip_blank(b, len, i + 1) == len;
		if (i >= len || b[i] != ',')
			return false;
		i = skip_blank(b, len, i + 1);
	}
}

static enum request_err parse_body(const char *body, size_t len, enum request_mode mode,
                                   const struct config *cfg, bool plain_path,
                                   struct job_request *out, struct request_error *err)
{
	struct json_object *root = NULL;
	struct found in[F_COUNT];
	struct value v[F_COUNT];
	enum request_err rc = REQUEST_OK;
	size_t first = 0;

	if (out == NULL || err == NULL)
		return REQUEST_INVALID;
	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (cfg == NULL || (mode != REQUEST_SYNC && mode != REQUEST_ASYNC) ||
	    (body == NULL && len > 0))
		return fail(err, REQUEST_INVALID, "body", "no request to parse");

	/* gate 1 */
	if (cfg->max_body_bytes >= 0 && len > (uint64_t)cfg->max_body_bytes)
		return fail(err, REQUEST_TOO_LARGE, "body", "larger than %lld bytes",
		            (long long)cfg->max_body_bytes);
	if (len > INT32_MAX) /* json-c takes an int length */
		return fail(err, REQUEST_TOO_LARGE, "body", "larger than %d bytes", INT32_MAX);
	first = skip_blank(body, len, 0);
	if (first == len)
		return fail(err, REQUEST_INVALID, "body", "is empty; expected a JSON object");
	if (body[first] != '{')
		return fail(err, REQUEST_INVALID, "body", "must be a JSON object");

	if (!plain_path || !parse_plain(body, len, first, in)) {
		rc = scan_body(body, len, err);
		if (rc != REQUEST_OK)
			goto out;
		rc = parse_json(body, len, &root, err);
		if (rc != REQUEST_OK)
			goto out;
		found_in_object(root, in);
	}

	for (size_t i = 0; i < F_COUNT; i++) {
		rc = check_field(&fields[i], mode, &in[i], cfg, &v[i], err);
		if (rc != REQUEST_OK)
			goto out;
	}
	/* gate 4: json-c passes any byte through strings, so what the known
	 * fields did not cover (unknown keys and values) is checked here */
	size_t chars = 0;
	size_t bad = utf8_scan((const unsigned char *)body, len, &chars);
	if (bad != len) {
		rc = fail(err, REQUEST_INVALID, "body", "is not valid UTF-8 at offset %zu", bad);
		goto out;
	}

	out->input_data = cz_strndup(v[F_INPUT_DATA].s, v[F_INPUT_DATA].bytes);
	out->input_bytes = v[F_INPUT_DATA].bytes;
	out->input_chars = v[F_INPUT_DATA].chars;
	out->iterations = v[F_ITERATIONS].i;
	if (mode == REQUEST_ASYNC)
		out->callback_url = cz_strndup(v[F_CALLBACK_URL].s, v[F_CALLBACK_URL].bytes);
	if (out->input_data == NULL || (mode == REQUEST_ASYNC && out->callback_url == NULL)) {
		request_free(out);
		rc = fail(err, REQUEST_NOMEM, "body", "out of memory");
	}
out:
	json_object_put(root);
	if (rc != REQUEST_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}

enum request_err request_parse(const char *body, size_t len, enum request_mode mode,
                               const struct config *cfg, struct job_request *out,
                               struct request_error *err)
{
	return parse_body(body, len, mode, cfg, true, out, err);
}

enum request_err request_parse_json_c(const char *body, size_t len, enum request_mode mode,
                                      const struct config *cfg, struct job_request *out,
                                      struct request_error *err)
{
	return parse_body(body, len, mode, cfg, false, out, err);
}

void request_free(struct job_request *r)
{
	if (r == NULL)
		return;
	cz_free(r->input_data);
	cz_free(r->callback_url);
	memset(r, 0, sizeof(*r));
}
