/*
 * rekey serve: the daemon. The main thread is the scheduler and the only
 * one that runs rotations (one run at a time: scheduled ones, and those
 * the API queued); libmicrohttpd's threads answer HTTP and only read, apart
 * from queueing a job and its audit row. A signal thread turns SIGTERM,
 * SIGINT and SIGHUP into flags; an inotify thread wakes the scheduler when
 * the state DB changes (`rekey apply`, an emergency ending), so between
 * due times the daemon sleeps on a condition variable and makes no call.
 *
 * Locks: cfg_lock (rwlock) guards ctx->cfg, ctx->policies and the
 * providers: HTTP threads and runs read under it, a SIGHUP reload swaps
 * them under it as a writer. mu guards the job queue and the counters.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "rekey/audit.h"
#include "rekey/backup.h"
#include "rekey/cli.h"
#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/emergency.h"
#include "rekey/engine.h"
#include "rekey/ha.h"
#include "rekey/http.h"
#include "rekey/log.h"
#include "rekey/prom.h"
#include "rekey/server.h"
#include "rekey/status_page.h"
#include "rekey/store.h"
#include "rekey/util.h"

#ifndef REKEY_VERSION
#define REKEY_VERSION "0.13.0"
#endif

static const char usage[] =
	"usage: rekey serve [--once]\n\n"
	"The daemon: rotates what is due inside its window (with jitter), resumes\n"
	"unfinished runs at start, answers HTTP on server.listen (/healthz, /readyz,\n"
	"/metrics, /v1/..., the status page at /), takes scheduled backups, and with\n"
	"`ha` in rekey.yaml rotates only while it holds the leader lease.\n"
	"SIGHUP reloads rekey.yaml and the policies (a bad file keeps the old ones);\n"
	"SIGTERM or Ctrl-C finishes the steps in flight and exits 0.\n"
	"  --once   resume, rotate what is due now, and exit (no HTTP)\n";

#define JOBS_KEPT 64		/* finished API jobs remembered for GET /v1/runs/ID */
#define LOCK_RETRY_MS 2000	/* the state lock is held by a command: try again */
#define LOCK_GIVE_UP_S 600	/* an API job waits this long for the lock */
#define ROT_BUCKETS 10
#define BACKOFF_FIRST_MS 30000	/* a failed scheduled rotation waits this, doubling */
#define BACKOFF_MAX_MS 3600000

static const double rot_bounds[ROT_BUCKETS] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 };

enum job_kind { JOB_ROTATE, JOB_EMERGENCY, JOB_RESUME };

struct job {
	struct job *next;
	enum job_kind kind;
	char run_id[64];
	json_t *names;
	char *reason;
	char actor[192];
	int parallel, no_restart;
	const char *state;	/* "queued", "done", "not_started" */
	char error[512];
	int64_t queued_at;
};

struct rot_hist {
	char provider[64];
	uint64_t counts[ROT_BUCKETS + 1];
	double sum;
};

struct daemon {
	struct rk_ctx *ctx;
	struct rk_server *srv;
	pthread_rwlock_t cfg_lock;
	pthread_mutex_t mu;		/* everything below */
	pthread_cond_t cv;
	int stop, reload, dirty;
	struct job *queue, *queue_tail, *finished;
	size_t nfinished;
	int leader;
	int ha_configured;
	char running_run[64];		/* the run in flight, "" when none */
	char running_kind[16];
	unsigned running_total, running_done;
	json_t *rotations;		/* {provider: {result: count}} */
	json_t *backoff;		/* main thread: {secret: [failures, retry at (ms)]} */
	struct rot_hist hist[32];
	size_t nhist;
	int64_t last_run, last_success, last_backup;
	int audit_ok;
	int inotify_fd, wake_pipe[2];
};

/* ---- signals and wake-ups ---- */

static void
wake(struct daemon *d)
{
	pthread_cond_broadcast(&d->cv);
}

static void *
signal_thread(void *arg)
{
	struct daemon *d = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		pthread_mutex_lock(&d->mu);
		if (sig == SIGHUP) {
			d->reload = 1;
		} else {
			d->stop = 1;
			atomic_store(&d->ctx->stop, 1);
		}
		wake(d);
		pthread_mutex_unlock(&d->mu);
	}
	return NULL;
}

/* The state DB changed (another process wrote): the schedule may have. */
static void *
inotify_thread(void *arg)
{
	struct daemon *d = arg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pf[2] = { { .fd = d->inotify_fd, .events = POLLIN },
				{ .fd = d->wake_pipe[0], .events = POLLIN } };

	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		if (read(d->inotify_fd, buf, sizeof(buf)) <= 0)
			continue;
		pthread_mutex_lock(&d->mu);
		d->dirty = 1;
		wake(d);
		pthread_mutex_unlock(&d->mu);
	}
	return NULL;
}

