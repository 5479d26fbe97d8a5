/*
 * Lease leader election (providers/k8s_lease.c) against an in-memory fake of
 * the coordination.k8s.io/v1 Lease API: one stored Lease, a resourceVersion
 * counter, 404 and Status bodies as the API server writes them, 409
 * AlreadyExists on a second create, 409 Conflict on a stale PUT, 422 on a
 * PUT without resourceVersion, and a hook that lets a rival writer in
 * between our GET and our PUT. The clocks are the test's, so expiry by
 * renewTime, the skew margin and client-go's observation rule are each
 * judged at exact instants.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rekey/error.h"
#include "../../providers/k8s_lease.h"
#include "unit.h"

#define NS "rekey"
#define NAME "rekey-leader"
#define ITEM "/apis/coordination.k8s.io/v1/namespaces/" NS "/leases/" NAME
#define COLL "/apis/coordination.k8s.io/v1/namespaces/" NS "/leases"
#define ME "host-a_100_aaaa"
#define RIVAL "host-b_200_bbbb"
#define T0 1787400000000000LL	/* 2026-08-22T12:00:00Z in microseconds */
#define SEC 1000000LL

/* ---- the fake API server ------------------------------------------------------ */

struct fake_api {
	pthread_mutex_t mu;
	json_t *lease;		/* the stored Lease, or NULL */
	long rv;		/* cluster-wide resourceVersion counter */
	int gets, posts, puts, conflicts, already, invalid;
	/* Answer every request of this method with this status (a Status body). */
	const char *fail_method;
	long fail_status;
	const char *fail_message;
	/* Runs once, right after the next GET answered: a rival writing in between. */
	void (*between)(struct fake_api *f);
	/* The test clocks (the lease under test reads them through `clock`). */
	int64_t wall_us;
	int64_t mono_ms;
};

static json_t *
status_body(long code, const char *reason, const char *msg)
{
	return json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:I}", "kind",
			 "Status", "apiVersion", "v1", "metadata", "status", "Failure", "message",
			 msg, "reason", reason, "details", "name", NAME, "group",
			 "coordination.k8s.io", "kind", "leases", "code", (json_int_t)code);
}

static void
store(struct fake_api *f, json_t *obj)
{
	char rv[32];

	snprintf(rv, sizeof(rv), "%ld", ++f->rv);
	json_object_set_new(json_object_get(obj, "metadata"), "resourceVersion", json_string(rv));
	json_decref(f->lease);
	f->lease = obj;
}

static int
fake_send(void *arg, const struct rk_call *call, const char *method, const char *path,
	  const char *body, long *status, json_t **obj, struct rk_error *err)
{
	struct fake_api *f = arg;
	json_t *in = body ? json_loads(body, 0, NULL) : NULL;
	void (*between)(struct fake_api *) = NULL;
	const char *rv;

	(void)call;
	(void)err;
	pthread_mutex_lock(&f->mu);
	*obj = NULL;
	if (f->fail_method != NULL && strcmp(f->fail_method, method) == 0) {
		*status = f->fail_status;
		*obj = status_body(f->fail_status, "Forbidden", f->fail_message);
	} else if (strcmp(method, "GET") == 0 && strcmp(path, ITEM) == 0) {
		f->gets++;
		if (f->lease == NULL) {
			*status = 404;
			*obj = status_body(404, "NotFound",
					   "leases.coordination.k8s.io \"" NAME "\" not found");
		} else {
			*status = 200;
			*obj = json_deep_copy(f->lease);
		}
		between = f->between;
		f->between = NULL;
	} else if (strcmp(method, "POST") == 0 && strcmp(path, COLL) == 0) {
		f->posts++;
		ck_assert_ptr_nonnull(in);
		if (f->lease != NULL) {
			f->already++;
			*status = 409;
			*obj = status_body(409, "AlreadyExists",
					   "leases.coordination.k8s.io \"" NAME "\" already exists");
		} else {
			store(f, json_incref(in));
			*status = 201;
			*obj = json_deep_copy(f->lease);
		}
	} else if (strcmp(method, "PUT") == 0 && strcmp(path, ITEM) == 0) {
		f->puts++;
		ck_assert_ptr_nonnull(in);
		rv = json_string_value(json_object_get(json_object_get(in, "metadata"),
						       "resourceVersion"));
		if (f->lease == NULL) {
			*status = 404;
			*obj = status_body(404, "NotFound",
					   "leases.coordination.k8s.io \"" NAME "\" not found");
		} else if (rv == NULL || rv[0] == '\0') {
			f->invalid++;
			*status = 422;
			*obj = status_body(422, "Invalid",
					   "leases.coordination.k8s.io \"" NAME "\" is invalid: "
					   "metadata.resourceVersion: Invalid value: 0x0: must be "
					   "specified for an update");
		} else if (strcmp(rv, json_string_value(json_object_get(
					  json_object_get(f->lease, "metadata"),
					  "resourceVersion"))) != 0) {
			f->conflicts++;
			*status = 409;
			*obj = status_body(409, "Conflict",
					   "Operation cannot be fulfilled on leases.coordination.k8s.io "
					   "\"" NAME "\": the object has been modified; please apply "
					   "your changes to the latest version and try again");
		} else {
			store(f, json_incref(in));
			*status = 200;
			*obj = json_deep_copy(f->lease);
		}
	} else {
		*status = 404;
		*obj = status_body(404, "NotFound", "the server could not find the requested resource");
	}
	if (between != NULL)
		between(f);
	pthread_mutex_unlock(&f->mu);
	json_decref(in);
	return 0;
}

