/*
 * The provider kit (providers/kit.c): each HTTP status to its code, each
 * shape of a response body, credential files (trimming, empty, mode,
 * noticing a rewrite) and numeric version ids (round trip and rejects).
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey/provider_kit.h"
#include "unit.h"

static const struct rk_provider_ops fake_ops = { .type = "fake" };
static const struct rk_provider fake = { .ops = &fake_ops, .name = "fk" };

static struct rk_http_resp
resp_of(long status, const char *body)
{
	struct rk_http_resp r = { 0 };

	r.status = status;
	r.body = (char *)body;
	r.len = strlen(body);
	return r;
}

/* ---- status ---- */

START_TEST(test_kit_each_status_maps_to_its_code)
{
	static const struct { long status; int code; } t[] = {
		{ 400, RK_EPROTO },	/* the service refused a request rekey built: exit 1 */
		{ 401, RK_EAUTH },
		{ 403, RK_EAUTH },
		{ 404, RK_ENOTFOUND },
		{ 412, RK_ETRANSIENT },
		{ 429, RK_ETRANSIENT },
		{ 500, RK_ETRANSIENT },
		{ 502, RK_ETRANSIENT },
		{ 503, RK_ETRANSIENT },
		{ 504, RK_ETRANSIENT },
		{ 501, RK_EPROTO },
		{ 505, RK_EPROTO },
		{ 409, RK_EPROTO },
		{ 418, RK_EPROTO },
		{ 302, RK_EPROTO },
		{ 201, RK_EPROTO },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct rk_http_resp resp = resp_of(t[i].status, "");
		struct rk_error err = { 0 };
		ck_assert_msg(rk_kit_status_code(t[i].status) == t[i].code, "HTTP %ld", t[i].status);
		ck_assert_int_eq(rk_kit_status_error(&fake, "read", &resp, NULL, &err), t[i].code);
		ck_assert_int_eq(err.code, t[i].code);
		ck_assert_int_eq(err.http_status, t[i].status);
		ck_assert_int_ne(rk_exit_code(err.code), 2);	/* never the user's input */
	}
}
END_TEST

static int
words_of_body(const struct rk_http_resp *resp, char *out, size_t n)
{
	snprintf(out, n, "said: %s", resp->body);
	return 0;
}

static int
throttled(const struct rk_http_resp *resp, char *out, size_t n)
{
	(void)resp;
	snprintf(out, n, "ThrottlingException");
	return RK_ETRANSIENT;
}

/* Only a transient failure the server may have acted on needs a read-back. */
START_TEST(test_kit_outcome_unknown_only_after_possible_processing)
{
	static const struct { int code; long status; int unknown; } cases[] = {
		{ RK_ETRANSIENT, 0, 1 },	/* reset, timeout: no answer */
		{ RK_ETRANSIENT, 500, 1 }, { RK_ETRANSIENT, 502, 1 }, { RK_ETRANSIENT, 504, 1 },
		{ RK_ETRANSIENT, 503, 0 },	/* unavailable: not processed */
		{ RK_ETRANSIENT, 429, 0 },	/* throttled: not processed */
		{ RK_ECONFLICT, 409, 0 }, { RK_EAUTH, 403, 0 }, { RK_EPROTO, 500, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rk_error e = { 0 };
		e.code = cases[i].code;
		e.http_status = cases[i].status;
		ck_assert_msg(rk_kit_outcome_unknown(&e) == cases[i].unknown, "case %zu", i);
	}
}
END_TEST

START_TEST(test_kit_status_error_names_provider_call_status_and_text)
{
	struct rk_http_resp resp = resp_of(429, "slow down");
	struct rk_error err = { 0 };

	resp.retry_after = 2.5;
	ck_assert_int_eq(rk_kit_status_error(&fake, "write", &resp, words_of_body, &err),
			 RK_ETRANSIENT);
	ck_assert_str_eq(err.msg, "fake fk: write: HTTP 429: said: slow down");
	ck_assert(err.retry_after == 2.5);

	rk_error_clear(&err);
	resp = resp_of(403, "");
	ck_assert_int_eq(rk_kit_status_error(&fake, "login", &resp, NULL, &err), RK_EAUTH);
	ck_assert_str_eq(err.msg, "fake fk: login: HTTP 403");	/* no dangling ": " */
}
END_TEST

START_TEST(test_kit_errtext_may_decide_the_code_over_the_status)
{
	struct rk_http_resp resp = resp_of(400, "{}");
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_kit_status_error(&fake, "put", &resp, throttled, &err), RK_ETRANSIENT);
	ck_assert_int_eq(err.http_status, 400);
	ck_assert_str_eq(err.msg, "fake fk: put: HTTP 400: ThrottlingException");
}
END_TEST

