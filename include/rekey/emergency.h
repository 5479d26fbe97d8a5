/*
 * Emergency mode's shared half (the command, and `rekey serve`'s
 * POST /v1/emergency): the scope, the plan, and the scheduler pause.
 */
#ifndef REKEY_EMERGENCY_H
#define REKEY_EMERGENCY_H

#include <stddef.h>
#include <jansson.h>
#include "rekey/error.h"

struct rk_ctx;

#define RK_SCOPE_MAX 32

enum rk_sel_kind { RK_SEL_PROVIDER, RK_SEL_ENVIRONMENT, RK_SEL_OWNER, RK_SEL_TIER, RK_SEL_NAME };

/* Selectors, ANDed. The values are borrowed from the strings given to rk_scope_add. */
struct rk_scope {
	size_t n;
	struct rk_sel {
		enum rk_sel_kind kind;
		const char *value;
		long long tier;
	} sel[RK_SCOPE_MAX];
};

/*
 * Adds one selector: provider=NAME, environment=ENV, owner=OWNER, tier<=N,
 * name=GLOB. -1 when it is none of those or the scope is full.
 */
int rk_scope_add(struct rk_scope *s, const char *arg);

/*
 * The plan over the secrets in scope: waves by tier, dependents once each
 * with the secrets that feed them, calls per provider and an estimate from
 * the providers' rate limits. *names gets the secrets in wave order.
 * scope_json (an array of the selector strings) goes into the plan.
 * RK_ENOTFOUND when no secret is in scope.
 */
int rk_emergency_plan(struct rk_ctx *ctx, const struct rk_scope *scope, const json_t *scope_json,
		      const char *reason, json_t **plan, json_t **names,
		      struct rk_error *err) RK_WARN_UNUSED;

/* Pauses (on) or lets go on the scheduler: a lock in the state DB naming the run. */
void rk_emergency_pause(struct rk_ctx *ctx, const char *run_id, int on);

#endif
