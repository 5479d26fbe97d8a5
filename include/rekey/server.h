/*
 * The HTTP side of `rekey serve` (libmicrohttpd): listening, TLS, the bearer
 * token, request bodies, the per-client rate limit. What each path answers
 * is the handler's (src/serve.c); this module decides only who may ask.
 *
 *   /healthz, /readyz, /metrics   open (probes and Prometheus)
 *   /v1/...                       Authorization: Bearer <token>, else 401
 *   /                             the status page: per server.status_page
 *
 * The token file holds one token a line, either bare (named "default") or
 * as NAME:TOKEN; the name goes into the audit log as the caller. It must not
 * be readable by group or others, and is read again when it changes.
 * Tokens are compared in constant time (a keyed hash of each, then
 * sodium_memcmp), every token tried whatever the first one gave.
 */
#ifndef REKEY_SERVER_H
#define REKEY_SERVER_H

#include <stddef.h>
#include "rekey/error.h"

struct rk_config_server;
struct rk_server;

struct rk_server_req {
	const char *method;
	const char *path;		/* without the query */
	const char *query;		/* the raw query after '?', or NULL */
	const char *body;		/* NUL-terminated, may be empty */
	size_t body_len;
	const char *client;		/* the peer's address as text */
	int loopback;			/* the peer is 127.0.0.0/8 or ::1 */
	const char *token_name;		/* the caller's token, NULL when it gave none */
	struct rk_server *server;	/* the one answering (for rk_server_stats) */
};

struct rk_server_resp {
	int status;
	const char *content_type;	/* default application/json */
	char *body;			/* malloc'd, owned by the server after the call */
	size_t len;
};

typedef void (*rk_server_handler)(void *arg, const struct rk_server_req *req,
				  struct rk_server_resp *resp);

/* Counts of what the server refused, for /metrics. */
struct rk_server_stats {
	unsigned long long requests_by_code[600];
	unsigned long long unauthorized;
	unsigned long long rate_limited;
};

/*
 * Starts serving (its own threads) on cfg->listen. A missing token file is
 * created with a random token (0600) and the fact logged (not the token).
 * RK_EINVAL: a bad address, a token file open to others, TLS asked for but
 * not in this libmicrohttpd; RK_EIO: the address is taken.
 */
int rk_server_start(struct rk_server **out, const struct rk_config_server *cfg,
		    rk_server_handler fn, void *arg, struct rk_error *err) RK_WARN_UNUSED;
/* The port it listens on (the one picked when cfg->listen asked for 0). */
int rk_server_port(const struct rk_server *s);
/* "http" or "https". */
const char *rk_server_scheme(const struct rk_server *s);
void rk_server_stats(struct rk_server *s, struct rk_server_stats *out);
/* Stops accepting, waits for the requests being answered, frees. NULL accepted. */
void rk_server_stop(struct rk_server *s);

/* A response body: copies text (json_dumps'd or HTML). Returns -1 when out of memory. */
int rk_server_reply(struct rk_server_resp *resp, int status, const char *content_type,
		    const char *text);

#endif