/* Sleeps until at_ms (rk_mono_ms clock) or an event; returns with d->mu held. */
static void
sleep_until(struct daemon *d, int64_t at_ms)
{
	struct timespec ts;
	int64_t left = at_ms - rk_mono_ms();

	pthread_mutex_lock(&d->mu);
	if (d->stop || d->reload || d->dirty || d->queue != NULL || left <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += left / 1000;
	ts.tv_nsec += (left % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&d->cv, &d->mu, &ts);
}

/* ---- counters for /metrics ---- */

static void
count_report(struct daemon *d, const json_t *rep, int64_t now)
{
	const char *status = json_string_value(json_object_get(rep, "status"));
	const json_t *e;
	size_t i;

	pthread_mutex_lock(&d->mu);
	json_array_foreach(json_object_get(rep, "secrets"), i, e) {
		const char *prov = json_string_value(json_object_get(e, "provider"));
		const char *res = json_string_value(json_object_get(e, "result"));
		double sec = (double)json_integer_value(json_object_get(e, "duration_ms")) / 1000.0;
		json_t *pm;
		size_t h, b = 0;
		if (prov == NULL || res == NULL)
			continue;
		if ((pm = json_object_get(d->rotations, prov)) == NULL) {
			pm = json_object();
			json_object_set_new(d->rotations, prov, pm);
		}
		json_object_set_new(pm, res, json_integer(json_integer_value(json_object_get(pm, res)) + 1));
		for (h = 0; h < d->nhist && strcmp(d->hist[h].provider, prov) != 0; h++)
			;
		if (h == d->nhist) {
			if (d->nhist == RK_ARRAY_SIZE(d->hist))
				continue;
			snprintf(d->hist[d->nhist++].provider, sizeof(d->hist[0].provider), "%s", prov);
		}
		while (b < ROT_BUCKETS && sec > rot_bounds[b])
			b++;
		d->hist[h].counts[b]++;
		d->hist[h].sum += sec;
	}
	d->last_run = now;
	if (status != NULL && strcmp(status, "done") == 0)
		d->last_success = now;
	pthread_mutex_unlock(&d->mu);
}

/*
 * A secret whose rotation failed is not picked again at once (it is still
 * due): it waits 30 s, then 1 min, 2 min... up to 1 h, until one succeeds or
 * a person rotates it. Main thread only.
 */
static void
note_failures(struct daemon *d, const json_t *rep)
{
	int64_t now = rk_mono_ms();
	const json_t *e;
	size_t i;

	json_array_foreach(json_object_get(rep, "secrets"), i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *res = json_string_value(json_object_get(e, "result"));
		json_int_t n;
		int64_t wait;
		if (name == NULL || res == NULL)
			continue;
		if (strcmp(res, "failed") != 0 && strcmp(res, "rolled_back") != 0) {
			json_object_del(d->backoff, name);
			continue;
		}
		n = json_integer_value(json_array_get(json_object_get(d->backoff, name), 0)) + 1;
		wait = BACKOFF_FIRST_MS << (n > 8 ? 7 : n - 1);
		if (wait > BACKOFF_MAX_MS)
			wait = BACKOFF_MAX_MS;
		json_object_set_new(d->backoff, name, json_pack("[I, I]", n, (json_int_t)(now + wait)));
		rk_log(RK_LOG_WARN, "serve.backoff", "secret", name, "msg",
		       "the rotation failed; the scheduler tries it again later", NULL);
	}
}

static void
progress(void *arg, const char *secret, const char *result)
{
	struct daemon *d = arg;

	(void)secret;
	(void)result;
	pthread_mutex_lock(&d->mu);
	d->running_done++;
	pthread_mutex_unlock(&d->mu);
}

/* ---- running rotations (main thread only) ---- */

static void resume_unfinished(struct daemon *d);

/* What run_begin changed, for run_end to put back. */
struct run_scope {
	char actor[sizeof(((struct rk_ctx *)0)->actor)];
	const char *paused;	/* the run id holding the scheduler pause, or NULL */
};

/*
 * Every run of the daemon: under the state lock (RK_EBUSY while a command
 * holds it), acting as `actor`. run_end undoes it, and what run_show did.
 */
static int
run_begin(struct daemon *d, const char *actor, struct run_scope *rs, struct rk_error *err)
{
	struct rk_ctx *ctx = d->ctx;
	int r;

	if ((r = rk_state_lock(ctx->cfg->state_dir, &ctx->lock_fd, err)) < 0)
		return r;
	memcpy(rs->actor, ctx->actor, sizeof(rs->actor));
	snprintf(ctx->actor, sizeof(ctx->actor), "%s", actor);
	rs->paused = NULL;
	return 0;
}

/* The run is shown as running (status, the page); an emergency pauses the scheduler. */
static void
run_show(struct daemon *d, const char *run_id, const char *kind, unsigned total,
	 struct run_scope *rs)
{
	pthread_mutex_lock(&d->mu);
	snprintf(d->running_run, sizeof(d->running_run), "%s", run_id);
	snprintf(d->running_kind, sizeof(d->running_kind), "%s", kind);
	d->running_total = total;
	d->running_done = 0;
	pthread_mutex_unlock(&d->mu);
	if (strcmp(kind, "emergency") == 0) {
		rk_emergency_pause(d->ctx, run_id, 1);
		rs->paused = run_id;
	}
}

static void
run_end(struct daemon *d, const struct run_scope *rs)
{
	struct rk_ctx *ctx = d->ctx;

	if (rs->paused != NULL)
		rk_emergency_pause(ctx, rs->paused, 0);
	memcpy(ctx->actor, rs->actor, sizeof(rs->actor));
	pthread_mutex_lock(&d->mu);
	d->running_run[0] = '\0';
	d->running_kind[0] = '\0';
	pthread_mutex_unlock(&d->mu);
	rk_state_unlock(ctx->lock_fd);
	ctx->lock_fd = -1;
}

/*
 * One run under the state lock (a command running holds it: RK_EBUSY, try
 * again later). kind "rotate" or "emergency"; *rep is the caller's.
 */
static int
run_names(struct daemon *d, const json_t *names, const char *kind, const char *reason,
	  const char *actor, const char *run_id, int parallel, int no_restart, json_t **rep,
	  struct rk_error *err)
{
	struct rk_ctx *ctx = d->ctx;
	struct rk_rotate_opts ro = { .kind = kind, .reason = reason, .run_id = run_id,
				     .parallel = parallel ? parallel : ctx->cfg->scheduler.parallel,
				     .no_restart = no_restart,
				     .manual = strcmp(actor, "scheduler") != 0 };
	struct run_scope rs;
	int r;

	*rep = NULL;
	if ((r = run_begin(d, actor, &rs, err)) < 0)
		return r;
	if ((r = rk_engine_check_idle(ctx, names, err)) < 0) {
		/*
		 * We hold the state lock, so the run holding those secrets is one
		 * of a process that died: finish it first, then try again.
		 */
		run_end(d, &rs);
		resume_unfinished(d);
		return r;
	}
	run_show(d, run_id, kind, (unsigned)json_array_size(names), &rs);
	rk_engine_set_progress(progress, d);
	r = rk_engine_rotate(ctx, names, &ro, rep, err);
	rk_engine_set_progress(NULL, NULL);
	run_end(d, &rs);
	if (r == 0) {
		count_report(d, *rep, rk_now(ctx));
		note_failures(d, *rep);
		rk_log(RK_LOG_INFO, "serve.run", "run_id", run_id, "kind", kind, "result",
		       json_string_value(json_object_get(*rep, "status")), "actor", actor, NULL);
	}
	return r;
}

/* Unfinished runs of a crash or a stop: finished first, before anything new. */
static void
resume_unfinished(struct daemon *d)
{
	struct rk_error err = { 0 };
	struct rk_ctx *ctx = d->ctx;
	struct run_scope rs;
	json_t *reps = NULL, *e;
	size_t i;

	if (run_begin(d, "scheduler", &rs, &err) < 0) {
		rk_log_err(&err, "unfinished runs not resumed yet");
		return;
	}
	if (rk_engine_resume(ctx, NULL, ctx->cfg->scheduler.parallel, &reps, &err) < 0) {
		rk_log_err(&err, "cannot resume the unfinished runs");
	} else {
		json_array_foreach(reps, i, e) {
			count_report(d, e, rk_now(ctx));
			rk_log(RK_LOG_INFO, "serve.resumed", "run_id",
			       json_string_value(json_object_get(e, "run_id")), "result",
			       json_string_value(json_object_get(e, "status")), NULL);
		}
	}
	run_end(d, &rs);
	json_decref(reps);
}

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	json_decref(j->names);
	free(j->reason);
	free(j);
}

/*
 * The queue's first job leaves it for the finished list (the oldest beyond
 * JOBS_KEPT goes), in one step: GET /v1/runs/ID always finds it somewhere.
 */
static void
job_finish(struct daemon *d, struct job *j, const char *state, const struct rk_error *err)
{
	pthread_mutex_lock(&d->mu);
	d->queue = j->next;
	if (d->queue == NULL)
		d->queue_tail = NULL;
	j->state = state;
	if (err != NULL && err->code != 0)
		snprintf(j->error, sizeof(j->error), "%s", err->msg);
	j->next = d->finished;
	d->finished = j;
	if (++d->nfinished > JOBS_KEPT) {
		struct job *p = d->finished;
		while (p->next != NULL && p->next->next != NULL)
			p = p->next;
		job_free(p->next);
		p->next = NULL;
		d->nfinished--;
	}
	pthread_mutex_unlock(&d->mu);
}

/* POST /v1/emergency {"resume": RUN}: finishes that run (as `rekey emergency --resume`). */
static int
resume_run(struct daemon *d, const struct job *j, json_t **rep, struct rk_error *err)
{
	struct run_scope rs;
	int r;

	*rep = NULL;
	if ((r = run_begin(d, j->actor, &rs, err)) < 0)
		return r;
	run_show(d, j->run_id, "emergency", 0, &rs);
	r = rk_engine_resume(d->ctx, j->run_id, j->parallel, rep, err);
	run_end(d, &rs);
	if (r == 0)
		count_report(d, *rep, rk_now(d->ctx));
	return r;
}

