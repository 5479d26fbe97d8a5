/*
 * The leader lease of a one-shot command (src/ha.c) against a fake provider
 * type with RK_CAP_LEASE put in place of a configured provider, as
 * check_engine.c does: nothing happens without `ha`; a held lease is RK_EBUSY
 * (exit 75) at once, or waited for; the renewal thread renews, and a lost
 * lease (renew says so, or no renewal for 2/3 of the duration) sets
 * ctx->stop and is never written again.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/ha.h"
#include "rekey/log.h"
#include "rekey/provider.h"
#include "rekey/store.h"
#include "rekey/util.h"
#include "unit.h"

#define OTHER "other-host_1_abcd"

/* ---- the fake: one lease, counted calls, scripted answers ---- */

static struct {
	pthread_mutex_t mu;
	char holder[160];
	int acquires, renews, releases;
	int busy_for;		/* acquire answers RK_EBUSY (OTHER holds it) this many times */
	int renew_code;		/* what renew answers */
} F = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int
fl_acquire(struct rk_provider *p, const struct rk_call *call, const struct rk_lease_spec *spec,
	   char *holder, size_t n, struct rk_error *err)
{
	int r = 0;

	(void)p, (void)call;
	pthread_mutex_lock(&F.mu);
	F.acquires++;
	if (F.busy_for > 0) {
		F.busy_for--;
		snprintf(holder, n, "%s", OTHER);
		r = rk_error_set(err, RK_EBUSY, "lease %s is held by \"%s\"", spec->name, OTHER);
	} else {
		snprintf(F.holder, sizeof(F.holder), "%s", spec->identity);
	}
	pthread_mutex_unlock(&F.mu);
	return r;
}

static int
fl_renew(struct rk_provider *p, const struct rk_call *call, const struct rk_lease_spec *spec,
	 struct rk_error *err)
{
	int r;

	(void)p, (void)call, (void)spec;
	pthread_mutex_lock(&F.mu);
	F.renews++;
	r = F.renew_code;
	pthread_mutex_unlock(&F.mu);
	return r < 0 ? rk_error_set(err, r, "fake: renew failed") : 0;
}

static int
fl_release(struct rk_provider *p, const struct rk_call *call, const struct rk_lease_spec *spec,
	   struct rk_error *err)
{
	(void)p, (void)call, (void)spec, (void)err;
	pthread_mutex_lock(&F.mu);
	F.releases++;
	F.holder[0] = '\0';
	pthread_mutex_unlock(&F.mu);
	return 0;
}

static const struct rk_provider_ops fake_lease_ops = {
	.type = "fake-lease",
	.caps = RK_CAP_LEASE,
	.open = rk_test_bare_open,
	.lease_acquire = fl_acquire,
	.lease_renew = fl_renew,
	.lease_release = fl_release,
	.close = rk_test_bare_close,
};

static int
counter(int *c)
{
	int v;

	pthread_mutex_lock(&F.mu);
	v = *c;
	pthread_mutex_unlock(&F.mu);
	return v;
}

/* ---- a command's context with `lk` being the fake ---- */

struct fx {
	char dir[128];
	struct rk_ctx ctx;
};

