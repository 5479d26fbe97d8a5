/*
 * The `aws` provider: AWS Secrets Manager over its JSON 1.1 protocol, signed
 * with SigV4 (aws_sigv4.c), with the credentials the AWS CLI would use
 * (aws_creds.c), over the shared HTTP client.
 *
 * A rotation follows AWS's own protocol (contract 2.6): PutSecretValue of
 * the new value labelled AWSPENDING under a ClientRequestToken derived from
 * the run, the secret and the version it replaces (so a retry is the same
 * request and AWS ignores it, and a new attempt after a conflict is a new
 * one), GetSecretValue of that version to verify, then
 * UpdateSecretVersionStage moving AWSCURRENT to it with RemoveFromVersionId
 * = the version we replaced (AWS's own precondition: someone else's new
 * current is never moved away), and AWSPENDING removed again. A rollback
 * moves AWSCURRENT back to the version being restored; AWSPREVIOUS follows.
 * With json_key only that key of a JSON SecretString changes. With
 * delegate, RotateSecret runs the secret's own rotation function and rekey
 * waits until AWSCURRENT has moved.
 *
 * Errors are decided on the error's __type (contract 2.7): throttling is
 * waited out and sent again, an expired token or a skewed clock is fixed
 * once and sent again, the rest are final with what to do about them.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "rekey/http.h"
#include "rekey/log.h"
#include "rekey/provider_kit.h"
#include "rekey/resilience.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "aws_creds.h"
#include "aws_sigv4.h"

/* How long a delegated rotation may take by default (its Lambda runs four steps). */
#define DELEGATE_TIMEOUT_MS (5 * 60 * 1000)
#define DELEGATE_POLL_MS 500
#define DELEGATE_POLL_MAX_MS 5000

struct aws {
	struct rk_provider base;
	struct rk_http *http;
	struct rk_http_cfg hcfg;
	struct rk_aws_chain *chain;
	char *host;		/* the Host header signed and sent */
	char *region;
	atomic_llong skew;	/* server clock minus ours, seconds (from Date) */
	int64_t delegate_timeout_ms;
};

struct aws_loc {
	char *secret_id;	/* name or ARN */
	char *json_key;		/* NULL: the whole SecretString */
	int delegate;		/* RotateSecret with the secret's own function */
};

/*
 * Under Secrets Manager's published quotas: 50 writes a second per account
 * and region (PutSecretValue, UpdateSecretVersionStage together; contract
 * 2.7), each rotation making two or three of them.
 */
static const struct rk_http_cfg aws_http_defaults = {
	.connect_timeout_ms = 5000,
	.total_timeout_ms = 15000,
	.max_attempts = 5,
	.base_delay_ms = 200,
	.max_delay_ms = 20000,
	.cb_failures = 5,
	.cb_cooldown_ms = 30000,
	.rps = 20,
	.burst = 10,
	.concurrency = 8,
	.max_response = 1u << 20,
};

static const struct rk_field aws_config_fields[] = {
	{ "type", RK_T_STRING, RK_F_REQUIRED },
	{ "region", RK_T_STRING, 0 },
	{ "profile", RK_T_STRING, 0 },
	{ "endpoint", RK_T_STRING, 0 },
	{ "sts_endpoint", RK_T_STRING, 0 },
	{ "delegate_timeout", RK_T_STRING, 0 },
	RK_HTTP_CFG_FIELDS,
	{ NULL, 0, 0 },
};

static const struct rk_field aws_locator_fields[] = {
	{ "secret_id", RK_T_STRING, RK_F_REQUIRED },
	{ "json_key", RK_T_STRING, 0 },
	{ "delegate", RK_T_BOOL, 0 },
	{ NULL, 0, 0 },
};

/* ---- config ---- */

static int
parse_timeout(const struct rk_provider_env *env, const json_t *cfg, int64_t *out,
	      struct rk_error *err)
{
	const char *t = rk_doc_str(cfg, "delegate_timeout", NULL);
	int64_t ms;

	*out = DELEGATE_TIMEOUT_MS;
	if (t == NULL)
		return 0;
	if (rk_parse_duration_ms(t, &ms) < 0 || ms < 1000 || ms > 86400000)
		return rk_doc_error_key(err, env->doc, cfg, "delegate_timeout", RK_EINVAL,
					"delegate_timeout must be a duration between 1s and 24h, "
					"e.g. 10m");
	*out = ms;
	return 0;
}

static int
aws_parse_config(const struct rk_provider_env *env, const json_t *cfg, struct rk_http_cfg *hcfg,
		 int64_t *delegate_timeout, struct rk_error *err)
{
	const char *ep = rk_doc_str(cfg, "endpoint", NULL);
	int r;

	if ((r = parse_timeout(env, cfg, delegate_timeout, err)) < 0 ||
	    (r = rk_http_cfg_parse(hcfg, env->doc, cfg, &aws_http_defaults, err)) < 0)
		return r;
	if (ep != NULL && (r = rk_http_check(env->name, ep, hcfg, err)) < 0) {
		char msg[sizeof(err->msg)];
		memcpy(msg, err->msg, sizeof(msg));
		rk_error_clear(err);
		return rk_doc_error_key(err, env->doc, cfg, "endpoint", r, "%s", msg);
	}
	return 0;
}

static int
aws_check_config(const struct rk_provider_env *env, const json_t *cfg, struct rk_error *err)
{
	struct rk_http_cfg hcfg;
	int64_t t;
	int r;

	memset(&hcfg, 0, sizeof(hcfg));
	r = aws_parse_config(env, cfg, &hcfg, &t, err);
	rk_http_cfg_free(&hcfg);
	return r;
}

