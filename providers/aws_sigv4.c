/*
 * AWS Signature Version 4 signer (providers/aws_sigv4.h).
 *
 * It sits between the aws provider, which builds a request, and rk_http_do,
 * which sends it: the provider passes the request here and appends the
 * returned headers. Steps, as AWS specifies them: the canonical request
 * (method, canonical URI, canonical query, sorted canonical headers, signed
 * header names, payload hash), the string to sign (algorithm, time, scope,
 * hash of the canonical request), and an HMAC chain from "AWS4"+secret over
 * date, region, service and "aws4_request" that yields the signing key.
 *
 * Invariants: every buffer that may hold the secret, a derived key, an HMAC
 * state or the session token is wiped before it is freed or goes out of
 * scope (struct sbuf wipes when it grows and when it is freed, since the
 * canonical request carries the token); the caller's request is not changed;
 * no message names a key or a token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "aws_sigv4.h"
#include "rekey/util.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* ---- a growable string that wipes what it lets go of ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	int oom;		/* an append failed: the content is incomplete */
};

static void
sb_free(struct sbuf *b)
{
	if (b->p != NULL) {
		sodium_memzero(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof(*b));
}

static void
sb_put(struct sbuf *b, const void *s, size_t n)
{
	char *np;
	size_t ncap;

	if (b->oom)
		return;
	if (b->cap - b->len <= n) {
		ncap = b->cap ? b->cap : 256;
		while (ncap - b->len <= n)
			ncap *= 2;
		/* Not realloc: the old block may hold the token and must be wiped. */
		if ((np = malloc(ncap)) == NULL) {
			b->oom = 1;
			return;
		}
		if (b->p != NULL) {
			memcpy(np, b->p, b->len);
			sodium_memzero(b->p, b->cap);
			free(b->p);
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void
sb_chr(struct sbuf *b, char c)
{
	sb_put(b, &c, 1);
}

/* Hands the string over (NUL-terminated, never NULL unless out of memory). */
static char *
sb_take(struct sbuf *b)
{
	char *p;

	sb_put(b, "", 0);
	if (b->oom) {
		sb_free(b);
		return NULL;
	}
	p = b->p;
	memset(b, 0, sizeof(*b));
	return p;
}

/* ---- small helpers ---- */

void
rk_sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	rk_hex(h, sizeof(h), out);
}

int
rk_sigv4_amz_date(time_t now, char out[17])
{
	struct tm tm;

	out[0] = '\0';
	if (now < 0 || gmtime_r(&now, &tm) == NULL || tm.tm_year + 1900 > 9999)
		return RK_EINVAL;
	snprintf(out, 17, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

static void
hmac(unsigned char out[crypto_auth_hmacsha256_BYTES], const unsigned char *key, size_t klen,
     const void *msg, size_t mlen)
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, klen);
	crypto_auth_hmacsha256_update(&st, msg, mlen);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

/*
 * ASCII only, whatever the locale: <ctype.h> would let a Latin-1 locale
 * call 0xE1 a letter and leave it unencoded.
 */
static int
alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char
lower(unsigned char c)
{
	return (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

/* RFC 3986 unreserved: never percent-encoded. */
static int
unreserved(unsigned char c)
{
	return alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 7230 tchar: what a method or a header name may be made of. */
static int
tchar(unsigned char c)
{
	return alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Letters, digits, '-', '_', '.': what goes into the scope and Credential= unescaped. */
static int
scope_word(const char *s)
{
	for (; *s != '\0'; s++)
		if (!(alnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Appends s percent-encoded (uppercase hex) outside the unreserved set.
 * decode: valid %XX escapes are decoded first, so that the result is
 * encoded once whatever the input was. slash: '/' stays, a decoded "%2F"
 * stays encoded (a path keeps the segments it was sent with).
 */
static void
sb_uri(struct sbuf *b, const char *s, size_t n, int decode, int slash)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int raw = 1;
		char e[3];

		int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
		int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;

		if (decode && c == '%' && hi >= 0 && lo >= 0) {
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
			raw = 0;
		}
		if (unreserved(c) || (c == '/' && slash && raw)) {
			sb_chr(b, (char)c);
			continue;
		}
		e[0] = '%';
		e[1] = digits[c >> 4];
		e[2] = digits[c & 15];
		sb_put(b, e, 3);
	}
}

/* ---- canonical URI and query ---- */

/*
 * RFC 3986 5.2.4 dot-segment removal, plus the collapse of empty segments
 * ("//") every AWS service but S3 applies. A final "." or ".." leaves a
 * directory, hence a trailing slash, as in the RFC.
 */
static int
normalize_path(const char *path, size_t n, struct sbuf *out)
{
	int trailing = 0;
	size_t i = 0;

	/* i == n once more: the empty segment after a final '/'. */
	while (i <= n) {
		size_t j = i, sl;

		while (j < n && path[j] != '/')
			j++;
		sl = j - i;
		if (sl == 0 || (sl == 1 && path[i] == '.')) {
			trailing = 1;
		} else if (sl == 2 && path[i] == '.' && path[i + 1] == '.') {
			while (out->len > 0 && out->p[out->len - 1] != '/')
				out->len--;
			if (out->len > 0)
				out->len--;	/* the slash before the dropped segment */
			trailing = 1;
		} else {
			sb_chr(out, '/');
			sb_put(out, path + i, sl);
			trailing = 0;
		}
		i = j + 1;
	}
	if (out->len == 0 || trailing)
		sb_chr(out, '/');
	if (out->p != NULL)
		out->p[out->len] = '\0';
	return out->oom ? RK_ENOMEM : 0;
}

static int
canonical_uri(struct sbuf *cr, const char *path, size_t n, unsigned flags)
{
	struct sbuf norm = { 0 };
	int r;

	if (!(flags & RK_SIGV4_NORMALIZE_PATH)) {
		sb_uri(cr, path, n, 1, 1);
		return 0;
	}
	if ((r = normalize_path(path, n, &norm)) == 0)
		sb_uri(cr, norm.p, norm.len, 0, 1);
	sb_free(&norm);
	return r;
}

struct qparam {
	const char *key, *val;	/* encoded, NUL-terminated, in one buffer */
};

static int
qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : strcmp(x->val, y->val);
}

/*
 * Each "k=v" (a bare "k" is "k=") decoded and encoded once, sorted by key
 * then value in byte order; empty parts ("a&&b") are dropped.
 */
static int
canonical_query(struct sbuf *cr, const char *q, size_t n)
{
	struct sbuf enc = { 0 };
	struct qparam *ps = NULL;
	size_t np = 0, *offs = NULL, i = 0;
	int r = RK_ENOMEM;

	if (n == 0)
		return 0;
	/* Two offsets (key, value) per part; a part takes at least one byte and a '&'. */
	if ((offs = calloc(n + 1, sizeof(*offs))) == NULL)
		goto out;
	while (i <= n) {
		size_t j = i, eq;

		while (j < n && q[j] != '&')
			j++;
		if (j > i) {
			for (eq = i; eq < j && q[eq] != '='; eq++)
				;
			offs[2 * np] = enc.len;
			sb_uri(&enc, q + i, eq - i, 1, 0);
			sb_chr(&enc, '\0');
			offs[2 * np + 1] = enc.len;
			if (eq < j)
				sb_uri(&enc, q + eq + 1, j - eq - 1, 1, 0);
			sb_chr(&enc, '\0');
			np++;
		}
		i = j + 1;
	}
	if (enc.oom || (np > 0 && (ps = calloc(np, sizeof(*ps))) == NULL))
		goto out;
	for (i = 0; i < np; i++) {
		ps[i].key = enc.p + offs[2 * i];
		ps[i].val = enc.p + offs[2 * i + 1];
	}
	qsort(ps, np, sizeof(*ps), qparam_cmp);
	for (i = 0; i < np; i++) {
		if (i > 0)
			sb_chr(cr, '&');
		sb_str(cr, ps[i].key);
		sb_chr(cr, '=');
		sb_str(cr, ps[i].val);
	}
	r = 0;
 out:
	free(ps);
	free(offs);
	sb_free(&enc);
	return r;
}

/* ---- headers ---- */

struct hdr {
	const char *name, *val;	/* val untrimmed, not NUL-terminated */
	size_t nlen, vlen;
	size_t order;		/* position in the request: duplicates join in order */
};

static int
hdr_is(const struct hdr *h, const char *lname)
{
	return h->nlen == strlen(lname) && strncasecmp(h->name, lname, h->nlen) == 0;
}

static int
hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;

	for (size_t i = 0; i < n; i++) {
		int c = lower((unsigned char)x->name[i]) - lower((unsigned char)y->name[i]);

		if (c != 0)
			return c;
	}
	if (x->nlen != y->nlen)
		return x->nlen < y->nlen ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Trimmed, inner runs of spaces and tabs made one space (AWS's "trimall"). */
static void
sb_trimall(struct sbuf *b, const char *v, size_t n)
{
	size_t i = 0;
	int gap = 0;

	while (i < n && (v[i] == ' ' || v[i] == '\t'))
		i++;
	for (; i < n; i++) {
		if (v[i] == ' ' || v[i] == '\t') {
			gap = 1;
			continue;
		}
		if (gap)
			sb_chr(b, ' ');
		gap = 0;
		sb_chr(b, v[i]);
	}
}

static int
blank(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] != ' ' && v[i] != '\t')
			return 0;
	return 1;
}

/* 1 when the bytes hold a control character other than a tab (CR, LF, NUL...). */
static int
has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return 1;
	return 0;
}

/* 1 when v, without leading and trailing blanks, is s. */
static int
trimmed_eq(const char *v, size_t n, const char *s)
{
	while (n > 0 && (v[0] == ' ' || v[0] == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	return n == strlen(s) && memcmp(v, s, n) == 0;
}

/*
 * Splits and checks the request's lines into hs (room for
 * RK_SIGV4_MAX_HEADERS). *date_given: the request carries X-Amz-Date (equal
 * to amz_date).
 */
static int
parse_headers(const char *const *lines, const char *amz_date, struct hdr *hs, size_t *nhs,
	      int *date_given, struct rk_error *err)
{
	static const char *const owned[] = { "authorization", "x-amz-security-token",
					     "x-amz-content-sha256" };
	size_t n = 0, hosts = 0, dates = 0;

	for (; *lines != NULL; lines++, n++) {
		const char *l = *lines, *colon = strchr(l, ':');
		size_t len = strnlen(l, RK_SIGV4_MAX_LINE + 1);
		struct hdr *h = &hs[n];

		if (n == RK_SIGV4_MAX_HEADERS)
			return rk_error_set(err, RK_EINVAL, "sigv4: more than %d request headers",
					    RK_SIGV4_MAX_HEADERS);
		if (len > RK_SIGV4_MAX_LINE)
			return rk_error_set(err, RK_EINVAL, "sigv4: request header %zu is longer "
					    "than %d bytes", n + 1, RK_SIGV4_MAX_LINE);
		if (colon == NULL || colon == l)
			return rk_error_set(err, RK_EINVAL, "sigv4: request header %zu is not "
					    "\"Name: value\"", n + 1);
		h->name = l;
		h->nlen = (size_t)(colon - l);
		h->val = colon + 1;
		h->vlen = len - h->nlen - 1;
		h->order = n;
		for (size_t i = 0; i < h->nlen; i++)
			if (!tchar((unsigned char)l[i]))
				return rk_error_set(err, RK_EINVAL, "sigv4: request header %zu has "
						    "an invalid name", n + 1);
		/* Named, but never with its value: it may be a token. */
		if (has_ctl(h->val, h->vlen))
			return rk_error_set(err, RK_EINVAL, "sigv4: header %.*s holds a control "
					    "character (CR, LF, ...)", (int)h->nlen, h->name);
		if (blank(h->val, h->vlen))
			return rk_error_set(err, RK_EINVAL, "sigv4: header %.*s has no value "
					    "(libcurl would drop it from the request)",
					    (int)h->nlen, h->name);
		for (size_t i = 0; i < RK_ARRAY_SIZE(owned); i++)
			if (hdr_is(h, owned[i]))
				return rk_error_set(err, RK_EINVAL, "sigv4: the request has "
						    "%.*s, which the signer adds itself",
						    (int)h->nlen, h->name);
		hosts += hdr_is(h, "host");
		if (hdr_is(h, "x-amz-date")) {
			if (!trimmed_eq(h->val, h->vlen, amz_date))
				return rk_error_set(err, RK_EINVAL, "sigv4: the request's "
						    "X-Amz-Date is not the signing time %s",
						    amz_date);
			dates++;
		}
	}
	if (hosts == 0)
		return rk_error_set(err, RK_EINVAL, "sigv4: the request has no Host header");
	if (hosts > 1)
		return rk_error_set(err, RK_EINVAL, "sigv4: the request has more than one Host "
				    "header");
	if (dates > 1)
		return rk_error_set(err, RK_EINVAL, "sigv4: the request has more than one "
				    "X-Amz-Date header");
	*date_given = dates == 1;
	*nhs = n;
	return 0;
}

static void
add_hdr(struct hdr *hs, size_t *n, const char *name, const char *val)
{
	hs[*n] = (struct hdr){ .name = name, .nlen = strlen(name), .val = val,
			       .vlen = strlen(val), .order = *n };
	(*n)++;
}

/* Canonical headers (each "name:value\n", duplicates joined by ',') into cr, names into sh. */
static void
canonical_headers(struct sbuf *cr, struct sbuf *sh, struct hdr *hs, size_t n)
{
	qsort(hs, n, sizeof(*hs), hdr_cmp);
	for (size_t i = 0; i < n; i++) {
		int same = i > 0 && hs[i].nlen == hs[i - 1].nlen &&
			   strncasecmp(hs[i].name, hs[i - 1].name, hs[i].nlen) == 0;

		if (same) {
			sb_chr(cr, ',');
		} else {
			if (i > 0) {
				sb_chr(cr, '\n');
				sb_chr(sh, ';');
			}
			for (size_t k = 0; k < hs[i].nlen; k++) {
				char c = lower((unsigned char)hs[i].name[k]);

				sb_chr(cr, c);
				sb_chr(sh, c);
			}
			sb_chr(cr, ':');
		}
		sb_trimall(cr, hs[i].val, hs[i].vlen);
	}
	sb_chr(cr, '\n');
}

/* ---- inputs ---- */

/* A non-empty scope_word, or RK_EINVAL naming `what` (never its value). */
static int
check_word(const char *s, const char *what, struct rk_error *err)
{
	if (s == NULL || s[0] == '\0')
		return rk_error_set(err, RK_EINVAL, "sigv4: the %s is empty", what);
	if (!scope_word(s))
		return rk_error_set(err, RK_EINVAL, "sigv4: the %s has a character other than "
				    "letters, digits, '-', '_' and '.'", what);
	return 0;
}

static int
check_inputs(const struct rk_sigv4_req *req, const struct rk_sigv4_key *key,
	     struct rk_error *err)
{
	const char *tok = key->session_token;
	int r;

	if ((r = check_word(key->access_key_id, "access key id", err)) < 0)
		return r;
	if (key->secret_access_key == NULL || key->secret_access_key[0] == '\0')
		return rk_error_set(err, RK_EINVAL, "sigv4: the secret access key is empty");
	if (strnlen(key->secret_access_key, RK_SIGV4_MAX_SECRET + 1) > RK_SIGV4_MAX_SECRET)
		return rk_error_set(err, RK_EINVAL, "sigv4: the secret access key is longer "
				    "than %d bytes", RK_SIGV4_MAX_SECRET);
	if (tok != NULL) {
		for (const char *p = tok; *p != '\0'; p++)
			if ((unsigned char)*p <= 0x20 || *p == 0x7f)
				return rk_error_set(err, RK_EINVAL, "sigv4: the session token "
						    "holds a space or a control character");
	}
	if ((r = check_word(req->region, "region", err)) < 0 ||
	    (r = check_word(req->service, "service", err)) < 0)
		return r;
	if (req->method == NULL || req->method[0] == '\0')
		return rk_error_set(err, RK_EINVAL, "sigv4: the HTTP method is empty");
	for (const char *p = req->method; *p != '\0'; p++)
		if (!tchar((unsigned char)*p))
			return rk_error_set(err, RK_EINVAL, "sigv4: the HTTP method is not a "
					    "token");
	if (req->target == NULL || req->target[0] != '/')
		return rk_error_set(err, RK_EINVAL, "sigv4: the request target does not start "
				    "with '/'");
	if (strnlen(req->target, RK_SIGV4_MAX_LINE + 1) > RK_SIGV4_MAX_LINE)
		return rk_error_set(err, RK_EINVAL, "sigv4: the request target is longer than "
				    "%d bytes", RK_SIGV4_MAX_LINE);
	if (has_ctl(req->target, strlen(req->target)) || strchr(req->target, '\t') != NULL ||
	    strchr(req->target, '#') != NULL)
		return rk_error_set(err, RK_EINVAL, "sigv4: the request target holds a control "
				    "character or a fragment");
	if (req->headers == NULL)
		return rk_error_set(err, RK_EINVAL, "sigv4: the request has no headers (Host "
				    "is required)");
	if (req->body == NULL && req->body_len > 0)
		return rk_error_set(err, RK_EINVAL, "sigv4: the body is NULL but its length "
				    "is %zu", req->body_len);
	return 0;
}

/* ---- output ---- */

static int
push_line(char **v, size_t *n, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	char *l = malloc(nl + vl + 3);

	if (l == NULL)
		return RK_ENOMEM;
	memcpy(l, name, nl);
	memcpy(l + nl, ": ", 2);
	memcpy(l + nl + 2, value, vl + 1);
	v[(*n)++] = l;
	return 0;
}

static void
wipe_str(char *s)
{
	if (s != NULL) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

void
rk_sigv4_out_free(struct rk_sigv4_out *out)
{
	if (out == NULL)
		return;
	if (out->add_headers != NULL) {
		for (char **p = out->add_headers; *p != NULL; p++)
			wipe_str(*p);
		free(out->add_headers);
	}
	wipe_str(out->canonical_request);
	wipe_str(out->string_to_sign);
	memset(out, 0, sizeof(*out));
}

/* The signing key chain, then the signature of sts into out->signature. */
static void
sign_sts(const struct rk_sigv4_key *key, const struct rk_sigv4_req *req, const char *date8,
	 const char *sts, size_t sts_len, char sig_hex[65])
{
	unsigned char k[4 + RK_SIGV4_MAX_SECRET], kd[32], kr[32], ks[32], kk[32], sig[32];
	size_t slen = strlen(key->secret_access_key);

	memcpy(k, "AWS4", 4);
	memcpy(k + 4, key->secret_access_key, slen);
	hmac(kd, k, 4 + slen, date8, 8);
	hmac(kr, kd, sizeof(kd), req->region, strlen(req->region));
	hmac(ks, kr, sizeof(kr), req->service, strlen(req->service));
	hmac(kk, ks, sizeof(ks), "aws4_request", 12);
	hmac(sig, kk, sizeof(kk), sts, sts_len);
	rk_hex(sig, sizeof(sig), sig_hex);
	sodium_memzero(k, sizeof(k));
	sodium_memzero(kd, sizeof(kd));
	sodium_memzero(kr, sizeof(kr));
	sodium_memzero(ks, sizeof(ks));
	sodium_memzero(kk, sizeof(kk));
	sodium_memzero(sig, sizeof(sig));
}

int
rk_sigv4_sign(const struct rk_sigv4_req *req, const struct rk_sigv4_key *key,
	      struct rk_sigv4_out *out, struct rk_error *err)
{
	struct hdr hs[RK_SIGV4_MAX_HEADERS + 3];
	struct sbuf cr = { 0 }, sh = { 0 }, scope = { 0 }, sts = { 0 }, auth = { 0 };
	char payload[65], crhash[65], date8[9];
	const char *token, *q;
	char **add;
	size_t nhs = 0, nadd = 0;
	int r, date_given = 0;

	memset(out, 0, sizeof(*out));
	if ((r = check_inputs(req, key, err)) < 0)
		goto out;
	if (rk_sigv4_amz_date(req->now, out->amz_date) < 0) {
		r = rk_error_set(err, RK_EINVAL, "sigv4: the signing time %lld is out of range",
				 (long long)req->now);
		goto out;
	}
	memcpy(date8, out->amz_date, 8);
	date8[8] = '\0';
	if ((r = parse_headers(req->headers, out->amz_date, hs, &nhs, &date_given, err)) < 0)
		goto out;
	token = key->session_token != NULL && key->session_token[0] != '\0' ?
		key->session_token : NULL;
	rk_sigv4_sha256_hex(req->body != NULL ? req->body : "", req->body_len, payload);
	if (!date_given)
		add_hdr(hs, &nhs, "x-amz-date", out->amz_date);
	if (req->flags & RK_SIGV4_SIGN_BODY)
		add_hdr(hs, &nhs, "x-amz-content-sha256", payload);
	if (token != NULL && !(req->flags & RK_SIGV4_OMIT_TOKEN))
		add_hdr(hs, &nhs, "x-amz-security-token", token);

	/* The canonical request. */
	sb_str(&cr, req->method);
	sb_chr(&cr, '\n');
	q = strchr(req->target, '?');
	if ((r = canonical_uri(&cr, req->target, q ? (size_t)(q - req->target) :
			       strlen(req->target), req->flags)) < 0)
		goto nomem;
	sb_chr(&cr, '\n');
	if (q != NULL && (r = canonical_query(&cr, q + 1, strlen(q + 1))) < 0)
		goto nomem;
	sb_chr(&cr, '\n');
	canonical_headers(&cr, &sh, hs, nhs);
	sb_chr(&cr, '\n');
	sb_put(&cr, sh.p != NULL ? sh.p : "", sh.len);
	sb_chr(&cr, '\n');
	sb_str(&cr, payload);
	if (cr.oom || sh.oom)
		goto nomem;

	/* The string to sign, and the signature. */
	rk_sigv4_sha256_hex(cr.p, cr.len, crhash);
	sb_str(&sts, ALGORITHM "\n");
	sb_str(&sts, out->amz_date);
	sb_chr(&sts, '\n');
	sb_str(&scope, date8);
	sb_chr(&scope, '/');
	sb_str(&scope, req->region);
	sb_chr(&scope, '/');
	sb_str(&scope, req->service);
	sb_str(&scope, "/aws4_request");
	if (scope.oom)
		goto nomem;
	sb_put(&sts, scope.p, scope.len);
	sb_chr(&sts, '\n');
	sb_str(&sts, crhash);
	if (sts.oom)
		goto nomem;
	sign_sts(key, req, date8, sts.p, sts.len, out->signature);

	/* The headers to add, in the documented order. */
	sb_str(&auth, ALGORITHM " Credential=");
	sb_str(&auth, key->access_key_id);
	sb_chr(&auth, '/');
	sb_put(&auth, scope.p, scope.len);
	sb_str(&auth, ", SignedHeaders=");
	sb_put(&auth, sh.p, sh.len);
	sb_str(&auth, ", Signature=");
	sb_str(&auth, out->signature);
	if (auth.oom || (out->add_headers = calloc(5, sizeof(char *))) == NULL)
		goto nomem;
	add = out->add_headers;
	if ((!date_given && push_line(add, &nadd, "X-Amz-Date", out->amz_date) < 0) ||
	    ((req->flags & RK_SIGV4_SIGN_BODY) &&
	     push_line(add, &nadd, "X-Amz-Content-Sha256", payload) < 0) ||
	    (token != NULL && push_line(add, &nadd, "X-Amz-Security-Token", token) < 0) ||
	    push_line(add, &nadd, "Authorization", auth.p) < 0)
		goto nomem;
	if (req->flags & RK_SIGV4_KEEP_DEBUG) {
		if ((out->canonical_request = sb_take(&cr)) == NULL ||
		    (out->string_to_sign = sb_take(&sts)) == NULL)
			goto nomem;
	}
	r = 0;
	goto out;
 nomem:
	r = rk_error_set(err, RK_ENOMEM, "sigv4: out of memory");
 out:
	if (r < 0)
		rk_sigv4_out_free(out);
	sb_free(&cr);
	sb_free(&sh);
	sb_free(&scope);
	sb_free(&sts);
	sb_free(&auth);
	return r;
}
