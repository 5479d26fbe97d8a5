/*
 * The SigV4 signer (providers/aws_sigv4.c): AWS's own known-answer suite,
 * both copies in tests/data/sigv4/ (every case directory, compared byte for
 * byte), the Secrets Manager vectors of provider-contracts.md 2.2, and the
 * signer's own rules (the headers it adds, the token, what it refuses, what
 * its messages never say).
 */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rekey/util.h"
#include "../../providers/aws_sigv4.h"
#include "unit.h"

/* The suite's fixed inputs (tests/data/sigv4/README.md). */
#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T_2015 ((time_t)1440938160)	/* 2015-08-30T12:36:00Z */

#define BOTOCORE "botocore-aws4_testsuite"
#define CRT_V4 "aws-c-auth-aws-signing-test-suite/v4"
/* How many case directories each copy has: a missing or partial copy fails. */
#define BOTOCORE_CASES 34
#define CRT_V4_CASES 38
#define MAX_CASES 128

/*
 * Cases not compared, each with its reason. None today: the request parser
 * below takes botocore's raw space (normalize-path/get-space) and the signer
 * sorts repeated query keys by value (get-vanilla-query-order-key*,
 * -order-value), the shapes botocore's own runner skips. An entry here that
 * names no case directory fails the test, so the list cannot go stale.
 */
static const struct {
	const char *path;	/* below tests/data/sigv4/ */
	const char *why;
} skipped[] = {
	{ NULL, NULL },
};

/* ---- reading the suite ---- */

static char *
slurp(const char *dir, const char *file, size_t *len)
{
	char path[1024], *text = NULL;
	size_t n = 0;
	struct rk_error err = { 0 };

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	ck_assert_msg(rk_read_file(path, 1u << 20, &text, &n, &err) == 0, "%s: %s", path,
		      err.msg);
	if (len != NULL)
		*len = n;
	return text;
}

static int
exists(const char *dir, const char *file)
{
	char path[1024];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A raw request file: request line, headers (folded lines joined), blank line, body. */
struct raw_req {
	char *text;		/* the file, cut in place */
	char *method, *target;
	char *lines[RK_SIGV4_MAX_HEADERS + 1];	/* malloc'd, NULL-terminated */
	size_t nlines;
	const char *body;
	size_t body_len;
};

static void
parse_request(const char *name, char *text, size_t len, struct raw_req *rq)
{
	char *p = text, *end = text + len, *nl, *sp1, *sp2;

	memset(rq, 0, sizeof(*rq));
	rq->text = text;
	nl = memchr(p, '\n', (size_t)(end - p));
	ck_assert_msg(nl != NULL, "%s: no request line", name);
	*nl = '\0';
	/* The target is all between the first and the last space (get-space has one inside). */
	sp1 = strchr(p, ' ');
	sp2 = strrchr(p, ' ');
	ck_assert_msg(sp1 != NULL && sp2 > sp1 && strcmp(sp2 + 1, "HTTP/1.1") == 0,
		      "%s: bad request line '%s'", name, p);
	*sp1 = *sp2 = '\0';
	rq->method = p;
	rq->target = sp1 + 1;
	p = nl + 1;
	while (p < end) {
		size_t l;

		nl = memchr(p, '\n', (size_t)(end - p));
		l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (l == 0) {
			p++;
			break;
		}
		if (*p == ' ' || *p == '\t') {
			/* obs-fold (RFC 7230 3.2.4): the line break becomes a space. */
			char *prev, *joined;
			size_t pl;

			ck_assert_msg(rq->nlines > 0, "%s: a continuation before any header", name);
			prev = rq->lines[rq->nlines - 1];
			pl = strlen(prev);
			ck_assert_ptr_nonnull(joined = malloc(pl + 1 + l + 1));
			memcpy(joined, prev, pl);
			joined[pl] = ' ';
			memcpy(joined + pl + 1, p, l);
			joined[pl + 1 + l] = '\0';
			free(prev);
			rq->lines[rq->nlines - 1] = joined;
		} else {
			ck_assert_msg(rq->nlines < RK_SIGV4_MAX_HEADERS, "%s: too many headers",
				      name);
			ck_assert_ptr_nonnull(rq->lines[rq->nlines++] = strndup(p, l));
		}
		p = nl != NULL ? nl + 1 : end;
	}
	rq->body = p;
	rq->body_len = (size_t)(end - p);
}

/* Removes the header `name` from rq and returns its value (malloc'd), NULL if absent. */
static char *
take_header(struct raw_req *rq, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < rq->nlines; i++) {
		if (strncasecmp(rq->lines[i], name, nl) == 0 && rq->lines[i][nl] == ':') {
			char *v = strdup(rq->lines[i] + nl + 1);

			ck_assert_ptr_nonnull(v);
			free(rq->lines[i]);
			/* lines[nlines] is the NULL at the end: it moves too. */
			memmove(&rq->lines[i], &rq->lines[i + 1],
				(rq->nlines - i) * sizeof(char *));
			rq->nlines--;
			return v;
		}
	}
	return NULL;
}

