/*
 * The rotation engine (see engine.h for the state machine).
 *
 * Invariants:
 *  - a journal step is durable before the external call that follows it;
 *  - the new value exists in plaintext only in sodium memory; the journal
 *    holds it sealed from "generated" until "done", then drops it;
 *  - a stage that may have reached the provider (error or crash) is looked up
 *    (find_staged) before anything is written again, so a retry never creates
 *    a second version nor overwrites someone else's;
 *  - a dependent restarts once per run, after every secret of the run it
 *    depends on has left the pipeline.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rekey/audit.h"
#include "rekey/call.h"
#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/engine.h"
#include "rekey/exec.h"
#include "rekey/fault.h"
#include "rekey/gen.h"
#include "rekey/log.h"
#include "rekey/policy.h"
#include "rekey/provider.h"
#include "rekey/step.h"
#include "rekey/store.h"
#include "rekey/util.h"

/* How long one step's provider calls may take before they give up. */
#define RK_STEP_DEADLINE_MS (5 * 60 * 1000)

/*
 * A job is small while it waits or after it has run (name, tier, policy,
 * provider, dependents, outcome): its inventory row and journal row are in
 * memory only while a worker has it, so a run of any size holds the
 * rotations in flight, not the batch.
 */
struct job {
	json_t *row;			/* the secret's DB row (owned), while loaded */
	const json_t *spec;		/* row["spec"] */
	char *name;			/* owned */
	json_t *deps;			/* the spec's dependents, kept when row is dropped */
	const struct rk_policy *pol;
	struct rk_provider *prov;
	struct rk_loc loc;		/* spec["locator"] parsed for prov */
	struct rk_rotation *rot;	/* the journal row (owned), while loaded */
	/* Of the journal row, what is kept when it is dropped (owned strings). */
	enum rk_step state;
	char *old_version, *new_version, *error;
	int restoring;			/* a rollback: rot->restore_version was set */
	struct rk_secret *value;	/* the new value while in flight */
	int resumed;			/* the journal came from an earlier process */
	int64_t t0, t1;			/* loaded; left the pipeline (0: not yet) */
	int tier;			/* the priority of its rotation (0 first) */
	struct rk_call call;		/* deadline, stop flag and priority of its provider calls */
	enum rk_result result;
	int dep_failed;			/* a dependent of this secret failed to restart */
	int dep_pending;		/* a dependent of it waits for a secret still in flight */
	int conflicts;			/* stages lost to another writer in this process */
	int rollback_queued;		/* restart.on_failure: rollback will restore it */
};

static void
job_free(struct job *j)
{
	rk_secret_free(j->value);
	if (j->rot != NULL)
		rk_store_rot_free(j->rot, 1);
	rk_loc_free(&j->loc);
	json_decref(j->row);
	json_decref(j->deps);
	free(j->name);
	free(j->old_version);
	free(j->new_version);
	free(j->error);
}

