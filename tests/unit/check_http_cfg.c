/*
 * The connection settings of a remote provider (src/http_cfg.c): defaults
 * copied, overrides, unknown nested keys at their position, ranges; the
 * in-memory PEM fields and insecure_tls (copied deep, the key as a secret;
 * a role given both as a file and in memory refused by rk_http_check).
 */
#include <check.h>
#include <string.h>

#include "rekey/doc.h"
#include "rekey/http.h"
#include "rekey/http_cfg.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "unit.h"

/* ---- config --------------------------------------------------------------- */

#define NAME "t.yaml"

static struct rk_http_cfg
defaults(void)
{
	struct rk_http_cfg c = {
		.connect_timeout_ms = 5000, .total_timeout_ms = 30000, .max_attempts = 5,
		.base_delay_ms = 200, .max_delay_ms = 20000, .cb_failures = 5,
		.cb_cooldown_ms = 30000, .rps = 100, .burst = 10, .concurrency = 16,
		.max_response = 1 << 20, .ca_file = (char *)"/default/ca.pem",
	};
	return c;
}

static int
parse(const char *text, struct rk_http_cfg *out, struct rk_error *err)
{
	struct rk_http_cfg d = defaults();
	struct rk_doc *doc = NULL;
	int r;

	ck_assert_msg(rk_doc_load_string(&doc, NAME, text, strlen(text), err) == 0, "%s",
		      err->msg);
	r = rk_http_cfg_parse(out, doc, rk_doc_root(doc), &d, err);
	rk_doc_free(doc);
	return r;
}

START_TEST(test_cfg_defaults_are_copied)
{
	struct rk_http_cfg c;
	struct rk_error err = { 0 };

	ck_assert_int_eq(parse("type: vault\n", &c, &err), 0);
	ck_assert_int_eq(c.connect_timeout_ms, 5000);
	ck_assert_int_eq(c.total_timeout_ms, 30000);
	ck_assert_int_eq(c.max_attempts, 5);
	ck_assert_int_eq(c.max_delay_ms, 20000);
	ck_assert_int_eq(c.cb_failures, 5);
	ck_assert(c.rps == 100);
	ck_assert_int_eq(c.concurrency, 16);
	ck_assert_uint_eq(c.max_response, 1 << 20);
	ck_assert_str_eq(c.ca_file, "/default/ca.pem");
	ck_assert_ptr_ne(c.ca_file, defaults().ca_file);	/* a copy the caller frees */
	ck_assert_ptr_null(c.ca_path);
	ck_assert_int_eq(c.insecure_http, 0);
	rk_http_cfg_free(&c);
	ck_assert_ptr_null(c.ca_file);
}
END_TEST

