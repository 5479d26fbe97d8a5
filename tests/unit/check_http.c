/*
 * The shared HTTP client (src/http.c): whole requests against a scripted
 * HTTP server that runs in the test process: retries, Retry-After, hangs,
 * non-idempotent requests, size limits, http:// refusal, the breaker failing
 * fast without connecting, connection reuse, the concurrency cap and the
 * request priority; a caller's deadline and cancel flag (struct rk_call)
 * ending transfers, sleeps and waits. And the vault provider over the same
 * server: a call that is cancelled or out of time sends nothing, and each
 * request carries its operation's call (its priority orders them).
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "rekey/http.h"
#include "rekey/log.h"
#include "rekey/provider.h"
#include "rekey/util.h"
#include "unit.h"

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

/* A write whose reply was lost is never resent: its outcome is the caller's to settle. */
static void
lost_reply_is_not_resent(int idempotent)
{
	static const struct step script[] = { { S_CLOSE, NULL, 0 }, { S_REPLY, OK200, 0 } };
	const struct rk_http_req post = {
		.method = "POST", .path = "/v1/secret/data/x", .body = "{}", .body_len = 2,
		.idempotent = idempotent, .sensitive = 1,
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

START_TEST(test_e2e_post_lost_reply_says_outcome_unknown)
{
	lost_reply_is_not_resent(RK_HTTP_SEND_ONCE);
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
	lost_reply_is_not_resent(RK_HTTP_RETRY_UNPROCESSED);
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

struct prio_caller {
	struct rk_http *h;
	struct rk_http_req req;
	int rc;
	long status;
};

static void *
prio_run(void *arg)
{
	struct prio_caller *p = arg;
	struct rk_http_resp resp;
	struct rk_error err = { 0 };

	p->rc = rk_http_do(p->h, &p->req, &resp, &err);
	p->status = resp.status;
	rk_http_resp_free(&resp);
	return NULL;
}

/*
 * Starts the n callers of fn (args[i], `size` bytes apart) so that they
 * queue for the one slot in order: the first holds it (it is at the server)
 * before the second starts, and each next one starts once the last waits.
 */
static void
start_in_line(pthread_t *t, int n, void *(*fn)(void *), void *args, size_t size)
{
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * size), 0);
		if (i == 0) {
			/* The holder is at the server: it has the slot. */
			int64_t until = rk_mono_ms() + 5000;
			while (server_count(&srv.reqs) < 1 && rk_mono_ms() < until)
				msleep(1);
		}
		msleep(60);	/* queued before the next one comes */
	}
}

/* After the holder, the queued requests reached the server as GET <prefix>p0, p1, p2. */
static void
assert_sent_by_priority(const char *prefix)
{
	ck_assert_int_eq(server_count(&srv.reqs), 4);
	for (int i = 1; i <= 3; i++) {
		char want[128];
		snprintf(want, sizeof(want), "GET %sp%d ", prefix, i - 1);
		ck_assert_msg(strncmp(srv.last[i], want, strlen(want)) == 0, "%.60s", srv.last[i]);
	}
}

START_TEST(test_e2e_priority_orders_requests_waiting_for_a_slot)
{
	/* The first request holds the only slot while the others queue behind it. */
	static const struct step script[] = { { S_REPLY, OK200, 600 }, { S_REPLY, OK200, 0 } };
	static const char *const paths[] = { "/hold", "/p2", "/p1", "/p0" };
	static const int prio[] = { 0, 2, 1, 0 };
	struct rk_http_cfg cfg = fast_cfg();
	struct prio_caller p[4];
	struct rk_http *h;
	pthread_t t[4];

	/* One slot, one attempt, and time enough for the holder to finish. */
	cfg.concurrency = cfg.max_attempts = 1;
	cfg.total_timeout_ms = 5000;
	server_start(script, 2);
	h = client(&cfg);
	for (int i = 0; i < 4; i++)
		p[i] = (struct prio_caller){
			.h = h,
			.req = { .method = "GET", .path = paths[i], .idempotent = 1,
				 .priority = prio[i] },
		};
	start_in_line(t, 4, prio_run, p, sizeof(p[0]));
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(p[i].rc, 0);
		ck_assert_int_eq(p[i].status, 200);
	}
	assert_sent_by_priority("/");
	rk_http_free(h);
}
END_TEST

/* ---- a caller's deadline and cancel flag (req->call) ----------------------- */

