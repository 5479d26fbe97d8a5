/*
 * Leader election on a coordination.k8s.io/v1 Lease (see k8s_lease.h), the
 * way client-go's LeaseLock and tryAcquireOrRenew do it:
 *
 *   GET -> 404: POST a new Lease (409 AlreadyExists: another creator won,
 *                judge again);
 *       -> held by another identity, unexpired: RK_EBUSY;
 *       -> else PUT the object as read, resourceVersion included, with us as
 *          holder (409 Conflict: another writer won, judge again).
 *
 * Every write is a PUT of the whole object as it was read, so fields this
 * module does not know (spec.strategy, spec.preferredHolder, labels) survive,
 * and its metadata.resourceVersion is the precondition that lets exactly one
 * of several takers win. Rounds of GET-and-judge are bounded.
 *
 * Invariants: l->seen is the last Lease read or written for l->where;
 * l->observed_ms is when its spec was first seen as it is (our monotonic
 * clock); l->held says whether our last write made us the holder. The mutex
 * is held for a whole operation, HTTP included: renewals run on another
 * thread, and two operations on one lease must not interleave their reads
 * and writes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rekey/provider_kit.h"
#include "rekey/util.h"
#include "k8s_lease.h"

/* GET-and-judge rounds one call makes before giving up on a lease that keeps changing. */
#define LEASE_ROUNDS 4
#define LEASE_API "/apis/coordination.k8s.io/v1/namespaces/"
/* A bound on leaseDurationSeconds as read, so that sums of times cannot overflow. */
#define LEASE_MAX_SECONDS 86400LL

struct rk_k8s_lease {
	pthread_mutex_t mu;
	struct rk_k8s_lease_clock clock;
	json_t *seen;		/* owned */
	char where[320];	/* "ns/name" of seen */
	int64_t observed_ms;
	int held;
};

enum put_mode { PUT_TAKE, PUT_RENEW, PUT_RELEASE };

/* One operation's arguments, resolved once. */
struct op {
	struct rk_k8s_lease *l;
	rk_k8s_send_fn send;
	void *arg;
	const struct rk_call *call;
	const struct rk_lease_spec *spec;
	char where[320];	/* "ns/name", for messages */
	char coll[400];		/* the namespace's leases */
	char path[400];		/* this lease */
};

static int64_t
real_wall_us(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
real_mono_ms(void *arg)
{
	(void)arg;
	return rk_mono_ms();
}

int
rk_k8s_lease_new(struct rk_k8s_lease **out, const struct rk_k8s_lease_clock *clock,
		 struct rk_error *err)
{
	struct rk_k8s_lease *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (pthread_mutex_init(&l->mu, NULL) != 0) {
		free(l);
		return rk_error_set(err, RK_ENOMEM, "cannot make a mutex");
	}
	if (clock != NULL) {
		l->clock = *clock;
	} else {
		l->clock.wall_us = real_wall_us;
		l->clock.mono_ms = real_mono_ms;
	}
	*out = l;
	return 0;
}

void
rk_k8s_lease_free(struct rk_k8s_lease *l)
{
	if (l == NULL)
		return;
	json_decref(l->seen);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

void
rk_k8s_microtime_format(int64_t unix_us, char *buf, size_t n)
{
	int64_t s = unix_us / 1000000, f = unix_us % 1000000;
	struct tm tm;
	time_t t;

	if (f < 0) {
		f += 1000000;
		s--;
	}
	t = (time_t)s;
	gmtime_r(&t, &tm);
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)f);
}

int
rk_k8s_microtime_parse(const char *s, int64_t *unix_us)
{
	char base[21];
	int64_t secs, frac = 0, scale = 100000;
	size_t i = 19, digits = 0;
	int oh, om, used = 0;

	if (strlen(s) < 20)
		return RK_EINVAL;
	/* Date and time of day are rk_parse_time's; the fraction and the zone are ours. */
	memcpy(base, s, 19);
	base[19] = 'Z';
	base[20] = '\0';
	if (rk_parse_time(base, &secs) < 0)
		return RK_EINVAL;
	if (s[i] == '.') {
		for (i++; s[i] >= '0' && s[i] <= '9'; i++, digits++) {
			frac += (s[i] - '0') * scale;	/* digits past the sixth are cut */
			scale /= 10;
		}
		if (digits == 0 || digits > 9)
			return RK_EINVAL;
	}
	if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0') {
		/* UTC */
	} else if ((s[i] == '+' || s[i] == '-') &&
		   sscanf(s + i + 1, "%2d:%2d%n", &oh, &om, &used) == 2 && used == 5 &&
		   s[i + 6] == '\0' && oh <= 23 && om <= 59) {
		secs -= (s[i] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
	} else {
		return RK_EINVAL;
	}
	*unix_us = secs * 1000000 + frac;
	return 0;
}

