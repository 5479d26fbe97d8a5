/*
 * KV version 2 secrets of the vault provider (see vault.c).
 *
 * A rotation replaces one key of an entry and keeps the others: read the
 * entry and its version, write the whole map back with options.cas = that
 * version (a precondition, not an idempotency key: a retried write whose
 * first attempt landed gets a 400), then tag the key's custom_metadata with
 * the run (a separate PATCH; a data write ignores custom_metadata). After any
 * failed or unknown write the latest versions are read back and compared with
 * the value rekey wrote: ours -> carry on; someone else's -> conflict, never
 * overwritten. Versions are kept by Vault, so rollback writes an old
 * version's data as a new version (what `vault kv rollback` does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/http.h"
#include "rekey/log.h"
#include "rekey/provider_kit.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "vault_int.h"

struct kv_entry {
	json_t *data;		/* the whole map (owned), NULL when absent */
	long version;		/* 0 when the entry does not exist */
	int deleted;		/* the version is soft-deleted or destroyed */
};

static void
kv_entry_free(struct kv_entry *e)
{
	json_decref(e->data);
	e->data = NULL;
}

/*
 * A version that is gone below metadata's oldest_version was dropped by
 * max_versions on a later write: says so in err (returns 1). Best effort: any
 * failure to read the metadata returns 0 and the plain "does not exist".
 */
static int
kv_pruned(struct vault *v, const struct rk_call *call, const struct vault_loc *loc, long version,
	  struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	struct rk_error e2 = { 0 };
	json_t *j = NULL;
	const json_t *d;
	char path[1200];
	long oldest, maxv;
	int pruned = 0;

	snprintf(path, sizeof(path), "/v1/%s/metadata/%s", loc->mount, loc->path);
	if (rk_vault_call(v, call, "GET", path, NULL, NULL, 1, 0, &resp, &e2) < 0 ||
	    resp.status != 200 || rk_kit_json_object(&v->base, "read metadata", &resp, &j, &e2) < 0)
		goto out;
	d = json_object_get(j, "data");
	oldest = (long)json_integer_value(json_object_get(d, "oldest_version"));
	maxv = (long)json_integer_value(json_object_get(d, "max_versions"));
	if (oldest > 0 && version < oldest &&
	    version <= (long)json_integer_value(json_object_get(d, "current_version"))) {
		char keep[96];
		if (maxv > 0)
			snprintf(keep, sizeof(keep), "the newest %ld (the key's max_versions)", maxv);
		else
			snprintf(keep, sizeof(keep), "the newest versions up to the mount's "
				 "max_versions (10 unless set)");
		rk_error_set(err, RK_ENOTFOUND, "vault %s: version %ld of %s/%s was pruned: Vault "
			     "keeps %s; the oldest kept is %ld", v->base.name, version,
			     loc->mount, loc->path, keep, oldest);
		pruned = 1;
	}
out:
	json_decref(j);
	rk_http_resp_free(&resp);
	return pruned;
}

