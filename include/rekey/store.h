/*
 * The state DB. All SQL lives in src/store.c; the rest of rekey calls these
 * functions (a later PostgreSQL backend plugs in behind the same names).
 *
 * SQLite in <state_dir>/rekey.db: WAL, synchronous=FULL, foreign keys, schema
 * versioned by PRAGMA user_version. Read functions return jansson values the
 * caller owns (rows as objects keyed by column name). No table holds a secret
 * value in plaintext: only keyed fingerprints and sealed (encrypted) blobs.
 */
#ifndef REKEY_STORE_H
#define REKEY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rekey/error.h"

struct rk_store;

/* create: make the DB if missing (rekey init); otherwise RK_ENOTFOUND with a hint. */
int rk_store_open(struct rk_store **out, const char *state_dir, int create,
		  struct rk_error *err) RK_WARN_UNUSED;
void rk_store_close(struct rk_store *s);
/*
 * A unit of writes: atomic, and durable when the outermost commit returns
 * (0), or undone as a whole. Units of several threads are committed together
 * (group commit: one fsync for all of them); a unit holds the write
 * connection from begin to commit, so no external call belongs inside one.
 * Units nest: an inner rollback makes the outer commit fail. A write made
 * outside begin/commit is a unit of its own. Reads outside a unit use a
 * connection of their own and see committed data; inside one, the unit's
 * writes too. Thread-safe: any number of threads may share a store.
 */
int rk_store_begin(struct rk_store *s, struct rk_error *err) RK_WARN_UNUSED;
int rk_store_commit(struct rk_store *s, struct rk_error *err) RK_WARN_UNUSED;
void rk_store_rollback(struct rk_store *s);

/* Counters since open: units committed and commits (one fsync each). */
struct rk_store_stats {
	uint64_t units;
	uint64_t commits;
};
void rk_store_stats(struct rk_store *s, struct rk_store_stats *out);
/*
 * Tests: fn(arg, units) runs just before each commit, with the number of
 * units in it, on the committing thread (a crash point between the writes
 * and their commit). NULL removes it.
 */
void rk_store_set_commit_hook(struct rk_store *s, void (*fn)(void *arg, unsigned units),
			      void *arg);

/*
 * For /readyz: the DB file and its directory are writable by this process,
 * the filesystem has room, and a query answers. Writes nothing.
 */
int rk_store_ping(struct rk_store *s, struct rk_error *err) RK_WARN_UNUSED;

/* Exclusive lock of the state dir for changing commands; RK_EBUSY when held. */
int rk_state_lock(const char *state_dir, int *fd_out, struct rk_error *err) RK_WARN_UNUSED;
void rk_state_unlock(int fd);

/* ---- secrets ----
 * A secret row: name, provider, policy, environment, owner, tier, spec (the
 * normalized inventory entry as JSON), created_at, last_rotated (0: never),
 * current_version, current_fp, failures, needs_attention, last_result,
 * last_error, last_run.
 */
int rk_store_secret_put(struct rk_store *s, const json_t *spec, int64_t now,
			struct rk_error *err) RK_WARN_UNUSED;
int rk_store_secret_delete(struct rk_store *s, const char *name, struct rk_error *err) RK_WARN_UNUSED;
/* All secrets, ordered by name; each object has a parsed "spec". */
int rk_store_secret_list(struct rk_store *s, json_t **out, struct rk_error *err) RK_WARN_UNUSED;
/*
 * What a schedule needs of every secret, ordered by name: the secret row's
 * columns without the spec (so a large inventory costs little memory), plus
 * spec_last_rotated (the inventory's own last_rotated, 0 when none),
 * handed to fn one row at a time: a schedule of any size holds one row
 * (fn may keep a reference; a negative return stops it with that code).
 */
int rk_store_secret_schedule(struct rk_store *s,
			     int (*fn)(void *arg, json_t *row, struct rk_error *err), void *arg,
			     struct rk_error *err) RK_WARN_UNUSED;
/* The inventory's names as a JSON object used as a set (name -> true). */
int rk_store_secret_names(struct rk_store *s, json_t **out, struct rk_error *err) RK_WARN_UNUSED;
int rk_store_secret_get(struct rk_store *s, const char *name, json_t **out,
			struct rk_error *err) RK_WARN_UNUSED;
/* After a failure: counts it; needs_attention once failures reach max_attempts. */
int rk_store_secret_failed(struct rk_store *s, const char *name, const char *run_id,
			   const char *error, int max_attempts, struct rk_error *err) RK_WARN_UNUSED;