static int64_t
t_wall(void *arg)
{
	return ((struct fake_api *)arg)->wall_us;
}

static int64_t
t_mono(void *arg)
{
	return ((struct fake_api *)arg)->mono_ms;
}

static void
fake_init(struct fake_api *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	f->rv = 1000;
	f->wall_us = T0;
	f->mono_ms = 5000000;
}

static void
fake_done(struct fake_api *f)
{
	/* No test may ever make the server refuse a PUT for want of a resourceVersion. */
	ck_assert_int_eq(f->invalid, 0);
	json_decref(f->lease);
	pthread_mutex_destroy(&f->mu);
}

/* Stores a Lease held by holder, renewed at renew_us (a test's seed, or a rival's write). */
static void
seed(struct fake_api *f, const char *holder, int64_t renew_us, int dur_s, int transitions)
{
	char rt[RK_K8S_MICROTIME_LEN], at[RK_K8S_MICROTIME_LEN];

	rk_k8s_microtime_format(renew_us, rt, sizeof(rt));
	rk_k8s_microtime_format(renew_us - 3600 * SEC, at, sizeof(at));
	store(f, json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s, s:i, s:s, s:s, s:i}}",
			   "apiVersion", "coordination.k8s.io/v1", "kind", "Lease", "metadata",
			   "name", NAME, "namespace", NS, "uid", "uid-1", "spec", "holderIdentity",
			   holder, "leaseDurationSeconds", dur_s, "acquireTime", at, "renewTime",
			   rt, "leaseTransitions", transitions));
}

/* A rival takes the lease between our GET and our PUT (the hook runs under f->mu). */
static void
rival_takes(struct fake_api *f)
{
	if (f->lease == NULL) {
		seed(f, RIVAL, f->wall_us, 15, 0);
		return;
	}
	seed(f, RIVAL, f->wall_us, 15,
	     (int)json_integer_value(json_object_get(json_object_get(f->lease, "spec"),
						     "leaseTransitions")) + 1);
}

static const char *
spec_str(const struct fake_api *f, const char *key)
{
	return json_string_value(json_object_get(json_object_get(f->lease, "spec"), key));
}

static json_int_t
spec_int(const struct fake_api *f, const char *key)
{
	return json_integer_value(json_object_get(json_object_get(f->lease, "spec"), key));
}

/* One candidate: its state, spec and clocks (the fake's). */
struct cand {
	struct rk_k8s_lease *l;
	struct rk_lease_spec spec;
};