static void
raw_req_free(struct raw_req *rq)
{
	for (size_t i = 0; i < rq->nlines; i++)
		free(rq->lines[i]);
	free(rq->text);
}

/* The value of the first "Name:value" line of a signed-request file, malloc'd. */
static char *
header_in(const char *text, const char *name)
{
	size_t nl = strlen(name);

	for (const char *p = text; *p != '\0';) {
		const char *e = strchr(p, '\n');

		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (*v == ' ')
				v++;
			return strndup(v, e != NULL ? (size_t)(e - v) : strlen(v));
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	return NULL;
}

/* The line of out->add_headers that starts with "Name: ", or NULL. */
static const char *
added(const struct rk_sigv4_out *out, const char *name)
{
	size_t nl = strlen(name);

	for (char **p = out->add_headers; p != NULL && *p != NULL; p++)
		if (strncmp(*p, name, nl) == 0 && strncmp(*p + nl, ": ", 2) == 0)
			return *p + nl + 2;
	return NULL;
}

/* ---- one case ---- */

struct kat {
	const char *name;	/* for messages */
	struct raw_req rq;
	struct rk_sigv4_key key;
	const char *region, *service;
	time_t now;
	unsigned flags;
	const char *creq, *sts, *sig, *authz;	/* expected; authz may be NULL */
};

static void
kat_run(struct kat *k)
{
	struct rk_sigv4_req req = {
		.method = k->rq.method, .target = k->rq.target,
		.headers = (const char *const *)k->rq.lines,
		.body = k->rq.body, .body_len = k->rq.body_len,
		.region = k->region, .service = k->service, .now = k->now,
		.flags = k->flags | RK_SIGV4_KEEP_DEBUG,
	};
	struct rk_sigv4_out out;
	struct rk_error err = { 0 };
	const char *tok = k->key.session_token, *auth;

	ck_assert_msg(rk_sigv4_sign(&req, &k->key, &out, &err) == 0, "%s: %s", k->name, err.msg);
	ck_assert_msg(strcmp(out.canonical_request, k->creq) == 0,
		      "%s: canonical request\n-- got:\n%s\n-- want:\n%s", k->name,
		      out.canonical_request, k->creq);
	ck_assert_msg(strcmp(out.string_to_sign, k->sts) == 0,
		      "%s: string to sign\n-- got:\n%s\n-- want:\n%s", k->name, out.string_to_sign,
		      k->sts);
	ck_assert_msg(strcmp(out.signature, k->sig) == 0, "%s: signature %s, want %s", k->name,
		      out.signature, k->sig);
	auth = added(&out, "Authorization");
	ck_assert_msg(auth != NULL, "%s: no Authorization header added", k->name);
	if (k->authz != NULL)
		ck_assert_msg(strcmp(auth, k->authz) == 0, "%s: Authorization\n-- got:  %s\n"
			      "-- want: %s", k->name, auth, k->authz);
	if (tok != NULL)
		ck_assert_msg(added(&out, "X-Amz-Security-Token") != NULL &&
			      strcmp(added(&out, "X-Amz-Security-Token"), tok) == 0,
			      "%s: the token header is not added", k->name);
	rk_sigv4_out_free(&out);
}

/*
 * botocore's format: <case>.req/.creq/.sts/.authz with the README's fixed
 * inputs. The token (post-sts-token/, get-vanilla-with-session-token) is
 * the request's X-Amz-Security-Token, or the signed request's when the
 * request does not carry it; post-sts-header-after adds it unsigned, as
 * its readme.txt says. botocore normalises every path.
 */
static void
run_botocore_case(const char *dir, const char *name)
{
	char f[256], *text, *sreq, *tok;
	size_t len;
	struct kat k = { .name = name, .region = "us-east-1", .service = "service",
			 .now = T_2015, .flags = RK_SIGV4_NORMALIZE_PATH };

	snprintf(f, sizeof(f), "%s.req", name);
	text = slurp(dir, f, &len);
	parse_request(name, text, len, &k.rq);
	snprintf(f, sizeof(f), "%s.sreq", name);
	sreq = slurp(dir, f, NULL);
	if ((tok = take_header(&k.rq, "X-Amz-Security-Token")) == NULL)
		tok = header_in(sreq, "X-Amz-Security-Token");
	if (strcmp(name, "post-sts-header-after") == 0)
		k.flags |= RK_SIGV4_OMIT_TOKEN;
	k.key = (struct rk_sigv4_key){ AKID, SECRET, tok };
	snprintf(f, sizeof(f), "%s.creq", name);
	k.creq = slurp(dir, f, NULL);
	snprintf(f, sizeof(f), "%s.sts", name);
	k.sts = slurp(dir, f, NULL);
	snprintf(f, sizeof(f), "%s.authz", name);
	k.authz = slurp(dir, f, NULL);
	ck_assert_ptr_nonnull(k.sig = strstr(k.authz, "Signature="));
	k.sig += strlen("Signature=");
	kat_run(&k);
	free((char *)k.creq);
	free((char *)k.sts);
	free((char *)k.authz);
	free(sreq);
	free(tok);
	raw_req_free(&k.rq);
}

static int
json_flag(const json_t *ctx, const char *key)
{
	return json_is_true(json_object_get(ctx, key));
}

/* aws-c-auth's format: context.json for the inputs, header-* files for the answers. */
static void
run_crt_case(const char *dir, const char *name)
{
	char *text, *ctxt, *signed_req;
	size_t len;
	json_t *ctx, *cred;
	json_error_t jerr;
	int64_t t = 0;
	struct kat k = { .name = name };

	ctxt = slurp(dir, "context.json", &len);
	ck_assert_msg((ctx = json_loadb(ctxt, len, 0, &jerr)) != NULL, "%s: context.json: %s",
		      name, jerr.text);
	cred = json_object_get(ctx, "credentials");
	k.key.access_key_id = json_string_value(json_object_get(cred, "access_key_id"));
	k.key.secret_access_key = json_string_value(json_object_get(cred, "secret_access_key"));
	k.key.session_token = json_string_value(json_object_get(cred, "token"));
	k.region = json_string_value(json_object_get(ctx, "region"));
	k.service = json_string_value(json_object_get(ctx, "service"));
	ck_assert_msg(k.key.access_key_id && k.key.secret_access_key && k.region && k.service,
		      "%s: context.json lacks an input", name);
	ck_assert_int_eq(rk_parse_time(json_string_value(json_object_get(ctx, "timestamp")), &t),
			 0);
	k.now = (time_t)t;
	k.flags = (json_flag(ctx, "normalize") ? RK_SIGV4_NORMALIZE_PATH : 0) |
		  (json_flag(ctx, "sign_body") ? RK_SIGV4_SIGN_BODY : 0) |
		  (json_flag(ctx, "omit_session_token") ? RK_SIGV4_OMIT_TOKEN : 0);
	text = slurp(dir, "request.txt", &len);
	parse_request(name, text, len, &k.rq);
	k.creq = slurp(dir, "header-canonical-request.txt", NULL);
	k.sts = slurp(dir, "header-string-to-sign.txt", NULL);
	k.sig = slurp(dir, "header-signature.txt", NULL);
	signed_req = slurp(dir, "header-signed-request.txt", NULL);
	ck_assert_ptr_nonnull(k.authz = header_in(signed_req, "Authorization"));
	kat_run(&k);
	free((char *)k.creq);
	free((char *)k.sts);
	free((char *)k.sig);
	free((char *)k.authz);
	free(signed_req);
	raw_req_free(&k.rq);
	json_decref(ctx);
	free(ctxt);
}

/* ---- walking both copies ---- */

struct walk {
	char *cases[MAX_CASES];	/* paths below the data dir */
	size_t n;
};

static int
path_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every directory below rel that holds a case (request.txt or <name>.req), recursively. */
static void
walk(struct walk *w, const char *root, const char *rel)
{
	char dir[1024], sub[1024], f[300];
	const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", root, rel);
	snprintf(f, sizeof(f), "%s.req", base);
	if (exists(dir, "request.txt") || exists(dir, f)) {
		ck_assert_uint_lt(w->n, MAX_CASES);
		ck_assert_ptr_nonnull(w->cases[w->n++] = strdup(rel));
		return;
	}
	ck_assert_msg((d = opendir(dir)) != NULL, "cannot read %s", dir);
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
			snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name);
			walk(w, root, sub);
		}
	}
	closedir(d);
}

