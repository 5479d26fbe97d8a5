/*
 * rekey get NAME [--version V]: the value of a secret in the local store, on
 * stdout only (never logged). Other providers have their own clients.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rekey/cli.h"
#include "rekey/ctx.h"
#include "rekey/provider.h"
#include "rekey/store.h"

static const char usage[] =
	"usage: rekey get NAME [--version V]\n\n"
	"Prints the current value (or version V) of a secret kept by the local\n"
	"provider to stdout, followed by a newline only when stdout is a terminal.\n";

int
cmd_get(struct rk_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "version", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rk_error err = { 0 };
	struct rk_provider *p;
	struct rk_secret *val = NULL;
	struct rk_version ver = { "" };
	struct rk_loc loc = { 0 };
	json_t *row = NULL;
	const json_t *spec;
	const char *want = NULL;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'v': want = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: return rk_cli_usage(usage, "bad arguments");
		}
	}
	if (optind + 1 != argc)
		return rk_cli_usage(usage, "get needs exactly one NAME");
	if (rk_ctx_load_config(ctx, &err) < 0)
		return rk_cli_fail(&err, "cannot load configuration");
	if (rk_ctx_open_state(ctx, 0, &err) < 0)
		return rk_cli_fail(&err, "cannot open the state");
	if (rk_store_secret_get(ctx->store, argv[optind], &row, &err) < 0) {
		rk_cli_typed_name(&err);
		return rk_cli_fail(&err, "cannot get '%s'", argv[optind]);
	}
	spec = json_object_get(row, "spec");
	if (rk_ctx_provider(ctx, json_string_value(json_object_get(spec, "provider")), &p, &err) < 0)
		goto fail;
	if (!(rk_provider_caps(p) & RK_CAP_EXPORT)) {
		rk_error_set(&err, RK_EINVAL,
			     "'%s' is kept by provider '%s' (type %s); rekey get prints only local "
			     "secrets, use that provider's own client", argv[optind], p->name,
			     p->ops->type);
		goto fail;
	}
	if (rk_loc_parse(&loc, p, json_object_get(spec, "locator"), &err) < 0)
		goto fail;
	/* A command of its own: no deadline but the provider's timeouts, and no stop flag. */
	if (want != NULL) {
		snprintf(ver.id, sizeof(ver.id), "%s", want);
		if (rk_provider_read_version(p, NULL, &loc, &ver, &val, &err) < 0)
			goto fail;
	} else if (rk_provider_read(p, NULL, &loc, &val, &ver, &err) < 0) {
		goto fail;
	}
	{
		size_t off = 0, len = rk_secret_len(val);
		while (off < len) {
			ssize_t w = write(STDOUT_FILENO, rk_secret_cdata(val) + off, len - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		if (isatty(STDOUT_FILENO) && write(STDOUT_FILENO, "\n", 1) < 0)
			off = 0;
		rc = off == len ? 0 : 1;
	}
	goto out;
fail:
	rc = rk_cli_fail(&err, "cannot get '%s'", argv[optind]);
out:
	rk_secret_free(val);
	rk_loc_free(&loc);
	json_decref(row);
	return rc;
}