START_TEST(test_cfg_overrides)
{
	static const char text[] =
		"type: vault\n"
		"timeout: {connect: 2s, total: 10s}\n"
		"retry: {max_attempts: 7, base_delay: 100ms, max_delay: 3}\n"
		"circuit_breaker: {failures: 9, cooldown: 1m}\n"
		"rate_limit: {rps: 50, burst: 20}\n"
		"concurrency: 8\n"
		"max_response: 2048\n"
		"ca_file: /etc/rekey/ca.pem\n"
		"ca_path: /etc/ssl/certs\n"
		"client_cert_file: /etc/rekey/c.pem\n"
		"client_key_file: /etc/rekey/k.pem\n"
		"insecure_http: true\n";
	struct rk_http_cfg c;
	struct rk_error err = { 0 };

	ck_assert_msg(parse(text, &c, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(c.connect_timeout_ms, 2000);
	ck_assert_int_eq(c.total_timeout_ms, 10000);
	ck_assert_int_eq(c.max_attempts, 7);
	ck_assert_int_eq(c.base_delay_ms, 100);
	ck_assert_int_eq(c.max_delay_ms, 3000);	/* a bare number is seconds */
	ck_assert_int_eq(c.cb_failures, 9);
	ck_assert_int_eq(c.cb_cooldown_ms, 60000);
	ck_assert(c.rps == 50);
	ck_assert_int_eq(c.burst, 20);
	ck_assert_int_eq(c.concurrency, 8);
	ck_assert_uint_eq(c.max_response, 2048);
	ck_assert_str_eq(c.ca_file, "/etc/rekey/ca.pem");
	ck_assert_str_eq(c.ca_path, "/etc/ssl/certs");
	ck_assert_str_eq(c.client_cert_file, "/etc/rekey/c.pem");
	ck_assert_str_eq(c.client_key_file, "/etc/rekey/k.pem");
	ck_assert_int_eq(c.insecure_http, 1);
	rk_http_cfg_free(&c);

	memset(&err, 0, sizeof(err));
	ck_assert_msg(parse("rate_limit: {rps: 0.5}\n", &c, &err) == 0, "%s", err.msg);
	ck_assert(c.rps == 0.5);
	ck_assert_int_eq(c.burst, 10);
	rk_http_cfg_free(&c);
}
END_TEST

START_TEST(test_cfg_unknown_nested_key_names_position)
{
	struct rk_http_cfg c;
	struct rk_error err = { 0 };

	ck_assert_int_eq(parse("type: vault\ntimeout:\n  connect: 2s\n  conect: 1s\n", &c, &err),
			 RK_EINVAL);
	ck_assert_msg(strncmp(err.msg, "t.yaml:4:3: ", 12) == 0, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "'conect'") != NULL, "%s", err.msg);

	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(parse("rate_limit: {rps: 5, write_rps: 50}\n", &c, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "t.yaml:1:") == err.msg, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "write_rps") != NULL, "%s", err.msg);

	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(parse("retry: {max_attempts: three}\n", &c, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "t.yaml:1:") == err.msg, "%s", err.msg);

	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(parse("timeout: 5s\n", &c, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "t.yaml:1:") == err.msg, "%s", err.msg);
}
END_TEST

START_TEST(test_cfg_rejects_out_of_range_values)
{
	static const struct {
		const char *text, *needle;
	} bad[] = {
		{ "retry: {max_attempts: 0}\n", "retry.max_attempts" },
		{ "retry: {max_attempts: 21}\n", "retry.max_attempts" },
		{ "timeout: {total: 11m}\n", "timeout.total" },
		{ "timeout: {connect: 0s}\n", "timeout.connect" },
		{ "retry: {base_delay: 0ms}\n", "retry.base_delay" },
		{ "circuit_breaker: {failures: 0}\n", "circuit_breaker.failures" },
		{ "rate_limit: {rps: 0}\n", "rate_limit.rps" },
		{ "rate_limit: {rps: -3}\n", "rate_limit.rps" },
		{ "rate_limit: {rps: fast}\n", "rate_limit.rps" },
		{ "rate_limit: {rps: 1.}\n", "rate_limit.rps" },
		{ "rate_limit: {rps: .5}\n", "rate_limit.rps" },
		{ "rate_limit: {rps: 1e3}\n", "rate_limit.rps" },
		{ "rate_limit: {rps: 2000000}\n", "rate_limit.rps" },
		{ "rate_limit: {burst: 0}\n", "rate_limit.burst" },
		{ "concurrency: 0\n", "concurrency" },
		{ "concurrency: 5000\n", "concurrency" },
		{ "max_response: 10\n", "max_response" },
		{ "max_response: 1000000000\n", "max_response" },
		{ "ca_file: \"\"\n", "ca_file" },
		{ "insecure_http: yes please\n", "insecure_http" },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		struct rk_http_cfg c;
		struct rk_error err = { 0 };
		ck_assert_msg(parse(bad[i].text, &c, &err) == RK_EINVAL, "accepted %s", bad[i].text);
		ck_assert_msg(strncmp(err.msg, "t.yaml:1:", 9) == 0, "%s", err.msg);
		ck_assert_msg(strstr(err.msg, bad[i].needle) != NULL, "'%s' not in '%s'",
			      bad[i].needle, err.msg);
	}
}
END_TEST