/* ---- bodies ---- */

/* why: how the message must end its reason; NULL: any words (the JSON parser's own). */
static void
assert_not_object(const char *body, const char *why)
{
	struct rk_http_resp resp = resp_of(200, body);
	struct rk_error err = { 0 };
	json_t *j = json_true();	/* a singleton: must come back NULL */
	char want[300];

	ck_assert_int_eq(rk_kit_json_object(&fake, "read", &resp, &j, &err), RK_EPROTO);
	ck_assert_ptr_null(j);
	snprintf(want, sizeof(want),
		 "fake fk: read: the response (HTTP 200, %zu bytes) is not a JSON object: %s",
		 strlen(body), why ? why : "");
	ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "'%s' for '%s'", err.msg, body);
	if (why == NULL)
		ck_assert_msg(err.msg[strlen(want)] != '\0', "no reason for '%s'", body);
	ck_assert_int_eq(rk_exit_code(err.code), 1);
}

START_TEST(test_kit_body_empty_is_named)
{
	assert_not_object("", "empty body");
}
END_TEST

START_TEST(test_kit_body_html_page_is_named)
{
	assert_not_object("<html><body>502 Bad Gateway</body></html>",
			  "an HTML page (a proxy or load balancer error?)");
	assert_not_object("\r\n  <!DOCTYPE html>", "an HTML page");
}
END_TEST

START_TEST(test_kit_body_invalid_json_is_named_with_the_parser_error)
{
	assert_not_object("{\"data\": ", NULL);
	assert_not_object("{\"a\": 1,}", NULL);
}
END_TEST

START_TEST(test_kit_body_json_that_is_not_an_object_is_named)
{
	assert_not_object("[1, 2]", "a JSON array");
	assert_not_object("\"x\"", "a JSON string");
	assert_not_object("42", "a JSON number");
	assert_not_object("null", "JSON null");
	assert_not_object("true", "a JSON boolean");
}
END_TEST

START_TEST(test_kit_body_good_object_is_returned)
{
	struct rk_http_resp resp = resp_of(200, "{\"data\": {\"version\": 3}}");
	struct rk_error err = { 0 };
	json_t *j = NULL;

	ck_assert_int_eq(rk_kit_json_object(&fake, "read", &resp, &j, &err), 0);
	ck_assert_int_eq(err.code, 0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "data"), "version")),
			 3);
	json_decref(j);
	j = NULL;
	ck_assert_int_eq(rk_kit_expect_json(&fake, "read", &resp, NULL, &j, &err), 0);
	ck_assert(json_is_object(j));
	json_decref(j);
}
END_TEST

START_TEST(test_kit_expect_json_checks_the_status_first)
{
	struct rk_http_resp resp = resp_of(404, "{\"errors\": []}");
	struct rk_error err = { 0 };
	json_t *j = NULL;

	ck_assert_int_eq(rk_kit_expect_json(&fake, "read", &resp, NULL, &j, &err), RK_ENOTFOUND);
	ck_assert_ptr_null(j);
	ck_assert_str_eq(err.msg, "fake fk: read: HTTP 404");
	rk_error_clear(&err);
	resp = resp_of(500, "<html>oops</html>");	/* the status decides, not the body */
	ck_assert_int_eq(rk_kit_expect_json(&fake, "read", &resp, NULL, &j, &err), RK_ETRANSIENT);
}
END_TEST

/* ---- credential files ---- */

static void
cred_path(char *buf, size_t n, const char *name, const char *text, mode_t mode)
{
	snprintf(buf, n, "%s/%s", rk_test_base_dir, name);
	rk_test_write(buf, text);
	ck_assert_int_eq(chmod(buf, mode), 0);
}

START_TEST(test_kit_cred_file_is_trimmed_into_a_secret)
{
	struct rk_cred_file cf;
	struct rk_secret *s = NULL;
	struct rk_error err = { 0 };
	char path[128];

	cred_path(path, sizeof(path), "trim", "s.tok en \r\n \n", 0600);
	rk_cred_file_init(&cf, path, 0, RK_CRED_PRIVATE);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 1);
	ck_assert_uint_eq(rk_secret_len(s), 8);
	ck_assert_str_eq(rk_secret_str(s), "s.tok en");
	rk_secret_free(s);
}
END_TEST

