/*
 * The shared HTTP client (src/http.c): the pure pieces (backoff, Retry-After,
 * circuit breaker, token bucket, config parsing) and whole requests against a
 * scripted HTTP server that runs in the test process: retries, Retry-After,
 * hangs, non-idempotent requests, size limits, http:// refusal, the breaker
 * failing fast without connecting, connection reuse and the concurrency cap.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "rekey/doc.h"
#include "rekey/http.h"
#include "rekey/log.h"
#include "rekey/util.h"
#include "unit.h"

/* ---- backoff -------------------------------------------------------------- */

static int64_t
expect_cap(int attempt, int64_t base, int64_t max)
{
	int64_t cap = base;

	for (int i = 0; i < attempt && cap < max; i++)
		cap = cap > max / 2 ? max : cap * 2;
	return cap < max ? cap : max;
}

START_TEST(test_backoff_stays_within_full_jitter_cap)
{
	static const uint32_t rnds[] = { 0, 1, 12345, 0x7fffffffu, 0x80000000u, 0xfffffffeu,
					 0xffffffffu };

	for (int attempt = 0; attempt < 70; attempt++)
		for (size_t i = 0; i < RK_ARRAY_SIZE(rnds); i++) {
			int64_t d = rk_backoff_ms(attempt, 200, 20000, rnds[i]);
			ck_assert_int_ge(d, 0);
			ck_assert_int_le(d, expect_cap(attempt, 200, 20000));
		}
	ck_assert_int_eq(rk_backoff_ms(0, 200, 20000, 0), 0);
	/* The top draw reaches the cap (within rounding). */
	ck_assert_int_ge(rk_backoff_ms(3, 200, 20000, 0xffffffffu), 1599);
	ck_assert_int_ge(rk_backoff_ms(30, 200, 20000, 0xffffffffu), 19999);
	ck_assert_int_eq(rk_backoff_ms(5, 0, 20000, 0xffffffffu), 0);
}
END_TEST

START_TEST(test_backoff_spreads_over_the_whole_range)
{
	int small = 0, large = 0;
	int64_t cap = expect_cap(5, 100, 10000);	/* 3200 */

	for (uint32_t i = 0; i < 1000; i++) {
		int64_t d = rk_backoff_ms(5, 100, 10000, i * 4294967u);
		if (d < cap / 4)
			small++;
		if (d > cap * 3 / 4)
			large++;
	}
	ck_assert_int_gt(small, 150);
	ck_assert_int_gt(large, 150);
}
END_TEST

START_TEST(test_backoff_does_not_overflow_at_large_attempts)
{
	int64_t max = INT64_MAX / 2;

	for (int attempt = 60; attempt < 130; attempt++) {
		int64_t d = rk_backoff_ms(attempt, 1000, max, 0xffffffffu);
		ck_assert_int_ge(d, 0);
		ck_assert_int_le(d, max);
	}
	ck_assert_int_le(rk_backoff_ms(62, INT64_MAX, INT64_MAX, 0xffffffffu), INT64_MAX);
	ck_assert_int_ge(rk_backoff_ms(62, INT64_MAX, INT64_MAX, 0xffffffffu), 0);
	ck_assert_int_eq(rk_backoff_ms(62, 200, 20000, 0), 0);
	ck_assert_int_le(rk_backoff_ms(62, 200, 20000, 0xffffffffu), 20000);
	ck_assert_int_le(rk_backoff_ms(-3, 200, 20000, 0xffffffffu), 200);
}
END_TEST

/* ---- Retry-After ---------------------------------------------------------- */

#define T_1994 784111777LL	/* Sun, 06 Nov 1994 08:49:37 GMT */

START_TEST(test_retry_after_delta_seconds)
{
	double s = -1;

	ck_assert_int_eq(rk_parse_retry_after("0", 0, &s), 0);
	ck_assert(s == 0);
	ck_assert_int_eq(rk_parse_retry_after("3", 0, &s), 0);
	ck_assert(s == 3);
	ck_assert_int_eq(rk_parse_retry_after(" 120 ", 0, &s), 0);
	ck_assert(s == 120);
	/* RFC 9111 1.2.2: too large to represent means 2^31. */
	ck_assert_int_eq(rk_parse_retry_after("99999999999999999999999", 0, &s), 0);
	ck_assert(s == 2147483648.0);
}
END_TEST