/* ---- in-memory TLS material ---------------------------------------------- */

START_TEST(test_cfg_copy_deep_copies_pem_and_key)
{
	struct rk_http_cfg src = defaults(), dst;
	struct rk_error err = { 0 };

	src.ca_file = NULL;
	src.ca_pem = (char *)"-----BEGIN CERTIFICATE-----\nCA\n";
	src.client_cert_pem = (char *)"-----BEGIN CERTIFICATE-----\nCERT\n";
	src.insecure_tls = 1;
	ck_assert_int_eq(rk_secret_from(&src.client_key_pem, "KEYBYTES", 8, &err), 0);
	ck_assert_int_eq(rk_http_cfg_copy(&dst, &src), 0);
	ck_assert_ptr_ne(dst.ca_pem, src.ca_pem);
	ck_assert_str_eq(dst.ca_pem, src.ca_pem);
	ck_assert_ptr_ne(dst.client_cert_pem, src.client_cert_pem);
	ck_assert_str_eq(dst.client_cert_pem, src.client_cert_pem);
	ck_assert_ptr_nonnull(dst.client_key_pem);
	ck_assert_ptr_ne(dst.client_key_pem, src.client_key_pem);
	ck_assert(rk_secret_equal(dst.client_key_pem, src.client_key_pem));
	ck_assert_int_eq(dst.insecure_tls, 1);
	rk_http_cfg_free(&dst);
	ck_assert_ptr_null(dst.ca_pem);
	ck_assert_ptr_null(dst.client_cert_pem);
	ck_assert_ptr_null(dst.client_key_pem);
	/* The source is untouched by the copy's free. */
	ck_assert_str_eq(rk_secret_str(src.client_key_pem), "KEYBYTES");
	rk_secret_free(src.client_key_pem);
}
END_TEST

START_TEST(test_check_refuses_file_and_memory_for_one_role)
{
	struct rk_http_cfg c = defaults();
	struct rk_error err = { 0 };

	c.ca_file = NULL;
	ck_assert_int_eq(rk_http_check("k", "https://h:1", &c, &err), 0);
	c.ca_pem = (char *)"PEM";
	ck_assert_int_eq(rk_http_check("k", "https://h:1", &c, &err), 0);
	c.ca_file = (char *)"/ca.pem";
	ck_assert_int_eq(rk_http_check("k", "https://h:1", &c, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "both as a file and in memory") != NULL, "%s", err.msg);

	rk_error_clear(&err);
	c = defaults();
	c.ca_file = NULL;
	c.client_cert_file = (char *)"/c.pem";
	c.client_cert_pem = (char *)"PEM";
	ck_assert_int_eq(rk_http_check("k", "https://h:1", &c, &err), RK_EINVAL);

	rk_error_clear(&err);
	c = defaults();
	c.ca_file = NULL;
	c.client_key_file = (char *)"/k.pem";
	ck_assert_int_eq(rk_secret_from(&c.client_key_pem, "K", 1, &err), 0);
	ck_assert_int_eq(rk_http_check("k", "https://h:1", &c, &err), RK_EINVAL);
	rk_secret_free(c.client_key_pem);

	rk_error_clear(&err);
	c = defaults();
	c.ca_file = NULL;
	c.ca_pem = (char *)"";
	ck_assert_int_eq(rk_http_check("k", "https://h:1", &c, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "empty") != NULL, "%s", err.msg);
}
END_TEST

Suite *
http_cfg_suite(void)
{
	Suite *s = suite_create("http_cfg");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_cfg_defaults_are_copied);
	tcase_add_test(tc, test_cfg_overrides);
	tcase_add_test(tc, test_cfg_unknown_nested_key_names_position);
	tcase_add_test(tc, test_cfg_rejects_out_of_range_values);
	tcase_add_test(tc, test_cfg_copy_deep_copies_pem_and_key);
	tcase_add_test(tc, test_check_refuses_file_and_memory_for_one_role);
	suite_add_tcase(s, tc);
	return s;
}
