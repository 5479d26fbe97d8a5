/*
 * Guard rules on plain settings (`rekey guard --rules FILE`):
 *
 *   rules:
 *     - setting: DRY_RUN
 *       equals: "false"
 *       when: {ENVIRONMENT: production}      # all listed settings must match
 *       message: "dry-run deployments never reach production"   # optional
 *     - {setting: NODE_RPC, not_matches: "localhost|127\\.0\\.0\\.1", when: {ENVIRONMENT: production}}
 *     - {setting: SESSION_SECRET, required: true}
 *     - {setting: LOG_LEVEL, one_of: [debug, info, warn, error]}
 *
 * Kinds: equals, not_equals, matches, not_matches (POSIX extended regex,
 * whole-value match not implied: anchor with ^...$), one_of, required. A
 * `when` value may be a string or a list of strings (any of them). Setting
 * values come from the environment; messages never include them.
 */
#ifndef REKEY_RULES_H
#define REKEY_RULES_H

#include <stddef.h>
#include "rekey/error.h"

struct rk_rules;

int rk_rules_load(struct rk_rules **out, const char *path, struct rk_error *err) RK_WARN_UNUSED;
void rk_rules_free(struct rk_rules *r);
size_t rk_rules_count(const struct rk_rules *r);

struct rk_rule_result {
	char setting[128];
	char rule[32];		/* "equals", "not_matches", ... */
	char where[300];	/* file:line of the rule */
	int ok;			/* 1 pass, 0 fail, -1 not applicable (its `when` did not match) */
	char reason[400];	/* on failure: what is required, never the value */
};

/* Evaluates rule i against the environment (getenv). */
void rk_rules_eval(const struct rk_rules *r, size_t i, struct rk_rule_result *res);

#endif