/* Reads an entry (version 0: latest). RK_ENOTFOUND when the entry does not exist. */
static int
kv_read(struct vault *v, const struct rk_call *call, const struct vault_loc *loc, long version,
	struct kv_entry *e, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	json_t *j = NULL;
	const json_t *data, *md;
	char path[1200];
	int r;

	memset(e, 0, sizeof(*e));
	if (version > 0)
		snprintf(path, sizeof(path), "/v1/%s/data/%s?version=%ld", loc->mount,
			 loc->path, version);
	else
		snprintf(path, sizeof(path), "/v1/%s/data/%s", loc->mount, loc->path);
	if ((r = rk_vault_call(v, call, "GET", path, NULL, NULL, 1, 1, &resp, err)) < 0)
		goto out;
	if (resp.status == 404) {
		/* Two bodies: {"errors":[]} (absent) or an envelope (deleted/destroyed version). */
		json_t *b = json_loadb(resp.body, resp.len, 0, NULL);
		md = json_object_get(json_object_get(b, "data"), "metadata");
		if (json_is_object(md)) {
			e->version = (long)json_integer_value(json_object_get(md, "version"));
			e->deleted = 1;
			r = rk_error_set(err, RK_ENOTFOUND,
					 "vault %s: version %ld of %s/%s is deleted or destroyed",
					 v->base.name, e->version, loc->mount, loc->path);
		} else if (version > 0 && kv_pruned(v, call, loc, version, err)) {
			r = RK_ENOTFOUND;
		} else {
			char at[40] = "";
			if (version > 0)
				snprintf(at, sizeof(at), " has no version %ld", version);
			r = rk_error_set(err, RK_ENOTFOUND, "vault %s: %s/%s%s", v->base.name,
					 loc->mount, loc->path,
					 version > 0 ? at : " does not exist");
		}
		json_decref(b);
		goto out;
	}
	if ((r = rk_vault_expect_json(v, "read", &resp, &j, err)) < 0)
		goto out;
	data = json_object_get(json_object_get(j, "data"), "data");
	md = json_object_get(json_object_get(j, "data"), "metadata");
	if (!json_is_object(md) || !json_is_integer(json_object_get(md, "version")) ||
	    !(json_is_object(data) || json_is_null(data))) {
		r = rk_error_set(err, RK_EPROTO,
				 "vault %s: read %s/%s: unexpected response shape (no data.data "
				 "object or data.metadata.version integer)", v->base.name,
				 loc->mount, loc->path);
		goto out;
	}
	e->version = (long)json_integer_value(json_object_get(md, "version"));
	e->data = json_is_object(data) ? json_incref((json_t *)data) : json_object();
	r = 0;
out:
	json_decref(j);
	rk_http_resp_free(&resp);
	return r;
}

static int
kv_value(struct vault *v, const struct vault_loc *loc, const struct kv_entry *e,
	 struct rk_secret **out, struct rk_error *err)
{
	const json_t *val = json_object_get(e->data, loc->key);

	if (val == NULL)
		return rk_error_set(err, RK_ENOTFOUND, "vault %s: %s/%s has no key '%s'",
				    v->base.name, loc->mount, loc->path, loc->key);
	if (!json_is_string(val))
		return rk_error_set(err, RK_EPROTO, "vault %s: %s/%s key '%s' is not a string",
				    v->base.name, loc->mount, loc->path, loc->key);
	return rk_secret_from(out, json_string_value(val), json_string_length(val), err);
}

int
rk_vault_kv_read(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
		 long version, struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	struct kv_entry e;
	int r;

	if ((r = kv_read(v, call, loc, version, &e, err)) < 0)
		return r;
	if ((r = kv_value(v, loc, &e, out, err)) == 0 && ver != NULL)
		rk_version_set(ver, e.version);
	kv_entry_free(&e);
	return r;
}

/* Tags the key's custom_metadata with the run; a failure is logged, not fatal. */
static void
kv_tag(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
       const struct rk_stage_req *req)
{
	struct rk_http_resp resp = { 0 };
	struct rk_error err = { 0 };
	json_t *body = json_pack("{s:{s:s, s:s}}", "custom_metadata", "rekey-run", req->run_id,
				 "rekey-secret", req->secret_name);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char path[1200];

	snprintf(path, sizeof(path), "/v1/%s/metadata/%s", loc->mount, loc->path);
	if (text == NULL ||
	    rk_vault_call(v, call, "PATCH", path, "Content-Type: application/merge-patch+json",
			  text, 1, 0, &resp, &err) < 0 ||
	    (resp.status != 200 && resp.status != 204)) {
		if (err.code == 0 && resp.status)
			rk_vault_status_error(v, "tag custom_metadata", &resp, &err);
		rk_log(RK_LOG_WARN, "vault.tag_failed", "provider", v->base.name, "secret",
		       req->secret_name, "error", err.msg[0] ? err.msg : "out of memory",
		       "msg", "custom_metadata not updated, ignoring", NULL);
	}
	free(text);
	json_decref(body);
	rk_http_resp_free(&resp);
}

