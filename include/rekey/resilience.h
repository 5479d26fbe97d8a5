/*
 * The resilience primitives the HTTP client (rekey/http.h) composes for each
 * provider: backoff with full jitter, a circuit breaker, a token-bucket rate
 * limit, and concurrency slots that admit waiters by priority. None of them
 * knows about HTTP. The breaker and the bucket take the caller's clock and
 * lock; the slots lock and wait on their own. Every wait ends at a deadline
 * and, given a struct rk_call, at its deadline or its cancel flag.
 */
#ifndef REKEY_RESILIENCE_H
#define REKEY_RESILIENCE_H

#include <pthread.h>
#include <stdint.h>
#include "rekey/call.h"
#include "rekey/error.h"

/* Full jitter: a delay in [0, min(max, base * 2^attempt)] drawn from rnd (uniform). */
int64_t rk_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint32_t rnd);

enum rk_breaker_state { RK_BREAKER_CLOSED, RK_BREAKER_OPEN, RK_BREAKER_HALF_OPEN };

struct rk_breaker {
	enum rk_breaker_state state;
	int failures;			/* consecutive failures while closed */
	int threshold;
	int64_t cooldown_ms;
	int64_t opened_at_ms;
	int probe_in_flight;		/* half-open lets exactly one request through */
};

void rk_breaker_init(struct rk_breaker *b, int threshold, int64_t cooldown_ms);
/* 1 when a request may go now (and, half-open, marks the probe in flight). */
int rk_breaker_allow(struct rk_breaker *b, int64_t now_ms);
/* Records an outcome: ok resets/closes; a failure counts, opens, or re-opens. */
void rk_breaker_record(struct rk_breaker *b, int ok, int64_t now_ms);
/*
 * A half-open probe that ends with no verdict (it gave up waiting, or its
 * caller stopped it): another request may probe.
 */
void rk_breaker_forget_probe(struct rk_breaker *b);

struct rk_bucket {
	double tokens;
	double rate;			/* tokens per second; <= 0: unlimited */
	double burst;
	int64_t last_ms;
};

void rk_bucket_init(struct rk_bucket *b, double rate, int burst, int64_t now_ms);
/* Takes a token: 0 when one was taken, else how many ms to wait for one. */
int64_t rk_bucket_take(struct rk_bucket *b, int64_t now_ms);
/*
 * Takes a token, sleeping for it (rk_mono_ms clock) under the caller's lock
 * `mu` over b; call may be NULL. 0; RK_ETRANSIENT at once when the next token
 * comes after deadline_ms or the call's deadline (nothing is slept out in
 * vain); RK_ECANCELED within RK_CALL_TICK_MS of the call's cancel flag.
 */
int rk_bucket_wait(struct rk_bucket *b, pthread_mutex_t *mu, int64_t deadline_ms,
		   const struct rk_call *call) RK_WARN_UNUSED;

/*
 * Concurrency slots: at most `cap` holders at once. When a slot frees it is
 * handed to the waiter with the lowest priority number (0 = most urgent),
 * first come first served among equal priorities; nobody may overtake a
 * queued waiter by arriving later.
 */
struct rk_slot_waiter;

struct rk_slots {
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* a slot was handed over; CLOCK_MONOTONIC */
	int cap;
	int inflight;			/* holders, handed-over slots included */
	int nwaiting;
	struct rk_slot_waiter *queue;	/* by priority, then arrival */
};

/* RK_EINTERNAL when the lock or the condition variable cannot be set up. */
int rk_slots_init(struct rk_slots *s, int cap) RK_WARN_UNUSED;
void rk_slots_destroy(struct rk_slots *s);	/* no holder, no waiter left */
/*
 * Takes a slot, waiting until deadline_ms (rk_mono_ms clock) or the call's
 * deadline, whichever is earlier; call may be NULL. 0; RK_ETRANSIENT when
 * the deadline passed first; RK_ECANCELED when the call's cancel flag is
 * set (seen within RK_CALL_TICK_MS while waiting). Either way the waiter
 * leaves the queue without a slot.
 */
int rk_slots_take(struct rk_slots *s, int priority, int64_t deadline_ms,
		  const struct rk_call *call) RK_WARN_UNUSED;
/* Gives a taken slot back (to the first waiter, if any). */
void rk_slots_give(struct rk_slots *s);
/* Holders and waiters right now (for tests and metrics). */
int rk_slots_inflight(struct rk_slots *s);
int rk_slots_waiting(struct rk_slots *s);

#endif