/* Runs the first queued job; 1 when it must wait for the state lock. */
static int
run_job(struct daemon *d)
{
	struct rk_error err = { 0 };
	struct job *j;
	json_t *rep = NULL;
	int r;

	/* It stays "queued" until its run is in the state DB (GET /v1/runs/ID reads that). */
	pthread_mutex_lock(&d->mu);
	j = d->queue;
	pthread_mutex_unlock(&d->mu);
	if (j == NULL)
		return 0;
	if (j->kind == JOB_RESUME)
		r = resume_run(d, j, &rep, &err);
	else
		r = run_names(d, j->names, j->kind == JOB_EMERGENCY ? "emergency" : "rotate",
			      j->reason, j->actor, j->run_id, j->parallel, j->no_restart, &rep, &err);
	if (r == RK_EBUSY && rk_now(d->ctx) - j->queued_at < LOCK_GIVE_UP_S)
		return 1;
	if (r < 0)
		rk_log_err(&err, "run %s did not start", j->run_id);
	job_finish(d, j, r < 0 ? "not_started" : "done", r < 0 ? &err : NULL);
	json_decref(rep);
	return 0;
}

/* A due secret waits up to the jitter (at most a tenth of its interval), the same each time. */
static int64_t
jitter_ms(const struct daemon *d, const json_t *e)
{
	int64_t max = d->ctx->cfg->scheduler.jitter_ms;
	int64_t last = json_integer_value(json_object_get(e, "last_rotated"));
	int64_t due = json_integer_value(json_object_get(e, "next_due"));
	const char *name = json_string_value(json_object_get(e, "name"));
	unsigned char h[8];
	uint64_t v = 0;
	char seed[300];

	if (last > 0 && due > last && (due - last) * 100 < max)
		max = (due - last) * 100;	/* ms: a tenth of the interval */
	if (max <= 0 || name == NULL)
		return 0;
	snprintf(seed, sizeof(seed), "%s@%lld", name, (long long)due);
	crypto_generichash(h, sizeof(h), (const unsigned char *)seed, strlen(seed), NULL, 0);
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return (int64_t)(v % (uint64_t)(max + 1));
}

/*
 * What is due now (picked by the engine's one rule, and past its jitter),
 * and when the next thing becomes due (*next_ms, wall clock ms; 0: nothing).
 */
