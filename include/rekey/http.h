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
#include <jansson.h>
#include "rekey/doc.h"
#include "rekey/error.h"

/* Connection settings of a remote provider (rekey.yaml, per provider). */
struct rk_http_cfg {
	int64_t connect_timeout_ms;	/* timeout.connect */
	int64_t total_timeout_ms;	/* timeout.total: one attempt, transfer included */
	int max_attempts;		/* retry.max_attempts (1 = no retry) */
	int64_t base_delay_ms;		/* retry.base_delay */
	int64_t max_delay_ms;		/* retry.max_delay: cap of one backoff sleep */
	int cb_failures;		/* circuit_breaker.failures in a row to open */
	int64_t cb_cooldown_ms;		/* circuit_breaker.cooldown before a half-open probe */
	double rps;			/* rate_limit.rps: sustained requests per second */
	int burst;			/* rate_limit.burst */
	int concurrency;		/* requests in flight at once */
	size_t max_response;		/* bytes; a larger body is an error, not a truncation */
	char *ca_file, *ca_path, *client_cert_file, *client_key_file;
	int insecure_http;		/* allow http:// (tests against fakes only) */
};

/*
 * The keys above as rk_field entries, for a provider's config_fields table:
 *   static const struct rk_field vault_fields[] = { {"type",...}, RK_HTTP_CFG_FIELDS, ... };
 */
#define RK_HTTP_CFG_FIELDS                                                 \
	{ "timeout", RK_T_OBJECT, 0 }, { "retry", RK_T_OBJECT, 0 },            \
	{ "circuit_breaker", RK_T_OBJECT, 0 }, { "rate_limit", RK_T_OBJECT, 0 }, \
	{ "concurrency", RK_T_INT, 0 }, { "max_response", RK_T_INT, 0 },       \
	{ "ca_file", RK_T_STRING, 0 }, { "ca_path", RK_T_STRING, 0 },          \
	{ "client_cert_file", RK_T_STRING, 0 },                                 \
	{ "client_key_file", RK_T_STRING, 0 }, { "insecure_http", RK_T_BOOL, 0 }

/*
 * Fills c from a provider's mapping, starting from `defaults` (the provider's
 * own, chosen under its published quotas). Validates the nested mappings
 * (unknown keys, types, ranges) with errors at file:line:column.
 */
int rk_http_cfg_parse(struct rk_http_cfg *c, const struct rk_doc *doc, const json_t *provider_cfg,
		      const struct rk_http_cfg *defaults, struct rk_error *err) RK_WARN_UNUSED;
void rk_http_cfg_free(struct rk_http_cfg *c);	/* frees the strings */

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

#define RK_HTTP_RETRY_UNPROCESSED 2

struct rk_http_req {
	const char *method;		/* "GET", "POST", "PUT", "PATCH", "DELETE", "LIST" */
	const char *path;		/* appended to base_url, may carry a query */
	const char *const *headers;	/* "Name: value", NULL-terminated; may carry tokens */
	const void *body;		/* may be NULL */
	size_t body_len;
	/*
	 * 1: may be retried after any retryable failure. 0: sent once.
	 * RK_HTTP_RETRY_UNPROCESSED: a write whose outcome a caller settles by
	 * reading back; resent only when the server certainly did not act on it
	 * (429, 503, or the connection never opened).
	 */
	int idempotent;
	int sensitive;			/* body or response carries a secret: wipe, never log */
};

struct rk_http_resp {
	long status;			/* HTTP status of the last attempt */
	char *body;			/* NUL-terminated (malloc'd), may be empty */
	size_t len;
	double retry_after;		/* seconds from Retry-After of the last attempt, 0 if none */
	int attempts;			/* how many attempts were made */
	int sensitive;			/* wipe on free */
};

/*
 * Sends a request. Returns 0 when an HTTP response arrived (whatever its
 * status: the caller maps statuses to rk_err codes; a 429/5xx after the last
 * retry is still returned with 0). Errors:
 *   RK_ETRANSIENT  connect/timeout/reset after every allowed attempt, the
 *                  circuit is open, or the deadline passed waiting for a rate
 *                  token or a concurrency slot (err->step "http")
 *   RK_EINVAL      the response is larger than max_response
 *   RK_ENOMEM / RK_EINTERNAL
 * err->http_status and err->retry_after are set when known.
 * Thread-safe: several threads may share one struct rk_http.
 */
int rk_http_do(struct rk_http *h, const struct rk_http_req *req, struct rk_http_resp *resp,
	       struct rk_error *err) RK_WARN_UNUSED;
void rk_http_resp_free(struct rk_http_resp *resp);	/* wipes when sensitive */

/* Counters for metrics and doctor (monotonic since rk_http_new). */
struct rk_http_stats {
	uint64_t requests;		/* attempts sent */
	uint64_t by_class[6];		/* [0] transport errors, [1..5] 1xx..5xx */
	uint64_t retries;
	int circuit_open;		/* 1 while open or half-open */
	uint64_t circuit_opened;	/* times it opened */
};
void rk_http_stats(struct rk_http *h, struct rk_http_stats *out);

/* ---- pure building blocks, exposed for unit tests ---- */

/* Full jitter: a delay in [0, min(max, base * 2^attempt)] drawn from rnd (uniform). */
int64_t rk_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint32_t rnd);

/* Retry-After: delta-seconds or an HTTP-date (RFC 9110), relative to now (Unix s). */
int rk_parse_retry_after(const char *value, int64_t now, double *seconds) RK_WARN_UNUSED;

enum rk_breaker_state { RK_BREAKER_CLOSED, RK_BREAKER_OPEN, RK_BREAKER_HALF_OPEN };

struct rk_breaker {
	enum rk_breaker_state state;
	int failures;			/* consecutive failures while closed */
	int threshold;
	int64_t cooldown_ms;
	int64_t opened_at_ms;
	int probe_in_flight;		/* half-open lets exactly one request through */
};

void rk_breaker_init(struct rk_breaker *b, int threshold, int64_t cooldown_ms);
/* 1 when a request may go now (and, half-open, marks the probe in flight). */
int rk_breaker_allow(struct rk_breaker *b, int64_t now_ms);
/* Records an outcome: ok resets/closes; a failure counts, opens, or re-opens. */
void rk_breaker_record(struct rk_breaker *b, int ok, int64_t now_ms);

struct rk_bucket {
	double tokens;
	double rate;			/* tokens per second; <= 0: unlimited */
	double burst;
	int64_t last_ms;
};

void rk_bucket_init(struct rk_bucket *b, double rate, int burst, int64_t now_ms);
/* Takes a token: 0 when one was taken, else how many ms to wait for one. */
int64_t rk_bucket_take(struct rk_bucket *b, int64_t now_ms);

#endif
