/*
 * Providers: where secret values live. Each provider type is one const
 * struct rk_provider_ops registered in src/provider.c; the core calls the
 * rk_provider_*() wrappers below (they time calls, tag errors with the
 * provider and step, and refuse unsupported operations), never ops directly,
 * and decides by capability bits, never by provider name.
 *
 * A provider never touches the state DB. Values cross this interface only
 * as struct rk_secret.
 *
 * A secret's inventory locator is parsed once (rk_loc_parse) into the
 * provider's own typed struct, which every operation then gets; and every
 * operation that may wait carries a struct rk_call (deadline, cancellation,
 * priority) that the wrappers check before the call and the provider passes
 * on to its HTTP requests and its own waits.
 */
#ifndef REKEY_PROVIDER_H
#define REKEY_PROVIDER_H

#include <stdint.h>
#include <jansson.h>
#include "rekey/call.h"
#include "rekey/doc.h"
#include "rekey/error.h"
#include "rekey/secret.h"

#define RK_CAP_VERSIONS	0x01u	/* keeps previous versions: rollback restores one */
#define RK_CAP_STAGING	0x02u	/* a staged version is not current until promote */
#define RK_CAP_RESTART	0x04u	/* can restart dependents ("NAME/kind/ns/name") */
#define RK_CAP_EXPORT	0x08u	/* `rekey get` may print values (the local store) */
#define RK_CAP_LEASE	0x10u	/* can hold a leader lease (rekey.yaml `ha: {lease: ...}`) */

/* A provider's version identifier: "3", a Vault version, an AWS VersionId. */
struct rk_version {
	char id[128];	/* empty: no version (the secret does not exist yet) */
};

/* What a provider instance gets at open. All pointers outlive the instance. */
struct rk_provider_env {
	const char *name;		/* instance name from rekey.yaml ("vault") */
	const char *state_dir;		/* for providers that keep files (local) */
	const unsigned char *local_key;	/* 32-byte subkey for the local store */
	const struct rk_doc *doc;	/* the config document, for error positions */
};

/* One write of a new value. */
struct rk_stage_req {
	const char *secret_name;	/* inventory name */
	const char *run_id;
	const char *idem_key;		/* UUID, stable for (run, secret): AWS ClientRequestToken */
	const struct rk_secret *value;
	const struct rk_version *expected;	/* current version seen before generating:
						 * the write's precondition (cas / resourceVersion) */
	/*
	 * A rollback: the version whose value req->value is (NULL otherwise). A
	 * provider with RK_CAP_STAGING may answer with that version itself
	 * (promote then makes it current again, as AWS moves AWSCURRENT back);
	 * the others write the value as a new version.
	 */
	const struct rk_version *restore;
};

/*
 * A leader lease (`ha: {lease: {provider, namespace, name, ...}}`): only its
 * holder rotates. Held for a duration, renewed by the holder before it ends.
 */
struct rk_lease_spec {
	const char *namespace_;		/* NULL: the provider's default namespace */
	const char *name;		/* "rekey-leader" */
	const char *identity;		/* holderIdentity this process writes: unique per process */
	int64_t duration_ms;		/* leaseDurationSeconds (whole seconds, at least 1 s) */
	int64_t skew_ms;		/* margin for clock skew when judging another holder's lease */
};

/* What one rotation costs a provider, for the emergency plan's estimate. */
struct rk_plan_calls {
	unsigned reads, writes;		/* API calls of one rotation */
	unsigned restart_calls;		/* of one restart, polls while waiting not counted */
	double rps;			/* the configured request rate; 0: not limited */
	unsigned concurrency;		/* requests in flight at once */
};

struct rk_provider;

struct rk_provider_ops {
	const char *type;	/* as written in rekey.yaml: `type: local` */
	unsigned caps;
	/* Keys this provider accepts in its rekey.yaml mapping (besides `type`). */
	const struct rk_field *config_fields;
	/* Keys of an inventory locator; check_locator adds the semantic rules. */
	const struct rk_field *locator_fields;