static const char *
skip_reason(const char *rel)
{
	for (size_t i = 0; skipped[i].path != NULL; i++)
		if (strcmp(skipped[i].path, rel) == 0)
			return skipped[i].why;
	return NULL;
}

/* Walks one copy, runs every case not skipped; returns how many were compared. */
static size_t
run_copy(const char *root, const char *top, size_t want_cases,
	 void (*run)(const char *dir, const char *name))
{
	struct walk w = { .n = 0 };
	size_t compared = 0;

	walk(&w, root, top);
	ck_assert_msg(w.n == want_cases, "%s: %zu case directories, want %zu", top, w.n,
		      want_cases);
	qsort(w.cases, w.n, sizeof(w.cases[0]), path_cmp);
	for (size_t i = 0; i < w.n; i++) {
		char dir[1024];
		const char *name = strrchr(w.cases[i], '/') + 1;

		if (skip_reason(w.cases[i]) == NULL) {
			snprintf(dir, sizeof(dir), "%s/%s", root, w.cases[i]);
			run(dir, name);
			compared++;
		}
		free(w.cases[i]);
	}
	return compared;
}

static void
data_root(char *root, size_t n)
{
	const char *src = getenv("REKEY_SRCDIR");

	ck_assert_msg(src != NULL, "REKEY_SRCDIR is not set (make unit sets it)");
	snprintf(root, n, "%s/tests/data/sigv4", src);
}