/* After promote: records the new current version and fingerprint. */
int rk_store_secret_promoted(struct rk_store *s, const char *name, const char *run_id,
			     const char *version, const char *fp, int64_t now,
			     struct rk_error *err) RK_WARN_UNUSED;
/* A person asked for this secret: clears needs_attention. */
int rk_store_secret_clear_attention(struct rk_store *s, const char *name,
				    struct rk_error *err) RK_WARN_UNUSED;
/* Another environment's secret with this fingerprint (current or past), or NULL. */
int rk_store_fp_other_env(struct rk_store *s, const char *fp, const char *environment,
			  char **name_out, struct rk_error *err) RK_WARN_UNUSED;
/* Records a fingerprint seen for a secret (guard and rotations feed this). */
int rk_store_fp_add(struct rk_store *s, const char *name, const char *environment,
		    const char *version, const char *fp, int64_t now,
		    struct rk_error *err) RK_WARN_UNUSED;

/* ---- runs ---- */
int rk_store_run_create(struct rk_store *s, const char *run_id, const char *kind,
			const char *reason, int64_t now, struct rk_error *err) RK_WARN_UNUSED;
int rk_store_run_finish(struct rk_store *s, const char *run_id, const char *status,
			int64_t now, struct rk_error *err) RK_WARN_UNUSED;
/* The newest `limit` runs plus every unfinished one, newest first (by sequence). */
int rk_store_run_list(struct rk_store *s, int limit, json_t **out, struct rk_error *err) RK_WARN_UNUSED;
/*
 * Opens a finished run again for another try in the same run: its failed or
 * rolled-back rotations go back to "planned" (nothing of them is live), its
 * rotations whose dependent failed to restart back to "promoted" (restarted
 * again), and the run to "running". One unit.
 */
int rk_store_run_retry(struct rk_store *s, const char *run_id, int64_t now,
		       struct rk_error *err) RK_WARN_UNUSED;
/*
 * Named locks held by a run, readable by every process ("scheduler": paused
 * by an emergency). set replaces the holder; clear removes it only if
 * holder still holds it; get writes "" when nobody does, or when the holder
 * (a run id) is not a running run (a process killed around its run).
 */
int rk_store_lock_set(struct rk_store *s, const char *name, const char *holder, int64_t now,
		      struct rk_error *err) RK_WARN_UNUSED;
int rk_store_lock_clear(struct rk_store *s, const char *name, const char *holder,
			struct rk_error *err) RK_WARN_UNUSED;
int rk_store_lock_get(struct rk_store *s, const char *name, char *holder, size_t n,
		      struct rk_error *err) RK_WARN_UNUSED;
int rk_store_run_get(struct rk_store *s, const char *run_id, json_t **out,
		     struct rk_error *err) RK_WARN_UNUSED;
/* Runs whose status is still "running" (crashed or killed), oldest first. */
int rk_store_run_unfinished(struct rk_store *s, json_t **out, struct rk_error *err) RK_WARN_UNUSED;

/* ---- the rotation journal ----
 * One rotation per (run, secret), its state the last committed step, plus a
 * steps table with one row per transition (the history `rekey run` shows).
 */
struct rk_rotation {
	char run_id[64];
	char secret[256];
	char state[16];		/* planned generated staged verified set promoted restarted
				 * done failed rolled_back */
	char idem_key[40];
	char old_version[128];
	char new_version[128];
	char old_fp[65];
	char new_fp[65];
	unsigned char *sealed_new;	/* the generated value, encrypted; freed by _clear */
	size_t sealed_new_len;
	unsigned char *sealed_old;	/* previous value for providers without versions */
	size_t sealed_old_len;
	char error[512];
	int64_t updated_at;
	char restore_version[128];	/* a rollback: the version whose value becomes current */
};

void rk_rotation_clear(struct rk_rotation *rot);
/* Inserts the rotation in state "planned" with a step row. */
int rk_store_rot_insert(struct rk_store *s, const struct rk_rotation *rot, int64_t now,
			struct rk_error *err) RK_WARN_UNUSED;
/*
 * Writes the rotation's fields with state = step and appends a step row, in
 * one unit, durable (synchronous=FULL) when this returns.
 */
int rk_store_rot_step(struct rk_store *s, struct rk_rotation *rot, const char *step,
		      const char *detail, int64_t now, struct rk_error *err) RK_WARN_UNUSED;
