/*
 * The connection settings of a remote provider: timeouts, retries, circuit
 * breaker, rate limit, concurrency, response size and TLS files, as written
 * under the provider in rekey.yaml. Parsed here; used by the HTTP client
 * (rekey/http.h).
 */
#ifndef REKEY_HTTP_CFG_H
#define REKEY_HTTP_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rekey/doc.h"
#include "rekey/error.h"

struct rk_secret;

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
	/*
	 * TLS material held in memory (PEM text), for credentials that come
	 * inline rather than as files (a kubeconfig's *-data). Not read from
	 * rekey.yaml: a provider fills them. Each takes the place of the file of
	 * the same role, and setting both is refused by rk_http_check. With
	 * ca_pem the system CA directory is not consulted either (unless
	 * ca_path names one): ca_pem is the whole trust store.
	 * client_key_pem is secret: a struct rk_secret (sodium memory), copied
	 * as one by rk_http_cfg_copy and wiped by rk_http_cfg_free; libcurl's
	 * own copies are wiped by the HTTP client's allocator.
	 */
	char *ca_pem, *client_cert_pem;
	struct rk_secret *client_key_pem;
	/*
	 * Neither the server's certificate nor its name is verified. Not read
	 * from rekey.yaml: a provider sets it only when the user allowed it
	 * explicitly, and the HTTP client logs a warning for every connection
	 * it opens this way.
	 */
	int insecure_tls;
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
void rk_http_cfg_free(struct rk_http_cfg *c);	/* frees the strings, wipes the key */
/* A deep copy (strings included) into dst; RK_ENOMEM leaves dst with no strings. */
int rk_http_cfg_copy(struct rk_http_cfg *dst, const struct rk_http_cfg *src) RK_WARN_UNUSED;

#endif