START_TEST(test_kit_cred_file_empty_is_an_auth_error)
{
	static const char *const bodies[] = { "", "\n", " \r\n" };

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct rk_cred_file cf;
		struct rk_secret *s = NULL;
		struct rk_error err = { 0 };
		char path[128], want[200];

		cred_path(path, sizeof(path), "empty", bodies[i], 0600);
		rk_cred_file_init(&cf, path, 0, RK_CRED_PRIVATE);
		ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), RK_EAUTH);
		ck_assert_ptr_null(s);
		snprintf(want, sizeof(want), "%s is empty", path);
		ck_assert_str_eq(err.msg, want);
	}
}
END_TEST

START_TEST(test_kit_cred_file_open_to_others_is_refused_naming_the_fix)
{
	struct rk_cred_file cf;
	struct rk_secret *s = NULL;
	struct rk_error err = { 0 };
	char path[128], want[400];

	cred_path(path, sizeof(path), "open", "tok\n", 0644);
	rk_cred_file_init(&cf, path, 0, RK_CRED_PRIVATE);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), RK_EAUTH);
	ck_assert_ptr_null(s);
	snprintf(want, sizeof(want), "%s holds a credential but is open to group or others (mode "
		 "0644); fix it with: chmod 600 %s", path, path);
	ck_assert_str_eq(err.msg, want);
	/* group-only access counts too */
	rk_error_clear(&err);
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), RK_EAUTH);
	/* without RK_CRED_PRIVATE (a service account JWT) the mode is not checked */
	rk_error_clear(&err);
	rk_cred_file_init(&cf, path, 0, 0);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 1);
	ck_assert_str_eq(rk_secret_str(s), "tok");
	rk_secret_free(s);
}
END_TEST

START_TEST(test_kit_cred_file_missing_or_too_large_is_an_error)
{
	struct rk_cred_file cf;
	struct rk_secret *s = NULL;
	struct rk_error err = { 0 };
	char path[128];

	snprintf(path, sizeof(path), "%s/none", rk_test_base_dir);
	rk_cred_file_init(&cf, path, 0, RK_CRED_PRIVATE);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), RK_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, "cannot open"));
	rk_error_clear(&err);
	cred_path(path, sizeof(path), "big", "0123456789", 0600);
	rk_cred_file_init(&cf, path, 9, RK_CRED_PRIVATE);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "larger than the limit of 9 bytes"));
	rk_error_clear(&err);
	rk_cred_file_init(&cf, path, 10, RK_CRED_PRIVATE);	/* exactly the limit: fine */
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 1);
	rk_secret_free(s);
}
END_TEST

START_TEST(test_kit_cred_file_is_read_again_only_when_it_changed)
{
	struct rk_cred_file cf;
	struct rk_secret *s = NULL, *before;
	struct rk_error err = { 0 };
	struct timespec ts[2] = { { 1000000, 0 }, { 1000000, 0 } };
	char path[128], tmp[140];

	cred_path(path, sizeof(path), "agent-sink", "one\n", 0600);
	rk_cred_file_init(&cf, path, 0, RK_CRED_PRIVATE);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 1);
	ck_assert_str_eq(rk_secret_str(s), "one");
	before = s;
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 0);	/* unchanged */
	ck_assert_ptr_eq(s, before);
	ck_assert_int_eq(rk_cred_file_read(&cf, 1, &s, &err), 1);	/* forced */
	ck_assert_str_eq(rk_secret_str(s), "one");

	/* rewritten in place with a new size */
	rk_test_write(path, "second\n");
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 1);
	ck_assert_str_eq(rk_secret_str(s), "second");

	/* the same size: the mtime tells */
	rk_test_write(path, "third!\n");
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 1);
	ck_assert_str_eq(rk_secret_str(s), "third!");

	/* replaced by rename (how Vault Agent writes): a new inode, same size and mtime */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	rk_test_write(tmp, "fourth\n");
	ck_assert_int_eq(chmod(tmp, 0600), 0);
	ck_assert_int_eq(utimensat(AT_FDCWD, tmp, ts, 0), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 1);
	ck_assert_str_eq(rk_secret_str(s), "fourth");

	/* a rewrite that fails to read keeps the secret in hand and is tried again */
	rk_test_write(path, "\n");
	before = s;
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), RK_EAUTH);
	ck_assert_ptr_eq(s, before);
	ck_assert_str_eq(rk_secret_str(s), "fourth");
	rk_error_clear(&err);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), RK_EAUTH);
	rk_error_clear(&err);
	rk_test_write(path, "fifth\n");
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 1);
	ck_assert_str_eq(rk_secret_str(s), "fifth");

	/* gone after a good read: the secret in hand is kept until a forced read */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rk_cred_file_read(&cf, 0, &s, &err), 0);
	ck_assert_int_eq(rk_cred_file_read(&cf, 1, &s, &err), RK_ENOTFOUND);
	ck_assert_str_eq(rk_secret_str(s), "fifth");
	rk_secret_free(s);
}
END_TEST

