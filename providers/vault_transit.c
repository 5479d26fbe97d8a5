/*
 * Transit keys of the vault provider (see vault.c): Vault makes the key
 * material; a rotation is `rotate` guarded by reading latest_version first
 * (rotate itself is not idempotent), and the "value" rekey fingerprints is
 * a descriptor of the version ("vault-transit:transit/payments:v4").
 */
#include <stdio.h>
#include <string.h>

#include "rekey/http.h"
#include "rekey/provider_kit.h"
#include "rekey/secret.h"
#include "vault_int.h"

int
rk_vault_transit_read_key(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
			  long *latest, long *min_dec, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	json_t *j = NULL;
	const json_t *d;
	char path[600], what[600];
	int r;

	snprintf(path, sizeof(path), "/v1/%s/keys/%s", loc->mount, loc->transit_key);
	if ((r = rk_vault_call(v, call, "GET", path, NULL, NULL, 1, 0, &resp, err)) < 0)
		goto out;
	if (resp.status == 404) {
		/* Transit answers a missing key with a bare 404 and no errors. */
		r = rk_error_set(err, RK_ENOTFOUND, "vault %s: transit key %s/%s does not exist "
				 "(create it: vault write -f %s/keys/%s)", v->base.name,
				 loc->mount, loc->transit_key, loc->mount, loc->transit_key);
		err->http_status = 404;
		goto out;
	}
	snprintf(what, sizeof(what), "read transit key %s/%s", loc->mount, loc->transit_key);
	if ((r = rk_vault_expect_json(v, what, &resp, &j, err)) < 0)
		goto out;
	d = json_object_get(j, "data");
	if (!json_is_integer(json_object_get(d, "latest_version"))) {
		r = rk_error_set(err, RK_EPROTO, "vault %s: read transit key %s/%s: no "
				 "latest_version in the response", v->base.name, loc->mount,
				 loc->transit_key);
		goto out;
	}
	*latest = (long)json_integer_value(json_object_get(d, "latest_version"));
	if (min_dec)
		*min_dec = (long)json_integer_value(json_object_get(d, "min_decryption_version"));
	r = 0;
out:
	json_decref(j);
	rk_http_resp_free(&resp);
	return r;
}

static int
transit_descriptor(const struct vault_loc *loc, long version, struct rk_secret **out,
		   struct rk_error *err)
{
	char d[400];

	snprintf(d, sizeof(d), "vault-transit:%s/%s:v%ld", loc->mount, loc->transit_key, version);
	return rk_secret_from(out, d, strlen(d), err);
}

int
rk_vault_transit_read(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
		      long version, struct rk_secret **out, struct rk_version *ver,
		      struct rk_error *err)
{
	long latest;
	int r;

	if ((r = rk_vault_transit_read_key(v, call, loc, &latest, NULL, err)) < 0)
		return r;
	if (version == 0)
		version = latest;
	else if (version > latest)
		return rk_error_set(err, RK_ENOTFOUND, "transit key has no version %ld", version);
	if (ver != NULL)
		rk_version_set(ver, version);
	return transit_descriptor(loc, version, out, err);
}

int
rk_vault_transit_find_staged(struct vault *v, const struct rk_call *call,
			     const struct vault_loc *loc, long expected, struct rk_version *ver,
			     struct rk_error *err)
{
	long latest;
	int r;

	if ((r = rk_vault_transit_read_key(v, call, loc, &latest, NULL, err)) < 0)
		return r;
	/* Rotate makes no mark of its own: one version past ours is ours. */
	if (latest == expected + 1) {
		rk_version_set(ver, latest);
		return 0;
	}
	if (latest == expected)
		return rk_error_set(err, RK_ENOTFOUND, "transit key not rotated yet");
	return rk_error_set(err, RK_ECONFLICT,
			    "vault %s: transit key %s moved from version %ld to %ld meanwhile",
			    v->base.name, loc->transit_key, expected, latest);
}

int
rk_vault_transit_rotate(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
			long expected, struct rk_version *new_ver, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	long latest, keep = loc->min_decryption_keep, min_dec = 0;
	char path[600];
	int r;

	if ((r = rk_vault_transit_read_key(v, call, loc, &latest, NULL, err)) < 0)
		return r;
	if (latest != expected)
		return rk_error_set(err, RK_ECONFLICT,
				    "vault %s: transit key %s is at version %ld, rekey expected %ld",
				    v->base.name, loc->transit_key, latest, expected);
	snprintf(path, sizeof(path), "/v1/%s/keys/%s/rotate", loc->mount, loc->transit_key);
	/*
	 * Not idempotent (a blind retry would rotate twice): after an unknown
	 * outcome latest_version settles it: one past ours is ours, unchanged is
	 * sent again, anything else is someone else's rotation.
	 */
	for (int attempt = 1;; attempt++) {
		if ((r = rk_vault_call(v, call, "POST", path, "Content-Type: application/json",
				       "{}", RK_HTTP_RETRY_UNPROCESSED, 0, &resp, err)) == 0 &&
		    resp.status != 200 && resp.status != 204)	/* OpenBao/new Vault 200, old 204 */
			r = rk_vault_status_error(v, "rotate transit key", &resp, err);
		rk_http_resp_free(&resp);
		if (r == 0)
			break;
		if (!rk_kit_outcome_unknown(err) ||
		    rk_vault_transit_read_key(v, call, loc, &latest, NULL, err) < 0)
			goto out;
		if (latest == expected + 1) {
			rk_error_clear(err);
			break;
		}
		if (latest != expected) {
			r = rk_error_set(err, RK_ECONFLICT, "vault %s: transit key %s moved from "
					 "version %ld to %ld meanwhile", v->base.name,
					 loc->transit_key, expected, latest);
			goto out;
		}
		if (attempt >= v->hcfg.max_attempts ||
		    (r = rk_vault_resend_wait(v, call, "rotate transit key", attempt, err)) < 0)
			goto out;
	}
	if ((r = rk_vault_transit_read_key(v, call, loc, &latest, &min_dec, err)) < 0)
		goto out;
	rk_version_set(new_ver, latest);
	if (keep > 0 && latest - keep + 1 > min_dec) {
		char body[64];
		snprintf(path, sizeof(path), "/v1/%s/keys/%s/config", loc->mount, loc->transit_key);
		snprintf(body, sizeof(body), "{\"min_decryption_version\":%ld}", latest - keep + 1);
		if ((r = rk_vault_call(v, call, "POST", path, "Content-Type: application/json",
				       body, 1, 0, &resp, err)) < 0)
			goto out;
		if (resp.status != 200 && resp.status != 204) {
			r = rk_vault_status_error(v, "raise min_decryption_version", &resp, err);
			goto out;
		}
	}
	r = 0;
out:
	rk_http_resp_free(&resp);
	return r;
}