	/*
	 * Optional: validates the whole rekey.yaml block (semantic rules beyond
	 * config_fields: ranges, URL schemes, auth settings) without connecting,
	 * creating files or reading credentials. Every command that loads the
	 * config calls it; open may rely on it having passed.
	 */
	int (*check_config)(const struct rk_provider_env *env, const json_t *cfg,
			    struct rk_error *err);
	int (*open)(struct rk_provider **out, const struct rk_provider_env *env,
		    const json_t *cfg, struct rk_error *err);
	/* Semantic locator checks beyond the schema; errors name doc positions. */
	int (*check_locator)(const struct rk_doc *doc, const json_t *loc, struct rk_error *err);
	/*
	 * Builds the provider's typed locator (*out, freed with free_locator)
	 * from an inventory locator that passed locator_fields and
	 * check_locator, for instance p: what the operations below get as
	 * `loc`. Still RK_EINVAL, naming the key, when something is missing (a
	 * row written by an older rekey). p is given so that instance defaults
	 * (a mount, a directory) are resolved once here, not in every call.
	 */
	int (*parse_locator)(const struct rk_provider *p, const json_t *loc, void **out,
			     struct rk_error *err);
	void (*free_locator)(void *loc);	/* accepts NULL */
	/*
	 * Optional: 1 when the provider makes the new value itself for this
	 * locator (a Vault Transit key): stage then gets req->value == NULL, and
	 * read/read_version return a non-secret descriptor of the version
	 * ("vault-transit:transit/payments:v4") that rekey fingerprints.
	 */
	int (*generates)(const void *loc);
	/*
	 * Every operation below gets call (may be NULL: no deadline, never
	 * cancelled) and hands it to each HTTP request (rk_http_req.call and
	 * .priority) and to each wait of its own (rk_call_sleep).
	 */
	/* Current value and version; RK_ENOTFOUND if the secret does not exist. */
	int (*read)(struct rk_provider *p, const struct rk_call *call, const void *loc,
		    struct rk_secret **out, struct rk_version *ver, struct rk_error *err);
	/* A given version's value (verify after stage, rollback checks). */
	int (*read_version)(struct rk_provider *p, const struct rk_call *call, const void *loc,
			    const struct rk_version *ver, struct rk_secret **out,
			    struct rk_error *err);
	/*
	 * After a crash or an unknown write outcome: is req's write already in the
	 * provider (by idempotency key, or by comparing the value of versions newer
	 * than req->expected)? 0 with *ver set when it is, RK_ENOTFOUND when not,
	 * RK_ECONFLICT when someone else wrote a newer version.
	 */
	int (*find_staged)(struct rk_provider *p, const struct rk_call *call, const void *loc,
			   const struct rk_stage_req *req, struct rk_version *ver,
			   struct rk_error *err);
	/* Writes req->value as a new version (current at once unless RK_CAP_STAGING). */
	int (*stage)(struct rk_provider *p, const struct rk_call *call, const void *loc,
		     const struct rk_stage_req *req, struct rk_version *new_ver,
		     struct rk_error *err);
	/* Makes new_ver current (old_ver was current); idempotent. */
	int (*promote)(struct rk_provider *p, const struct rk_call *call, const void *loc,
		       const struct rk_version *new_ver, const struct rk_version *old_ver,
		       struct rk_error *err);
	/*
	 * Optional housekeeping after promote (AWS: AWSPENDING off the new
	 * current), called once the run's rotations and restarts are done, as
	 * it shares a quota with the urgent writes. Failures are only logged.
	 */
	int (*tidy)(struct rk_provider *p, const struct rk_call *call, const void *loc,
		    const struct rk_version *new_ver, struct rk_error *err);
	/*
	 * RK_CAP_VERSIONS: makes the value of version `to` current again as a new
	 * version (req carries the idempotency key; req->value is unused).
	 */
	int (*rollback)(struct rk_provider *p, const struct rk_call *call, const void *loc,
			const struct rk_version *to, const struct rk_stage_req *req,
			struct rk_version *new_ver, struct rk_error *err);
	/* RK_CAP_RESTART: target is what follows "NAME/" in the inventory. */
	int (*check_target)(const char *target, struct rk_error *err);
	int (*restart)(struct rk_provider *p, const struct rk_call *call, const char *target,
		       const char *run_id, struct rk_error *err);
	/*
	 * Waits until the restart has rolled out or deadline_ms (monotonic)
	 * passes; the wrapper has already made it the earlier of the caller's
	 * and call's deadlines.
	 */
	int (*wait_restarted)(struct rk_provider *p, const struct rk_call *call, const char *target,
			      int64_t deadline_ms, struct rk_error *err);
	/*
	 * RK_CAP_LEASE. lease_acquire takes the lease (creating it, or taking
	 * over an expired one under a precondition so that one taker wins) or
	 * renews it when this identity holds it: 0 when held by us now;
	 * RK_EBUSY when another identity holds an unexpired lease (its identity
	 * copied to holder[0..n)). lease_renew keeps a lease held: RK_EBUSY when
	 * it was lost. lease_release gives it up (idempotent). The instance keeps
	 * what it last saw of the lease between calls.
	 */
	int (*lease_acquire)(struct rk_provider *p, const struct rk_call *call,
			     const struct rk_lease_spec *spec, char *holder, size_t n,
			     struct rk_error *err);
	int (*lease_renew)(struct rk_provider *p, const struct rk_call *call,
			   const struct rk_lease_spec *spec, struct rk_error *err);
	int (*lease_release)(struct rk_provider *p, const struct rk_call *call,
			     const struct rk_lease_spec *spec, struct rk_error *err);
	/* Reachability, authentication and permission checks for `rekey doctor`;
	 * calls report(line, ok, arg) once per check. Optional. */
	int (*doctor)(struct rk_provider *p, const json_t *const *locs, size_t nlocs,
		      void (*report)(const char *line, int ok, void *arg), void *arg,
		      struct rk_error *err);
	/* Optional, RK_CAP_RESTART: doctor's checks for the dependents (targets as restart's). */
	int (*doctor_targets)(struct rk_provider *p, const char *const *targets, size_t ntargets,
			      void (*report)(const char *line, int ok, void *arg), void *arg,
			      struct rk_error *err);
	void (*close)(struct rk_provider *p);	/* frees everything; accepts NULL */
	/*
	 * Optional: how many operations may be in flight on this instance at once
	 * (the engine runs at most that many of its rotations together; an HTTP
	 * provider answers its client's cap). Default RK_PROVIDER_CONCURRENCY.
	 */
	unsigned (*concurrency)(const struct rk_provider *p);
	/*
	 * Optional, RK_CAP_RESTART: how many restarts (rollouts) of this
	 * instance may be in flight at once. Default 1.
	 */
	unsigned (*restart_concurrency)(const struct rk_provider *p);
	/* Optional: the cost of a rotation here (none: a local store, no API calls). */
	void (*plan_calls)(const struct rk_provider *p, struct rk_plan_calls *out);
};

