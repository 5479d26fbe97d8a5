/*
 * rekey init: the state directory (0700), the DB and the keys (0600).
 * Safe to run again: existing keys and data are kept.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "rekey/audit.h"
#include "rekey/cli.h"
#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/store.h"
#include "rekey/util.h"

static const char usage[] =
	"usage: rekey init\n\n"
	"Creates the state directory named by state_dir (mode 0700) with the state DB,\n"
	"the master key that encrypts the local store and the fingerprint key (0600).\n"
	"Running it again keeps what exists.\n";

int
cmd_init(struct rk_ctx *ctx, int argc, char **argv)
{
	struct rk_error err = { 0 };
	struct stat st;
	int created = 0;

	if (rk_cli_wants_help(argc, argv, usage))
		return 0;
	if (argc > 1)
		return rk_cli_usage(usage, "init takes no arguments");
	if (rk_ctx_load_config(ctx, &err) < 0)
		return rk_cli_fail(&err, "cannot load configuration");
	if (stat(ctx->cfg->state_dir, &st) != 0) {
		if (rk_mkdir_p(ctx->cfg->state_dir, 0700, &err) < 0)
			return rk_cli_fail(&err, "cannot create the state directory");
		created = 1;
	} else if (!S_ISDIR(st.st_mode)) {
		rk_error_set(&err, RK_EINVAL, "%s exists and is not a directory",
			     ctx->cfg->state_dir);
		return rk_cli_fail(&err, "cannot initialise");
	}
	if (chmod(ctx->cfg->state_dir, 0700) < 0) {
		rk_error_set(&err, RK_EIO, "cannot set mode 0700 on %s", ctx->cfg->state_dir);
		return rk_cli_fail(&err, "cannot initialise");
	}
	if (rk_state_lock(ctx->cfg->state_dir, &ctx->lock_fd, &err) < 0 ||
	    rk_keys_create(ctx->cfg->state_dir, &err) < 0 ||
	    rk_store_open(&ctx->store, ctx->cfg->state_dir, 1, &err) < 0 ||
	    rk_keys_load(&ctx->keys, ctx->cfg->state_dir, &err) < 0)
		return rk_cli_fail(&err, "cannot initialise %s", ctx->cfg->state_dir);
	if (created && rk_audit(ctx, "state.initialized", ctx->cfg->state_dir, NULL, &err) < 0)
		return rk_cli_fail(&err, "cannot write the audit log");
	if (ctx->output_json) {
		json_t *j = json_pack("{s:s, s:b}", "state_dir", ctx->cfg->state_dir, "created",
				      created);
		rk_print_json(j);
		json_decref(j);
	} else {
		printf("%s %s\n", created ? "initialized" : "already initialized:",
		       ctx->cfg->state_dir);
	}
	return 0;
}
