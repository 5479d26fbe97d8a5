/*
 * The resilience primitives (src/resilience.c): backoff with full jitter, the
 * circuit breaker, the token bucket, and concurrency slots admitted by
 * priority (lower number first, FIFO within one priority), with real threads;
 * waits for a token or a slot that end at a call's deadline or cancel flag.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "rekey/call.h"
#include "rekey/error.h"
#include "rekey/resilience.h"
#include "rekey/util.h"
#include "unit.h"

/* ---- backoff -------------------------------------------------------------- */

static int64_t
expect_cap(int attempt, int64_t base, int64_t max)
{
	int64_t cap = base;

	for (int i = 0; i < attempt && cap < max; i++)
		cap = cap > max / 2 ? max : cap * 2;
	return cap < max ? cap : max;
}

START_TEST(test_backoff_stays_within_full_jitter_cap)
{
	static const uint32_t rnds[] = { 0, 1, 12345, 0x7fffffffu, 0x80000000u, 0xfffffffeu,
					 0xffffffffu };

	for (int attempt = 0; attempt < 70; attempt++)
		for (size_t i = 0; i < RK_ARRAY_SIZE(rnds); i++) {
			int64_t d = rk_backoff_ms(attempt, 200, 20000, rnds[i]);
			ck_assert_int_ge(d, 0);
			ck_assert_int_le(d, expect_cap(attempt, 200, 20000));
		}
	ck_assert_int_eq(rk_backoff_ms(0, 200, 20000, 0), 0);
	/* The top draw reaches the cap (within rounding). */
	ck_assert_int_ge(rk_backoff_ms(3, 200, 20000, 0xffffffffu), 1599);
	ck_assert_int_ge(rk_backoff_ms(30, 200, 20000, 0xffffffffu), 19999);
	ck_assert_int_eq(rk_backoff_ms(5, 0, 20000, 0xffffffffu), 0);
}
END_TEST

START_TEST(test_backoff_spreads_over_the_whole_range)
{
	int small = 0, large = 0;
	int64_t cap = expect_cap(5, 100, 10000);	/* 3200 */

	for (uint32_t i = 0; i < 1000; i++) {
		int64_t d = rk_backoff_ms(5, 100, 10000, i * 4294967u);
		if (d < cap / 4)
			small++;
		if (d > cap * 3 / 4)
			large++;
	}
	ck_assert_int_gt(small, 150);
	ck_assert_int_gt(large, 150);
}
END_TEST

START_TEST(test_backoff_does_not_overflow_at_large_attempts)
{
	int64_t max = INT64_MAX / 2;

	for (int attempt = 60; attempt < 130; attempt++) {
		int64_t d = rk_backoff_ms(attempt, 1000, max, 0xffffffffu);
		ck_assert_int_ge(d, 0);
		ck_assert_int_le(d, max);
	}
	ck_assert_int_le(rk_backoff_ms(62, INT64_MAX, INT64_MAX, 0xffffffffu), INT64_MAX);
	ck_assert_int_ge(rk_backoff_ms(62, INT64_MAX, INT64_MAX, 0xffffffffu), 0);
	ck_assert_int_eq(rk_backoff_ms(62, 200, 20000, 0), 0);
	ck_assert_int_le(rk_backoff_ms(62, 200, 20000, 0xffffffffu), 20000);
	ck_assert_int_le(rk_backoff_ms(-3, 200, 20000, 0xffffffffu), 200);
}
END_TEST

/* ---- circuit breaker ------------------------------------------------------ */