START_TEST(test_retry_after_http_dates)
{
	double s = -1;

	ck_assert_int_eq(rk_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", T_1994 - 30, &s), 0);
	ck_assert(s == 30);
	/* The obsolete forms every recipient must still accept. */
	ck_assert_int_eq(rk_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", T_1994 - 30, &s), 0);
	ck_assert(s == 30);
	ck_assert_int_eq(rk_parse_retry_after("Sun Nov  6 08:49:37 1994", T_1994 - 30, &s), 0);
	ck_assert(s == 30);
	ck_assert_int_eq(rk_parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800 - 5, &s), 0);
	ck_assert(s == 5);
	/* A date in the past asks for no wait at all. */
	ck_assert_int_eq(rk_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", T_1994 + 100, &s), 0);
	ck_assert(s == 0);
	ck_assert_int_eq(rk_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", T_1994, &s), 0);
	ck_assert(s == 0);
}
END_TEST

START_TEST(test_retry_after_rejects_garbage_and_negatives)
{
	static const char *const bad[] = {
		"", "   ", "soon", "-1", "-0", "+5", "1.5", "5s", "0x10",
		"Sun, 06 Nov 1994 08:49:37 UTC", "sun, 06 Nov 1994 08:49:37 GMT",
		"Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 29 Feb 2023 08:49:37 GMT",
		"Sun, 06 Nov 1994 24:49:37 GMT", "Sun, 06 Nov 1994 08:60:37 GMT",
		"Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT x",
		"Sun, 6 Nov 1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994",
		"Sunday, 06 Nov 1994 08:49:37 GMT",
	};
	double s = 42;

	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++)
		ck_assert_msg(rk_parse_retry_after(bad[i], T_1994, &s) == RK_EINVAL,
			      "accepted '%s'", bad[i]);
	ck_assert(s == 42);
}
END_TEST

/* ---- circuit breaker ------------------------------------------------------ */

START_TEST(test_breaker_opens_after_threshold_and_fails_fast)
{
	struct rk_breaker b;

	rk_breaker_init(&b, 3, 1000);
	ck_assert_int_eq(b.state, RK_BREAKER_CLOSED);
	/* A success in between resets the count: failures must be consecutive. */
	rk_breaker_record(&b, 0, 0);
	rk_breaker_record(&b, 0, 0);
	rk_breaker_record(&b, 1, 0);
	rk_breaker_record(&b, 0, 0);
	rk_breaker_record(&b, 0, 0);
	ck_assert_int_eq(b.state, RK_BREAKER_CLOSED);
	ck_assert_int_eq(rk_breaker_allow(&b, 10), 1);
	rk_breaker_record(&b, 0, 100);
	ck_assert_int_eq(b.state, RK_BREAKER_OPEN);
	ck_assert_int_eq(b.opened_at_ms, 100);
	for (int64_t t = 100; t < 1100; t += 99)
		ck_assert_int_eq(rk_breaker_allow(&b, t), 0);
	/* A straggler's failure does not extend the cooldown. */
	rk_breaker_record(&b, 0, 900);
	ck_assert_int_eq(b.opened_at_ms, 100);
}
END_TEST

START_TEST(test_breaker_half_open_admits_one_probe)
{
	struct rk_breaker b;

	rk_breaker_init(&b, 1, 1000);
	rk_breaker_record(&b, 0, 0);
	ck_assert_int_eq(b.state, RK_BREAKER_OPEN);
	ck_assert_int_eq(rk_breaker_allow(&b, 999), 0);
	ck_assert_int_eq(rk_breaker_allow(&b, 1000), 1);
	ck_assert_int_eq(b.state, RK_BREAKER_HALF_OPEN);
	ck_assert_int_eq(b.probe_in_flight, 1);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(rk_breaker_allow(&b, 1001 + i), 0);
	/* The probe succeeded: closed, everyone may go. */
	rk_breaker_record(&b, 1, 1010);
	ck_assert_int_eq(b.state, RK_BREAKER_CLOSED);
	ck_assert_int_eq(b.failures, 0);
	ck_assert_int_eq(rk_breaker_allow(&b, 1011), 1);
	ck_assert_int_eq(rk_breaker_allow(&b, 1011), 1);
}
END_TEST

START_TEST(test_breaker_failed_probe_reopens_with_new_cooldown)
{
	struct rk_breaker b;

	rk_breaker_init(&b, 2, 500);
	rk_breaker_record(&b, 0, 0);
	rk_breaker_record(&b, 0, 0);
	ck_assert_int_eq(b.state, RK_BREAKER_OPEN);
	ck_assert_int_eq(rk_breaker_allow(&b, 600), 1);
	rk_breaker_record(&b, 0, 700);
	ck_assert_int_eq(b.state, RK_BREAKER_OPEN);
	ck_assert_int_eq(b.opened_at_ms, 700);
	ck_assert_int_eq(b.probe_in_flight, 0);
	ck_assert_int_eq(rk_breaker_allow(&b, 1100), 0);	/* old cooldown would have passed */
	ck_assert_int_eq(rk_breaker_allow(&b, 1200), 1);
	ck_assert_int_eq(rk_breaker_allow(&b, 1200), 0);
	rk_breaker_record(&b, 1, 1250);
	ck_assert_int_eq(b.state, RK_BREAKER_CLOSED);
}
END_TEST

/* ---- token bucket --------------------------------------------------------- */

START_TEST(test_bucket_burst_then_rate)
{
	struct rk_bucket b;

	rk_bucket_init(&b, 10, 3, 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 100);
	ck_assert_int_eq(rk_bucket_take(&b, 50), 50);
	ck_assert_int_eq(rk_bucket_take(&b, 100), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 100), 100);
	ck_assert_int_eq(rk_bucket_take(&b, 200), 0);
}
END_TEST

START_TEST(test_bucket_does_not_accumulate_beyond_burst)
{
	struct rk_bucket b;

	rk_bucket_init(&b, 10, 2, 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	/* An hour idle still buys only `burst` tokens. */
	ck_assert_int_eq(rk_bucket_take(&b, 3600000), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 3600000), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 3600000), 100);
	/* A clock going backwards neither refills nor breaks it. */
	ck_assert_int_gt(rk_bucket_take(&b, 1000), 0);
}
END_TEST

