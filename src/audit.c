/*
 * The hash-chained audit log. The MAC key is derived from the fingerprint
 * key, so someone who can write the DB but not read the key file cannot
 * forge a consistent chain after editing a row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/audit.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/store.h"

static int
row_mac(const struct rk_keys *keys, int64_t seq, int64_t ts, const char *actor,
	const char *event, const char *subject, const char *detail, const char *prev,
	char *out, struct rk_error *err)
{
	char *buf = NULL;
	int n;

	/* Fields separated by NUL so that no shift between fields gives the same input. */
	n = asprintf(&buf, "%lld%c%lld%c%s%c%s%c%s%c%s%c%s", (long long)seq, 0, (long long)ts, 0,
		     actor, 0, event, 0, subject, 0, detail, 0, prev);
	if (n < 0)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	rk_keys_mac(keys, buf, (size_t)n, out);
	free(buf);
	return 0;
}

int
rk_audit(struct rk_ctx *ctx, const char *event, const char *subject, const json_t *detail,
	 struct rk_error *err)
{
	return rk_audit_as(ctx, rk_ctx_actor(ctx), event, subject, detail, err);
}

int
rk_audit_as(struct rk_ctx *ctx, const char *actor, const char *event, const char *subject,
	    const json_t *detail, struct rk_error *err)
{
	char prev[RK_FP_HEX_LEN + 1], mac[RK_FP_HEX_LEN + 1];
	char *text = NULL;
	int64_t seq, ts = rk_now(ctx);
	int r;

	if ((text = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}")) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	/* Reading the last row and appending are one transaction: one chain, no gaps. */
	if ((r = rk_store_begin(ctx->store, err)) < 0) {
		free(text);
		return r;
	}
	if ((r = rk_store_audit_last(ctx->store, &seq, prev, sizeof(prev), err)) < 0 ||
	    (r = row_mac(ctx->keys, seq + 1, ts, actor, event, subject, text, prev, mac, err)) < 0)
		goto out;
	r = rk_store_audit_insert(ctx->store, seq + 1, ts, actor, event, subject, text, prev, mac,
				  err);
out:
	if (r < 0)
		rk_store_rollback(ctx->store);
	else
		r = rk_store_commit(ctx->store, err);
	free(text);
	return r;
}

static const char *
str(const json_t *row, const char *key)
{
	const char *s = json_string_value(json_object_get(row, key));

	return s ? s : "";
}

int
rk_audit_verify(struct rk_store *store, const struct rk_keys *keys, int64_t *rows,
		struct rk_error *err)
{
	json_t *list = NULL, *row;
	char prev[RK_FP_HEX_LEN + 1] = "", mac[RK_FP_HEX_LEN + 1];
	int64_t expect = 1;
	size_t i;
	int r;

	if ((r = rk_store_audit_list(store, 0, &list, err)) < 0)
		return r;
	json_array_foreach(list, i, row) {
		int64_t seq = json_integer_value(json_object_get(row, "seq"));
		if (seq != expect) {
			r = rk_error_set(err, RK_EINVAL,
					 "audit chain broken: row %lld is missing (the next row is "
					 "%lld)", (long long)expect, (long long)seq);
			goto out;
		}
		if (strcmp(str(row, "prev_hash"), prev) != 0) {
			r = rk_error_set(err, RK_EINVAL,
					 "audit chain broken at row %lld: it does not follow row "
					 "%lld (rows removed, reordered or edited)",
					 (long long)seq, (long long)(seq - 1));
			goto out;
		}
		if ((r = row_mac(keys, seq, json_integer_value(json_object_get(row, "ts")),
				 str(row, "actor"), str(row, "event"), str(row, "subject"),
				 str(row, "detail"), prev, mac, err)) < 0)
			goto out;
		if (strcmp(mac, str(row, "hash")) != 0) {
			r = rk_error_set(err, RK_EINVAL,
					 "audit chain broken at row %lld: its content was edited "
					 "(event '%s', subject '%s')", (long long)seq,
					 str(row, "event"), str(row, "subject"));
			goto out;
		}
		memcpy(prev, mac, sizeof(prev));
		expect++;
	}
	*rows = expect - 1;
	r = 0;
out:
	json_decref(list);
	return r;
}
