/*
 * The rotation engine: the journaled state machine of the design
 *
 *   planned -> generated -> staged -> verified -> [set] -> promoted
 *           -> restarted -> done;   failed | rolled_back
 *
 * Each step is committed to the state DB before the next external call, the
 * generated value is kept sealed in the journal until done (so a resumed
 * stage writes the same value under the same idempotency key), and resume
 * asks the provider whether an interrupted write landed before writing again.
 */
#ifndef REKEY_ENGINE_H
#define REKEY_ENGINE_H

#include <stdint.h>
#include <jansson.h>
#include "rekey/error.h"

struct rk_ctx;

/* The most rotations `--parallel` may run at once. */
#define RK_PARALLEL_MAX 256

struct rk_rotate_opts {
	int no_restart;		/* skip dependents */
	int manual;		/* a person named the secrets: clears needs_attention */
	const char *kind;	/* "rotate", "emergency" */
	const char *reason;	/* free text for the run and the audit log */
	int parallel;		/* rotations in flight at once; 0: sized from the providers' caps */
	const char *run_id;	/* the new run's id (rk_new_run_id); NULL: made here */
};

/*
 * The schedule at time `at`: one object per secret with name, provider,
 * policy, environment, tier, owner, last_rotated, next_due, due, overdue,
 * expired (past grace), window_open, next_window, needs_attention, reason.
 */
int rk_engine_plan(struct rk_ctx *ctx, int64_t at, json_t **out, struct rk_error *err) RK_WARN_UNUSED;

/*
 * The one rule of what a scheduled rotation (`rotate --due`, `plan`, the
 * daemon) picks from a plan entry: due, its window open (unless
 * ignore_window), and not waiting for a person (needs_attention).
 */
int rk_engine_picks(const json_t *entry, int ignore_window);

/*
 * A plan entry's state in one word, the worst first: "needs_attention",
 * "expired" (past grace), "overdue", "due", "ok" (status, metrics, the page).
 */
const char *rk_engine_state(const json_t *entry);

/*
 * The names (a JSON array of strings, by name) that rk_engine_picks takes
 * from the plan at `at`, without holding the plan: one entry at a time.
 */
int rk_engine_due(struct rk_ctx *ctx, int64_t at, int ignore_window, json_t **names,
		  struct rk_error *err) RK_WARN_UNUSED;

/*
 * Refuses (RK_EINVAL, naming the run and the command that finishes it) when
 * any of names (a JSON array of strings) has a rotation in flight in a run
 * that has not finished: it must be resumed, not raced.
 */
int rk_engine_check_idle(struct rk_ctx *ctx, const json_t *names,
			 struct rk_error *err) RK_WARN_UNUSED;

/*
 * Rotates the named secrets (JSON array of strings) in one new run and
 * restarts their dependents once each. *report: {run_id, kind, status
 * ("done" | "partial" | "failed"), secrets: [...], dependents: [...]}.
 * Returns 0 when the run itself could be carried out (see status), or an
 * error when it could not start.
 */
int rk_engine_rotate(struct rk_ctx *ctx, const json_t *names, const struct rk_rotate_opts *opts,
		     json_t **report, struct rk_error *err) RK_WARN_UNUSED;

/*
 * Finishes an interrupted run (run_id NULL: every unfinished run; report is
 * an array then), `parallel` rotations at once (0: from the providers' caps).
 */
int rk_engine_resume(struct rk_ctx *ctx, const char *run_id, int parallel, json_t **report,
		     struct rk_error *err) RK_WARN_UNUSED;

/*
 * Makes the value that was current just before the secret's latest change
 * (rotation or rollback; or the value of version `to`) current again as a
 * new version, in a run of kind "rollback", and restarts its dependents
 * (unless opts->no_restart; opts may be NULL). The report's result for the
 * secret is "restored".
 */
int rk_engine_rollback(struct rk_ctx *ctx, const char *name, const char *to,
		       const struct rk_rotate_opts *opts, json_t **report,
		       struct rk_error *err) RK_WARN_UNUSED;

/*
 * Called (from worker threads: the function must be thread-safe) each time a
 * rotation leaves the pipeline, with the secret's name and its result's
 * word ("rotated", "failed", ...). One per process; NULL to stop.
 */
typedef void (*rk_engine_progress_fn)(void *arg, const char *secret, const char *result);
void rk_engine_set_progress(rk_engine_progress_fn fn, void *arg);

#endif
