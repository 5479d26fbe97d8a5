/*
 * The provider kit: what every provider that talks to a secret service over
 * HTTP, or reads its credentials from files, needs again. It turns an HTTP
 * status into a rekey error code, checks that a body is a JSON object, reads
 * credential and token files into sodium memory (refusing world-readable
 * ones, noticing when an agent rewrote them), and parses and formats numeric
 * version ids.
 *
 * Providers include this header; the core never does. The kit calls no HTTP
 * client function (it only reads struct rk_http_resp), so a program that
 * links the local provider without curl (rekey-guard) still links.
 *
 * Messages follow "<type> <instance>: <what>: ...", e.g.
 * "vault vault-ar: login: HTTP 403: permission denied", and never hold values.
 */
#ifndef REKEY_PROVIDER_KIT_H
#define REKEY_PROVIDER_KIT_H

#include <stddef.h>
#include <time.h>
#include <sys/types.h>
#include <jansson.h>
#include "rekey/error.h"
#include "rekey/http.h"
#include "rekey/provider.h"
#include "rekey/secret.h"

/* ---- HTTP status and bodies ---- */

/*
 * A provider's reader of its service's error body: writes the service's own
 * words (Vault's errors[], an AWS message, a Kubernetes Status.message) as
 * one line into out[0..n) (empty when there are none; never a value), and
 * returns 0 to take the code from the status, or a negative enum rk_err that
 * the body decides better than the status (an AWS ThrottlingException is a
 * 400 but RK_ETRANSIENT). May be NULL: no text, the status decides.
 */
typedef int (*rk_kit_errtext_fn)(const struct rk_http_resp *resp, char *out, size_t n);

/*
 * The code for an HTTP status that is not the call's success: 401 and 403
 * RK_EAUTH, 404 RK_ENOTFOUND, 412, 429, 500, 502, 503 and 504 RK_ETRANSIENT
 * (501 and 505 do not get better by retrying), 400 and
 * anything else RK_EPROTO (the service refused a request rekey built, or
 * answered what it should not: exit 1, never 2, which is for the user's
 * own input).
 */
int rk_kit_status_code(long status);

/*
 * Sets err from resp's status: the code above (or errtext's), the message
 * "<type> <name>: <what>: HTTP <status>[: <text>]", err->http_status and
 * err->retry_after. Returns the code. p must be open (p->ops set).
 */
int rk_kit_status_error(const struct rk_provider *p, const char *what,
			const struct rk_http_resp *resp, rk_kit_errtext_fn errtext,
			struct rk_error *err);

/*
 * Parses resp's body as a JSON object into *out (the caller's, json_decref).
 * An empty body, an HTML page (a proxy's error), invalid JSON and JSON that
 * is not an object are each named in the message; RK_EPROTO. The body's size
 * is bounded by the HTTP client already.
 */
int rk_kit_json_object(const struct rk_provider *p, const char *what,
		       const struct rk_http_resp *resp, json_t **out,
		       struct rk_error *err) RK_WARN_UNUSED;

/* A 200 with a JSON object body (*out as above), or rk_kit_status_error. */
int rk_kit_expect_json(const struct rk_provider *p, const char *what,
		       const struct rk_http_resp *resp, rk_kit_errtext_fn errtext, json_t **out,
		       struct rk_error *err) RK_WARN_UNUSED;

/*
 * After a 5xx other than 503, a reset or a timeout the server may have acted
 * on a write: its outcome is unknown until read back. (429 and 503 say it did
 * not; rk_http_do resends those itself.)
 */
int rk_kit_outcome_unknown(const struct rk_error *err);

/* ---- credential and token files ---- */

/* *dst = a copy of src (NULL stays NULL); RK_ENOMEM. */
int rk_kit_dupstr(char **dst, const char *src, struct rk_error *err) RK_WARN_UNUSED;

#define RK_CRED_MAX 4096		/* a token, a secret_id, a service account JWT */

#define RK_CRED_PRIVATE	0x01u	/* refuse a file readable by group or others */

/*
 * A credential file and what it was when last read, so that a file another
 * program rewrites (Vault Agent's token sink, a projected service account
 * token) is read again once it changed: device, inode, size or mtime.
 */
struct rk_cred_file {
	const char *path;	/* borrowed: outlives the struct */
	size_t max;		/* largest accepted file */
	unsigned flags;		/* RK_CRED_* */
	int have;		/* a read succeeded: the fields below are set */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* path is borrowed; max 0 means RK_CRED_MAX. */
void rk_cred_file_init(struct rk_cred_file *cf, const char *path, size_t max, unsigned flags);

/*
 * Reads the file when it was never read, changed since the last read, or
 * force is set: its bytes go straight into sodium memory, trailing newlines,
 * CRs and spaces are cut, and the result replaces *out (the old secret is
 * freed); returns 1. Returns 0 when it did not change (*out untouched).
 * Errors leave *out and the recorded state untouched, so the next call
 * tries again: RK_ENOTFOUND (missing), RK_EIO, RK_EINVAL (a directory,
 * too large), RK_EAUTH (empty; with RK_CRED_PRIVATE, readable by group or
 * others: the message names the path and the chmod that fixes it).
 */
int rk_cred_file_read(struct rk_cred_file *cf, int force, struct rk_secret **out,
		      struct rk_error *err) RK_WARN_UNUSED;

/* ---- numeric version ids ---- */

#define RK_VERSION_NUM_MAX (1LL << 40)

/*
 * A numeric version id ("1" to RK_VERSION_NUM_MAX, decimal digits only, no
 * sign, no leading zero) into *out; an empty id (or ver NULL) is 0, "no
 * version". Anything else is RK_EINVAL: "'<id>' is not a <what> version
 * number" (what: "vault", "local store").
 */
int rk_version_parse(const struct rk_version *ver, long *out, const char *what,
		     struct rk_error *err) RK_WARN_UNUSED;

/* n as a version id; 0 or less: the empty id (no version). */
void rk_version_set(struct rk_version *ver, long n);

#endif