/* ---- version ids ---- */

START_TEST(test_kit_version_round_trip)
{
	static const long ns[] = { 1, 2, 9, 10, 42, 99999999, 100000000, 1L << 40 };

	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		struct rk_version v;
		struct rk_error err = { 0 };
		char want[32];
		long back = -1;

		rk_version_set(&v, ns[i]);
		snprintf(want, sizeof(want), "%ld", ns[i]);
		ck_assert_str_eq(v.id, want);
		ck_assert_int_eq(rk_version_parse(&v, &back, "vault", &err), 0);
		ck_assert_int_eq(back, ns[i]);
	}
}
END_TEST

START_TEST(test_kit_version_empty_is_no_version)
{
	struct rk_version v = { "7" };
	struct rk_error err = { 0 };
	long n = -1;

	rk_version_set(&v, 0);
	ck_assert_str_eq(v.id, "");
	ck_assert_int_eq(rk_version_parse(&v, &n, "vault", &err), 0);
	ck_assert_int_eq(n, 0);
	rk_version_set(&v, -3);
	ck_assert_str_eq(v.id, "");
	n = -1;
	ck_assert_int_eq(rk_version_parse(NULL, &n, "vault", &err), 0);
	ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_kit_version_rejects_zero_negative_non_numeric_and_overflow)
{
	static const char *const bad[] = {
		"0", "-1", "-0", "abc", "12a", "1.5", " 7", "7 ", "+7", "007", "0x10",
		"1099511627777",		/* 2^40 + 1 */
		"99999999999999999999",		/* past long long */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rk_version v;
		struct rk_error err = { 0 };
		char want[200];
		long n = 12345;

		snprintf(v.id, sizeof(v.id), "%s", bad[i]);
		ck_assert_msg(rk_version_parse(&v, &n, "local store", &err) == RK_EINVAL, "'%s'",
			      bad[i]);
		ck_assert_int_eq(n, 12345);	/* untouched */
		snprintf(want, sizeof(want), "'%s' is not a local store version number", bad[i]);
		ck_assert_str_eq(err.msg, want);
	}
}
END_TEST

Suite *
kit_suite(void)
{
	Suite *s = suite_create("kit");
	TCase *th = tcase_create("http");
	TCase *tc = tcase_create("cred-file");
	TCase *tv = tcase_create("version");

	tcase_add_test(th, test_kit_each_status_maps_to_its_code);
	tcase_add_test(th, test_kit_outcome_unknown_only_after_possible_processing);
	tcase_add_test(th, test_kit_status_error_names_provider_call_status_and_text);
	tcase_add_test(th, test_kit_errtext_may_decide_the_code_over_the_status);
	tcase_add_test(th, test_kit_body_empty_is_named);
	tcase_add_test(th, test_kit_body_html_page_is_named);
	tcase_add_test(th, test_kit_body_invalid_json_is_named_with_the_parser_error);
	tcase_add_test(th, test_kit_body_json_that_is_not_an_object_is_named);
	tcase_add_test(th, test_kit_body_good_object_is_returned);
	tcase_add_test(th, test_kit_expect_json_checks_the_status_first);
	suite_add_tcase(s, th);

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tc, test_kit_cred_file_is_trimmed_into_a_secret);
	tcase_add_test(tc, test_kit_cred_file_empty_is_an_auth_error);
	tcase_add_test(tc, test_kit_cred_file_open_to_others_is_refused_naming_the_fix);
	tcase_add_test(tc, test_kit_cred_file_missing_or_too_large_is_an_error);
	tcase_add_test(tc, test_kit_cred_file_is_read_again_only_when_it_changed);
	suite_add_tcase(s, tc);

	tcase_add_test(tv, test_kit_version_round_trip);
	tcase_add_test(tv, test_kit_version_empty_is_no_version);
	tcase_add_test(tv, test_kit_version_rejects_zero_negative_non_numeric_and_overflow);
	suite_add_tcase(s, tv);
	return s;
}