static int
schedule(struct daemon *d, json_t **names, int64_t *next_ms, struct rk_error *err)
{
	struct rk_ctx *ctx = d->ctx;
	int64_t now_ms = rk_now_ms(ctx), now = now_ms / 1000, next = 0;
	json_t *plan = NULL, *e;
	size_t i;
	int r;

	*names = json_array();
	if (*names == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((r = rk_engine_plan(ctx, now, &plan, err)) < 0)
		return r;
	json_array_foreach(plan, i, e) {
		int64_t at, due_ms;
		const json_t *bo;
		if (json_is_true(json_object_get(e, "needs_attention")))
			continue;	/* waits for a person */
		bo = json_object_get(d->backoff, json_string_value(json_object_get(e, "name")));
		if (bo != NULL && json_integer_value(json_array_get(bo, 1)) > rk_mono_ms()) {
			/* failed lately: its retry time (mono) as wall time */
			at = now_ms + (json_integer_value(json_array_get(bo, 1)) - rk_mono_ms());
			if (next == 0 || at < next)
				next = at;
			continue;
		}
		due_ms = json_integer_value(json_object_get(e, "next_due")) * 1000 + jitter_ms(d, e);
		if (json_integer_value(json_object_get(e, "last_rotated")) == 0)
			due_ms = now_ms;	/* never rotated: due now */
		if (rk_engine_picks(e, 0) && now_ms >= due_ms) {
			json_array_append(*names, json_object_get(e, "name"));
			continue;
		}
		at = due_ms;
		if (now_ms >= due_ms && !json_is_true(json_object_get(e, "window_open")))
			at = json_integer_value(json_object_get(e, "next_window")) * 1000;
		if (at > now_ms && (next == 0 || at < next))
			next = at;
	}
	json_decref(plan);
	*next_ms = next;
	return 0;
}

/* ---- SIGHUP ---- */

static void
reload(struct daemon *d)
{
	struct rk_error err = { 0 };
	struct rk_ctx *ctx = d->ctx, tmp;
	struct rk_config *oc;

	rk_ctx_init(&tmp);
	tmp.config_path = ctx->config_path;
	if (rk_ctx_load_config(&tmp, &err) < 0) {
		rk_log_err(&err, "reload refused, still running on the configuration loaded before");
		rk_ctx_free_config(&tmp);
		return;
	}
	if (strcmp(tmp.cfg->state_dir, ctx->cfg->state_dir) != 0) {
		rk_log(RK_LOG_ERROR, "serve.reload", "result", "refused", "error",
		       "state_dir changed: that needs a restart; still running on the "
		       "configuration loaded before", NULL);
		rk_ctx_free_config(&tmp);
		return;
	}
	if (strcmp(tmp.cfg->server.listen, ctx->cfg->server.listen) != 0)
		rk_log(RK_LOG_WARN, "serve.reload", "msg",
		       "server.listen changed: the new address is used after a restart", NULL);
	pthread_rwlock_wrlock(&d->cfg_lock);
	rk_ctx_close_providers(ctx);
	oc = ctx->cfg;
	ctx->cfg = tmp.cfg;
	tmp.cfg = oc;
	{
		struct rk_policy_set *op = ctx->policies;
		struct rk_provider **pp = ctx->providers;
		ctx->policies = tmp.policies;
		ctx->providers = tmp.providers;
		tmp.policies = op;
		tmp.providers = pp;
	}
	pthread_rwlock_unlock(&d->cfg_lock);
	rk_ctx_free_config(&tmp);
	rk_log(RK_LOG_INFO, "serve.reload", "result", "ok", "msg",
	       "configuration and policies reloaded", NULL);
}

/* ---- HTTP (MHD threads; under cfg_lock as readers) ---- */

static void
reply_json(struct rk_server_resp *resp, int status, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;

	if (text == NULL) {
		rk_server_reply(resp, 500, NULL, "{\"error\": \"out of memory\"}");
	} else {
		free(resp->body);
		resp->status = status;
		resp->body = text;
		resp->len = strlen(text);
	}
	json_decref(j);
}

static void
reply_error(struct rk_server_resp *resp, int status, const char *msg)
{
	reply_json(resp, status, json_pack("{s:s}", "error", msg));
}

static int
http_status_of(int code)
{
	switch (code) {
	case RK_ENOTFOUND: return 404;
	case RK_EINVAL: return 400;
	case RK_EBUSY: return 409;
	default: return 500;
	}
}


/* The daemon's own state, for /v1/status, /readyz and the page. */
static json_t *
daemon_json(struct daemon *d)
{
	char paused[64] = "";
	struct rk_error err = { 0 };
	json_int_t queued = 0;
	json_t *j;

	if (rk_store_lock_get(d->ctx->store, "scheduler", paused, sizeof(paused), &err) < 0)
		paused[0] = '\0';

	pthread_mutex_lock(&d->mu);
	for (struct job *p = d->queue; p != NULL; p = p->next)
		queued++;
	j = json_pack("{s:b, s:b, s:s, s:I, s:I, s:I, s:I, s:b}", "leader", d->leader, "ha",
		      d->ha_configured, "scheduler_paused_by", paused, "last_run_at",
		      (json_int_t)d->last_run, "last_success_at", (json_int_t)d->last_success,
		      "last_backup_at", (json_int_t)d->last_backup, "queued",
		      queued, "audit_chain_ok", d->audit_ok);
	if (j != NULL && d->running_run[0]) {
		json_object_set_new(j, "running",
				    json_pack("{s:s, s:s, s:I, s:I}", "run_id", d->running_run,
					      "kind", d->running_kind, "total",
					      (json_int_t)d->running_total, "done",
					      (json_int_t)d->running_done));
	}
	pthread_mutex_unlock(&d->mu);
	return j;
}

/* Runs unfinished in the state DB (another process's emergency too), with their counts. */
static json_t *
unfinished_runs(struct daemon *d)
{
	struct rk_error err = { 0 };
	json_t *rows = NULL, *out = json_array(), *e;
	size_t i;

	if (out == NULL || rk_store_run_list(d->ctx->store, 1, &rows, &err) < 0)
		return out;
	json_array_foreach(rows, i, e)
		if (strcmp(json_string_value(json_object_get(e, "status")), "running") == 0)
			json_array_append(out, e);
	json_decref(rows);
	return out;
}

static json_t *
status_json(struct daemon *d, struct rk_error *err)
{
	json_t *plan = NULL, *counts, *e, *j;
	size_t i;

	if (rk_engine_plan(d->ctx, rk_now(d->ctx), &plan, err) < 0)
		return NULL;
	counts = json_pack("{s:i, s:i, s:i, s:i, s:i}", "ok", 0, "due", 0, "overdue", 0,
			   "expired", 0, "needs_attention", 0);
	json_array_foreach(plan, i, e) {
		const char *w = rk_engine_state(e);
		json_object_set_new(e, "state", json_string(w));
		json_object_set_new(counts, w,
				    json_integer(json_integer_value(json_object_get(counts, w)) + 1));
	}
	j = json_pack("{s:I, s:o, s:o, s:o, s:o}", "now", (json_int_t)rk_now(d->ctx), "daemon",
		      daemon_json(d), "counts", counts, "secrets", plan, "unfinished_runs",
		      unfinished_runs(d));
	return j;
}

static void
metrics_http(void *arg, const char *provider, const struct rk_http_stats *st)
{
	json_t *acc = arg, *pe = json_object_get(acc, provider);
	char code[8];

	if (pe == NULL) {
		pe = json_pack("{s:{}, s:[], s:f, s:I, s:I}", "codes", "lat", "sum", 0.0, "retries",
			       (json_int_t)0, "open", (json_int_t)0);
		for (int b = 0; b <= RK_HTTP_LAT_BUCKETS; b++)
			json_array_append_new(json_object_get(pe, "lat"), json_integer(0));
		json_object_set_new(acc, provider, pe);
	}
	for (int c = 0; c < 600; c++) {
		json_t *codes = json_object_get(pe, "codes");
		if (st->by_status[c] == 0)
			continue;
		if (c == 0)
			snprintf(code, sizeof(code), "error");
		else
			snprintf(code, sizeof(code), "%d", c);
		json_object_set_new(codes, code,
				    json_integer(json_integer_value(json_object_get(codes, code)) +
						 (json_int_t)st->by_status[c]));
	}
	for (int b = 0; b <= RK_HTTP_LAT_BUCKETS; b++) {
		json_t *lat = json_object_get(pe, "lat");
		json_array_set_new(lat, (size_t)b,
				   json_integer(json_integer_value(json_array_get(lat, (size_t)b)) +
						(json_int_t)st->lat_count[b]));
	}
	json_object_set_new(pe, "sum", json_real(json_real_value(json_object_get(pe, "sum")) +
						  st->lat_sum_s));
	json_object_set_new(pe, "retries",
			    json_integer(json_integer_value(json_object_get(pe, "retries")) +
					 (json_int_t)st->retries));
	if (st->circuit_open)
		json_object_set_new(pe, "open", json_integer(1));
}

static void
metrics_providers(struct daemon *d, struct rk_prom *p, json_t *acc)
{
	const char *name;
	json_t *pe, *v;
	const char *code;

	rk_prom_family(p, "rekey_provider_requests_total", "counter",
		       "HTTP requests to a provider by status code (error: no response).");
	json_object_foreach(acc, name, pe)
		json_object_foreach(json_object_get(pe, "codes"), code, v)
			rk_prom_sample(p, "rekey_provider_requests_total", (double)json_integer_value(v),
				       "provider", name, "code", code, NULL);
	rk_prom_family(p, "rekey_provider_request_duration_seconds", "histogram",
		       "Latency of each HTTP attempt to a provider.");
	json_object_foreach(acc, name, pe) {
		uint64_t c[RK_HTTP_LAT_BUCKETS + 1];
		for (int b = 0; b <= RK_HTTP_LAT_BUCKETS; b++)
			c[b] = (uint64_t)json_integer_value(json_array_get(json_object_get(pe, "lat"),
									   (size_t)b));
		rk_prom_histogram(p, "rekey_provider_request_duration_seconds", "provider", name,
				  rk_http_lat_bounds, c, RK_HTTP_LAT_BUCKETS,
				  json_real_value(json_object_get(pe, "sum")));
	}
	rk_prom_family(p, "rekey_provider_retries_total", "counter",
		       "HTTP requests to a provider sent again after a retryable failure.");
	json_object_foreach(acc, name, pe)
		rk_prom_sample(p, "rekey_provider_retries_total",
			       (double)json_integer_value(json_object_get(pe, "retries")), "provider",
			       name, NULL);
	/* Every configured provider, 0 when it has made no request yet. */
	rk_prom_family(p, "rekey_provider_circuit_open", "gauge",
		       "1 while the provider's circuit breaker is open or half-open.");
	for (size_t i = 0; i < d->ctx->cfg->nproviders; i++) {
		const char *pn = d->ctx->cfg->providers[i].name;
		pe = json_object_get(acc, pn);
		rk_prom_sample(p, "rekey_provider_circuit_open",
			       pe ? (double)json_integer_value(json_object_get(pe, "open")) : 0.0,
			       "provider", pn, NULL);
	}
}

static char *
metrics_text(struct daemon *d, struct rk_server *srv, size_t *len, struct rk_error *err)
{
	struct rk_prom *p = rk_prom_new();
	struct rk_server_stats ss;
	json_t *plan = NULL, *e, *acc = json_object(), *pm, *v;
	const char *prov, *res;
	int64_t now = rk_now(d->ctx);
	size_t i;
	double n_ok = 0, n_due = 0, n_over = 0, n_exp = 0, n_att = 0;
	char paused[64] = "";
	char *out;

	if (p == NULL || acc == NULL) {
		rk_prom_finish(p, len);
		json_decref(acc);
		rk_error_set(err, RK_ENOMEM, "out of memory");
		return NULL;
	}
	if (rk_engine_plan(d->ctx, now, &plan, err) < 0) {
		rk_prom_finish(p, len);
		json_decref(acc);
		return NULL;
	}
	rk_prom_family(p, "rekey_build_info", "gauge", "rekey's version.");
	rk_prom_sample(p, "rekey_build_info", 1, "version", REKEY_VERSION, NULL);
	json_array_foreach(plan, i, e) {
		const char *w = rk_engine_state(e);
		n_ok += strcmp(w, "ok") == 0;
		n_due += strcmp(w, "due") == 0;
		n_over += strcmp(w, "overdue") == 0;
		n_exp += strcmp(w, "expired") == 0;
		n_att += strcmp(w, "needs_attention") == 0;
	}
	rk_prom_family(p, "rekey_secrets", "gauge", "Secrets in the inventory by state.");
	rk_prom_sample(p, "rekey_secrets", n_ok, "state", "ok", NULL);
	rk_prom_sample(p, "rekey_secrets", n_due, "state", "due", NULL);
	rk_prom_sample(p, "rekey_secrets", n_over, "state", "overdue", NULL);
	rk_prom_sample(p, "rekey_secrets", n_exp, "state", "expired", NULL);
	rk_prom_sample(p, "rekey_secrets", n_att, "state", "needs_attention", NULL);
	rk_prom_family(p, "rekey_secret_age_seconds", "gauge",
		       "Seconds since the secret's last rotation (since it was added if never).");
	json_array_foreach(plan, i, e) {
		int64_t last = json_integer_value(json_object_get(e, "last_rotated"));
		rk_prom_sample(p, "rekey_secret_age_seconds", last ? (double)(now - last) : 0.0,
			       "name", json_string_value(json_object_get(e, "name")), "provider",
			       json_string_value(json_object_get(e, "provider")), NULL);
	}
	rk_prom_family(p, "rekey_secret_overdue", "gauge",
		       "1 when the secret is past rotate_every (overdue or expired).");
	json_array_foreach(plan, i, e)
		rk_prom_sample(p, "rekey_secret_overdue",
			       json_is_true(json_object_get(e, "overdue")) ||
					       json_is_true(json_object_get(e, "expired"))
				       ? 1.0
				       : 0.0,
			       "name", json_string_value(json_object_get(e, "name")), "provider",
			       json_string_value(json_object_get(e, "provider")), NULL);
	json_decref(plan);
	if (rk_store_lock_get(d->ctx->store, "scheduler", paused, sizeof(paused), err) < 0)
		paused[0] = '\0';
	pthread_mutex_lock(&d->mu);
	rk_prom_family(p, "rekey_rotations_total", "counter",
		       "Rotations this daemon ran, by provider and result.");
	json_object_foreach(d->rotations, prov, pm)
		json_object_foreach(pm, res, v)
			rk_prom_sample(p, "rekey_rotations_total", (double)json_integer_value(v),
				       "provider", prov, "result", res, NULL);
	rk_prom_family(p, "rekey_rotation_duration_seconds", "histogram",
		       "Time from a rotation's start to its end, by provider.");
	for (i = 0; i < d->nhist; i++)
		rk_prom_histogram(p, "rekey_rotation_duration_seconds", "provider",
				  d->hist[i].provider, rot_bounds, d->hist[i].counts, ROT_BUCKETS,
				  d->hist[i].sum);
	rk_prom_family(p, "rekey_leader", "gauge",
		       "1 while this replica may rotate (holds the lease, or no HA).");
	rk_prom_sample(p, "rekey_leader", d->leader, NULL);
	rk_prom_family(p, "rekey_emergency_active", "gauge", "1 while an emergency run is running.");
	rk_prom_sample(p, "rekey_emergency_active",
		       paused[0] != '\0' || strcmp(d->running_kind, "emergency") == 0 ? 1 : 0, NULL);
	rk_prom_family(p, "rekey_scheduler_paused", "gauge",
		       "1 while an emergency run pauses the scheduler.");
	rk_prom_sample(p, "rekey_scheduler_paused", paused[0] != '\0', NULL);
	rk_prom_family(p, "rekey_last_run_timestamp_seconds", "gauge",
		       "When this daemon's last run ended (any result).");
	rk_prom_sample(p, "rekey_last_run_timestamp_seconds", (double)d->last_run, NULL);
	rk_prom_family(p, "rekey_last_success_timestamp_seconds", "gauge",
		       "When this daemon's last run ended with every rotation done.");
	rk_prom_sample(p, "rekey_last_success_timestamp_seconds", (double)d->last_success, NULL);
	rk_prom_family(p, "rekey_last_backup_timestamp_seconds", "gauge",
		       "When the newest scheduled backup was written (0: never).");
	rk_prom_sample(p, "rekey_last_backup_timestamp_seconds", (double)d->last_backup, NULL);
	rk_prom_family(p, "rekey_audit_chain_ok", "gauge",
		       "1 when the audit chain verified at the last check.");
	rk_prom_sample(p, "rekey_audit_chain_ok", d->audit_ok, NULL);
	pthread_mutex_unlock(&d->mu);
	rk_http_foreach(metrics_http, acc);
	metrics_providers(d, p, acc);
	json_decref(acc);
	rk_server_stats(srv, &ss);
	rk_prom_family(p, "rekey_api_requests_total", "counter",
		       "Requests this daemon's HTTP server answered, by status code.");
	for (int c = 100; c < 600; c++) {
		char code[8];
		if (ss.requests_by_code[c] == 0)
			continue;
		snprintf(code, sizeof(code), "%d", c);
		rk_prom_sample(p, "rekey_api_requests_total", (double)ss.requests_by_code[c], "code",
			       code, NULL);
	}
	rk_prom_family(p, "rekey_api_unauthorized_total", "counter",
		       "Requests refused with 401 (no or a wrong token).");
	rk_prom_sample(p, "rekey_api_unauthorized_total", (double)ss.unauthorized, NULL);
	rk_prom_family(p, "rekey_api_rate_limited_total", "counter",
		       "Requests refused with 429 (the client's rate limit).");
	rk_prom_sample(p, "rekey_api_rate_limited_total", (double)ss.rate_limited, NULL);
	rk_prom_process(p);
	if ((out = rk_prom_finish(p, len)) == NULL)
		rk_error_set(err, RK_ENOMEM, "out of memory");
	return out;
}

static json_t *
job_json(const struct job *j)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "run_id", j->run_id, "status", j->state,
			 "kind", j->kind == JOB_ROTATE ? "rotate" : "emergency", "error", j->error,
			 "queued_at", (json_int_t)j->queued_at);
}

