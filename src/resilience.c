/*
 * The resilience primitives rk_http_do composes per provider: backoff with
 * full jitter, a circuit breaker, a token-bucket rate limit and a cap on
 * requests in flight (concurrency slots, admitted by priority). None of them
 * knows about HTTP or libcurl; the breaker and the bucket are plain state
 * machines driven by the caller's clock (the caller holds its own lock),
 * the slots carry their own lock and condition variable because waiting is
 * what they do. A wait given a struct rk_call also ends at its deadline and
 * looks at its cancel flag every RK_CALL_TICK_MS.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "rekey/call.h"
#include "rekey/error.h"
#include "rekey/resilience.h"
#include "rekey/util.h"

int64_t
rk_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint32_t rnd)
{
	int64_t cap;
	uint64_t c, hi, lo;

	if (base_ms <= 0 || max_ms <= 0)
		return 0;
	if (attempt < 0)
		attempt = 0;
	/* base * 2^attempt without overflow: stop doubling once past max. */
	if (attempt >= 62 || base_ms > (max_ms >> attempt))
		cap = max_ms;
	else
		cap = base_ms << attempt;
	if (cap > max_ms)
		cap = max_ms;
	/* floor((cap + 1) * rnd / 2^32) lies in [0, cap]; split to avoid overflow. */
	c = (uint64_t)cap + 1;
	hi = c >> 32;
	lo = c & 0xffffffffu;
	return (int64_t)(hi * rnd + ((lo * rnd) >> 32));
}

void
rk_breaker_init(struct rk_breaker *b, int threshold, int64_t cooldown_ms)
{
	memset(b, 0, sizeof(*b));
	b->state = RK_BREAKER_CLOSED;
	b->threshold = threshold;
	b->cooldown_ms = cooldown_ms;
}

int
rk_breaker_allow(struct rk_breaker *b, int64_t now_ms)
{
	switch (b->state) {
	case RK_BREAKER_CLOSED:
		return 1;
	case RK_BREAKER_OPEN:
		if (now_ms - b->opened_at_ms < b->cooldown_ms)
			return 0;
		b->state = RK_BREAKER_HALF_OPEN;
		b->probe_in_flight = 1;
		return 1;
	case RK_BREAKER_HALF_OPEN:
		if (b->probe_in_flight)
			return 0;
		/* The previous probe was given up before it was sent. */
		b->probe_in_flight = 1;
		return 1;
	}
	return 0;
}

/*
 * `failures` keeps counting while open and half-open (consecutive failures
 * since the last success), so messages can say how bad it is. A failure
 * reported while already open comes from a request admitted before the
 * circuit opened: it does not push the cooldown further out.
 */
void
rk_breaker_record(struct rk_breaker *b, int ok, int64_t now_ms)
{
	if (ok) {
		b->state = RK_BREAKER_CLOSED;
		b->failures = 0;
		b->probe_in_flight = 0;
		return;
	}
	if (b->failures < INT32_MAX)
		b->failures++;
	switch (b->state) {
	case RK_BREAKER_CLOSED:
		if (b->threshold > 0 && b->failures >= b->threshold) {
			b->state = RK_BREAKER_OPEN;
			b->opened_at_ms = now_ms;
		}
		break;
	case RK_BREAKER_HALF_OPEN:
		b->state = RK_BREAKER_OPEN;
		b->opened_at_ms = now_ms;
		b->probe_in_flight = 0;
		break;
	case RK_BREAKER_OPEN:
		break;
	}
}

void
rk_breaker_forget_probe(struct rk_breaker *b)
{
	if (b->state == RK_BREAKER_HALF_OPEN)
		b->probe_in_flight = 0;
}

void
rk_bucket_init(struct rk_bucket *b, double rate, int burst, int64_t now_ms)
{
	b->rate = rate;
	b->burst = burst < 1 ? 1 : burst;
	b->tokens = b->burst;
	b->last_ms = now_ms;
}

int64_t
rk_bucket_take(struct rk_bucket *b, int64_t now_ms)
{
	double wait;

	if (b->rate <= 0)
		return 0;
	/* A clock that goes backwards adds nothing (and takes nothing away). */
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ms = now_ms;
	}
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	wait = ceil((1.0 - b->tokens) * 1000.0 / b->rate);
	if (wait < 1)
		wait = 1;
	return wait > (double)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)wait;
}

int
rk_bucket_wait(struct rk_bucket *b, pthread_mutex_t *mu, int64_t deadline_ms,
	       const struct rk_call *call)
{
	int64_t now, wait;
	int r;

	deadline_ms = rk_call_deadline(call, deadline_ms);
	for (;;) {
		/* Checked first: a stopping caller does not spend a token. */
		if (rk_call_cancelled(call))
			return RK_ECANCELED;
		pthread_mutex_lock(mu);
		now = rk_mono_ms();
		wait = rk_bucket_take(b, now);
		pthread_mutex_unlock(mu);
		if (wait == 0)
			return 0;
		/* rk_bucket_take caps wait at INT64_MAX / 2: the sum cannot wrap. */
		if (now + wait > deadline_ms)
			return RK_ETRANSIENT;
		/* Another waiter may take the token first: look again after the sleep. */
		if ((r = rk_call_sleep(call, wait)) < 0)
			return r;
	}
}

