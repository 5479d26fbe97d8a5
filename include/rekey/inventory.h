/*
 * The inventory file (`rekey apply -f FILE`): what secrets exist, where, under
 * which policy, and what depends on them. Loading validates everything
 * against the config (providers), the policies and each provider's locator
 * schema before anything is changed; errors name file:line:column.
 *
 * Each secret becomes a normalized "spec" object, the form stored in the DB:
 *   {name, provider, locator, policy, environment, owner, tier, last_rotated,
 *    dependents: [{kind: "kubernetes", provider, target, key} |
 *                 {kind: "exec", argv: [...], timeout_ms, key}]}
 * `key` identifies a dependent across secrets so it restarts once per run.
 */
#ifndef REKEY_INVENTORY_H
#define REKEY_INVENTORY_H

#include <jansson.h>
#include "rekey/error.h"

struct rk_config;
struct rk_policy_set;

#define RK_DEFAULT_TIER 2
#define RK_DEFAULT_ENVIRONMENT "default"

/* *out: array of specs in file order. */
int rk_inventory_load(json_t **out, const char *path, const struct rk_config *cfg,
		      const struct rk_policy_set *policies, struct rk_error *err) RK_WARN_UNUSED;

#endif