/*
 * A queued, starting (not in the state DB yet) or never-started API job of
 * that run id, as JSON; NULL when none.
 */
static json_t *
find_job(struct daemon *d, const char *run_id)
{
	json_t *j = NULL;

	pthread_mutex_lock(&d->mu);
	for (struct job *p = d->queue; p != NULL && j == NULL; p = p->next)
		if (strcmp(p->run_id, run_id) == 0)
			j = job_json(p);
	for (struct job *p = d->finished; p != NULL && j == NULL; p = p->next)
		if (strcmp(p->run_id, run_id) == 0 && strcmp(p->state, "not_started") == 0)
			j = job_json(p);
	pthread_mutex_unlock(&d->mu);
	return j;
}

static void
get_run(struct daemon *d, const char *id, struct rk_server_resp *resp)
{
	struct rk_error err = { 0 };
	json_t *run = NULL, *steps = NULL, *deps = NULL, *job;

	if (rk_store_run_get(d->ctx->store, id, &run, &err) < 0) {
		if (err.code == RK_ENOTFOUND && (job = find_job(d, id)) != NULL)
			reply_json(resp, 200, job);
		else
			reply_error(resp, http_status_of(err.code), err.msg);
		return;
	}
	if (rk_store_steps(d->ctx->store, id, NULL, &steps, &err) < 0 ||
	    rk_store_dep_list(d->ctx->store, id, &deps, &err) < 0) {
		json_decref(run);
		json_decref(steps);
		reply_error(resp, 500, err.msg);
		return;
	}
	json_object_set_new(run, "steps", steps);
	json_object_set_new(run, "dependents", deps);
	reply_json(resp, 200, run);
}

static void
get_secret(struct daemon *d, const char *name, struct rk_server_resp *resp)
{
	struct rk_error err = { 0 };
	json_t *row = NULL, *plan = NULL, *e;
	size_t i;

	if (rk_store_secret_get(d->ctx->store, name, &row, &err) < 0) {
		reply_error(resp, http_status_of(err.code), err.msg);
		return;
	}
	if (rk_engine_plan(d->ctx, rk_now(d->ctx), &plan, &err) == 0) {
		json_array_foreach(plan, i, e)
			if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0) {
				json_object_set(row, "schedule", e);
				json_object_set_new(row, "state", json_string(rk_engine_state(e)));
			}
		json_decref(plan);
	}
	reply_json(resp, 200, row);	/* metadata only: the store keeps no value in a row */
}

/* Queues a job (the caller made j); answers 202 with its run id. */
static void
queue_job(struct daemon *d, struct job *j, const struct rk_server_req *req,
	  struct rk_server_resp *resp)
{
	struct rk_error err = { 0 };
	json_t *detail;

