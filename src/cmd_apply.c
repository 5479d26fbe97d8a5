/*
 * rekey apply -f FILE [--prune] [--dry-run]: makes the inventory in the DB
 * match FILE and prints the diff. The file is validated completely before
 * anything changes, and the change is one transaction with its audit rows.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/audit.h"
#include "rekey/cli.h"
#include "rekey/ctx.h"
#include "rekey/inventory.h"
#include "rekey/store.h"

static const char usage[] =
	"usage: rekey apply -f FILE [--prune] [--dry-run]\n\n"
	"Adds and updates the secrets of the inventory FILE in the state DB and prints\n"
	"the diff (+ added, ~ changed, - removed). Secrets in the DB but not in FILE\n"
	"are kept unless --prune is given. --dry-run prints the diff and changes nothing.\n";

/* Names of the top-level fields that differ between two specs. */
static void
changed_fields(const json_t *a, const json_t *b, char *out, size_t n)
{
	const char *key;
	json_t *v;
	size_t used = 0;

	out[0] = '\0';
	json_object_foreach((json_t *)a, key, v) {
		if (!json_equal(v, json_object_get(b, key)))
			used += (size_t)snprintf(out + used, used < n ? n - used : 0, "%s%s",
						 used ? ", " : "", key);
	}
	json_object_foreach((json_t *)b, key, v) {
		if (json_object_get(a, key) == NULL)
			used += (size_t)snprintf(out + used, used < n ? n - used : 0, "%s%s",
						 used ? ", " : "", key);
	}
}

int
cmd_apply(struct rk_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "prune", no_argument, NULL, 'p' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rk_error err = { 0 };
	const char *file = NULL;
	int prune = 0, dry = 0, c, rc = 1;
	json_t *specs = NULL, *rows = NULL, *current = NULL, *diff = NULL, *spec, *row;
	json_t *event = NULL;	/* name -> "secret.added" | "secret.changed", from the diff */
	json_t *added, *changed, *removed, *kept;
	size_t i;

	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 'p': prune = 1; break;
		case 'n': dry = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		default: return rk_cli_usage(usage, "bad arguments");
		}
	}
	if (file == NULL || optind != argc)
		return rk_cli_usage(usage, "apply needs -f FILE and nothing else");
	if (rk_ctx_load_config(ctx, &err) < 0)
		return rk_cli_fail(&err, "cannot load configuration");
	if (rk_inventory_load(&specs, file, ctx->cfg, ctx->policies, rk_now(ctx), &err) < 0)
		return rk_cli_fail(&err, "invalid inventory");
	if (rk_ctx_open_state(ctx, !dry, &err) < 0) {
		rc = rk_cli_fail(&err, "cannot open the state");
		goto out;
	}
	if (rk_store_secret_list(ctx->store, &rows, &err) < 0) {
		rc = rk_cli_fail(&err, "cannot read the inventory");
		goto out;
	}
	current = json_object();
	event = json_object();
	json_array_foreach(rows, i, row)
		json_object_set(current, json_string_value(json_object_get(row, "name")),
				json_object_get(row, "spec"));
	added = json_array();
	changed = json_array();
	removed = json_array();
	kept = json_array();
	diff = json_pack("{s:s, s:b, s:o, s:o, s:o, s:o}", "file", file, "dry_run", dry, "added",
			 added, "changed", changed, "removed", removed, "not_in_file", kept);
	json_array_foreach(specs, i, spec) {
		const char *name = json_string_value(json_object_get(spec, "name"));
		const json_t *old = json_object_get(current, name);
		if (old == NULL) {
			json_array_append_new(added, json_string(name));
			json_object_set_new(event, name, json_string("secret.added"));
		} else if (!json_equal(old, spec)) {
			char fields[300];
			changed_fields(old, spec, fields, sizeof(fields));
			json_array_append_new(changed, json_pack("{s:s, s:s}", "name", name,
								 "fields", fields));
			json_object_set_new(event, name, json_string("secret.changed"));
		}
		json_object_del(current, name);
	}
	{
		const char *name;
		json_t *v;
		json_object_foreach(current, name, v)
			json_array_append_new(prune ? removed : kept, json_string(name));
	}
	if (!dry) {
		if (rk_store_begin(ctx->store, &err) < 0)
			goto fail;
		json_array_foreach(specs, i, spec) {
			const char *name = json_string_value(json_object_get(spec, "name"));
			const char *ev = json_string_value(json_object_get(event, name));
			if (ev == NULL)
				continue;	/* unchanged */
			if (rk_store_secret_put(ctx->store, spec, rk_now(ctx), &err) < 0 ||
			    rk_audit(ctx, ev, name, spec, &err) < 0)
				goto fail_tx;
		}
		json_array_foreach(removed, i, row) {
			if (rk_store_secret_delete(ctx->store, json_string_value(row), &err) < 0 ||
			    rk_audit(ctx, "secret.removed", json_string_value(row), NULL, &err) < 0)
				goto fail_tx;
		}
		if (rk_store_commit(ctx->store, &err) < 0)
			goto fail;	/* the commit rolled back itself */
	}
	if (ctx->output_json) {
		rk_print_json(diff);
	} else {
		json_t *e;
		json_array_foreach(added, i, e)
			printf("+ %s\n", json_string_value(e));
		json_array_foreach(changed, i, e)
			printf("~ %s (%s)\n", json_string_value(json_object_get(e, "name")),
			       json_string_value(json_object_get(e, "fields")));
		json_array_foreach(removed, i, e)
			printf("- %s\n", json_string_value(e));
		json_array_foreach(kept, i, e)
			printf("! %s is not in %s; kept (use --prune to remove it)\n",
			       json_string_value(e), file);
		printf("%s%zu added, %zu changed, %zu removed%s\n", dry ? "dry run: " : "",
		       json_array_size(added), json_array_size(changed), json_array_size(removed),
		       dry ? " (nothing was changed)" : "");
	}
	rc = 0;
	goto out;
fail_tx:
	rk_store_rollback(ctx->store);
fail:
	rc = rk_cli_fail(&err, "cannot apply %s; nothing was changed", file);
out:
	json_decref(diff);
	json_decref(current);
	json_decref(event);
	json_decref(rows);
	json_decref(specs);
	return rc;
}