#define RK_PROVIDER_CONCURRENCY 4u

/* Every instance embeds this first. */
struct rk_provider {
	const struct rk_provider_ops *ops;
	char name[64];
};

/* The registry. */
const struct rk_provider_ops *rk_provider_find_type(const char *type);
/* NULL-terminated list of all provider types. */
const struct rk_provider_ops *const *rk_provider_types(void);

/* Wrappers the core uses (errors carry provider name and step). */
int rk_provider_open(struct rk_provider **out, const struct rk_provider_ops *ops,
		     const struct rk_provider_env *env, const json_t *cfg,
		     struct rk_error *err) RK_WARN_UNUSED;
/* Runs ops->check_config (0 when the type has none); errors carry the instance name. */
int rk_provider_check_config(const struct rk_provider_ops *ops, const struct rk_provider_env *env,
			     const json_t *cfg, struct rk_error *err) RK_WARN_UNUSED;
unsigned rk_provider_caps(const struct rk_provider *p);
/* ops->concurrency, or RK_PROVIDER_CONCURRENCY; at least 1. */
unsigned rk_provider_concurrency(const struct rk_provider *p);

/*
 * A secret's locator as the core holds it: the inventory JSON (borrowed, for
 * messages and doctor) and the provider's typed struct made from it (owned).
 * Parsed once per secret, for one provider instance; every wrapper below
 * that takes a locator takes this.
 */