static void
cand_init(struct cand *c, struct fake_api *f, const char *identity)
{
	struct rk_k8s_lease_clock clk = { t_wall, t_mono, f };
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_k8s_lease_new(&c->l, f ? &clk : NULL, &err), 0);
	c->spec.namespace_ = NULL;	/* the provider's default namespace */
	c->spec.name = NAME;
	c->spec.identity = identity;
	c->spec.duration_ms = 15000;
	c->spec.skew_ms = 2000;
}

static int
acquire(struct cand *c, struct fake_api *f, char *holder, struct rk_error *err)
{
	return rk_k8s_lease_acquire(c->l, fake_send, f, NULL, &c->spec, NS, holder, 128, err);
}

static int
renew(struct cand *c, struct fake_api *f, struct rk_error *err)
{
	return rk_k8s_lease_renew(c->l, fake_send, f, NULL, &c->spec, NS, err);
}

static int
release(struct cand *c, struct fake_api *f, struct rk_error *err)
{
	return rk_k8s_lease_release(c->l, fake_send, f, NULL, &c->spec, NS, err);
}

/* acquire must answer RK_EBUSY naming RIVAL as the holder: the error. */
static struct rk_error
busy_by_rival(struct cand *c, struct fake_api *f)
{
	struct rk_error err = { 0 };
	char holder[128] = "";

	ck_assert_int_eq(acquire(c, f, holder, &err), RK_EBUSY);
	ck_assert_str_eq(holder, RIVAL);
	return err;
}

/* A fresh fake holding RIVAL's long-expired lease (trans transitions), taken over by c (ME). */
static void
taken_from_dead_rival(struct fake_api *f, struct cand *c, int trans)
{
	struct rk_error err = { 0 };
	char holder[128] = "";

	fake_init(f);
	seed(f, RIVAL, T0 - 60 * SEC, 15, trans);
	cand_init(c, f, ME);
	ck_assert_msg(acquire(c, f, holder, &err) == 0, "%s", err.msg);
}

static void
ck_time(const char *got, int64_t want_us)
{
	char want[RK_K8S_MICROTIME_LEN];

	rk_k8s_microtime_format(want_us, want, sizeof(want));
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, want);
}

/* ---- tests --------------------------------------------------------------------- */

