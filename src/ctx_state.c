/*
 * The context's state half: the state DB, the keys, the lock and the opened
 * providers (src/ctx.c has the config half).
 */
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/provider.h"
#include "rekey/store.h"
#include "rekey/util.h"

void
rk_ctx_close_providers(struct rk_ctx *ctx)
{
	if (ctx->providers == NULL)
		return;
	for (size_t i = 0; i < ctx->cfg->nproviders; i++) {
		rk_provider_close(ctx->providers[i]);
		ctx->providers[i] = NULL;
	}
}

void
rk_ctx_cleanup(struct rk_ctx *ctx)
{
	rk_ctx_close_providers(ctx);
	rk_store_close(ctx->store);
	rk_keys_free(ctx->keys);
	rk_state_unlock(ctx->lock_fd);
	ctx->lock_fd = -1;
	ctx->store = NULL;
	ctx->keys = NULL;
	rk_ctx_free_config(ctx);
}

int
rk_ctx_open_state(struct rk_ctx *ctx, int lock, struct rk_error *err)
{
	struct stat st;
	int r;

	if (stat(ctx->cfg->state_dir, &st) != 0)
		return rk_error_set(err, RK_ENOTFOUND,
				    "state directory %s does not exist; run `rekey init`",
				    ctx->cfg->state_dir);
	if ((st.st_mode & 077) != 0)
		return rk_error_set(err, RK_EINVAL,
				    "state directory %s is accessible by group or others (mode "
				    "%03o); run chmod 700 %s", ctx->cfg->state_dir,
				    (unsigned)(st.st_mode & 0777), ctx->cfg->state_dir);
	if (lock && (r = rk_state_lock(ctx->cfg->state_dir, &ctx->lock_fd, err)) < 0)
		return r;
	if ((r = rk_store_open(&ctx->store, ctx->cfg->state_dir, 0, err)) < 0)
		return r;
	/* Looked up now, while one thread runs: workers only read it. */
	(void)rk_ctx_actor(ctx);
	return rk_keys_load(&ctx->keys, ctx->cfg->state_dir, err);
}

static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;

static int provider_locked(struct rk_ctx *ctx, const char *name, struct rk_provider **out,
			   struct rk_error *err);

int
rk_ctx_provider(struct rk_ctx *ctx, const char *name, struct rk_provider **out,
		struct rk_error *err)
{
	int r;

	/* rekey serve's HTTP threads plan too (an emergency dry run): one opener at a time. */
	pthread_mutex_lock(&open_mu);
	r = provider_locked(ctx, name, out, err);
	pthread_mutex_unlock(&open_mu);
	return r;
}

static int
provider_locked(struct rk_ctx *ctx, const char *name, struct rk_provider **out,
		struct rk_error *err)
{
	for (size_t i = 0; i < ctx->cfg->nproviders; i++) {
		const struct rk_config_provider *cp = &ctx->cfg->providers[i];
		struct rk_provider_env env;
		int r;

		if (strcmp(cp->name, name) != 0)
			continue;
		if (ctx->providers[i] == NULL) {
			if (ctx->workers_running)
				return rk_error_set(err, RK_EINTERNAL,
						    "provider '%s' was not opened before the rotations "
						    "started (a bug in rekey)", name);
			env.name = cp->name;
			env.state_dir = ctx->cfg->state_dir;
			env.local_key = ctx->keys ? rk_keys_subkey(ctx->keys, "local") : NULL;
			env.doc = ctx->cfg->doc;
			if (env.local_key == NULL)
				return rk_error_set(err, RK_EINTERNAL, "keys not loaded");
			if ((r = rk_provider_open(&ctx->providers[i], cp->ops, &env, cp->cfg, err)) < 0)
				return r;
		}
		*out = ctx->providers[i];
		return 0;
	}
	return rk_error_set(err, RK_EINVAL, "provider '%s' is not configured in %s", name,
			    ctx->cfg->path);
}