/* Kubernetes object names: lower-case letters, digits, '-' and '.'; nothing a path would split. */
static int
k8s_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= 253 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") == n;
}

static int
op_init(struct op *o, struct rk_k8s_lease *l, rk_k8s_send_fn send, void *arg,
	const struct rk_call *call, const struct rk_lease_spec *spec, const char *default_ns,
	struct rk_error *err)
{
	const char *ns = spec->namespace_ ? spec->namespace_ : default_ns;

	if (!k8s_name_ok(ns) || !k8s_name_ok(spec->name))
		return rk_error_set(err, RK_EINVAL,
				    "lease %s/%s: a namespace and a name of a-z, 0-9, '-' and '.' "
				    "are needed", ns ? ns : "(none)", spec->name ? spec->name : "(none)");
	memset(o, 0, sizeof(*o));
	o->l = l;
	o->send = send;
	o->arg = arg;
	o->call = call;
	o->spec = spec;
	snprintf(o->where, sizeof(o->where), "%s/%s", ns, spec->name);
	snprintf(o->coll, sizeof(o->coll), LEASE_API "%s/leases", ns);
	snprintf(o->path, sizeof(o->path), LEASE_API "%s/leases/%s", ns, spec->name);
	return 0;
}

static int
o_send(const struct op *o, const char *method, const char *path, const json_t *body,
       long *status, json_t **obj, struct rk_error *err)
{
	char *text = NULL;
	int r;

	*obj = NULL;
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	r = o->send(o->arg, o->call, method, path, text, status, obj, err);
	free(text);	/* a Lease holds no secret: no wiping */
	return r;
}

/* A final answer that is not the one wanted: the Status message, and what fixes a 403. */
static int
status_error(const struct op *o, const char *what, long status, const json_t *obj,
	     struct rk_error *err)
{
	const char *msg = json_string_value(json_object_get(obj, "message"));
	int code = rk_kit_status_code(status), r;

	if (code == RK_ENOTFOUND)
		code = RK_EPROTO;	/* only a GET's 404 means "no lease", and that is handled */
	r = rk_error_set(err, code, "lease %s: cannot %s: HTTP %ld%s%s%s", o->where, what, status,
			 msg ? ": " : "", msg ? msg : "",
			 status == 403 ? " (rekey needs get, create and update on leases in "
					 "that namespace)" : "");
	if (err != NULL)
		err->http_status = (int)status;
	return r;
}

/* A Lease as the API server returns it: a resourceVersion to write back, and a spec. */
static int
check_lease(const struct op *o, json_t *obj, struct rk_error *err)
{
	const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"),
							   "resourceVersion"));

	if (!json_is_object(obj) || rv == NULL || rv[0] == '\0')
		return rk_error_set(err, RK_EPROTO,
				    "lease %s: the API server answered a Lease without "
				    "metadata.resourceVersion", o->where);
	/* Every spec field is omitempty: an empty spec may be left out. */
	if (json_object_get(obj, "spec") == NULL &&
	    json_object_set_new(obj, "spec", json_object()) < 0)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (!json_is_object(json_object_get(obj, "spec")))
		return rk_error_set(err, RK_EPROTO, "lease %s: spec is not an object", o->where);
	return 0;
}

static const char *
holder_of(const json_t *obj)
{
	const char *h = json_string_value(json_object_get(json_object_get(obj, "spec"),
							  "holderIdentity"));

	return h ? h : "";
}

