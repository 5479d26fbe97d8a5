/*
 * rekey backup [--to FILE] / rekey restore --from FILE [--yes].
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rekey/backup.h"
#include "rekey/cli.h"
#include "rekey/config.h"
#include "rekey/ctx.h"
#include "rekey/util.h"

static const char backup_usage[] =
	"usage: rekey backup --to FILE\n\n"
	"Writes an encrypted, consistent backup of the state (the DB, the keys and\n"
	"the local store) to FILE (0600), while rotations and the daemon go on.\n"
	"The key is backup.key_file (made on first use): keep a copy of it away\n"
	"from the backups. Exit 0 done, 1 failed, 2 usage.\n";

static const char restore_usage[] =
	"usage: rekey restore --from FILE [--yes]\n\n"
	"Replaces the state with the backup FILE, after checking it whole (its\n"
	"DB's integrity and audit chain); the current state is kept as\n"
	"<state_dir>.pre-restore-TIME. Stop the daemon and rotations first.\n"
	"Without a terminal, --yes is required. Exit 0 done, 1 failed (the state\n"
	"is unchanged), 2 usage, 75 locked by another rekey.\n";

/* Parses the one FILE option (and --yes where allowed); 0, or the usage error's exit code. */
static int
parse_file_opt(int argc, char **argv, const char *name, const char *use, int allow_yes,
	       const char **file, int *yes)
{
	const struct option opts[] = {
		{ name, required_argument, NULL, 'f' },
		{ "yes", no_argument, NULL, 'y' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': *file = optarg; break;
		case 'y':
			if (!allow_yes)
				return rk_cli_usage(use, "unknown option --yes");
			*yes = 1;
			break;
		case 'h': fputs(use, stdout); return -1;
		default: return rk_cli_usage(use, "bad arguments");
		}
	}
	if (optind != argc)
		return rk_cli_usage(use, "unexpected argument '%s'", argv[optind]);
	return 0;
}

int
cmd_backup(struct rk_ctx *ctx, int argc, char **argv)
{
	struct rk_error err = { 0 };
	const char *to = NULL;
	json_t *info = NULL;
	int yes = 0, r;

	if ((r = parse_file_opt(argc, argv, "to", backup_usage, 0, &to, &yes)) != 0)
		return r < 0 ? 0 : r;
	if (to == NULL)
		return rk_cli_usage(backup_usage, "--to FILE is required");
	if ((r = rk_cli_open(ctx, 0)) != 0)
		return r;
	if (rk_backup_write(ctx, to, &info, &err) < 0) {
		rk_cli_fail(&err, "backup failed");
		return 1;
	}
	if (ctx->output_json)
		rk_print_json(info);
	else
		printf("backup written to %s (%lld bytes, %lld audit rows, %lld files)\n", to,
		       (long long)json_integer_value(json_object_get(info, "bytes")),
		       (long long)json_integer_value(json_object_get(info, "audit_rows")),
		       (long long)json_integer_value(json_object_get(info, "files")));
	json_decref(info);
	return 0;
}

/* On a terminal: asks. 1 yes, 0 no. */
static int
confirm(const struct rk_ctx *ctx, const char *from)
{
	char line[16];

	fprintf(stderr, "Replace the state in %s with the backup %s? The current state is kept "
		"as %s.pre-restore-TIME. [y/N] ", ctx->cfg->state_dir, from, ctx->cfg->state_dir);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	return line[0] == 'y' || line[0] == 'Y';
}

int
cmd_restore(struct rk_ctx *ctx, int argc, char **argv)
{
	struct rk_error err = { 0 };
	const char *from = NULL;
	json_t *info = NULL;
	char when[32];
	int yes = 0, r;

	if ((r = parse_file_opt(argc, argv, "from", restore_usage, 1, &from, &yes)) != 0)
		return r < 0 ? 0 : r;
	if (from == NULL)
		return rk_cli_usage(restore_usage, "--from FILE is required");
	if (!yes && !(isatty(0) && isatty(2)))
		return rk_cli_usage(restore_usage, "not on a terminal: give --yes to replace the "
				    "state without being asked");
	if (rk_ctx_load_config(ctx, &err) < 0)
		return rk_cli_fail(&err, "cannot load configuration");
	if (!yes && !confirm(ctx, from)) {
		fprintf(stderr, "rekey: nothing restored\n");
		return 1;
	}
	if ((r = rk_backup_restore(ctx, from, &info, &err)) < 0) {
		if (r == RK_EBUSY) {
			rk_cli_fail(&err, "cannot restore: stop `rekey serve` and any rotation "
				    "first, then run restore again");
			return 75;
		}
		rk_cli_fail(&err, "restore failed");
		return 1;
	}
	if (ctx->output_json) {
		rk_print_json(info);
	} else {
		rk_format_time(json_integer_value(json_object_get(info, "created_at")), when,
			       sizeof(when));
		printf("restored %s (made %s, %lld audit rows); the previous state is in %s\n", from,
		       when, (long long)json_integer_value(json_object_get(info, "audit_rows")),
		       json_string_value(json_object_get(info, "previous_state")));
	}
	json_decref(info);
	return 0;
}