START_TEST(test_missing_lease_is_created)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";

	fake_init(&f);
	cand_init(&c, &f, ME);
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.posts, 1);
	ck_assert_int_eq(f.puts, 0);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), ME);
	ck_assert_int_eq(spec_int(&f, "leaseDurationSeconds"), 15);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 0);
	ck_time(spec_str(&f, "acquireTime"), T0);
	ck_time(spec_str(&f, "renewTime"), T0);
	ck_assert_str_eq(json_string_value(json_object_get(f.lease, "kind")), "Lease");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(f.lease, "metadata"),
							   "namespace")), NS);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_renew_keeps_acquire_time_and_transitions_and_moves_renew_time)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "", rv[32];

	taken_from_dead_rival(&f, &c, 6);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 7);
	snprintf(rv, sizeof(rv), "%s", json_string_value(json_object_get(
			 json_object_get(f.lease, "metadata"), "resourceVersion")));
	f.wall_us += 5 * SEC + 250;
	f.mono_ms += 5000;
	ck_assert_msg(renew(&c, &f, &err) == 0, "%s", err.msg);
	ck_time(spec_str(&f, "acquireTime"), T0);
	ck_time(spec_str(&f, "renewTime"), T0 + 5 * SEC + 250);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 7);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), ME);
	ck_assert_str_ne(json_string_value(json_object_get(json_object_get(f.lease, "metadata"),
							   "resourceVersion")), rv);
	/* acquire while holding renews too (client-go's fast path): same term. */
	f.wall_us += SEC;
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	ck_time(spec_str(&f, "acquireTime"), T0);
	ck_time(spec_str(&f, "renewTime"), T0 + 6 * SEC + 250);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 7);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_other_holder_unexpired_is_busy_with_its_identity)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };

	fake_init(&f);
	seed(&f, RIVAL, T0 - 5 * SEC, 15, 2);
	cand_init(&c, &f, ME);
	err = busy_by_rival(&c, &f);
	ck_assert_msg(strstr(err.msg, "lease rekey/rekey-leader is held by \"" RIVAL
				      "\" until 2026-08-22T12:00:10Z") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "--wait-lease") != NULL, "%s", err.msg);
	ck_assert_int_eq(f.puts + f.posts, 0);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), RIVAL);
	/* Not held: renew says so, release writes nothing. */
	rk_error_clear(&err);
	ck_assert_int_eq(renew(&c, &f, &err), RK_EBUSY);
	rk_error_clear(&err);
	ck_assert_int_eq(release(&c, &f, &err), 0);
	ck_assert_int_eq(f.puts, 0);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_expired_lease_is_taken_over_with_new_term)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";

	taken_from_dead_rival(&f, &c, 3);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), ME);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 4);
	ck_time(spec_str(&f, "acquireTime"), T0);
	ck_time(spec_str(&f, "renewTime"), T0);
	ck_assert_int_eq(f.puts, 1);
	ck_assert_int_eq(f.conflicts, 0);

	/* A free lease (released: holder "") is taken at once, whatever its times. */
	rk_k8s_lease_free(c.l);
	seed(&f, "", T0, 1, 9);
	cand_init(&c, &f, ME);
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 10);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_skew_margin_keeps_just_expired_lease_busy)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";

	fake_init(&f);
	/* 16 s ago with 15 s duration: past renewTime + duration, inside the 2 s margin. */
	seed(&f, RIVAL, T0 - 16 * SEC, 15, 0);
	cand_init(&c, &f, ME);
	busy_by_rival(&c, &f);
	rk_k8s_lease_free(c.l);
	/* 17.5 s ago: beyond the margin too. */
	seed(&f, RIVAL, T0 - 17 * SEC - SEC / 2, 15, 0);
	cand_init(&c, &f, ME);
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), ME);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_record_unchanged_longer_than_duration_is_expired_on_our_clock)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";

	fake_init(&f);
	/* The holder's clock runs an hour ahead: renewTime says "valid" for an hour. */
	seed(&f, RIVAL, T0 + 3600 * SEC, 15, 1);
	cand_init(&c, &f, ME);
	busy_by_rival(&c, &f);
	f.mono_ms += 10000;
	f.wall_us += 10 * SEC;
	busy_by_rival(&c, &f);
	/* The holder renews: the observation starts again from now. */
	seed(&f, RIVAL, T0 + 3610 * SEC, 15, 1);
	busy_by_rival(&c, &f);
	f.mono_ms += 16000;	/* 16 s since the change: within 15 + 2 */
	busy_by_rival(&c, &f);
	f.mono_ms += 1500;	/* 17.5 s unchanged: the holder is gone */
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), ME);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 2);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_rival_writing_between_get_and_put_wins)
{
	struct fake_api f;
	struct cand c;

	fake_init(&f);
	seed(&f, "old-holder", T0 - 60 * SEC, 15, 3);
	f.between = rival_takes;
	cand_init(&c, &f, ME);
	busy_by_rival(&c, &f);
	ck_assert_int_eq(f.conflicts, 1);	/* our PUT carried the version read */
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), RIVAL);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 4);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_rival_creating_first_gets_already_exists_then_busy)
{
	struct fake_api f;
	struct cand c;

	fake_init(&f);
	f.between = rival_takes;	/* after our GET's 404, before our POST */
	cand_init(&c, &f, ME);
	busy_by_rival(&c, &f);
	ck_assert_int_eq(f.already, 1);
	ck_assert_int_eq(f.puts, 0);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_put_without_resource_version_is_422_and_never_sent)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";
	json_t *obj = NULL;
	long st = 0;

	fake_init(&f);
	seed(&f, RIVAL, T0 - 60 * SEC, 15, 0);
	/* The fake refuses what the API server refuses (3.0)... */
	ck_assert_int_eq(fake_send(&f, NULL, "PUT", ITEM,
				   "{\"metadata\":{\"name\":\"" NAME "\"},\"spec\":{}}", &st, &obj,
				   &err), 0);
	ck_assert_int_eq(st, 422);
	ck_assert_str_eq(json_string_value(json_object_get(obj, "reason")), "Invalid");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(obj, "message")),
				     "metadata.resourceVersion: Invalid value: 0x0: must be "
				     "specified for an update"));
	json_decref(obj);
	f.invalid = 0;
	f.puts = 0;
	/* ...and no write of ours ever gets that answer (fake_done asserts it). */
	cand_init(&c, &f, ME);
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	ck_assert_msg(renew(&c, &f, &err) == 0, "%s", err.msg);
	ck_assert_msg(release(&c, &f, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.puts, 3);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_release_frees_lease_for_one_second_keeping_transitions)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";

	taken_from_dead_rival(&f, &c, 3);
	f.wall_us += 7 * SEC;
	ck_assert_msg(release(&c, &f, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), "");
	ck_assert_int_eq(spec_int(&f, "leaseDurationSeconds"), 1);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 4);
	ck_time(spec_str(&f, "acquireTime"), T0 + 7 * SEC);
	ck_time(spec_str(&f, "renewTime"), T0 + 7 * SEC);
	/* Idempotent: a second release writes nothing. */
	ck_assert_msg(release(&c, &f, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.puts, 2);
	/* Released: the next candidate takes it at once. */
	rk_k8s_lease_free(c.l);
	cand_init(&c, &f, RIVAL);
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 5);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_lost_lease_is_left_to_its_new_holder)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";
	char *before, *after;

	fake_init(&f);
	cand_init(&c, &f, ME);
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	/* A rival takes it (we were, say, paused past the duration). */
	f.wall_us += 30 * SEC;
	rival_takes(&f);
	before = json_dumps(f.lease, JSON_SORT_KEYS);
	ck_assert_msg(release(&c, &f, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.conflicts, 1);	/* tried with the old version only */
	after = json_dumps(f.lease, JSON_SORT_KEYS);
	ck_assert_str_eq(after, before);
	/* Renew now says it is lost, and still writes nothing. */
	rk_error_clear(&err);
	ck_assert_int_eq(renew(&c, &f, &err), RK_EBUSY);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), RIVAL);
	free(before);
	free(after);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_renew_detects_loss_and_retries_unrelated_change)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";
	json_t *meta;

	fake_init(&f);
	cand_init(&c, &f, ME);
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	/* Someone adds a label: the version moves, we still hold it; renew goes on. */
	meta = json_object_get(f.lease, "metadata");
	json_object_set_new(meta, "labels", json_pack("{s:s}", "team", "sec"));
	store(&f, json_incref(f.lease));
	f.wall_us += 5 * SEC;
	ck_assert_msg(renew(&c, &f, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.conflicts, 1);
	ck_time(spec_str(&f, "renewTime"), T0 + 5 * SEC);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
				 json_object_get(f.lease, "metadata"), "labels"), "team")), "sec");
	/* A rival takes it: the next renew is RK_EBUSY naming it. */
	rival_takes(&f);
	ck_assert_int_eq(renew(&c, &f, &err), RK_EBUSY);
	ck_assert_msg(strstr(err.msg, "taken over by \"" RIVAL "\"") != NULL, "%s", err.msg);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), RIVAL);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_unknown_fields_survive_every_write)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";
	json_t *sp, *meta;

	fake_init(&f);
	seed(&f, RIVAL, T0 - 60 * SEC, 15, 0);
	sp = json_object_get(f.lease, "spec");
	meta = json_object_get(f.lease, "metadata");
	json_object_set_new(sp, "strategy", json_string("OldestEmulationVersion"));
	json_object_set_new(sp, "preferredHolder", json_string("host-c"));
	json_object_set_new(meta, "labels", json_pack("{s:s}", "app", "rekey"));
	cand_init(&c, &f, ME);
	ck_assert_msg(acquire(&c, &f, holder, &err) == 0, "%s", err.msg);
	ck_assert_msg(renew(&c, &f, &err) == 0, "%s", err.msg);
	ck_assert_msg(release(&c, &f, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(f.puts, 3);
	ck_assert_str_eq(spec_str(&f, "strategy"), "OldestEmulationVersion");
	ck_assert_str_eq(spec_str(&f, "preferredHolder"), "host-c");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
				 json_object_get(f.lease, "metadata"), "labels"), "app")), "rekey");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(f.lease, "metadata"),
							   "uid")), "uid-1");
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

