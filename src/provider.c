/*
 * The provider registry and the wrappers the core calls.
 *
 * The provider types are listed in src/provider_registry.c. The wrappers put the provider's name and the step into errors,
 * time every call for the debug log, and turn a missing operation into
 * RK_EUNSUPPORTED, so the engine never calls a NULL pointer. They also refuse
 * to start an operation whose rk_call is cancelled or out of time, so that no
 * provider has to check that before its first request.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "rekey/log.h"
#include "rekey/provider.h"
#include "rekey/util.h"

static void
tag(const struct rk_provider *p, const char *step, struct rk_error *err)
{
	if (err == NULL || err->code == 0)
		return;
	if (err->provider[0] == '\0')
		snprintf(err->provider, sizeof(err->provider), "%s", p->name);
	if (err->step[0] == '\0')
		snprintf(err->step, sizeof(err->step), "%s", step);
}

static int
finish(struct rk_provider *p, const char *step, int64_t t0, int r, struct rk_error *err)
{
	char ms[24];

	tag(p, step, err);
	if (rk_log_enabled(RK_LOG_DEBUG)) {
		snprintf(ms, sizeof(ms), "%lld", (long long)(rk_mono_ms() - t0));
		rk_log(RK_LOG_DEBUG, "provider.call", "provider", p->name, "step", step,
		       "duration_ms", ms, "result", r == 0 ? "ok" : rk_strerror(r), NULL);
	}
	return r;
}

static int
unsupported(struct rk_provider *p, const char *step, struct rk_error *err)
{
	int r = rk_error_set(err, RK_EUNSUPPORTED, "provider '%s' (type %s) cannot %s", p->name,
			     p->ops->type, step);
	tag(p, step, err);
	return r;
}

/* Not started at all when rekey is stopping or the call is already out of time. */
static int
admit(struct rk_provider *p, const struct rk_call *call, const char *step, struct rk_error *err)
{
	int r = 0;

	if (rk_call_cancelled(call))
		r = rk_error_set(err, RK_ECANCELED, "stopped before %s: rekey is shutting down", step);
	else if (rk_call_expired(call))
		r = rk_error_set(err, RK_ETRANSIENT, "deadline passed before %s", step);
	if (r < 0)
		tag(p, step, err);
	return r;
}

/* The provider's own locator; one parsed for another instance is a bug in the caller. */
static const void *
typed(const struct rk_provider *p, const struct rk_loc *loc)
{
	assert(loc != NULL && loc->prov == p);
	return loc->typed;
}

#define CALL(p, call, op, step, ...)                                              \
	do {                                                                      \
		int64_t t0_ = rk_mono_ms();                                       \
		int r_;                                                           \
		if ((p)->ops->op == NULL)                                         \
			return unsupported((p), (step), err);                     \
		if ((r_ = admit((p), (call), (step), err)) < 0)                   \
			return r_;                                                \
		return finish((p), (step), t0_, (p)->ops->op((p), (call), __VA_ARGS__), err); \
	} while (0)

int
rk_provider_open(struct rk_provider **out, const struct rk_provider_ops *ops,
		 const struct rk_provider_env *env, const json_t *cfg, struct rk_error *err)
{
	struct rk_provider *p = NULL;
	int r;

	if ((r = ops->open(&p, env, cfg, err)) < 0) {
		if (err->provider[0] == '\0')
			snprintf(err->provider, sizeof(err->provider), "%s", env->name);
		return r;
	}
	p->ops = ops;
	snprintf(p->name, sizeof(p->name), "%s", env->name);
	*out = p;
	return 0;
}

int
rk_provider_check_config(const struct rk_provider_ops *ops, const struct rk_provider_env *env,
			 const json_t *cfg, struct rk_error *err)
{
	int r;

	if (ops->check_config == NULL)
		return 0;
	if ((r = ops->check_config(env, cfg, err)) < 0 && err->provider[0] == '\0')
		snprintf(err->provider, sizeof(err->provider), "%s", env->name);
	return r;
}

unsigned
rk_provider_concurrency(const struct rk_provider *p)
{
	unsigned n = p->ops->concurrency ? p->ops->concurrency(p) : RK_PROVIDER_CONCURRENCY;

	return n > 0 ? n : 1;
}

unsigned
rk_provider_caps(const struct rk_provider *p)
{
	return p->ops->caps;
}

int
rk_loc_parse(struct rk_loc *out, const struct rk_provider *p, const json_t *json,
	     struct rk_error *err)
{
	void *t = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if (p->ops->parse_locator == NULL)
		r = rk_error_set(err, RK_EUNSUPPORTED, "provider '%s' (type %s) keeps no secrets",
				 p->name, p->ops->type);
	else
		r = p->ops->parse_locator(p, json, &t, err);
	if (r < 0) {
		tag(p, "locator", err);
		return r;
	}
	out->prov = p;
	out->json = json;
	out->typed = t;
	return 0;
}

