/*
 * The rotation engine (src/engine.c) against a scripted fake provider, as
 * libgit2 tests its core against a fake ODB backend and SQLite against a
 * crash VFS.
 *
 * The fake keeps versions in memory shared with forked children
 * (MAP_SHARED), counts every call per operation, and can be scripted to fail
 * the Nth call of an operation before or after its effect ("the write landed
 * but the reply was lost"), or to _exit in the middle of it (a kill -9), so
 * that resume can be tested in the parent. Its capabilities are chosen per
 * test through one of several const ops tables: staging + versions (AWS,
 * local), versions only (Vault KV), nothing (a Kubernetes Secret), restart.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sqlite3.h>

#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/engine.h"
#include "rekey/log.h"
#include "rekey/policy.h"
#include "rekey/provider.h"
#include "rekey/store.h"
#include "rekey/util.h"
#include "unit.h"

#define NOW 1767312000LL	/* 2026-01-02T00:00:00Z */
#define DAY 86400LL

/* ---- the fake provider ---------------------------------------------------------- */

enum fop { OP_READ, OP_READ_VERSION, OP_FIND_STAGED, OP_STAGE, OP_PROMOTE, OP_ROLLBACK,
	   OP_RESTART, OP_WAIT, OP_N };

#define FAKE_SECRETS 24
#define FAKE_VERSIONS 16
#define FAKE_VALUE_MAX 512
#define FAKE_LOG 16

struct fake_version {
	char idem[64];			/* "" for versions written by someone else */
	size_t len;
	unsigned char val[FAKE_VALUE_MAX];
};

struct fake_secret {
	char path[128];
	int nver;
	int current;			/* 1-based; 0: does not exist */
	struct fake_version v[FAKE_VERSIONS];
};

struct fake_script {
	int active;
	enum fop op;
	int nth;			/* 1-based call number; 0: every call */
	int code;			/* returned error */
	int after;			/* 1: the effect happens, then the error */
	int exit_status;		/* non-zero: _exit(status) instead of returning */
};

struct fake_state {
	int calls[OP_N];
	int calls_unstoppable[OP_N];	/* made with no rk_call, or one without a stop flag */
	struct fake_script script[4];
	int corrupt_read_version;	/* read_version returns another value */
	int intrude_before_stage;	/* someone else writes just before our next N stages */
	char stage_idem[FAKE_LOG][64];
	int nstage_idem;
	char rollback_idem[FAKE_LOG][64];
	int nrollback_idem;
	char restarted[FAKE_LOG][128];
	int nrestarted;
	int stage_without_value;	/* stage calls that got req->value == NULL */
	struct fake_secret s[FAKE_SECRETS];
	/*
	 * Rotations run on worker threads (and forked children share this):
	 * every op runs under this robust, process-shared lock. stage_delay_ms
	 * (outside the lock) makes a stage slow, per instance name prefix
	 * "slow" only when slow_only is set; stage_inflight and
	 * stage_max_inflight count stages in flight at once, per instance.
	 */
	pthread_mutex_t mu;
	int stage_delay_ms;
	int slow_only;
	int stage_inflight[2], stage_max_inflight[2], stage_inflight_all, stage_max_all;
	char stage_order[FAKE_LOG][64];	/* paths, in the order their first stage began */
	int nstage_order;
};

/* Shared with forked children; set up by fx_files. */
static struct fake_state *FS;

struct fake {
	struct rk_provider base;
	struct fake_state *st;
};

static const struct fake_script *
hit(struct fake_state *st, enum fop op, const struct rk_call *call)
{
	int n = ++st->calls[op];

	if (call == NULL || call->cancel == NULL)
		st->calls_unstoppable[op]++;
	for (size_t i = 0; i < RK_ARRAY_SIZE(st->script); i++) {
		const struct fake_script *sc = &st->script[i];
		if (sc->active && sc->op == op && (sc->nth == 0 || sc->nth == n))
			return sc;
	}
	return NULL;
}

/* Before the effect: fail now if scripted so. */
static int
fail_before(const struct fake_script *sc, struct rk_error *err)
{
	if (sc == NULL || sc->after)
		return 0;
	if (sc->exit_status)
		_exit(sc->exit_status);
	return rk_error_set(err, sc->code, "fake: scripted failure");
}

/* After the effect: fail now if scripted so (the write landed, the reply is lost). */
static int
fail_after(const struct fake_script *sc, struct rk_error *err)
{
	if (sc == NULL || !sc->after)
		return 0;
	if (sc->exit_status)
		_exit(sc->exit_status);
	return rk_error_set(err, sc->code, "fake: scripted failure after the write landed");
}

static struct fake_secret *
fake_find(struct fake_state *st, const char *path, int create)
{
	for (int i = 0; i < FAKE_SECRETS; i++)
		if (st->s[i].path[0] && strcmp(st->s[i].path, path) == 0)
			return &st->s[i];
	if (!create)
		return NULL;
	for (int i = 0; i < FAKE_SECRETS; i++)
		if (st->s[i].path[0] == '\0') {
			snprintf(st->s[i].path, sizeof(st->s[i].path), "%s", path);
			return &st->s[i];
		}
	ck_abort_msg("fake: too many secrets");
	return NULL;
}

/* The fake's typed locator: the path, copied at parse. */
struct fake_loc {
	char path[128];
};

static int
fake_parse_locator(const struct rk_provider *p, const json_t *loc, void **out,
		   struct rk_error *err)
{
	const char *path = json_string_value(json_object_get(loc, "path"));
	struct fake_loc *fl;