/* Rotations of a run, in insertion order; caller frees with rk_store_rot_free. */
int rk_store_rot_list(struct rk_store *s, const char *run_id, struct rk_rotation **out,
		      size_t *n, struct rk_error *err) RK_WARN_UNUSED;
void rk_store_rot_free(struct rk_rotation *rots, size_t n);
/* One rotation of a run (*out: one element, rk_store_rot_free(*out, 1)); RK_ENOTFOUND. */
int rk_store_rot_get(struct rk_store *s, const char *run_id, const char *secret,
		     struct rk_rotation **out, struct rk_error *err) RK_WARN_UNUSED;
/*
 * The steps after promote (restarted, restart_failed, done): only the
 * state changes, and the sealed new value is dropped; a step row is added.
 */
int rk_store_rot_advance(struct rk_store *s, const char *run_id, const char *secret,
			 const char *step, int64_t now, struct rk_error *err) RK_WARN_UNUSED;
/* The unfinished run holding a rotation of this secret in flight ("" when none). */
int rk_store_secret_in_flight(struct rk_store *s, const char *name, char *run_id, size_t n,
			      struct rk_error *err) RK_WARN_UNUSED;
/* Step rows of a run (or of one secret across runs when run_id is NULL). */
int rk_store_steps(struct rk_store *s, const char *run_id, const char *secret, json_t **out,
		   struct rk_error *err) RK_WARN_UNUSED;
/* Rotations of one secret across runs, newest first (for `rekey history`). */
int rk_store_history(struct rk_store *s, const char *secret, json_t **out,
		     struct rk_error *err) RK_WARN_UNUSED;
/*
 * The latest change of a secret: the rotation (or rollback) whose "promoted"
 * step was journaled last, {run_id, kind, old_version, new_version, old_fp,
 * new_fp}; *out NULL when the secret was never changed by rekey.
 */
int rk_store_last_change(struct rk_store *s, const char *secret, json_t **out,
			 struct rk_error *err) RK_WARN_UNUSED;

/*
 * ---- dependents restarted by a run (once each, again in a new round when a
 * retried emergency changed one of their secrets after the restart) ----
 * state: "" (never), "restarting", "done", "failed", "again"; *round 0 first.
 */
int rk_store_dep_state(struct rk_store *s, const char *run_id, const char *dep,
		       char *state, size_t n, int *round, struct rk_error *err) RK_WARN_UNUSED;
int rk_store_dep_set(struct rk_store *s, const char *run_id, const char *dep,
		     const char *state, const char *error, int64_t now,
		     struct rk_error *err) RK_WARN_UNUSED;
int rk_store_dep_list(struct rk_store *s, const char *run_id, json_t **out,
		      struct rk_error *err) RK_WARN_UNUSED;

/* ---- audit (append-only; triggers reject UPDATE and DELETE) ---- */
int rk_store_audit_last(struct rk_store *s, int64_t *seq, char *hash, size_t n,
			struct rk_error *err) RK_WARN_UNUSED;
int rk_store_audit_insert(struct rk_store *s, int64_t seq, int64_t ts, const char *actor,
			  const char *event, const char *subject, const char *detail,
			  const char *prev_hash, const char *hash, struct rk_error *err) RK_WARN_UNUSED;
/* Rows with ts >= since, in seq order. */
int rk_store_audit_list(struct rk_store *s, int64_t since, json_t **out,
			struct rk_error *err) RK_WARN_UNUSED;

/* Path of the DB file (for tests and doctor). */
const char *rk_store_path(const struct rk_store *s);

/*
 * ---- backup (src/backup.c) ----
 * A consistent image of the whole DB, as of one committed transaction:
 * SQLite's online backup into an in-memory DB, serialized; the store's
 * writers (of any thread or process) are not held up. *image (the caller's,
 * freed with rk_store_image_free, which wipes it) holds sealed values and
 * names, never a plaintext value; *audit_rows is the image's audit row count.
 */
int rk_store_snapshot(struct rk_store *s, unsigned char **image, size_t *len,
		      int64_t *audit_rows, struct rk_error *err) RK_WARN_UNUSED;
void rk_store_image_free(unsigned char *image, size_t len);
/* PRAGMA integrity_check: 0 when "ok", else RK_EINVAL with SQLite's first complaint. */
int rk_store_integrity_check(struct rk_store *s, struct rk_error *err) RK_WARN_UNUSED;

#endif
