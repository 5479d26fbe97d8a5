/*
 * The provider wrappers (src/provider.c) against a fake provider that counts
 * every operation it is asked for: a call that is cancelled or out of time
 * reaches no operation, a live one is handed on unchanged, and locator
 * parsing tags its errors like every other step.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/call.h"
#include "rekey/provider.h"
#include "rekey/util.h"
#include "unit.h"

/* ---- the fake: every operation counts itself and records the call it got ---- */

static int op_calls;
static const struct rk_call *op_call;	/* the call of the latest operation */
static int64_t op_deadline;		/* deadline_ms the latest wait got */

static int
counted(const struct rk_call *call)
{
	op_calls++;
	op_call = call;
	return 0;
}

/* The typed locator is a copy of the path. */
static int
fk_parse(const struct rk_provider *p, const json_t *loc, void **out, struct rk_error *err)
{
	const char *path = json_string_value(json_object_get(loc, "path"));

	(void)p;
	if (path == NULL)
		return rk_error_set(err, RK_EINVAL, "fake locator needs a path");
	if ((*out = strdup(path)) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}

static void
fk_free(void *loc)
{
	free(loc);
}

static int
fk_read(struct rk_provider *p, const struct rk_call *call, const void *loc,
	struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	(void)p, (void)loc, (void)out, (void)ver, (void)err;
	return counted(call);
}

static int
fk_read_version(struct rk_provider *p, const struct rk_call *call, const void *loc,
		const struct rk_version *ver, struct rk_secret **out, struct rk_error *err)
{
	(void)p, (void)loc, (void)ver, (void)out, (void)err;
	return counted(call);
}

/* find_staged and stage have the same signature: one fake serves both. */
static int
fk_find_or_stage(struct rk_provider *p, const struct rk_call *call, const void *loc,
		 const struct rk_stage_req *req, struct rk_version *ver, struct rk_error *err)
{
	(void)p, (void)loc, (void)req, (void)ver, (void)err;
	return counted(call);
}

static int
fk_promote(struct rk_provider *p, const struct rk_call *call, const void *loc,
	   const struct rk_version *nv, const struct rk_version *ov, struct rk_error *err)
{
	(void)p, (void)loc, (void)nv, (void)ov, (void)err;
	return counted(call);
}

static int
fk_rollback(struct rk_provider *p, const struct rk_call *call, const void *loc,
	    const struct rk_version *to, const struct rk_stage_req *req, struct rk_version *nv,
	    struct rk_error *err)
{
	(void)p, (void)loc, (void)to, (void)req, (void)nv, (void)err;
	return counted(call);
}

static int
fk_restart(struct rk_provider *p, const struct rk_call *call, const char *target,
	   const char *run_id, struct rk_error *err)
{
	(void)p, (void)target, (void)run_id, (void)err;
	return counted(call);
}

static int
fk_wait(struct rk_provider *p, const struct rk_call *call, const char *target,
	int64_t deadline_ms, struct rk_error *err)
{
	(void)p, (void)target, (void)err;
	op_deadline = deadline_ms;
	return counted(call);
}

static int
fk_lease_acquire(struct rk_provider *p, const struct rk_call *call,
		 const struct rk_lease_spec *spec, char *holder, size_t n, struct rk_error *err)
{
	(void)p, (void)spec, (void)holder, (void)n, (void)err;
	return counted(call);
}

/* renew and release have the same signature: one fake serves both. */
static int
fk_lease_keep(struct rk_provider *p, const struct rk_call *call, const struct rk_lease_spec *spec,
	      struct rk_error *err)
{
	(void)p, (void)spec, (void)err;
	return counted(call);
}

static const struct rk_provider_ops fake_ops = {
	.type = "fake",
	.caps = RK_CAP_VERSIONS | RK_CAP_RESTART | RK_CAP_LEASE,
	.open = rk_test_bare_open,
	.parse_locator = fk_parse,
	.free_locator = fk_free,
	.read = fk_read,
	.read_version = fk_read_version,
	.find_staged = fk_find_or_stage,
	.stage = fk_find_or_stage,
	.promote = fk_promote,
	.rollback = fk_rollback,
	.restart = fk_restart,
	.wait_restarted = fk_wait,
	.lease_acquire = fk_lease_acquire,
	.lease_renew = fk_lease_keep,
	.lease_release = fk_lease_keep,
	.close = rk_test_bare_close,
};

/* A type that keeps no secrets: it cannot parse a locator. */
static const struct rk_provider_ops fake_restart_only = {
	.type = "restarter",
	.caps = RK_CAP_RESTART,
	.open = rk_test_bare_open,
	.restart = fk_restart,
	.close = rk_test_bare_close,
};

static struct rk_provider *
open_fake(const struct rk_provider_ops *ops)
{
	struct rk_provider_env env = { .name = "fake-1" };
	struct rk_provider *p = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_provider_open(&p, ops, &env, NULL, &err) == 0, "%s", err.msg);
	op_calls = 0;
	op_call = NULL;
	return p;
}