void
rk_loc_free(struct rk_loc *loc)
{
	if (loc == NULL || loc->prov == NULL)
		return;
	if (loc->prov->ops->free_locator != NULL)
		loc->prov->ops->free_locator(loc->typed);
	memset(loc, 0, sizeof(*loc));
}

int
rk_provider_generates(const struct rk_provider *p, const struct rk_loc *loc)
{
	return p->ops->generates != NULL && p->ops->generates(typed(p, loc));
}

int
rk_provider_read(struct rk_provider *p, const struct rk_call *call, const struct rk_loc *loc,
		 struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	CALL(p, call, read, "read", typed(p, loc), out, ver, err);
}

int
rk_provider_read_version(struct rk_provider *p, const struct rk_call *call,
			 const struct rk_loc *loc, const struct rk_version *ver,
			 struct rk_secret **out, struct rk_error *err)
{
	CALL(p, call, read_version, "read_version", typed(p, loc), ver, out, err);
}

int
rk_provider_find_staged(struct rk_provider *p, const struct rk_call *call,
			const struct rk_loc *loc, const struct rk_stage_req *req,
			struct rk_version *ver, struct rk_error *err)
{
	CALL(p, call, find_staged, "find_staged", typed(p, loc), req, ver, err);
}

int
rk_provider_stage(struct rk_provider *p, const struct rk_call *call, const struct rk_loc *loc,
		  const struct rk_stage_req *req, struct rk_version *new_ver, struct rk_error *err)
{
	CALL(p, call, stage, "stage", typed(p, loc), req, new_ver, err);
}

int
rk_provider_promote(struct rk_provider *p, const struct rk_call *call, const struct rk_loc *loc,
		    const struct rk_version *new_ver, const struct rk_version *old_ver,
		    struct rk_error *err)
{
	CALL(p, call, promote, "promote", typed(p, loc), new_ver, old_ver, err);
}

int
rk_provider_tidy(struct rk_provider *p, const struct rk_call *call, const struct rk_loc *loc,
		 const struct rk_version *new_ver, struct rk_error *err)
{
	if (p->ops->tidy == NULL)
		return 0;	/* nothing to tidy there */
	CALL(p, call, tidy, "tidy", typed(p, loc), new_ver, err);
}

int
rk_provider_rollback(struct rk_provider *p, const struct rk_call *call, const struct rk_loc *loc,
		     const struct rk_version *to, const struct rk_stage_req *req,
		     struct rk_version *new_ver, struct rk_error *err)
{
	if (!(p->ops->caps & RK_CAP_VERSIONS))
		return unsupported(p, "rollback", err);
	CALL(p, call, rollback, "rollback", typed(p, loc), to, req, new_ver, err);
}

int
rk_provider_restart(struct rk_provider *p, const struct rk_call *call, const char *target,
		    const char *run_id, struct rk_error *err)
{
	if (!(p->ops->caps & RK_CAP_RESTART))
		return unsupported(p, "restart", err);
	CALL(p, call, restart, "restart", target, run_id, err);
}

int
rk_provider_wait_restarted(struct rk_provider *p, const struct rk_call *call, const char *target,
			   int64_t deadline_ms, struct rk_error *err)
{
	if (!(p->ops->caps & RK_CAP_RESTART))
		return unsupported(p, "wait", err);
	CALL(p, call, wait_restarted, "wait", target, rk_call_deadline(call, deadline_ms), err);
}

int
rk_provider_lease_acquire(struct rk_provider *p, const struct rk_call *call,
			  const struct rk_lease_spec *spec, char *holder, size_t n,
			  struct rk_error *err)
{
	if (!(p->ops->caps & RK_CAP_LEASE))
		return unsupported(p, "hold a lease", err);
	CALL(p, call, lease_acquire, "lease_acquire", spec, holder, n, err);
}

int
rk_provider_lease_renew(struct rk_provider *p, const struct rk_call *call,
			const struct rk_lease_spec *spec, struct rk_error *err)
{
	if (!(p->ops->caps & RK_CAP_LEASE))
		return unsupported(p, "hold a lease", err);
	CALL(p, call, lease_renew, "lease_renew", spec, err);
}

int
rk_provider_lease_release(struct rk_provider *p, const struct rk_call *call,
			  const struct rk_lease_spec *spec, struct rk_error *err)
{
	if (!(p->ops->caps & RK_CAP_LEASE))
		return unsupported(p, "hold a lease", err);
	CALL(p, call, lease_release, "lease_release", spec, err);
}

void
rk_provider_close(struct rk_provider *p)
{
	if (p != NULL)
		p->ops->close(p);
}
