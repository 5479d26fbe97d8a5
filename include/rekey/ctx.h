/*
 * The one context made in main and passed down: config, policies, state DB,
 * keys, opened providers, the clock and output settings. No hidden globals.
 */
#ifndef REKEY_CTX_H
#define REKEY_CTX_H

#include <stdatomic.h>
#include <stdint.h>
#include "rekey/error.h"

struct rk_config;
struct rk_policy_set;
struct rk_store;
struct rk_keys;
struct rk_provider;

struct rk_ctx {
	const char *config_path;	/* -c, may be NULL */
	int output_json;		/* --output json */
	struct rk_config *cfg;
	struct rk_policy_set *policies;
	struct rk_store *store;
	struct rk_keys *keys;
	struct rk_provider **providers;	/* parallel to cfg->providers, opened lazily */
	int lock_fd;			/* -1 when not holding the state lock */
	/*
	 * Set (from a signal handler too) to stop: no new rotation starts, and
	 * every provider call and wait in flight returns RK_ECANCELED.
	 */
	atomic_int stop;
	/* Workers are running: providers must all be open already (no lazy open). */
	int workers_running;
	int64_t fixed_now;		/* tests: a fixed clock (fault builds only) */
	char actor[128];		/* who acts, for the audit log: user@host */
};

void rk_ctx_init(struct rk_ctx *ctx);
/* Closes the providers and the state, then frees the config (src/ctx_state.c). */
void rk_ctx_cleanup(struct rk_ctx *ctx);
/*
 * Frees only what rk_ctx_load_config made: for a program that never opens
 * the state (rekey-guard), so it does not link the state's code.
 */
void rk_ctx_free_config(struct rk_ctx *ctx);
/* Loads rekey.yaml and the policies. */
int rk_ctx_load_config(struct rk_ctx *ctx, struct rk_error *err) RK_WARN_UNUSED;
/* Opens the state DB and keys (after load_config); lock: take the state lock. */
int rk_ctx_open_state(struct rk_ctx *ctx, int lock, struct rk_error *err) RK_WARN_UNUSED;
/* The opened provider instance of that name (opened on first use). */
int rk_ctx_provider(struct rk_ctx *ctx, const char *name, struct rk_provider **out,
		    struct rk_error *err) RK_WARN_UNUSED;
/* Closes the opened providers (they open again on next use). */
void rk_ctx_close_providers(struct rk_ctx *ctx);
/* Who acts, for the audit log ("user@host"), looked up on first use. */
const char *rk_ctx_actor(struct rk_ctx *ctx);
/* Unix seconds. */
int64_t rk_now(const struct rk_ctx *ctx);
/* Unix milliseconds (the scheduler's jitter). */
int64_t rk_now_ms(const struct rk_ctx *ctx);

#endif
