/*
 * The command line: a table of commands (src/cli.c), one file per command
 * family (src/cmd_*.c), and the output helpers they share: tables in text,
 * the same data as JSON with --output json.
 */
#ifndef REKEY_CLI_H
#define REKEY_CLI_H

#include <stdint.h>
#include <jansson.h>
#include "rekey/error.h"

struct rk_ctx;

int rk_cli_main(int argc, char **argv);

/* Command entry points: argv[0] is the command name. Return an exit code. */
int cmd_init(struct rk_ctx *ctx, int argc, char **argv);
int cmd_apply(struct rk_ctx *ctx, int argc, char **argv);
int cmd_list(struct rk_ctx *ctx, int argc, char **argv);
int cmd_status(struct rk_ctx *ctx, int argc, char **argv);
int cmd_plan(struct rk_ctx *ctx, int argc, char **argv);
int cmd_rotate(struct rk_ctx *ctx, int argc, char **argv);
int cmd_rollback(struct rk_ctx *ctx, int argc, char **argv);
int cmd_emergency(struct rk_ctx *ctx, int argc, char **argv);
int cmd_history(struct rk_ctx *ctx, int argc, char **argv);
int cmd_runs(struct rk_ctx *ctx, int argc, char **argv);
int cmd_run(struct rk_ctx *ctx, int argc, char **argv);
int cmd_audit(struct rk_ctx *ctx, int argc, char **argv);
int cmd_backup(struct rk_ctx *ctx, int argc, char **argv);
int cmd_restore(struct rk_ctx *ctx, int argc, char **argv);
int cmd_get(struct rk_ctx *ctx, int argc, char **argv);
int cmd_guard(struct rk_ctx *ctx, int argc, char **argv);
int cmd_doctor(struct rk_ctx *ctx, int argc, char **argv);
int cmd_serve(struct rk_ctx *ctx, int argc, char **argv);

/*
 * Takes the global options (-c, --output, --log-format, --log-level) out of
 * argv wherever they stand before "--", fills ctx and sets up logging.
 * Returns -1 to go on, or the exit code after printing why not.
 */
int rk_cli_global_options(struct rk_ctx *ctx, int *argc, char **argv);

/* Logs err (once, at the top) and returns its exit code. */
int rk_cli_fail(const struct rk_error *err, const char *fmt, ...) RK_PRINTF(2, 3);
/* A usage error: prints the message and the command's usage, returns 2. */
int rk_cli_usage(const char *usage, const char *fmt, ...) RK_PRINTF(2, 3);
/*
 * After looking up a NAME or RUN the user typed: "not found" is the user's
 * input (exit 2, as for `rotate NAME`), not a failed operation. Call it for
 * that lookup only, so that a provider's "not found" stays exit 1.
 */
void rk_cli_typed_name(struct rk_error *err);
/* Prints `usage` and returns 0 when argv has -h/--help. */
int rk_cli_wants_help(int argc, char **argv, const char *usage);

/*
 * Loads the configuration and opens the state (taking the state lock when
 * `lock`). 0, or the exit code after logging why not.
 */
int rk_cli_open(struct rk_ctx *ctx, int lock);

/* A run's report as `rekey rotate` prints it (tables, run line, rollback). */
void rk_cli_print_run(const json_t *rep);
/* A run's exit code: 0 done, 3 partial or interrupted, 1 failed. */
int rk_cli_run_exit(const json_t *rep);
/* From here on SIGTERM/SIGINT set ctx->stop: the run stops cleanly. */
void rk_cli_catch_stop(struct rk_ctx *ctx);
/*
 * `--resume RUN|all`: finishes the run(s) holding the leader lease (`ha`;
 * waiting up to wait_ms for it), prints, returns the exit code.
 */
int rk_cli_resume(struct rk_ctx *ctx, const char *run, int parallel, int64_t wait_ms);

struct rk_ha;
/*
 * Takes the leader lease when `ha` is configured (*ha NULL otherwise),
 * waiting up to wait_ms for another holder: 0, or the exit code after
 * logging why not ("<nothing>: lease ... is held by ...", 75).
 */
int rk_cli_hold_lease(struct rk_ctx *ctx, int64_t wait_ms, const char *nothing,
		      struct rk_ha **ha);
/* A lease lost during the run: said on stderr and as "lease_lost" in rep; rc at least 3. */
int rk_cli_lease_verdict(const struct rk_ha *ha, json_t *rep, int rc);
/* --wait-lease's DURATION into *wait_ms: 0, or the usage error's exit code. */
int rk_cli_parse_wait(const char *arg, const char *usage, int64_t *wait_ms);

/* Prints JSON (pretty, newline-terminated) on stdout. */
void rk_print_json(const json_t *v);

/*
 * A text table. Columns are given once; rows are arrays of strings. Printed
 * with aligned columns; cells are sanitized (no control characters).
 */
struct rk_table;
struct rk_table *rk_table_new(const char *const *headers);
void rk_table_add(struct rk_table *t, ...);	/* exactly one string per column */
void rk_table_print(const struct rk_table *t);
void rk_table_free(struct rk_table *t);

/* "3d4h ago" / "in 2h" / "never" relative to now. */
void rk_fmt_rel(long long t, long long now, char *buf, unsigned n);

#endif