START_TEST(test_breaker_opens_after_threshold_and_fails_fast)
{
	struct rk_breaker b;

	rk_breaker_init(&b, 3, 1000);
	ck_assert_int_eq(b.state, RK_BREAKER_CLOSED);
	/* A success in between resets the count: failures must be consecutive. */
	rk_breaker_record(&b, 0, 0);
	rk_breaker_record(&b, 0, 0);
	rk_breaker_record(&b, 1, 0);
	rk_breaker_record(&b, 0, 0);
	rk_breaker_record(&b, 0, 0);
	ck_assert_int_eq(b.state, RK_BREAKER_CLOSED);
	ck_assert_int_eq(rk_breaker_allow(&b, 10), 1);
	rk_breaker_record(&b, 0, 100);
	ck_assert_int_eq(b.state, RK_BREAKER_OPEN);
	ck_assert_int_eq(b.opened_at_ms, 100);
	for (int64_t t = 100; t < 1100; t += 99)
		ck_assert_int_eq(rk_breaker_allow(&b, t), 0);
	/* A straggler's failure does not extend the cooldown. */
	rk_breaker_record(&b, 0, 900);
	ck_assert_int_eq(b.opened_at_ms, 100);
}
END_TEST

START_TEST(test_breaker_half_open_admits_one_probe)
{
	struct rk_breaker b;

	rk_breaker_init(&b, 1, 1000);
	rk_breaker_record(&b, 0, 0);
	ck_assert_int_eq(b.state, RK_BREAKER_OPEN);
	ck_assert_int_eq(rk_breaker_allow(&b, 999), 0);
	ck_assert_int_eq(rk_breaker_allow(&b, 1000), 1);
	ck_assert_int_eq(b.state, RK_BREAKER_HALF_OPEN);
	ck_assert_int_eq(b.probe_in_flight, 1);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(rk_breaker_allow(&b, 1001 + i), 0);
	/* The probe succeeded: closed, everyone may go. */
	rk_breaker_record(&b, 1, 1010);
	ck_assert_int_eq(b.state, RK_BREAKER_CLOSED);
	ck_assert_int_eq(b.failures, 0);
	ck_assert_int_eq(rk_breaker_allow(&b, 1011), 1);
	ck_assert_int_eq(rk_breaker_allow(&b, 1011), 1);
}
END_TEST

START_TEST(test_breaker_failed_probe_reopens_with_new_cooldown)
{
	struct rk_breaker b;

	rk_breaker_init(&b, 2, 500);
	rk_breaker_record(&b, 0, 0);
	rk_breaker_record(&b, 0, 0);
	ck_assert_int_eq(b.state, RK_BREAKER_OPEN);
	ck_assert_int_eq(rk_breaker_allow(&b, 600), 1);
	rk_breaker_record(&b, 0, 700);
	ck_assert_int_eq(b.state, RK_BREAKER_OPEN);
	ck_assert_int_eq(b.opened_at_ms, 700);
	ck_assert_int_eq(b.probe_in_flight, 0);
	ck_assert_int_eq(rk_breaker_allow(&b, 1100), 0);	/* old cooldown would have passed */
	ck_assert_int_eq(rk_breaker_allow(&b, 1200), 1);
	ck_assert_int_eq(rk_breaker_allow(&b, 1200), 0);
	rk_breaker_record(&b, 1, 1250);
	ck_assert_int_eq(b.state, RK_BREAKER_CLOSED);
}
END_TEST

/* ---- token bucket --------------------------------------------------------- */

START_TEST(test_bucket_burst_then_rate)
{
	struct rk_bucket b;

	rk_bucket_init(&b, 10, 3, 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 100);
	ck_assert_int_eq(rk_bucket_take(&b, 50), 50);
	ck_assert_int_eq(rk_bucket_take(&b, 100), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 100), 100);
	ck_assert_int_eq(rk_bucket_take(&b, 200), 0);
}
END_TEST

START_TEST(test_bucket_does_not_accumulate_beyond_burst)
{
	struct rk_bucket b;

	rk_bucket_init(&b, 10, 2, 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	/* An hour idle still buys only `burst` tokens. */
	ck_assert_int_eq(rk_bucket_take(&b, 3600000), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 3600000), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 3600000), 100);
	/* A clock going backwards neither refills nor breaks it. */
	ck_assert_int_gt(rk_bucket_take(&b, 1000), 0);
}
END_TEST