/* ---- concurrency slots ---------------------------------------------------- */

/*
 * A waiter lives on its taker's stack while it is queued. A freed slot is
 * handed to the head of the queue directly (granted = 1, inflight unchanged)
 * rather than put back for whoever wakes first: otherwise a later or less
 * urgent taker could win the race against the one the order names.
 */
struct rk_slot_waiter {
	struct rk_slot_waiter *next;
	int priority;
	int granted;
};

int
rk_slots_init(struct rk_slots *s, int cap)
{
	pthread_condattr_t ca;
	int ok;

	memset(s, 0, sizeof(*s));
	s->cap = cap;
	if (pthread_condattr_init(&ca) != 0)
		return RK_EINTERNAL;
	/* Slot waits end at a monotonic deadline, immune to wall-clock steps. */
	ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
	     pthread_cond_init(&s->cv, &ca) == 0;
	pthread_condattr_destroy(&ca);
	if (!ok)
		return RK_EINTERNAL;
	if (pthread_mutex_init(&s->mu, NULL) != 0) {
		pthread_cond_destroy(&s->cv);
		return RK_EINTERNAL;
	}
	return 0;
}

void
rk_slots_destroy(struct rk_slots *s)
{
	assert(s->inflight == 0 && s->queue == NULL);	/* a caller bug otherwise */
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
}

/* Behind every waiter of the same or a more urgent priority: FIFO within one. */
static void
enqueue(struct rk_slots *s, struct rk_slot_waiter *w)
{
	struct rk_slot_waiter **pp = &s->queue;

	while (*pp != NULL && (*pp)->priority <= w->priority)
		pp = &(*pp)->next;
	w->next = *pp;
	*pp = w;
	s->nwaiting++;
}

static void
dequeue(struct rk_slots *s, struct rk_slot_waiter *w)
{
	for (struct rk_slot_waiter **pp = &s->queue; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			s->nwaiting--;
			return;
		}
	}
}

/* A rk_mono_ms instant as a CLOCK_MONOTONIC timespec, for timed waits. */
static void
mono_abs(int64_t at_ms, struct timespec *ts)
{
	ts->tv_sec = (time_t)(at_ms / 1000);
	ts->tv_nsec = (long)(at_ms % 1000) * 1000000L;
}

int
rk_slots_take(struct rk_slots *s, int priority, int64_t deadline_ms, const struct rk_call *call)
{
	struct rk_slot_waiter w = { .priority = priority };
	int ticks = call != NULL && call->cancel != NULL;
	struct timespec ts;
	int r = 0;

	deadline_ms = rk_call_deadline(call, deadline_ms);
	if (rk_call_cancelled(call))
		return RK_ECANCELED;
	pthread_mutex_lock(&s->mu);
	/* A free slot with nobody queued: slots are handed over, never left free for a waiter. */
	if (s->queue == NULL && s->inflight < s->cap) {
		s->inflight++;
		goto out;
	}
	enqueue(s, &w);
	while (!w.granted) {
		int64_t now = rk_mono_ms(), until = deadline_ms;
		if (rk_call_cancelled(call)) {
			r = RK_ECANCELED;
			break;
		}
		if (now >= deadline_ms) {
			r = RK_ETRANSIENT;
			break;
		}
		/* Nothing signals a cancel: wake in ticks to look at the flag. */
		if (ticks && until - now > RK_CALL_TICK_MS)
			until = now + RK_CALL_TICK_MS;
		mono_abs(until, &ts);
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	}
	if (r < 0)
		dequeue(s, &w);
 out:
	pthread_mutex_unlock(&s->mu);
	return r;
}

void
rk_slots_give(struct rk_slots *s)
{
	struct rk_slot_waiter *w;

	pthread_mutex_lock(&s->mu);
	assert(s->inflight > 0);
	if ((w = s->queue) != NULL) {
		/* The slot changes hands: inflight stays as it is. */
		s->queue = w->next;
		s->nwaiting--;
		w->granted = 1;
		/* One condition variable for all: wake them, the granted one goes. */
		pthread_cond_broadcast(&s->cv);
	} else {
		s->inflight--;
	}
	pthread_mutex_unlock(&s->mu);
}

/* One counter, read under the lock. */
static int
slots_count(struct rk_slots *s, const int *counter)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = *counter;
	pthread_mutex_unlock(&s->mu);
	return n;
}

int
rk_slots_inflight(struct rk_slots *s)
{
	return slots_count(s, &s->inflight);
}

int
rk_slots_waiting(struct rk_slots *s)
{
	return slots_count(s, &s->nwaiting);
}
