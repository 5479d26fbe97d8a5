/*
 * Group sync (src/syncgroup.c): concurrent waiters share syncs, and no
 * waiter returns on a sync that began before it asked (that one may have
 * missed its writes).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/syncgroup.h"
#include "unit.h"

#define THREADS 8
#define WAITS 25

struct waiter {
	struct rk_sync_group *g;
	int bad;		/* returned without a sync begun after the call */
	int failed;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;

	for (int i = 0; i < WAITS; i++) {
		struct rk_error err = { 0 };
		uint64_t before, after;
		pthread_mutex_lock(&w->g->mu);
		before = w->g->started;
		pthread_mutex_unlock(&w->g->mu);
		if (rk_sync_group_wait(w->g, &err) < 0)
			w->failed++;
		pthread_mutex_lock(&w->g->mu);
		after = w->g->syncs;
		pthread_mutex_unlock(&w->g->mu);
		/* At least one sync both began after `before` and finished. */
		if (after <= before)
			w->bad++;
	}
	return NULL;
}

START_TEST(test_syncgroup_waiters_share_syncs_begun_after_they_asked)
{
	struct rk_sync_group g;
	struct rk_error err = { 0 };
	struct waiter w[THREADS];
	pthread_t th[THREADS];

	ck_assert_msg(rk_sync_group_init(&g, rk_test_base_dir, &err) == 0, "%s", err.msg);
	for (int t = 0; t < THREADS; t++) {
		w[t] = (struct waiter){ .g = &g };
		ck_assert_int_eq(pthread_create(&th[t], NULL, waiter_main, &w[t]), 0);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		ck_assert_int_eq(w[t].failed, 0);
		ck_assert_int_eq(w[t].bad, 0);
	}
	/* Every wait needs a sync begun after it; waiters at the same time share one. */
	ck_assert_uint_lt(g.syncs, THREADS * WAITS);
	ck_assert_uint_eq(g.started, g.syncs);
	rk_sync_group_destroy(&g);
}
END_TEST

START_TEST(test_syncgroup_a_lone_waiter_gets_a_sync_of_its_own)
{
	struct rk_sync_group g;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_sync_group_init(&g, rk_test_base_dir, &err) == 0, "%s", err.msg);
	for (int i = 1; i <= 3; i++) {
		ck_assert_int_eq(rk_sync_group_wait(&g, &err), 0);
		ck_assert_uint_eq(g.syncs, (uint64_t)i);
	}
	rk_sync_group_destroy(&g);
	rk_sync_group_destroy(&g);	/* twice is harmless */
}
END_TEST

START_TEST(test_syncgroup_missing_directory_is_an_error)
{
	struct rk_sync_group g;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_sync_group_init(&g, "/nonexistent/rekey-test", &err), RK_EIO);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/rekey-test"));
	rk_sync_group_destroy(&g);
}
END_TEST

Suite *
syncgroup_suite(void)
{
	Suite *s = suite_create("syncgroup");
	TCase *tc = tcase_create("syncgroup");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tc, test_syncgroup_waiters_share_syncs_begun_after_they_asked);
	tcase_add_test(tc, test_syncgroup_a_lone_waiter_gets_a_sync_of_its_own);
	tcase_add_test(tc, test_syncgroup_missing_directory_is_an_error);
	suite_add_tcase(s, tc);
	return s;
}
