/*
 * The startup guard, shared by `rekey guard` (src/cmd_guard.c) and the
 * rekey-guard binary (src/guard_bin.c): one source for the options, the
 * value checks, the rules and the output, so the two cannot drift apart.
 *
 * What needs the state DB or a provider (--secret, --inventory) sits behind
 * struct rk_guard_state_ops, which only rekey links: it is the code that
 * brings in SQLite, curl and the providers. rekey-guard passes no state ops
 * and a hand-over instead: such runs, and any configuration it cannot load
 * itself (a provider type it does not carry), are handed to the full rekey
 * with the original arguments, so the answer is rekey's, byte for byte.
 */
#ifndef REKEY_GUARD_H
#define REKEY_GUARD_H

#include <stddef.h>
#include <jansson.h>
#include "rekey/check.h"
#include "rekey/error.h"

struct rk_ctx;
struct rk_policy;

/* One guard run: the checks made so far. */
struct rk_guard {
	struct rk_ctx *ctx;
	json_t *checks;		/* every check with its result */
	int violations;
	struct rk_defaults *defaults;	/* policy/known-defaults.txt */
	const char *environment;	/* for --inventory, may be NULL */
	int inventory;		/* --inventory given */
	const struct rk_guard_state_ops *state;	/* NULL in rekey-guard */
};

struct rk_guard_state_ops {
	/* Opens the state DB and the keys (without the lock). */
	int (*open)(struct rk_ctx *ctx, struct rk_error *err);
	/* --inventory: is v[0..len) a value recorded for another environment? */
	int (*check_reuse)(struct rk_guard *g, const char *source, const char *name,
			   const unsigned char *v, size_t len, struct rk_error *err);
	/* --secret NAME: read it from its provider and check it (forced rules, else its policy's). */
	int (*check_secret)(struct rk_guard *g, const char *name,
			    const struct rk_value_rules *forced, struct rk_error *err);
	/* --inventory: no secret of the environment is overdue beyond grace. */
	int (*check_inventory)(struct rk_guard *g, struct rk_error *err);
};

struct rk_guard_handover {
	/*
	 * Replaces this process with the full rekey on the original arguments.
	 * Returns only when it could not, with err set (the binary is missing,
	 * or is rekey-guard itself).
	 */
	int (*run)(void *arg, struct rk_error *err);
	void *arg;
};

/*
 * Runs the guard on argv (argv[0] is the command's name, "guard"). Exactly
 * one of state and handover is given. Returns the exit code: 0 pass, 1 a
 * violation, 2 usage or configuration.
 */
int rk_guard_run(struct rk_ctx *ctx, int argc, char **argv,
		 const struct rk_guard_state_ops *state, const struct rk_guard_handover *handover);

/* rekey-guard's main (src/guard_bin.c): `rekey-guard ARGS` is `rekey guard ARGS`. */
int rk_guard_bin_main(int argc, char **argv);

/* For the state ops: record one check (ok -1: not applicable, not recorded). */
void rk_guard_add_check(struct rk_guard *g, const char *source, const char *name,
			const char *check, int ok, const char *reason);
/* For the state ops: every value check, and the reuse check with --inventory. */
int rk_guard_check_value(struct rk_guard *g, const char *source, const char *name,
			 const struct rk_value_rules *rules, const unsigned char *v, size_t len,
			 struct rk_error *err) RK_WARN_UNUSED;
/*
 * The value rules of a policy. *forbid (the policy's own list, NULL when it
 * has none) is the caller's to free, also when this fails.
 */
int rk_guard_policy_rules(const struct rk_guard *g, const struct rk_policy *p,
			  struct rk_value_rules *rules, struct rk_defaults **forbid,
			  struct rk_error *err) RK_WARN_UNUSED;

#endif