/*
 * Every case directory of both copies is compared (canonical request,
 * string to sign, signature and Authorization), except the skip list; the
 * count is asserted, so a missing data directory, a lost case or a stale
 * skip entry fails.
 */
START_TEST(test_sigv4_every_suite_case_matches)
{
	char root[1024];
	size_t nskip = 0, compared = 0;

	data_root(root, sizeof(root));
	for (; skipped[nskip].path != NULL; nskip++) {
		char dir[1200];
		struct stat st;

		snprintf(dir, sizeof(dir), "%s/%s", root, skipped[nskip].path);
		ck_assert_msg(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && skipped[nskip].why,
			      "skip entry %s names no case, or gives no reason",
			      skipped[nskip].path);
	}
	compared += run_copy(root, BOTOCORE, BOTOCORE_CASES, run_botocore_case);
	compared += run_copy(root, CRT_V4, CRT_V4_CASES, run_crt_case);
	ck_assert_uint_eq(compared, BOTOCORE_CASES + CRT_V4_CASES - nskip);
}
END_TEST

/* ---- Secrets Manager (provider-contracts.md 2.2) ---- */

#define SM_BODY "{\"SecretId\":\"prod/db\",\"VersionStage\":\"AWSCURRENT\"}"
#define SM_HOST "secretsmanager.us-east-1.amazonaws.com"
#define SM_CREQ                                                                  \
	"POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:" SM_HOST "\n"   \
	"x-amz-date:20150830T123600Z\nx-amz-target:secretsmanager.GetSecretValue\n" \
	"\ncontent-type;host;x-amz-date;x-amz-target\n"                             \
	"ab3032330d192945c13b322cefb6dd64624f73e0cc8ded7f4910d246bb967cb4"
#define SM_SCOPE "20150830/us-east-1/secretsmanager/aws4_request"

static const char *const sm_headers[] = {
	"Content-Type: application/x-amz-json-1.1",
	"Host: " SM_HOST,
	"X-Amz-Target: secretsmanager.GetSecretValue",
	NULL,
};

static struct rk_sigv4_req
sm_req(const char *const *headers, unsigned flags)
{
	return (struct rk_sigv4_req){
		.method = "POST", .target = "/", .headers = headers,
		.body = SM_BODY, .body_len = strlen(SM_BODY),
		.region = "us-east-1", .service = "secretsmanager", .now = T_2015,
		.flags = RK_SIGV4_NORMALIZE_PATH | flags,
	};
}

static void
sign_ok(const struct rk_sigv4_req *req, const struct rk_sigv4_key *key, struct rk_sigv4_out *out)
{
	struct rk_error err = { 0 };

	ck_assert_msg(rk_sigv4_sign(req, key, out, &err) == 0, "%s", err.msg);
}

