/*
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's
 * tryAcquireOrRenew does it, independent of HTTP: the kubernetes provider
 * hands in a function that sends one request (rk_k8s_send_fn) and keeps one
 * struct rk_k8s_lease per instance for what was last seen of the lease.
 *
 * Mutual exclusion comes from the API server alone: every update is a PUT of
 * the whole object as read, carrying its metadata.resourceVersion, so of two
 * takers one gets 409 Conflict and judges the lease again; nothing is ever
 * written blindly. Another identity's lease is unexpired while both hold:
 * renewTime + leaseDurationSeconds + skew > now on the wall clock, and the
 * record has not stayed unchanged for longer than duration + skew on this
 * process's monotonic clock since it was first seen (client-go's rule, which
 * does not trust the other host's clock).
 *
 * Ownership: rk_k8s_lease_new hands back a state the caller frees with
 * rk_k8s_lease_free (NULL accepted). The functions below may be called from
 * different threads (a renewal thread); a mutex serialises them.
 *
 * Errors: RK_EBUSY (another identity holds the lease, or renew found it
 * lost), RK_EAUTH (401/403), RK_ETRANSIENT (5xx, 429, a deadline), RK_EPROTO
 * (422, another unexpected status or a malformed Lease), RK_EINVAL (a bad
 * name), RK_ENOMEM, and whatever send returns for a transport failure. The
 * messages name the lease as ns/name and carry the Status message.
 */
#ifndef REKEY_K8S_LEASE_H
#define REKEY_K8S_LEASE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rekey/call.h"
#include "rekey/error.h"
#include "rekey/provider.h"

/* Sends one request to the API server. body: a JSON text or NULL. Returns 0 when an HTTP
 * answer came (any status, in *status; *obj = the body parsed when it is a JSON object, else
 * NULL; the caller json_decref's it), or an rk_err code for a transport failure (err set). */
typedef int (*rk_k8s_send_fn)(void *arg, const struct rk_call *call, const char *method,
			      const char *path, const char *body, long *status, json_t **obj,
			      struct rk_error *err);

/* The clocks the lease is judged by; tests move them. */
struct rk_k8s_lease_clock {
	int64_t (*wall_us)(void *arg);	/* Unix time in microseconds */
	int64_t (*mono_ms)(void *arg);	/* monotonic milliseconds */
	void *arg;
};

struct rk_k8s_lease;

/* clock NULL: the real clocks (CLOCK_REALTIME, rk_mono_ms). clock is copied. */
int rk_k8s_lease_new(struct rk_k8s_lease **out, const struct rk_k8s_lease_clock *clock,
		     struct rk_error *err) RK_WARN_UNUSED;
void rk_k8s_lease_free(struct rk_k8s_lease *l);

/*
 * Takes the lease spec names (its namespace_, or default_ns) for
 * spec->identity: renews it when held, creates it when missing, takes it
 * over when free or expired. 0: held by us now. RK_EBUSY: another identity
 * holds it unexpired (its identity in holder[0..n), the message says until
 * when and suggests --wait-lease).
 */
int rk_k8s_lease_acquire(struct rk_k8s_lease *l, rk_k8s_send_fn send, void *arg,
			 const struct rk_call *call, const struct rk_lease_spec *spec,
			 const char *default_ns, char *holder, size_t n,
			 struct rk_error *err) RK_WARN_UNUSED;
/* Renews a held lease (renewTime = now). RK_EBUSY: not held, or lost to another writer. */
int rk_k8s_lease_renew(struct rk_k8s_lease *l, rk_k8s_send_fn send, void *arg,
		       const struct rk_call *call, const struct rk_lease_spec *spec,
		       const char *default_ns, struct rk_error *err) RK_WARN_UNUSED;
/*
 * Gives a held lease up (holderIdentity "", leaseDurationSeconds 1). 0 also
 * when it was not held or already lost: another holder's lease is never
 * written.
 */
int rk_k8s_lease_release(struct rk_k8s_lease *l, rk_k8s_send_fn send, void *arg,
			 const struct rk_call *call, const struct rk_lease_spec *spec,
			 const char *default_ns, struct rk_error *err) RK_WARN_UNUSED;

/* MicroTime: "2026-08-22T12:00:10.123456Z" (buf at least 28 bytes). */
#define RK_K8S_MICROTIME_LEN 28
void rk_k8s_microtime_format(int64_t unix_us, char *buf, size_t n);
/* RFC 3339 with or without a fraction, Z or an offset -> Unix microseconds; RK_EINVAL. */
int rk_k8s_microtime_parse(const char *s, int64_t *unix_us) RK_WARN_UNUSED;

#endif