/* Sets a cancel flag from another thread once the server has seen `after_reqs` requests. */
struct stopper {
	atomic_int flag;
	int after_reqs, after_ms;
	int64_t set_at;		/* when the flag was set (read after the join) */
};

static void *
stop_later(void *arg)
{
	struct stopper *st = arg;
	int64_t until = rk_mono_ms() + 5000;

	while (server_count(&srv.reqs) < st->after_reqs && rk_mono_ms() < until)
		msleep(1);
	msleep(st->after_ms);
	st->set_at = rk_mono_ms();
	atomic_store(&st->flag, 1);
	return NULL;
}

/* Until the server has seen n requests (the test fails otherwise). */
static void
wait_reqs(int n)
{
	int64_t until = rk_mono_ms() + 5000;

	while (server_count(&srv.reqs) < n)	{
		ck_assert_msg(rk_mono_ms() < until, "the server never saw %d requests", n);
		msleep(1);
	}
}

/* A request that hangs at the server, holding the only slot, until it is cancelled. */
struct holder {
	struct prio_caller p;
	struct stopper st;
	struct rk_call call;
	pthread_t t;
};

static void
hold_the_slot(struct holder *hd, struct rk_http *h)
{
	hd->call = (struct rk_call){ .cancel = &hd->st.flag };
	hd->p = (struct prio_caller){
		.h = h, .req = { .method = "GET", .path = "/hold", .idempotent = 1,
				 .call = &hd->call },
	};
	ck_assert_int_eq(pthread_create(&hd->t, NULL, prio_run, &hd->p), 0);
	wait_reqs(1);
}

static void
release_the_slot(struct holder *hd)
{
	atomic_store(&hd->st.flag, 1);
	pthread_join(hd->t, NULL);
	ck_assert_int_eq(hd->p.rc, RK_ECANCELED);
}

START_TEST(test_e2e_cancel_aborts_a_hanging_transfer)
{
	static const struct step script[] = { { S_HANG, NULL, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct stopper st = { .after_reqs = 1, .after_ms = 100 };
	struct rk_call call = { .cancel = &st.flag };
	struct rk_http_req req = GET_KV;
	struct rk_http_resp resp;
	struct rk_http_stats hs;
	struct rk_error err = { 0 };
	struct rk_http *h;
	pthread_t t;

	cfg.total_timeout_ms = 10000;
	cfg.cb_failures = 1;
	req.call = &call;
	server_start(script, 1);
	h = client(&cfg);
	ck_assert_int_eq(pthread_create(&t, NULL, stop_later, &st), 0);
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), RK_ECANCELED);
	pthread_join(t, NULL);
	/* libcurl looks at the flag about once a second at worst. */
	ck_assert_int_lt(rk_mono_ms() - st.set_at, 1500);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(server_count(&srv.reqs), 1);
	ck_assert_str_eq(err.step, "http");
	ck_assert_msg(strstr(err.msg, "provider 'vault': cancelled (rekey is stopping)") != NULL,
		      "%s", err.msg);
	/* The provider did nothing wrong: the breaker counts no failure. */
	rk_http_stats(h, &hs);
	ck_assert_int_eq(hs.circuit_open, 0);
	ck_assert_uint_eq(hs.retries, 0);
	rk_http_free(h);
}
END_TEST