START_TEST(test_sigv4_secretsmanager_vectors)
{
	static const char *const port_headers[] = {
		"Content-Type: application/x-amz-json-1.1", "Host: 127.0.0.1:4566",
		"X-Amz-Target: secretsmanager.GetSecretValue", NULL,
	};
	struct rk_sigv4_key key = { AKID, SECRET, NULL };
	struct rk_sigv4_req req = sm_req(sm_headers, RK_SIGV4_KEEP_DEBUG);
	struct rk_sigv4_out out;

	sign_ok(&req, &key, &out);
	ck_assert_str_eq(out.amz_date, "20150830T123600Z");
	ck_assert_str_eq(out.canonical_request, SM_CREQ);
	ck_assert_str_eq(out.string_to_sign, "AWS4-HMAC-SHA256\n20150830T123600Z\n" SM_SCOPE "\n"
			 "c52546951741908d0ffd1b3070803a7463379b020ecf038871bf753b051db05d");
	ck_assert_str_eq(out.signature,
			 "c5bed2178bc6198a11b940ad7bcac122d5a3b382e7b7c48caf559013ed8d02da");
	rk_sigv4_out_free(&out);

	key.session_token = "EXAMPLESESSIONTOKEN";
	sign_ok(&req, &key, &out);
	ck_assert_str_eq(out.string_to_sign, "AWS4-HMAC-SHA256\n20150830T123600Z\n" SM_SCOPE "\n"
			 "5e41c3dfbd9e17ad1fa06466393b899be3b69525c667478193d353ca4c01becf");
	ck_assert_str_eq(out.signature,
			 "bf031b1077810976035a8bd2c8d443868079aca754c89e3b7b8680afbc3e37a4");
	rk_sigv4_out_free(&out);

	key.session_token = NULL;
	req.headers = port_headers;
	sign_ok(&req, &key, &out);
	ck_assert_ptr_nonnull(strstr(out.canonical_request, "\nhost:127.0.0.1:4566\n"));
	ck_assert_str_eq(out.signature,
			 "d3a165d478219641bcdb9545bee3696520697f469e8b32c37629f0293117cd3e");
	rk_sigv4_out_free(&out);
}
END_TEST

/* What is added, in the documented order, and nothing else; the debug strings only on request. */
START_TEST(test_sigv4_add_headers_contents_and_order)
{
	static const char *const dated[] = {
		"Host: " SM_HOST, "X-Amz-Date:  20150830T123600Z ", NULL,
	};
	struct rk_sigv4_key key = { AKID, SECRET, "TOKEN1" };
	struct rk_sigv4_req req = sm_req(sm_headers, RK_SIGV4_SIGN_BODY);
	struct rk_sigv4_out out;
	char want[512];

	sign_ok(&req, &key, &out);
	ck_assert_ptr_null(out.canonical_request);
	ck_assert_ptr_null(out.string_to_sign);
	ck_assert_str_eq(out.add_headers[0], "X-Amz-Date: 20150830T123600Z");
	ck_assert_str_eq(out.add_headers[1], "X-Amz-Content-Sha256: "
			 "ab3032330d192945c13b322cefb6dd64624f73e0cc8ded7f4910d246bb967cb4");
	ck_assert_str_eq(out.add_headers[2], "X-Amz-Security-Token: TOKEN1");
	snprintf(want, sizeof(want), "Authorization: AWS4-HMAC-SHA256 Credential=" AKID "/" SM_SCOPE
		 ", SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
		 "x-amz-security-token;x-amz-target, Signature=%s", out.signature);
	ck_assert_str_eq(out.add_headers[3], want);
	ck_assert_ptr_null(out.add_headers[4]);
	ck_assert_uint_eq(strlen(out.signature), 64);
	ck_assert_uint_eq(strspn(out.signature, "0123456789abcdef"), 64);
	rk_sigv4_out_free(&out);
	ck_assert_ptr_null(out.add_headers);

	/* The request's own X-Amz-Date (blanks around it are not part of it) is not added again. */
	key.session_token = "";
	req = sm_req(dated, 0);
	sign_ok(&req, &key, &out);
	ck_assert_str_eq(out.amz_date, "20150830T123600Z");
	ck_assert_ptr_nonnull(strstr(out.add_headers[0], "Authorization: "));
	ck_assert_ptr_nonnull(strstr(out.add_headers[0], "SignedHeaders=host;x-amz-date,"));
	ck_assert_ptr_null(out.add_headers[1]);
	rk_sigv4_out_free(&out);
	rk_sigv4_out_free(&out);	/* a zeroed out is fine */
}
END_TEST