START_TEST(test_bucket_slow_and_unlimited_rates)
{
	struct rk_bucket b;

	rk_bucket_init(&b, 0.5, 1, 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 2000);
	ck_assert_int_eq(rk_bucket_take(&b, 1500), 500);
	rk_bucket_init(&b, 0, 1, 0);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
}
END_TEST

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

/* ---- a scripted HTTP server on 127.0.0.1 ------------------------------------ */

enum step_kind {
	S_REPLY,	/* send raw, keep the connection */
	S_REPLY_CLOSE,	/* send raw, then close */
	S_HANG,		/* never answer; wait for the client to give up */
	S_CLOSE,	/* close without a byte of answer */
};

struct step {
	enum step_kind kind;
	const char *raw;
	int delay_ms;	/* before answering */
};

/* One server per test process (CK_FORK): a plain static is enough. */
static struct {
	int fd, port;
	const struct step *script;
	int nsteps;
	pthread_mutex_t mu;
	int conns, reqs, inflight, max_inflight;
	char last[8][2048];	/* the latest requests, head and body */
} srv = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char OK200[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
static const char E503[] =
	"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 21\r\n\r\n{\"errors\":[\"sealed\"]}";
static const char E404[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 13\r\n\r\n{\"errors\":[]}";

static void
msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Reads one request (head + Content-Length body); 0 at EOF or error. */
static size_t
read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0, need = 0;
	char *end = NULL;

	for (;;) {
		ssize_t n;
		if (end == NULL && (end = memmem(buf, len, "\r\n\r\n", 4)) != NULL) {
			const char *cl = NULL;
			for (char *p = buf; p < end; p++)
				if ((p == buf || p[-1] == '\n') &&
				    strncasecmp(p, "content-length:", 15) == 0)
					cl = p + 15;
			need = (size_t)(end - buf) + 4 + (cl ? strtoul(cl, NULL, 10) : 0);
		}
		if (end != NULL && len >= need)
			return len;
		if (len + 1 >= cap)
			return len;
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
	}
}

static void *
serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static char scratch[1];
	char buf[16384];

	for (;;) {
		size_t n = read_request(fd, buf, sizeof(buf));
		struct step st;
		int i;

		if (n == 0)
			break;
		pthread_mutex_lock(&srv.mu);
		i = srv.reqs++;
		st = srv.script[i < srv.nsteps ? i : srv.nsteps - 1];
		snprintf(srv.last[i % 8], sizeof(srv.last[0]), "%.*s", (int)n, buf);
		if (++srv.inflight > srv.max_inflight)
			srv.max_inflight = srv.inflight;
		pthread_mutex_unlock(&srv.mu);
		if (st.delay_ms)
			msleep(st.delay_ms);
		pthread_mutex_lock(&srv.mu);
		srv.inflight--;
		pthread_mutex_unlock(&srv.mu);
		if (st.kind == S_HANG) {
			while (read(fd, scratch, sizeof(scratch)) > 0)
				;
			break;
		}
		if (st.kind == S_CLOSE)
			break;
		if (send(fd, st.raw, strlen(st.raw), MSG_NOSIGNAL) < 0 || st.kind == S_REPLY_CLOSE)
			break;
	}
	close(fd);
	return NULL;
}

static void *
serve(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_t t;
		int c = accept(srv.fd, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		pthread_mutex_lock(&srv.mu);
		srv.conns++;
		pthread_mutex_unlock(&srv.mu);
		if (pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)c) != 0)
			close(c);
		else
			pthread_detach(t);
	}
}

static void
server_start(const struct step *script, int nsteps)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	pthread_t t;

	srv.script = script;
	srv.nsteps = nsteps;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(srv.fd, 0);
	ck_assert_int_eq(bind(srv.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(srv.fd, 64), 0);
	ck_assert_int_eq(getsockname(srv.fd, (struct sockaddr *)&a, &alen), 0);
	srv.port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&t, NULL, serve, NULL), 0);
	pthread_detach(t);
}