/* A write cut off mid-transfer may have landed: never "was not sent". */
static void
cancelled_write_outcome_is_unknown(int idempotent)
{
	static const struct step script[] = { { S_HANG, NULL, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct stopper st = { .after_reqs = 1, .after_ms = 50 };
	struct rk_call call = { .cancel = &st.flag };
	const struct rk_http_req post = {
		.method = "POST", .path = "/v1/secret/data/x", .body = "{}", .body_len = 2,
		.idempotent = idempotent, .sensitive = 1, .call = &call,
	};
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	pthread_t t;

	cfg.total_timeout_ms = 10000;
	server_start(script, 1);
	h = client(&cfg);
	ck_assert_int_eq(pthread_create(&t, NULL, stop_later, &st), 0);
	ck_assert_int_eq(rk_http_do(h, &post, &resp, &err), RK_ECANCELED);
	pthread_join(t, NULL);
	ck_assert_msg(strstr(err.msg, "outcome is unknown") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "not sent") == NULL, "%s", err.msg);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(server_count(&srv.reqs), 1);
	rk_http_free(h);
}

START_TEST(test_e2e_cancelled_write_says_outcome_unknown)
{
	cancelled_write_outcome_is_unknown(RK_HTTP_SEND_ONCE);
}
END_TEST

START_TEST(test_e2e_cancelled_unprocessed_write_says_outcome_unknown)
{
	cancelled_write_outcome_is_unknown(RK_HTTP_RETRY_UNPROCESSED);
}
END_TEST

START_TEST(test_e2e_cancel_during_retry_after_sleep_sends_nothing_more)
{
	static const struct step script[] = {
		{ S_REPLY, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\n"
			   "Content-Length: 0\r\n\r\n", 0 },
		{ S_REPLY, OK200, 0 },
	};
	struct rk_http_cfg cfg = fast_cfg();
	struct stopper st = { .after_reqs = 1, .after_ms = 200 };
	struct rk_call call = { .cancel = &st.flag };
	struct rk_http_req req = GET_KV;
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	pthread_t t;
	int64_t t0;

	cfg.total_timeout_ms = 20000;	/* a budget with room for the 30 s asked */
	req.call = &call;
	server_start(script, 2);
	h = client(&cfg);
	ck_assert_int_eq(pthread_create(&t, NULL, stop_later, &st), 0);
	t0 = rk_mono_ms();
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), RK_ECANCELED);
	ck_assert_int_lt(rk_mono_ms() - t0, 2000);
	pthread_join(t, NULL);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(resp.status, 503);
	ck_assert_ptr_null(resp.body);
	ck_assert_int_eq(err.http_status, 503);
	ck_assert_msg(strstr(err.msg, "cancelled (rekey is stopping) after 1 attempt of GET") !=
		      NULL, "%s", err.msg);
	ck_assert_int_eq(server_count(&srv.reqs), 1);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_call_deadline_cuts_a_hanging_request_short)
{
	static const struct step script[] = { { S_HANG, NULL, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_call call = { 0 };
	struct rk_http_req req = GET_KV;
	struct rk_http_resp resp;
	struct rk_http_stats hs;
	struct rk_error err = { 0 };
	struct rk_http *h;
	int64_t t0;

	cfg.total_timeout_ms = 10000;	/* the deadline is the earlier bound */
	cfg.cb_failures = 1;
	req.call = &call;
	server_start(script, 1);
	h = client(&cfg);
	t0 = rk_mono_ms();
	call.deadline_ms = t0 + 300;
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), RK_ETRANSIENT);
	ck_assert_int_ge(rk_mono_ms() - t0, 200);
	ck_assert_int_lt(rk_mono_ms() - t0, 1500);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(server_count(&srv.reqs), 1);
	ck_assert_str_eq(err.step, "http");
	ck_assert_msg(strstr(err.msg, "deadline passed") != NULL, "%s", err.msg);
	rk_http_stats(h, &hs);
	ck_assert_int_eq(hs.circuit_open, 0);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_client_timeout_still_applies_before_a_later_deadline)
{
	static const struct step script[] = { { S_HANG, NULL, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_call call = { .deadline_ms = rk_mono_ms() + 10000 };
	struct rk_http_req req = GET_KV;
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	int64_t t0;

	cfg.total_timeout_ms = 200;
	cfg.max_attempts = 1;
	req.call = &call;
	server_start(script, 1);
	h = client(&cfg);
	t0 = rk_mono_ms();
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), RK_ETRANSIENT);
	ck_assert_int_lt(rk_mono_ms() - t0, 1500);
	ck_assert_msg(strstr(err.msg, "after 1 attempt:") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "deadline") == NULL, "%s", err.msg);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_retry_after_beyond_the_deadline_is_not_slept)
{
	static const struct step script[] = {
		{ S_REPLY, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\n"
			   "Content-Length: 0\r\n\r\n", 0 },
		{ S_REPLY, OK200, 0 },
	};
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_call call = { 0 };
	struct rk_http_req req = GET_KV;
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;
	int64_t t0;

	cfg.total_timeout_ms = 5000;	/* the client's budget would allow the 5 s */
	req.call = &call;
	server_start(script, 2);
	h = client(&cfg);
	t0 = rk_mono_ms();
	call.deadline_ms = t0 + 2000;
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), RK_ETRANSIENT);
	ck_assert_int_lt(rk_mono_ms() - t0, 1000);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(server_count(&srv.reqs), 1);
	ck_assert_int_eq(err.http_status, 429);
	ck_assert(err.retry_after == 5);
	ck_assert_msg(strstr(err.msg, "deadline passed") != NULL, "%s", err.msg);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_expired_or_cancelled_call_sends_nothing)
{
	static const struct step script[] = { { S_REPLY, OK200, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	atomic_int stop = 1;
	struct rk_call expired = { .deadline_ms = rk_mono_ms() - 1 };
	struct rk_call cancelled = { .cancel = &stop };
	struct rk_http_req req = GET_KV;
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;

	server_start(script, 1);
	h = client(&cfg);
	req.call = &expired;
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), RK_ETRANSIENT);
	ck_assert_int_eq(resp.attempts, 0);
	ck_assert_msg(strstr(err.msg, "deadline passed before GET") != NULL, "%s", err.msg);
	memset(&err, 0, sizeof(err));
	req.call = &cancelled;
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), RK_ECANCELED);
	ck_assert_int_eq(resp.attempts, 0);
	ck_assert_str_eq(err.step, "http");
	ck_assert_msg(strstr(err.msg, "provider 'vault': cancelled (rekey is stopping)") != NULL,
		      "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "was not sent") != NULL, "%s", err.msg);
	ck_assert_int_eq(server_count(&srv.reqs), 0);
	ck_assert_int_eq(server_count(&srv.conns), 0);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_call_that_never_fires_changes_nothing)
{
	static const struct step script[] = { { S_REPLY, E503, 0 }, { S_REPLY, E503, 0 },
					      { S_REPLY, OK200, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	atomic_int never = 0;
	struct rk_call call = { .deadline_ms = rk_mono_ms() + 10000, .cancel = &never };
	struct rk_http_req req = GET_KV;
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;

	req.call = &call;
	server_start(script, 3);
	h = client(&cfg);
	ck_assert_msg(rk_http_do(h, &req, &resp, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_int_eq(resp.attempts, 3);
	ck_assert_str_eq(resp.body, "ok");
	rk_http_resp_free(&resp);
	ck_assert_int_eq(server_count(&srv.conns), 1);
	rk_http_free(h);
}
END_TEST

/*
 * While something keeps h's requests waiting, sends GET_KV twice: with a
 * deadline 300 ms ahead (RK_ETRANSIENT saying `why`, after at least min_ms),
 * then with a cancel flag set 200 ms in (RK_ECANCELED soon after). The
 * server sees neither.
 */
static void
waiter_gives_up(struct rk_http *h, const char *why, int64_t min_ms)
{
	struct stopper st = { .after_reqs = 0, .after_ms = 200 };
	struct rk_call soon = { 0 }, stopped = { .cancel = &st.flag };
	struct rk_http_req req = GET_KV;
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	int reqs = server_count(&srv.reqs);
	pthread_t t;
	int64_t t0;

	t0 = rk_mono_ms();
	soon.deadline_ms = t0 + 300;
	req.call = &soon;
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), RK_ETRANSIENT);
	ck_assert_int_ge(rk_mono_ms() - t0, min_ms);
	ck_assert_int_lt(rk_mono_ms() - t0, 1500);
	ck_assert_int_eq(resp.attempts, 0);
	ck_assert_msg(strstr(err.msg, why) != NULL, "%s", err.msg);
	memset(&err, 0, sizeof(err));
	req.call = &stopped;
	ck_assert_int_eq(pthread_create(&t, NULL, stop_later, &st), 0);
	ck_assert_int_eq(rk_http_do(h, &req, &resp, &err), RK_ECANCELED);
	pthread_join(t, NULL);
	/* Token and slot waits look at the flag every RK_CALL_TICK_MS. */
	ck_assert_int_lt(rk_mono_ms() - st.set_at, 500);
	ck_assert_int_eq(resp.attempts, 0);
	ck_assert_msg(strstr(err.msg, "was not sent") != NULL, "%s", err.msg);
	ck_assert_int_eq(server_count(&srv.reqs), reqs);
}

START_TEST(test_e2e_slot_waiter_gives_up_at_its_deadline_or_on_cancel)
{
	static const struct step script[] = { { S_HANG, NULL, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct holder hd = { 0 };
	struct rk_http *h;

	cfg.concurrency = cfg.max_attempts = 1;
	cfg.total_timeout_ms = 10000;
	server_start(script, 1);
	h = client(&cfg);
	hold_the_slot(&hd, h);
	/* The slot wait lasts until the deadline. */
	waiter_gives_up(h, "no free connection slot", 200);
	release_the_slot(&hd);
	rk_http_free(h);
}
END_TEST

START_TEST(test_e2e_rate_token_waiter_gives_up_at_its_deadline_or_on_cancel)
{
	static const struct step script[] = { { S_REPLY, OK200, 0 } };
	struct rk_http_cfg cfg = fast_cfg();
	struct rk_http_resp resp;
	struct rk_error err = { 0 };
	struct rk_http *h;

	cfg.rps = 0.5;			/* after the first, one token per 2 s */
	cfg.burst = 1;
	cfg.total_timeout_ms = 2000;	/* a budget that would wait for it */
	server_start(script, 1);
	h = client(&cfg);
	ck_assert_msg(rk_http_do(h, &GET_KV, &resp, &err) == 0, "%s", err.msg);
	rk_http_resp_free(&resp);
	/* The next token comes after the deadline: refused at once. */
	waiter_gives_up(h, "rate limit", 0);
	rk_http_free(h);
}
END_TEST

/* ---- the vault provider over this server ------------------------------------ */

struct vault_fx {
	char token[64];			/* a token file, mode 0600 */
	struct rk_provider *p;
};

/* A vault instance on the server: token auth, one request in flight, one attempt each. */
static void
vault_open_on_server(struct vault_fx *f)
{
	struct rk_provider_env env = { .name = "vault" };
	struct rk_error err = { 0 };
	char url[64];
	json_t *cfg;
	int fd;

	snprintf(f->token, sizeof(f->token), "/tmp/rk-vault-token-XXXXXX");
	ck_assert_int_ge(fd = mkstemp(f->token), 0);
	ck_assert_int_eq(write(fd, "s.unit-test\n", 12), 12);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	cfg = json_pack("{s:s, s:s, s:b, s:i, s:{s:i}, s:{s:s, s:s}}", "type", "vault", "address",
			url, "insecure_http", 1, "concurrency", 1, "retry", "max_attempts", 1,
			"auth", "method", "token", "token_file", f->token);
	ck_assert_ptr_nonnull(cfg);
	f->p = NULL;
	ck_assert_msg(rk_provider_open(&f->p, rk_provider_find_type("vault"), &env, cfg, &err) == 0,
		      "%s", err.msg);
	json_decref(cfg);
}

static void
vault_close_fx(struct vault_fx *f)
{
	rk_provider_close(f->p);
	unlink(f->token);
}

/* The KV locator {path, key: password} parsed for p; *json is the caller's. */
static void
vault_kv_loc(struct rk_provider *p, const char *path, json_t **json, struct rk_loc *loc)
{
	struct rk_error err = { 0 };

	*json = json_pack("{s:s, s:s}", "path", path, "key", "password");
	ck_assert_msg(rk_loc_parse(loc, p, *json, &err) == 0, "%s", err.msg);
}

/* A KV v2 read answer: {password: value} at `version`. */
static const char *
kv_reply(char *buf, size_t n, long version, const char *value)
{
	char body[256];
	int len = snprintf(body, sizeof(body),
			   "{\"data\":{\"data\":{\"password\":\"%s\"},"
			   "\"metadata\":{\"version\":%ld}}}", value, version);

	snprintf(buf, n, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
		 "%d\r\n\r\n%s", len, body);
	return buf;
}

START_TEST(test_vault_operation_with_a_stopped_call_sends_nothing)
{
	static char reply[512];	/* the server thread may outlive this frame */
	static struct step script[1] = { { S_REPLY, NULL, 0 } };
	struct vault_fx f;
	json_t *json;
	struct rk_loc loc;
	atomic_int stop = 1;
	struct rk_call cancelled = { .cancel = &stop }, late = { .deadline_ms = rk_mono_ms() - 1 };
	struct rk_secret *out = NULL, *v = NULL;
	struct rk_version ver = { "" }, exp = { "3" };
	struct rk_stage_req req = { .idem_key = "k", .expected = &exp };
	struct rk_error err = { 0 };

	script[0].raw = kv_reply(reply, sizeof(reply), 3, "current-value");
	server_start(script, 1);
	vault_open_on_server(&f);
	vault_kv_loc(f.p, "payments/db", &json, &loc);
	ck_assert_int_eq(rk_secret_from(&v, "new", 3, &err), 0);
	req.value = v;
	ck_assert_int_eq(rk_provider_read(f.p, &cancelled, &loc, &out, &ver, &err), RK_ECANCELED);
	rk_error_clear(&err);
	ck_assert_int_eq(rk_provider_stage(f.p, &cancelled, &loc, &req, &ver, &err), RK_ECANCELED);
	rk_error_clear(&err);
	ck_assert_int_eq(rk_provider_read(f.p, &late, &loc, &out, &ver, &err), RK_ETRANSIENT);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(server_count(&srv.conns), 0);
	ck_assert_int_eq(server_count(&srv.reqs), 0);
	/* The same read with a live call goes out and gets the value. */
	stop = 0;
	rk_error_clear(&err);
	ck_assert_msg(rk_provider_read(f.p, &cancelled, &loc, &out, &ver, &err) == 0, "%s",
		      err.msg);
	ck_assert_str_eq(rk_secret_str(out), "current-value");
	ck_assert_str_eq(ver.id, "3");
	ck_assert_int_eq(server_count(&srv.reqs), 1);
	rk_secret_free(out);
	rk_secret_free(v);
	rk_loc_free(&loc);
	json_decref(json);
	vault_close_fx(&f);
}
END_TEST

struct vault_reader {
	struct rk_provider *p;
	struct rk_call call;
	json_t *json;
	struct rk_loc loc;
	int rc;
};

static void *
vault_read_run(void *arg)
{
	struct vault_reader *r = arg;
	struct rk_secret *out = NULL;
	struct rk_version ver = { "" };
	struct rk_error err = { 0 };

	r->rc = rk_provider_read(r->p, &r->call, &r->loc, &out, &ver, &err);
	rk_secret_free(out);
	return NULL;
}

/*
 * The instance's one slot is held while three reads queue for it: they are
 * sent in the order of their calls' priorities, not of their arrival, which
 * only happens when the provider puts the call's priority into its requests.
 */
START_TEST(test_vault_requests_carry_the_priority_of_their_call)
{
	static const char *const paths[] = { "hold", "p2", "p1", "p0" };
	static const int prio[] = { 0, 2, 1, 0 };
	static char reply[512];	/* the server thread may outlive this frame */
	static struct step script[2] = { { S_REPLY, NULL, 600 }, { S_REPLY, NULL, 0 } };
	struct vault_reader rd[4];
	struct vault_fx f;
	pthread_t t[4];

	script[0].raw = script[1].raw = kv_reply(reply, sizeof(reply), 1, "v");
	server_start(script, 2);
	vault_open_on_server(&f);
	for (int i = 0; i < 4; i++) {
		memset(&rd[i], 0, sizeof(rd[i]));
		rd[i].p = f.p;
		rd[i].call.priority = prio[i];
		vault_kv_loc(f.p, paths[i], &rd[i].json, &rd[i].loc);
	}
	start_in_line(t, 4, vault_read_run, rd, sizeof(rd[0]));
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(rd[i].rc, 0);
		rk_loc_free(&rd[i].loc);
		json_decref(rd[i].json);
	}
	assert_sent_by_priority("/v1/secret/data/");
	vault_close_fx(&f);
}
END_TEST

/*
 * A read that hangs at the server ends soon after its call is cancelled, or
 * at its deadline, long before the client's own 10 s timeout: the call
 * reached the request.
 */
START_TEST(test_vault_read_ends_at_its_call_cancel_or_deadline_mid_request)
{
	static const struct step script[] = { { S_HANG, NULL, 0 } };
	struct stopper st = { .after_reqs = 1, .after_ms = 100 };
	struct rk_call stopped = { .cancel = &st.flag }, soon = { 0 };
	struct vault_fx f;
	json_t *json;
	struct rk_loc loc;
	struct rk_secret *out = NULL;
	struct rk_version ver = { "" };
	struct rk_error err = { 0 };
	pthread_t t;
	int64_t t0;

	server_start(script, 1);
	vault_open_on_server(&f);
	vault_kv_loc(f.p, "payments/db", &json, &loc);
	ck_assert_int_eq(pthread_create(&t, NULL, stop_later, &st), 0);
	ck_assert_int_eq(rk_provider_read(f.p, &stopped, &loc, &out, &ver, &err), RK_ECANCELED);
	pthread_join(t, NULL);
	ck_assert_int_lt(rk_mono_ms() - st.set_at, 1500);
	ck_assert_ptr_null(out);
	rk_error_clear(&err);
	t0 = rk_mono_ms();
	soon.deadline_ms = t0 + 300;
	ck_assert_int_eq(rk_provider_read(f.p, &soon, &loc, &out, &ver, &err), RK_ETRANSIENT);
	ck_assert_int_lt(rk_mono_ms() - t0, 1500);
	ck_assert_int_eq(server_count(&srv.reqs), 2);
	rk_loc_free(&loc);
	json_decref(json);
	vault_close_fx(&f);
}
END_TEST

/*
 * After a write with an unknown outcome, rekey looks for its value in the
 * versions newer than the one it read. A version it cannot read (here a
 * 503) says nothing about who wrote it: the lookup fails as transient, and
 * is not reported as someone else's change.
 */
START_TEST(test_vault_lookup_that_cannot_read_a_version_is_not_a_conflict)
{
	static char reply[512];	/* the server thread may outlive this frame */
	static struct step script[2] = { { S_REPLY, NULL, 0 }, { S_REPLY, E503, 0 } };
	struct vault_fx f;
	json_t *json;
	struct rk_loc loc;
	struct rk_secret *v = NULL;
	struct rk_version exp = { "1" }, nv = { "" };
	struct rk_stage_req req = { .idem_key = "k", .expected = &exp };
	struct rk_error err = { 0 };

	script[0].raw = kv_reply(reply, sizeof(reply), 2, "whose");
	server_start(script, 2);
	vault_open_on_server(&f);
	vault_kv_loc(f.p, "payments/db", &json, &loc);
	ck_assert_int_eq(rk_secret_from(&v, "ours", 4, &err), 0);
	req.value = v;
	ck_assert_int_eq(rk_provider_find_staged(f.p, NULL, &loc, &req, &nv, &err), RK_ETRANSIENT);
	ck_assert_int_eq(err.http_status, 503);
	ck_assert_int_eq(server_count(&srv.reqs), 2);
	ck_assert_msg(strncmp(srv.last[1], "GET /v1/secret/data/payments/db?version=2 ", 42) == 0,
		      "%.60s", srv.last[1]);
	rk_secret_free(v);
	rk_loc_free(&loc);
	json_decref(json);
	vault_close_fx(&f);
}
END_TEST

Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *e2e = tcase_create("e2e");
	TCase *call = tcase_create("call");
	TCase *vault = tcase_create("vault");

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
	tcase_add_test(e2e, test_e2e_priority_orders_requests_waiting_for_a_slot);
	suite_add_tcase(s, e2e);

	tcase_set_timeout(call, 20);
	tcase_add_test(call, test_e2e_cancel_aborts_a_hanging_transfer);
	tcase_add_test(call, test_e2e_cancelled_write_says_outcome_unknown);
	tcase_add_test(call, test_e2e_cancelled_unprocessed_write_says_outcome_unknown);
	tcase_add_test(call, test_e2e_cancel_during_retry_after_sleep_sends_nothing_more);
	tcase_add_test(call, test_e2e_call_deadline_cuts_a_hanging_request_short);
	tcase_add_test(call, test_e2e_client_timeout_still_applies_before_a_later_deadline);
	tcase_add_test(call, test_e2e_retry_after_beyond_the_deadline_is_not_slept);
	tcase_add_test(call, test_e2e_expired_or_cancelled_call_sends_nothing);
	tcase_add_test(call, test_e2e_call_that_never_fires_changes_nothing);
	tcase_add_test(call, test_e2e_slot_waiter_gives_up_at_its_deadline_or_on_cancel);
	tcase_add_test(call, test_e2e_rate_token_waiter_gives_up_at_its_deadline_or_on_cancel);
	suite_add_tcase(s, call);

	tcase_set_timeout(vault, 20);
	tcase_add_test(vault, test_vault_operation_with_a_stopped_call_sends_nothing);
	tcase_add_test(vault, test_vault_requests_carry_the_priority_of_their_call);
	tcase_add_test(vault, test_vault_read_ends_at_its_call_cancel_or_deadline_mid_request);
	tcase_add_test(vault, test_vault_lookup_that_cannot_read_a_version_is_not_a_conflict);
	suite_add_tcase(s, vault);
	return s;
}