	(void)p;
	if (path == NULL)
		return rk_error_set(err, RK_EINVAL, "fake: locator has no path");
	if ((fl = calloc(1, sizeof(*fl))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	snprintf(fl->path, sizeof(fl->path), "%s", path);
	*out = fl;
	return 0;
}

static void
fake_free_locator(void *loc)
{
	free(loc);
}

static struct fake_secret *
fake_loc(struct fake_state *st, const void *loc, int create)
{
	return fake_find(st, ((const struct fake_loc *)loc)->path, create);
}

static int
fake_append(struct fake_secret *s, const char *idem, const void *val, size_t len)
{
	struct fake_version *v;

	ck_assert_int_lt(s->nver, FAKE_VERSIONS);
	ck_assert_uint_le(len, FAKE_VALUE_MAX);
	v = &s->v[s->nver++];
	snprintf(v->idem, sizeof(v->idem), "%s", idem ? idem : "");
	memcpy(v->val, val, len);
	v->len = len;
	return s->nver;
}

static int
vnum(const struct rk_version *ver)
{
	long long n = 0;

	if (ver == NULL || ver->id[0] == '\0')
		return 0;
	if (rk_parse_int(ver->id, 1, FAKE_VERSIONS, &n) < 0)
		return -1;
	return (int)n;
}

static void
set_ver(struct rk_version *ver, int n)
{
	if (n == 0)
		ver->id[0] = '\0';
	else
		snprintf(ver->id, sizeof(ver->id), "%d", n);
}

static int
idem_match(const struct fake_secret *s, const char *idem)
{
	for (int i = 0; s && idem && i < s->nver; i++)
		if (s->v[i].idem[0] && strcmp(s->v[i].idem, idem) == 0)
			return i + 1;
	return 0;
}

static void
log_key(char (*log)[64], int *n, const char *key)
{
	if (*n < FAKE_LOG)
		snprintf(log[(*n)++], 64, "%s", key ? key : "");
}

static int
fake_open(struct rk_provider **out, const struct rk_provider_env *env, const json_t *cfg,
	  struct rk_error *err)
{
	struct fake *f = calloc(1, sizeof(*f));

	(void)env;
	(void)cfg;
	if (f == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	f->st = FS;
	*out = &f->base;
	return 0;
}

static void
fake_close(struct rk_provider *p)
{
	free(p);
}

static int
fake_read(struct rk_provider *p, const struct rk_call *call, const void *loc,
	  struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	struct fake_state *st = ((struct fake *)p)->st;
	const struct fake_script *sc = hit(st, OP_READ, call);
	struct fake_secret *s;
	int r;

	if ((r = fail_before(sc, err)) < 0)
		return r;
	s = fake_loc(st, loc, 0);
	if (s == NULL || s->current == 0)
		return rk_error_set(err, RK_ENOTFOUND, "fake: no such secret");
	if ((r = rk_secret_from(out, s->v[s->current - 1].val, s->v[s->current - 1].len, err)) < 0)
		return r;
	set_ver(ver, s->current);
	return fail_after(sc, err);
}

static int
fake_read_version(struct rk_provider *p, const struct rk_call *call, const void *loc,
		  const struct rk_version *ver, struct rk_secret **out, struct rk_error *err)
{
	struct fake_state *st = ((struct fake *)p)->st;
	const struct fake_script *sc = hit(st, OP_READ_VERSION, call);
	struct fake_secret *s;
	int n = vnum(ver), r;

	if ((r = fail_before(sc, err)) < 0)
		return r;
	s = fake_loc(st, loc, 0);
	if (s == NULL || n < 1 || n > s->nver)
		return rk_error_set(err, RK_ENOTFOUND, "fake: no version %s", ver ? ver->id : "");
	if ((r = rk_secret_from(out, s->v[n - 1].val, s->v[n - 1].len, err)) < 0)
		return r;
	if (st->corrupt_read_version && rk_secret_len(*out) > 0)
		rk_secret_data(*out)[0] ^= 0x01;
	return fail_after(sc, err);
}

static int
fake_find_staged(struct rk_provider *p, const struct rk_call *call, const void *loc,
		 const struct rk_stage_req *req, struct rk_version *ver, struct rk_error *err)
{
	struct fake_state *st = ((struct fake *)p)->st;
	const struct fake_script *sc = hit(st, OP_FIND_STAGED, call);
	struct fake_secret *s;
	int m, r;

	if ((r = fail_before(sc, err)) < 0)
		return r;
	s = fake_loc(st, loc, 0);
	if ((m = idem_match(s, req->idem_key)) != 0) {
		set_ver(ver, m);
		return fail_after(sc, err);
	}
	if ((s ? s->current : 0) != vnum(req->expected))
		return rk_error_set(err, RK_ECONFLICT, "fake: changed by someone else");
	return rk_error_set(err, RK_ENOTFOUND, "fake: nothing staged with this key");
}

static int
fake_stage(struct rk_provider *p, const struct rk_call *call, const void *loc,
	   const struct rk_stage_req *req, struct rk_version *nv, struct rk_error *err)
{
	struct fake_state *st = ((struct fake *)p)->st;
	const struct fake_script *sc = hit(st, OP_STAGE, call);
	struct fake_secret *s;
	int m, r;

	log_key(st->stage_idem, &st->nstage_idem, req->idem_key);
	if ((r = fail_before(sc, err)) < 0)
		return r;
	s = fake_loc(st, loc, 1);
	if (st->intrude_before_stage) {
		static const char other[] = "someone-else-wrote-this";
		st->intrude_before_stage--;
		s->current = fake_append(s, NULL, other, strlen(other));
	}
	if ((m = idem_match(s, req->idem_key)) != 0) {
		set_ver(nv, m);
		return fail_after(sc, err);
	}
	if (s->current != vnum(req->expected))
		return rk_error_set(err, RK_ECONFLICT, "fake: precondition failed");
	if (req->value == NULL) {
		/* A provider that makes the value itself (a Transit key version). */
		char made[64];
		int k = snprintf(made, sizeof(made), "provider-made-%d", s->nver + 1);
		st->stage_without_value++;
		m = fake_append(s, req->idem_key, made, (size_t)k);
	} else {
		m = fake_append(s, req->idem_key, rk_secret_cdata(req->value),
				rk_secret_len(req->value));
	}
	if (!(p->ops->caps & RK_CAP_STAGING))
		s->current = m;
	set_ver(nv, m);
	return fail_after(sc, err);
}

static int
fake_promote(struct rk_provider *p, const struct rk_call *call, const void *loc,
	     const struct rk_version *nv, const struct rk_version *ov, struct rk_error *err)
{
	struct fake_state *st = ((struct fake *)p)->st;
	const struct fake_script *sc = hit(st, OP_PROMOTE, call);
	struct fake_secret *s;
	int n = vnum(nv), r;

	if ((r = fail_before(sc, err)) < 0)
		return r;
	s = fake_loc(st, loc, 0);
	if (s == NULL || n < 1 || n > s->nver)
		return rk_error_set(err, RK_ENOTFOUND, "fake: no version to promote");
	if (s->current != n) {
		if (s->current != vnum(ov))
			return rk_error_set(err, RK_ECONFLICT, "fake: current changed");
		s->current = n;
	}
	return fail_after(sc, err);
}

static int
fake_rollback(struct rk_provider *p, const struct rk_call *call, const void *loc,
	      const struct rk_version *to, const struct rk_stage_req *req, struct rk_version *nv,
	      struct rk_error *err)
{
	struct fake_state *st = ((struct fake *)p)->st;
	const struct fake_script *sc = hit(st, OP_ROLLBACK, call);
	struct fake_secret *s;
	int n = vnum(to), m, r;

	log_key(st->rollback_idem, &st->nrollback_idem, req->idem_key);
	if ((r = fail_before(sc, err)) < 0)
		return r;
	s = fake_loc(st, loc, 0);
	if (s == NULL || n < 1 || n > s->nver)
		return rk_error_set(err, RK_ENOTFOUND, "fake: no version to roll back to");
	if ((m = idem_match(s, req->idem_key)) == 0)
		m = fake_append(s, req->idem_key, s->v[n - 1].val, s->v[n - 1].len);
	s->current = m;
	set_ver(nv, m);
	return fail_after(sc, err);
}

/* Locators under "transit/" are generated by the provider. */
static int
fake_generates(const void *loc)
{
	return strncmp(((const struct fake_loc *)loc)->path, "transit/", 8) == 0;
}

static int
fake_check_target(const char *target, struct rk_error *err)
{
	(void)target;
	(void)err;
	return 0;
}

static int
fake_restart(struct rk_provider *p, const struct rk_call *call, const char *target,
	     const char *run_id, struct rk_error *err)
{
	struct fake_state *st = ((struct fake *)p)->st;
	const struct fake_script *sc = hit(st, OP_RESTART, call);
	int r;

	(void)run_id;
	if ((r = fail_before(sc, err)) < 0)
		return r;
	if (st->nrestarted < FAKE_LOG)
		snprintf(st->restarted[st->nrestarted++], sizeof(st->restarted[0]), "%s", target);
	return fail_after(sc, err);
}

static int
fake_wait(struct rk_provider *p, const struct rk_call *call, const char *target,
	  int64_t deadline_ms, struct rk_error *err)
{
	struct fake_state *st = ((struct fake *)p)->st;
	const struct fake_script *sc = hit(st, OP_WAIT, call);
	int r;

	(void)target;
	ck_assert_int_gt(deadline_ms, rk_mono_ms());
	if ((r = fail_before(sc, err)) < 0)
		return r;
	return fail_after(sc, err);
}

static const struct rk_field fake_fields[] = {
	{ "type", RK_T_STRING, RK_F_REQUIRED },
	{ NULL, 0, 0 },
};

static const struct rk_field fake_loc_fields[] = {
	{ "path", RK_T_STRING, RK_F_REQUIRED },
	{ NULL, 0, 0 },
};

static void
fake_lock(void)
{
	if (pthread_mutex_lock(&FS->mu) == EOWNERDEAD)
		pthread_mutex_consistent(&FS->mu);	/* a forked child _exit()ed inside an op */
}

static void
fake_unlock(void)
{
	pthread_mutex_unlock(&FS->mu);
}

#define FAKE_LOCKED(name, params, args)                                                  \
	static int locked_##name params                                                  \
	{                                                                                \
		fake_lock();                                                             \
		int r_ = fake_##name args;                                               \
		fake_unlock();                                                           \
		return r_;                                                               \
	}
FAKE_LOCKED(read, (struct rk_provider *p, const struct rk_call *c, const void *l,
		   struct rk_secret **o, struct rk_version *v, struct rk_error *e), (p, c, l, o, v, e))
FAKE_LOCKED(read_version, (struct rk_provider *p, const struct rk_call *c, const void *l,
			   const struct rk_version *v, struct rk_secret **o, struct rk_error *e),
	    (p, c, l, v, o, e))
FAKE_LOCKED(find_staged, (struct rk_provider *p, const struct rk_call *c, const void *l,
			  const struct rk_stage_req *q, struct rk_version *v, struct rk_error *e),
	    (p, c, l, q, v, e))
FAKE_LOCKED(promote, (struct rk_provider *p, const struct rk_call *c, const void *l,
		      const struct rk_version *n, const struct rk_version *o, struct rk_error *e),
	    (p, c, l, n, o, e))
FAKE_LOCKED(rollback, (struct rk_provider *p, const struct rk_call *c, const void *l,
		       const struct rk_version *t, const struct rk_stage_req *q,
		       struct rk_version *n, struct rk_error *e), (p, c, l, t, q, n, e))
FAKE_LOCKED(restart, (struct rk_provider *p, const struct rk_call *c, const char *t,
		      const char *r, struct rk_error *e), (p, c, t, r, e))
FAKE_LOCKED(wait, (struct rk_provider *p, const struct rk_call *c, const char *t, int64_t d,
		   struct rk_error *e), (p, c, t, d, e))

/* Instance "local" takes 2 rotations at once, "slow" 3 (see the pool tests). */
static unsigned
fake_concurrency(const struct rk_provider *p)
{
	return strcmp(p->name, "slow") == 0 ? 3 : 2;
}

/* Stage, slowly when asked (outside the lock, so stages overlap), counting overlap. */
static int
locked_stage(struct rk_provider *p, const struct rk_call *c, const void *l,
	     const struct rk_stage_req *q, struct rk_version *v, struct rk_error *e)
{
	int k = strncmp(p->name, "slow", 4) == 0, slow, r;

	fake_lock();
	if (++FS->stage_inflight[k] > FS->stage_max_inflight[k])
		FS->stage_max_inflight[k] = FS->stage_inflight[k];
	if (++FS->stage_inflight_all > FS->stage_max_all)
		FS->stage_max_all = FS->stage_inflight_all;
	if (FS->nstage_order < FAKE_LOG)
		snprintf(FS->stage_order[FS->nstage_order++], 64, "%s", q->secret_name);
	slow = FS->stage_delay_ms > 0 && (!FS->slow_only || k);
	fake_unlock();
	if (slow)
		rk_sleep_ms(FS->stage_delay_ms);
	fake_lock();
	r = fake_stage(p, c, l, q, v, e);
	FS->stage_inflight[k]--;
	FS->stage_inflight_all--;
	fake_unlock();
	return r;
}

#define FAKE_OPS                                                                        \
	.type = "fake", .config_fields = fake_fields, .locator_fields = fake_loc_fields,   \
	.parse_locator = fake_parse_locator, .free_locator = fake_free_locator,          \
	.open = fake_open, .read = locked_read, .read_version = locked_read_version,     \
	.find_staged = locked_find_staged, .stage = locked_stage,                        \
	.promote = locked_promote, .rollback = locked_rollback,                          \
	.check_target = fake_check_target, .restart = locked_restart,                    \
	.wait_restarted = locked_wait, .close = fake_close, .concurrency = fake_concurrency

/* Staged versions are not current until promote (AWS, local). */
static const struct rk_provider_ops fake_staging = { FAKE_OPS,
						      .caps = RK_CAP_VERSIONS | RK_CAP_STAGING };
/* A write is current at once; old versions are kept (Vault KV v2). */
static const struct rk_provider_ops fake_versions = { FAKE_OPS, .caps = RK_CAP_VERSIONS };
/* A write is current at once; nothing is kept (a Kubernetes Secret). */
static const struct rk_provider_ops fake_plain = { FAKE_OPS, .caps = 0 };
/* Makes some values itself (a Vault Transit key). */
static const struct rk_provider_ops fake_generating = { FAKE_OPS, .caps = RK_CAP_VERSIONS,
							 .generates = fake_generates };
/* Staging, and can restart workloads. */
static const struct rk_provider_ops fake_restarting = {
	FAKE_OPS, .caps = RK_CAP_VERSIONS | RK_CAP_STAGING | RK_CAP_RESTART
};

static void
script(enum fop op, int nth, int code, int after, int exit_status)
{
	for (size_t i = 0; i < RK_ARRAY_SIZE(FS->script); i++) {
		struct fake_script *sc = &FS->script[i];
		if (sc->active)
			continue;
		sc->active = 1;
		sc->op = op;
		sc->nth = nth;
		sc->code = code;
		sc->after = after;
		sc->exit_status = exit_status;
		return;
	}
	ck_abort_msg("too many scripted failures");
}

static void
script_clear(void)
{
	memset(FS->script, 0, sizeof(FS->script));
}

/* A value someone put there before rekey managed the secret. */
static void
fake_seed(const char *path, const char *value)
{
	struct fake_secret *s = fake_find(FS, path, 1);

	s->current = fake_append(s, NULL, value, strlen(value));
}

static const struct fake_version *
fake_current(const char *path)
{
	const struct fake_secret *s = fake_find(FS, path, 0);

	ck_assert_ptr_nonnull(s);
	ck_assert_int_gt(s->current, 0);
	return &s->v[s->current - 1];
}

static int
fake_nversions(const char *path)
{
	const struct fake_secret *s = fake_find(FS, path, 0);

	return s ? s->nver : 0;
}

static void
assert_fake_current_is(const char *path, const char *value)
{
	const struct fake_version *v = fake_current(path);

	ck_assert_uint_eq(v->len, strlen(value));
	ck_assert_mem_eq(v->val, value, v->len);
}

/* ---- the fixture: a state dir, a config, the context with the fake installed ------ */

struct fx {
	char dir[64];
	char state[128];
	char cfg_path[128];
	struct rk_ctx ctx;
	int open;
};

/* Files only (nothing left open, so a forked child can open its own). */
static void
fx_files(struct fx *f)
{
	struct rk_store *st = NULL;
	struct rk_error err = { 0 };
	FILE *fp;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
	ck_assert_int_eq(mkdir(f->state, 0700), 0);
	snprintf(f->cfg_path, sizeof(f->cfg_path), "%s/rekey.yaml", f->dir);
	fp = fopen(f->cfg_path, "w");
	ck_assert_ptr_nonnull(fp);
	fprintf(fp, "state_dir: %s\nenvironment: test\n"
		"providers: {local: {type: local}, slow: {type: local}}\n", f->state);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_msg(rk_keys_create(f->state, &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_store_open(&st, f->state, 1, &err) == 0, "%s", err.msg);
	rk_store_close(st);

	FS = mmap(NULL, sizeof(*FS), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(FS, MAP_FAILED);
	memset(FS, 0, sizeof(*FS));
	{
		pthread_mutexattr_t ma;
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
		pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
		pthread_mutex_init(&FS->mu, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	rk_log_setup(RK_LOG_ERROR, RK_LOG_JSON);
}

/* Loads the config and the state as a command would, then puts the fake in place of `local`. */
static void
fx_open(struct fx *f, const struct rk_provider_ops *ops)
{
	struct rk_provider_env env;
	struct rk_error err = { 0 };

	rk_ctx_init(&f->ctx);
	f->ctx.config_path = f->cfg_path;
	f->ctx.fixed_now = NOW;
	ck_assert_msg(rk_ctx_load_config(&f->ctx, &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_ctx_open_state(&f->ctx, 0, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(f->ctx.cfg->providers[0].name, "local");
	f->ctx.cfg->providers[0].ops = ops;
	env.name = "local";
	env.state_dir = f->state;
	env.local_key = rk_keys_subkey(f->ctx.keys, "local");
	env.doc = f->ctx.cfg->doc;
	ck_assert_msg(rk_provider_open(&f->ctx.providers[0], ops, &env,
				       f->ctx.cfg->providers[0].cfg, &err) == 0, "%s", err.msg);
	/* A second instance of the fake, "slow", for the tests of the worker pool. */
	ck_assert_str_eq(f->ctx.cfg->providers[1].name, "slow");
	f->ctx.cfg->providers[1].ops = ops;
	env.name = "slow";
	ck_assert_msg(rk_provider_open(&f->ctx.providers[1], ops, &env,
				       f->ctx.cfg->providers[1].cfg, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(rk_provider_caps(f->ctx.providers[0]), ops->caps);
	f->open = 1;
}

static void
fx_close(struct fx *f)
{
	if (f->open)
		rk_ctx_cleanup(&f->ctx);
	f->open = 0;
}

static void
fx_done(struct fx *f)
{
	fx_close(f);
	rk_test_rm_rf(f->dir);
	munmap(FS, sizeof(*FS));
	FS = NULL;
}

/* Puts a secret in the inventory (the spec shape of src/inventory.c). */
static void
add_secret_deps(struct fx *f, const char *name, const char *path, const char *policy,
		json_t *deps, int64_t last_rotated)
{
	json_t *spec = json_pack("{s:s, s:s, s:{s:s}, s:s, s:s, s:s, s:i, s:I, s:o}", "name", name,
				 "provider", "local", "locator", "path", path, "policy", policy,
				 "environment", "test", "owner", "", "tier", 0, "last_rotated",
				 (json_int_t)last_rotated, "dependents",
				 deps ? deps : json_array());
	struct rk_error err = { 0 };

	ck_assert_ptr_nonnull(spec);
	ck_assert_msg(rk_store_secret_put(f->ctx.store, spec, NOW, &err) == 0, "%s", err.msg);
	json_decref(spec);
}

static void
add_secret(struct fx *f, const char *name, const char *path)
{
	add_secret_deps(f, name, path, "default", NULL, 0);
}

static json_t *
k8s_dep(const char *target)
{
	char key[200];

	snprintf(key, sizeof(key), "kubernetes:local/%s", target);
	return json_pack("{s:s, s:s, s:s, s:i, s:s}", "kind", "kubernetes", "provider", "local",
			 "target", target, "timeout_ms", 0, "key", key);
}

/* Rotates the NULL-terminated names in one run; returns the report. */
static json_t *
rotate_opts(struct fx *f, const char *const *names, int manual, int no_restart)
{
	json_t *arr = json_array(), *rep = NULL;
	struct rk_rotate_opts o = { 0 };
	struct rk_error err = { 0 };

	for (; *names; names++)
		json_array_append_new(arr, json_string(*names));
	o.kind = "rotate";
	o.reason = "unit test";
	o.manual = manual;
	o.no_restart = no_restart;
	ck_assert_msg(rk_engine_rotate(&f->ctx, arr, &o, &rep, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(rep);
	json_decref(arr);
	return rep;
}

static json_t *
rotate1(struct fx *f, const char *name)
{
	const char *names[] = { name, NULL };

	return rotate_opts(f, names, 0, 0);
}

static const char *
rep_str(const json_t *rep, const char *key)
{
	return json_string_value(json_object_get(rep, key));
}

static const json_t *
rep_secret(const json_t *rep, const char *name)
{
	size_t i;
	json_t *s;

	json_array_foreach(json_object_get(rep, "secrets"), i, s)
		if (strcmp(rep_str(s, "name"), name) == 0)
			return s;
	ck_abort_msg("secret '%s' not in the report", name);
	return NULL;
}

/* "planned,generated,..." for one secret of a run. */
static void
steps_of(struct fx *f, const char *run_id, const char *secret, char *buf, size_t n)
{
	json_t *rows = NULL, *row;
	struct rk_error err = { 0 };
	size_t i, used = 0;

	ck_assert_msg(rk_store_steps(f->ctx.store, run_id, NULL, &rows, &err) == 0, "%s", err.msg);
	buf[0] = '\0';
	json_array_foreach(rows, i, row) {
		if (strcmp(rep_str(row, "secret"), secret) != 0)
			continue;
		used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? "," : "",
					 rep_str(row, "step"));
		ck_assert_uint_lt(used, n);
	}
	json_decref(rows);
}

static void
assert_steps(struct fx *f, const char *run_id, const char *secret, const char *want)
{
	char got[512];

	steps_of(f, run_id, secret, got, sizeof(got));
	ck_assert_str_eq(got, want);
}

static json_t *
secret_row(struct fx *f, const char *name)
{
	json_t *row = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_store_secret_get(f->ctx.store, name, &row, &err) == 0, "%s", err.msg);
	return row;
}

static int64_t
row_int(const json_t *row, const char *key)
{
	return json_integer_value(json_object_get(row, key));
}

/* The journal row of one secret in a run (blobs owned by the caller). */
static struct rk_rotation
rotation_of(struct fx *f, const char *run_id, const char *secret)
{
	struct rk_rotation *rots = NULL, out;
	size_t n = 0;
	struct rk_error err = { 0 };
	int found = 0;

	memset(&out, 0, sizeof(out));
	ck_assert_msg(rk_store_rot_list(f->ctx.store, run_id, &rots, &n, &err) == 0, "%s", err.msg);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(rots[i].secret, secret) == 0) {
			out = rots[i];
			memset(&rots[i], 0, sizeof(rots[i]));
			found = 1;
		}
	}
	rk_store_rot_free(rots, n);
	ck_assert_msg(found, "no rotation of %s in %s", secret, run_id);
	return out;
}

static void
fingerprint_of(struct fx *f, const struct fake_version *v, char *out)
{
	struct rk_secret *s = NULL;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_secret_from(&s, v->val, v->len, &err), 0);
	rk_fingerprint(f->ctx.keys, s, out);
	rk_secret_free(s);
}

static const json_t *
plan_of(const json_t *plan, const char *name)
{
	size_t i;
	json_t *p;

	json_array_foreach(plan, i, p)
		if (strcmp(rep_str(p, "name"), name) == 0)
			return p;
	ck_abort_msg("'%s' not in the plan", name);
	return NULL;
}

#define FULL_PATH "planned,generated,staged,verified,promoted,restarted,done"

/* ---- normal runs ------------------------------------------------------------------ */

START_TEST(test_engine_rotation_journals_every_step_in_order)
{
	struct fx f;
	json_t *rep, *row;
	struct rk_rotation rot;
	char fp[RK_FP_HEX_LEN + 1];

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "s1", "p/s1");
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "result"), "rotated");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "new_version"), "1");
	assert_steps(&f, rep_str(rep, "run_id"), "s1", FULL_PATH);

	ck_assert_int_eq(FS->calls[OP_STAGE], 1);
	ck_assert_int_eq(FS->calls[OP_READ_VERSION], 1);
	ck_assert_int_eq(FS->calls[OP_PROMOTE], 1);
	ck_assert_int_eq(FS->calls[OP_FIND_STAGED], 0);
	ck_assert_int_eq(FS->calls[OP_ROLLBACK], 0);
	ck_assert_int_eq(fake_nversions("p/s1"), 1);
	/* The default policy's generator: 32 characters. */
	ck_assert_uint_eq(fake_current("p/s1")->len, 32);

	row = secret_row(&f, "s1");
	fingerprint_of(&f, fake_current("p/s1"), fp);
	ck_assert_str_eq(rep_str(row, "current_version"), "1");
	ck_assert_str_eq(rep_str(row, "current_fp"), fp);
	ck_assert_int_eq(row_int(row, "last_rotated"), NOW);
	ck_assert_str_eq(rep_str(row, "last_result"), "rotated");
	ck_assert_int_eq(row_int(row, "failures"), 0);

	/* Done: the journal keeps the fingerprint, not the sealed value. */
	rot = rotation_of(&f, rep_str(rep, "run_id"), "s1");
	ck_assert_str_eq(rot.state, "done");
	ck_assert_str_eq(rot.new_fp, fp);
	ck_assert_ptr_null(rot.sealed_new);
	ck_assert_str_eq(rot.idem_key, FS->stage_idem[0]);
	ck_assert_uint_eq(strlen(rot.idem_key), RK_UUID_LEN);
	rk_rotation_clear(&rot);
	json_decref(row);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_one_stage_call_per_secret)
{
	struct fx f;
	static const char *const names[] = { "a", "b", "c", NULL };
	json_t *rep;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "a", "p/a");
	add_secret(&f, "b", "p/b");
	add_secret(&f, "c", "p/c");
	rep = rotate_opts(&f, names, 0, 0);
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_eq(FS->calls[OP_STAGE], 3);
	ck_assert_int_eq(FS->calls[OP_PROMOTE], 3);
	ck_assert_int_eq(fake_nversions("p/a"), 1);
	ck_assert_int_eq(fake_nversions("p/b"), 1);
	ck_assert_int_eq(fake_nversions("p/c"), 1);
	/* Each secret has its own idempotency key and its own value. */
	ck_assert_str_ne(FS->stage_idem[0], FS->stage_idem[1]);
	ck_assert_str_ne(FS->stage_idem[1], FS->stage_idem[2]);
	ck_assert_int_ne(memcmp(fake_current("p/a")->val, fake_current("p/b")->val, 32), 0);
	for (size_t i = 0; names[i]; i++)
		assert_steps(&f, rep_str(rep, "run_id"), names[i], FULL_PATH);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_provider_calls_carry_the_stop_flag)
{
	struct fx f;
	json_t *rep;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "a", "p/a");
	rep = rotate1(&f, "a");
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_gt(FS->calls[OP_READ] + FS->calls[OP_STAGE] + FS->calls[OP_PROMOTE], 0);
	for (int op = 0; op < OP_N; op++)
		ck_assert_msg(FS->calls_unstoppable[op] == 0, "op %d: %d calls", op,
			      FS->calls_unstoppable[op]);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_existing_value_is_replaced_and_kept_as_previous)
{
	struct fx f;
	json_t *rep;
	const struct fake_secret *s;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	fake_seed("p/s1", "the-old-value");
	add_secret(&f, "s1", "p/s1");
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "old_version"), "1");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "new_version"), "2");
	s = fake_find(FS, "p/s1", 0);
	ck_assert_int_eq(s->current, 2);
	ck_assert_mem_eq(s->v[0].val, "the-old-value", strlen("the-old-value"));
	/* The new current value is a generated one, not the old one again. */
	ck_assert_uint_eq(fake_current("p/s1")->len, 32);
	ck_assert_ptr_null(memmem(fake_current("p/s1")->val, 32, "the-old-value", 13));
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_value_never_reaches_the_state_db_in_plaintext)
{
	struct fx f;
	json_t *rep;
	static const char *const files[] = { "rekey.db", "rekey.db-wal" };
	unsigned char value[FAKE_VALUE_MAX];
	size_t len;
	int seen_name = 0;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "s1", "p/s1");
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	len = fake_current("p/s1")->len;
	memcpy(value, fake_current("p/s1")->val, len);
	for (size_t i = 0; i < RK_ARRAY_SIZE(files); i++) {
		char path[256], *text = NULL;
		size_t n = 0;
		struct rk_error err = { 0 };

		snprintf(path, sizeof(path), "%s/%s", f.state, files[i]);
		if (rk_read_file(path, 64u << 20, &text, &n, &err) == RK_ENOTFOUND)
			continue;
		ck_assert_msg(text != NULL, "%s", err.msg);
		ck_assert_msg(memmem(text, n, value, len) == NULL, "the value is in %s", files[i]);
		/* The scan works: the secret's locator path is there in the clear. */
		if (memmem(text, n, "p/s1", 4) != NULL)
			seen_name++;
		free(text);
	}
	ck_assert_int_gt(seen_name, 0);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