static void
fx_open(struct fx *f, int with_ha, int64_t duration_ms)
{
	struct rk_store *st = NULL;
	struct rk_error err = { 0 };
	char state[160], cfg[160], text[512];

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(state, sizeof(state), "%s/state", f->dir);
	ck_assert_int_eq(mkdir(state, 0700), 0);
	snprintf(cfg, sizeof(cfg), "%s/rekey.yaml", f->dir);
	snprintf(text, sizeof(text), "state_dir: %s\nproviders: {local: {type: local}, "
		 "lk: {type: local}}\n", state);
	rk_test_write(cfg, text);
	ck_assert_msg(rk_keys_create(state, &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_store_open(&st, state, 1, &err) == 0, "%s", err.msg);
	rk_store_close(st);
	rk_log_setup(RK_LOG_ERROR, RK_LOG_JSON);

	rk_ctx_init(&f->ctx);
	f->ctx.config_path = strdup(cfg);
	ck_assert_msg(rk_ctx_load_config(&f->ctx, &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_ctx_open_state(&f->ctx, 0, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(f->ctx.cfg->providers[1].name, "lk");
	f->ctx.cfg->providers[1].ops = &fake_lease_ops;
	/* What `ha: {lease: {provider: lk, namespace: rekey, name: leader}}` loads to. */
	if (with_ha) {
		f->ctx.cfg->ha.provider = "lk";
		f->ctx.cfg->ha.namespace_ = "rekey";
		f->ctx.cfg->ha.name = "leader";
		f->ctx.cfg->ha.duration_ms = duration_ms;
		f->ctx.cfg->ha.skew_ms = 0;
		f->ctx.cfg->have_ha = 1;
	}
}

static void
fx_close(struct fx *f)
{
	rk_ctx_cleanup(&f->ctx);
	free((char *)f->ctx.config_path);
	rk_test_rm_rf(f->dir);
}

/* Waits up to ms for ctx->stop; 1 when it was set. */
static int
stop_within(struct rk_ctx *ctx, int64_t ms)
{
	int64_t end = rk_mono_ms() + ms;

	while (!atomic_load(&ctx->stop) && rk_mono_ms() < end)
		rk_sleep_ms(10);
	return atomic_load(&ctx->stop);
}

/* f opened with ha of that duration, and the lease taken. */
static struct rk_ha *
held(struct fx *f, int64_t duration_ms)
{
	struct rk_ha *ha = NULL;
	struct rk_error err = { 0 };

	fx_open(f, 1, duration_ms);
	ck_assert_msg(rk_ha_acquire(&f->ctx, 0, &ha, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(ha);
	return ha;
}

START_TEST(test_ha_not_configured_takes_no_lease)
{
	struct fx f;
	struct rk_ha *ha = (struct rk_ha *)&f;	/* must be set to NULL */
	struct rk_error err = { 0 };

	fx_open(&f, 0, 15000);
	ck_assert_int_eq(rk_ha_acquire(&f.ctx, 0, &ha, &err), 0);
	ck_assert_ptr_null(ha);
	ck_assert_int_eq(rk_ha_lost(ha), 0);
	rk_ha_release(ha);
	ck_assert_int_eq(F.acquires + F.renews + F.releases, 0);
	ck_assert_ptr_null(f.ctx.providers[1]);	/* not even opened */
	fx_close(&f);
}
END_TEST

/* Another instance holds the lease throughout: rk_ha_acquire(wait_ms) is RK_EBUSY naming it. */
static struct rk_error
busy_for_good(int64_t wait_ms, int64_t *took_ms)
{
	struct fx f;
	struct rk_ha *ha = NULL;
	struct rk_error err = { 0 };
	int64_t t0;

	fx_open(&f, 1, 15000);
	F.busy_for = 1000;
	t0 = rk_mono_ms();
	ck_assert_int_eq(rk_ha_acquire(&f.ctx, wait_ms, &ha, &err), RK_EBUSY);
	*took_ms = rk_mono_ms() - t0;
	ck_assert_ptr_null(ha);
	ck_assert_int_eq(rk_exit_code(err.code), 75);
	ck_assert_msg(strstr(err.msg, OTHER) != NULL, "%s", err.msg);
	ck_assert_str_eq(err.provider, "lk");
	fx_close(&f);
	return err;
}

START_TEST(test_ha_held_by_another_is_busy_at_once)
{
	int64_t took;

	busy_for_good(0, &took);
	ck_assert_int_lt(took, 500);
	ck_assert_int_eq(F.acquires, 1);
}
END_TEST

START_TEST(test_ha_wait_takes_lease_once_holder_lets_go)
{
	struct fx f;
	struct rk_ha *ha = NULL;
	struct rk_error err = { 0 };
	const char *id;
	char host[64] = "";
	int64_t t0;

	fx_open(&f, 1, 15000);
	F.busy_for = 2;		/* the holder releases after our second try */
	t0 = rk_mono_ms();
	ck_assert_msg(rk_ha_acquire(&f.ctx, 10000, &ha, &err) == 0, "%s", err.msg);
	ck_assert_int_ge(rk_mono_ms() - t0, 1500);
	ck_assert_int_lt(rk_mono_ms() - t0, 5000);
	ck_assert_int_eq(F.acquires, 3);
	ck_assert_ptr_nonnull(ha);
	id = rk_ha_identity(ha);
	ck_assert_str_eq(F.holder, id);
	/* hostname_pid_random */
	gethostname(host, sizeof(host) - 1);
	ck_assert_int_eq(strncmp(id, host, strlen(host)), 0);
	ck_assert_int_eq(atoi(id + strlen(host) + 1), (int)getpid());
	ck_assert_int_eq(strlen(strrchr(id, '_') + 1), 8);
	rk_ha_release(ha);
	ck_assert_int_eq(F.releases, 1);
	ck_assert_str_eq(F.holder, "");
	ck_assert_int_eq(atomic_load(&f.ctx.stop), 0);
	fx_close(&f);
}
END_TEST

START_TEST(test_ha_wait_gives_up_when_its_time_is_over)
{
	struct rk_error err;
	int64_t took;

	err = busy_for_good(1500, &took);
	ck_assert_int_ge(took, 1400);
	ck_assert_int_lt(took, 3000);
	ck_assert_int_ge(F.acquires, 2);
	ck_assert_msg(strstr(err.msg, "after waiting") != NULL, "%s", err.msg);
}
END_TEST

static void *
stop_later(void *arg)
{
	rk_sleep_ms(300);
	atomic_store(&((struct rk_ctx *)arg)->stop, 1);
	return NULL;
}

START_TEST(test_ha_stop_ends_the_wait)
{
	struct fx f;
	struct rk_ha *ha = NULL;
	struct rk_error err = { 0 };
	pthread_t t;
	int64_t t0;

	fx_open(&f, 1, 15000);
	F.busy_for = 1000;
	t0 = rk_mono_ms();
	ck_assert_int_eq(pthread_create(&t, NULL, stop_later, &f.ctx), 0);
	ck_assert_int_eq(rk_ha_acquire(&f.ctx, 30000, &ha, &err), RK_ECANCELED);
	pthread_join(t, NULL);
	ck_assert_int_lt(rk_mono_ms() - t0, 1000);
	ck_assert_ptr_null(ha);
	ck_assert_msg(strstr(err.msg, OTHER) != NULL, "%s", err.msg);
	fx_close(&f);
}
END_TEST

START_TEST(test_ha_renews_every_third_of_the_duration)
{
	struct fx f;
	struct rk_ha *ha = held(&f, 1500);

	rk_sleep_ms(1300);	/* renewals near 500 and 1000 ms */
	ck_assert_int_ge(counter(&F.renews), 2);
	ck_assert_int_le(counter(&F.renews), 3);
	ck_assert_int_eq(rk_ha_lost(ha), 0);
	ck_assert_int_eq(atomic_load(&f.ctx.stop), 0);
	rk_ha_release(ha);
	ck_assert_int_eq(F.releases, 1);
	fx_close(&f);
}
END_TEST

START_TEST(test_ha_lost_lease_sets_stop_and_is_not_released)
{
	struct fx f;
	struct rk_ha *ha;

	F.renew_code = RK_EBUSY;	/* another instance took it over */
	ha = held(&f, 1500);
	ck_assert_int_eq(atomic_load(&f.ctx.stop), 0);
	ck_assert_int_eq(stop_within(&f.ctx, 3000), 1);
	ck_assert_int_eq(rk_ha_lost(ha), 1);
	ck_assert_int_eq(counter(&F.renews), 1);	/* no renewal after the loss */
	rk_ha_release(ha);
	ck_assert_int_eq(F.releases, 0);	/* someone else's lease now */
	fx_close(&f);
}
END_TEST

START_TEST(test_ha_renewals_failing_for_two_thirds_of_the_duration_lose_it)
{
	struct fx f;
	struct rk_ha *ha;
	int64_t t0;

	F.renew_code = RK_ETRANSIENT;	/* the API server is unreachable */
	ha = held(&f, 3000);
	t0 = rk_mono_ms();
	ck_assert_int_eq(stop_within(&f.ctx, 1500), 0);	/* retrying, not lost yet */
	ck_assert_int_eq(rk_ha_lost(ha), 0);
	ck_assert_int_eq(stop_within(&f.ctx, 3000), 1);
	ck_assert_int_ge(rk_mono_ms() - t0, 1700);	/* 2/3 of 3 s, less the first wait */
	ck_assert_int_ge(counter(&F.renews), 2);
	ck_assert_int_eq(rk_ha_lost(ha), 1);
	rk_ha_release(ha);
	ck_assert_int_eq(F.releases, 0);
	fx_close(&f);
}
END_TEST

Suite *
ha_suite(void)
{
	Suite *s = suite_create("ha");
	TCase *tc = tcase_create("lease");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_ha_not_configured_takes_no_lease);
	tcase_add_test(tc, test_ha_held_by_another_is_busy_at_once);
	tcase_add_test(tc, test_ha_wait_takes_lease_once_holder_lets_go);
	tcase_add_test(tc, test_ha_wait_gives_up_when_its_time_is_over);
	tcase_add_test(tc, test_ha_stop_ends_the_wait);
	tcase_add_test(tc, test_ha_renews_every_third_of_the_duration);
	tcase_add_test(tc, test_ha_lost_lease_sets_stop_and_is_not_released);
	tcase_add_test(tc, test_ha_renewals_failing_for_two_thirds_of_the_duration_lose_it);
	suite_add_tcase(s, tc);
	return s;
}