START_TEST(test_bucket_slow_and_unlimited_rates)
{
	struct rk_bucket b;

	rk_bucket_init(&b, 0.5, 1, 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
	ck_assert_int_eq(rk_bucket_take(&b, 0), 2000);
	ck_assert_int_eq(rk_bucket_take(&b, 1500), 500);
	rk_bucket_init(&b, 0, 1, 0);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(rk_bucket_take(&b, 0), 0);
}
END_TEST


/* ---- waits that end at a call's deadline or cancel flag ------------------ */

#define WAIT_MS 10000	/* a deadline no passing test comes near */

struct canceller {
	atomic_int flag;
	int after_ms;
	int64_t set_at;		/* rk_mono_ms() when the flag was set */
};

static void *
cancel_later(void *arg)
{
	struct canceller *c = arg;

	rk_sleep_ms(c->after_ms);
	c->set_at = rk_mono_ms();
	atomic_store(&c->flag, 1);
	return NULL;
}

START_TEST(test_bucket_wait_sleeps_until_the_next_token)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct rk_bucket b;
	int64_t t0;

	rk_bucket_init(&b, 20, 1, rk_mono_ms());
	ck_assert_int_eq(rk_bucket_wait(&b, &mu, rk_mono_ms() + WAIT_MS, NULL), 0);
	t0 = rk_mono_ms();
	/* One token per 50 ms. */
	ck_assert_int_eq(rk_bucket_wait(&b, &mu, rk_mono_ms() + WAIT_MS, NULL), 0);
	ck_assert_int_ge(rk_mono_ms() - t0, 30);
	ck_assert_int_lt(rk_mono_ms() - t0, 2000);
}
END_TEST

START_TEST(test_bucket_wait_refuses_a_token_beyond_the_deadline_at_once)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct rk_bucket b;
	struct rk_call call = { 0 };
	int64_t t0;

	rk_bucket_init(&b, 0.2, 1, rk_mono_ms());	/* the next token in 5 s */
	ck_assert_int_eq(rk_bucket_wait(&b, &mu, rk_mono_ms() + WAIT_MS, NULL), 0);
	t0 = rk_mono_ms();
	call.deadline_ms = t0 + 1000;
	ck_assert_int_eq(rk_bucket_wait(&b, &mu, t0 + WAIT_MS, &call), RK_ETRANSIENT);
	/* The waiter's own deadline counts as well. */
	ck_assert_int_eq(rk_bucket_wait(&b, &mu, t0 + 1000, NULL), RK_ETRANSIENT);
	/* Refused, not slept out until the deadline. */
	ck_assert_int_lt(rk_mono_ms() - t0, 500);
}
END_TEST

START_TEST(test_bucket_wait_stops_on_cancel)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct canceller c = { .after_ms = 100 };
	struct rk_call call = { .cancel = &c.flag };
	struct rk_bucket b;
	pthread_t th;

	rk_bucket_init(&b, 0.5, 1, rk_mono_ms());	/* the next token in 2 s */
	ck_assert_int_eq(rk_bucket_wait(&b, &mu, rk_mono_ms() + WAIT_MS, &call), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, cancel_later, &c), 0);
	ck_assert_int_eq(rk_bucket_wait(&b, &mu, rk_mono_ms() + WAIT_MS, &call), RK_ECANCELED);
	pthread_join(th, NULL);
	ck_assert_int_lt(rk_mono_ms() - c.set_at, 500);
	/* Already cancelled: no token is spent. */
	rk_bucket_init(&b, 10, 1, rk_mono_ms());
	ck_assert_int_eq(rk_bucket_wait(&b, &mu, rk_mono_ms() + WAIT_MS, &call), RK_ECANCELED);
	ck_assert_int_eq(rk_bucket_take(&b, rk_mono_ms()), 0);
}
END_TEST

/* ---- concurrency slots --------------------------------------------------- */

struct taker {
	struct rk_slots *s;
	int priority;
	int tag;
	int hold;			/* keep the slot until release is set */
	const struct rk_call *call;	/* may be NULL */
	int rc;
};

static struct {
	pthread_mutex_t mu;
	int order[8];
	int n;
	atomic_int release;		/* hold-takers give their slot back */
} adm = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void
adm_reset(void)
{
	pthread_mutex_lock(&adm.mu);
	adm.n = 0;
	pthread_mutex_unlock(&adm.mu);
	atomic_store(&adm.release, 0);
}