/* Remembers obj as the lease last seen; a changed record restarts the observation clock. */
static void
observe(struct op *o, json_t *obj)
{
	struct rk_k8s_lease *l = o->l;
	const json_t *old = NULL;

	if (l->seen != NULL && strcmp(l->where, o->where) == 0)
		old = json_object_get(l->seen, "spec");
	if (old == NULL || !json_equal((json_t *)old, json_object_get(obj, "spec")))
		l->observed_ms = l->clock.mono_ms(l->clock.arg);
	json_decref(l->seen);
	l->seen = json_incref(obj);
	snprintf(l->where, sizeof(l->where), "%s", o->where);
}

/*
 * Another identity's lease is still theirs while the wall clock says so
 * (renewTime + duration + margin; a missing renewTime leaves it to the
 * other rule) and we have not seen the record stay unchanged for longer
 * than duration + margin. *until_us: renewTime + duration, 0 if unknown.
 */
static int
unexpired(const struct op *o, const json_t *obj, int64_t *until_us)
{
	const struct rk_k8s_lease *l = o->l;
	const json_t *sp = json_object_get(obj, "spec");
	json_int_t secs = json_integer_value(json_object_get(sp, "leaseDurationSeconds"));
	const char *rt = json_string_value(json_object_get(sp, "renewTime"));
	int64_t dur_ms, margin_ms = o->spec->skew_ms, renew_us;
	int wall = 1;

	if (secs <= 0)
		secs = 1;
	if (secs > LEASE_MAX_SECONDS)
		secs = LEASE_MAX_SECONDS;
	dur_ms = (int64_t)secs * 1000;
	*until_us = 0;
	if (rt != NULL && rk_k8s_microtime_parse(rt, &renew_us) == 0) {
		*until_us = renew_us + dur_ms * 1000;
		wall = *until_us + margin_ms * 1000 > l->clock.wall_us(l->clock.arg);
	}
	return wall && l->clock.mono_ms(l->clock.arg) - l->observed_ms <= dur_ms + margin_ms;
}

static int
busy(const struct op *o, const json_t *obj, int64_t until_us, char *holder, size_t n,
     struct rk_error *err)
{
	const char *h = holder_of(obj);
	char until[32] = "";

	if (holder != NULL && n > 0)
		snprintf(holder, n, "%s", h);
	if (until_us > 0) {
		memcpy(until, " until ", 7);
		rk_format_time(until_us / 1000000, until + 7, sizeof(until) - 7);
	}
	return rk_error_set(err, RK_EBUSY,
			    "lease %s is held by \"%s\"%s: another rekey is at work; try again "
			    "later or wait for it with --wait-lease DURATION", o->where, h, until);
}

static int
set_time(json_t *sp, const char *key, const char *now)
{
	return json_object_set_new(sp, key, json_string(now));
}

static int
set_int(json_t *sp, const char *key, json_int_t v)
{
	return json_object_set_new(sp, key, json_integer(v));
}

/* obj with us as holder (take, renew) or with nobody (release); everything else kept. */
static json_t *
updated(const struct op *o, const json_t *obj, enum put_mode mode)
{
	json_t *u = json_deep_copy(obj), *sp = json_object_get(u, "spec");
	json_int_t trans = json_integer_value(json_object_get(sp, "leaseTransitions"));
	int64_t secs = o->spec->duration_ms / 1000;
	char now[RK_K8S_MICROTIME_LEN];
	int bad;

	if (u == NULL || sp == NULL) {
		json_decref(u);
		return NULL;
	}
	rk_k8s_microtime_format(o->l->clock.wall_us(o->l->clock.arg), now, sizeof(now));
	if (mode == PUT_RELEASE) {
		/* client-go's ReleaseOnCancel: nobody, for one second, from now. */
		bad = json_object_set_new(sp, "holderIdentity", json_string("")) < 0 ||
		      set_int(sp, "leaseDurationSeconds", 1) < 0 ||
		      set_time(sp, "acquireTime", now) < 0;
	} else {
		bad = json_object_set_new(sp, "holderIdentity", json_string(o->spec->identity)) < 0 ||
		      set_int(sp, "leaseDurationSeconds", secs > 0 ? secs : 1) < 0;
		/* A takeover starts a new term; a renewal keeps the term's start and count. */
		if (mode == PUT_TAKE) {
			bad = bad || set_time(sp, "acquireTime", now) < 0;
			trans++;
		} else if (json_object_get(sp, "acquireTime") == NULL) {
			bad = bad || set_time(sp, "acquireTime", now) < 0;
		}
	}
	bad = bad || set_time(sp, "renewTime", now) < 0 || set_int(sp, "leaseTransitions", trans) < 0;
	if (bad) {
		json_decref(u);
		return NULL;
	}
	return u;
}