/*
 * A signed token is in SignedHeaders and the canonical request; an omitted
 * one is still sent but changes nothing signed, so the signature is the
 * one without a token.
 */
START_TEST(test_sigv4_session_token_signed_or_omitted)
{
	struct rk_sigv4_key key = { AKID, SECRET, NULL };
	struct rk_sigv4_req req = sm_req(sm_headers, RK_SIGV4_KEEP_DEBUG);
	struct rk_sigv4_out plain, sig, omit;

	sign_ok(&req, &key, &plain);
	key.session_token = "FQoGZXIvYXdzEXAMPLE";
	sign_ok(&req, &key, &sig);
	req.flags |= RK_SIGV4_OMIT_TOKEN;
	sign_ok(&req, &key, &omit);

	ck_assert_ptr_nonnull(strstr(sig.canonical_request,
				     "\nx-amz-security-token:FQoGZXIvYXdzEXAMPLE\n"));
	ck_assert_ptr_nonnull(strstr(added(&sig, "Authorization"),
				     "SignedHeaders=content-type;host;x-amz-date;"
				     "x-amz-security-token;x-amz-target,"));
	ck_assert_str_ne(sig.signature, plain.signature);
	ck_assert_str_eq(added(&sig, "X-Amz-Security-Token"), "FQoGZXIvYXdzEXAMPLE");

	ck_assert_ptr_null(strstr(omit.canonical_request, "security-token"));
	ck_assert_str_eq(omit.canonical_request, plain.canonical_request);
	ck_assert_str_eq(omit.signature, plain.signature);
	ck_assert_str_eq(added(&omit, "X-Amz-Security-Token"), "FQoGZXIvYXdzEXAMPLE");
	ck_assert_ptr_null(added(&plain, "X-Amz-Security-Token"));
	rk_sigv4_out_free(&plain);
	rk_sigv4_out_free(&sig);
	rk_sigv4_out_free(&omit);
}
END_TEST

/* A refused request leaves out zeroed and says why, naming the header. */
static void
assert_refused(const char *const *headers, const char *word)
{
	struct rk_sigv4_key key = { AKID, SECRET, NULL };
	struct rk_sigv4_req req = sm_req(headers, RK_SIGV4_KEEP_DEBUG);
	struct rk_sigv4_out out, zero;
	struct rk_error err = { 0 };

	memset(&out, 0x5a, sizeof(out));
	memset(&zero, 0, sizeof(zero));
	ck_assert_int_eq(rk_sigv4_sign(&req, &key, &out, &err), RK_EINVAL);
	ck_assert_int_eq(err.code, RK_EINVAL);
	ck_assert_msg(strstr(err.msg, word) != NULL, "'%s' does not say '%s'", err.msg, word);
	ck_assert_msg(memcmp(&out, &zero, sizeof(out)) == 0, "out is not zeroed on error");
}

START_TEST(test_sigv4_x_amz_date_must_be_now)
{
	static const char *const later[] = { "Host: " SM_HOST, "X-Amz-Date: 20150830T123601Z",
					     NULL };
	static const char *const twice[] = { "Host: " SM_HOST, "X-Amz-Date: 20150830T123600Z",
					     "x-amz-date: 20150830T123600Z", NULL };

	assert_refused(later, "X-Amz-Date");
	assert_refused(twice, "X-Amz-Date");
}
END_TEST

START_TEST(test_sigv4_host_is_required_once)
{
	static const char *const none[] = { "Content-Type: application/x-amz-json-1.1", NULL };
	static const char *const two[] = { "Host: a.example", "host: b.example", NULL };

	assert_refused(none, "no Host");
	assert_refused(two, "more than one Host");
}
END_TEST

/* Headers a client could not send as signed, or that the signer owns. */
START_TEST(test_sigv4_refuses_unsendable_and_owned_headers)
{
	static const char *const crlf[] = { "Host: " SM_HOST, "X-Inject: a\r\nX-Evil: b", NULL };
	static const char *const empty[] = { "Host: " SM_HOST, "X-Empty:  ", NULL };
	static const char *const noname[] = { "Host: " SM_HOST, ": v", NULL };
	static const char *const badname[] = { "Host: " SM_HOST, "X Bad: v", NULL };
	static const char *const auth[] = { "Host: " SM_HOST, "authorization: x", NULL };
	static const char *const tok[] = { "Host: " SM_HOST, "X-Amz-Security-Token: t", NULL };
	static const char *const sha[] = { "Host: " SM_HOST, "X-Amz-Content-Sha256: x", NULL };

	assert_refused(crlf, "X-Inject");
	assert_refused(empty, "X-Empty has no value");
	assert_refused(noname, "header 2");
	assert_refused(badname, "header 2");
	assert_refused(auth, "authorization");
	assert_refused(tok, "X-Amz-Security-Token");
	assert_refused(sha, "X-Amz-Content-Sha256");
}
END_TEST