static void *
taker_run(void *arg)
{
	struct taker *t = arg;

	if ((t->rc = rk_slots_take(t->s, t->priority, rk_mono_ms() + WAIT_MS, t->call)) != 0)
		return NULL;
	pthread_mutex_lock(&adm.mu);
	adm.order[adm.n++] = t->tag;
	pthread_mutex_unlock(&adm.mu);
	while (t->hold && !atomic_load(&adm.release))
		rk_sleep_ms(1);
	rk_slots_give(t->s);
	return NULL;
}

/* Until n takers are queued (each one queued before the next starts). */
static void
wait_queued(struct rk_slots *s, int n)
{
	int64_t until = rk_mono_ms() + WAIT_MS;

	while (rk_slots_waiting(s) < n) {
		ck_assert_msg(rk_mono_ms() < until, "%d takers never queued", n);
		rk_sleep_ms(1);
	}
}

/*
 * With a cap of 1 and the slot held here, queues takers[i] at prio[i] (in
 * that order), frees the slot and checks the tags come out as `want`.
 */
static void
check_admission_order(const int *prio, const int *want, int n)
{
	struct rk_slots s;
	struct taker t[8];
	pthread_t th[8];

	ck_assert_int_le(n, 8);
	adm_reset();
	ck_assert_int_eq(rk_slots_init(&s, 1), 0);
	ck_assert_int_eq(rk_slots_take(&s, 0, rk_mono_ms() + WAIT_MS, NULL), 0);
	for (int i = 0; i < n; i++) {
		t[i] = (struct taker){ .s = &s, .priority = prio[i], .tag = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, taker_run, &t[i]), 0);
		wait_queued(&s, i + 1);
	}
	ck_assert_int_eq(rk_slots_inflight(&s), 1);
	rk_slots_give(&s);
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(t[i].rc, 0);
	}
	ck_assert_int_eq(adm.n, n);
	for (int i = 0; i < n; i++)
		ck_assert_msg(adm.order[i] == want[i], "admission %d: taker %d, want taker %d", i,
			      adm.order[i], want[i]);
	ck_assert_int_eq(rk_slots_inflight(&s), 0);
	ck_assert_int_eq(rk_slots_waiting(&s), 0);
	rk_slots_destroy(&s);
}

START_TEST(test_slots_lower_priority_number_goes_first)
{
	/* Queued at priorities 2, 1, 0 in that order: admitted 0, 1, 2. */
	static const int prio[] = { 2, 1, 0 }, want[] = { 2, 1, 0 };

	check_admission_order(prio, want, 3);
}
END_TEST

START_TEST(test_slots_fifo_within_one_priority)
{
	static const int same[] = { 1, 1, 1, 1 }, in_order[] = { 0, 1, 2, 3 };
	/* Mixed: each priority keeps its own arrival order. */
	static const int mixed[] = { 1, 0, 2, 1, 0, 2 }, by_prio[] = { 1, 4, 0, 3, 2, 5 };

	check_admission_order(same, in_order, 4);
	check_admission_order(mixed, by_prio, 6);
}
END_TEST

START_TEST(test_slots_default_priority_is_plain_fifo)
{
	static const int zero[] = { 0, 0, 0 }, in_order[] = { 0, 1, 2 };

	check_admission_order(zero, in_order, 3);
}
END_TEST