/* A new, empty journal row for j (RK_ENOMEM). */
static int
job_new_rot(struct job *j, struct rk_error *err)
{
	if (j->rot == NULL && (j->rot = calloc(1, sizeof(*j->rot))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}

/* The journal's sealed copy of the new value, no longer needed in memory. */
static void
drop_sealed_new(struct job *j)
{
	free(j->rot->sealed_new);
	j->rot->sealed_new = NULL;
	j->rot->sealed_new_len = 0;
}

static void
seal_ad(char *ad, size_t n, const struct rk_rotation *rot, const char *which)
{
	snprintf(ad, n, "rekey-journal\n%s\n%s\n%s", rot->run_id, rot->secret, which);
}

static void
log_step(const struct job *j, const char *run_id, const char *step_name)
{
	rk_log(RK_LOG_INFO, "rotation.step", "run_id", run_id, "secret", j->name, "provider",
	       j->prov ? j->prov->name : NULL, "step", step_name, NULL);
}

static int
step(struct rk_ctx *ctx, struct job *j, enum rk_step code, const char *detail,
     struct rk_error *err)
{
	const char *name = rk_step_name(code);
	int r;

	if ((r = rk_store_rot_step(ctx->store, j->rot, name, detail, rk_now(ctx), err)) < 0)
		return r;
	log_step(j, j->rot->run_id, name);
	return 0;
}

static enum rk_step
state_of(const struct job *j)
{
	return j->rot != NULL ? rk_step_parse(j->rot->state) : j->state;
}

/* ---- the steps ---- */

/*
 * A rollback on a provider without versions names the rotation it undoes
 * ("journal:RUN"): the value to restore is that rotation's sealed previous
 * value, the only copy there is.
 */
#define JOURNAL_PREFIX "journal:"

static int
restore_from_journal(struct rk_ctx *ctx, const char *run_id, const char *name,
		     struct rk_secret **out, struct rk_error *err)
{
	struct rk_rotation *src = NULL;
	char ad[600];
	int r;

	*out = NULL;
	if ((r = rk_store_rot_get(ctx->store, run_id, name, &src, err)) < 0)
		return r;
	if (src->sealed_old == NULL)
		r = rk_error_set(err, RK_ENOTFOUND, "'%s' did not exist before run %s: there is no "
				 "previous value to restore", name, run_id);
	else {
		seal_ad(ad, sizeof(ad), src, "old");
		r = rk_unseal(ctx->keys, ad, src->sealed_old, src->sealed_old_len, out, err);
	}
	rk_store_rot_free(src, 1);
	return r;
}

static int
do_generate(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	struct rk_secret *old = NULL;
	struct rk_version ver = { "" };
	char ad[600];
	int r;

	r = rk_provider_read(j->prov, &j->call, &j->loc, &old, &ver, err);
	if (r == RK_ENOTFOUND) {
		rk_error_clear(err);
		old = NULL;
		ver.id[0] = '\0';
	} else if (r < 0) {
		goto out;
	}
	snprintf(j->rot->old_version, sizeof(j->rot->old_version), "%s", ver.id);
	j->rot->old_fp[0] = '\0';
	free(j->rot->sealed_old);
	j->rot->sealed_old = NULL;
	j->rot->sealed_old_len = 0;
	if (old != NULL) {
		rk_fingerprint(ctx->keys, old, j->rot->old_fp);
		/* Without provider versions, the previous value survives only here (sealed). */
		if (!(rk_provider_caps(j->prov) & RK_CAP_VERSIONS)) {
			seal_ad(ad, sizeof(ad), j->rot, "old");
			if ((r = rk_seal(ctx->keys, ad, old, &j->rot->sealed_old, &j->rot->sealed_old_len,
					 err)) < 0)
				goto out;
		}
	}
	rk_secret_free(j->value);
	j->value = NULL;
	drop_sealed_new(j);
	j->rot->new_fp[0] = '\0';
	if (strncmp(j->rot->restore_version, JOURNAL_PREFIX, strlen(JOURNAL_PREFIX)) == 0) {
		if ((r = restore_from_journal(ctx, j->rot->restore_version + strlen(JOURNAL_PREFIX),
					      j->name, &j->value, err)) < 0)
			goto out;
	} else if (j->rot->restore_version[0] != '\0') {
		/* A rollback: the "new" value is the one an earlier version holds. */
		struct rk_version to;
		snprintf(to.id, sizeof(to.id), "%s", j->rot->restore_version);
		if ((r = rk_provider_read_version(j->prov, &j->call, &j->loc, &to, &j->value, err)) < 0)
			goto out;
	} else if (rk_provider_generates(j->prov, &j->loc)) {
		/* The provider makes the value at stage (a Transit key); nothing to seal. */
		r = step(ctx, j, RK_STEP_GENERATED, "(by provider)", err);
		goto out;
	} else if ((r = rk_gen_generate(j->pol->gen, &j->value, err)) < 0) {
		goto out;
	}
	rk_fingerprint(ctx->keys, j->value, j->rot->new_fp);
	seal_ad(ad, sizeof(ad), j->rot, "new");
	if ((r = rk_seal(ctx->keys, ad, j->value, &j->rot->sealed_new, &j->rot->sealed_new_len,
			 err)) < 0)
		goto out;
	r = step(ctx, j, RK_STEP_GENERATED, j->rot->old_version[0] ? j->rot->old_version : "(new)", err);
out:
	rk_secret_free(old);
	return r;
}

static int
ensure_value(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	char ad[600];

	if (j->value != NULL || rk_provider_generates(j->prov, &j->loc))
		return 0;
	if (j->rot->sealed_new == NULL)
		return rk_error_set(err, RK_EINTERNAL, "journal of '%s' has no sealed value", j->name);
	seal_ad(ad, sizeof(ad), j->rot, "new");
	return rk_unseal(ctx->keys, ad, j->rot->sealed_new, j->rot->sealed_new_len, &j->value, err);
}

static void
stage_req(const struct job *j, struct rk_stage_req *req, const struct rk_version *expected,
	  struct rk_version *restore)
{
	req->secret_name = j->name;
	req->run_id = j->rot->run_id;
	req->idem_key = j->rot->idem_key;
	req->value = j->value;
	req->expected = expected;
	req->restore = NULL;
	if (restore != NULL && j->rot->restore_version[0] != '\0') {
		snprintf(restore->id, sizeof(restore->id), "%s", j->rot->restore_version);
		req->restore = restore;
	}
}

static int
do_stage(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	struct rk_version expected, restore, nv = { "" };
	struct rk_stage_req req;
	int r;

	if ((r = ensure_value(ctx, j, err)) < 0)
		return r;
	snprintf(expected.id, sizeof(expected.id), "%s", j->rot->old_version);
	stage_req(j, &req, &expected, &restore);
	if (j->resumed) {
		/* An earlier process may have written before it died: look first. */
		r = rk_provider_find_staged(j->prov, &j->call, &j->loc, &req, &nv, err);
		if (r == 0)
			goto staged;
		if (r != RK_ENOTFOUND)
			return r;
		rk_error_clear(err);
	}
	r = rk_provider_stage(j->prov, &j->call, &j->loc, &req, &nv, err);
	RK_FAULT("stage-call");
	if (r == RK_ETRANSIENT || r == RK_ECONFLICT || r == RK_EIO) {
		/* Unknown outcome, or a precondition that our own landed write may explain. */
		struct rk_error e2 = { 0 };
		if (rk_provider_find_staged(j->prov, &j->call, &j->loc, &req, &nv, &e2) == 0) {
			rk_error_clear(err);
			r = 0;
		}
	}
	if (r < 0)
		return r;
staged:
	snprintf(j->rot->new_version, sizeof(j->rot->new_version), "%s", nv.id);
	return step(ctx, j, RK_STEP_STAGED, nv.id, err);
}

static int
run_hook(struct rk_ctx *ctx, struct job *j, const struct rk_hook *h, const char *what,
	 struct rk_error *err)
{
	char run_env[128], name_env[300], envir_env[160];
	const char *env[4];
	struct rk_exec_opts o;

	(void)ctx;
	snprintf(run_env, sizeof(run_env), "REKEY_RUN_ID=%s", j->rot->run_id);
	snprintf(name_env, sizeof(name_env), "REKEY_SECRET=%s", j->name);
	snprintf(envir_env, sizeof(envir_env), "REKEY_ENVIRONMENT=%s",
		 json_string_value(json_object_get(j->spec, "environment")));
	env[0] = run_env;
	env[1] = name_env;
	env[2] = envir_env;
	env[3] = NULL;
	o.stdin_value = j->value;
	o.timeout_ms = h->timeout_ms;
	o.env = env;
	o.what = what;
	return rk_exec_run(h->argv, &o, err);
}

static int
do_verify(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	struct rk_version nv;
	struct rk_secret *back = NULL;
	char fp[RK_FP_HEX_LEN + 1];
	int r;

	if ((r = ensure_value(ctx, j, err)) < 0)
		return r;
	snprintf(nv.id, sizeof(nv.id), "%s", j->rot->new_version);
	if ((r = rk_provider_read_version(j->prov, &j->call, &j->loc, &nv, &back, err)) < 0)
		return r;
	rk_fingerprint(ctx->keys, back, fp);
	if (rk_provider_generates(j->prov, &j->loc)) {
		/* Nothing to compare with: record what the provider made. */
		snprintf(j->rot->new_fp, sizeof(j->rot->new_fp), "%s", fp);
		rk_secret_free(j->value);
		j->value = back;	/* hooks get the descriptor, not a secret */
		back = NULL;
	}
	rk_secret_free(back);
	if (strcmp(fp, j->rot->new_fp) != 0)
		return rk_error_set(err, RK_ECONFLICT,
				    "verify: version %s read back from provider '%s' is not the "
				    "value rekey wrote", nv.id, j->prov->name);
	if (j->pol->verify.argv != NULL &&
	    (r = run_hook(ctx, j, &j->pol->verify, "verify hook", err)) < 0)
		return r;
	return step(ctx, j, RK_STEP_VERIFIED, NULL, err);
}

static int
do_set(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	int r;

	if ((r = ensure_value(ctx, j, err)) < 0)
		return r;
	if ((r = run_hook(ctx, j, &j->pol->set, "set hook", err)) < 0)
		return r;
	return step(ctx, j, RK_STEP_SET, NULL, err);
}

static int
do_promote(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	struct rk_version nv, ov;
	int r;

	snprintf(nv.id, sizeof(nv.id), "%s", j->rot->new_version);
	snprintf(ov.id, sizeof(ov.id), "%s", j->rot->old_version);
	if ((r = rk_provider_promote(j->prov, &j->call, &j->loc, &nv, &ov, err)) < 0)
		return r;
	RK_FAULT("promote-call");
	if ((r = step(ctx, j, RK_STEP_PROMOTED, nv.id, err)) < 0) {
		/*
		 * The new value is live: undoing it now would be wrong. Carry on as
		 * promoted; `rekey rotate --resume` records it if the journal lags.
		 */
		rk_log_err(err, "'%s' is promoted in provider '%s' but the journal could not "
			   "record it; run `rekey rotate --resume %s` later", j->name, j->prov->name,
			   j->rot->run_id);
		rk_error_clear(err);
		snprintf(j->rot->state, sizeof(j->rot->state), "promoted");
	}
	RK_FAULT("promoted");
	return 0;
}

/* Runs after the "promoted" step, and again on resume (it is idempotent). */
static int
record_promoted(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	json_t *detail;
	int r;

	if ((r = rk_store_secret_promoted(ctx->store, j->name, j->rot->run_id, j->rot->new_version,
					  j->rot->new_fp, rk_now(ctx), err)) < 0)
		return r;
	detail = json_pack("{s:s, s:s, s:s, s:s}", "run_id", j->rot->run_id, "provider",
			   j->prov->name, "old_version", j->rot->old_version, "new_version",
			   j->rot->new_version);
	if (j->rot->restore_version[0] != '\0')
		json_object_set_new(detail, "restored_version", json_string(j->rot->restore_version));
	r = rk_audit(ctx, j->rot->restore_version[0] ? "secret.rolled_back" : "secret.rotated",
		     j->name, detail, err);
	json_decref(detail);
	return r;
}

/* Undo after stage when verify or set failed. */
static int
undo_stage(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	unsigned caps = rk_provider_caps(j->prov);
	struct rk_version to, nv = { "" }, expected;
	struct rk_stage_req req;
	char idem[RK_UUID_LEN + 1], ad[600];
	struct rk_secret *old = NULL;
	int r;

	if (caps & RK_CAP_STAGING)
		return 0;	/* never became current: nothing to undo */
	if (j->rot->old_version[0] == '\0' && j->rot->sealed_old == NULL)
		return rk_error_set(err, RK_EUNSUPPORTED,
				    "the secret did not exist before; the new value was left in place");
	/* Derived from the stage key, so no secret name can collide with it. */
	rk_keys_uuid(ctx->keys, j->rot->idem_key, "rollback", idem);
	snprintf(to.id, sizeof(to.id), "%s", j->rot->old_version);
	snprintf(expected.id, sizeof(expected.id), "%s", j->rot->new_version);
	stage_req(j, &req, &expected, NULL);
	req.idem_key = idem;
	if (caps & RK_CAP_VERSIONS)
		return rk_provider_rollback(j->prov, &j->call, &j->loc, &to, &req, &nv, err);
	seal_ad(ad, sizeof(ad), j->rot, "old");
	if ((r = rk_unseal(ctx->keys, ad, j->rot->sealed_old, j->rot->sealed_old_len, &old, err)) < 0)
		return r;
	req.value = old;
	r = rk_provider_stage(j->prov, &j->call, &j->loc, &req, &nv, err);
	rk_secret_free(old);
	return r;
}

static void
fail_job(struct rk_ctx *ctx, struct job *j, const struct rk_error *cause)
{
	struct rk_error e2 = { 0 };
	int staged = rk_step_is_staged(state_of(j));
	enum rk_step final = RK_STEP_FAILED;

	snprintf(j->rot->error, sizeof(j->rot->error), "%s", cause->msg);
	if (staged) {
		if (undo_stage(ctx, j, &e2) == 0) {
			final = RK_STEP_ROLLED_BACK;
		} else {
			size_t used = strlen(j->rot->error);
			snprintf(j->rot->error + used, sizeof(j->rot->error) - used,
				 "; rolling back failed too: %s", e2.msg);
			rk_error_clear(&e2);
		}
	}
	/*
	 * The new value is dropped: this run will not write it again. The sealed
	 * previous value stays: without provider versions it is the only copy.
	 */
	drop_sealed_new(j);
	if (step(ctx, j, final, j->rot->error, &e2) < 0)
		rk_log_err(&e2, "cannot journal the failure of '%s'", j->name);
	rk_error_clear(&e2);
	if (rk_store_secret_failed(ctx->store, j->name, j->rot->run_id, j->rot->error,
				   j->pol->max_attempts, &e2) < 0)
		rk_log_err(&e2, "cannot record the failure of '%s'", j->name);
	rk_error_clear(&e2);
	{
		json_t *d = json_pack("{s:s, s:s, s:s}", "run_id", j->rot->run_id, "result",
				      rk_step_name(final), "error", j->rot->error);
		if (rk_audit(ctx, "secret.rotation_failed", j->name, d, &e2) < 0)
			rk_log_err(&e2, "cannot audit the failure of '%s'", j->name);
		json_decref(d);
	}
	j->result = final == RK_STEP_FAILED ? RK_RESULT_FAILED : RK_RESULT_ROLLED_BACK;
	rk_log(RK_LOG_ERROR, "rotation.failed", "run_id", j->rot->run_id, "secret", j->name,
	       "provider", j->prov ? j->prov->name : NULL, "step", cause->step[0] ? cause->step : NULL,
	       "result", rk_step_name(final), "error", j->rot->error, NULL);
}

/* How many times a rotation starts again after another writer got in first. */
#define CONFLICT_ATTEMPTS 3

/*
 * Someone else wrote the secret between our read and our write, and what
 * they wrote is not ours. Nothing of ours landed, so start again from
 * generate: it reads their version as the new precondition (and, on Vault
 * KV, keeps their other keys). Journaled as `planned` so a crash here
 * resumes the same way.
 */
static int
on_conflict(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	char detail[600];
	struct rk_error e2 = { 0 };
	int r;

	if (++j->conflicts >= CONFLICT_ATTEMPTS) {
		snprintf(detail, sizeof(detail), "conflict: '%s' was changed by someone else during "
			 "each of %d attempts; not overwritten (last: %s)", j->name,
			 CONFLICT_ATTEMPTS, err->msg);
		snprintf(err->msg, sizeof(err->msg), "%s", detail);
		return RK_ECONFLICT;
	}
	snprintf(detail, sizeof(detail), "conflict %d of %d, generating again: %s", j->conflicts,
		 CONFLICT_ATTEMPTS, err->msg);
	rk_log(RK_LOG_WARN, "rotation.conflict", "run_id", j->rot->run_id, "secret", j->name,
	       "provider", j->prov->name, "error", err->msg, NULL);
	rk_error_clear(err);
	if ((r = step(ctx, j, RK_STEP_PLANNED, detail, &e2)) < 0)
		*err = e2;
	return r;
}

static int on_conflict(struct rk_ctx *ctx, struct job *j, struct rk_error *err);

/*
 * A promote refused because someone else's version became current (a
 * provider that stages: ours never became current) starts again from
 * generate, as a lost stage does.
 */
static int
h_promote(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	int r = do_promote(ctx, j, err);

	if (r == RK_ECONFLICT && (rk_provider_caps(j->prov) & RK_CAP_STAGING))
		return on_conflict(ctx, j, err);

	if (r == 0 && record_promoted(ctx, j, err) < 0) {
		/* Live already; resume records it again (it is idempotent). */
		rk_log_err(err, "cannot record the promotion of '%s'", j->name);
		rk_error_clear(err);
	}
	return r;
}

/* Verified goes to set when the policy has a set hook, else straight to promote. */
static int
h_after_verify(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	int r;

	if (j->pol->set.argv != NULL) {
		r = do_set(ctx, j, err);
		RK_FAULT("set");
		return r;
	}
	return h_promote(ctx, j, err);
}

static int
h_generate(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	int r = do_generate(ctx, j, err);

	RK_FAULT("generated");
	return r;
}

/* A write lost to another writer starts again from generate (on_conflict). */
static int
h_stage(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	int r = do_stage(ctx, j, err);

	if (r == RK_ECONFLICT)
		r = on_conflict(ctx, j, err);
	RK_FAULT("staged");
	return r;
}

static int
h_verify(struct rk_ctx *ctx, struct job *j, struct rk_error *err)
{
	int r = do_verify(ctx, j, err);

	RK_FAULT("verified");
	return r;
}

/*
 * What each journal step leads to. Every handler journals the step it
 * reaches before it returns; the steps without one (promoted and after,
 * failed, rolled_back) end the forward part of a rotation.
 */
static int (*const forward[RK_STEP_COUNT])(struct rk_ctx *, struct job *, struct rk_error *) = {
	[RK_STEP_PLANNED] = h_generate,
	[RK_STEP_GENERATED] = h_stage,
	[RK_STEP_STAGED] = h_verify,
	[RK_STEP_VERIFIED] = h_after_verify,
	[RK_STEP_SET] = h_promote,
};

/* Left where it is: the journal has its last step, and --resume goes on from there. */
static void
interrupt_job(struct job *j)
{
	j->result = RK_RESULT_INTERRUPTED;
	rk_log(RK_LOG_WARN, "rotation.interrupted", "run_id", j->rot->run_id, "secret", j->name,
	       "provider", j->prov ? j->prov->name : NULL, "step", j->rot->state, NULL);
}

/*
 * Advances one rotation until it is promoted, has failed, or rekey is
 * stopping (between steps, or a provider call that returned RK_ECANCELED:
 * whatever that call did is looked up again on resume, as after a crash).
 */
static void
advance(struct rk_ctx *ctx, struct job *j)
{
	struct rk_error err = { 0 };
	enum rk_step s;

	j->call.cancel = &ctx->stop;
	j->call.priority = j->tier;
	while ((s = state_of(j)) != RK_STEP_UNKNOWN && forward[s] != NULL) {
		if (atomic_load(&ctx->stop)) {
			interrupt_job(j);
			return;
		}
		j->call.deadline_ms = rk_mono_ms() + RK_STEP_DEADLINE_MS;
		if (forward[s](ctx, j, &err) < 0) {
			if (err.code == RK_ECANCELED && atomic_load(&ctx->stop)) {
				rk_error_clear(&err);
				j->resumed = 1;	/* the call's outcome is unknown: look before writing */
				interrupt_job(j);
				return;
			}
			fail_job(ctx, j, &err);
			return;
		}
	}
	if (rk_step_is_promoted(state_of(j)))
		j->result = RK_RESULT_ROTATED;
	else if (j->result == RK_RESULT_NONE)
		j->result = state_of(j) == RK_STEP_ROLLED_BACK ? RK_RESULT_ROLLED_BACK
							   : RK_RESULT_FAILED;
}

/* ---- the worker pool ---- */

/* One provider's rotations waiting to start, most urgent first. */
struct queue {
	const struct rk_provider *prov;
	size_t *idx;		/* job indexes, by (tier, position in the run) */
	size_t n, head;
	unsigned inflight, cap;
};

struct pool {
	struct rk_ctx *ctx;
	struct job *jobs;
	struct queue *q;
	size_t nq;
	size_t waiting;		/* jobs not yet started */
	const char *run_id;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static int
by_priority(const void *a, const void *b, void *arg)
{
	const struct job *jobs = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	if (jobs[x].tier != jobs[y].tier)
		return jobs[x].tier < jobs[y].tier ? -1 : 1;
	return x < y ? -1 : x > y;
}

/*
 * Whether q's next job goes before best's: a lower tier first; at the same
 * tier the provider with fewer rotations in flight (so providers share the
 * workers), then inventory order.
 */
static int
queue_before(const struct pool *p, const struct queue *q, const struct queue *best)
{
	const struct job *a = &p->jobs[q->idx[q->head]], *b = &p->jobs[best->idx[best->head]];

	if (a->tier != b->tier)
		return a->tier < b->tier;
	if (q->inflight != best->inflight)
		return q->inflight < best->inflight;
	return by_priority(&q->idx[q->head], &best->idx[best->head], p->jobs) < 0;
}

/*
 * The next rotation to start: the most urgent head among the providers with
 * a free slot, so a slow or full provider never holds up the others and a
 * tier orders, not separates. NULL when none is left or rekey is stopping.
 */
static struct job *
pool_take(struct pool *p, struct queue **qout)
{
	struct job *j = NULL;

	pthread_mutex_lock(&p->mu);
	while (p->waiting > 0 && !atomic_load(&p->ctx->stop)) {
		struct queue *best = NULL;
		for (size_t i = 0; i < p->nq; i++) {
			struct queue *q = &p->q[i];
			if (q->head == q->n || q->inflight >= q->cap)
				continue;
			if (best == NULL || queue_before(p, q, best))
				best = q;
		}
		if (best != NULL) {
			j = &p->jobs[best->idx[best->head++]];
			best->inflight++;
			p->waiting--;
			*qout = best;
			break;
		}
		/* Every provider with work is at its cap: wait for a slot (or the stop flag). */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += RK_CALL_TICK_MS * 1000000L * 5;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	return j;
}

static void
pool_done(struct pool *p, struct queue *q)
{
	pthread_mutex_lock(&p->mu);
	q->inflight--;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Replaces *dst with a copy of src ("" when NULL); keeps *dst when out of memory. */
static void
keep_str(char **dst, const char *src)
{
	char *c = strdup(src ? src : "");

	if (c != NULL) {
		free(*dst);
		*dst = c;
	}
}

/*
 * Keeps of a job only what waiting, restarting and reporting need (name,
 * tier, policy, provider, dependents, the journal's state, versions and
 * error): job_unpark loads the rows again when a worker takes the job.
 */
static void
job_park(struct job *j)
{
	rk_loc_free(&j->loc);
	if (j->rot != NULL) {
		j->state = rk_step_parse(j->rot->state);
		j->restoring = j->rot->restore_version[0] != '\0';
		keep_str(&j->old_version, j->rot->old_version);
		keep_str(&j->new_version, j->rot->new_version);
		keep_str(&j->error, j->rot->error);
		rk_store_rot_free(j->rot, 1);
		j->rot = NULL;
	}
	if (j->row == NULL)
		return;
	if (j->deps == NULL)
		j->deps = json_incref(json_object_get(j->spec, "dependents"));
	json_decref(j->row);
	j->row = NULL;
	j->spec = NULL;
}

static int
job_unpark(struct rk_ctx *ctx, const char *run_id, struct job *j, struct rk_error *err)
{
	int r;

	if (j->rot == NULL && (r = rk_store_rot_get(ctx->store, run_id, j->name, &j->rot, err)) < 0)
		return r;
	if (j->row != NULL)
		return 0;
	if ((r = rk_store_secret_get(ctx->store, j->name, &j->row, err)) < 0)
		return r;
	j->spec = json_object_get(j->row, "spec");
	return rk_loc_parse(&j->loc, j->prov, json_object_get(j->spec, "locator"), err);
}

/*
 * Out of the pipeline: drop what only the forward part needed, so memory
 * follows the rotations in flight, not the size of the run; the sealed new
 * value goes with the journal row (the next journal step drops it from the
 * DB too).
 */
static void
job_retire(struct job *j)
{
	rk_secret_free(j->value);
	j->value = NULL;
	job_park(j);	/* frees the typed locator and the journal row */
}

/* ---- progress ---- */

static rk_engine_progress_fn progress_fn;
static void *progress_arg;

void
rk_engine_set_progress(rk_engine_progress_fn fn, void *arg)
{
	progress_fn = fn;
	progress_arg = arg;
}

/* A job left the pipeline (on a worker thread): tell the command. */
static void
progress_note(const struct job *j)
{
	if (progress_fn != NULL)
		progress_fn(progress_arg, j->name, rk_result_name(j->result));
}

static void *
pool_worker(void *arg)
{
	struct pool *p = arg;
	struct queue *q;
	struct job *j;

	rk_log_set_run(p->run_id);
	while ((j = pool_take(p, &q)) != NULL) {
		struct rk_error err = { 0 };
		if (job_unpark(p->ctx, p->run_id, j, &err) < 0) {
			/* Its row cannot be read now: left to --resume, like a stop. */
			keep_str(&j->error, err.msg);
			rk_log_err(&err, "cannot load '%s'", j->name);
			j->result = RK_RESULT_INTERRUPTED;
		} else {
			advance(p->ctx, j);
		}
		j->t1 = rk_mono_ms();
		job_retire(j);
		progress_note(j);
		pool_done(p, q);
	}
	return NULL;
}

/*
 * Runs every job still in the pipeline on `parallel` workers (0: the sum
 * of the providers' caps), at most each provider's cap of them at once.
 * Returns how many were started; an error only when no worker could be made.
 */
static int
run_jobs(struct rk_ctx *ctx, const char *run_id, struct job *jobs, size_t n, int parallel,
	 struct rk_error *err)
{
	struct pool p = { .ctx = ctx, .jobs = jobs, .run_id = run_id };
	pthread_t *th = NULL;
	size_t nth = 0, want = 0;
	int r = 0;

	if ((p.q = calloc(n ? n : 1, sizeof(*p.q))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct queue *q = NULL;
		if (jobs[i].result != RK_RESULT_NONE || jobs[i].prov == NULL)
			continue;
		for (size_t k = 0; k < p.nq && q == NULL; k++)
			if (p.q[k].prov == jobs[i].prov)
				q = &p.q[k];
		if (q == NULL) {
			q = &p.q[p.nq++];
			q->prov = jobs[i].prov;
			q->cap = rk_provider_concurrency(jobs[i].prov);
			want += q->cap;
		}
		size_t *ni = realloc(q->idx, (q->n + 1) * sizeof(*ni));
		if (ni == NULL) {
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
		q->idx = ni;
		q->idx[q->n++] = i;
		p.waiting++;
	}
	for (size_t k = 0; k < p.nq; k++)
		qsort_r(p.q[k].idx, p.q[k].n, sizeof(size_t), by_priority, jobs);
	if (parallel > 0)
		want = (size_t)parallel;
	if (want > RK_PARALLEL_MAX)
		want = RK_PARALLEL_MAX;
	if (want > p.waiting)
		want = p.waiting;
	if (want == 0)
		goto out;
	if ((th = calloc(want, sizeof(*th))) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	ctx->workers_running = 1;
	for (nth = 0; nth < want; nth++)
		if (pthread_create(&th[nth], NULL, pool_worker, &p) != 0)
			break;
	if (nth == 0) {
		r = rk_error_set(err, RK_EINTERNAL, "cannot start a worker thread");
	} else {
		char nw[24];
		snprintf(nw, sizeof(nw), "%zu", nth);
		rk_log(RK_LOG_DEBUG, "run.workers", "run_id", run_id, "workers", nw, NULL);
		for (size_t t = 0; t < nth; t++)
			pthread_join(th[t], NULL);
	}
	ctx->workers_running = 0;
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
out:
	/* Stopped before their turn: journaled as planned, for --resume. */
	for (size_t k = 0; k < p.nq; k++) {
		for (size_t i = p.q[k].head; i < p.q[k].n; i++)
			jobs[p.q[k].idx[i]].result = RK_RESULT_INTERRUPTED;
		free(p.q[k].idx);
	}
	free(p.q);
	free(th);
	return r;
}

/* ---- dependents ---- */

/* Above this, REKEY_SECRETS would near the kernel's limit for one variable (128 KiB). */
#define SECRETS_ENV_MAX (64 * 1024)

/*
 * Tells a dependent which secrets changed: REKEY_SECRETS (comma-separated)
 * when it fits, else REKEY_SECRETS_FILE, a 0600 file of one name a line in
 * the state dir, removed after the dependent ran. REKEY_SECRETS_COUNT always.
 */
static int
run_exec_dependent(struct rk_ctx *ctx, const char *run_id, const json_t *dep, const json_t *names,
		   int64_t timeout, struct rk_error *err)
{
	const json_t *argv_j = json_object_get(dep, "argv"), *nm;
	size_t n = json_array_size(argv_j), i, len = 0;
	char **argv = calloc(n + 1, sizeof(*argv));
	char run_env[128], count_env[48], *sec_env = NULL, *path = NULL;
	const char *env[4];
	struct rk_exec_opts o;
	FILE *f = NULL;
	int r = 0;

	if (argv == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		argv[i] = (char *)json_string_value(json_array_get(argv_j, i));
	json_array_foreach(names, i, nm)
		len += json_string_length(nm) + 1;
	if (len <= SECRETS_ENV_MAX) {
		size_t used;
		if ((sec_env = malloc(len + 16)) == NULL) {
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
		used = (size_t)snprintf(sec_env, len + 16, "REKEY_SECRETS=");
		json_array_foreach(names, i, nm)
			used += (size_t)snprintf(sec_env + used, len + 16 - used, "%s%s",
						 i ? "," : "", json_string_value(nm));
	} else {
		char file[160];
		int fd;
		snprintf(file, sizeof(file), "dependent-%s.XXXXXX", run_id);
		if ((path = rk_path_join(ctx->cfg->state_dir, file)) == NULL ||
		    (sec_env = malloc(strlen(path) + 32)) == NULL) {
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
		if ((fd = mkstemp(path)) < 0 || (f = fdopen(fd, "w")) == NULL) {
			if (fd >= 0)
				close(fd);
			r = rk_error_set(err, RK_EIO, "cannot write the list of secrets for a "
					 "dependent in %s", ctx->cfg->state_dir);
			free(path);
			path = NULL;
			goto out;
		}
		json_array_foreach(names, i, nm)
			fprintf(f, "%s\n", json_string_value(nm));
		if (fclose(f) != 0) {
			f = NULL;
			r = rk_error_set(err, RK_EIO, "cannot write %s", path);
			goto out;
		}
		f = NULL;
		snprintf(sec_env, strlen(path) + 32, "REKEY_SECRETS_FILE=%s", path);
	}
	snprintf(run_env, sizeof(run_env), "REKEY_RUN_ID=%s", run_id);
	snprintf(count_env, sizeof(count_env), "REKEY_SECRETS_COUNT=%zu", json_array_size(names));
	env[0] = run_env;
	env[1] = count_env;
	env[2] = sec_env;
	env[3] = NULL;
	o.stdin_value = NULL;	/* a dependent never gets a value */
	o.timeout_ms = timeout > 0 ? timeout : RK_DEFAULT_HOOK_TIMEOUT_MS;
	o.env = env;
	o.what = "dependent";
	r = rk_exec_run(argv, &o, err);
out:
	if (path != NULL) {
		unlink(path);
		free(path);
	}
	free(sec_env);
	free(argv);
	return r;
}

static int
restart_one(struct rk_ctx *ctx, const char *run_id, const char *restart_id, const json_t *dep,
	    const json_t *names, const struct rk_policy *pol, struct rk_provider *p,
	    struct rk_error *err)
{
	int64_t timeout = json_integer_value(json_object_get(dep, "timeout_ms"));
	const char *target = json_string_value(json_object_get(dep, "target"));
	/* SIGTERM stops a restart's waits (rollout polls included) like a rotation's. */
	struct rk_call call = { .cancel = &ctx->stop };
	int r;

	if (p == NULL)
		return run_exec_dependent(ctx, run_id, dep, names, timeout, err);
	if ((r = rk_provider_restart(p, &call, target, restart_id, err)) < 0)
		return r;
	if (pol->restart_wait)
		r = rk_provider_wait_restarted(
			p, &call, target,
			rk_mono_ms() + (timeout > 0 ? timeout : pol->restart_timeout_ms), err);
	return r;
}

/* One dependent of the run, and the jobs that feed it. */
struct dep_entry {
	const json_t *dep;		/* the first inventory entry naming it */
	const struct rk_policy *pol;	/* of the first job naming it */
	json_t *names;			/* secrets of the run that changed for it */
	size_t *jobs;			/* indexes of every job naming it */
	size_t njobs;
	int interrupted;		/* one of them is still in the pipeline: not yet */
	int rollback;			/* a job feeding it says restart.on_failure: rollback */
	struct rk_provider *prov;	/* NULL: an exec dependent */
	size_t slot;			/* its provider's place in restart_pool.slots */
	int todo, taken;		/* to be restarted by a worker; picked up */
	int round;			/* 0, or how many times a retry asked for it again */
	enum rk_dep_result result;
	struct rk_error err;
	int64_t ms;
};

/*
 * The restarts of a run, throttled: at most the provider's
 * restart_concurrency rollouts of one provider at a time (exec dependents
 * one at a time), on a few threads, so one slow rollout does not hold up
 * the others.
 */
struct restart_pool {
	struct rk_ctx *ctx;
	const char *run_id;
	struct dep_entry *ents;
	size_t n;
	struct {
		const struct rk_provider *p;
		unsigned cap, busy;
	} slots[64];
	size_t nslots;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static size_t
pool_slot(struct restart_pool *rp, const struct rk_provider *p)
{
	size_t i;

	for (i = 0; i < rp->nslots; i++)
		if (rp->slots[i].p == p)
			return i;
	if (i == RK_ARRAY_SIZE(rp->slots))
		return 0;	/* more providers than slots: share the first one's */
	rp->slots[i].p = p;
	rp->slots[i].cap = 1;
	if (p != NULL && p->ops->restart_concurrency != NULL)
		rp->slots[i].cap = p->ops->restart_concurrency(p);
	if (rp->slots[i].cap == 0)
		rp->slots[i].cap = 1;
	rp->nslots++;
	return i;
}

/* Journals, restarts and journals again one dependent (on a worker). */
static void
restart_entry(struct restart_pool *rp, struct dep_entry *e)
{
	struct rk_ctx *ctx = rp->ctx;
	const char *key = json_string_value(json_object_get(e->dep, "key"));
	int64_t t0 = rk_mono_ms();
	char rid[96];
	struct rk_error e2 = { 0 };

	if (atomic_load(&ctx->stop)) {
		e->result = RK_DEP_PENDING;	/* stopped before its turn: for --resume */
		return;
	}
	if (rk_store_dep_set(ctx->store, rp->run_id, key, "restarting", NULL, rk_now(ctx),
			     &e->err) < 0) {
		rk_log_err(&e->err, "cannot journal restart of %s", key);
		e->result = RK_DEP_FAILED;
		return;
	}
	/* The provider tells restarts apart by this id: a new round is a new restart. */
	if (e->round > 0)
		snprintf(rid, sizeof(rid), "%s~%d", rp->run_id, e->round);
	else
		snprintf(rid, sizeof(rid), "%s", rp->run_id);
	if (restart_one(ctx, rp->run_id, rid, e->dep, e->names, e->pol, e->prov, &e->err) < 0) {
		if (e->err.code == RK_ECANCELED && atomic_load(&ctx->stop)) {
			/* Not confirmed: --resume restarts it (a kubernetes restart is idempotent per run). */
			rk_error_clear(&e->err);
			e->result = RK_DEP_PENDING;
			e->ms = rk_mono_ms() - t0;
			return;
		}
		e->result = RK_DEP_FAILED;
	} else {
		RK_FAULT("restart-call");
		e->result = RK_DEP_RESTARTED;
	}
	if (rk_store_dep_set(ctx->store, rp->run_id, key,
			     e->result == RK_DEP_FAILED ? "failed" : "done", e->err.msg, rk_now(ctx),
			     &e2) < 0)
		rk_log_err(&e2, "cannot journal restart of %s", key);
	e->ms = rk_mono_ms() - t0;
}

static void *
restart_worker(void *arg)
{
	struct restart_pool *rp = arg;

	pthread_mutex_lock(&rp->mu);
	for (;;) {
		struct dep_entry *pick = NULL;
		int left = 0;
		for (size_t i = 0; i < rp->n && pick == NULL; i++) {
			struct dep_entry *e = &rp->ents[i];
			if (!e->todo || e->taken)
				continue;
			left = 1;
			if (rp->slots[e->slot].busy < rp->slots[e->slot].cap)
				pick = e;
		}
		if (!left)
			break;
		if (pick == NULL) {
			pthread_cond_wait(&rp->cv, &rp->mu);
			continue;
		}
		pick->taken = 1;
		rp->slots[pick->slot].busy++;
		pthread_mutex_unlock(&rp->mu);
		restart_entry(rp, pick);
		pthread_mutex_lock(&rp->mu);
		rp->slots[pick->slot].busy--;
		pthread_cond_broadcast(&rp->cv);
	}
	pthread_mutex_unlock(&rp->mu);
	return NULL;
}

#define RESTART_THREADS_MAX 32

/* Runs every entry marked todo, throttled per provider. */
static void
run_restarts(struct restart_pool *rp, size_t ntodo)
{
	pthread_t th[RESTART_THREADS_MAX];
	size_t want = 0, nth = 0;

	for (size_t i = 0; i < rp->nslots; i++)
		want += rp->slots[i].cap;
	if (want > ntodo)
		want = ntodo;
	if (want > RESTART_THREADS_MAX)
		want = RESTART_THREADS_MAX;
	if (want <= 1) {
		restart_worker(rp);
		return;
	}
	pthread_mutex_init(&rp->mu, NULL);
	pthread_cond_init(&rp->cv, NULL);
	for (; nth < want; nth++)
		if (pthread_create(&th[nth], NULL, restart_worker, rp) != 0)
			break;
	if (nth == 0)
		restart_worker(rp);	/* no thread to be had: this one does it all */
	for (size_t i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&rp->mu);
	pthread_cond_destroy(&rp->cv);
}

/*
 * Restarts each dependent of the run once: after every rotation that feeds it
 * has left the pipeline, and only if at least one of them changed a value.
 * The dependents are indexed by key first (one pass over the jobs), so the
 * cost is linear in the number of (secret, dependent) pairs. Marks the jobs
 * of a failed dependent, adds to *rollback (when not NULL) the changed
 * secrets that feed a failed dependent under restart.on_failure: rollback,
 * and returns how many restarts failed.
 */
static size_t
restart_dependents(struct rk_ctx *ctx, const char *run_id, struct job *jobs, size_t n,
		   json_t *report_deps, int no_restart, json_t *rollback)
{
	json_t *index = json_object();	/* key -> position in ents */
	struct restart_pool rp;
	struct dep_entry *ents = NULL;
	size_t nents = 0, cap = 0, failed = 0, ntodo = 0;

	memset(&rp, 0, sizeof(rp));
	for (size_t i = 0; i < n && index; i++) {
		const json_t *dep;
		size_t k;
		json_array_foreach(jobs[i].deps ? jobs[i].deps
						: json_object_get(jobs[i].spec, "dependents"), k, dep) {
			const char *key = json_string_value(json_object_get(dep, "key"));
			json_t *pos = json_object_get(index, key);
			struct dep_entry *e;
			if (pos == NULL) {
				if (nents == cap) {
					size_t nc = cap ? cap * 2 : 16;
					struct dep_entry *ne = realloc(ents, nc * sizeof(*ne));
					if (ne == NULL)
						goto out;
					ents = ne;
					cap = nc;
				}
				e = &ents[nents];
				memset(e, 0, sizeof(*e));
				e->dep = dep;
				e->pol = jobs[i].pol;
				if ((e->names = json_array()) == NULL)
					goto out;
				json_object_set_new(index, key, json_integer((json_int_t)nents));
				nents++;
			} else {
				e = &ents[json_integer_value(pos)];
			}
			if (e->njobs == 0 || e->jobs[e->njobs - 1] != i) {
				size_t *nj = realloc(e->jobs, (e->njobs + 1) * sizeof(*nj));
				if (nj == NULL)
					goto out;
				e->jobs = nj;
				e->jobs[e->njobs++] = i;
				if (jobs[i].result == RK_RESULT_INTERRUPTED)
					e->interrupted = 1;
				if (rk_result_changed(jobs[i].result))
					json_array_append_new(e->names, json_string(jobs[i].name));
				if (jobs[i].pol->restart_rollback)
					e->rollback = 1;
			}
		}
	}
	/* Decide each one; providers are opened here, before any worker starts. */
	for (size_t d = 0; d < nents; d++) {
		struct dep_entry *e = &ents[d];
		const char *key = json_string_value(json_object_get(e->dep, "key"));
		char state[32];

		if (rk_store_dep_state(ctx->store, run_id, key, state, sizeof(state), &e->round,
				       &e->err) < 0) {
			rk_log_err(&e->err, "cannot read restart state of %s", key);
			e->result = RK_DEP_PENDING;
		} else if (strcmp(state, "done") == 0) {
			e->result = RK_DEP_RESTARTED;	/* by the process that ran before a crash */
		} else if (e->interrupted) {
			e->result = RK_DEP_PENDING;	/* a secret of it is still in the pipeline */
		} else if (json_array_size(e->names) == 0) {
			e->result = RK_DEP_SKIPPED;
		} else if (no_restart) {
			e->result = RK_DEP_NOT_RESTARTED;
		} else if (strcmp(json_string_value(json_object_get(e->dep, "kind")), "exec") != 0 &&
			   rk_ctx_provider(ctx, json_string_value(json_object_get(e->dep, "provider")),
					   &e->prov, &e->err) < 0) {
			e->result = RK_DEP_FAILED;
		} else {
			e->slot = pool_slot(&rp, e->prov);
			e->todo = 1;
			ntodo++;
		}
	}
	rp.ctx = ctx;
	rp.run_id = run_id;
	rp.ents = ents;
	rp.n = nents;
	if (ntodo > 0)
		run_restarts(&rp, ntodo);
	for (size_t d = 0; d < nents; d++) {
		struct dep_entry *e = &ents[d];
		const char *key = json_string_value(json_object_get(e->dep, "key"));

		rk_log(e->result == RK_DEP_FAILED ? RK_LOG_ERROR : RK_LOG_INFO, "dependent.restart",
		       "run_id", run_id, "dependent", key, "result", rk_dep_result_name(e->result),
		       "error", e->err.code ? e->err.msg : NULL, NULL);
		json_array_append_new(report_deps,
				      json_pack("{s:s, s:s, s:s, s:I}", "dependent", key, "result",
						rk_dep_result_name(e->result), "error",
						e->err.code ? e->err.msg : "", "duration_ms",
						(json_int_t)e->ms));
		for (size_t q = 0; e->result == RK_DEP_PENDING && q < e->njobs; q++)
			jobs[e->jobs[q]].dep_pending = 1;
		if (e->result != RK_DEP_FAILED)
			continue;
		failed++;
		for (size_t q = 0; q < e->njobs; q++) {
			struct job *j = &jobs[e->jobs[q]];
			j->dep_failed = 1;
			if (rollback != NULL && e->rollback && rk_result_changed(j->result) &&
			    !j->rollback_queued) {
				j->rollback_queued = 1;
				json_array_append_new(rollback, json_string(j->name));
			}
		}
	}
out:
	for (size_t d = 0; d < nents; d++) {
		json_decref(ents[d].names);
		free(ents[d].jobs);
	}
	free(ents);
	json_decref(index);
	return failed;
}

/* ---- runs ---- */

static int
load_job(struct rk_ctx *ctx, struct job *j, const char *name, struct rk_error *err)
{
	int r;

	memset(j, 0, sizeof(*j));
	j->t0 = rk_mono_ms();
	if ((r = rk_store_secret_get(ctx->store, name, &j->row, err)) < 0)
		return r;
	j->spec = json_object_get(j->row, "spec");
	if ((j->name = strdup(name)) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	j->tier = (int)json_integer_value(json_object_get(j->row, "tier"));
	if ((j->pol = rk_policy_find(ctx->policies,
				     json_string_value(json_object_get(j->spec, "policy")))) == NULL)
		return rk_error_set(err, RK_EINVAL,
				    "secret '%s' uses policy '%s', which no longer exists", name,
				    json_string_value(json_object_get(j->spec, "policy")));
	if ((r = rk_ctx_provider(ctx, json_string_value(json_object_get(j->spec, "provider")),
				 &j->prov, err)) < 0)
		return r;
	return rk_loc_parse(&j->loc, j->prov, json_object_get(j->spec, "locator"), err);
}

/* A field of the journal row, loaded or kept. */
#define JOB_OUT(j, f) ((j)->rot ? (j)->rot->f : (j)->f ? (j)->f : "")

static json_t *
job_report(const struct job *j)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "name", j->name, "provider",
			 j->prov ? j->prov->name : "", "result",
			 rk_result_name(j->result != RK_RESULT_NONE ? j->result : RK_RESULT_FAILED),
			 "old_version", JOB_OUT(j, old_version), "new_version",
			 JOB_OUT(j, new_version), "error", JOB_OUT(j, error), "duration_ms",
			 (json_int_t)((j->t1 ? j->t1 : rk_mono_ms()) - j->t0));
}

/*
 * Journals the end of each rotated job (restarted | restart_failed, done),
 * all in one unit: one commit for the whole run instead of two per secret.
 * Returns how many jobs changed a value.
 */
/*
 * A journal step after the job left the pipeline (its journal row is no
 * longer in memory): only the state changes; the sealed new value, no longer
 * needed by anyone, is dropped from the DB.
 */
static int
step_end(struct rk_ctx *ctx, const char *run_id, struct job *j, enum rk_step code,
	 struct rk_error *err)
{
	const char *name = rk_step_name(code);
	int r;

	if ((r = rk_store_rot_advance(ctx->store, run_id, j->name, name, rk_now(ctx), err)) < 0)
		return r;
	j->state = code;
	log_step(j, run_id, name);
	return 0;
}

static size_t
close_jobs(struct rk_ctx *ctx, const char *run_id, struct job *jobs, size_t n)
{
	struct rk_error err = { 0 };
	size_t ok = 0;
	int in_unit = rk_store_begin(ctx->store, &err) == 0;

	if (!in_unit)
		rk_log_err(&err, "cannot journal the end of the run's rotations");
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		struct rk_error e2 = { 0 };
		if (j->result != RK_RESULT_ROTATED)
			continue;
		ok++;
		if (j->restoring)
			j->result = RK_RESULT_RESTORED;
		if (!in_unit || j->dep_pending)
			continue;	/* stays promoted: --resume restarts its dependents */
		/*
		 * A failed dependent is journaled as such (the rotation itself
		 * stands: the new value is live); the run is then partial.
		 */
		if (state_of(j) == RK_STEP_PROMOTED &&
		    step_end(ctx, run_id, j,
			     j->dep_failed ? RK_STEP_RESTART_FAILED : RK_STEP_RESTARTED, &e2) == 0)
			RK_FAULT("restarted");
		if (e2.code == 0 && state_of(j) == RK_STEP_RESTARTED)
			(void)step_end(ctx, run_id, j, RK_STEP_DONE, &e2);
		if (e2.code != 0)
			rk_log_err(&e2, "cannot journal the end of '%s'", j->name);
	}
	if (in_unit && rk_store_commit(ctx->store, &err) < 0)
		rk_log_err(&err, "cannot journal the end of the run's rotations; `rekey rotate "
			   "--resume` records it");
	return ok;
}

/*
 * Drives every job of a run to its end on the worker pool, restarts
 * dependents and closes the run; when rekey was stopped (SIGTERM) the run is
 * left open with status "interrupted" in the report, for --resume.
 */
static json_t *rollback_after_restart(struct rk_ctx *ctx, const char *run_id, const json_t *names,
				      int parallel);

/*
 * Housekeeping of the providers that have some (AWS: AWSPENDING off the new
 * current), once the run's rotations and restarts are done: it shares a
 * quota with the urgent writes. Idempotent; a failure is only logged.
 */
static void
tidy_jobs(struct rk_ctx *ctx, struct job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		struct rk_error err = { 0 };
		struct rk_version nv;
		json_t *row = NULL;
		struct rk_loc loc;
		if (j->prov == NULL || j->prov->ops->tidy == NULL || !rk_result_changed(j->result) ||
		    atomic_load(&ctx->stop))
			continue;
		snprintf(nv.id, sizeof(nv.id), "%s", JOB_OUT(j, new_version));
		memset(&loc, 0, sizeof(loc));
		if (rk_store_secret_get(ctx->store, j->name, &row, &err) < 0 ||
		    rk_loc_parse(&loc, j->prov, json_object_get(json_object_get(row, "spec"),
								"locator"), &err) < 0 ||
		    rk_provider_tidy(j->prov, NULL, &loc, &nv, &err) < 0)
			rk_log(RK_LOG_WARN, "provider.tidy_failed", "secret", j->name, "provider",
			       j->prov->name, "error", err.msg, NULL);
		rk_loc_free(&loc);
		json_decref(row);
	}
}

static int
finish_run(struct rk_ctx *ctx, const char *run_id, const char *kind, struct job *jobs, size_t n,
	   int no_restart, int parallel, json_t **report, struct rk_error *err)
{
	json_t *rep = NULL, *secrets, *deps, *d, *rb = NULL;
	size_t ok, bad = 0, dep_bad = 0, stopped = 0, dep_stopped = 0;
	const char *status;
	int emergency;
	char retry[128];
	int r;

	if ((r = run_jobs(ctx, run_id, jobs, n, parallel, err)) < 0)
		return r;
	secrets = json_array();
	deps = json_array();
	rep = json_pack("{s:s, s:s, s:o, s:o}", "run_id", run_id, "kind", kind, "secrets", secrets,
			"dependents", deps);
	if (rep == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	/* A rollback run never rolls back again: its failed restarts are reported. */
	if (strcmp(kind, "rollback") != 0 && (rb = json_array()) == NULL) {
		json_decref(rep);
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	}
	dep_bad = restart_dependents(ctx, run_id, jobs, n, deps, no_restart, rb);
	ok = close_jobs(ctx, run_id, jobs, n);
	tidy_jobs(ctx, jobs, n);
	for (size_t i = 0; i < n; i++) {
		stopped += jobs[i].result == RK_RESULT_INTERRUPTED;
		/* Rotated, but a restart it feeds was stopped (SIGTERM): the run is not over. */
		dep_stopped += jobs[i].dep_pending && jobs[i].result != RK_RESULT_INTERRUPTED;
		bad += !rk_result_changed(jobs[i].result) && jobs[i].result != RK_RESULT_INTERRUPTED;
		json_array_append_new(secrets, job_report(&jobs[i]));
	}
	emergency = strcmp(kind, "emergency") == 0;
	{
		size_t restarted = 0, rfailed = 0;
		for (size_t i = 0; i < json_array_size(deps); i++) {
			const char *res = json_string_value(
				json_object_get(json_array_get(deps, i), "result"));
			restarted += strcmp(res, "restarted") == 0;
			rfailed += strcmp(res, "failed") == 0;
		}
		json_object_set_new(rep, "totals",
				    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "secrets",
					      (json_int_t)n, "rotated", (json_int_t)ok, "failed",
					      (json_int_t)bad, "unfinished", (json_int_t)stopped,
					      "dependents", (json_int_t)json_array_size(deps),
					      "restarted", (json_int_t)restarted, "restart_failed",
					      (json_int_t)rfailed));
	}
	if (stopped > 0 || dep_stopped > 0) {
		/* The run stays open: its journal is where --resume goes on. */
		snprintf(retry, sizeof(retry), "rekey %s --resume %s", emergency ? "emergency" : "rotate",
			 run_id);
		json_object_set_new(rep, "status", json_string("interrupted"));
		json_object_set_new(rep, "retry", json_string(retry));
		d = json_pack("{s:I, s:I, s:I}", "rotated", (json_int_t)ok, "failed",
			      (json_int_t)bad, "unfinished", (json_int_t)stopped);
		r = rk_audit(ctx, "run.interrupted", run_id, d, err);
		json_decref(d);
		rk_log(RK_LOG_WARN, "run.interrupted", "run_id", run_id, "retry", retry, NULL);
		goto out;
	}
	status = bad == 0 && dep_bad == 0 ? "done" : ok == 0 && bad > 0 ? "failed" : "partial";
	json_object_set_new(rep, "status", json_string(status));
	if ((bad > 0 || dep_bad > 0) && emergency) {
		/* An emergency is finished in the same run: --resume tries the failed ones again. */
		snprintf(retry, sizeof(retry), "rekey emergency --resume %s", run_id);
		json_object_set_new(rep, "retry", json_string(retry));
	} else if (bad > 0 || dep_bad > 0) {
		json_object_set_new(rep, "retry", json_string("rekey rotate NAME... (a new run)"));
	}
	if ((r = rk_store_run_finish(ctx->store, run_id, status, rk_now(ctx), err)) < 0)
		goto out;
	d = json_pack("{s:s, s:I, s:I}", "status", status, "rotated", (json_int_t)ok, "failed",
		      (json_int_t)bad);
	r = rk_audit(ctx, "run.finished", run_id, d, err);
	json_decref(d);
	rk_log(RK_LOG_INFO, "run.finished", "run_id", run_id, "result", status, NULL);
	if (json_array_size(rb) > 0)
		json_object_set_new(rep, "rollback", rollback_after_restart(ctx, run_id, rb, parallel));
out:
	json_decref(rb);
	rk_log_set_run(NULL);
	if (r < 0) {
		json_decref(rep);
		return r;
	}
	*report = rep;
	return 0;
}

/*
 * Records a new run and its rotations in one transaction, so a failure
 * before the first external call leaves nothing behind (no run that blocks
 * its secrets). jobs[i].rot->restore_version may be set by the caller.
 */
static int
start_run(struct rk_ctx *ctx, const char *run_id, const char *kind, const char *reason,
	  const json_t *names, struct job *jobs, size_t n, int manual, struct rk_error *err)
{
	json_t *d;
	int r;

	if ((r = rk_store_begin(ctx->store, err)) < 0)
		return r;
	if ((r = rk_store_run_create(ctx->store, run_id, kind, reason, rk_now(ctx), err)) < 0)
		goto out;
	d = json_pack("{s:s, s:s, s:O}", "kind", kind, "reason", reason ? reason : "", "secrets",
		      names);
	r = rk_audit(ctx, "run.started", run_id, d, err);
	json_decref(d);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		/* A parked job gets its row back from the DB when its turn comes. */
		struct rk_rotation tmp = { .state = "" }, *rot = j->rot ? j->rot : &tmp;
		snprintf(rot->run_id, sizeof(rot->run_id), "%s", run_id);
		snprintf(rot->secret, sizeof(rot->secret), "%s", j->name);
		snprintf(rot->state, sizeof(rot->state), "planned");
		rk_keys_uuid(ctx->keys, run_id, j->name, rot->idem_key);
		if ((manual && (r = rk_store_secret_clear_attention(ctx->store, j->name, err)) < 0) ||
		    (r = rk_store_rot_insert(ctx->store, rot, rk_now(ctx), err)) < 0)
			goto out;
		if (rot == &tmp)
			j->state = RK_STEP_PLANNED;
	}
out:
	if (r < 0) {
		rk_store_rollback(ctx->store);
		return r;
	}
	return rk_store_commit(ctx->store, err);
}

/* Refuses a secret whose rotation in another run has not finished. */
static int
check_not_in_flight(struct rk_ctx *ctx, const char *name, struct rk_error *err)
{
	char run[64];
	int r;

	if ((r = rk_store_secret_in_flight(ctx->store, name, run, sizeof(run), err)) < 0)
		return r;
	if (run[0])
		return rk_error_set(err, RK_EINVAL,
				    "'%s' has an unfinished rotation in run %s; finish it first "
				    "with `rekey rotate --resume %s`", name, run, run);
	return 0;
}

const char *
rk_engine_state(const json_t *entry)
{
	if (json_is_true(json_object_get(entry, "needs_attention")))
		return "needs_attention";
	if (json_is_true(json_object_get(entry, "expired")))
		return "expired";
	if (json_is_true(json_object_get(entry, "overdue")))
		return "overdue";
	if (json_is_true(json_object_get(entry, "due")))
		return "due";
	return "ok";
}

int
rk_engine_picks(const json_t *entry, int ignore_window)
{
	return json_is_true(json_object_get(entry, "due")) &&
	       (ignore_window || json_is_true(json_object_get(entry, "window_open"))) &&
	       !json_is_true(json_object_get(entry, "needs_attention"));
}

int
rk_engine_check_idle(struct rk_ctx *ctx, const json_t *names, struct rk_error *err)
{
	size_t i;
	json_t *p;
	int r;

	json_array_foreach(names, i, p)
		if ((r = check_not_in_flight(ctx, json_string_value(p), err)) < 0)
			return r;
	return 0;
}

int
rk_engine_rotate(struct rk_ctx *ctx, const json_t *names_in, const struct rk_rotate_opts *opts,
		 json_t **report, struct rk_error *err)
{
	struct job *jobs = NULL;
	json_t *names = json_array(), *seen = json_object(), *nm;
	size_t n = 0, i;
	char run_id[64];
	const char *kind = opts->kind ? opts->kind : "rotate";
	int r;

	if (names == NULL || seen == NULL ||
	    (jobs = calloc(json_array_size(names_in) + 1, sizeof(*jobs))) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	/* Everything is checked before the run starts: a bad name changes nothing. */
	json_array_foreach(names_in, i, nm) {
		const char *name = json_string_value(nm);
		if (json_object_get(seen, name) != NULL)
			continue;	/* named twice: rotated once */
		json_object_set_new(seen, name, json_true());
		json_array_append(names, nm);
		if ((r = load_job(ctx, &jobs[n++], name, err)) < 0 ||
		    (r = check_not_in_flight(ctx, name, err)) < 0)
			goto out;
		job_park(&jobs[n - 1]);	/* checked: its row is loaded again when its turn comes */
	}
	if (opts->run_id != NULL)
		snprintf(run_id, sizeof(run_id), "%s", opts->run_id);
	else
		rk_new_run_id(run_id, sizeof(run_id), rk_now(ctx));
	if ((r = start_run(ctx, run_id, kind, opts->reason, names, jobs, n, opts->manual, err)) < 0)
		goto out;
	rk_log_set_run(run_id);
	rk_log(RK_LOG_INFO, "run.started", "run_id", run_id, "kind", kind, NULL);
	RK_FAULT("planned");
	r = finish_run(ctx, run_id, kind, jobs, n, opts->no_restart, opts->parallel, report, err);
out:
	for (i = 0; i < n; i++)
		job_free(&jobs[i]);
	free(jobs);
	json_decref(names);
	json_decref(seen);
	return r;
}

static int
resume_run(struct rk_ctx *ctx, const json_t *run, int parallel, json_t **report,
	   struct rk_error *err)
{
	const char *run_id = json_string_value(json_object_get(run, "id"));
	const char *kind = json_string_value(json_object_get(run, "kind"));
	struct rk_rotation *rots = NULL;
	struct job *jobs = NULL;
	size_t n = 0, n_all, i;
	int r;

	if ((r = rk_store_rot_list(ctx->store, run_id, &rots, &n, err)) < 0)
		return r;
	n_all = n;
	if ((jobs = calloc(n ? n : 1, sizeof(*jobs))) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	rk_log_set_run(run_id);
	rk_log(RK_LOG_INFO, "run.resumed", "run_id", run_id, NULL);
	for (i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		struct rk_error e2 = { 0 };
		if (load_job(ctx, j, rots[i].secret, &e2) < 0) {
			if (e2.code != RK_ENOTFOUND && e2.code != RK_EINVAL &&
			    !rk_step_is_final(rk_step_parse(rots[i].state))) {
				/* Maybe only for now: leave the run to a later resume. */
				*err = e2;
				rk_error_prefix(err, "cannot resume %s now (the run is kept): ", run_id);
				r = e2.code;
				n = i + 1;	/* this one is freed too */
				goto out;
			}
			/* Removed from the inventory or unusable: that rotation cannot go on. */
			if ((j->name == NULL && (j->name = strdup(rots[i].secret)) == NULL) ||
			    job_new_rot(j, &e2) < 0) {
				r = rk_error_set(err, RK_ENOMEM, "out of memory");
				n = i + 1;
				goto out;
			}
			*j->rot = rots[i];
			memset(&rots[i], 0, sizeof(rots[i]));
			j->result = RK_RESULT_FAILED;
			snprintf(j->rot->error, sizeof(j->rot->error), "%s", e2.msg);
			job_park(j);
			continue;
		}
		if ((r = job_new_rot(j, err)) < 0) {
			n = i + 1;
			goto out;
		}
		*j->rot = rots[i];
		memset(&rots[i], 0, sizeof(rots[i]));	/* blobs now owned by the job */
		j->resumed = 1;
		enum rk_step st = state_of(j);

		if (st == RK_STEP_PROMOTED || st == RK_STEP_RESTARTED) {
			/* Promoted before the crash: make sure the secret row says so. */
			if ((r = record_promoted(ctx, j, &e2)) < 0)
				rk_log_err(&e2, "cannot record promotion of '%s'", j->name);
		} else if (st == RK_STEP_FAILED || st == RK_STEP_ROLLED_BACK) {
			j->result = st == RK_STEP_FAILED ? RK_RESULT_FAILED : RK_RESULT_ROLLED_BACK;
		} else if (st == RK_STEP_DONE) {
			j->result = RK_RESULT_ROTATED;
		}
		job_park(j);
	}
	r = finish_run(ctx, run_id, kind, jobs, n, 0, parallel, report, err);
	if (r == 0 && json_object_get(run, "reason") != NULL)
		json_object_set(*report, "reason", json_object_get(run, "reason"));
out:
	for (i = 0; jobs && i < n; i++)
		job_free(&jobs[i]);
	free(jobs);
	rk_store_rot_free(rots, n_all);
	return r;
}

int
rk_engine_resume(struct rk_ctx *ctx, const char *run_id, int parallel, json_t **report,
		 struct rk_error *err)
{
	json_t *runs = NULL, *run, *out = NULL;
	size_t i;
	int r;

	if (run_id != NULL) {
		if ((r = rk_store_run_get(ctx->store, run_id, &run, err)) < 0)
			return r;
		const char *st = json_string_value(json_object_get(run, "status"));
		if (strcmp(json_string_value(json_object_get(run, "kind")), "emergency") == 0 &&
		    (strcmp(st, "partial") == 0 || strcmp(st, "failed") == 0)) {
			/*
			 * An emergency finishes in its own run: what failed (a provider
			 * that was down) is tried again there, so that one run says
			 * where everything stands.
			 */
			if ((r = rk_store_run_retry(ctx->store, run_id, rk_now(ctx), err)) < 0) {
				json_decref(run);
				return r;
			}
		} else if (strcmp(st, "running") != 0) {
			r = rk_error_set(err, RK_EINVAL, "run %s already finished (%s); nothing to resume",
					 run_id, st);
			json_decref(run);
			return r;
		}
		r = resume_run(ctx, run, parallel, report, err);
		json_decref(run);
		return r;
	}
	if ((r = rk_store_run_unfinished(ctx->store, &runs, err)) < 0)
		return r;
	out = json_array();
	json_array_foreach(runs, i, run) {
		json_t *rep = NULL;
		if ((r = resume_run(ctx, run, parallel, &rep, err)) < 0)
			break;
		json_array_append_new(out, rep);
	}
	json_decref(runs);
	if (r < 0) {
		json_decref(out);
		return r;
	}
	*report = out;
	return 0;
}

/* ---- plan ---- */

struct plan_walk {
	struct rk_ctx *ctx;
	int64_t at;
	json_t *out;		/* the plan, or the names picked */
	int picks_only, ignore_window;
};

/* One secret's plan entry at time `at`, from its schedule row (NULL: no memory). */
static json_t *
plan_entry(struct rk_ctx *ctx, const json_t *row, int64_t at)
{
	const char *pname = json_string_value(json_object_get(row, "policy"));
	const struct rk_policy *pol = rk_policy_find(ctx->policies, pname);
	int64_t last = json_integer_value(json_object_get(row, "last_rotated"));
	int64_t spec_last = json_integer_value(json_object_get(row, "spec_last_rotated"));
	int attention = (int)json_integer_value(json_object_get(row, "needs_attention"));
	int64_t next_due = 0, next_window = 0;
	int due, overdue = 0, expired = 0, window_open = 1;
	char reason[200], when[32], age[32];

	if (spec_last > last)
		last = spec_last;
	if (pol == NULL) {
		snprintf(reason, sizeof(reason), "policy '%s' no longer exists", pname);
		due = 0;
	} else if (last == 0) {
		due = 1;
		overdue = 1;
		expired = 1;
		snprintf(reason, sizeof(reason), "never rotated by rekey");
	} else if (at < last) {
		/* plan --at a time before the last rotation: no negative age. */
		char t1[32], t2[32];
		next_due = last + pol->rotate_every;
		due = 0;
		rk_format_time(last, t1, sizeof(t1));
		rk_format_time(next_due, t2, sizeof(t2));
		snprintf(reason, sizeof(reason), "rotated after this time (on %s); next due %s",
			 t1, t2);
	} else {
		next_due = last + pol->rotate_every;
		due = at >= next_due;
		overdue = at > next_due;
		expired = at > next_due + pol->grace;
		rk_format_duration(at - last, age, sizeof(age));
		if (due) {
			rk_format_duration(at - next_due, when, sizeof(when));
			snprintf(reason, sizeof(reason), "age %s; due %s ago%s", age, when,
				 expired ? ", past grace" : "");
		} else {
			rk_format_duration(next_due - at, when, sizeof(when));
			snprintf(reason, sizeof(reason), "age %s; due in %s", age, when);
		}
	}
	if (pol != NULL && pol->window.set) {
		window_open = rk_window_contains(&pol->window, at);
		next_window = rk_window_next_open(&pol->window, at);
		if (due && !window_open) {
			char wtext[80], t[32];
			rk_window_format(&pol->window, wtext, sizeof(wtext));
			rk_format_time(next_window, t, sizeof(t));
			size_t used = strlen(reason);
			snprintf(reason + used, sizeof(reason) - used,
				 "; waits for window %s (opens %s)", wtext, t);
		}
	}
	if (attention) {
		size_t used = strlen(reason);
		snprintf(reason + used, sizeof(reason) - used,
			 "; needs attention after %lld failures: run `rekey rotate %s`",
			 (long long)json_integer_value(json_object_get(row, "failures")),
			 json_string_value(json_object_get(row, "name")));
	}
	return json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:I, s:I, s:b, s:b, s:b, s:b, s:I, s:b,"
			  " s:s, s:O, s:O, s:O, s:O}",
			  "name", json_object_get(row, "name"), "provider",
			  json_object_get(row, "provider"), "policy", json_object_get(row, "policy"),
			  "environment", json_object_get(row, "environment"), "owner",
			  json_object_get(row, "owner"), "tier", json_object_get(row, "tier"),
			  "last_rotated", (json_int_t)last, "next_due", (json_int_t)next_due,
			  "due", due, "overdue", overdue, "expired", expired, "window_open",
			  window_open, "next_window", (json_int_t)next_window, "needs_attention",
			  attention, "reason", reason, "last_result",
			  json_object_get(row, "last_result"), "last_error",
			  json_object_get(row, "last_error"), "current_version",
			  json_object_get(row, "current_version"), "last_run",
			  json_object_get(row, "last_run"));
}

static int
plan_row(void *arg, json_t *row, struct rk_error *err)
{
	struct plan_walk *w = arg;
	json_t *e = plan_entry(w->ctx, row, w->at);
	int r = 0;

	if (e == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (!w->picks_only)
		r = json_array_append(w->out, e);
	else if (rk_engine_picks(e, w->ignore_window))
		r = json_array_append(w->out, json_object_get(e, "name"));
	json_decref(e);
	return r < 0 ? rk_error_set(err, RK_ENOMEM, "out of memory") : 0;
}

static int
walk_plan(struct rk_ctx *ctx, struct plan_walk *w, json_t **out, struct rk_error *err)
{
	int r;

	w->ctx = ctx;
	if ((w->out = json_array()) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((r = rk_store_secret_schedule(ctx->store, plan_row, w, err)) < 0) {
		json_decref(w->out);
		return r;
	}
	*out = w->out;
	return 0;
}

int
rk_engine_plan(struct rk_ctx *ctx, int64_t at, json_t **out, struct rk_error *err)
{
	struct plan_walk w = { .at = at };

	return walk_plan(ctx, &w, out, err);
}

int
rk_engine_due(struct rk_ctx *ctx, int64_t at, int ignore_window, json_t **names,
	      struct rk_error *err)
{
	struct plan_walk w = { .at = at, .picks_only = 1, .ignore_window = ignore_window };

	return walk_plan(ctx, &w, names, err);
}

/* ---- rollback ---- */

/*
 * A rollback is a rotation whose new value is an earlier version's: the same
 * journal (so a kill -9 is resumed like any rotation, never by generating a
 * random value), the same stage with its precondition (other keys of a Vault
 * entry are kept), verify, the policy's hooks, promote and restart.
 */
/*
 * Loads j for a rollback of `name` to version `to` (NULL: the value that was
 * current just before rekey's latest change, be it a rotation or a
 * rollback: the journal's newest "promoted" row, never an order by
 * wall-clock time) and checks that the value exists before anything is
 * recorded. *why gets the run's reason.
 */
static int
prepare_rollback(struct rk_ctx *ctx, struct job *j, const char *name, const char *to,
		 char *why, size_t whyn, struct rk_error *err)
{
	json_t *last = NULL;
	struct rk_version target;
	struct rk_secret *val = NULL;
	int versions, r;

	if ((r = load_job(ctx, j, name, err)) < 0 || (r = job_new_rot(j, err)) < 0)
		goto out;
	if (rk_provider_generates(j->prov, &j->loc)) {
		r = rk_error_set(err, RK_EUNSUPPORTED,
				 "provider '%s' makes the values of '%s' itself (a key with "
				 "versions of its own): it cannot be rolled back", j->prov->name, name);
		goto out;
	}
	versions = (rk_provider_caps(j->prov) & RK_CAP_VERSIONS) != 0;
	if (!versions && to != NULL) {
		r = rk_error_set(err, RK_EINVAL,
				 "provider '%s' keeps one value per secret: --to is not supported "
				 "there; `rekey rollback %s` restores the value before rekey's "
				 "latest change", j->prov->name, name);
		goto out;
	}
	if ((r = check_not_in_flight(ctx, name, err)) < 0)
		goto out;
	if (to != NULL) {
		snprintf(target.id, sizeof(target.id), "%s", to);
	} else {
		const char *ov;
		if ((r = rk_store_last_change(ctx->store, name, &last, err)) < 0)
			goto out;
		ov = last ? json_string_value(json_object_get(last, versions ? "old_version"
									      : "run_id"))
			  : NULL;
		if (ov == NULL || ov[0] == '\0') {
			r = rk_error_set(err, RK_ENOTFOUND,
					 last ? "'%s' did not exist before rekey's latest change; "
						"name a version with --to"
					      : "no previous version of '%s' is recorded; name one "
						"with --to",
					 name);
			goto out;
		}
		snprintf(target.id, sizeof(target.id), "%s%s", versions ? "" : JOURNAL_PREFIX, ov);
	}
	if (versions)
		r = rk_provider_read_version(j->prov, &j->call, &j->loc, &target, &val, err);
	else
		r = restore_from_journal(ctx, target.id + strlen(JOURNAL_PREFIX), name, &val, err);
	if (r < 0)
		goto out;
	snprintf(j->rot->restore_version, sizeof(j->rot->restore_version), "%s", target.id);
	if (versions)
		snprintf(why, whyn, "restore version %s", target.id);
	else
		snprintf(why, whyn, "restore the value from before run %s",
			 target.id + strlen(JOURNAL_PREFIX));
out:
	rk_secret_free(val);
	json_decref(last);
	return r;
}

/* Starts and drives a rollback run of jobs[0..n) (prepared). */
static int
rollback_run(struct rk_ctx *ctx, struct job *jobs, size_t n, const char *reason, int no_restart,
	     int parallel, json_t **report, struct rk_error *err)
{
	json_t *names = json_array();
	char run_id[64];
	int r;

	for (size_t i = 0; i < n && names; i++)
		json_array_append_new(names, json_string(jobs[i].name));
	if (names == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	rk_new_run_id(run_id, sizeof(run_id), rk_now(ctx));
	if ((r = start_run(ctx, run_id, "rollback", reason, names, jobs, n, 1, err)) == 0) {
		rk_log_set_run(run_id);
		rk_log(RK_LOG_INFO, "run.started", "run_id", run_id, "kind", "rollback", NULL);
		r = finish_run(ctx, run_id, "rollback", jobs, n, no_restart, parallel, report, err);
	}
	json_decref(names);
	return r;
}

/*
 * A rollback is a rotation whose new value is an earlier version's: the same
 * journal (so a kill -9 is resumed like any rotation, never by generating a
 * random value), the same stage with its precondition (other keys of a Vault
 * entry are kept), verify, the policy's hooks, promote and restart.
 */
int
rk_engine_rollback(struct rk_ctx *ctx, const char *name, const char *to,
		   const struct rk_rotate_opts *opts, json_t **report, struct rk_error *err)
{
	struct job j;
	char why[200], target[128] = "";
	int r;

	if ((r = prepare_rollback(ctx, &j, name, to, why, sizeof(why), err)) == 0) {
		snprintf(target, sizeof(target), "%s", j.rot->restore_version);
		r = rollback_run(ctx, &j, 1, opts && opts->reason ? opts->reason : why,
				 opts && opts->no_restart, 1, report, err);
	}
	if (r == 0)
		json_object_set_new(*report, "restored_version", json_string(target));
	job_free(&j);
	return r;
}

/*
 * restart.on_failure: rollback. A dependent of run_id did not become
 * healthy: every changed secret that feeds it (names) is restored to its
 * value before the run, in a rollback run of its own whose restarts bring
 * that workload, and every other one reading those secrets, back. Returns
 * that run's report (or an error report) for the parent's.
 */
static json_t *
rollback_after_restart(struct rk_ctx *ctx, const char *run_id, const json_t *names, int parallel)
{
	size_t n = json_array_size(names), ok = 0;
	struct job *jobs = calloc(n ? n : 1, sizeof(*jobs));
	json_t *rep = NULL, *refused = json_array();
	struct rk_error err = { 0 };
	char reason[200];

	snprintf(reason, sizeof(reason), "restart.on_failure: rollback after a failed restart in "
		 "run %s", run_id);
	for (size_t i = 0; jobs && i < n; i++) {
		const char *name = json_string_value(json_array_get(names, i));
		char why[200];
		struct rk_error e2 = { 0 };
		if (prepare_rollback(ctx, &jobs[ok], name, NULL, why, sizeof(why), &e2) < 0) {
			rk_log_err(&e2, "cannot roll back '%s' after the failed restart", name);
			json_array_append_new(refused, json_pack("{s:s, s:s}", "name", name, "error",
								 e2.msg));
			job_free(&jobs[ok]);
			continue;
		}
		ok++;
	}
	if (jobs == NULL)
		rk_error_set(&err, RK_ENOMEM, "out of memory");
	else if (ok > 0)
		(void)rollback_run(ctx, jobs, ok, reason, 0, parallel, &rep, &err);
	rk_log_set_run(run_id);
	if (rep == NULL)
		rep = json_pack("{s:s, s:s}", "status", "failed", "error",
				err.code ? err.msg : "nothing could be rolled back");
	if (rep != NULL && json_array_size(refused) > 0)
		json_object_set(rep, "not_rolled_back", refused);
	for (size_t i = 0; jobs && i < ok; i++)
		job_free(&jobs[i]);
	free(jobs);
	json_decref(refused);
	return rep;
}
