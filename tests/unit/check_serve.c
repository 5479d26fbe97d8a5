/*
 * The daemon's pieces that need no daemon: the Prometheus text builder
 * (escaping, histograms), the status page (escaping, what it shows) and the
 * HTTP server's token rules (a live server on a loopback port, curl-free:
 * a raw socket).
 */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey/config.h"
#include "rekey/prom.h"
#include "rekey/server.h"
#include "rekey/status_page.h"
#include "unit.h"

START_TEST(test_prom_escapes_labels_and_builds_cumulative_histograms)
{
	struct rk_prom *p = rk_prom_new();
	static const double bounds[3] = { 0.1, 1, 10 };
	static const uint64_t counts[4] = { 2, 0, 3, 1 };
	size_t len = 0;
	char *t;

	ck_assert_ptr_nonnull(p);
	rk_prom_family(p, "x_total", "counter", "Things.");
	rk_prom_sample(p, "x_total", 3, "name", "a\"b\\c\nd", NULL);
	rk_prom_sample(p, "x_total", 0.25, NULL);
	rk_prom_family(p, "h_seconds", "histogram", "Times.");
	rk_prom_histogram(p, "h_seconds", "provider", "v", bounds, counts, 3, 7.5);
	t = rk_prom_finish(p, &len);
	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(len, strlen(t));
	ck_assert_ptr_nonnull(strstr(t, "# HELP x_total Things.\n# TYPE x_total counter\n"));
	ck_assert_ptr_nonnull(strstr(t, "x_total{name=\"a\\\"b\\\\c\\nd\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(t, "x_total 0.25\n"));
	ck_assert_ptr_nonnull(strstr(t, "h_seconds_bucket{provider=\"v\",le=\"0.1\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(t, "h_seconds_bucket{provider=\"v\",le=\"1\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(t, "h_seconds_bucket{provider=\"v\",le=\"10\"} 5\n"));
	ck_assert_ptr_nonnull(strstr(t, "h_seconds_bucket{provider=\"v\",le=\"+Inf\"} 6\n"));
	ck_assert_ptr_nonnull(strstr(t, "h_seconds_sum{provider=\"v\"} 7.5\n"));
	ck_assert_ptr_nonnull(strstr(t, "h_seconds_count{provider=\"v\"} 6\n"));
	free(t);
	p = rk_prom_new();
	rk_prom_process(p);
	t = rk_prom_finish(p, &len);
	ck_assert_ptr_nonnull(strstr(t, "\nprocess_resident_memory_bytes "));
	ck_assert_ptr_nonnull(strstr(t, "\nprocess_open_fds "));
	free(t);
}
END_TEST

START_TEST(test_status_page_escapes_and_shows_what_needs_attention)
{
	json_t *st = json_pack(
		"{s:I, s:{s:b, s:b, s:I, s:I, s:{s:s, s:s, s:I, s:I}}, s:{s:i, s:i, s:i, s:i, s:i},"
		" s:[{s:s, s:s, s:s, s:i, s:s, s:I, s:I, s:s, s:s, s:s, s:s},"
		"    {s:s, s:s, s:s, s:i, s:s, s:I, s:I, s:s, s:s, s:s, s:s}], s:[]}",
		"now", (json_int_t)1800000000, "daemon", "leader", 1, "audit_chain_ok", 1,
		"last_run_at", (json_int_t)0, "last_backup_at", (json_int_t)0, "running", "run_id",
		"r1", "kind", "emergency", "total", (json_int_t)10, "done", (json_int_t)4, "counts",
		"ok", 1, "due", 0, "overdue", 1, "expired", 0, "needs_attention", 0, "secrets",
		"name", "app/<b>x</b>", "provider", "local", "environment", "t", "tier", 0, "state",
		"overdue", "last_rotated", (json_int_t)1700000000, "next_due", (json_int_t)1700003600,
		"last_result", "rotated", "last_run", "r0", "last_error", "", "reason",
		"overdue since <script>", "name", "fine", "provider", "local", "environment", "t",
		"tier", 1, "state", "ok", "last_rotated", (json_int_t)1800000000, "next_due",
		(json_int_t)1800003600, "last_result", "rotated", "last_run", "r1", "last_error", "",
		"reason", "", "unfinished_runs");
	char *h;

	ck_assert_ptr_nonnull(st);
	h = rk_status_page(st);
	ck_assert_ptr_nonnull(h);
	ck_assert_ptr_null(strstr(h, "<b>x</b>"));
	ck_assert_ptr_null(strstr(h, "<script>"));
	ck_assert_ptr_nonnull(strstr(h, "app/&lt;b&gt;x&lt;/b&gt;"));
	ck_assert_ptr_nonnull(strstr(h, "<span id=\"count-overdue\">1</span>"));
	ck_assert_ptr_nonnull(strstr(h, "data-state=\"overdue\""));
	ck_assert_ptr_nonnull(strstr(h, "<span id=\"emergency-progress\">4 of 10</span>"));
	/* "fine" is in the table, not in the attention list. */
	ck_assert_ptr_nonnull(strstr(h, "<tr class=\"secret ok\" data-name=\"fine\""));
	ck_assert_ptr_null(strstr(h, "<li data-name=\"fine\""));
	ck_assert_ptr_nonnull(strstr(h, "<li data-name=\"app/&lt;b&gt;x&lt;/b&gt;\""));
	free(h);
	json_decref(st);
}
END_TEST

/* ---- the server's access rules, over a raw socket ---- */

static void
answer(void *arg, const struct rk_server_req *req, struct rk_server_resp *resp)
{
	char b[256];

	(void)arg;
	snprintf(b, sizeof(b), "{\"token\": \"%s\", \"body\": %zu}",
		 req->token_name ? req->token_name : "", req->body_len);
	rk_server_reply(resp, 200, NULL, b);
}

/* Sends a raw request; returns the status code and copies the response. */
static int
http(int port, const char *req, char *out, size_t n)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), code = -1;
	size_t got = 0;
	ssize_t r;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (got + 1 < n && (r = read(fd, out + got, n - 1 - got)) > 0)
		got += (size_t)r;
	out[got] = '\0';
	close(fd);
	sscanf(out, "HTTP/1.%*d %d", &code);
	return code;
}

static struct rk_server *
serve_with(const char *dir, const char *tokens, mode_t mode, struct rk_error *err, int *rc)
{
	static char path[512];
	struct rk_config_server cfg = { .listen = "127.0.0.1:0", .max_body = 1024, .rate_rps = 1000,
					.rate_burst = 1000, .status_page = 1 };
	struct rk_server *s = NULL;

	snprintf(path, sizeof(path), "%s/tokens", dir);
	memset(err, 0, sizeof(*err));	/* rk_error_set keeps the first error */
	unlink(path);
	if (tokens != NULL) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(fchmod(fd, mode), 0);
		ck_assert_int_eq(write(fd, tokens, strlen(tokens)), (ssize_t)strlen(tokens));
		close(fd);
	}
	cfg.token_file = path;
	*rc = rk_server_start(&s, &cfg, answer, NULL, err);
	return s;
}

START_TEST(test_server_tokens_names_and_refusals)
{
	char dir[512], buf[4096];
	struct rk_error err = { 0 };
	struct rk_server *s;
	struct stat st;
	int rc, port;

	snprintf(dir, sizeof(dir), "%s/srv-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	/* Open to others: refused, naming the file. */
	s = serve_with(dir, "ci:0123456789abcdefXYZ\n", 0644, &err, &rc);
	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_null(s);
	ck_assert_ptr_nonnull(strstr(err.msg, "readable by others"));
	/* Too short a token: refused. */
	s = serve_with(dir, "short\n", 0600, &err, &rc);
	ck_assert_int_lt(rc, 0);
	ck_assert_msg(strstr(err.msg, "shorter than 16") != NULL, "%s", err.msg);
	/* Missing: made with a random token, 0600. */
	s = serve_with(dir, NULL, 0, &err, &rc);
	ck_assert_msg(rc == 0, "%s", err.msg);
	snprintf(buf, sizeof(buf), "%s/tokens", dir);
	ck_assert_int_eq(stat(buf, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_ge(st.st_size, 40);
	rk_server_stop(s);
	s = serve_with(dir, "# ops\nci:0123456789abcdefXYZ\nbare-token-0123456789\n", 0600, &err, &rc);
	ck_assert_msg(rc == 0, "%s", err.msg);
	port = rk_server_port(s);
	ck_assert_int_gt(port, 0);
	ck_assert_int_eq(http(port, "GET /v1/x HTTP/1.0\r\n\r\n", buf, sizeof(buf)), 401);
	ck_assert_ptr_nonnull(strstr(buf, "WWW-Authenticate: Bearer"));
	ck_assert_int_eq(http(port, "GET /v1/x HTTP/1.0\r\nAuthorization: Bearer 0123456789abcdefXYz\r\n\r\n",
			      buf, sizeof(buf)), 401);
	ck_assert_int_eq(http(port, "GET /v1/x HTTP/1.0\r\nAuthorization: Basic 0123456789abcdefXYZ\r\n\r\n",
			      buf, sizeof(buf)), 401);
	ck_assert_int_eq(http(port, "GET /v1/x HTTP/1.0\r\nAuthorization: Bearer 0123456789abcdefXYZ\r\n\r\n",
			      buf, sizeof(buf)), 200);
	ck_assert_ptr_nonnull(strstr(buf, "{\"token\": \"ci\""));
	ck_assert_int_eq(http(port, "GET /v1/x HTTP/1.0\r\nAuthorization: bearer bare-token-0123456789\r\n\r\n",
			      buf, sizeof(buf)), 200);
	ck_assert_ptr_nonnull(strstr(buf, "{\"token\": \"default\""));
	/* Open paths need nothing; the page from loopback needs nothing either. */
	ck_assert_int_eq(http(port, "GET /metrics HTTP/1.0\r\n\r\n", buf, sizeof(buf)), 200);
	ck_assert_int_eq(http(port, "GET / HTTP/1.0\r\n\r\n", buf, sizeof(buf)), 200);
	/* A body over max_body: 413, the handler never sees it. */
	{
		char big[2300];
		snprintf(big, sizeof(big), "POST /v1/x HTTP/1.0\r\nAuthorization: Bearer 0123456789abcdefXYZ\r\n"
			 "Content-Length: 2000\r\n\r\n%02000d", 0);
		ck_assert_int_eq(http(port, big, buf, sizeof(buf)), 413);
		ck_assert_ptr_null(strstr(buf, "\"token\""));
	}
	{
		struct rk_server_stats ss;
		rk_server_stats(s, &ss);
		ck_assert_uint_eq(ss.unauthorized, 3);
		ck_assert_uint_eq(ss.requests_by_code[413], 1);
	}
	rk_server_stop(s);
	rk_test_rm_rf(dir);
}
END_TEST

Suite *
serve_suite(void)
{
	Suite *s = suite_create("serve");
	TCase *tc = tcase_create("serve");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tc, test_prom_escapes_labels_and_builds_cumulative_histograms);
	tcase_add_test(tc, test_status_page_escapes_and_shows_what_needs_attention);
	tcase_add_test(tc, test_server_tokens_names_and_refusals);
	suite_add_tcase(s, tc);
	return s;
}
