/*
 * The leader lease a one-shot command holds while it writes to providers
 * (see include/rekey/ha.h). It sits between the command and the provider's
 * lease operations: the command acquires before the first rotation starts
 * and releases on every way out; in between a thread of ours renews.
 *
 * Invariants: the renewal thread is the only caller of lease_renew; it stops
 * (quit under mu) before rk_ha_release releases, so renew and release never
 * overlap; once lost, the lease is never written again by this process.
 * Losing it sets ctx->stop, the flag SIGTERM sets, so the engine starts no
 * new provider write: a stale leader must not go on while another takes
 * over.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "rekey/config.h"
#include "rekey/ctx.h"
#include "rekey/ha.h"
#include "rekey/log.h"
#include "rekey/provider.h"
#include "rekey/util.h"

/* How often a waiting command asks again (client-go's RetryPeriod is 2 s; ours is a CLI). */
#define HA_POLL_MS 1000
/* How long the release at the end may take: the lease expires by itself anyway. */
#define HA_RELEASE_MS 10000

struct rk_ha {
	struct rk_ctx *ctx;
	struct rk_provider *p;		/* ctx's */
	struct rk_lease_spec spec;
	char identity[160];
	char where[320];		/* "ns/name" or "name", for logs */
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* on CLOCK_MONOTONIC */
	int quit;			/* under mu: the renewer ends */
	atomic_int cancel;		/* a renewal in flight returns at once */
	atomic_int lost;
	pthread_t thread;
	int have_thread, have_sync;
};

static void
ha_free(struct rk_ha *ha)
{
	if (ha == NULL)
		return;
	if (ha->have_sync) {
		pthread_cond_destroy(&ha->cv);
		pthread_mutex_destroy(&ha->mu);
	}
	free(ha);
}

static int
ha_new(struct rk_ctx *ctx, struct rk_ha **out, struct rk_error *err)
{
	const struct rk_config_ha *h = &ctx->cfg->ha;
	pthread_condattr_t ca;
	struct rk_ha *ha;
	char host[64] = "localhost";
	unsigned char rnd[4];
	char hex[9];

	if ((ha = calloc(1, sizeof(*ha))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	ha->ctx = ctx;
	atomic_init(&ha->cancel, 0);
	atomic_init(&ha->lost, 0);
	/* Unique per process, and readable by whoever finds it in the Lease. */
	gethostname(host, sizeof(host) - 1);
	randombytes_buf(rnd, sizeof(rnd));
	rk_hex(rnd, sizeof(rnd), hex);
	snprintf(ha->identity, sizeof(ha->identity), "%s_%ld_%s", host, (long)getpid(), hex);
	ha->spec.namespace_ = h->namespace_;
	ha->spec.name = h->name;
	ha->spec.identity = ha->identity;
	ha->spec.duration_ms = h->duration_ms;
	ha->spec.skew_ms = h->skew_ms;
	snprintf(ha->where, sizeof(ha->where), "%s%s%s", h->namespace_ ? h->namespace_ : "",
		 h->namespace_ ? "/" : "", h->name);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&ha->mu, NULL) != 0) {
		pthread_condattr_destroy(&ca);
		free(ha);
		return rk_error_set(err, RK_ENOMEM, "cannot make a mutex");
	}
	if (pthread_cond_init(&ha->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		pthread_mutex_destroy(&ha->mu);
		free(ha);
		return rk_error_set(err, RK_ENOMEM, "cannot make a condition variable");
	}
	pthread_condattr_destroy(&ca);
	ha->have_sync = 1;
	*out = ha;
	return 0;
}

static void
ha_log(const struct rk_ha *ha, enum rk_log_level level, const char *event, const char *error)
{
	rk_log(level, event, "provider", ha->p->name, "lease", ha->where, "identity", ha->identity,
	       "error", error, NULL);
}

/* Waits on mu until the monotonic time at_ms or quit; 1 when quit. */
static int
wait_until(struct rk_ha *ha, int64_t at_ms)
{
	struct timespec ts;

	while (!ha->quit && rk_mono_ms() < at_ms) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t left = at_ms - rk_mono_ms();
		if (left <= 0)
			break;
		ts.tv_sec += (time_t)(left / 1000);
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ha->cv, &ha->mu, &ts);
	}
	return ha->quit;
}

static void
lose(struct rk_ha *ha, const char *why)
{
	atomic_store(&ha->lost, 1);
	atomic_store(&ha->ctx->stop, 1);	/* no new provider write starts */
	rk_log(RK_LOG_ERROR, "lease.lost", "provider", ha->p->name, "lease", ha->where,
	       "identity", ha->identity, "error", why,
	       "msg", "stopping: no new provider write starts", NULL);
}

/*
 * Renews every duration/3 (+-10 %, so that several instances do not beat in
 * step); after a failed renewal, again after a ninth of the duration. Gives
 * the lease up as lost when renew says so or 2/3 of the duration passed
 * since the last success: by then another instance may judge it expired
 * (client-go's RenewDeadline).
 */