	if (j->run_id[0] == '\0')
		rk_new_run_id(j->run_id, sizeof(j->run_id), rk_now(d->ctx));
	snprintf(j->actor, sizeof(j->actor), "api:%s@%s", req->token_name, req->client);
	j->state = "queued";
	j->queued_at = rk_now(d->ctx);
	detail = json_pack("{s:s, s:O, s:s, s:s}", "run_id", j->run_id, "secrets",
			   j->names ? j->names : json_null(),
			   "reason", j->reason ? j->reason : "", "client", req->client);
	if (rk_audit_as(d->ctx, j->actor,
			j->kind == JOB_ROTATE ? "api.rotate"
			: j->kind == JOB_RESUME ? "api.emergency_resume" : "api.emergency",
			j->kind == JOB_ROTATE ? json_string_value(json_array_get(j->names, 0))
					      : j->run_id,
			detail, &err) < 0) {
		json_decref(detail);
		job_free(j);
		reply_error(resp, 500, err.msg);
		return;
	}
	json_decref(detail);
	pthread_mutex_lock(&d->mu);
	if (d->queue_tail != NULL)
		d->queue_tail->next = j;
	else
		d->queue = j;
	d->queue_tail = j;
	wake(d);
	reply_json(resp, 202, json_pack("{s:s, s:s, s:s, s:b}", "run_id", j->run_id, "status",
					"queued", "follow", "GET /v1/runs/{run_id}", "leader",
					d->leader));
	pthread_mutex_unlock(&d->mu);
}

static int
is_leader(struct daemon *d)
{
	int l;

	pthread_mutex_lock(&d->mu);
	l = d->leader;
	pthread_mutex_unlock(&d->mu);
	return l;
}

static void
post_rotate(struct daemon *d, const char *name, const struct rk_server_req *req,
	    struct rk_server_resp *resp)
{
	struct rk_error err = { 0 };
	json_t *row = NULL, *body = NULL;
	struct job *j;

	if (!is_leader(d)) {
		reply_error(resp, 503, "this replica does not hold the leader lease: ask the leader");
		return;
	}
	if (rk_store_secret_get(d->ctx->store, name, &row, &err) < 0) {
		reply_error(resp, http_status_of(err.code), err.msg);
		return;
	}
	json_decref(row);
	if (req->body_len > 0 && ((body = json_loads(req->body, 0, NULL)) == NULL ||
				  !json_is_object(body))) {
		json_decref(body);
		reply_error(resp, 400, "the body must be a JSON object like {\"reason\": \"...\"}");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->names = json_pack("[s]", name)) == NULL) {
		job_free(j);
		json_decref(body);
		reply_error(resp, 500, "out of memory");
		return;
	}
	j->kind = JOB_ROTATE;
	j->no_restart = json_is_true(json_object_get(body, "no_restart"));
	if (json_string_value(json_object_get(body, "reason")) != NULL)
		j->reason = strdup(json_string_value(json_object_get(body, "reason")));
	json_decref(body);
	{
		json_t *one = json_pack("[s]", name);
		int busy = rk_engine_check_idle(d->ctx, one, &err) < 0;
		json_decref(one);
		if (busy) {
			job_free(j);
			reply_error(resp, 409, err.msg);
			return;
		}
	}
	queue_job(d, j, req, resp);
}

/* {"resume": RUN}: as `rekey emergency --resume RUN` (no scope or dry_run with it). */
static void
post_resume(struct daemon *d, const json_t *body, const struct rk_server_req *req,
	    struct rk_server_resp *resp)
{
	struct rk_error err = { 0 };
	const char *run = json_string_value(json_object_get(body, "resume"));
	json_t *row = NULL;
	struct job *j;

	if (run == NULL || json_object_get(body, "scope") || json_object_get(body, "dry_run")) {
		reply_error(resp, 400, "\"resume\" takes a run id, and no scope or dry_run");
		return;
	}
	if (rk_store_run_get(d->ctx->store, run, &row, &err) < 0) {
		reply_error(resp, http_status_of(err.code), err.msg);
		return;
	}
	json_decref(row);
	if (!is_leader(d)) {
		reply_error(resp, 503, "this replica does not hold the leader lease: ask the leader");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		reply_error(resp, 500, "out of memory");
		return;
	}
	j->kind = JOB_RESUME;
	snprintf(j->run_id, sizeof(j->run_id), "%s", run);
	j->parallel = (int)json_integer_value(json_object_get(body, "parallel"));
	queue_job(d, j, req, resp);
}

static void
post_emergency(struct daemon *d, const struct rk_server_req *req, struct rk_server_resp *resp)
{
	struct rk_error err = { 0 };
	struct rk_scope sc = { 0 };
	json_t *body = json_loads(req->body, 0, NULL), *scope, *plan = NULL, *names = NULL, *v;
	json_t *empty = NULL;	/* the scope when the body gives none: every secret */
	const char *reason;
	struct job *j;
	json_int_t par;
	size_t i;

	if (body == NULL || !json_is_object(body)) {
		json_decref(body);
		reply_error(resp, 400, "the body must be a JSON object: {\"reason\": \"...\", "
			    "\"scope\": [\"provider=vault\"], \"dry_run\": false}");
		return;
	}
	if (json_object_get(body, "resume") != NULL) {
		post_resume(d, body, req, resp);
		goto out;
	}
	reason = json_string_value(json_object_get(body, "reason"));
	scope = json_object_get(body, "scope");
	par = json_integer_value(json_object_get(body, "parallel"));
	if (reason == NULL || reason[0] == '\0') {
		reply_error(resp, 400, "\"reason\" is required: it goes into the run and the audit log");
		goto out;
	}
	if (scope != NULL && !json_is_array(scope)) {
		reply_error(resp, 400, "\"scope\" must be an array of selectors");
		goto out;
	}
	if (par < 0 || par > RK_PARALLEL_MAX) {
		reply_error(resp, 400, "\"parallel\" must be from 1 to 256");
		goto out;
	}
	json_array_foreach(scope, i, v) {
		if (!json_is_string(v) || rk_scope_add(&sc, json_string_value(v)) < 0) {
			reply_error(resp, 400, "bad scope selector: use provider=NAME, environment=ENV, "
				    "owner=OWNER, tier<=N or name=GLOB (at most 32)");
			goto out;
		}
	}
	if (scope == NULL && (scope = empty = json_array()) == NULL) {
		reply_error(resp, 500, "out of memory");
		goto out;
	}
	if (rk_emergency_plan(d->ctx, &sc, scope, reason, &plan, &names, &err) < 0) {
		reply_error(resp, http_status_of(err.code), err.msg);
		goto out;
	}
	if (json_is_true(json_object_get(body, "dry_run"))) {
		json_object_set_new(plan, "dry_run", json_true());
		reply_json(resp, 200, plan);
		plan = NULL;
		goto out;
	}
	if (!is_leader(d)) {
		reply_error(resp, 503, "this replica does not hold the leader lease: ask the leader");
		goto out;
	}
	if (rk_engine_check_idle(d->ctx, names, &err) < 0) {
		reply_error(resp, 409, err.msg);
		goto out;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->reason = strdup(reason)) == NULL) {
		free(j);
		reply_error(resp, 500, "out of memory");
		goto out;
	}
	j->kind = JOB_EMERGENCY;
	j->names = names;
	names = NULL;
	j->parallel = (int)par;
	j->no_restart = json_is_true(json_object_get(body, "no_restart"));
	queue_job(d, j, req, resp);
out:
	json_decref(empty);
	json_decref(plan);
	json_decref(names);
	json_decref(body);
}

