/*
 * High availability: the leader lease of rekey.yaml's `ha: {lease: ...}`,
 * held by a one-shot command (rotate, rollback) for as long as it may write
 * to providers, so that two rekey instances never rotate at once.
 *
 * rk_ha_acquire takes the lease through the configured provider
 * (RK_CAP_LEASE) and starts a thread that renews it every duration/3. If a
 * renewal finds the lease lost, or none succeeds for 2/3 of the duration, the
 * thread logs `lease.lost` and sets ctx->stop (what SIGTERM sets): no new
 * provider write starts, and rk_ha_lost says so for the command's report.
 *
 * Ownership: *out is the caller's, given back with rk_ha_release (NULL
 * accepted), which stops the thread, releases the lease and frees. The
 * provider instance is ctx's and must stay open until then.
 */
#ifndef REKEY_HA_H
#define REKEY_HA_H

#include <stdint.h>
#include "rekey/error.h"

struct rk_ctx;
struct rk_ha;

/*
 * Takes the lease. 0 with *out NULL when `ha` is not configured (nothing to
 * hold). wait_ms 0: one attempt; otherwise tries about every second until it
 * is taken or wait_ms has passed. Errors (*out NULL): RK_EBUSY (another
 * identity holds it: the message names the holder; exit 75), RK_ECANCELED
 * (ctx->stop set while waiting), the provider's own (RK_EAUTH, ...).
 */
int rk_ha_acquire(struct rk_ctx *ctx, int64_t wait_ms, struct rk_ha **out,
		  struct rk_error *err) RK_WARN_UNUSED;
/* 1 when the lease was lost while held (ctx->stop has been set); 0 for NULL. */
int rk_ha_lost(const struct rk_ha *ha);
/* This process's holderIdentity (hostname_pid_random); borrowed. */
const char *rk_ha_identity(const struct rk_ha *ha);
/* Stops renewing, releases the lease (a failure is logged: it expires by itself), frees. */
void rk_ha_release(struct rk_ha *ha);

#endif