static void *
renewer(void *arg)
{
	struct rk_ha *ha = arg;
	int64_t period = ha->spec.duration_ms / 3, give_up = ha->spec.duration_ms * 2 / 3;
	int64_t last_ok = rk_mono_ms(), next = period;
	struct rk_error err;
	char why[sizeof(err.msg) + 64], failed[sizeof(err.msg)] = "";
	int r;

	pthread_mutex_lock(&ha->mu);
	for (;;) {
		next = next * 9 / 10 + (int64_t)randombytes_uniform((uint32_t)(next / 5 + 1));
		if (wait_until(ha, rk_mono_ms() + next))
			break;
		pthread_mutex_unlock(&ha->mu);
		{
			struct rk_call call = { .deadline_ms = last_ok + give_up,
						.cancel = &ha->cancel };
			memset(&err, 0, sizeof(err));
			r = rk_provider_lease_renew(ha->p, &call, &ha->spec, &err);
		}
		pthread_mutex_lock(&ha->mu);
		if (ha->quit)
			break;
		if (r == 0) {
			last_ok = rk_mono_ms();
			next = period;
			continue;
		}
		if (r == RK_EBUSY) {
			lose(ha, err.msg);
			break;
		}
		if (rk_mono_ms() - last_ok >= give_up) {
			snprintf(why, sizeof(why), "not renewed for %lld ms: %s", (long long)give_up,
				 failed[0] ? failed : err.msg);
			lose(ha, why);
			break;
		}
		snprintf(failed, sizeof(failed), "%s", err.msg);
		ha_log(ha, RK_LOG_WARN, "lease.renew", err.msg);
		next = ha->spec.duration_ms / 9;
	}
	pthread_mutex_unlock(&ha->mu);
	return NULL;
}

int
rk_ha_acquire(struct rk_ctx *ctx, int64_t wait_ms, struct rk_ha **out, struct rk_error *err)
{
	struct rk_ha *ha = NULL;
	struct rk_call call = { .cancel = &ctx->stop };
	struct rk_error e;
	char holder[160] = "";
	int64_t end = rk_mono_ms() + wait_ms, left;
	int r, tries = 0;

	*out = NULL;
	if (!ctx->cfg->have_ha)
		return 0;
	if ((r = ha_new(ctx, &ha, err)) < 0)
		return r;
	if ((r = rk_ctx_provider(ctx, ctx->cfg->ha.provider, &ha->p, err)) < 0)
		goto out;
	for (;;) {
		memset(&e, 0, sizeof(e));
		tries++;
		r = rk_provider_lease_acquire(ha->p, &call, &ha->spec, holder, sizeof(holder), &e);
		if (r != RK_EBUSY || (left = end - rk_mono_ms()) <= 0)
			break;
		if (rk_call_sleep(&call, left < HA_POLL_MS ? left : HA_POLL_MS) == RK_ECANCELED) {
			memset(&e, 0, sizeof(e));
			r = rk_error_set(&e, RK_ECANCELED,
					 "stopped while waiting for lease %s (held by \"%s\")",
					 ha->where, holder);
			break;
		}
	}
	if (r < 0) {
		if (err != NULL && err->code == 0)
			*err = e;
		if (r == RK_EBUSY && tries > 1) {
			char d[32];
			rk_format_duration(wait_ms / 1000, d, sizeof(d));
			rk_error_prefix(err, "after waiting %s: ", d);
		}
		goto out;
	}
	ha_log(ha, RK_LOG_INFO, "lease.acquired", NULL);
	if (pthread_create(&ha->thread, NULL, renewer, ha) != 0) {
		struct rk_call rc = { .deadline_ms = rk_mono_ms() + HA_RELEASE_MS };
		memset(&e, 0, sizeof(e));
		if (rk_provider_lease_release(ha->p, &rc, &ha->spec, &e) < 0)
			rk_log_err(&e, "cannot release lease %s, ignoring", ha->where);
		r = rk_error_set(err, RK_ENOMEM, "cannot start the thread that renews lease %s",
				 ha->where);
		goto out;
	}
	ha->have_thread = 1;
	*out = ha;
	ha = NULL;
	r = 0;
out:
	ha_free(ha);
	return r;
}

int
rk_ha_lost(const struct rk_ha *ha)
{
	return ha != NULL && atomic_load(&ha->lost);
}

const char *
rk_ha_identity(const struct rk_ha *ha)
{
	return ha != NULL ? ha->identity : NULL;
}

void
rk_ha_release(struct rk_ha *ha)
{
	struct rk_call call = { .deadline_ms = rk_mono_ms() + HA_RELEASE_MS };
	struct rk_error err = { 0 };

	if (ha == NULL)
		return;
	if (ha->have_thread) {
		pthread_mutex_lock(&ha->mu);
		ha->quit = 1;
		atomic_store(&ha->cancel, 1);
		pthread_cond_signal(&ha->cv);
		pthread_mutex_unlock(&ha->mu);
		pthread_join(ha->thread, NULL);
	}
	/* A lost lease is someone else's now: not ours to write. */
	if (!atomic_load(&ha->lost)) {
		if (rk_provider_lease_release(ha->p, &call, &ha->spec, &err) < 0)
			rk_log_err(&err, "cannot release lease %s (it expires by itself), ignoring",
				   ha->where);
		else
			ha_log(ha, RK_LOG_INFO, "lease.released", NULL);
	}
	ha_free(ha);
}
