/*
 * The audit log: append-only rows in the state DB, each chained to the
 * previous one by a keyed BLAKE2b MAC over (seq, ts, actor, event, subject,
 * detail, previous MAC). `rekey audit verify` recomputes the chain and names
 * the first row that was edited, removed or reordered. Never holds a value.
 */
#ifndef REKEY_AUDIT_H
#define REKEY_AUDIT_H

#include <stdint.h>
#include <jansson.h>
#include "rekey/error.h"

struct rk_ctx;
struct rk_store;
struct rk_keys;

/* Appends one row; detail (may be NULL) is borrowed. Call inside the change's transaction. */
int rk_audit(struct rk_ctx *ctx, const char *event, const char *subject, const json_t *detail,
	     struct rk_error *err) RK_WARN_UNUSED;

/* The same with the actor named (rekey serve: "api:TOKEN@ADDR", "scheduler"). */
int rk_audit_as(struct rk_ctx *ctx, const char *actor, const char *event, const char *subject,
		const json_t *detail, struct rk_error *err) RK_WARN_UNUSED;

/*
 * Verifies the whole chain. 0 when intact (*rows = row count); RK_EINVAL when
 * broken, with err naming the first bad row and what is wrong with it.
 */
int rk_audit_verify(struct rk_store *store, const struct rk_keys *keys, int64_t *rows,
		    struct rk_error *err) RK_WARN_UNUSED;

#endif