/*
 * Sends one write of ours: 0 when the answer is the lease as written (seen
 * now); 1 when another writer came first (409, or for a PUT 404: deleted),
 * so the lease must be judged again; <0: error.
 */
static int
write_lease(struct op *o, const char *method, const char *path, const json_t *body,
	    const char *what, struct rk_error *err)
{
	json_t *resp = NULL;
	long st = 0;
	int r;

	if ((r = o_send(o, method, path, body, &st, &resp, err)) < 0)
		goto out;
	if (st == 409 || (st == 404 && strcmp(method, "PUT") == 0))
		r = 1;
	else if (st != 200 && st != 201)
		r = status_error(o, what, st, resp, err);
	else if ((r = check_lease(o, resp, err)) == 0)
		observe(o, resp);
out:
	json_decref(resp);
	return r;
}

/* obj written back in mode; as write_lease. */
static int
put(struct op *o, const json_t *obj, enum put_mode mode, struct rk_error *err)
{
	static const char *const what[] = { "take over", "renew", "release" };
	json_t *u = updated(o, obj, mode);
	int r;

	if (u == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	r = write_lease(o, "PUT", o->path, u, what[mode], err);
	json_decref(u);
	return r;
}

/* A new lease held by us; 1: AlreadyExists, another creator won. As write_lease. */
static int
create(struct op *o, struct rk_error *err)
{
	const struct rk_lease_spec *s = o->spec;
	json_t *body;
	char now[RK_K8S_MICROTIME_LEN];
	const char *slash = strchr(o->where, '/');
	int r;

	rk_k8s_microtime_format(o->l->clock.wall_us(o->l->clock.arg), now, sizeof(now));
	body = json_pack("{s:s, s:s, s:{s:s, s:s#}, s:{s:s, s:I, s:s, s:s, s:i}}",
			 "apiVersion", "coordination.k8s.io/v1", "kind", "Lease",
			 "metadata", "name", s->name, "namespace", o->where,
			 (int)(slash - o->where),
			 "spec", "holderIdentity", s->identity, "leaseDurationSeconds",
			 (json_int_t)(s->duration_ms / 1000 > 0 ? s->duration_ms / 1000 : 1),
			 "acquireTime", now, "renewTime", now, "leaseTransitions", 0);
	if (body == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	r = write_lease(o, "POST", o->coll, body, "create", err);
	json_decref(body);
	return r;
}

/* GET: 0 with *obj (seen), 1 when there is no lease, <0: error. */
static int
get(struct op *o, json_t **obj, struct rk_error *err)
{
	long st = 0;
	int r;

	if ((r = o_send(o, "GET", o->path, NULL, &st, obj, err)) < 0)
		return r;
	if (st == 404)
		return 1;
	if (st != 200)
		r = status_error(o, "read", st, *obj, err);
	else if ((r = check_lease(o, *obj, err)) == 0)
		observe(o, *obj);
	if (r < 0) {
		json_decref(*obj);
		*obj = NULL;
	}
	return r;
}

static int
ours(const struct op *o)
{
	return o->l->held && strcmp(o->l->where, o->where) == 0;
}

int
rk_k8s_lease_acquire(struct rk_k8s_lease *l, rk_k8s_send_fn send, void *arg,
		     const struct rk_call *call, const struct rk_lease_spec *spec,
		     const char *default_ns, char *holder, size_t n, struct rk_error *err)
{
	struct op o;
	json_t *obj = NULL;
	int64_t until_us = 0;
	int r;

	if ((r = op_init(&o, l, send, arg, call, spec, default_ns, err)) < 0)
		return r;
	pthread_mutex_lock(&l->mu);
	/* Fast path: renew what we hold without reading it first; any failure reads it. */
	if (ours(&o)) {
		struct rk_error ignored = { 0 };
		if (put(&o, l->seen, PUT_RENEW, &ignored) == 0)
			goto out;
	}
	l->held = 0;
	for (int round = 0; round < LEASE_ROUNDS; round++) {
		const char *h;

		json_decref(obj);
		obj = NULL;
		if ((r = get(&o, &obj, err)) < 0)
			goto out;
		if (r == 1) {
			if ((r = create(&o, err)) <= 0)
				goto out;
			continue;	/* AlreadyExists: read what the winner wrote */
		}
		h = holder_of(obj);
		if (h[0] != '\0' && strcmp(h, spec->identity) != 0 && unexpired(&o, obj, &until_us)) {
			r = busy(&o, obj, until_us, holder, n, err);
			goto out;
		}
		r = put(&o, obj, strcmp(h, spec->identity) == 0 ? PUT_RENEW : PUT_TAKE, err);
		if (r <= 0)
			goto out;
	}
	/* Every round lost a race: someone else is writing it; say who we saw last. */
	r = busy(&o, l->seen, 0, holder, n, err);
out:
	if (r == 0)
		l->held = 1;
	pthread_mutex_unlock(&l->mu);
	json_decref(obj);
	return r;
}

/*
 * After a PUT of ours lost to another write: reads the lease again. 0 with
 * *obj when we still hold it (the PUT may be retried with its version);
 * RK_EBUSY (err set) when it is gone or someone else's; <0 for errors.
 */
static int
reread_ours(struct op *o, json_t **obj, struct rk_error *err)
{
	int r;

	json_decref(*obj);
	*obj = NULL;
	if ((r = get(o, obj, err)) < 0)
		return r;
	if (r == 1)
		return rk_error_set(err, RK_EBUSY, "lease %s was deleted by someone else",
				    o->where);
	if (strcmp(holder_of(*obj), o->spec->identity) != 0)
		return rk_error_set(err, RK_EBUSY, "lease %s was taken over by \"%s\"", o->where,
				    holder_of(*obj));
	return 0;
}

/*
 * PUTs the lease we hold (renewed or released), judging it again after a
 * lost race: 0 written; RK_EBUSY (err set) when it is no longer ours, and
 * nothing is written then; <0 errors.
 */
static int
write_held(struct op *o, enum put_mode mode, struct rk_error *err)
{
	json_t *obj = json_incref(o->l->seen);
	int r;

	for (int round = 0; round < LEASE_ROUNDS; round++) {
		if ((r = put(o, obj, mode, err)) <= 0)
			goto out;
		if ((r = reread_ours(o, &obj, err)) < 0)
			goto out;
	}
	r = rk_error_set(err, RK_ETRANSIENT, "lease %s kept changing while rekey wrote it",
			 o->where);
out:
	json_decref(obj);
	return r;
}

int
rk_k8s_lease_renew(struct rk_k8s_lease *l, rk_k8s_send_fn send, void *arg,
		   const struct rk_call *call, const struct rk_lease_spec *spec,
		   const char *default_ns, struct rk_error *err)
{
	struct op o;
	int r;

	if ((r = op_init(&o, l, send, arg, call, spec, default_ns, err)) < 0)
		return r;
	pthread_mutex_lock(&l->mu);
	if (!ours(&o))
		r = rk_error_set(err, RK_EBUSY, "lease %s is not held by %s", o.where,
				 spec->identity);
	else
		r = write_held(&o, PUT_RENEW, err);
	if (r == RK_EBUSY)
		l->held = 0;
	pthread_mutex_unlock(&l->mu);
	return r;
}

int
rk_k8s_lease_release(struct rk_k8s_lease *l, rk_k8s_send_fn send, void *arg,
		     const struct rk_call *call, const struct rk_lease_spec *spec,
		     const char *default_ns, struct rk_error *err)
{
	struct rk_error e = { 0 };
	struct op o;
	int r;

	if ((r = op_init(&o, l, send, arg, call, spec, default_ns, err)) < 0)
		return r;
	pthread_mutex_lock(&l->mu);
	/* Never held, already given up, or lost meanwhile: someone else's, left untouched. */
	if (ours(&o) && (r = write_held(&o, PUT_RELEASE, &e)) == RK_EBUSY)
		r = 0;
	if (r == 0)
		l->held = 0;
	else if (err != NULL && err->code == 0)
		*err = e;
	pthread_mutex_unlock(&l->mu);
	return r;
}
