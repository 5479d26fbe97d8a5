/*
 * The shared HTTP client: the only module that talks HTTP (libcurl).
 *
 * One struct rk_http per provider instance holds that provider's safety
 * state: TLS settings, a circuit breaker, a token-bucket rate limit, a cap on
 * requests in flight, and counters for metrics. Every request has a connect
 * and a total timeout; only requests marked idempotent are retried, with
 * exponential backoff and full jitter, honouring Retry-After as a minimum.
 * Bodies that carry secrets are never logged and are wiped after use.
 */
#ifndef REKEY_HTTP_H
#define REKEY_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "rekey/call.h"
#include "rekey/error.h"
#include "rekey/http_cfg.h"

struct rk_http;

/*
 * base_url: "https://vault.internal:8200" (no trailing slash needed). An
 * http:// URL is refused unless cfg->insecure_http. The provider name goes
 * into errors, logs and metrics.
 */
int rk_http_new(struct rk_http **out, const char *provider, const char *base_url,
		const struct rk_http_cfg *cfg, struct rk_error *err) RK_WARN_UNUSED;
/*
 * What rk_http_new checks before it makes anything (the settings, the URL's
 * scheme and form), for validating a config without connecting. RK_EINVAL.
 */
int rk_http_check(const char *provider, const char *base_url, const struct rk_http_cfg *cfg,
		  struct rk_error *err) RK_WARN_UNUSED;
void rk_http_free(struct rk_http *h);	/* accepts NULL */

/* The values of rk_http_req.idempotent: when a request may be sent again. */
#define RK_HTTP_SEND_ONCE		0	/* never resent */
#define RK_HTTP_IDEMPOTENT		1	/* resent after any retryable failure */
#define RK_HTTP_RETRY_UNPROCESSED	2	/* resent only when certainly not acted on */

struct rk_http_req {
	const char *method;		/* "GET", "POST", "PUT", "PATCH", "DELETE", "LIST" */
	const char *path;		/* appended to base_url, may carry a query */
	const char *const *headers;	/* "Name: value", NULL-terminated; may carry tokens */
	const void *body;		/* may be NULL */
	size_t body_len;
	/*
	 * RK_HTTP_IDEMPOTENT (1), RK_HTTP_SEND_ONCE (0), or
	 * RK_HTTP_RETRY_UNPROCESSED: a write whose outcome a caller settles by
	 * reading back; resent only when the server certainly did not act on it
	 * (429, 503, or the connection never opened).
	 */
	int idempotent;
	int sensitive;			/* body or response carries a secret: wipe, never log */
	/*
	 * Admission order when every concurrency slot is taken: a lower number
	 * goes first when a slot frees, FIFO among equals. 0 (the default) is
	 * the most urgent.
	 */
	int priority;
	/*
	 * May be NULL (then only the client's own timeouts apply). Its deadline
	 * bounds the whole request: each attempt's timeout is clipped to the
	 * time left (the earlier of the two wins), the waits for a rate token
	 * or a slot end at it, and a backoff or Retry-After sleep never passes
	 * it (RK_ETRANSIENT). Its cancel flag aborts the transfer (within about
	 * a second: libcurl's progress interval) and every sleep or wait (within
	 * RK_CALL_TICK_MS): RK_ECANCELED, never retried. The priority used is
	 * the field above, not the call's.
	 */
	const struct rk_call *call;
};

struct rk_http_resp {
	long status;			/* HTTP status of the last attempt */
	char *body;			/* NUL-terminated (malloc'd), may be empty */
	size_t len;
	double retry_after;		/* seconds from Retry-After of the last attempt, 0 if none */
	int64_t date;			/* its Date header as Unix seconds, 0 if none (clock skew) */
	int attempts;			/* how many attempts were made */
	int sensitive;			/* wipe on free */
};

/*
 * Sends a request. Returns 0 when an HTTP response arrived (whatever its
 * status: the caller maps statuses to rk_err codes; a 429/5xx after the last
 * retry is still returned with 0). Errors:
 *   RK_ETRANSIENT  connect/timeout/reset after every allowed attempt, the
 *                  circuit is open, the deadline passed waiting for a rate
 *                  token or a concurrency slot, or req->call's deadline came
 *                  (before sending, mid-transfer, or a Retry-After that does
 *                  not fit) (err->step "http")
 *   RK_ECANCELED   req->call's cancel flag was set; a write cut off mid-
 *                  transfer is reported as of unknown outcome (read back)
 *   RK_EINVAL      the response is larger than max_response
 *   RK_ENOMEM / RK_EINTERNAL
 * err->http_status and err->retry_after are set when known.
 * Thread-safe: several threads may share one struct rk_http.
 */
int rk_http_do(struct rk_http *h, const struct rk_http_req *req, struct rk_http_resp *resp,
	       struct rk_error *err) RK_WARN_UNUSED;
void rk_http_resp_free(struct rk_http_resp *resp);	/* wipes when sensitive */

/* The upper bounds (seconds) of the latency histogram's buckets; +Inf is implied. */
#define RK_HTTP_LAT_BUCKETS 12
extern const double rk_http_lat_bounds[RK_HTTP_LAT_BUCKETS];

/* Counters for metrics and doctor (monotonic since rk_http_new). */
struct rk_http_stats {
	uint64_t requests;		/* attempts sent */
	uint64_t by_class[6];		/* [0] transport errors, [1..5] 1xx..5xx */
	uint64_t by_status[600];	/* [0] transport errors, else by HTTP status */
	uint64_t retries;
	int circuit_open;		/* 1 while open or half-open */
	uint64_t circuit_opened;	/* times it opened */
	/* Attempt latency: counts per bucket (not cumulative; the last is +Inf). */
	uint64_t lat_count[RK_HTTP_LAT_BUCKETS + 1];
	double lat_sum_s;
};
void rk_http_stats(struct rk_http *h, struct rk_http_stats *out);

/*
 * Calls fn once for every client alive in the process (for /metrics), with
 * its provider name and a copy of its counters, then once per provider name
 * with the counters of its clients already freed (circuit_open 0): adding
 * them up per name gives counters that never go back. Clients made or
 * freed meanwhile wait; fn must not make or free one.
 */
void rk_http_foreach(void (*fn)(void *arg, const char *provider, const struct rk_http_stats *st),
		     void *arg);
#endif