/* ---- lost replies, conflicts, failed verification ----------------------------------- */

START_TEST(test_engine_stage_that_landed_but_lost_its_reply_is_found_not_repeated)
{
	struct fx f;
	json_t *rep, *row;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "s1", "p/s1");
	script(OP_STAGE, 1, RK_ETRANSIENT, 1, 0);
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_eq(FS->calls[OP_STAGE], 1);
	ck_assert_int_eq(FS->calls[OP_FIND_STAGED], 1);
	ck_assert_int_eq(fake_nversions("p/s1"), 1);
	assert_steps(&f, rep_str(rep, "run_id"), "s1", FULL_PATH);
	row = secret_row(&f, "s1");
	ck_assert_str_eq(rep_str(row, "current_version"), "1");
	json_decref(row);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_stage_that_did_not_land_fails_without_writing)
{
	struct fx f;
	json_t *rep, *row;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	fake_seed("p/s1", "old");
	add_secret(&f, "s1", "p/s1");
	script(OP_STAGE, 1, RK_ETRANSIENT, 0, 0);
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep, "status"), "failed");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "result"), "failed");
	ck_assert_int_eq(FS->calls[OP_FIND_STAGED], 1);
	ck_assert_int_eq(FS->calls[OP_PROMOTE], 0);
	ck_assert_int_eq(fake_nversions("p/s1"), 1);
	assert_fake_current_is("p/s1", "old");
	assert_steps(&f, rep_str(rep, "run_id"), "s1", "planned,generated,failed");
	row = secret_row(&f, "s1");
	ck_assert_int_eq(row_int(row, "failures"), 1);
	ck_assert_str_eq(rep_str(row, "last_result"), "failed");
	ck_assert_str_eq(rep_str(row, "current_version"), "");
	json_decref(row);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_picks_is_the_one_rule_of_a_scheduled_rotation)
{
	static const struct {
		int due, window_open, attention, ignore_window, want;
	} rows[] = {
		{ 1, 1, 0, 0, 1 }, { 0, 1, 0, 0, 0 }, { 1, 0, 0, 0, 0 }, { 1, 0, 0, 1, 1 },
		{ 1, 1, 1, 0, 0 }, { 1, 1, 1, 1, 0 }, { 0, 0, 0, 1, 0 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		json_t *e = json_pack("{s:b, s:b, s:b}", "due", rows[i].due, "window_open",
				      rows[i].window_open, "needs_attention", rows[i].attention);
		ck_assert_msg(rk_engine_picks(e, rows[i].ignore_window) == rows[i].want, "row %zu", i);
		json_decref(e);
	}
	/* A plan entry missing a field is not picked. */
	{
		json_t *e = json_pack("{s:b}", "window_open", 1);
		ck_assert(!rk_engine_picks(e, 1));
		json_decref(e);
	}
}
END_TEST

START_TEST(test_engine_conflict_with_someone_elses_write_generates_again_and_keeps_theirs)
{
	struct fx f;
	json_t *rep;
	const struct fake_version *v;

	fx_files(&f);
	fx_open(&f, &fake_versions);
	fake_seed("p/s1", "original");
	add_secret(&f, "s1", "p/s1");
	FS->intrude_before_stage = 1;
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "result"), "rotated");
	/* Theirs stays in the chain, then exactly one version of ours on top. */
	ck_assert_int_eq(fake_nversions("p/s1"), 3);
	ck_assert_int_eq(FS->calls[OP_STAGE], 2);
	ck_assert_int_eq(FS->calls[OP_ROLLBACK], 0);
	v = fake_current("p/s1");
	ck_assert(v->len != strlen("someone-else-wrote-this") ||
		  memcmp(v->val, "someone-else-wrote-this", v->len) != 0);
	assert_steps(&f, rep_str(rep, "run_id"), "s1",
		     "planned,generated,planned,generated,staged,verified,promoted,restarted,done");
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_conflict_on_every_attempt_fails_and_overwrites_nothing)
{
	struct fx f;
	json_t *rep;
	struct rk_rotation rot;

	fx_files(&f);
	fx_open(&f, &fake_versions);
	fake_seed("p/s1", "original");
	add_secret(&f, "s1", "p/s1");
	FS->intrude_before_stage = 99;
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep, "status"), "failed");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "result"), "failed");
	/* Bounded: three attempts, only the intruder's versions were added. */
	ck_assert_int_eq(FS->calls[OP_STAGE], 3);
	ck_assert_int_eq(fake_nversions("p/s1"), 4);
	assert_fake_current_is("p/s1", "someone-else-wrote-this");
	ck_assert_int_eq(FS->calls[OP_PROMOTE], 0);
	ck_assert_int_eq(FS->calls[OP_ROLLBACK], 0);
	rot = rotation_of(&f, rep_str(rep, "run_id"), "s1");
	ck_assert_msg(strstr(rot.error, "conflict: 's1' was changed by someone else during each "
			     "of 3 attempts") != NULL, "%s", rot.error);
	rk_rotation_clear(&rot);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_verify_mismatch_on_non_staging_provider_rolls_back)
{
	struct fx f;
	json_t *rep, *row;
	struct rk_rotation rot;

	fx_files(&f);
	fx_open(&f, &fake_versions);
	fake_seed("p/s1", "the-value-before");
	add_secret(&f, "s1", "p/s1");
	FS->corrupt_read_version = 1;
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep, "status"), "failed");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "result"), "rolled_back");
	ck_assert_int_eq(FS->calls[OP_STAGE], 1);
	ck_assert_int_eq(FS->calls[OP_ROLLBACK], 1);
	ck_assert_int_eq(FS->calls[OP_PROMOTE], 0);
	/* The written value was current at once; the old one is current again. */
	assert_fake_current_is("p/s1", "the-value-before");
	ck_assert_int_eq(fake_nversions("p/s1"), 3);
	assert_steps(&f, rep_str(rep, "run_id"), "s1", "planned,generated,staged,rolled_back");
	rot = rotation_of(&f, rep_str(rep, "run_id"), "s1");
	ck_assert_msg(strstr(rot.error, "verify") != NULL, "%s", rot.error);
	ck_assert_ptr_null(rot.sealed_new);
	rk_rotation_clear(&rot);
	row = secret_row(&f, "s1");
	ck_assert_int_eq(row_int(row, "failures"), 1);
	ck_assert_str_eq(rep_str(row, "last_result"), "failed");
	json_decref(row);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_verify_mismatch_on_staging_provider_leaves_current_alone)
{
	struct fx f;
	json_t *rep;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	fake_seed("p/s1", "the-value-before");
	add_secret(&f, "s1", "p/s1");
	FS->corrupt_read_version = 1;
	rep = rotate1(&f, "s1");
	/* The staged version never became current: abandoning it is the rollback. */
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "result"), "rolled_back");
	ck_assert_str_eq(rep_str(rep, "status"), "failed");
	ck_assert_int_eq(FS->calls[OP_ROLLBACK], 0);
	ck_assert_int_eq(FS->calls[OP_PROMOTE], 0);
	ck_assert_int_eq(fake_find(FS, "p/s1", 0)->current, 1);
	assert_fake_current_is("p/s1", "the-value-before");
	assert_steps(&f, rep_str(rep, "run_id"), "s1", "planned,generated,staged,rolled_back");
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_verify_mismatch_without_versions_restores_the_sealed_old_value)
{
	struct fx f;
	json_t *rep;

	fx_files(&f);
	fx_open(&f, &fake_plain);
	fake_seed("p/s1", "kept-only-in-the-journal");
	add_secret(&f, "s1", "p/s1");
	FS->corrupt_read_version = 1;
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "result"), "rolled_back");
	/* No rollback operation: the previous value is written again from the journal. */
	ck_assert_int_eq(FS->calls[OP_ROLLBACK], 0);
	ck_assert_int_eq(FS->calls[OP_STAGE], 2);
	assert_fake_current_is("p/s1", "kept-only-in-the-journal");
	ck_assert_str_ne(FS->stage_idem[0], FS->stage_idem[1]);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