START_TEST(test_slots_cap_and_free_slots_go_at_once)
{
	struct rk_slots s;

	ck_assert_int_eq(rk_slots_init(&s, 3), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(rk_slots_take(&s, 5, rk_mono_ms() + WAIT_MS, NULL), 0);
	ck_assert_int_eq(rk_slots_inflight(&s), 3);
	/* Full: the deadline passes, the waiter leaves the queue. */
	ck_assert_int_eq(rk_slots_take(&s, 0, rk_mono_ms() + 30, NULL), RK_ETRANSIENT);
	ck_assert_int_eq(rk_slots_waiting(&s), 0);
	for (int i = 0; i < 3; i++)
		rk_slots_give(&s);
	ck_assert_int_eq(rk_slots_inflight(&s), 0);
	rk_slots_destroy(&s);
}
END_TEST

START_TEST(test_slots_freed_slot_is_handed_to_the_queue_not_to_a_newcomer)
{
	struct rk_slots s;
	struct taker t;
	pthread_t th;

	adm_reset();
	ck_assert_int_eq(rk_slots_init(&s, 1), 0);
	ck_assert_int_eq(rk_slots_take(&s, 0, rk_mono_ms() + WAIT_MS, NULL), 0);
	t = (struct taker){ .s = &s, .priority = 7, .tag = 1, .hold = 1 };
	ck_assert_int_eq(pthread_create(&th, NULL, taker_run, &t), 0);
	wait_queued(&s, 1);
	rk_slots_give(&s);
	/* The slot changed hands at once: a more urgent newcomer still waits. */
	ck_assert_int_eq(rk_slots_inflight(&s), 1);
	ck_assert_int_eq(rk_slots_waiting(&s), 0);
	ck_assert_int_eq(rk_slots_take(&s, 0, rk_mono_ms() + 30, NULL), RK_ETRANSIENT);
	atomic_store(&adm.release, 1);
	pthread_join(th, NULL);
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(rk_slots_inflight(&s), 0);
	rk_slots_destroy(&s);
}
END_TEST

START_TEST(test_slots_a_timed_out_waiter_leaves_the_others_queued)
{
	struct rk_slots s;
	struct taker t;
	pthread_t th;

	adm_reset();
	ck_assert_int_eq(rk_slots_init(&s, 1), 0);
	ck_assert_int_eq(rk_slots_take(&s, 0, rk_mono_ms() + WAIT_MS, NULL), 0);
	t = (struct taker){ .s = &s, .priority = 3, .tag = 1 };
	ck_assert_int_eq(pthread_create(&th, NULL, taker_run, &t), 0);
	wait_queued(&s, 1);
	/* Ahead of the taker (priority 0), but gives up first. */
	ck_assert_int_eq(rk_slots_take(&s, 0, rk_mono_ms() + 30, NULL), RK_ETRANSIENT);
	ck_assert_int_eq(rk_slots_waiting(&s), 1);
	rk_slots_give(&s);
	pthread_join(th, NULL);
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(adm.n, 1);
	rk_slots_destroy(&s);
}
END_TEST

START_TEST(test_slots_waiter_gives_up_at_the_call_deadline)
{
	struct rk_slots s;
	struct rk_call call = { 0 };
	int64_t t0;

	ck_assert_int_eq(rk_slots_init(&s, 1), 0);
	ck_assert_int_eq(rk_slots_take(&s, 0, rk_mono_ms() + WAIT_MS, NULL), 0);
	t0 = rk_mono_ms();
	call.deadline_ms = t0 + 100;
	/* The call's deadline is the earlier one. */
	ck_assert_int_eq(rk_slots_take(&s, 0, t0 + WAIT_MS, &call), RK_ETRANSIENT);
	ck_assert_int_ge(rk_mono_ms() - t0, 50);
	ck_assert_int_lt(rk_mono_ms() - t0, 2000);
	ck_assert_int_eq(rk_slots_waiting(&s), 0);
	ck_assert_int_eq(rk_slots_inflight(&s), 1);
	rk_slots_give(&s);
	rk_slots_destroy(&s);
}
END_TEST

/*
 * With a cap of 1 and the slot held here, queues one taker that carries
 * call, and gives it a few ticks asleep on the condition variable.
 */
static void
queue_behind_the_holder(struct rk_slots *s, struct taker *t, pthread_t *th,
			const struct rk_call *call)
{
	adm_reset();
	ck_assert_int_eq(rk_slots_init(s, 1), 0);
	ck_assert_int_eq(rk_slots_take(s, 0, rk_mono_ms() + WAIT_MS, NULL), 0);
	*t = (struct taker){ .s = s, .priority = 0, .tag = 1, .call = call };
	ck_assert_int_eq(pthread_create(th, NULL, taker_run, t), 0);
	wait_queued(s, 1);
	rk_sleep_ms(50);
}

START_TEST(test_slots_cancel_stops_a_waiter_promptly)
{
	struct canceller c = { .after_ms = 0 };
	struct rk_call call = { .cancel = &c.flag };
	struct rk_slots s;
	struct taker t;
	pthread_t th;

	queue_behind_the_holder(&s, &t, &th, &call);
	cancel_later(&c);
	pthread_join(th, NULL);
	ck_assert_int_eq(t.rc, RK_ECANCELED);
	/* A tick is 20 ms; the bound leaves room for a loaded machine. */
	ck_assert_int_lt(rk_mono_ms() - c.set_at, 500);
	ck_assert_int_eq(adm.n, 0);
	ck_assert_int_eq(rk_slots_waiting(&s), 0);
	ck_assert_int_eq(rk_slots_inflight(&s), 1);
	rk_slots_give(&s);
	/* Already cancelled: refused even with a slot free. */
	ck_assert_int_eq(rk_slots_take(&s, 0, rk_mono_ms() + WAIT_MS, &call), RK_ECANCELED);
	ck_assert_int_eq(rk_slots_inflight(&s), 0);
	rk_slots_destroy(&s);
}
END_TEST

START_TEST(test_slots_waiter_with_a_cancel_flag_is_handed_a_freed_slot)
{
	atomic_int never = 0;
	struct rk_call call = { .cancel = &never };
	struct rk_slots s;
	struct taker t;
	pthread_t th;

	queue_behind_the_holder(&s, &t, &th, &call);
	/* A few ticks passed: waking to look at the flag kept its place. */
	ck_assert_int_eq(rk_slots_waiting(&s), 1);
	rk_slots_give(&s);
	pthread_join(th, NULL);
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(adm.n, 1);
	ck_assert_int_eq(rk_slots_inflight(&s), 0);
	rk_slots_destroy(&s);
}
END_TEST

Suite *
resilience_suite(void)
{
	Suite *s = suite_create("resilience");
	TCase *tc = tcase_create("core");
	TCase *waits = tcase_create("waits");
	TCase *slots = tcase_create("slots");

	tcase_add_test(tc, test_backoff_stays_within_full_jitter_cap);
	tcase_add_test(tc, test_backoff_spreads_over_the_whole_range);
	tcase_add_test(tc, test_backoff_does_not_overflow_at_large_attempts);
	tcase_add_test(tc, test_breaker_opens_after_threshold_and_fails_fast);
	tcase_add_test(tc, test_breaker_half_open_admits_one_probe);
	tcase_add_test(tc, test_breaker_failed_probe_reopens_with_new_cooldown);
	tcase_add_test(tc, test_bucket_burst_then_rate);
	tcase_add_test(tc, test_bucket_does_not_accumulate_beyond_burst);
	tcase_add_test(tc, test_bucket_slow_and_unlimited_rates);
	suite_add_tcase(s, tc);

	tcase_add_test(waits, test_bucket_wait_sleeps_until_the_next_token);
	tcase_add_test(waits, test_bucket_wait_refuses_a_token_beyond_the_deadline_at_once);
	tcase_add_test(waits, test_bucket_wait_stops_on_cancel);
	suite_add_tcase(s, waits);

	tcase_add_test(slots, test_slots_lower_priority_number_goes_first);
	tcase_add_test(slots, test_slots_fifo_within_one_priority);
	tcase_add_test(slots, test_slots_default_priority_is_plain_fifo);
	tcase_add_test(slots, test_slots_cap_and_free_slots_go_at_once);
	tcase_add_test(slots, test_slots_freed_slot_is_handed_to_the_queue_not_to_a_newcomer);
	tcase_add_test(slots, test_slots_a_timed_out_waiter_leaves_the_others_queued);
	tcase_add_test(slots, test_slots_waiter_gives_up_at_the_call_deadline);
	tcase_add_test(slots, test_slots_cancel_stops_a_waiter_promptly);
	tcase_add_test(slots, test_slots_waiter_with_a_cancel_flag_is_handed_a_freed_slot);
	suite_add_tcase(s, slots);
	return s;
}
