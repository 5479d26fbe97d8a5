/*
 * AWS Signature Version 4 (HMAC-SHA256, header signing) for the aws
 * provider's requests to Secrets Manager and STS.
 *
 * The signer is a pure function of its inputs: the clock comes in as `now`
 * and nothing is sent, so it is tested byte for byte against AWS's own suite
 * (tests/data/sigv4/). It does not touch the request it is given: it hands
 * back the headers to add. Secret bytes (the secret key, the derived keys,
 * the HMAC states, the session token wherever it is copied) are wiped before
 * the memory holding them is released. Error messages name the input that is
 * wrong, never a key or token value.
 */
#ifndef REKEY_PROVIDERS_AWS_SIGV4_H
#define REKEY_PROVIDERS_AWS_SIGV4_H

#include <stddef.h>
#include <time.h>

#include "rekey/error.h"

/*
 * Canonicalise the path as every service but S3 wants: remove dot segments
 * and empty segments, then URI-encode the path as sent once more (so "%20"
 * is signed as "%2520": AWS's "double encoding"). Without it (S3) the path
 * keeps its segments and is encoded exactly once (decoded first).
 */
#define RK_SIGV4_NORMALIZE_PATH 0x1u
/* Add X-Amz-Content-Sha256 (the payload hash) and sign it; S3 requires it. */
#define RK_SIGV4_SIGN_BODY 0x2u
/* Add X-Amz-Security-Token after signing, unsigned (a few services want that). */
#define RK_SIGV4_OMIT_TOKEN 0x4u
/* Fill out->canonical_request and out->string_to_sign (tests, error reports). */
#define RK_SIGV4_KEEP_DEBUG 0x8u

/* Limits on what is signed; beyond them rk_sigv4_sign is RK_EINVAL. */
#define RK_SIGV4_MAX_HEADERS 64		/* header lines in a request */
#define RK_SIGV4_MAX_LINE 8192		/* bytes in the target or in one header line */
#define RK_SIGV4_MAX_SECRET 256		/* bytes in a secret access key (AWS's are 40) */

/* Borrowed; the signer copies nothing secret to the heap unwiped. */
struct rk_sigv4_key {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* NULL or "" for long-term keys */
};

struct rk_sigv4_req {
	const char *method;		/* "POST" */
	/*
	 * The request-target as sent: "/" or "/path?query". It may hold raw
	 * bytes the wire form would escape (a space, UTF-8): the canonical form
	 * encodes them. Query keys and values are decoded and encoded again, so
	 * "%e1" and a raw byte sign alike; '+' is a plus, not a space.
	 */
	const char *target;
	/*
	 * "Name: value" lines, NULL-terminated, as rk_http_req takes them. Must
	 * include Host; may include X-Amz-Date (then it must equal `now`). Every
	 * line is signed. Refused: a line without a value (libcurl drops
	 * "Name:" lines, so the server would not see what was signed), CR or LF
	 * anywhere, and Authorization, X-Amz-Security-Token and
	 * X-Amz-Content-Sha256, which the signer adds itself.
	 */
	const char *const *headers;
	const void *body;		/* may be NULL when body_len is 0 */
	size_t body_len;
	const char *region, *service;	/* "eu-west-1", "secretsmanager" */
	time_t now;			/* UTC seconds */
	unsigned flags;			/* RK_SIGV4_* */
};

struct rk_sigv4_out {
	char amz_date[17];		/* "20150830T123600Z" */
	char signature[65];		/* lowercase hex */
	/*
	 * Headers to add to the request, "Name: value", NULL-terminated,
	 * malloc'd: X-Amz-Date (unless the request had it), X-Amz-Content-Sha256
	 * (with SIGN_BODY), X-Amz-Security-Token (when a token is given), then
	 * Authorization. Every line is wiped on free.
	 */
	char **add_headers;
	/* Only with KEEP_DEBUG, else NULL. The canonical request may hold the token. */
	char *canonical_request, *string_to_sign;
};

/*
 * Signs req with key. Returns 0, RK_EINVAL (a missing or malformed input:
 * the message says which) or RK_ENOMEM; *out is zeroed on error, so
 * rk_sigv4_out_free may always be called.
 */
int rk_sigv4_sign(const struct rk_sigv4_req *req, const struct rk_sigv4_key *key,
		  struct rk_sigv4_out *out, struct rk_error *err) RK_WARN_UNUSED;
/* Wipes and frees what rk_sigv4_sign filled; accepts a zeroed out, leaves it zeroed. */
void rk_sigv4_out_free(struct rk_sigv4_out *out);

/*
 * now -> "20150830T123600Z", the X-Amz-Date form; the first 8 characters are
 * the credential scope's date. RK_EINVAL for a time before 1970 or after
 * 9999 (out is then ""), so a wild clock is an error and not a bad scope.
 */
int rk_sigv4_amz_date(time_t now, char out[17]) RK_WARN_UNUSED;
/* Lowercase hex SHA-256 of len bytes (the payload hash, and X-Amz-Content-Sha256). */
void rk_sigv4_sha256_hex(const void *data, size_t len, char out[65]);

#endif