/*
 * BUG (src/engine.c fail_job(), rk_rotation_clear(&j->rot) at line ~337):
 * after a failed verify on a provider without versions, when restoring the
 * previous value fails too, fail_job drops sealed_old along with sealed_new
 * and journals "failed" with neither: the previous value, which existed only
 * in the journal, is gone ("Never lose a secret").
 */
START_TEST(test_engine_failed_undo_keeps_the_previous_value_in_the_journal)
{
	struct fx f;
	json_t *rep;
	struct rk_rotation rot;
	struct rk_secret *old = NULL;
	struct rk_error err = { 0 };
	char ad[600];

	fx_files(&f);
	fx_open(&f, &fake_plain);
	fake_seed("p/s1", "kept-only-in-the-journal");
	add_secret(&f, "s1", "p/s1");
	FS->corrupt_read_version = 1;
	script(OP_STAGE, 2, RK_ETRANSIENT, 0, 0);	/* the restoring write fails */
	rep = rotate1(&f, "s1");
	ck_assert_str_eq(rep_str(rep_secret(rep, "s1"), "result"), "failed");
	rot = rotation_of(&f, rep_str(rep, "run_id"), "s1");
	ck_assert_msg(strstr(rot.error, "rolling back failed too") != NULL, "%s", rot.error);
	ck_assert_msg(rot.sealed_old != NULL, "the previous value was dropped from the journal");
	snprintf(ad, sizeof(ad), "rekey-journal\n%s\n%s\nold", rot.run_id, rot.secret);
	ck_assert_msg(rk_unseal(f.ctx.keys, ad, rot.sealed_old, rot.sealed_old_len, &old,
				&err) == 0, "%s", err.msg);
	ck_assert_str_eq(rk_secret_str(old), "kept-only-in-the-journal");
	rk_secret_free(old);
	rk_rotation_clear(&rot);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

/*
 * BUG (src/engine.c undo_stage(): rk_keys_uuid(keys, run_id, "rollback")):
 * the rollback's idempotency key is derived from (run, "rollback"), which is
 * the stage key of a secret named "rollback" (uuid(run, name)). The provider
 * then finds the just-staged bad version by that key and makes *it* current
 * instead of restoring the old value.
 */
START_TEST(test_engine_rollback_key_differs_from_stage_key)
{
	struct fx f;
	json_t *rep;

	fx_files(&f);
	fx_open(&f, &fake_versions);
	fake_seed("p/rb", "the-value-before");
	add_secret(&f, "rollback", "p/rb");
	FS->corrupt_read_version = 1;
	rep = rotate1(&f, "rollback");
	ck_assert_int_eq(FS->calls[OP_ROLLBACK], 1);
	ck_assert_str_eq(rep_str(rep_secret(rep, "rollback"), "result"), "rolled_back");
	/* Reported rolled back, so the value before must be current again. */
	assert_fake_current_is("p/rb", "the-value-before");
	ck_assert_str_ne(FS->rollback_idem[0], FS->stage_idem[0]);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

/*
 * BUG (src/engine.c advance(): a failure of record_promoted() goes to
 * fail_job()): when the provider has promoted the new value but recording
 * it (the secret row or the audit row) fails, the rotation is journaled
 * "failed", so its dependents are never restarted and resume never records
 * it, though the new value is live. A promoted rotation should stay
 * "promoted" (resume already re-runs record_promoted for that state).
 */
START_TEST(test_engine_bookkeeping_failure_after_promote_is_not_a_failed_rotation)
{
	struct fx f;
	json_t *rep;
	struct rk_rotation rot;
	sqlite3 *db = NULL;
	char *msg = NULL;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "s1", "p/s1");
	ck_assert_int_eq(sqlite3_open(rk_store_path(f.ctx.store), &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db,
				   "CREATE TRIGGER fail_rotated BEFORE INSERT ON audit"
				   " WHEN NEW.event = 'secret.rotated'"
				   " BEGIN SELECT RAISE(ABORT, 'injected'); END;",
				   NULL, NULL, &msg) == SQLITE_OK, "%s", msg ? msg : "?");
	sqlite3_close(db);
	rep = rotate1(&f, "s1");
	/* The provider did promote it. */
	ck_assert_int_eq(FS->calls[OP_PROMOTE], 1);
	ck_assert_int_eq(fake_find(FS, "p/s1", 0)->current, 1);
	rot = rotation_of(&f, rep_str(rep, "run_id"), "s1");
	ck_assert_msg(strcmp(rot.state, "failed") != 0,
		      "a promoted value is journaled as failed: %s", rot.error);
	rk_rotation_clear(&rot);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_provider_generated_value_is_recorded_not_generated_by_rekey)
{
	struct fx f;
	json_t *rep, *rows = NULL, *row;
	struct rk_rotation rot;
	struct rk_error err = { 0 };
	char fp[RK_FP_HEX_LEN + 1];
	size_t i;
	int saw_generated = 0;

	fx_files(&f);
	fx_open(&f, &fake_generating);
	fake_seed("transit/payments", "provider-made-1");
	add_secret(&f, "k", "transit/payments");
	rep = rotate1(&f, "k");
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_eq(FS->calls[OP_STAGE], 1);
	ck_assert_int_eq(FS->stage_without_value, 1);
	assert_fake_current_is("transit/payments", "provider-made-2");
	rot = rotation_of(&f, rep_str(rep, "run_id"), "k");
	fingerprint_of(&f, fake_current("transit/payments"), fp);
	ck_assert_str_eq(rot.new_fp, fp);
	rk_rotation_clear(&rot);
	ck_assert_int_eq(rk_store_steps(f.ctx.store, rep_str(rep, "run_id"), NULL, &rows, &err), 0);
	json_array_foreach(rows, i, row)
		if (strcmp(rep_str(row, "step"), "generated") == 0) {
			ck_assert_str_eq(rep_str(row, "detail"), "(by provider)");
			saw_generated = 1;
		}
	ck_assert(saw_generated);
	json_decref(rows);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

/* ---- failures in a row ---------------------------------------------------------------- */

START_TEST(test_engine_needs_attention_after_max_attempts)
{
	struct fx f;
	json_t *row, *plan = NULL, *rep;
	struct rk_error err = { 0 };
	const struct rk_policy *pol;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	pol = rk_policy_find(f.ctx.policies, "default");
	ck_assert_int_eq(pol->max_attempts, 3);
	add_secret(&f, "s1", "p/s1");
	script(OP_STAGE, 0, RK_EAUTH, 0, 0);
	for (int i = 1; i <= 3; i++) {
		rep = rotate1(&f, "s1");	/* scheduled: not a person naming it */
		ck_assert_str_eq(rep_str(rep, "status"), "failed");
		json_decref(rep);
		row = secret_row(&f, "s1");
		ck_assert_int_eq(row_int(row, "failures"), i);
		ck_assert_int_eq(row_int(row, "needs_attention"), i >= 3);
		json_decref(row);
	}
	ck_assert_int_eq(FS->calls[OP_STAGE], 3);
	ck_assert_int_eq(rk_engine_plan(&f.ctx, NOW, &plan, &err), 0);
	ck_assert(json_is_true(json_object_get(plan_of(plan, "s1"), "needs_attention")));
	ck_assert_ptr_nonnull(strstr(rep_str(plan_of(plan, "s1"), "reason"), "needs attention"));
	json_decref(plan);

	/* A person names it: the mark is cleared, and a success resets the count. */
	script_clear();
	{
		const char *names[] = { "s1", NULL };
		rep = rotate_opts(&f, names, 1, 0);
	}
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	json_decref(rep);
	row = secret_row(&f, "s1");
	ck_assert_int_eq(row_int(row, "failures"), 0);
	ck_assert_int_eq(row_int(row, "needs_attention"), 0);
	json_decref(row);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_manual_rotation_clears_needs_attention_even_if_it_fails_again)
{
	struct fx f;
	json_t *row, *rep;
	struct rk_error err = { 0 };
	const char *names[] = { "s1", NULL };

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "s1", "p/s1");
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(rk_store_secret_failed(f.ctx.store, "s1", "r0", "x", 3, &err), 0);
	row = secret_row(&f, "s1");
	ck_assert_int_eq(row_int(row, "needs_attention"), 1);
	json_decref(row);
	script(OP_STAGE, 0, RK_EAUTH, 0, 0);
	rep = rotate_opts(&f, names, 1, 0);
	json_decref(rep);
	row = secret_row(&f, "s1");
	ck_assert_int_eq(row_int(row, "failures"), 1);
	ck_assert_int_eq(row_int(row, "needs_attention"), 0);
	json_decref(row);
	fx_done(&f);
}
END_TEST

/* ---- the plan --------------------------------------------------------------------------- */

START_TEST(test_engine_plan_never_rotated_is_due_just_rotated_is_not)
{
	struct fx f;
	json_t *plan = NULL, *rep;
	const json_t *p;
	struct rk_error err = { 0 };

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "fresh", "p/fresh");
	add_secret(&f, "never", "p/never");
	add_secret_deps(&f, "old", "p/old", "default", NULL, NOW - 100 * DAY);
	rep = rotate1(&f, "fresh");
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	json_decref(rep);

	ck_assert_int_eq(rk_engine_plan(&f.ctx, NOW, &plan, &err), 0);
	ck_assert_int_eq(json_array_size(plan), 3);
	p = plan_of(plan, "never");
	ck_assert(json_is_true(json_object_get(p, "due")));
	ck_assert_ptr_nonnull(strstr(rep_str(p, "reason"), "never rotated"));
	p = plan_of(plan, "fresh");
	ck_assert(json_is_false(json_object_get(p, "due")));
	ck_assert(json_is_false(json_object_get(p, "overdue")));
	ck_assert(json_is_false(json_object_get(p, "needs_attention")));
	ck_assert_int_eq(row_int(p, "last_rotated"), NOW);
	ck_assert_int_eq(row_int(p, "next_due"), NOW + 90 * DAY);
	/* Rotated 100 days ago per the inventory: due (90d) but within grace (14d). */
	p = plan_of(plan, "old");
	ck_assert(json_is_true(json_object_get(p, "due")));
	ck_assert(json_is_true(json_object_get(p, "overdue")));
	ck_assert(json_is_false(json_object_get(p, "expired")));
	json_decref(plan);

	/* Later: the fresh one becomes due when its policy says, then past grace. */
	ck_assert_int_eq(rk_engine_plan(&f.ctx, NOW + 90 * DAY - 1, &plan, &err), 0);
	ck_assert(json_is_false(json_object_get(plan_of(plan, "fresh"), "due")));
	json_decref(plan);
	ck_assert_int_eq(rk_engine_plan(&f.ctx, NOW + 90 * DAY, &plan, &err), 0);
	ck_assert(json_is_true(json_object_get(plan_of(plan, "fresh"), "due")));
	ck_assert(json_is_false(json_object_get(plan_of(plan, "fresh"), "expired")));
	json_decref(plan);
	ck_assert_int_eq(rk_engine_plan(&f.ctx, NOW + 104 * DAY + 1, &plan, &err), 0);
	ck_assert(json_is_true(json_object_get(plan_of(plan, "fresh"), "expired")));
	json_decref(plan);
	fx_done(&f);
}
END_TEST

