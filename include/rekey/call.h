/*
 * What every provider operation and every HTTP call carries: a deadline, a
 * cancellation flag and an admission priority. SIGTERM sets the flag; every
 * wait (a transfer, a backoff sleep, a rate token, a concurrency slot, a
 * rollout poll) checks it and the deadline, so a stop takes effect within
 * RK_CALL_TICK_MS plus at most one libcurl progress interval.
 */
#ifndef REKEY_CALL_H
#define REKEY_CALL_H

#include <stdatomic.h>
#include <stdint.h>

/* How often a wait looks at the flag. */
#define RK_CALL_TICK_MS 20

struct rk_call {
	int64_t deadline_ms;		/* rk_mono_ms() value; 0: no deadline of its own */
	const atomic_int *cancel;	/* non-zero: stop waiting (RK_ECANCELED); may be NULL */
	int priority;			/* lower is more urgent (the secret's tier) */
};

/* 1 when c asks to stop now (c may be NULL). */
int rk_call_cancelled(const struct rk_call *c);
/* 1 when c's deadline has passed (never for a NULL c or no deadline). */
int rk_call_expired(const struct rk_call *c);
/*
 * The earlier of `deadline_ms` (0: none) and c's deadline; 0 when neither
 * has one.
 */
int64_t rk_call_deadline(const struct rk_call *c, int64_t deadline_ms);
/*
 * Sleeps ms, in ticks, returning early: RK_ECANCELED when cancelled,
 * RK_ETRANSIENT when the deadline comes first (no point sleeping past it),
 * else 0. Fills nothing: callers word the error.
 */
int rk_call_sleep(const struct rk_call *c, int64_t ms);

#endif
