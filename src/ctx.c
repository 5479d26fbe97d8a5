/*
 * The context: loading config and state in the order every command needs.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/policy.h"
#include "rekey/provider.h"
#include "rekey/store.h"
#include "rekey/util.h"

void
rk_ctx_init(struct rk_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->lock_fd = -1;
#ifdef RK_FAULT_INJECTION
	/* Test builds only: a fixed clock so tests can move time. */
	{
		const char *now = getenv("REKEY_TEST_NOW");
		long long v;
		if (now && rk_parse_int(now, 0, 1LL << 40, &v) == 0)
			ctx->fixed_now = v;
	}
#endif
}

void
rk_ctx_cleanup(struct rk_ctx *ctx)
{
	if (ctx->providers != NULL) {
		for (size_t i = 0; i < ctx->cfg->nproviders; i++)
			rk_provider_close(ctx->providers[i]);
		free(ctx->providers);
	}
	rk_store_close(ctx->store);
	rk_keys_free(ctx->keys);
	rk_policy_set_free(ctx->policies);
	rk_config_free(ctx->cfg);
	rk_state_unlock(ctx->lock_fd);
	ctx->lock_fd = -1;
	ctx->providers = NULL;
	ctx->store = NULL;
	ctx->keys = NULL;
	ctx->policies = NULL;
	ctx->cfg = NULL;
}

int
rk_ctx_load_config(struct rk_ctx *ctx, struct rk_error *err)
{
	int r;

	if ((r = rk_config_load(&ctx->cfg, ctx->config_path, err)) < 0)
		return r;
	/* A policy_dir that is not a directory is the config's error: say where it is written. */
	if (ctx->cfg->policy_dir != NULL) {
		struct stat st;
		const char *why = stat(ctx->cfg->policy_dir, &st) != 0 ? strerror(errno)
				  : !S_ISDIR(st.st_mode) ? "not a directory"
				  : access(ctx->cfg->policy_dir, R_OK | X_OK) != 0 ? strerror(errno)
										 : NULL;
		if (why != NULL)
			return rk_doc_error_key(err, ctx->cfg->doc, rk_doc_root(ctx->cfg->doc),
						"policy_dir", RK_EINVAL, "policy_dir %s cannot be read: %s",
						ctx->cfg->policy_dir, why);
	}
	if ((r = rk_policy_set_load(&ctx->policies, ctx->cfg->policy_dir, err)) < 0)
		return r;
	if ((ctx->providers = calloc(ctx->cfg->nproviders, sizeof(*ctx->providers))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
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
	return rk_keys_load(&ctx->keys, ctx->cfg->state_dir, err);
}

int
rk_ctx_provider(struct rk_ctx *ctx, const char *name, struct rk_provider **out,
		struct rk_error *err)
{
	for (size_t i = 0; i < ctx->cfg->nproviders; i++) {
		const struct rk_config_provider *cp = &ctx->cfg->providers[i];
		struct rk_provider_env env;
		int r;

		if (strcmp(cp->name, name) != 0)
			continue;
		if (ctx->providers[i] == NULL) {
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

const char *
rk_ctx_actor(struct rk_ctx *ctx)
{
	/* Lazily: a user lookup may talk to nscd/sssd, which the guard must not. */
	if (ctx->actor[0] == '\0') {
		char host[64] = "localhost";
		const char *user = getenv("USER");
		struct passwd *pw;

		if (user == NULL && (pw = getpwuid(getuid())) != NULL)
			user = pw->pw_name;
		gethostname(host, sizeof(host) - 1);
		snprintf(ctx->actor, sizeof(ctx->actor), "%s@%s", user ? user : "unknown", host);
	}
	return ctx->actor;
}

int64_t
rk_now(const struct rk_ctx *ctx)
{
	return ctx->fixed_now ? ctx->fixed_now : (int64_t)time(NULL);
}