/* ---- crashes and resume --------------------------------------------------------------- */

/* In a child: rotates s1 with the stage scripted to _exit(9) before or after storing. */
static void
crash_in_stage(struct fx *f, const struct rk_provider_ops *ops, int after)
{
	pid_t pid = fork();
	int status = 0;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		json_t *rep;
		fx_open(f, ops);
		script(OP_STAGE, 1, RK_ETRANSIENT, after, 9);
		rep = rotate1(f, "s1");
		json_decref(rep);
		_exit(0);	/* not reached when the script fires */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 9, "child status %d", status);
	script_clear();
}

/* The one unfinished run after a crash, and its rotation of s1. */
static void
unfinished_run(struct fx *f, char *run_id, size_t n, struct rk_rotation *rot)
{
	json_t *runs = NULL;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_store_run_unfinished(f->ctx.store, &runs, &err), 0);
	ck_assert_int_eq(json_array_size(runs), 1);
	snprintf(run_id, n, "%s", rep_str(json_array_get(runs, 0), "id"));
	json_decref(runs);
	*rot = rotation_of(f, run_id, "s1");
}

START_TEST(test_engine_resume_after_crash_in_stage_writes_no_second_version)
{
	struct fx f;
	json_t *rep = NULL;
	struct rk_rotation rot;
	struct rk_error err = { 0 };
	char run_id[64], fp[RK_FP_HEX_LEN + 1], in_flight[64];

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "s1", "p/s1");
	fx_close(&f);
	crash_in_stage(&f, &fake_staging, 1);
	ck_assert_int_eq(FS->calls[OP_STAGE], 1);
	ck_assert_int_eq(fake_nversions("p/s1"), 1);

	fx_open(&f, &fake_staging);
	unfinished_run(&f, run_id, sizeof(run_id), &rot);
	ck_assert_str_eq(rot.state, "generated");
	ck_assert_ptr_nonnull(rot.sealed_new);
	rk_rotation_clear(&rot);
	ck_assert_int_eq(rk_store_secret_in_flight(f.ctx.store, "s1", in_flight, sizeof(in_flight),
						   &err), 0);
	ck_assert_str_eq(in_flight, run_id);

	ck_assert_msg(rk_engine_resume(&f.ctx, NULL, 0, &rep, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(json_array_size(rep), 1);
	ck_assert_str_eq(rep_str(json_array_get(rep, 0), "status"), "done");
	ck_assert_int_eq(FS->calls[OP_STAGE], 1);	/* only the child's */
	ck_assert_int_eq(FS->calls[OP_FIND_STAGED], 1);
	ck_assert_int_eq(fake_nversions("p/s1"), 1);
	ck_assert_int_eq(fake_find(FS, "p/s1", 0)->current, 1);
	assert_steps(&f, run_id, "s1", FULL_PATH);
	rot = rotation_of(&f, run_id, "s1");
	fingerprint_of(&f, fake_current("p/s1"), fp);
	ck_assert_str_eq(rot.new_fp, fp);
	ck_assert_ptr_null(rot.sealed_new);
	rk_rotation_clear(&rot);
	json_decref(rep);

	/* Nothing is left to resume, and the finished run cannot be resumed again. */
	ck_assert_int_eq(rk_engine_resume(&f.ctx, NULL, 0, &rep, &err), 0);
	ck_assert_int_eq(json_array_size(rep), 0);
	json_decref(rep);
	rk_error_clear(&err);
	ck_assert_int_eq(rk_engine_resume(&f.ctx, run_id, 0, &rep, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "already finished"));
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_resume_after_crash_before_stage_landed_writes_the_journaled_value)
{
	struct fx f;
	json_t *rep = NULL;
	struct rk_rotation rot;
	struct rk_error err = { 0 };
	char run_id[64], fp[RK_FP_HEX_LEN + 1], journaled_fp[RK_FP_HEX_LEN + 1];

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "s1", "p/s1");
	fx_close(&f);
	crash_in_stage(&f, &fake_staging, 0);
	ck_assert_int_eq(fake_nversions("p/s1"), 0);

	fx_open(&f, &fake_staging);
	unfinished_run(&f, run_id, sizeof(run_id), &rot);
	ck_assert_str_eq(rot.state, "generated");
	snprintf(journaled_fp, sizeof(journaled_fp), "%s", rot.new_fp);
	rk_rotation_clear(&rot);

	ck_assert_msg(rk_engine_resume(&f.ctx, run_id, 0, &rep, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_eq(FS->calls[OP_FIND_STAGED], 1);
	ck_assert_int_eq(FS->calls[OP_STAGE], 2);
	ck_assert_int_eq(fake_nversions("p/s1"), 1);
	/* The value generated before the crash, not a new one, and under the same key. */
	fingerprint_of(&f, fake_current("p/s1"), fp);
	ck_assert_str_eq(fp, journaled_fp);
	ck_assert_str_eq(FS->stage_idem[0], FS->stage_idem[1]);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_resume_on_non_staging_provider_finds_the_landed_write)
{
	struct fx f;
	json_t *rep = NULL;
	struct rk_error err = { 0 };

	fx_files(&f);
	fx_open(&f, &fake_versions);
	fake_seed("p/s1", "before");
	add_secret(&f, "s1", "p/s1");
	fx_close(&f);
	crash_in_stage(&f, &fake_versions, 1);
	/* The write is already current in a provider without staging. */
	ck_assert_int_eq(fake_find(FS, "p/s1", 0)->current, 2);

	fx_open(&f, &fake_versions);
	ck_assert_msg(rk_engine_resume(&f.ctx, NULL, 0, &rep, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(rep_str(json_array_get(rep, 0), "status"), "done");
	ck_assert_int_eq(FS->calls[OP_STAGE], 1);
	ck_assert_int_eq(fake_nversions("p/s1"), 2);
	ck_assert_int_eq(FS->calls[OP_ROLLBACK], 0);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

/* ---- dependents ------------------------------------------------------------------------- */

START_TEST(test_engine_shared_dependent_restarts_once_per_run)
{
	struct fx f;
	static const char *const names[] = { "a", "b", NULL };
	json_t *rep, *deps = NULL, *d;
	struct rk_error err = { 0 };
	size_t i;

	fx_files(&f);
	fx_open(&f, &fake_restarting);
	add_secret_deps(&f, "a", "p/a", "default", json_pack("[o]", k8s_dep("deployment/ns/api")), 0);
	add_secret_deps(&f, "b", "p/b", "default",
			json_pack("[o, o]", k8s_dep("deployment/ns/api"),
				  k8s_dep("statefulset/ns/worker")), 0);
	rep = rotate_opts(&f, names, 0, 0);
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_eq(FS->calls[OP_RESTART], 2);
	ck_assert_int_eq(FS->calls[OP_WAIT], 2);
	ck_assert_str_eq(FS->restarted[0], "deployment/ns/api");
	ck_assert_str_eq(FS->restarted[1], "statefulset/ns/worker");
	ck_assert_int_eq(json_array_size(json_object_get(rep, "dependents")), 2);
	json_array_foreach(json_object_get(rep, "dependents"), i, d)
		ck_assert_str_eq(rep_str(d, "result"), "restarted");
	ck_assert_int_eq(rk_store_dep_list(f.ctx.store, rep_str(rep, "run_id"), &deps, &err), 0);
	ck_assert_int_eq(json_array_size(deps), 2);
	json_array_foreach(deps, i, d)
		ck_assert_str_eq(rep_str(d, "state"), "done");
	json_decref(deps);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_dependent_of_failed_rotation_is_skipped)
{
	struct fx f;
	json_t *rep;

	fx_files(&f);
	fx_open(&f, &fake_restarting);
	add_secret_deps(&f, "a", "p/a", "default", json_pack("[o]", k8s_dep("deployment/ns/api")), 0);
	script(OP_STAGE, 0, RK_EAUTH, 0, 0);
	rep = rotate1(&f, "a");
	ck_assert_int_eq(FS->calls[OP_RESTART], 0);
	ck_assert_str_eq(rep_str(json_array_get(json_object_get(rep, "dependents"), 0), "result"),
			 "skipped");
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_no_restart_leaves_dependents_alone)
{
	struct fx f;
	static const char *const names[] = { "a", NULL };
	json_t *rep;

	fx_files(&f);
	fx_open(&f, &fake_restarting);
	add_secret_deps(&f, "a", "p/a", "default", json_pack("[o]", k8s_dep("deployment/ns/api")), 0);
	rep = rotate_opts(&f, names, 0, 1);
	ck_assert_str_eq(rep_str(rep_secret(rep, "a"), "result"), "rotated");
	ck_assert_int_eq(FS->calls[OP_RESTART], 0);
	ck_assert_str_eq(rep_str(json_array_get(json_object_get(rep, "dependents"), 0), "result"),
			 "not_restarted");
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_engine_unknown_secret_changes_nothing)
{
	struct fx f;
	json_t *arr = json_pack("[s, s]", "s1", "missing"), *rep = NULL, *runs = NULL;
	struct rk_rotate_opts o = { 0 };
	struct rk_error err = { 0 };

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret(&f, "s1", "p/s1");
	o.kind = "rotate";
	ck_assert_int_eq(rk_engine_rotate(&f.ctx, arr, &o, &rep, &err), RK_ENOTFOUND);
	ck_assert_ptr_null(rep);
	ck_assert_int_eq(FS->calls[OP_READ] + FS->calls[OP_STAGE], 0);
	ck_assert_int_eq(rk_store_run_list(f.ctx.store, 10, &runs, &err), 0);
	ck_assert_int_eq(json_array_size(runs), 0);
	json_decref(runs);
	json_decref(arr);
	fx_done(&f);
}
END_TEST

/* ---- the worker pool ---- */

/* A secret on provider "local" or "slow", with a tier. */
static void
add_secret_on(struct fx *f, const char *name, const char *provider, int tier)
{
	char path[64];
	json_t *spec;
	struct rk_error err = { 0 };

	snprintf(path, sizeof(path), "p/%s", name);
	spec = json_pack("{s:s, s:s, s:{s:s}, s:s, s:s, s:s, s:i, s:I, s:[]}", "name", name,
			 "provider", provider, "locator", "path", path, "policy", "default",
			 "environment", "test", "owner", "", "tier", tier, "last_rotated",
			 (json_int_t)0, "dependents");
	ck_assert_ptr_nonnull(spec);
	ck_assert_msg(rk_store_secret_put(f->ctx.store, spec, NOW, &err) == 0, "%s", err.msg);
	json_decref(spec);
}

/* Rotates names (a JSON array, consumed) with --parallel `parallel`. */
static json_t *
rotate_parallel(struct fx *f, json_t *names, int parallel)
{
	struct rk_rotate_opts o = { .kind = "rotate", .reason = "unit test", .parallel = parallel };
	struct rk_error err = { 0 };
	json_t *rep = NULL;

	ck_assert_msg(rk_engine_rotate(&f->ctx, names, &o, &rep, &err) == 0, "%s", err.msg);
	json_decref(names);
	return rep;
}

/* n secrets "<prefix>0".. on provider, appended to names. */
static void
add_many(struct fx *f, json_t *names, const char *prefix, const char *provider, int tier, int n)
{
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		add_secret_on(f, name, provider, tier);
		json_array_append_new(names, json_string(name));
	}
}

static int64_t
duration_of(const json_t *rep, const char *name)
{
	return json_integer_value(json_object_get(rep_secret(rep, name), "duration_ms"));
}

/* Secrets "<prefix>0".."<prefix>(n-1)" each left the pipeline within ms. */
static void
assert_all_done_within(const json_t *rep, const char *prefix, int n, int64_t ms, const char *why)
{
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		ck_assert_msg(duration_of(rep, name) < ms, "%s took %lld ms: %s", name,
			      (long long)duration_of(rep, name), why);
	}
}

START_TEST(test_pool_never_exceeds_a_providers_cap_and_uses_it)
{
	struct fx f;
	json_t *names = json_array(), *rep;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	FS->stage_delay_ms = 100;
	add_many(&f, names, "l", "local", 0, 6);	/* cap 2 */
	add_many(&f, names, "s", "slow", 0, 6);	/* cap 3 */
	rep = rotate_parallel(&f, names, 16);
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_eq(FS->stage_max_inflight[0], 2);
	ck_assert_int_eq(FS->stage_max_inflight[1], 3);
	ck_assert_int_eq(FS->calls[OP_STAGE], 12);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_pool_parallel_is_a_global_cap_and_defaults_to_the_sum_of_caps)
{
	struct fx f;
	json_t *names = json_array(), *rep;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	FS->stage_delay_ms = 100;
	add_many(&f, names, "l", "local", 0, 6);
	add_many(&f, names, "s", "slow", 0, 6);
	rep = rotate_parallel(&f, json_deep_copy(names), 3);
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_eq(FS->stage_max_all, 3);
	json_decref(rep);
	FS->stage_max_all = 0;
	rep = rotate_parallel(&f, names, 0);	/* the default: 2 + 3 */
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_eq(FS->stage_max_all, 5);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_pool_a_slow_provider_does_not_hold_up_the_others)
{
	struct fx f;
	json_t *names = json_array(), *rep;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	FS->stage_delay_ms = 600;
	FS->slow_only = 1;
	/* Listed first and as urgent: a pool by order alone would give it every worker. */
	add_many(&f, names, "s", "slow", 0, 3);
	add_many(&f, names, "l", "local", 0, 6);
	rep = rotate_parallel(&f, names, 3);
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	assert_all_done_within(rep, "l", 6, 500, "held up behind the slow provider");
	ck_assert_int_ge(duration_of(rep, "s2"), 600);
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_pool_lower_tier_starts_first)
{
	struct fx f;
	json_t *names = json_array(), *rep;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	add_secret_on(&f, "t2a", "local", 2);
	add_secret_on(&f, "t0a", "local", 0);
	add_secret_on(&f, "t1a", "local", 1);
	add_secret_on(&f, "t0b", "local", 0);
	json_array_append_new(names, json_string("t2a"));
	json_array_append_new(names, json_string("t0a"));
	json_array_append_new(names, json_string("t1a"));
	json_array_append_new(names, json_string("t0b"));
	rep = rotate_parallel(&f, names, 1);
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	ck_assert_int_eq(FS->nstage_order, 4);
	ck_assert_str_eq(FS->stage_order[0], "t0a");
	ck_assert_str_eq(FS->stage_order[1], "t0b");
	ck_assert_str_eq(FS->stage_order[2], "t1a");
	ck_assert_str_eq(FS->stage_order[3], "t2a");
	json_decref(rep);
	fx_done(&f);
}
END_TEST

START_TEST(test_pool_tier_is_a_priority_not_a_barrier)
{
	struct fx f;
	json_t *names = json_array(), *rep;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	FS->stage_delay_ms = 400;
	FS->slow_only = 1;
	/* 6 urgent secrets on a provider of cap 3, slow; the tier-2 ones need not wait for them. */
	add_many(&f, names, "s", "slow", 0, 6);
	add_many(&f, names, "l", "local", 2, 4);
	rep = rotate_parallel(&f, names, 4);
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	assert_all_done_within(rep, "l", 4, 400, "tier 2 waited for tier 0");
	ck_assert_int_ge(duration_of(rep, "s5"), 800);	/* two rounds of 3 */
	json_decref(rep);
	fx_done(&f);
}
END_TEST

struct stopper {
	struct rk_ctx *ctx;
	int after_ms;
};

static void *
stop_later(void *arg)
{
	struct stopper *st = arg;

	rk_sleep_ms(st->after_ms);
	atomic_store(&st->ctx->stop, 1);	/* as the SIGTERM handler does */
	return NULL;
}

START_TEST(test_pool_stop_leaves_the_run_open_and_resume_finishes_each_once)
{
	struct fx f;
	json_t *names = json_array(), *rep, *e, *run = NULL;
	struct rk_error err = { 0 };
	struct stopper st;
	pthread_t th;
	char run_id[64];
	size_t i, interrupted = 0;

	fx_files(&f);
	fx_open(&f, &fake_staging);
	FS->stage_delay_ms = 150;
	add_many(&f, names, "l", "local", 0, 8);
	st = (struct stopper){ .ctx = &f.ctx, .after_ms = 200 };
	ck_assert_int_eq(pthread_create(&th, NULL, stop_later, &st), 0);
	rep = rotate_parallel(&f, names, 2);
	pthread_join(th, NULL);
	ck_assert_str_eq(rep_str(rep, "status"), "interrupted");
	snprintf(run_id, sizeof(run_id), "%s", rep_str(rep, "run_id"));
	ck_assert_ptr_nonnull(strstr(rep_str(rep, "retry"), run_id));
	json_array_foreach(json_object_get(rep, "secrets"), i, e)
		interrupted += strcmp(rep_str(e, "result"), "interrupted") == 0;
	ck_assert_uint_ge(interrupted, 4);	/* 2 workers, 8 x 150 ms, stopped at 200 ms */
	json_decref(rep);
	ck_assert_int_eq(rk_store_run_get(f.ctx.store, run_id, &run, &err), 0);
	ck_assert_str_eq(rep_str(run, "status"), "running");
	json_decref(run);
	/* Every provider call of the run could be stopped. */
	ck_assert_int_eq(FS->calls_unstoppable[OP_STAGE], 0);

	atomic_store(&f.ctx.stop, 0);
	ck_assert_msg(rk_engine_resume(&f.ctx, run_id, 4, &rep, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(rep_str(rep, "status"), "done");
	json_decref(rep);
	for (int k = 0; k < 8; k++) {
		char path[16];
		snprintf(path, sizeof(path), "p/l%d", k);
		ck_assert_msg(fake_nversions(path) == 1, "%s has %d versions", path,
			      fake_nversions(path));
	}
	fx_done(&f);
}
END_TEST

START_TEST(test_pool_no_provider_is_opened_once_workers_run)
{
	struct fx f;
	struct rk_provider *p = NULL;
	struct rk_error err = { 0 };

	fx_files(&f);
	fx_open(&f, &fake_staging);
	rk_provider_close(f.ctx.providers[1]);
	f.ctx.providers[1] = NULL;
	f.ctx.workers_running = 1;
	ck_assert_int_eq(rk_ctx_provider(&f.ctx, "slow", &p, &err), RK_EINTERNAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "before the rotations started"));
	f.ctx.workers_running = 0;
	rk_error_clear(&err);
	fx_done(&f);
}
END_TEST

Suite *
engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("rotate");
	TCase *tf = tcase_create("failures");
	TCase *tr = tcase_create("resume");
	TCase *td = tcase_create("dependents");
	TCase *tp = tcase_create("pool");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tc, test_engine_rotation_journals_every_step_in_order);
	tcase_add_test(tc, test_engine_one_stage_call_per_secret);
	tcase_add_test(tc, test_engine_provider_calls_carry_the_stop_flag);
	tcase_add_test(tc, test_engine_existing_value_is_replaced_and_kept_as_previous);
	tcase_add_test(tc, test_engine_value_never_reaches_the_state_db_in_plaintext);
	tcase_add_test(tc, test_engine_plan_never_rotated_is_due_just_rotated_is_not);
	tcase_add_test(tc, test_engine_unknown_secret_changes_nothing);
	tcase_add_test(tc, test_engine_provider_generated_value_is_recorded_not_generated_by_rekey);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tcase_add_unchecked_fixture(tf, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tf, test_engine_stage_that_landed_but_lost_its_reply_is_found_not_repeated);
	tcase_add_test(tf, test_engine_stage_that_did_not_land_fails_without_writing);
	tcase_add_test(tf, test_engine_conflict_with_someone_elses_write_generates_again_and_keeps_theirs);
	tcase_add_test(tf, test_engine_picks_is_the_one_rule_of_a_scheduled_rotation);
	tcase_add_test(tf, test_engine_conflict_on_every_attempt_fails_and_overwrites_nothing);
	tcase_add_test(tf, test_engine_verify_mismatch_on_non_staging_provider_rolls_back);
	tcase_add_test(tf, test_engine_verify_mismatch_on_staging_provider_leaves_current_alone);
	tcase_add_test(tf, test_engine_verify_mismatch_without_versions_restores_the_sealed_old_value);
	tcase_add_test(tf, test_engine_failed_undo_keeps_the_previous_value_in_the_journal);
	tcase_add_test(tf, test_engine_rollback_key_differs_from_stage_key);
	tcase_add_test(tf, test_engine_bookkeeping_failure_after_promote_is_not_a_failed_rotation);
	tcase_add_test(tf, test_engine_needs_attention_after_max_attempts);
	tcase_add_test(tf, test_engine_manual_rotation_clears_needs_attention_even_if_it_fails_again);
	tcase_set_timeout(tf, 60);
	suite_add_tcase(s, tf);

	tcase_add_unchecked_fixture(tr, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tr, test_engine_resume_after_crash_in_stage_writes_no_second_version);
	tcase_add_test(tr, test_engine_resume_after_crash_before_stage_landed_writes_the_journaled_value);
	tcase_add_test(tr, test_engine_resume_on_non_staging_provider_finds_the_landed_write);
	tcase_set_timeout(tr, 60);
	suite_add_tcase(s, tr);

	tcase_add_unchecked_fixture(td, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(td, test_engine_shared_dependent_restarts_once_per_run);
	tcase_add_test(td, test_engine_dependent_of_failed_rotation_is_skipped);
	tcase_add_test(td, test_engine_no_restart_leaves_dependents_alone);
	tcase_set_timeout(td, 60);
	suite_add_tcase(s, td);

	tcase_add_unchecked_fixture(tp, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tp, test_pool_never_exceeds_a_providers_cap_and_uses_it);
	tcase_add_test(tp, test_pool_parallel_is_a_global_cap_and_defaults_to_the_sum_of_caps);
	tcase_add_test(tp, test_pool_a_slow_provider_does_not_hold_up_the_others);
	tcase_add_test(tp, test_pool_lower_tier_starts_first);
	tcase_add_test(tp, test_pool_tier_is_a_priority_not_a_barrier);
	tcase_add_test(tp, test_pool_stop_leaves_the_run_open_and_resume_finishes_each_once);
	tcase_add_test(tp, test_pool_no_provider_is_opened_once_workers_run);
	tcase_set_timeout(tp, 60);
	suite_add_tcase(s, tp);
	return s;
}
