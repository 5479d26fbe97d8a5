/*
 * The context: loading the config and the policies. Opening the state and
 * the providers is in src/ctx_state.c, so that rekey-guard, which links
 * this file but never opens the state, carries neither SQLite nor curl.
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
#include "rekey/ctx.h"
#include "rekey/policy.h"
#include "rekey/util.h"

void
rk_ctx_init(struct rk_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->lock_fd = -1;
	atomic_init(&ctx->stop, 0);
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
rk_ctx_free_config(struct rk_ctx *ctx)
{
	free(ctx->providers);
	rk_policy_set_free(ctx->policies);
	rk_config_free(ctx->cfg);
	ctx->providers = NULL;
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

int64_t
rk_now_ms(const struct rk_ctx *ctx)
{
	struct timespec ts;

	if (ctx->fixed_now)
		return ctx->fixed_now * 1000;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