static int
server_count(int *field)
{
	int v;

	pthread_mutex_lock(&srv.mu);
	v = *field;
	pthread_mutex_unlock(&srv.mu);
	return v;
}

static struct rk_http_cfg
fast_cfg(void)
{
	struct rk_http_cfg c = {
		.connect_timeout_ms = 200, .total_timeout_ms = 300, .max_attempts = 3,
		.base_delay_ms = 10, .max_delay_ms = 50, .cb_failures = 100,
		.cb_cooldown_ms = 1000, .rps = 0, .burst = 1, .concurrency = 4,
		.max_response = 1 << 20, .insecure_http = 1,
	};
	return c;
}

static struct rk_http *
client(const struct rk_http_cfg *cfg)
{
	struct rk_http *h = NULL;
	struct rk_error err = { 0 };
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", srv.port);
	ck_assert_msg(rk_http_new(&h, "vault", url, cfg, &err) == 0, "%s", err.msg);
	return h;
}

static const struct rk_http_req GET_KV = {
	.method = "GET", .path = "/v1/secret/data/payments/db", .idempotent = 1,
};

START_TEST(test_e2e_retries_503_then_succeeds_on_one_connection)
{
	static const struct step script[] = { { S_REPLY, E503, 0 }, { S_REPLY, E503, 0 },
					      { S_REPLY, OK200, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_http_stats st;
	struct rk_error err = { 0 };
	struct rk_http *h;

	server_start(script, 3);
	h = client(&cfg);
	ck_assert_msg(rk_http_do(h, &GET_KV, &resp, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_int_eq(resp.attempts, 3);
	ck_assert_str_eq(resp.body, "ok");
	ck_assert_uint_eq(resp.len, 2);
	rk_http_resp_free(&resp);
	ck_assert_ptr_null(resp.body);
	rk_http_stats(h, &st);
	ck_assert_uint_eq(st.requests, 3);
	ck_assert_uint_eq(st.by_class[5], 2);
	ck_assert_uint_eq(st.by_class[2], 1);
	ck_assert_uint_eq(st.retries, 2);
	ck_assert_int_eq(st.circuit_open, 0);
	/* Keep-alive: the retries went over the first connection. */
	ck_assert_int_eq(server_count(&srv.conns), 1);
	ck_assert_int_eq(server_count(&srv.reqs), 3);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_503_after_last_attempt_is_returned)
{
	static const struct step script[] = { { S_REPLY, E503, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;

	server_start(script, 1);
	h = client(&cfg);
	ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 503);
	ck_assert_int_eq(resp.attempts, 3);
	ck_assert_str_eq(resp.body, "{\"errors\":[\"sealed\"]}");
	ck_assert_int_eq(err.code, 0);
	rk_http_resp_free(&resp);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_honours_retry_after_as_a_minimum)
{
	static const struct step script[] = {
		{ S_REPLY, "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\n"
			   "Content-Length: 0\r\n\r\n", 0 },
		{ S_REPLY, OK200, 0 },
	};
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	int64_t t0;

	cfg.total_timeout_ms = 500;
	cfg.max_delay_ms = 500;	/* budget 3 * 1s: room for the 1 s the server asks */
	server_start(script, 2);
	h = client(&cfg);
	t0 = rk_mono_ms();
	ck_assert_msg(rk_http_do(h, &GET_KV, &resp, &err) == 0, "%s", err.msg);
	ck_assert_int_ge(rk_mono_ms() - t0, 1000);
	ck_assert_int_lt(rk_mono_ms() - t0, 2500);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_int_eq(resp.attempts, 2);
	ck_assert(resp.retry_after == 0);	/* of the last attempt */
	rk_http_resp_free(&resp);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_long_retry_after_returns_the_429)
{
	static const struct step script[] = {
		{ S_REPLY, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\n"
			   "Content-Length: 0\r\n\r\n", 0 },
		{ S_REPLY, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\n"
			   "Content-Length: 0\r\n\r\n", 0 },
		{ S_REPLY, OK200, 0 },
	};
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	int64_t t0;

	server_start(script, 3);
	h = client(&cfg);
	t0 = rk_mono_ms();
	/* Over 60 s: not worth holding a thread for. */
	ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 429);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert(resp.retry_after == 120);
	rk_http_resp_free(&resp);
	/* 5 s does not fit this request's budget (~1 s); it is never shortened. */
	ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 429);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert(resp.retry_after == 5);
	rk_http_resp_free(&resp);
	ck_assert_int_lt(rk_mono_ms() - t0, 500);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_hang_times_out_every_attempt)
{
	static const struct step script[] = { { S_HANG, NULL, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	int64_t t0, took;

	cfg.total_timeout_ms = 200;
	server_start(script, 1);
	h = client(&cfg);
	t0 = rk_mono_ms();
	ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), RK_ETRANSIENT);
	took = rk_mono_ms() - t0;
	ck_assert_int_ge(took, 3 * 200);
	ck_assert_int_lt(took, 3 * (200 + 50) + 700);
	ck_assert_int_eq(resp.attempts, 3);
	ck_assert_ptr_null(resp.body);
	ck_assert_str_eq(err.step, "http");
	ck_assert_str_eq(err.provider, "vault");
	ck_assert_msg(strstr(err.msg, "after 3 attempts") != NULL, "%s", err.msg);
	ck_assert_int_eq(server_count(&srv.reqs), 3);
	rk_http_resp_free(&resp);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_post_is_sent_once_even_on_503)
{
	static const struct step script[] = { { S_REPLY, E503, 0 }, { S_REPLY, OK200, 0 } };
	static const struct rk_http_req post = {
		.method = "POST", .path = "/v1/transit/keys/k/rotate", .idempotent = 0,
	};
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;

	server_start(script, 2);
	h = client(&cfg);
	ck_assert_int_eq(rk_http_do(h, &post, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 503);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(server_count(&srv.reqs), 1);
	ck_assert_ptr_nonnull(strstr(srv.last[0], "Content-Length: 0"));
	rk_http_resp_free(&resp);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_post_lost_reply_says_outcome_unknown)
{
	static const struct step script[] = { { S_CLOSE, NULL, 0 } };
	static const struct rk_http_req post = {
		.method = "POST", .path = "/v1/secret/data/x", .body = "{}", .body_len = 2,
		.idempotent = 0, .sensitive = 1,
	};
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;

	server_start(script, 1);
	h = client(&cfg);
	ck_assert_int_eq(rk_http_do(h, &post, &resp, &err), RK_ETRANSIENT);
	ck_assert_msg(strstr(err.msg, "outcome is unknown") != NULL, "%s", err.msg);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(server_count(&srv.reqs), 1);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_unprocessed_write_is_resent_after_429_and_503_only)
{
	static const struct step script[] = {
		{ S_REPLY, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\n"
			   "Content-Length: 0\r\n\r\n", 0 },
		{ S_REPLY, E503, 0 },
		{ S_REPLY, OK200, 0 },
		{ S_REPLY, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", 0 },
		{ S_REPLY, OK200, 0 },
	};
	static const struct rk_http_req post = {
		.method = "POST", .path = "/v1/secret/data/x", .body = "{}", .body_len = 2,
		.idempotent = RK_HTTP_RETRY_UNPROCESSED, .sensitive = 1,
	};
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;

	server_start(script, 5);
	h = client(&cfg);
	/* 429 and 503 say the server did not act: sent again, then 200. */
	ck_assert_int_eq(rk_http_do(h, &post, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_int_eq(resp.attempts, 3);
	ck_assert_int_eq(server_count(&srv.reqs), 3);
	rk_http_resp_free(&resp);
	/* A 502 may follow a write that landed: returned to the caller to settle. */
	ck_assert_int_eq(rk_http_do(h, &post, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 502);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(server_count(&srv.reqs), 4);
	rk_http_resp_free(&resp);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_unprocessed_write_lost_reply_is_not_resent)
{
	static const struct step script[] = { { S_CLOSE, NULL, 0 }, { S_REPLY, OK200, 0 } };
	static const struct rk_http_req post = {
		.method = "POST", .path = "/v1/secret/data/x", .body = "{}", .body_len = 2,
		.idempotent = RK_HTTP_RETRY_UNPROCESSED, .sensitive = 1,
	};
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;

	server_start(script, 2);
	h = client(&cfg);
	ck_assert_int_eq(rk_http_do(h, &post, &resp, &err), RK_ETRANSIENT);
	ck_assert_msg(strstr(err.msg, "outcome is unknown") != NULL, "%s", err.msg);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(server_count(&srv.reqs), 1);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_connection_refused)
{
	static const struct rk_http_req post = {
		.method = "POST", .path = "/v1/x", .body = "{}", .body_len = 2,
	};
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct rk_http *h;
	int fd;

	/* A port that was just free and has no listener. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	srv.port = ntohs(a.sin_port);
	close(fd);
	h = client(&cfg);
	ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), RK_ETRANSIENT);
	ck_assert_int_eq(resp.attempts, 3);
	ck_assert_msg(strstr(err.msg, "after 3 attempts") != NULL, "%s", err.msg);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(rk_http_do(h, &post, &resp, &err), RK_ETRANSIENT);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_msg(strstr(err.msg, "was not sent") != NULL, "%s", err.msg);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_response_larger_than_max_is_an_error)
{
	static char big_cl[6000], big_stream[6000];
	static struct step script[2];
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	int n;

	/* One announces its length; the other streams until the connection ends. */
	n = snprintf(big_cl, sizeof(big_cl), "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
	memset(big_cl + n, 'a', 5000);
	big_cl[n + 5000] = '\0';
	n = snprintf(big_stream, sizeof(big_stream), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
	memset(big_stream + n, 'b', 5000);
	big_stream[n + 5000] = '\0';
	script[0] = (struct step){ S_REPLY_CLOSE, big_cl, 0 };
	script[1] = (struct step){ S_REPLY_CLOSE, big_stream, 0 };
	cfg.max_response = 1024;
	server_start(script, 2);
	h = client(&cfg);
	ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "response from vault larger than 1024 bytes") != NULL, "%s",
		      err.msg);
	ck_assert_int_eq(err.http_status, 200);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_ptr_null(resp.body);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "larger than 1024 bytes") != NULL, "%s", err.msg);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(server_count(&srv.reqs), 2);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_http_refused_without_insecure_http)
{
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_error err = { 0 };
	struct rk_http *h = NULL;
	static const char *const bad[] = { "ftp://x", "vault:8200", "https://", "https:///v1",
					   "https://a b", "https://v?x=1", "https://v#f" };

	cfg.insecure_http = 0;
	ck_assert_int_eq(rk_http_new(&h, "vault", "http://127.0.0.1:8200", &cfg, &err), RK_EINVAL);
	ck_assert_ptr_null(h);
	ck_assert_msg(strstr(err.msg, "http://") != NULL, "%s", err.msg);
	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_msg(rk_http_new(&h, "vault", bad[i], &cfg, &err) == RK_EINVAL,
			      "accepted %s", bad[i]);
	}
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(rk_http_new(&h, "vault", "HTTPS://vault.internal:8200/", &cfg, &err), 0);
	rk_http_free(h);
	rk_http_free(NULL);
}
END_TEST

START_TEST(test_e2e_circuit_opens_then_fails_fast_without_connecting)
{
	static const struct step script[] = { { S_REPLY, E503, 0 }, { S_REPLY, E503, 0 },
					      { S_REPLY, OK200, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_http_stats st;
	struct rk_error err = { 0 };
	struct rk_http *h;
	int64_t t0;

	cfg.cb_failures = 2;
	cfg.cb_cooldown_ms = 300;
	cfg.max_attempts = 1;
	server_start(script, 3);
	h = client(&cfg);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), 0);
		ck_assert_int_eq(resp.status, 503);
		rk_http_resp_free(&resp);
	}
	rk_http_stats(h, &st);
	ck_assert_int_eq(st.circuit_open, 1);
	ck_assert_uint_eq(st.circuit_opened, 1);
	t0 = rk_mono_ms();
	for (int i = 0; i < 5; i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), RK_ETRANSIENT);
		ck_assert_int_eq(resp.attempts, 0);
		ck_assert_msg(strstr(err.msg, "circuit open for provider vault after 2 failures") !=
			      NULL, "%s", err.msg);
	}
	ck_assert_int_lt(rk_mono_ms() - t0, 100);
	ck_assert_int_eq(server_count(&srv.reqs), 2);
	ck_assert_int_eq(server_count(&srv.conns), 1);
	/* After the cooldown one probe goes through; its success closes the circuit. */
	msleep(350);
	memset(&err, 0, sizeof(err));
	ck_assert_msg(rk_http_do(h, &GET_KV, &resp, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(resp.status, 200);
	rk_http_resp_free(&resp);
	rk_http_stats(h, &st);
	ck_assert_int_eq(st.circuit_open, 0);
	ck_assert_int_eq(server_count(&srv.reqs), 3);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_404_is_not_retried_and_does_not_trip_the_breaker)
{
	static const struct step script[] = { { S_REPLY, E404, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_http_stats st;
	struct rk_error err = { 0 };
	struct rk_http *h;

	cfg.cb_failures = 1;
	server_start(script, 1);
	h = client(&cfg);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(rk_http_do(h, &GET_KV, &resp, &err), 0);
		ck_assert_int_eq(resp.status, 404);
		ck_assert_int_eq(resp.attempts, 1);
		rk_http_resp_free(&resp);
	}
	rk_http_stats(h, &st);
	ck_assert_int_eq(st.circuit_open, 0);
	ck_assert_uint_eq(st.by_class[4], 3);
	ck_assert_int_eq(server_count(&srv.reqs), 3);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_methods_headers_and_bodies_on_the_wire)
{
	static const struct step script[] = { { S_REPLY, OK200, 0 } };
	static const char *const hdrs[] = { "X-Vault-Token: s.abc", "X-Vault-Request: true", NULL };
	static const char *const ct[] = { "Content-Type: application/merge-patch+json", NULL };
	struct rk_http_req list = { .method = "LIST", .path = "/v1/secret/metadata/?x=1",
				    .headers = hdrs, .idempotent = 1 };
	struct rk_http_req put = { .method = "PUT", .path = "v1/secret/data/a", .headers = hdrs,
				   .body = "{\"a\":1}", .body_len = 7, .sensitive = 1 };
	struct rk_http_req patch = { .method = "PATCH", .path = "/v1/secret/metadata/a",
				     .headers = ct, .body = "{}", .body_len = 2 };
	struct rk_http_req del = { .method = "DELETE", .path = "/v1/secret/data/a" };
	struct rk_http_req bad = { .method = "GET\r\nX: y", .path = "/v1/x" };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;

	server_start(script, 1);
	h = client(&cfg);
	ck_assert_int_eq(rk_http_do(h, &list, &resp, &err), 0);
	rk_http_resp_free(&resp);
	ck_assert_msg(strncmp(srv.last[0], "LIST /v1/secret/metadata/?x=1 HTTP/1.1\r\n", 40) == 0,
		      "%s", srv.last[0]);
	ck_assert_ptr_nonnull(strstr(srv.last[0], "\r\nX-Vault-Token: s.abc\r\n"));
	ck_assert_ptr_nonnull(strstr(srv.last[0], "\r\nX-Vault-Request: true\r\n"));
	ck_assert_ptr_null(strcasestr(srv.last[0], "Expect:"));

	ck_assert_int_eq(rk_http_do(h, &put, &resp, &err), 0);
	ck_assert_int_eq(resp.sensitive, 1);
	rk_http_resp_free(&resp);
	ck_assert_msg(strncmp(srv.last[1], "PUT /v1/secret/data/a HTTP/1.1\r\n", 32) == 0, "%s",
		      srv.last[1]);
	ck_assert_ptr_nonnull(strstr(srv.last[1], "Content-Length: 7\r\n"));
	ck_assert_ptr_nonnull(strstr(srv.last[1], "\r\n\r\n{\"a\":1}"));
	ck_assert_ptr_null(strcasestr(srv.last[1], "Expect:"));
	ck_assert_ptr_null(strcasestr(srv.last[1], "x-www-form-urlencoded"));

	ck_assert_int_eq(rk_http_do(h, &patch, &resp, &err), 0);
	rk_http_resp_free(&resp);
	ck_assert_msg(strncmp(srv.last[2], "PATCH ", 6) == 0, "%s", srv.last[2]);
	ck_assert_ptr_nonnull(strstr(srv.last[2], "Content-Type: application/merge-patch+json"));

	ck_assert_int_eq(rk_http_do(h, &del, &resp, &err), 0);
	rk_http_resp_free(&resp);
	ck_assert_msg(strncmp(srv.last[3], "DELETE /v1/secret/data/a HTTP/1.1\r\n", 35) == 0, "%s",
		      srv.last[3]);

	ck_assert_int_eq(rk_http_do(h, &bad, &resp, &err), RK_EINVAL);
	ck_assert_int_eq(server_count(&srv.reqs), 4);
	/*
	 * The LIST's connection is kept; each write that is not idempotent gets
	 * one of its own, so libcurl never resends it on a dead reused one.
	 */
	ck_assert_int_eq(server_count(&srv.conns), 4);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_logs_carry_no_query_header_or_body)
{
	static const struct step script[] = {
		{ S_REPLY, E503, 0 },
		{ S_REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nRESPSECRET!!", 0 },
	};
	static const char *const hdrs[] = { "X-Vault-Token: HEADERSECRET", NULL };
	struct rk_http_req req = { .method = "PUT", .path = "/v1/kv/data/x?token=QUERYSECRET",
				   .headers = hdrs, .body = "BODYSECRET", .body_len = 10,
				   .idempotent = 1, .sensitive = 1 };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	char path[] = "/tmp/rk-http-log-XXXXXX", *log = NULL;
	size_t len;
	int fd, saved;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	rk_log_setup(RK_LOG_DEBUG, RK_LOG_JSON);
	server_start(script, 2);
	h = client(&cfg);
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), 0);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_str_eq(resp.body, "RESPSECRET!!");
	rk_http_resp_free(&resp);
	rk_http_free(h);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	ck_assert_int_eq(rk_read_file(path, 1 << 20, &log, &len, &err), 0);
	unlink(path);
	ck_assert_msg(strstr(log, "\"event\":\"http.request\"") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "\"event\":\"http.retry\"") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "\"path\":\"/v1/kv/data/x\"") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "\"status\":\"503\"") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "SECRET") == NULL, "%s", log);
	free(log);
}
END_TEST