/* ---- every wrapper, called the same way ---- */

static const char *const steps[] = { "read", "read_version", "find_staged", "stage",
				     "promote", "rollback", "restart", "wait",
				     "lease_acquire", "lease_renew", "lease_release" };

/* Calls the wrapper of steps[i] with c and l. */
static int
invoke(size_t i, struct rk_provider *p, const struct rk_call *c, const struct rk_loc *l,
       struct rk_error *err)
{
	struct rk_secret *s = NULL;
	struct rk_version v1 = { "1" }, v2 = { "2" };
	struct rk_stage_req req = { 0 };
	struct rk_lease_spec spec = { .name = "leader", .identity = "me", .duration_ms = 15000 };
	char holder[64];

	switch (i) {
	case 0: return rk_provider_read(p, c, l, &s, &v1, err);
	case 1: return rk_provider_read_version(p, c, l, &v1, &s, err);
	case 2: return rk_provider_find_staged(p, c, l, &req, &v1, err);
	case 3: return rk_provider_stage(p, c, l, &req, &v1, err);
	case 4: return rk_provider_promote(p, c, l, &v2, &v1, err);
	case 5: return rk_provider_rollback(p, c, l, &v1, &req, &v2, err);
	case 6: return rk_provider_restart(p, c, "deploy/ns/app", "run-1", err);
	case 7: return rk_provider_wait_restarted(p, c, "deploy/ns/app", rk_mono_ms() + 60000, err);
	case 8: return rk_provider_lease_acquire(p, c, &spec, holder, sizeof(holder), err);
	case 9: return rk_provider_lease_renew(p, c, &spec, err);
	default: return rk_provider_lease_release(p, c, &spec, err);
	}
}

/* Each wrapper called with c returns want, saying pre<step>post, without calling its operation. */
static void
assert_refused(const struct rk_call *c, int want, const char *pre, const char *post)
{
	struct rk_provider *p = open_fake(&fake_ops);
	json_t *json = json_pack("{s:s}", "path", "a/b");
	struct rk_loc loc;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_loc_parse(&loc, p, json, &err) == 0, "%s", err.msg);
	for (size_t i = 0; i < RK_ARRAY_SIZE(steps); i++) {
		char msg[128];
		rk_error_clear(&err);
		ck_assert_int_eq(invoke(i, p, c, &loc, &err), want);
		ck_assert_msg(op_calls == 0, "%s reached the provider", steps[i]);
		ck_assert_str_eq(err.provider, "fake-1");
		ck_assert_str_eq(err.step, steps[i]);
		snprintf(msg, sizeof(msg), "%s%s%s", pre, steps[i], post);
		ck_assert_str_eq(err.msg, msg);
	}
	rk_loc_free(&loc);
	json_decref(json);
	rk_provider_close(p);
}

START_TEST(test_provider_cancelled_call_reaches_no_operation)
{
	atomic_int stop = 1;
	/* Cancelled wins over a deadline that has passed too. */
	struct rk_call c = { .cancel = &stop, .deadline_ms = 1 };

	assert_refused(&c, RK_ECANCELED, "stopped before ", ": rekey is shutting down");
}
END_TEST

START_TEST(test_provider_expired_call_reaches_no_operation)
{
	atomic_int stop = 0;
	struct rk_call c = { .cancel = &stop, .deadline_ms = rk_mono_ms() - 1 };

	assert_refused(&c, RK_ETRANSIENT, "deadline passed before ", "");
}
END_TEST