START_TEST(test_microtime_has_exactly_six_digits_and_parses_rfc3339)
{
	char b[RK_K8S_MICROTIME_LEN];
	int64_t us;

	rk_k8s_microtime_format(T0 + 10 * SEC + 123456, b, sizeof(b));
	ck_assert_str_eq(b, "2026-08-22T12:00:10.123456Z");
	rk_k8s_microtime_format(T0, b, sizeof(b));
	ck_assert_str_eq(b, "2026-08-22T12:00:00.000000Z");
	rk_k8s_microtime_format(T0 + 1, b, sizeof(b));
	ck_assert_str_eq(b, "2026-08-22T12:00:00.000001Z");

	ck_assert_int_eq(rk_k8s_microtime_parse("2026-08-22T12:00:10.123456Z", &us), 0);
	ck_assert_int_eq(us, T0 + 10 * SEC + 123456);
	ck_assert_int_eq(rk_k8s_microtime_parse("2026-08-22T12:00:10Z", &us), 0);
	ck_assert_int_eq(us, T0 + 10 * SEC);
	ck_assert_int_eq(rk_k8s_microtime_parse("2026-08-22T12:00:10.5Z", &us), 0);
	ck_assert_int_eq(us, T0 + 10 * SEC + 500000);
	ck_assert_int_eq(rk_k8s_microtime_parse("2026-08-22T12:00:10.123456789Z", &us), 0);
	ck_assert_int_eq(us, T0 + 10 * SEC + 123456);
	ck_assert_int_eq(rk_k8s_microtime_parse("2026-08-22T14:00:10.000001+02:00", &us), 0);
	ck_assert_int_eq(us, T0 + 10 * SEC + 1);
	ck_assert_int_eq(rk_k8s_microtime_parse("2026-08-22T07:30:10-04:30", &us), 0);
	ck_assert_int_eq(us, T0 + 10 * SEC);
	ck_assert_int_eq(rk_k8s_microtime_parse("2026-08-22T12:00:10", &us), RK_EINVAL);
	ck_assert_int_eq(rk_k8s_microtime_parse("2026-08-22T12:00:10.Z", &us), RK_EINVAL);
	ck_assert_int_eq(rk_k8s_microtime_parse("2026-08-22T12:00:10+0200", &us), RK_EINVAL);
	ck_assert_int_eq(rk_k8s_microtime_parse("2026-02-30T12:00:10Z", &us), RK_EINVAL);
	ck_assert_int_eq(rk_k8s_microtime_parse("", &us), RK_EINVAL);
}
END_TEST

