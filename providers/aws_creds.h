/*
 * AWS credentials, region and endpoints for the aws provider, resolved the
 * way the AWS CLI does (contract 2.8): environment, web identity (STS
 * AssumeRoleWithWebIdentity), the shared credentials and config files,
 * container credentials, EC2 instance metadata (IMDSv2).
 *
 * The chain owns no signer: it hands out copies of the current credentials
 * and refreshes temporary ones before they expire. Secret strings live only
 * in sodium_malloc'd memory; no error message, log line or argv ever holds
 * a key, a secret, a session token or a web identity token.
 *
 * Errors (0 or a negative enum rk_err, words in struct rk_error):
 *   RK_EINVAL   the user's input: rekey.yaml values, environment variables,
 *               a malformed credentials/config file (message "file:line: ...")
 *   RK_EAUTH    no source yields credentials, or a service refused them
 *   RK_EPROTO   an endpoint's answer is malformed (message names the endpoint)
 *   RK_ETRANSIENT / RK_ECANCELED  as rk_http_do, or a wait for another
 *               thread's refresh ran out of time / was cancelled
 *   RK_ENOMEM
 */
#ifndef REKEY_PROVIDERS_AWS_CREDS_H
#define REKEY_PROVIDERS_AWS_CREDS_H

#include <stdint.h>

#include "rekey/call.h"
#include "rekey/error.h"
#include "rekey/http_cfg.h"

/*
 * One set of credentials. The caller owns a struct it got from
 * rk_aws_chain_get and must clear it: the strings are sodium_malloc'd so
 * that they sit behind guard pages and are wiped when freed.
 */
struct rk_aws_creds {
	char *access_key_id, *secret_access_key, *session_token;	/* token NULL for long-term keys */
	int64_t expires_at;	/* Unix seconds; 0 = does not expire */
	/*
	 * For doctor and logs, never a secret: "environment", "web identity
	 * (arn:…:role/x)", "profile ci (/root/.aws/credentials)", "container
	 * credentials", "instance metadata (IMDSv2)".
	 */
	char source[96];
};

/* Wipes and frees the strings and zeroes the struct; accepts NULL and a cleared struct. */
void rk_aws_creds_clear(struct rk_aws_creds *c);

/*
 * What rekey.yaml says about the aws provider. Everything is optional
 * (NULL = not set) and borrowed only for the duration of rk_aws_chain_new:
 * the chain keeps its own copies.
 */
struct rk_aws_chain_cfg {
	const char *profile;	/* `profile:`; else AWS_PROFILE, AWS_DEFAULT_PROFILE, "default".
				 * Set here, it also skips environment keys (as --profile does). */
	const char *region;	/* `region:` wins over the environment and the profile */
	const char *endpoint;	/* `endpoint:` for Secrets Manager; never ignored */
	const char *sts_endpoint;	/* `sts_endpoint:`; never ignored */
	/*
	 * Timeouts, retries and TLS for STS (NULL: 5 s connect, 10 s per
	 * attempt, 3 attempts). Its insecure_http applies to STS only: the
	 * instance metadata and container endpoints are plain HTTP by nature
	 * and get their own short-timeout clients.
	 */
	const struct rk_http_cfg *http;
	/*
	 * "NAME=value" strings, NULL-terminated, read instead of the process
	 * environment (tests); copied into sodium memory, as it may hold keys.
	 * NULL = the process environment, read when needed.
	 */
	const char *const *env;
	const char *provider_name;	/* the instance name for errors: "aws" (NULL: "aws") */
};

struct rk_aws_chain;

/*
 * Resolves the profile, region and endpoints now (reading the config and
 * credentials files' settings, not yet their keys) so that a bad setup is
 * found when the provider opens, not at the first rotation. Credentials are
 * fetched on the first rk_aws_chain_get. RK_EINVAL without a region (the
 * message says where to set one), for a malformed file (file:line) or a bad
 * variable; RK_ENOMEM. *out is set only on success.
 */
int rk_aws_chain_new(struct rk_aws_chain **out, const struct rk_aws_chain_cfg *cfg,
		     struct rk_error *err) RK_WARN_UNUSED;
/* Frees the chain and wipes its cached credentials; accepts NULL. No get may be running. */
void rk_aws_chain_free(struct rk_aws_chain *ch);

/* The region resolved at new: cfg, AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`. */
const char *rk_aws_chain_region(const struct rk_aws_chain *ch);

/*
 * The endpoint for a service by its environment id, "SECRETS_MANAGER" or
 * "STS" (NULL for any other): the cfg value → AWS_ENDPOINT_URL_<ID> →
 * AWS_ENDPOINT_URL → the profile's `services` section key (secrets_manager
 * / sts) → the profile's endpoint_url → https://<secretsmanager|sts>.<region>
 * .amazonaws.com (.amazonaws.com.cn for cn-*). AWS_IGNORE_CONFIGURED_ENDPOINT_URLS
 * =true (or the profile's ignore_configured_endpoint_urls) skips the
 * configured ones, never rekey.yaml's. No trailing slash. Owned by ch.
 */
const char *rk_aws_chain_endpoint(const struct rk_aws_chain *ch, const char *service_id);

/*
 * Current credentials into *out, a copy the caller clears with
 * rk_aws_creds_clear (*out is untouched on error). The chain is resolved
 * on first use, and temporary credentials are refreshed from the same
 * source before they expire: from 15 min before (advisory) one caller
 * refreshes and, if that fails, the old ones are still handed out (the
 * next advisory try 30 s later); from 10 min before (mandatory) a refresh
 * must succeed. Thread-safe: only one thread fetches at a time; the others
 * wait for its result, bounded by their own call's deadline (RK_ETRANSIENT)
 * and cancel flag (RK_ECANCELED). call may be NULL. The waiters take what
 * that one fetch got: its keys (even ones already inside the mandatory
 * window: they are the freshest the source has) or its error, so a slow or
 * dead endpoint is asked once, not once per thread.
 */
int rk_aws_chain_get(struct rk_aws_chain *ch, const struct rk_call *call, struct rk_aws_creds *out,
		     struct rk_error *err) RK_WARN_UNUSED;

/*
 * After ExpiredTokenException / UnrecognizedClientException: drops cached
 * temporary credentials (those with a session token) so that the next get
 * fetches new ones from the same source. A no-op for long-term static
 * keys, which fetching again could not change.
 */
void rk_aws_chain_invalidate(struct rk_aws_chain *ch);

/*
 * The source the chain resolved to (after a successful get), for
 * `rekey doctor`: the same words as rk_aws_creds.source; "" before.
 * Owned by ch; stable once a get has succeeded unless the source changes.
 */
const char *rk_aws_chain_source(const struct rk_aws_chain *ch);

#endif