START_TEST(test_provider_live_call_is_handed_to_the_operation)
{
	struct rk_provider *p = open_fake(&fake_ops);
	json_t *json = json_pack("{s:s}", "path", "a/b");
	atomic_int stop = 0;
	struct rk_call c = { .cancel = &stop, .deadline_ms = rk_mono_ms() + 60000, .priority = 3 };
	struct rk_loc loc;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_loc_parse(&loc, p, json, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(loc.typed, "a/b");
	ck_assert_ptr_eq(loc.json, json);
	for (size_t i = 0; i < RK_ARRAY_SIZE(steps); i++) {
		op_calls = 0;
		ck_assert_msg(invoke(i, p, &c, &loc, &err) == 0, "%s: %s", steps[i], err.msg);
		ck_assert_int_eq(op_calls, 1);
		ck_assert_ptr_eq(op_call, &c);
		/* No call at all: no deadline, never cancelled. */
		ck_assert_int_eq(invoke(i, p, NULL, &loc, &err), 0);
		ck_assert_int_eq(op_calls, 2);
		ck_assert_ptr_null(op_call);
	}
	rk_loc_free(&loc);
	ck_assert_ptr_null(loc.typed);
	rk_loc_free(&loc);	/* twice is harmless */
	json_decref(json);
	rk_provider_close(p);
}
END_TEST

START_TEST(test_provider_wait_gets_the_earlier_of_both_deadlines)
{
	struct rk_provider *p = open_fake(&fake_ops);
	int64_t now = rk_mono_ms();
	struct rk_call soon = { .deadline_ms = now + 1000 }, none = { 0 };
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_provider_wait_restarted(p, &soon, "t", now + 60000, &err), 0);
	ck_assert_int_eq(op_deadline, now + 1000);
	ck_assert_int_eq(rk_provider_wait_restarted(p, &soon, "t", now + 500, &err), 0);
	ck_assert_int_eq(op_deadline, now + 500);
	ck_assert_int_eq(rk_provider_wait_restarted(p, &none, "t", now + 60000, &err), 0);
	ck_assert_int_eq(op_deadline, now + 60000);
	rk_provider_close(p);
}
END_TEST

START_TEST(test_loc_parse_errors_carry_provider_and_step)
{
	struct rk_provider *p = open_fake(&fake_ops);
	json_t *json = json_pack("{s:s}", "key", "no path here");
	struct rk_loc loc;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_loc_parse(&loc, p, json, &err), RK_EINVAL);
	ck_assert_str_eq(err.provider, "fake-1");
	ck_assert_str_eq(err.step, "locator");
	ck_assert_str_eq(err.msg, "fake locator needs a path");
	ck_assert_ptr_null(loc.prov);
	ck_assert_ptr_null(loc.typed);
	rk_loc_free(&loc);	/* safe after a failure */
	json_decref(json);
	rk_provider_close(p);
}
END_TEST

START_TEST(test_loc_parse_for_a_type_that_keeps_no_secrets_is_unsupported)
{
	struct rk_provider *p = open_fake(&fake_restart_only);
	json_t *json = json_pack("{s:s}", "path", "a/b");
	struct rk_loc loc;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_loc_parse(&loc, p, json, &err), RK_EUNSUPPORTED);
	ck_assert_str_eq(err.step, "locator");
	ck_assert_str_eq(err.msg, "provider 'fake-1' (type restarter) keeps no secrets");
	rk_loc_free(&loc);
	json_decref(json);
	rk_provider_close(p);
}
END_TEST

/* A type without RK_CAP_LEASE cannot be asked for a lease, whatever its ops. */
START_TEST(test_provider_lease_needs_the_capability)
{
	struct rk_provider *p = open_fake(&fake_restart_only);
	struct rk_lease_spec spec = { .name = "leader", .identity = "me", .duration_ms = 15000 };
	struct rk_error err = { 0 };
	char holder[64];

	ck_assert_int_eq(rk_provider_lease_acquire(p, NULL, &spec, holder, sizeof(holder), &err),
			 RK_EUNSUPPORTED);
	ck_assert_str_eq(err.msg, "provider 'fake-1' (type restarter) cannot hold a lease");
	ck_assert_str_eq(err.provider, "fake-1");
	rk_error_clear(&err);
	ck_assert_int_eq(rk_provider_lease_renew(p, NULL, &spec, &err), RK_EUNSUPPORTED);
	rk_error_clear(&err);
	ck_assert_int_eq(rk_provider_lease_release(p, NULL, &spec, &err), RK_EUNSUPPORTED);
	ck_assert_int_eq(op_calls, 0);
	rk_provider_close(p);
}
END_TEST

Suite *
provider_suite(void)
{
	Suite *s = suite_create("provider");
	TCase *tc = tcase_create("wrappers");

	tcase_add_test(tc, test_provider_cancelled_call_reaches_no_operation);
	tcase_add_test(tc, test_provider_expired_call_reaches_no_operation);
	tcase_add_test(tc, test_provider_live_call_is_handed_to_the_operation);
	tcase_add_test(tc, test_provider_wait_gets_the_earlier_of_both_deadlines);
	tcase_add_test(tc, test_loc_parse_errors_carry_provider_and_step);
	tcase_add_test(tc, test_loc_parse_for_a_type_that_keeps_no_secrets_is_unsupported);
	tcase_add_test(tc, test_provider_lease_needs_the_capability);
	suite_add_tcase(s, tc);
	return s;
}