START_TEST(test_server_errors_carry_status_message_and_code)
{
	struct fake_api f;
	struct cand c;
	struct rk_error err = { 0 };
	char holder[128] = "";

	fake_init(&f);
	seed(&f, RIVAL, T0 - 60 * SEC, 15, 0);
	cand_init(&c, &f, ME);
	f.fail_method = "PUT";
	f.fail_status = 403;
	f.fail_message = "leases.coordination.k8s.io \"" NAME "\" is forbidden: User "
			 "\"system:serviceaccount:rekey:rekey\" cannot update resource \"leases\" "
			 "in API group \"coordination.k8s.io\" in the namespace \"rekey\"";
	ck_assert_int_eq(acquire(&c, &f, holder, &err), RK_EAUTH);
	ck_assert_int_eq(err.http_status, 403);
	ck_assert_msg(strstr(err.msg, "lease rekey/rekey-leader: cannot take over: HTTP 403: "
				      "leases.coordination.k8s.io \"rekey-leader\" is forbidden: "
				      "User \"system:serviceaccount:rekey:rekey\" cannot update")
			      != NULL, "%s", err.msg);
	rk_error_clear(&err);
	f.fail_method = "GET";
	f.fail_status = 503;
	f.fail_message = "etcdserver: leader changed";
	ck_assert_int_eq(acquire(&c, &f, holder, &err), RK_ETRANSIENT);
	ck_assert_msg(strstr(err.msg, "etcdserver: leader changed") != NULL, "%s", err.msg);
	rk_error_clear(&err);
	f.fail_status = 401;
	f.fail_message = "Unauthorized";
	ck_assert_int_eq(acquire(&c, &f, holder, &err), RK_EAUTH);
	rk_error_clear(&err);
	f.fail_status = 422;
	f.fail_message = "leases.coordination.k8s.io \"" NAME "\" is invalid";
	ck_assert_int_eq(acquire(&c, &f, holder, &err), RK_EPROTO);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), RIVAL);
	rk_k8s_lease_free(c.l);
	fake_done(&f);
}
END_TEST