/*
 * Each bad input is named, and no message ever holds the secret key or the
 * token, nor the value of a header (which may be a token too).
 */
START_TEST(test_sigv4_errors_name_the_input_never_the_secret)
{
	enum field { AK, SK, TOK, REGION, SERVICE, METHOD, TARGET, HEADERS, NOW };
	static const char *const leak[] = { "Host: " SM_HOST, "X-Tok: TOKEN123\n", NULL };
	static char longsecret[RK_SIGV4_MAX_SECRET + 2];
	static const struct {
		enum field f;
		const char *v;	/* the bad value (HEADERS: NULL or leak; NOW: -1) */
		const char *word;
	} c[] = {
		{ AK, NULL, "access key id" },		{ AK, "", "access key id" },
		{ AK, "AK/ID", "access key id" },	{ SK, NULL, "secret access key" },
		{ SK, "", "secret access key" },	{ SK, longsecret, "longer than" },
		{ TOK, "TOKEN X\r\n", "session token" }, { REGION, NULL, "region" },
		{ REGION, "", "region" },		{ REGION, "us/east", "region" },
		{ SERVICE, NULL, "service" },		{ SERVICE, "", "service" },
		{ METHOD, NULL, "method" },		{ METHOD, "", "method" },
		{ METHOD, "PO ST", "method" },		{ TARGET, "", "target" },
		{ TARGET, "/a\nb", "target" },		{ HEADERS, NULL, "Host" },
		{ HEADERS, "leak", "X-Tok" },		{ NOW, NULL, "time" },
	};

	memset(longsecret, 'k', sizeof(longsecret) - 1);
	for (size_t i = 0; i < RK_ARRAY_SIZE(c); i++) {
		struct rk_sigv4_key key = { AKID, SECRET, "TOKEN123" };
		struct rk_sigv4_req req = sm_req(sm_headers, 0);
		struct rk_sigv4_out out;
		struct rk_error err = { 0 };

		switch (c[i].f) {
		case AK: key.access_key_id = c[i].v; break;
		case SK: key.secret_access_key = c[i].v; break;
		case TOK: key.session_token = c[i].v; break;
		case REGION: req.region = c[i].v; break;
		case SERVICE: req.service = c[i].v; break;
		case METHOD: req.method = c[i].v; break;
		case TARGET: req.target = c[i].v; break;
		case HEADERS: req.headers = c[i].v != NULL ? leak : NULL; break;
		case NOW: req.now = -1; break;
		}
		ck_assert_msg(rk_sigv4_sign(&req, &key, &out, &err) == RK_EINVAL,
			      "case %zu accepted", i);
		ck_assert_msg(strstr(err.msg, c[i].word) != NULL,
			      "case %zu: '%s' does not say '%s'", i, err.msg, c[i].word);
		ck_assert_msg(strstr(err.msg, "wJalr") == NULL && strstr(err.msg, "kkkk") == NULL &&
			      strstr(err.msg, "TOKEN") == NULL,
			      "case %zu: the message holds a secret: %s", i, err.msg);
		ck_assert_ptr_null(out.add_headers);
	}
}
END_TEST