static void
readyz(struct daemon *d, struct rk_server_resp *resp)
{
	struct rk_error err = { 0 };
	json_t *acc = json_object(), *circ = json_object(), *pe;
	const char *name;
	int db = rk_store_ping(d->ctx->store, &err) == 0, open = 0;

	rk_http_foreach(metrics_http, acc);
	json_object_foreach(acc, name, pe) {
		int o = json_integer_value(json_object_get(pe, "open")) != 0;
		json_object_set_new(circ, name, json_string(o ? "open" : "closed"));
		open |= o;
	}
	json_decref(acc);
	reply_json(resp, db && !open ? 200 : 503,
		   json_pack("{s:b, s:s, s:o, s:b, s:b}", "ready", db && !open, "state_db",
			     db ? "writable" : err.msg, "circuits", circ, "leader", is_leader(d),
			     "ha", d->ha_configured));
}

static void
handle(void *arg, const struct rk_server_req *req, struct rk_server_resp *resp)
{
	struct daemon *d = arg;
	struct rk_error err = { 0 };
	int get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
	const char *path = req->path;

	if (get && strcmp(path, "/healthz") == 0) {
		rk_server_reply(resp, 200, "text/plain; charset=utf-8", "ok\n");
		return;
	}
	pthread_rwlock_rdlock(&d->cfg_lock);
	if (get && strcmp(path, "/readyz") == 0) {
		readyz(d, resp);
	} else if (get && strcmp(path, "/metrics") == 0) {
		size_t len = 0;
		char *text = metrics_text(d, req->server, &len, &err);
		if (text == NULL) {
			reply_error(resp, 500, err.msg);
		} else {
			free(resp->body);
			resp->status = 200;
			resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
			resp->body = text;
			resp->len = len;
		}
	} else if (get && (strcmp(path, "/v1/status") == 0 || strcmp(path, "/") == 0)) {
		json_t *st = status_json(d, &err);
		if (st == NULL) {
			reply_error(resp, 500, err.msg);
		} else if (strcmp(path, "/") == 0) {
			char *html = rk_status_page(st);
			json_decref(st);
			if (html == NULL) {
				reply_error(resp, 500, "out of memory");
			} else {
				free(resp->body);
				resp->status = 200;
				resp->content_type = "text/html; charset=utf-8";
				resp->body = html;
				resp->len = strlen(html);
			}
		} else {
			reply_json(resp, 200, st);
		}
	} else if (get && strncmp(path, "/v1/secrets/", 12) == 0 && path[12]) {
		get_secret(d, path + 12, resp);
	} else if (get && strncmp(path, "/v1/runs/", 9) == 0 && path[9]) {
		get_run(d, path + 9, resp);
	} else if (post && strncmp(path, "/v1/rotate/", 11) == 0 && path[11]) {
		post_rotate(d, path + 11, req, resp);
	} else if (post && strcmp(path, "/v1/emergency") == 0) {
		post_emergency(d, req, resp);
	} else if (strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
		   strcmp(path, "/metrics") == 0 || strcmp(path, "/v1/status") == 0 ||
		   strncmp(path, "/v1/secrets/", 12) == 0 || strncmp(path, "/v1/runs/", 9) == 0 ||
		   strncmp(path, "/v1/rotate/", 11) == 0 || strcmp(path, "/v1/emergency") == 0) {
		reply_error(resp, 405, "method not allowed");
	} else {
		reply_error(resp, 404, "not found");
	}
	pthread_rwlock_unlock(&d->cfg_lock);
}

/* ---- periodic duties (main thread) ---- */

static void
verify_audit(struct daemon *d)
{
	struct rk_error err = { 0 };
	int64_t rows = 0;
	int ok = rk_audit_verify(d->ctx->store, d->ctx->keys, &rows, &err) == 0;

	if (!ok)
		rk_log_err(&err, "the audit chain does not verify");
	pthread_mutex_lock(&d->mu);
	d->audit_ok = ok;
	pthread_mutex_unlock(&d->mu);
}

static void
scheduled_backup(struct daemon *d)
{
	struct rk_error err = { 0 };
	char path[4096];

	if (rk_backup_scheduled(d->ctx, path, sizeof(path), &err) < 0) {
		rk_log_err(&err, "scheduled backup failed");
		return;
	}
	rk_log(RK_LOG_INFO, "serve.backup", "path", path, "result", "ok", NULL);
	pthread_mutex_lock(&d->mu);
	d->last_backup = rk_now(d->ctx);
	pthread_mutex_unlock(&d->mu);
}

/* HA: tries to become (or checks it still is) the leader; returns when to look again. */
static int64_t
leadership(struct daemon *d, struct rk_ha **ha)
{
	struct rk_error err = { 0 };
	struct rk_ctx *ctx = d->ctx;
	int64_t every = ctx->cfg->ha.duration_ms / 3;

	if (every > 2000)
		every = 2000;
	if (*ha != NULL && rk_ha_lost(*ha)) {
		rk_log(RK_LOG_WARN, "serve.leader", "result", "lost", NULL);
		rk_ha_release(*ha);
		*ha = NULL;
		pthread_mutex_lock(&d->mu);
		d->leader = 0;
		if (!d->stop)
			atomic_store(&ctx->stop, 0);	/* the lease's stop, not ours */
		pthread_mutex_unlock(&d->mu);
	}
	if (*ha == NULL) {
		if (rk_ha_acquire(ctx, 0, ha, &err) == 0) {
			rk_log(RK_LOG_INFO, "serve.leader", "result", "acquired", "holder",
			       rk_ha_identity(*ha), NULL);
			pthread_mutex_lock(&d->mu);
			d->leader = 1;
			pthread_mutex_unlock(&d->mu);
			resume_unfinished(d);
		} else if (err.code != RK_EBUSY) {
			rk_log_err(&err, "cannot take the leader lease");
		}
	}
	return rk_mono_ms() + every;
}

/* ---- the loop ---- */

/* When the next scheduled backup is due (wall ms; 0: none are scheduled). */
static int64_t
backup_due(struct daemon *d)
{
	const struct rk_config_backup *b = &d->ctx->cfg->backup;
	int64_t last;

	if (b->every_ms <= 0)
		return 0;
	pthread_mutex_lock(&d->mu);
	last = d->last_backup;
	pthread_mutex_unlock(&d->mu);
	return last ? last * 1000 + b->every_ms : rk_now_ms(d->ctx);
}