/* ---- many candidates at once -------------------------------------------------------- */

#define RACERS 8

struct racer {
	struct fake_api *f;
	pthread_barrier_t *go;
	char identity[32];
	int r;
	char holder[128];
};

static void *
race(void *arg)
{
	struct racer *x = arg;
	struct cand c;
	struct rk_error err = { 0 };

	cand_init(&c, NULL, x->identity);	/* real clocks: the threads race for real */
	pthread_barrier_wait(x->go);
	x->r = acquire(&c, x->f, x->holder, &err);
	rk_k8s_lease_free(c.l);
	return NULL;
}

START_TEST(test_eight_candidates_one_holder)
{
	struct fake_api f;
	struct racer x[RACERS];
	pthread_t t[RACERS];
	pthread_barrier_t go;
	int won = -1, busy = 0;

	fake_init(&f);
	seed(&f, "dead-holder", (int64_t)time(NULL) * SEC - 600 * SEC, 15, 0);
	pthread_barrier_init(&go, NULL, RACERS);
	for (int i = 0; i < RACERS; i++) {
		memset(&x[i], 0, sizeof(x[i]));
		x[i].f = &f;
		x[i].go = &go;
		snprintf(x[i].identity, sizeof(x[i].identity), "racer-%d", i);
		ck_assert_int_eq(pthread_create(&t[i], NULL, race, &x[i]), 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < RACERS; i++) {
		if (x[i].r == 0) {
			ck_assert_int_eq(won, -1);
			won = i;
		} else {
			ck_assert_int_eq(x[i].r, RK_EBUSY);
			busy++;
		}
	}
	ck_assert_int_ne(won, -1);
	ck_assert_int_eq(busy, RACERS - 1);
	ck_assert_str_eq(spec_str(&f, "holderIdentity"), x[won].identity);
	ck_assert_int_eq(spec_int(&f, "leaseTransitions"), 1);
	for (int i = 0; i < RACERS; i++)
		if (i != won)
			ck_assert_str_eq(x[i].holder, x[won].identity);
	pthread_barrier_destroy(&go);
	fake_done(&f);
}
END_TEST

Suite *
k8s_lease_suite(void)
{
	Suite *s = suite_create("k8s_lease");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_missing_lease_is_created);
	tcase_add_test(tc, test_renew_keeps_acquire_time_and_transitions_and_moves_renew_time);
	tcase_add_test(tc, test_other_holder_unexpired_is_busy_with_its_identity);
	tcase_add_test(tc, test_expired_lease_is_taken_over_with_new_term);
	tcase_add_test(tc, test_skew_margin_keeps_just_expired_lease_busy);
	tcase_add_test(tc, test_record_unchanged_longer_than_duration_is_expired_on_our_clock);
	tcase_add_test(tc, test_rival_writing_between_get_and_put_wins);
	tcase_add_test(tc, test_rival_creating_first_gets_already_exists_then_busy);
	tcase_add_test(tc, test_put_without_resource_version_is_422_and_never_sent);
	tcase_add_test(tc, test_release_frees_lease_for_one_second_keeping_transitions);
	tcase_add_test(tc, test_lost_lease_is_left_to_its_new_holder);
	tcase_add_test(tc, test_renew_detects_loss_and_retries_unrelated_change);
	tcase_add_test(tc, test_unknown_fields_survive_every_write);
	tcase_add_test(tc, test_microtime_has_exactly_six_digits_and_parses_rfc3339);
	tcase_add_test(tc, test_server_errors_carry_status_message_and_code);
	tcase_add_test(tc, test_eight_candidates_one_holder);
	suite_add_tcase(s, tc);
	return s;
}