static void
aws_close(struct rk_provider *p)
{
	struct aws *a = (struct aws *)p;

	if (a == NULL)
		return;
	rk_http_free(a->http);
	rk_http_cfg_free(&a->hcfg);
	rk_aws_chain_free(a->chain);
	free(a->host);
	free(a->region);
	free(a);
}

/* "https://h:p/x" -> "h:p": what libcurl sends as Host, and what is signed. */
static int
host_of(const char *url, char **out, struct rk_error *err)
{
	const char *s = strstr(url, "://"), *e;

	s = s ? s + 3 : url;
	e = s + strcspn(s, "/?#");
	if (e == s)
		return rk_error_set(err, RK_EINVAL, "endpoint %s has no host", url);
	if ((*out = strndup(s, (size_t)(e - s))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}

static int
aws_open(struct rk_provider **out, const struct rk_provider_env *env, const json_t *cfg,
	 struct rk_error *err)
{
	struct aws *a = calloc(1, sizeof(*a));
	struct rk_aws_chain_cfg cc = { 0 };
	const char *ep;
	int r;

	if (a == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	atomic_init(&a->skew, 0);
	if ((r = aws_parse_config(env, cfg, &a->hcfg, &a->delegate_timeout_ms, err)) < 0)
		goto out;
	cc.profile = rk_doc_str(cfg, "profile", NULL);
	cc.region = rk_doc_str(cfg, "region", NULL);
	cc.endpoint = rk_doc_str(cfg, "endpoint", NULL);
	cc.sts_endpoint = rk_doc_str(cfg, "sts_endpoint", NULL);
	cc.http = &a->hcfg;
	cc.provider_name = env->name;
	if ((r = rk_aws_chain_new(&a->chain, &cc, err)) < 0)
		goto out;
	ep = rk_aws_chain_endpoint(a->chain, "SECRETS_MANAGER");
	if ((r = rk_kit_dupstr(&a->region, rk_aws_chain_region(a->chain), err)) < 0 ||
	    (r = host_of(ep, &a->host, err)) < 0 ||
	    (r = rk_http_new(&a->http, env->name, ep, &a->hcfg, err)) < 0)
		goto out;
	*out = &a->base;
	a = NULL;
	r = 0;
out:
	if (r < 0)
		rk_error_prefix(err, "aws %s: ", env->name);
	aws_close(a ? &a->base : NULL);
	return r;
}

/* ---- locator ---- */

static int
aws_check_locator(const struct rk_doc *doc, const json_t *loc, struct rk_error *err)
{
	const char *id = rk_doc_str(loc, "secret_id", "");
	const char *key = rk_doc_str(loc, "json_key", NULL);

	if (id[0] == '\0' || strlen(id) > 2048)
		return rk_doc_error_key(err, doc, loc, "secret_id", RK_EINVAL,
					"secret_id must be a secret's name or ARN");
	if (key != NULL && key[0] == '\0')
		return rk_doc_error_key(err, doc, loc, "json_key", RK_EINVAL,
					"json_key must not be empty");
	if (key != NULL && rk_doc_bool(loc, "delegate", 0))
		return rk_doc_error_key(err, doc, loc, "json_key", RK_EINVAL,
					"json_key and delegate exclude each other: the rotation "
					"function writes the whole secret");
	return 0;
}

static void
aws_free_locator(void *loc)
{
	struct aws_loc *al = loc;

	if (al == NULL)
		return;
	free(al->secret_id);
	free(al->json_key);
	free(al);
}

static int
aws_parse_locator(const struct rk_provider *p, const json_t *loc, void **out,
		  struct rk_error *err)
{
	struct aws_loc *al = calloc(1, sizeof(*al));
	const char *id = rk_doc_str(loc, "secret_id", NULL);
	int r;

	if (al == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (id == NULL) {
		aws_free_locator(al);
		return rk_error_set(err, RK_EINVAL, "aws %s: a locator needs secret_id", p->name);
	}
	al->delegate = rk_doc_bool(loc, "delegate", 0);
	if ((r = rk_kit_dupstr(&al->secret_id, id, err)) < 0 ||
	    (r = rk_kit_dupstr(&al->json_key, rk_doc_str(loc, "json_key", NULL), err)) < 0) {
		aws_free_locator(al);
		return r;
	}
	*out = al;
	return 0;
}

static int
aws_generates(const void *loc)
{
	return ((const struct aws_loc *)loc)->delegate;
}

/* ---- one signed call ---- */

/* The error of an answer: __type without namespace or suffix, and its message. */
static void
error_of(const json_t *j, long status, char *type, size_t tn, char *msg, size_t mn)
{
	const char *t = json_string_value(json_object_get(j, "__type"));
	const char *m = json_string_value(json_object_get(j, "message"));
	const char *hash;
	size_t len;

	if (m == NULL)
		m = json_string_value(json_object_get(j, "Message"));
	if (t == NULL) {
		snprintf(type, tn, "HTTP %ld", status);
	} else {
		if ((hash = strrchr(t, '#')) != NULL)
			t = hash + 1;
		len = strcspn(t, ":");
		snprintf(type, tn, "%.*s", (int)len, t);
	}
	/*
	 * Only the first line: an InvalidSignatureException goes on with the
	 * canonical request AWS expected, which holds the session token.
	 */
	snprintf(msg, mn, "%.*s", m ? (int)strcspn(m, "\r\n") : 0, m ? m : "");
}

static int
is_throttling(const char *type)
{
	static const char *const codes[] = {
		"ThrottlingException", "Throttling", "ThrottledException",
		"RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
		"RequestThrottled", "SlowDown", "PriorRequestNotComplete", NULL,
	};

	for (int i = 0; codes[i]; i++)
		if (strcmp(type, codes[i]) == 0)
			return 1;
	return 0;
}

/* What a final error __type means for rekey: its code, and what to do about it. */
static const char ADVICE_CREDS[] = "; check the credentials rekey found (`rekey doctor` names "
				   "their source) and the machine's clock";
static const struct {
	const char *type;
	int code;
	const char *hint;
} final_errors[] = {
	{ "ResourceNotFoundException", RK_ENOTFOUND, "" },
	{ "ResourceExistsException", RK_ECONFLICT, "" },
	{ "AccessDeniedException", RK_EAUTH,
	  "; grant the IAM permissions in the README (secretsmanager:GetSecretValue, "
	  "PutSecretValue, UpdateSecretVersionStage, DescribeSecret)" },
	{ "LimitExceededException", RK_EUNSUPPORTED,
	  "; the secret has too many versions: AWS deletes unlabelled versions over time, so "
	  "wait, and rotate it less often than every few minutes" },
	{ "InvalidSignatureException", RK_EAUTH, ADVICE_CREDS },
	{ "IncompleteSignature", RK_EAUTH, ADVICE_CREDS },
	{ "UnrecognizedClientException", RK_EAUTH, ADVICE_CREDS },
	{ "InvalidClientTokenId", RK_EAUTH, ADVICE_CREDS },
	{ "ExpiredTokenException", RK_EAUTH, ADVICE_CREDS },
	{ "MissingAuthenticationToken", RK_EAUTH, ADVICE_CREDS },
	{ "InvalidRequestException", RK_EINVAL, "" },
	{ "InvalidParameterException", RK_EINVAL, "" },
	{ "ValidationException", RK_EINVAL, "" },
	{ "DecryptionFailure", RK_EINVAL, "" },
	{ "EncryptionFailure", RK_EINVAL, "" },
};

/* A final error: its code from the table (an unknown __type is a protocol surprise). */
static int
final_error(struct aws *a, const char *op, const struct aws_loc *loc, const char *type,
	    const char *msg, struct rk_error *err)
{
	const char *id = loc ? loc->secret_id : "";
	int code = RK_EPROTO;
	const char *hint = "";

	for (size_t i = 0; i < sizeof(final_errors) / sizeof(final_errors[0]); i++)
		if (strcmp(type, final_errors[i].type) == 0) {
			code = final_errors[i].code;
			hint = final_errors[i].hint;
			break;
		}
	return rk_error_set(err, code, "aws %s: %s%s%s: %s%s%s%s", a->base.name, op,
			    id[0] ? " of " : "", id, type, msg[0] ? ": " : "", msg, hint);
}

/* Sleeps a full-jitter backoff for attempt n, at least Retry-After; 0 or RK_ECANCELED/ETRANSIENT. */
static int
backoff(struct aws *a, const struct rk_call *call, int n, double retry_after)
{
	int64_t ms = rk_backoff_ms(n, a->hcfg.base_delay_ms, a->hcfg.max_delay_ms,
				   randombytes_random());

	if (retry_after * 1000 > (double)ms)
		ms = (int64_t)(retry_after * 1000);
	return rk_call_sleep(call, ms);
}

/*
 * Sends one Secrets Manager operation with body (a JSON object, dumped
 * here), signed with the current credentials; *out gets the answer object.
 * idem is the HTTP client's rk_http_req.idempotent for it.
 */
static int
aws_call(struct aws *a, const struct rk_call *call, const char *op, const struct aws_loc *loc,
	 const json_t *body, int idem, int sensitive, json_t **out, struct rk_error *err)
{
	char *text = json_dumps(body, JSON_COMPACT);
	char target[96], host[300], type[128], msg[300];
	int refreshed = 0, skewed = 0, r = 0;

	*out = NULL;
	if (text == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	snprintf(target, sizeof(target), "X-Amz-Target: secretsmanager.%s", op);
	snprintf(host, sizeof(host), "Host: %s", a->host);
	for (int attempt = 0;; attempt++) {
		struct rk_aws_creds cr = { 0 };
		struct rk_sigv4_out so = { 0 };
		struct rk_http_resp resp = { 0 };
		const char *hdrs[16];
		size_t nh = 0;
		json_t *j = NULL;

		if ((r = rk_aws_chain_get(a->chain, call, &cr, err)) < 0)
			break;
		hdrs[nh++] = host;
		hdrs[nh++] = "Content-Type: application/x-amz-json-1.1";
		hdrs[nh++] = target;
		hdrs[nh] = NULL;
		{
			struct rk_sigv4_req sr = {
				.method = "POST", .target = "/", .headers = hdrs, .body = text,
				.body_len = strlen(text), .region = a->region,
				.service = "secretsmanager",
				.now = time(NULL) + (time_t)atomic_load(&a->skew),
				.flags = RK_SIGV4_NORMALIZE_PATH,
			};
			struct rk_sigv4_key key = { cr.access_key_id, cr.secret_access_key,
						    cr.session_token };
			r = rk_sigv4_sign(&sr, &key, &so, err);
		}
		rk_aws_creds_clear(&cr);
		if (r < 0)
			break;
		for (size_t k = 0; so.add_headers[k] && nh < 15; k++)
			hdrs[nh++] = so.add_headers[k];
		hdrs[nh] = NULL;
		{
			struct rk_http_req req = {
				.method = "POST", .path = "/", .headers = hdrs, .body = text,
				.body_len = strlen(text), .idempotent = idem,
				.sensitive = sensitive, .call = call,
				.priority = call ? call->priority : 0,
			};
			r = rk_http_do(a->http, &req, &resp, err);
		}
		rk_sigv4_out_free(&so);
		if (r < 0) {
			rk_error_prefix(err, "aws %s: %s: ", a->base.name, op);
			break;
		}
		if (resp.status == 200) {
			j = json_loadb(resp.body, resp.len, 0, NULL);
			if (!json_is_object(j)) {
				json_decref(j);
				r = rk_error_set(err, RK_EPROTO, "aws %s: %s: the answer is not a JSON "
						 "object (%zu bytes)", a->base.name, op, resp.len);
			} else {
				*out = j;
			}
			rk_http_resp_free(&resp);
			break;
		}
		j = json_loadb(resp.body, resp.len, 0, NULL);
		error_of(j, resp.status, type, sizeof(type), msg, sizeof(msg));
		json_decref(j);
		if (resp.status >= 500) {
			/* The HTTP client already retried what it may: the outcome is unknown. */
			r = rk_error_set(err, RK_ETRANSIENT, "aws %s: %s: %s (HTTP %ld)%s%s",
					 a->base.name, op, type, resp.status, msg[0] ? ": " : "", msg);
		} else if (is_throttling(type) && attempt + 1 < a->hcfg.max_attempts) {
			/* Refused, so certainly not done: wait it out and send it again. */
			double ra = resp.retry_after;
			rk_http_resp_free(&resp);
			rk_log(RK_LOG_WARN, "provider.throttled", "provider", a->base.name, "op", op,
			       NULL);
			if ((r = backoff(a, call, attempt, ra)) < 0) {
				r = rk_error_set(err, r == RK_ECANCELED ? RK_ECANCELED : RK_ETRANSIENT,
						 "aws %s: %s: throttled, and %s", a->base.name, op,
						 r == RK_ECANCELED ? "rekey is stopping"
								   : "the deadline came");
				break;
			}
			continue;
		} else if (is_throttling(type)) {
			r = rk_error_set(err, RK_ETRANSIENT, "aws %s: %s: still throttled after %d "
					 "attempts (%s); lower rate_limit.rps", a->base.name, op,
					 attempt + 1, type);
		} else if (!refreshed && (strcmp(type, "ExpiredTokenException") == 0 ||
					  strcmp(type, "UnrecognizedClientException") == 0)) {
			/* Temporary credentials ran out early: fetch new ones once. */
			rk_http_resp_free(&resp);
			rk_aws_chain_invalidate(a->chain);
			refreshed = 1;
			continue;
		} else if (!skewed && resp.date > 0 && strcmp(type, "InvalidSignatureException") == 0 &&
			   strstr(msg, "Signature expired") != NULL) {
			/* Our clock is off: sign with the server's time, as the SDKs do. */
			atomic_store(&a->skew, (long long)(resp.date - (int64_t)time(NULL)));
			rk_log(RK_LOG_WARN, "provider.clock_skew", "provider", a->base.name, NULL);
			rk_http_resp_free(&resp);
			skewed = 1;
			continue;
		} else {
			r = final_error(a, op, loc, type, msg, err);
		}
		if (err->code != 0)
			err->http_status = (int)resp.status;
		rk_http_resp_free(&resp);
		break;
	}
	if (sensitive)
		rk_wipe_free_str(text);
	else
		free(text);
	return r;
}

/* ---- values ---- */

/*
 * The JSON object a SecretString holds (json_key). jansson holds integers
 * in 64 bits: a larger one would be changed by a write, so it is refused.
 */
static int
parse_doc(struct aws *a, const struct aws_loc *loc, const char *s, json_t **out,
	  struct rk_error *err)
{
	json_error_t je;
	json_t *doc = json_loads(s, JSON_REJECT_DUPLICATES, &je);

	if (doc == NULL && strstr(je.text, "too big") != NULL)
		return rk_error_set(err, RK_EINVAL, "aws %s: the JSON SecretString of %s holds a "
				    "number rekey cannot keep exactly (%s, line %d); it was not "
				    "changed", a->base.name, loc->secret_id, je.text, je.line);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return rk_error_set(err, RK_EINVAL, "aws %s: the SecretString of %s is not a JSON "
				    "object (%s), so json_key '%s' cannot be used; nothing was "
				    "changed", a->base.name, loc->secret_id,
				    doc ? "another JSON value" : je.text, loc->json_key);
	}
	*out = doc;
	return 0;
}

/*
 * The SecretString of an answer as the locator's value: the whole string,
 * or json_key of the JSON object it holds (a string value).
 */
static int
value_of(struct aws *a, const struct aws_loc *loc, const json_t *ans, struct rk_secret **out,
	 struct rk_error *err)
{
	const char *s = json_string_value(json_object_get(ans, "SecretString"));
	json_t *doc = NULL;
	const json_t *v;
	int r;

	if (s == NULL)
		return rk_error_set(err, RK_EUNSUPPORTED, "aws %s: %s holds a SecretBinary; rekey "
				    "rotates SecretString values", a->base.name, loc->secret_id);
	if (loc->json_key == NULL)
		return rk_secret_from(out, s, strlen(s), err);
	if ((r = parse_doc(a, loc, s, &doc, err)) < 0)
		return r;
	v = json_object_get(doc, loc->json_key);
	if (!json_is_string(v))
		r = rk_error_set(err, RK_EINVAL, "aws %s: the JSON SecretString of %s has %s '%s'; "
				 "json_key must name a string", a->base.name, loc->secret_id,
				 v ? "a non-string" : "no key", loc->json_key);
	else
		r = rk_secret_from(out, json_string_value(v), json_string_length(v), err);
	json_decref(doc);
	return r;
}

/*
 * The SecretString to write: value itself, or the current JSON object
 * (cur_string) with json_key set to value, every other key kept as it was.
 * A document jansson cannot hold exactly (an integer beyond 64 bits) is
 * refused rather than changed. *out is wiped by the caller.
 */
static int
document_for(struct aws *a, const struct aws_loc *loc, const char *cur_string,
	     const struct rk_secret *value, char **out, struct rk_error *err)
{
	json_t *doc = NULL, *nv;
	int r;

	if (loc->json_key == NULL) {
		if ((*out = strndup((const char *)rk_secret_cdata(value), rk_secret_len(value))) ==
		    NULL)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		return 0;
	}
	if (cur_string == NULL)
		doc = json_object();
	else if ((r = parse_doc(a, loc, cur_string, &doc, err)) < 0)
		return r;
	nv = json_stringn((const char *)rk_secret_cdata(value), rk_secret_len(value));
	if (doc == NULL || nv == NULL || json_object_set_new(doc, loc->json_key, nv) < 0) {
		json_decref(doc);
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	}
	*out = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
	json_decref(doc);
	return *out ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
}

/* GetSecretValue of a version id or stage; *ans owned by the caller. */
static int
get_value(struct aws *a, const struct rk_call *call, const struct aws_loc *loc,
	  const char *version_id, const char *stage, json_t **ans, struct rk_error *err)
{
	json_t *body = json_pack("{s:s}", "SecretId", loc->secret_id);
	int r;

	if (body == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (version_id != NULL)
		json_object_set_new(body, "VersionId", json_string(version_id));
	else
		json_object_set_new(body, "VersionStage", json_string(stage));
	r = aws_call(a, call, "GetSecretValue", loc, body, RK_HTTP_IDEMPOTENT, 1, ans, err);
	json_decref(body);
	if (r == 0 && !json_is_string(json_object_get(*ans, "VersionId"))) {
		json_decref(*ans);
		*ans = NULL;
		r = rk_error_set(err, RK_EPROTO, "aws %s: GetSecretValue of %s: the answer has no "
				 "VersionId", a->base.name, loc->secret_id);
	}
	return r;
}

/* The version AWSCURRENT is on, from DescribeSecret ("" when none); *labels (optional) kept. */
static int
describe(struct aws *a, const struct rk_call *call, const struct aws_loc *loc, char *current,
	 size_t n, json_t **labels, struct rk_error *err)
{
	json_t *body = json_pack("{s:s}", "SecretId", loc->secret_id), *ans = NULL;
	const json_t *m, *st;
	const char *vid;
	int r;

	current[0] = '\0';
	if (body == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	r = aws_call(a, call, "DescribeSecret", loc, body, RK_HTTP_IDEMPOTENT, 0, &ans, err);
	json_decref(body);
	if (r < 0)
		return r;
	m = json_object_get(ans, "VersionIdsToStages");
	if (m != NULL && !json_is_object(m)) {
		json_decref(ans);
		return rk_error_set(err, RK_EPROTO, "aws %s: DescribeSecret of %s: "
				    "VersionIdsToStages is not an object", a->base.name,
				    loc->secret_id);
	}
	json_object_foreach((json_t *)m, vid, st) {
		size_t k;
		json_t *lab;
		json_array_foreach(st, k, lab)
			if (json_is_string(lab) && strcmp(json_string_value(lab), "AWSCURRENT") == 0)
				snprintf(current, n, "%s", vid);
	}
	if (labels != NULL)
		*labels = json_incref((json_t *)m);
	json_decref(ans);
	return 0;
}


/*
 * The ClientRequestToken of a write, as a UUID: a BLAKE2b of the version it
 * replaces and the value, keyed with the journal's idempotency key (which
 * AWS never sees, so the token says nothing of the value). A retry of the
 * same write sends the same token (AWS then ignores it); a new value, or the
 * same rotation replacing another version after a conflict, gets another.
 */
static void
request_token(const struct rk_stage_req *req, char out[37])
{
	unsigned char h[16];
	crypto_generichash_state st;
	static const char hex[] = "0123456789abcdef";
	const char *exp = req->expected ? req->expected->id : "";
	int o = 0;

	crypto_generichash_init(&st, (const unsigned char *)req->idem_key, strlen(req->idem_key),
				sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)exp, strlen(exp) + 1);
	if (req->value != NULL)
		crypto_generichash_update(&st, rk_secret_cdata(req->value), rk_secret_len(req->value));
	crypto_generichash_final(&st, h, sizeof(h));
	h[6] = (unsigned char)((h[6] & 0x0f) | 0x40);	/* the version 4 layout */
	h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[h[i] >> 4];
		out[o++] = hex[h[i] & 15];
	}
	out[o] = '\0';
	sodium_memzero(h, sizeof(h));
}

/* ---- ops ---- */

static int
read_at(struct rk_provider *p, const struct rk_call *call, const struct aws_loc *loc,
	const char *version_id, struct rk_secret **out, struct rk_version *ver,
	struct rk_error *err)
{
	struct aws *a = (struct aws *)p;
	json_t *ans = NULL;
	int r;

	if ((r = get_value(a, call, loc, version_id, "AWSCURRENT", &ans, err)) < 0)
		return r;
	if ((r = value_of(a, loc, ans, out, err)) == 0 && ver != NULL)
		snprintf(ver->id, sizeof(ver->id), "%s",
			 json_string_value(json_object_get(ans, "VersionId")));
	json_decref(ans);
	return r;
}

static int
aws_read(struct rk_provider *p, const struct rk_call *call, const void *loc,
	 struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	return read_at(p, call, loc, NULL, out, ver, err);
}

/*
 * A staged version is read as AWSPENDING and by its VersionId together (AWS
 * answers only when both name it); another (a version being restored, or one
 * whose AWSPENDING moved on) by its VersionId alone.
 */
static int
aws_read_version(struct rk_provider *p, const struct rk_call *call, const void *loc_,
		 const struct rk_version *ver, struct rk_secret **out, struct rk_error *err)
{
	struct aws *a = (struct aws *)p;
	const struct aws_loc *loc = loc_;
	json_t *body, *ans = NULL;
	int r;

	if (ver->id[0] == '\0')
		return rk_error_set(err, RK_ENOTFOUND, "no version given");
	if ((body = json_pack("{s:s, s:s, s:s}", "SecretId", loc->secret_id, "VersionId", ver->id,
			      "VersionStage", "AWSPENDING")) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	r = aws_call(a, call, "GetSecretValue", loc, body, RK_HTTP_IDEMPOTENT, 1, &ans, err);
	json_decref(body);
	if (r == RK_ENOTFOUND || r == RK_EINVAL) {
		rk_error_clear(err);
		return read_at(p, call, loc, ver->id, out, NULL, err);
	}
	if (r == 0)
		r = value_of(a, loc, ans, out, err);
	json_decref(ans);
	return r;
}

/*
 * Waits until AWSCURRENT is on version vid (a delegated rotation), bounded
 * by delegate_timeout and the call. 0, RK_ETRANSIENT (still running),
 * RK_ECANCELED.
 */
static int
wait_current(struct aws *a, const struct rk_call *call, const struct aws_loc *loc,
	     const char *vid, struct rk_error *err)
{
	int64_t until = rk_mono_ms() + a->delegate_timeout_ms, wait = DELEGATE_POLL_MS;
	char cur[128];
	int r;

	for (;;) {
		if ((r = describe(a, call, loc, cur, sizeof(cur), NULL, err)) < 0)
			return r;
		if (strcmp(cur, vid) == 0)
			return 0;
		if (rk_mono_ms() + wait > until)
			return rk_error_set(err, RK_ETRANSIENT, "aws %s: the rotation function of %s "
					    "did not make version %s current within %lld s; see its "
					    "logs (CloudWatch) and `rekey rotate --resume`",
					    a->base.name, loc->secret_id, vid,
					    (long long)(a->delegate_timeout_ms / 1000));
		if ((r = rk_call_sleep(call, wait)) < 0)
			return rk_error_set(err, r, "aws %s: stopped waiting for the rotation "
					    "function of %s", a->base.name, loc->secret_id);
		wait = wait * 2 > DELEGATE_POLL_MAX_MS ? DELEGATE_POLL_MAX_MS : wait * 2;
	}
}

/* The stage's precondition failed: AWSCURRENT is on cur, not on the version read. */
static int
changed_since_read(struct aws *a, const struct aws_loc *loc, const char *cur,
		   const struct rk_stage_req *req, struct rk_error *err)
{
	return rk_error_set(err, RK_ECONFLICT, "aws %s: %s changed since it was read (AWSCURRENT "
			    "is on %s, not %s)", a->base.name, loc->secret_id,
			    cur[0] ? cur : "no version", req->expected->id);
}

static int
delegate_stage(struct aws *a, const struct rk_call *call, const struct aws_loc *loc,
	       const struct rk_stage_req *req, struct rk_version *new_ver, struct rk_error *err)
{
	char token[37], cur[128];
	json_t *body, *ans = NULL;
	int r;

	if ((r = describe(a, call, loc, cur, sizeof(cur), NULL, err)) < 0)
		return r;
	if (strcmp(cur, req->expected->id) != 0)
		return changed_since_read(a, loc, cur, req, err);
	request_token(req, token);
	if ((body = json_pack("{s:s, s:s}", "SecretId", loc->secret_id, "ClientRequestToken",
			      token)) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	r = aws_call(a, call, "RotateSecret", loc, body, RK_HTTP_IDEMPOTENT, 0, &ans, err);
	json_decref(body);
	json_decref(ans);
	if (r < 0)
		return r;
	if ((r = wait_current(a, call, loc, token, err)) < 0)
		return r;
	snprintf(new_ver->id, sizeof(new_ver->id), "%s", token);
	return 0;
}

static int
aws_stage(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	  const struct rk_stage_req *req, struct rk_version *new_ver, struct rk_error *err)
{
	struct aws *a = (struct aws *)p;
	const struct aws_loc *loc = loc_;
	json_t *cur = NULL, *body = NULL, *ans = NULL;
	const char *cur_vid = "", *cur_string = NULL, *op;
	char token[37], *doc = NULL;
	int r;

	if (loc->delegate)
		return delegate_stage(a, call, loc, req, new_ver, err);
	r = get_value(a, call, loc, NULL, "AWSCURRENT", &cur, err);
	if (r == RK_ENOTFOUND && req->expected->id[0] == '\0') {
		rk_error_clear(err);	/* a new secret: CreateSecret */
	} else if (r < 0) {
		return r;
	} else {
		cur_vid = json_string_value(json_object_get(cur, "VersionId"));
		cur_string = json_string_value(json_object_get(cur, "SecretString"));
	}
	if (strcmp(cur_vid, req->expected->id) != 0) {
		r = changed_since_read(a, loc, cur_vid, req, err);
		goto out;
	}
	if (req->restore != NULL && cur != NULL) {
		/* A rollback: that version exists with the value; promote moves AWSCURRENT back. */
		snprintf(new_ver->id, sizeof(new_ver->id), "%s", req->restore->id);
		goto out;
	}
	if ((r = document_for(a, loc, cur_string, req->value, &doc, err)) < 0)
		goto out;
	request_token(req, token);
	if (cur == NULL) {
		op = "CreateSecret";
		body = json_pack("{s:s, s:s, s:s}", "Name", loc->secret_id, "ClientRequestToken",
				 token, "SecretString", doc);
	} else {
		op = "PutSecretValue";
		body = json_pack("{s:s, s:s, s:s, s:[s]}", "SecretId", loc->secret_id,
				 "ClientRequestToken", token, "SecretString", doc, "VersionStages",
				 "AWSPENDING");
	}
	if (body == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	/* The same token and value again is a no-op for AWS: safe to resend. */
	if ((r = aws_call(a, call, op, loc, body, RK_HTTP_IDEMPOTENT, 1, &ans, err)) < 0)
		goto out;
	snprintf(new_ver->id, sizeof(new_ver->id), "%s", token);
out:
	if (body != NULL) {
		/* The body holds the value: wipe its strings before they are freed. */
		json_t *ss = json_object_get(body, "SecretString");
		if (ss != NULL)
			sodium_memzero((void *)json_string_value(ss), json_string_length(ss));
	}
	json_decref(body);
	json_decref(ans);
	json_decref(cur);
	rk_wipe_free_str(doc);
	return r;
}

static int
aws_find_staged(struct rk_provider *p, const struct rk_call *call, const void *loc_,
		const struct rk_stage_req *req, struct rk_version *ver, struct rk_error *err)
{
	struct aws *a = (struct aws *)p;
	const struct aws_loc *loc = loc_;
	struct rk_secret *back = NULL;
	json_t *ans = NULL;
	char token[37], cur[128];
	int r;

	if (req->restore != NULL) {
		snprintf(ver->id, sizeof(ver->id), "%s", req->restore->id);
		return 0;
	}
	request_token(req, token);
	if (loc->delegate) {
		json_t *labels = NULL;
		if ((r = describe(a, call, loc, cur, sizeof(cur), &labels, err)) < 0)
			return r;
		r = json_object_get(labels, token) != NULL;
		json_decref(labels);
		if (!r)
			return rk_error_set(err, RK_ENOTFOUND, "not staged");
		if ((r = wait_current(a, call, loc, token, err)) < 0)
			return r;
		snprintf(ver->id, sizeof(ver->id), "%s", token);
		return 0;
	}
	r = get_value(a, call, loc, token, NULL, &ans, err);
	if (r == RK_ENOTFOUND) {
		rk_error_clear(err);
		if ((r = describe(a, call, loc, cur, sizeof(cur), NULL, err)) < 0 &&
		    !(r == RK_ENOTFOUND && req->expected->id[0] == '\0'))
			return r;
		rk_error_clear(err);
		if (strcmp(cur, req->expected->id) != 0)
			return rk_error_set(err, RK_ECONFLICT, "aws %s: %s was changed by someone "
					    "else (AWSCURRENT is on %s, not %s)", a->base.name,
					    loc->secret_id, cur[0] ? cur : "no version",
					    req->expected->id);
		return rk_error_set(err, RK_ENOTFOUND, "not staged");
	}
	if (r < 0)
		return r;
	r = value_of(a, loc, ans, &back, err);
	json_decref(ans);
	if (r < 0)
		return r;
	if (!rk_secret_equal(back, req->value))
		r = rk_error_set(err, RK_ECONFLICT, "aws %s: version %s of %s holds another value "
				 "than this rotation's", a->base.name, token, loc->secret_id);
	else
		snprintf(ver->id, sizeof(ver->id), "%s", token);
	rk_secret_free(back);
	return r;
}

/* Moves label from `from` (may be "") to `to` (may be NULL: only removes). */
static int
move_label(struct aws *a, const struct rk_call *call, const struct aws_loc *loc,
	   const char *label, const char *to, const char *from, struct rk_error *err)
{
	json_t *body = json_pack("{s:s, s:s}", "SecretId", loc->secret_id, "VersionStage", label);
	json_t *ans = NULL;
	int r;

	if (body == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (to != NULL)
		json_object_set_new(body, "MoveToVersionId", json_string(to));
	if (from != NULL && from[0] != '\0')
		json_object_set_new(body, "RemoveFromVersionId", json_string(from));
	/* Settled by reading back (describe), so resent only when certainly not done. */
	r = aws_call(a, call, "UpdateSecretVersionStage", loc, body, RK_HTTP_RETRY_UNPROCESSED, 0,
		     &ans, err);
	json_decref(body);
	json_decref(ans);
	return r;
}

static int
aws_promote(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	    const struct rk_version *new_ver, const struct rk_version *old_ver,
	    struct rk_error *err)
{
	struct aws *a = (struct aws *)p;
	const struct aws_loc *loc = loc_;
	json_t *labels = NULL;
	char cur[128];
	int r;

	if ((r = describe(a, call, loc, cur, sizeof(cur), &labels, err)) < 0)
		return r;
	if (strcmp(cur, new_ver->id) != 0 && strcmp(cur, old_ver->id) == 0) {
		r = move_label(a, call, loc, "AWSCURRENT", new_ver->id, cur, err);
		if (r == RK_ECANCELED)
			goto out;
		if (r < 0) {
			/* Unknown outcome or a refused precondition: what does AWS say now? */
			struct rk_error e2 = { 0 };
			json_decref(labels);
			labels = NULL;
			if (describe(a, call, loc, cur, sizeof(cur), &labels, &e2) < 0 ||
			    strcmp(cur, old_ver->id) == 0)
				goto out;	/* not moved, and nobody else's: the error stands */
		} else {
			snprintf(cur, sizeof(cur), "%s", new_ver->id);
		}
		rk_error_clear(err);
	}
	if (strcmp(cur, new_ver->id) != 0) {
		r = rk_error_set(err, RK_ECONFLICT, "aws %s: AWSCURRENT of %s is on %s, which is "
				 "neither the version rekey replaced (%s) nor its new one (%s); "
				 "someone else changed it, so it was not moved", a->base.name,
				 loc->secret_id, cur[0] ? cur : "no version",
				 old_ver->id[0] ? old_ver->id : "none", new_ver->id);
		goto out;
	}
	/* AWSPENDING stays on the new current (contract 2.6, rule 5) until aws_tidy. */
	r = 0;
out:
	json_decref(labels);
	return r;
}

/* Versions are AWS's own: the version restored is made current by promote. */
/*
 * Housekeeping after the run's urgent work (it shares the write quota with
 * PutSecretValue and UpdateSecretVersionStage): AWSPENDING off the new
 * current, so that no rotation looks in progress. Stage put it there and
 * moving AWSCURRENT left it, so it is removed without a DescribeSecret first.
 */
static int
aws_tidy(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	 const struct rk_version *new_ver, struct rk_error *err)
{
	return move_label((struct aws *)p, call, loc_, "AWSPENDING", NULL, new_ver->id, err);
}

static int
aws_rollback(struct rk_provider *p, const struct rk_call *call, const void *loc,
	     const struct rk_version *to, const struct rk_stage_req *req,
	     struct rk_version *new_ver, struct rk_error *err)
{
	(void)p, (void)call, (void)loc, (void)req, (void)err;
	*new_ver = *to;
	return 0;
}

/* ---- doctor ---- */

static int
aws_doctor(struct rk_provider *p, const json_t *const *locs, size_t nlocs,
	   void (*report)(const char *line, int ok, void *arg), void *arg, struct rk_error *err)
{
	struct aws *a = (struct aws *)p;
	struct rk_aws_creds cr = { 0 };
	struct rk_error e = { 0 };
	char line[900], cur[128];

	(void)err;	/* every problem is a reported line */
	if (rk_aws_chain_get(a->chain, NULL, &cr, &e) < 0) {
		snprintf(line, sizeof(line), "aws %s: credentials: %s", p->name, e.msg);
		report(line, 0, arg);
		return 0;
	}
	snprintf(line, sizeof(line), "aws %s: credentials found (%s), region %s", p->name,
		 cr.source[0] ? cr.source : rk_aws_chain_source(a->chain), a->region);
	rk_aws_creds_clear(&cr);
	report(line, 1, arg);
	for (size_t i = 0; i < nlocs; i++) {
		void *loc = NULL;
		rk_error_clear(&e);
		if (aws_parse_locator(p, locs[i], &loc, &e) < 0) {
			report(e.msg, 0, arg);
			continue;
		}
		if (describe(a, NULL, loc, cur, sizeof(cur), NULL, &e) < 0)
			snprintf(line, sizeof(line), "%s", e.msg);
		else
			snprintf(line, sizeof(line), "aws %s: DescribeSecret %s: AWSCURRENT on %s",
				 p->name, ((struct aws_loc *)loc)->secret_id,
				 cur[0] ? cur : "(none)");
		report(line, e.code == 0, arg);
		aws_free_locator(loc);
	}
	return 0;
}

static unsigned
aws_concurrency(const struct rk_provider *p)
{
	const struct aws *a = (const struct aws *)p;

	return a->hcfg.concurrency > 0 ? (unsigned)a->hcfg.concurrency : 1;
}

/* GetSecretValue, PutSecretValue, GetSecretValue by VersionId, DescribeSecret, UpdateSecretVersionStage. */
static void
aws_plan_calls(const struct rk_provider *p, struct rk_plan_calls *out)
{
	const struct aws *a = (const struct aws *)p;

	out->reads = 3;
	out->writes = 2;
	out->restart_calls = 0;
	out->rps = a->hcfg.rps;
	out->concurrency = (unsigned)a->hcfg.concurrency;
}

const struct rk_provider_ops rk_provider_aws = {
	.type = "aws",
	.caps = RK_CAP_VERSIONS | RK_CAP_STAGING,
	.config_fields = aws_config_fields,
	.locator_fields = aws_locator_fields,
	.check_config = aws_check_config,
	.open = aws_open,
	.check_locator = aws_check_locator,
	.parse_locator = aws_parse_locator,
	.free_locator = aws_free_locator,
	.generates = aws_generates,
	.read = aws_read,
	.read_version = aws_read_version,
	.find_staged = aws_find_staged,
	.stage = aws_stage,
	.promote = aws_promote,
	.tidy = aws_tidy,
	.rollback = aws_rollback,
	.doctor = aws_doctor,
	.close = aws_close,
	.concurrency = aws_concurrency,
	.plan_calls = aws_plan_calls,
};