/* Writes data with options.cas; *version gets the new version. */
static int
kv_write(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
	 const json_t *data, long cas, long *version, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	json_t *body = json_pack("{s:O, s:{s:I}}", "data", data, "options", "cas", (json_int_t)cas);
	json_t *j = NULL;
	char *text = NULL, path[1200];
	int r;

	if (body == NULL || (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/%s/data/%s", loc->mount, loc->path);
	/* cas makes a blind retry of a landed write fail: resent only when certainly not applied. */
	if ((r = rk_vault_call(v, call, "POST", path, "Content-Type: application/json", text,
			       RK_HTTP_RETRY_UNPROCESSED, 1, &resp, err)) < 0)
		goto out;
	if ((r = rk_vault_expect_json(v, "write", &resp, &j, err)) < 0)
		goto out;
	if (!json_is_integer(json_object_get(json_object_get(j, "data"), "version"))) {
		r = rk_error_set(err, RK_EPROTO, "vault %s: write: no data.version in the response",
				 v->base.name);
		goto out;
	}
	*version = (long)json_integer_value(json_object_get(json_object_get(j, "data"), "version"));
	r = 0;
out:
	rk_wipe_free_str(text);
	json_decref(body);
	json_decref(j);
	rk_http_resp_free(&resp);
	return r;
}

/*
 * Which version newer than `expected` holds `value`? 0 with *found set; or
 * RK_ENOTFOUND (no newer version) / RK_ECONFLICT (newer ones, none ours).
 */
static int
kv_find(struct vault *v, const struct rk_call *call, const struct vault_loc *loc, long expected,
	const struct rk_secret *value, long *found, struct rk_error *err)
{
	struct kv_entry latest, e;
	int r;

	if ((r = kv_read(v, call, loc, 0, &latest, err)) < 0) {
		if (r == RK_ENOTFOUND && latest.version == 0 && !latest.deleted && expected == 0) {
			rk_error_clear(err);
			return rk_error_set(err, RK_ENOTFOUND, "no version written by this rotation");
		}
		return r;
	}
	kv_entry_free(&latest);
	if (latest.version <= expected)
		return rk_error_set(err, RK_ENOTFOUND, "no version written by this rotation");
	for (long n = latest.version; n > expected; n--) {
		struct rk_secret *s = NULL;
		int same;
		if ((r = kv_read(v, call, loc, n, &e, err)) == 0)
			r = kv_value(v, loc, &e, &s, err);
		if (r < 0) {
			kv_entry_free(&e);
			/*
			 * Deleted, or without our key as a string: not ours. A read
			 * that failed (cancelled, timed out, refused) says nothing
			 * about whose it is, and must not end as a conflict.
			 */
			if (r != RK_ENOTFOUND && r != RK_EPROTO)
				return r;
			rk_error_clear(err);
			continue;
		}
		same = value != NULL && rk_secret_equal(s, value);
		rk_secret_free(s);
		kv_entry_free(&e);
		if (same) {
			*found = n;
			return 0;
		}
	}
	return rk_error_set(err, RK_ECONFLICT,
			    "vault %s: %s/%s was changed by someone else (version %ld, rekey "
			    "expected %ld); not overwritten", v->base.name, loc->mount,
			    loc->path, latest.version, expected);
}

int
rk_vault_kv_find_staged(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
			long expected, const struct rk_secret *value, struct rk_version *ver,
			struct rk_error *err)
{
	long found = 0;
	int r;

	if ((r = kv_find(v, call, loc, expected, value, &found, err)) < 0)
		return r;
	rk_version_set(ver, found);
	return 0;
}

/*
 * A KV write with cas whose outcome is settled: a write that may have landed
 * is read back (kv_find, as the crash resume does): ours -> its version;
 * nothing newer than cas -> sent again with the same cas, up to the
 * provider's retry.max_attempts; someone else's -> RK_ECONFLICT. A cas 400 is
 * read back the same way, since our own earlier attempt may have landed.
 */
static int
kv_settled_write(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
		 const json_t *data, long cas, const struct rk_secret *value, long *version,
		 struct rk_error *err)
{
	for (int attempt = 1;; attempt++) {
		struct rk_error e2 = { 0 };
		long found = 0;
		int r, f, cas_400;

		if ((r = kv_write(v, call, loc, data, cas, version, err)) == 0)
			return 0;
		cas_400 = r == RK_EPROTO && err->http_status == 400;
		if (!cas_400 && !rk_kit_outcome_unknown(err))
			return r;
		f = kv_find(v, call, loc, cas, value, &found, &e2);
		if (f == 0) {
			rk_log(RK_LOG_INFO, "vault.write_settled", "provider", v->base.name, "msg",
			       "the write landed although its answer was lost or an error", "error",
			       err->msg, NULL);
			rk_error_clear(err);
			*version = found;
			return 0;
		}
		if (f == RK_ECONFLICT) {
			*err = e2;
			return f;
		}
		/* A 400 with nothing newer is the request itself; a failed read settles nothing. */
		if (cas_400 || f != RK_ENOTFOUND || attempt >= v->hcfg.max_attempts)
			return r;
		if ((r = rk_vault_resend_wait(v, call, "write", attempt, err)) < 0)
			return r;
	}
}

int
rk_vault_kv_stage(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
		  long expected, const struct rk_stage_req *req, struct rk_version *new_ver,
		  struct rk_error *err)
{
	struct kv_entry e;
	json_t *data = NULL;
	long version = 0;
	int r;

	/* The other keys of the entry are preserved: read, change one key, write with cas. */
	r = kv_read(v, call, loc, 0, &e, err);
	if (r == RK_ENOTFOUND && e.version == 0) {
		rk_error_clear(err);
		e.data = json_object();
		e.version = 0;
	} else if (r == RK_ENOTFOUND && e.deleted) {
		/* The latest version is deleted: cas must still name it. */
		rk_error_clear(err);
		e.data = json_object();
	} else if (r < 0) {
		return r;
	}
	if (e.version != expected) {
		kv_entry_free(&e);
		return rk_error_set(err, RK_ECONFLICT,
				    "vault %s: %s/%s is at version %ld, rekey read version %ld "
				    "before generating; someone else wrote it", v->base.name,
				    loc->mount, loc->path, e.version, expected);
	}
	data = e.data;
	e.data = NULL;
	if (json_object_set_new(data, loc->key,
				json_stringn(rk_secret_str(req->value), rk_secret_len(req->value))) < 0) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = kv_settled_write(v, call, loc, data, expected, req->value, &version, err)) < 0)
		goto out;
	rk_version_set(new_ver, version);
	kv_tag(v, call, loc, req);
	r = 0;
out:
	json_decref(data);
	return r;
}