struct rk_loc {
	const struct rk_provider *prov;
	const json_t *json;	/* borrowed: outlives the handle */
	void *typed;		/* owned: ops->free_locator */
};

/*
 * Parses json with p's parse_locator into *out (zeroed first, so that
 * rk_loc_free is safe after a failure). Errors carry the provider name and
 * step "locator": RK_EINVAL (a missing or bad key), RK_ENOMEM,
 * RK_EUNSUPPORTED (a provider type that keeps no secrets).
 */
int rk_loc_parse(struct rk_loc *out, const struct rk_provider *p, const json_t *json,
		 struct rk_error *err) RK_WARN_UNUSED;
/* Frees the typed locator (before p is closed); accepts a zeroed or freed handle. */
void rk_loc_free(struct rk_loc *loc);

/*
 * The operations. call may be NULL. Before calling the provider each wrapper
 * returns RK_ECANCELED when call is cancelled and RK_ETRANSIENT when its
 * deadline has passed, without calling it; errors carry provider and step.
 * loc must have been parsed for p.
 */
/* 1 when the provider generates the value for this locator itself. */
int rk_provider_generates(const struct rk_provider *p, const struct rk_loc *loc);
int rk_provider_read(struct rk_provider *p, const struct rk_call *call, const struct rk_loc *loc,
		     struct rk_secret **out, struct rk_version *ver,
		     struct rk_error *err) RK_WARN_UNUSED;
int rk_provider_read_version(struct rk_provider *p, const struct rk_call *call,
			     const struct rk_loc *loc, const struct rk_version *ver,
			     struct rk_secret **out, struct rk_error *err) RK_WARN_UNUSED;
int rk_provider_find_staged(struct rk_provider *p, const struct rk_call *call,
			    const struct rk_loc *loc, const struct rk_stage_req *req,
			    struct rk_version *ver, struct rk_error *err) RK_WARN_UNUSED;
int rk_provider_stage(struct rk_provider *p, const struct rk_call *call, const struct rk_loc *loc,
		      const struct rk_stage_req *req, struct rk_version *new_ver,
		      struct rk_error *err) RK_WARN_UNUSED;
int rk_provider_promote(struct rk_provider *p, const struct rk_call *call,
			const struct rk_loc *loc, const struct rk_version *new_ver,
			const struct rk_version *old_ver, struct rk_error *err) RK_WARN_UNUSED;
/* ops->tidy when the provider has one (0 otherwise). */
int rk_provider_tidy(struct rk_provider *p, const struct rk_call *call, const struct rk_loc *loc,
		     const struct rk_version *new_ver, struct rk_error *err) RK_WARN_UNUSED;
int rk_provider_rollback(struct rk_provider *p, const struct rk_call *call,
			 const struct rk_loc *loc, const struct rk_version *to,
			 const struct rk_stage_req *req, struct rk_version *new_ver,
			 struct rk_error *err) RK_WARN_UNUSED;
int rk_provider_restart(struct rk_provider *p, const struct rk_call *call, const char *target,
			const char *run_id, struct rk_error *err) RK_WARN_UNUSED;
int rk_provider_wait_restarted(struct rk_provider *p, const struct rk_call *call,
			       const char *target, int64_t deadline_ms,
			       struct rk_error *err) RK_WARN_UNUSED;
/*
 * The leader lease (RK_CAP_LEASE; RK_EUNSUPPORTED without it): see
 * ops->lease_acquire. RK_EBUSY when another identity holds it (acquire, with
 * its identity in holder[0..n)) or when it was lost (renew).
 */
int rk_provider_lease_acquire(struct rk_provider *p, const struct rk_call *call,
			      const struct rk_lease_spec *spec, char *holder, size_t n,
			      struct rk_error *err) RK_WARN_UNUSED;
int rk_provider_lease_renew(struct rk_provider *p, const struct rk_call *call,
			    const struct rk_lease_spec *spec, struct rk_error *err) RK_WARN_UNUSED;
int rk_provider_lease_release(struct rk_provider *p, const struct rk_call *call,
			      const struct rk_lease_spec *spec, struct rk_error *err) RK_WARN_UNUSED;
void rk_provider_close(struct rk_provider *p);

#endif