START_TEST(test_e2e_rate_limit_spaces_requests)
{
	static const struct step script[] = { { S_REPLY, OK200, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	int64_t t0;

	cfg.rps = 10;
	cfg.burst = 1;
	server_start(script, 1);
	h = client(&cfg);
	t0 = rk_mono_ms();
	for (int i = 0; i < 4; i++) {
		ck_assert_msg(rk_http_do(h, &GET_KV, &resp, &err) == 0, "%s", err.msg);
		rk_http_resp_free(&resp);
	}
	/* One token at once, then one per 100 ms. */
	ck_assert_int_ge(rk_mono_ms() - t0, 290);
	ck_assert_int_lt(rk_mono_ms() - t0, 1500);
	rk_http_free(h);
}
END_TEST

struct worker {
	struct rk_http *h;
	int ok;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 5; i++) {
		struct rk_http_resp resp;
		struct rk_error err = { 0 };
		if (rk_http_do(w->h, &GET_KV, &resp, &err) == 0 && resp.status == 200)
			w->ok++;
		rk_http_resp_free(&resp);
	}
	return NULL;
}

START_TEST(test_e2e_concurrency_cap_and_connection_pool)
{
	static const struct step script[] = { { S_REPLY, OK200, 20 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct worker w[8];
	pthread_t t[8];

	cfg.concurrency = 2;
	cfg.total_timeout_ms = 2000;
	server_start(script, 1);
	w[0].h = client(&cfg);
	for (int i = 0; i < 8; i++) {
		w[i].h = w[0].h;
		w[i].ok = 0;
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(w[i].ok, 5);
	}
	ck_assert_int_eq(server_count(&srv.reqs), 40);
	ck_assert_int_le(server_count(&srv.max_inflight), 2);
	/* Each pooled handle keeps its connection: no more than the cap. */
	ck_assert_int_le(server_count(&srv.conns), 2);
	rk_http_free(w[0].h);
}
END_TEST

Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("core");
	TCase *e2e = tcase_create("e2e");

	tcase_add_test(tc, test_backoff_stays_within_full_jitter_cap);
	tcase_add_test(tc, test_backoff_spreads_over_the_whole_range);
	tcase_add_test(tc, test_backoff_does_not_overflow_at_large_attempts);
	tcase_add_test(tc, test_retry_after_delta_seconds);
	tcase_add_test(tc, test_retry_after_http_dates);
	tcase_add_test(tc, test_retry_after_rejects_garbage_and_negatives);
	tcase_add_test(tc, test_breaker_opens_after_threshold_and_fails_fast);
	tcase_add_test(tc, test_breaker_half_open_admits_one_probe);
	tcase_add_test(tc, test_breaker_failed_probe_reopens_with_new_cooldown);
	tcase_add_test(tc, test_bucket_burst_then_rate);
	tcase_add_test(tc, test_bucket_does_not_accumulate_beyond_burst);
	tcase_add_test(tc, test_bucket_slow_and_unlimited_rates);
	tcase_add_test(tc, test_cfg_defaults_are_copied);
	tcase_add_test(tc, test_cfg_overrides);
	tcase_add_test(tc, test_cfg_unknown_nested_key_names_position);
	tcase_add_test(tc, test_cfg_rejects_out_of_range_values);
	suite_add_tcase(s, tc);

	/* Real sockets and real timeouts; ASan slows them down. */
	tcase_set_timeout(e2e, 20);
	tcase_add_test(e2e, test_e2e_retries_503_then_succeeds_on_one_connection);
	tcase_add_test(e2e, test_e2e_503_after_last_attempt_is_returned);
	tcase_add_test(e2e, test_e2e_honours_retry_after_as_a_minimum);
	tcase_add_test(e2e, test_e2e_long_retry_after_returns_the_429);
	tcase_add_test(e2e, test_e2e_hang_times_out_every_attempt);
	tcase_add_test(e2e, test_e2e_post_is_sent_once_even_on_503);
	tcase_add_test(e2e, test_e2e_post_lost_reply_says_outcome_unknown);
	tcase_add_test(e2e, test_e2e_unprocessed_write_is_resent_after_429_and_503_only);
	tcase_add_test(e2e, test_e2e_unprocessed_write_lost_reply_is_not_resent);
	tcase_add_test(e2e, test_e2e_connection_refused);
	tcase_add_test(e2e, test_e2e_response_larger_than_max_is_an_error);
	tcase_add_test(e2e, test_e2e_http_refused_without_insecure_http);
	tcase_add_test(e2e, test_e2e_circuit_opens_then_fails_fast_without_connecting);
	tcase_add_test(e2e, test_e2e_404_is_not_retried_and_does_not_trip_the_breaker);
	tcase_add_test(e2e, test_e2e_methods_headers_and_bodies_on_the_wire);
	tcase_add_test(e2e, test_e2e_logs_carry_no_query_header_or_body);
	tcase_add_test(e2e, test_e2e_rate_limit_spaces_requests);
	tcase_add_test(e2e, test_e2e_concurrency_cap_and_connection_pool);
	suite_add_tcase(s, e2e);
	return s;
}