static int
serve_loop(struct daemon *d, int once)
{
	struct rk_ctx *ctx = d->ctx;
	struct rk_ha *ha = NULL;
	int64_t next_audit = 0, next_backup = 0, next_lease = 0, retry_at = 0;

	if (!d->ha_configured) {
		pthread_mutex_lock(&d->mu);
		d->leader = 1;
		pthread_mutex_unlock(&d->mu);
		resume_unfinished(d);
	}
	{
		int64_t last = rk_backup_last(ctx->cfg);
		pthread_mutex_lock(&d->mu);	/* the HTTP threads read it */
		d->last_backup = last;
		pthread_mutex_unlock(&d->mu);
	}
	next_backup = backup_due(d);
	for (;;) {
		struct rk_error err = { 0 };
		int64_t now_mono, wall_ms, next_due = 0, wake_at;
		json_t *names = NULL;
		int do_reload, busy = 0;

		pthread_mutex_lock(&d->mu);
		do_reload = d->reload;
		d->reload = 0;
		d->dirty = 0;
		if (d->stop) {
			pthread_mutex_unlock(&d->mu);
			break;
		}
		pthread_mutex_unlock(&d->mu);
		if (do_reload) {
			reload(d);
			next_backup = backup_due(d);	/* backup.every may have changed */
		}
		now_mono = rk_mono_ms();
		wall_ms = rk_now_ms(ctx);
		if (d->ha_configured && now_mono >= next_lease)
			next_lease = leadership(d, &ha);
		if (now_mono >= next_audit) {
			verify_audit(d);
			next_audit = now_mono + ctx->cfg->scheduler.audit_verify_ms;
		}
		if (next_backup && wall_ms >= next_backup && is_leader(d)) {
			scheduled_backup(d);
			next_backup = wall_ms + ctx->cfg->backup.every_ms;
		}
		if (is_leader(d)) {
			char paused[64] = "";
			busy = run_job(d);
			if (rk_store_lock_get(ctx->store, "scheduler", paused, sizeof(paused), &err) < 0) {
				rk_log_err(&err, "cannot read the scheduler lock");
				paused[0] = '\0';
			}
			pthread_rwlock_rdlock(&d->cfg_lock);
			if (paused[0] != '\0') {
				/*
				 * The emergency's end (a DB write) wakes us. But a
				 * `rekey emergency` killed mid-run never ends it: its run
				 * stays "running" and paused the scheduler for good. A
				 * command's run holds the state lock while it lives, so a
				 * lock we can take means a dead one: finish its run (as a
				 * start would), which lifts the pause. Looked at every
				 * LOCK_RETRY_MS (a death writes nothing to wake us).
				 */
				int fd = -1;
				if (now_mono >= retry_at) {
					if (rk_state_lock(ctx->cfg->state_dir, &fd, &err) == 0) {
						rk_state_unlock(fd);
						rk_log(RK_LOG_WARN, "serve.paused", "run_id", paused, "msg",
						       "the emergency pausing the scheduler is not "
						       "running (its command died): resuming it", NULL);
						resume_unfinished(d);
					}
					retry_at = rk_mono_ms() + LOCK_RETRY_MS;
				}
			} else if (schedule(d, &names, &next_due, &err) < 0) {
				rk_log_err(&err, "cannot compute the schedule");
				next_due = wall_ms + 60000;
			} else if (json_array_size(names) > 0 && !atomic_load(&ctx->stop) &&
				   now_mono >= retry_at) {
				char run_id[64];
				json_t *rep = NULL;
				rk_new_run_id(run_id, sizeof(run_id), rk_now(ctx));
				if (run_names(d, names, "rotate", "scheduled", "scheduler", run_id, 0, 0,
					      &rep, &err) < 0) {
					if (err.code == RK_EBUSY)
						rk_log(RK_LOG_INFO, "serve.wait", "msg",
						       "another rekey holds the state lock; trying "
						       "again shortly", NULL);
					else
						rk_log_err(&err, "scheduled run did not start");
					retry_at = rk_mono_ms() + LOCK_RETRY_MS;
				}
				json_decref(rep);
				json_decref(names);
				pthread_rwlock_unlock(&d->cfg_lock);
				if (once)
					break;
				continue;	/* rotations may have made something else due */
			}
			pthread_rwlock_unlock(&d->cfg_lock);
			json_decref(names);
		}
		if (once)
			break;
		/* Sleep until the earliest of: the next due time, the lock retry, duties. */
		wake_at = rk_mono_ms() + ctx->cfg->scheduler.max_sleep_ms;
		if (next_due) {
			int64_t w = rk_mono_ms() + (next_due - rk_now_ms(ctx));
			wake_at = w < wake_at ? w : wake_at;
		}
		if (busy || retry_at > rk_mono_ms())
			wake_at = wake_at < rk_mono_ms() + LOCK_RETRY_MS ? wake_at
									  : rk_mono_ms() + LOCK_RETRY_MS;
		if (next_audit < wake_at)
			wake_at = next_audit;
		if (next_backup) {
			int64_t w = rk_mono_ms() + (next_backup - rk_now_ms(ctx));
			wake_at = w < wake_at ? w : wake_at;
		}
		if (d->ha_configured && next_lease < wake_at)
			wake_at = next_lease;
		sleep_until(d, wake_at);
		pthread_mutex_unlock(&d->mu);
	}
	rk_ha_release(ha);
	return 0;
}

static int
start_inotify(struct daemon *d, pthread_t *th)
{
	if (pipe2(d->wake_pipe, O_CLOEXEC) < 0)
		return -1;
	d->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (d->inotify_fd < 0 ||
	    inotify_add_watch(d->inotify_fd, d->ctx->cfg->state_dir,
			      IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0)
		return -1;
	return pthread_create(th, NULL, inotify_thread, d) == 0 ? 0 : -1;
}

int
cmd_serve(struct rk_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rk_error err = { 0 };
	struct daemon d;
	pthread_t sig_th, ino_th;
	sigset_t set;
	int c, once = 0, rc, have_ino = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': once = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		default: return rk_cli_usage(usage, "bad arguments");
		}
	}
	if (optind != argc)
		return rk_cli_usage(usage, "serve takes no arguments");
	if ((c = rk_cli_open(ctx, 0)) != 0)
		return c;
	memset(&d, 0, sizeof(d));
	d.ctx = ctx;
	d.ha_configured = ctx->cfg->have_ha;
	d.inotify_fd = d.wake_pipe[0] = d.wake_pipe[1] = -1;
	d.audit_ok = 1;
	if ((d.rotations = json_object()) == NULL || (d.backoff = json_object()) == NULL) {
		rk_error_set(&err, RK_ENOMEM, "out of memory");
		return rk_cli_fail(&err, "cannot start");
	}
	pthread_rwlock_init(&d.cfg_lock, NULL);
	pthread_mutex_init(&d.mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&d.cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	/*
	 * Our stop signals, even when started in the background of a script
	 * (which ignores SIGINT); every thread made from here on leaves them
	 * and SIGHUP to the signal thread.
	 */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (pthread_create(&sig_th, NULL, signal_thread, &d) != 0) {
		rk_error_set(&err, RK_EINTERNAL, "cannot start the signal thread");
		rc = rk_cli_fail(&err, "cannot start");
		goto out;
	}
	pthread_detach(sig_th);
	if (!once) {
		if (rk_server_start(&d.srv, &ctx->cfg->server, handle, &d, &err) < 0) {
			rc = rk_cli_fail(&err, "cannot start the HTTP server");
			goto out;
		}
		if (start_inotify(&d, &ino_th) < 0) {
			rk_error_set(&err, RK_EIO, "cannot watch %s for changes: %s",
				     ctx->cfg->state_dir, strerror(errno));
			rc = rk_cli_fail(&err, "cannot start");
			goto out;
		}
		have_ino = 1;
		{
			char url[320], port[16];
			const char *l = ctx->cfg->server.listen;
			snprintf(port, sizeof(port), "%d", rk_server_port(d.srv));
			snprintf(url, sizeof(url), "%s://%.*s:%d", rk_server_scheme(d.srv),
				 (int)(strrchr(l, ':') - l), l, rk_server_port(d.srv));
			rk_log(RK_LOG_INFO, "serve.listening", "url", url, "port", port, "api",
			       "/v1/", "metrics", "/metrics", "token_file",
			       ctx->cfg->server.token_file, NULL);
		}
	}
	rc = serve_loop(&d, once);
	rk_log(RK_LOG_INFO, "serve.stopped", "result", "ok", NULL);
out:
	rk_server_stop(d.srv);
	if (have_ino) {
		if (write(d.wake_pipe[1], "x", 1) < 0) {
			/* the thread then stays in poll until exit: harmless */
		} else {
			pthread_join(ino_th, NULL);
		}
	}
	if (d.inotify_fd >= 0)
		close(d.inotify_fd);
	if (d.wake_pipe[0] >= 0) {
		close(d.wake_pipe[0]);
		close(d.wake_pipe[1]);
	}
	while (d.queue != NULL) {
		struct job *j = d.queue;
		d.queue = j->next;
		job_free(j);
	}
	while (d.finished != NULL) {
		struct job *j = d.finished;
		d.finished = j->next;
		job_free(j);
	}
	json_decref(d.rotations);
	json_decref(d.backoff);
	return rc;
}