int
rk_vault_kv_rollback(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
		     long to, long expected, const struct rk_stage_req *req,
		     struct rk_version *new_ver, struct rk_error *err)
{
	struct kv_entry old, cur;
	struct rk_secret *want = NULL;
	long version = 0, found = 0;
	int r;

	if ((r = kv_read(v, call, loc, to, &old, err)) < 0)
		return r;
	if ((r = kv_value(v, loc, &old, &want, err)) < 0)
		goto out;
	/* Already done by an earlier attempt of this rollback? */
	if (kv_find(v, call, loc, expected, want, &found, err) == 0) {
		rk_version_set(new_ver, found);
		r = 0;
		goto out;
	}
	rk_error_clear(err);
	if ((r = kv_read(v, call, loc, 0, &cur, err)) < 0)
		goto out;
	kv_entry_free(&cur);
	if (expected != 0 && cur.version != expected) {
		r = rk_error_set(err, RK_ECONFLICT,
				 "vault %s: %s/%s moved to version %ld meanwhile; not rolled back",
				 v->base.name, loc->mount, loc->path, cur.version);
		goto out;
	}
	if ((r = kv_settled_write(v, call, loc, old.data, cur.version, want, &version, err)) < 0)
		goto out;
	rk_version_set(new_ver, version);
	kv_tag(v, call, loc, req);
out:
	rk_secret_free(want);
	kv_entry_free(&old);
	return r;
}