/* The path: dot segments and "//" go with NORMALIZE_PATH and "%" is encoded again; not without. */
START_TEST(test_sigv4_path_and_query_canonical_forms)
{
	static const struct {
		const char *target;
		unsigned flags;
		const char *uri, *query;
	} c[] = {
		{ "/a%20b", RK_SIGV4_NORMALIZE_PATH, "/a%2520b", "" },
		{ "/a%20b", 0, "/a%20b", "" },
		{ "/a/./b/../c//d", RK_SIGV4_NORMALIZE_PATH, "/a/c/d", "" },
		{ "/a/./b/../c//d", 0, "/a/./b/../c//d", "" },
		{ "/a/b/..", RK_SIGV4_NORMALIZE_PATH, "/a/", "" },
		{ "/../..", RK_SIGV4_NORMALIZE_PATH, "/", "" },
		{ "/x%2Fy %7e", 0, "/x%2Fy%20~", "" },
		{ "/$?b=2&a=&&a=1+x&c", RK_SIGV4_NORMALIZE_PATH, "/%24", "a=&a=1%2Bx&b=2&c=" },
		{ "/?k=%e1%88%b4&k=%zz", RK_SIGV4_NORMALIZE_PATH, "/", "k=%25zz&k=%E1%88%B4" },
	};
	static const char *const h[] = { "Host: example.amazonaws.com", NULL };
	struct rk_sigv4_key key = { AKID, SECRET, NULL };

	for (size_t i = 0; i < RK_ARRAY_SIZE(c); i++) {
		struct rk_sigv4_req req = {
			.method = "GET", .target = c[i].target, .headers = h, .region = "us-east-1",
			.service = "service", .now = T_2015,
			.flags = c[i].flags | RK_SIGV4_KEEP_DEBUG,
		};
		struct rk_sigv4_out out;
		char want[256];

		sign_ok(&req, &key, &out);
		snprintf(want, sizeof(want), "GET\n%s\n%s\nhost:", c[i].uri, c[i].query);
		ck_assert_msg(strncmp(out.canonical_request, want, strlen(want)) == 0,
			      "%s: got\n%s", c[i].target, out.canonical_request);
		rk_sigv4_out_free(&out);
	}
}
END_TEST

/*
 * Header canonical form: names lowercased and sorted (a name before the
 * longer names it is a prefix of), values trimmed, duplicates joined.
 */
START_TEST(test_sigv4_header_canonical_form)
{
	static const char *const h[] = {
		"X-Amz-Meta-Test-Two: 2", "Host: example.amazonaws.com",
		"x-amz-meta-test:\t a \t b ",
		"X-AMZ-META-TEST: c", NULL,
	};
	struct rk_sigv4_key key = { AKID, SECRET, NULL };
	struct rk_sigv4_req req = {
		.method = "GET", .target = "/", .headers = h, .region = "us-east-1",
		.service = "service", .now = T_2015, .flags = RK_SIGV4_KEEP_DEBUG,
	};
	struct rk_sigv4_out out;

	sign_ok(&req, &key, &out);
	ck_assert_ptr_nonnull(strstr(out.canonical_request,
				     "\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
				     "x-amz-meta-test:a b,c\nx-amz-meta-test-two:2\n\n"
				     "host;x-amz-date;x-amz-meta-test;x-amz-meta-test-two\n"));
	rk_sigv4_out_free(&out);
}
END_TEST

START_TEST(test_sigv4_helpers)
{
	char d[17], h[65];

	ck_assert_int_eq(rk_sigv4_amz_date(0, d), 0);
	ck_assert_str_eq(d, "19700101T000000Z");
	ck_assert_int_eq(rk_sigv4_amz_date(T_2015, d), 0);
	ck_assert_str_eq(d, "20150830T123600Z");
	ck_assert_int_eq(rk_sigv4_amz_date(-1, d), RK_EINVAL);
	ck_assert_str_eq(d, "");
	/* 10000-01-01T00:00:00Z */
	ck_assert_int_eq(rk_sigv4_amz_date((time_t)253402300800LL, d), RK_EINVAL);
	rk_sigv4_sha256_hex("", 0, h);
	ck_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	rk_sigv4_sha256_hex(SM_BODY, strlen(SM_BODY), h);
	ck_assert_str_eq(h, "ab3032330d192945c13b322cefb6dd64624f73e0cc8ded7f4910d246bb967cb4");
}
END_TEST

Suite *
sigv4_suite(void)
{
	Suite *s = suite_create("sigv4");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_sigv4_every_suite_case_matches);
	tcase_add_test(tc, test_sigv4_secretsmanager_vectors);
	tcase_add_test(tc, test_sigv4_add_headers_contents_and_order);
	tcase_add_test(tc, test_sigv4_session_token_signed_or_omitted);
	tcase_add_test(tc, test_sigv4_x_amz_date_must_be_now);
	tcase_add_test(tc, test_sigv4_host_is_required_once);
	tcase_add_test(tc, test_sigv4_refuses_unsendable_and_owned_headers);
	tcase_add_test(tc, test_sigv4_errors_name_the_input_never_the_secret);
	tcase_add_test(tc, test_sigv4_path_and_query_canonical_forms);
	tcase_add_test(tc, test_sigv4_header_canonical_form);
	tcase_add_test(tc, test_sigv4_helpers);
	suite_add_tcase(s, tc);
	return s;
}
