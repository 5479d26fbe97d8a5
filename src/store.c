/*
 * All SQL of rekey. Every other module calls the functions of store.h.
 *
 * Connections. One write connection, owned by whoever holds `wmu`; every
 * write runs inside a "unit" (rk_store_begin..commit, or one statement on
 * its own) that holds wmu from its first statement to its end. Reads outside
 * a unit use a pooled reader connection of their own (WAL: readers see
 * committed data and never wait for the writer); reads inside a unit use the
 * write connection, so they see the unit's own writes. No connection is ever
 * used by two threads at once, so sqlite3_errmsg/changes are the caller's.
 *
 * Group commit. The units of all threads go into one open transaction, each
 * in a SAVEPOINT (its failure undoes only its own writes). A unit that ends
 * while other threads are queued for wmu leaves the transaction open for
 * them; the last one in commits it (WAL, synchronous=FULL: one fdatasync for
 * the whole batch) and wakes the others. Every unit returns only after the
 * transaction holding it is durable, so "a step is on disk before the next
 * external call" holds with any number of workers, and a kill -9 loses no
 * acknowledged step. The audit chain is appended inside units too, so it is
 * one chain with no duplicate sequence numbers.
 *
 * Plaintext values never reach this module: sealed blobs only.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "rekey/store.h"
#include "rekey/util.h"

#define SCHEMA_VERSION 4
#define BUSY_TIMEOUT_MS 10000
/* A batch commits at this size even while more writers queue (bounds the wait). */
#define BATCH_MAX_UNITS 256
/* How long a batch waits for the threads it just acknowledged to come back. */
#define GATHER_US 2000

/* One commit of the write connection, shared by the units in it. */
struct batch {
	int refs;		/* units waiting for its outcome */
	unsigned units;
	int done;
	int rc;
	char msg[256];
};

/*
 * Prepared statements kept per connection: compiling SQL was a quarter of
 * a rotation's CPU. Keyed by the SQL text (its pointer first: every
 * statement is a literal), reset after each use so that no statement holds
 * a read transaction open.
 */
#define STMT_CACHE 64
struct conn {
	sqlite3 *db;
	struct conn *next;	/* the reader pool */
	unsigned n;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[STMT_CACHE];
};

struct rk_store {
	struct conn w;		/* the write connection and its statements; only the
				 * holder of wmu uses it */
	char *path;
	pthread_mutex_t wmu;
	pthread_cond_t changed;	/* a unit ended or a batch finished (with wmu) */
	atomic_int arriving;	/* threads queued for wmu to run a unit */
	struct batch *open;	/* the transaction open on db, NULL when none */
	int depth;		/* nesting of the unit holding wmu */
	int failed;		/* an inner level of that unit rolled back */
	unsigned returning;	/* units of the last commit whose threads have not written since */
	pthread_mutex_t rmu;	/* the reader pool */
	struct conn *readers;
	uint64_t units, commits;	/* with wmu */
	void (*commit_hook)(void *arg, unsigned units);
	void *commit_hook_arg;
};

/* The store whose unit this thread is running (it holds that store's wmu). */
static _Thread_local struct rk_store *tl_unit;

static const char *const migrations[SCHEMA_VERSION] = {
	/* 1: the initial schema */
	"CREATE TABLE secrets ("
	"  name TEXT PRIMARY KEY,"
	"  provider TEXT NOT NULL, policy TEXT NOT NULL, environment TEXT NOT NULL,"
	"  owner TEXT NOT NULL DEFAULT '', tier INTEGER NOT NULL DEFAULT 2,"
	"  spec TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
	"  last_rotated INTEGER NOT NULL DEFAULT 0,"
	"  current_version TEXT NOT NULL DEFAULT '', current_fp TEXT NOT NULL DEFAULT '',"
	"  failures INTEGER NOT NULL DEFAULT 0, needs_attention INTEGER NOT NULL DEFAULT 0,"
	"  last_result TEXT NOT NULL DEFAULT '', last_error TEXT NOT NULL DEFAULT '',"
	"  last_run TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE dependents ("
	"  secret TEXT NOT NULL REFERENCES secrets(name) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,"
	"  PRIMARY KEY (secret, idx));"
	"CREATE TABLE runs ("
	"  id TEXT PRIMARY KEY, kind TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',"
	"  status TEXT NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE rotations ("
	"  run_id TEXT NOT NULL REFERENCES runs(id), secret TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, state TEXT NOT NULL, idem_key TEXT NOT NULL,"
	"  old_version TEXT NOT NULL DEFAULT '', new_version TEXT NOT NULL DEFAULT '',"
	"  old_fp TEXT NOT NULL DEFAULT '', new_fp TEXT NOT NULL DEFAULT '',"
	"  sealed_new BLOB, sealed_old BLOB, error TEXT NOT NULL DEFAULT '',"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (run_id, secret));"
	"CREATE TABLE steps ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, secret TEXT NOT NULL,"
	"  step TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '', ts INTEGER NOT NULL);"
	"CREATE INDEX steps_run ON steps(run_id);"
	"CREATE INDEX steps_secret ON steps(secret);"
	"CREATE TABLE fingerprints ("
	"  secret TEXT NOT NULL, environment TEXT NOT NULL, version TEXT NOT NULL,"
	"  fp TEXT NOT NULL, seen_at INTEGER NOT NULL,"
	"  PRIMARY KEY (secret, version, fp));"
	"CREATE INDEX fingerprints_fp ON fingerprints(fp);"
	"CREATE TABLE dep_restarts ("
	"  run_id TEXT NOT NULL, dependent TEXT NOT NULL, state TEXT NOT NULL,"
	"  error TEXT NOT NULL DEFAULT '', updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (run_id, dependent));"
	"CREATE TABLE audit ("
	"  seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL,"
	"  event TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL,"
	"  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;",
	/*
	 * 2: runs get a strictly increasing sequence. started_at has whole
	 * seconds, so two runs of one second came back in random (run id)
	 * order, and rollback could take the wrong one for the latest.
	 */
	"ALTER TABLE runs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;"
	"UPDATE runs SET seq = rowid;"
	"CREATE UNIQUE INDEX runs_seq ON runs(seq);"
	/* A rollback is a rotation whose new value is an earlier version's. */
	"ALTER TABLE rotations ADD COLUMN restore_version TEXT NOT NULL DEFAULT '';",
	/*
	 * 3: "is this secret in flight", its history and its latest change look
	 * rotations up by secret: without an index each was a scan of every
	 * rotation ever journaled, once per secret of a run.
	 */
	"CREATE INDEX rotations_secret ON rotations(secret);",
	/*
	 * 4: named locks held by a run (the scheduler paused by an emergency):
	 * state, not a file lock, so that other processes can read who holds it.
	 */
	"CREATE TABLE locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL,"
	"  since INTEGER NOT NULL);"
	/* A dependent restarted again in the same run (a retried emergency) gets a new round. */
	"ALTER TABLE dep_restarts ADD COLUMN round INTEGER NOT NULL DEFAULT 0;",
};

static int
db_err(struct rk_store *s, sqlite3 *db, struct rk_error *err, const char *what)
{
	return rk_error_set(err, RK_EIO, "state DB %s: %s: %s", s->path, what, sqlite3_errmsg(db));
}

static int
exec_sql(struct rk_store *s, sqlite3 *db, const char *sql, struct rk_error *err)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int r = rk_error_set(err, RK_EIO, "state DB %s: %s", s->path,
				     msg ? msg : "error");
		sqlite3_free(msg);
		return r;
	}
	return 0;
}

/* ---- connections ---- */

static int
open_conn(struct rk_store *s, sqlite3 **db, int flags, struct rk_error *err)
{
	int rc = sqlite3_open_v2(s->path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc != SQLITE_OK) {
		int r = rk_error_set(err, RK_EIO, "cannot open state DB %s: %s", s->path,
				     *db ? sqlite3_errmsg(*db) : "out of memory");
		sqlite3_close_v2(*db);
		*db = NULL;
		return r;
	}
	sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
	return 0;
}

/*
 * A statement for sql on c: the cached one (reset) or a new one, cached
 * while there is room. Give it back with stmt_done.
 */
static int
stmt_get(struct rk_store *s, struct conn *c, const char *sql, sqlite3_stmt **st,
	 struct rk_error *err)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->cache[i].sql == sql && strcmp(sqlite3_sql(c->cache[i].st), sql) == 0) {
			*st = c->cache[i].st;
			return 0;
		}
	if (sqlite3_prepare_v3(c->db, sql, -1, c->n < STMT_CACHE ? SQLITE_PREPARE_PERSISTENT : 0,
			       st, NULL) != SQLITE_OK) {
		*st = NULL;
		return db_err(s, c->db, err, "prepare");
	}
	if (c->n < STMT_CACHE) {
		c->cache[c->n].sql = sql;
		c->cache[c->n].st = *st;
		c->n++;
	}
	return 0;
}

/* Ends a use of st: a cached statement is reset and unbound, another finalized. */
static void
stmt_done(struct conn *c, sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	for (unsigned i = 0; i < c->n; i++)
		if (c->cache[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	sqlite3_finalize(st);
}

/* Runs a statement without arguments or rows (BEGIN, SAVEPOINT, ...) from the cache. */
static int
exec_cached(struct rk_store *s, struct conn *c, const char *sql, struct rk_error *err)
{
	sqlite3_stmt *st;
	int r, rc;

	if ((r = stmt_get(s, c, sql, &st, err)) < 0)
		return r;
	rc = sqlite3_step(st);
	r = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_err(s, c->db, err, sql);
	stmt_done(c, st);
	return r;
}

static void
conn_close(struct conn *c)
{
	for (unsigned i = 0; i < c->n; i++)
		sqlite3_finalize(c->cache[i].st);
	c->n = 0;
	sqlite3_close_v2(c->db);
	c->db = NULL;
}

/* The connection for a read: the write one inside this thread's unit, else a pooled reader. */
static int
conn_get(struct rk_store *s, struct conn **out, struct rk_error *err)
{
	struct conn *c;
	int r;

	if (tl_unit == s) {
		*out = &s->w;
		return 0;
	}
	pthread_mutex_lock(&s->rmu);
	if ((c = s->readers) != NULL)
		s->readers = c->next;
	pthread_mutex_unlock(&s->rmu);
	if (c != NULL) {
		*out = c;
		return 0;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((r = open_conn(s, &c->db, SQLITE_OPEN_READWRITE, err)) < 0) {
		free(c);
		return r;
	}
	/* A reader never writes: a bug that tries fails instead of racing the writer. */
	if ((r = exec_sql(s, c->db, "PRAGMA query_only=ON; PRAGMA cache_size=-1024;", err)) < 0) {
		conn_close(c);
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

static void
conn_put(struct rk_store *s, struct conn *c)
{
	if (c == NULL || c == &s->w)
		return;
	pthread_mutex_lock(&s->rmu);
	c->next = s->readers;
	s->readers = c;
	pthread_mutex_unlock(&s->rmu);
}

/* ---- units and group commit ---- */

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Ends the open batch with rc/msg and wakes its units (with wmu). */
static void
batch_end(struct rk_store *s, int rc, const char *msg)
{
	struct batch *b = s->open;

	s->open = NULL;
	b->done = 1;
	b->rc = rc;
	snprintf(b->msg, sizeof(b->msg), "%s", msg ? msg : "");
	if (b->refs == 0)
		free(b);
	pthread_cond_broadcast(&s->changed);
}

/* Commits the open batch (with wmu). */
static void
batch_commit(struct rk_store *s)
{
	struct rk_error e = { 0 };
	char msg[256];
	unsigned units = s->open->units;

	if (sqlite3_get_autocommit(s->w.db)) {
		/* SQLite ended the transaction itself (a disk full, an I/O error). */
		batch_end(s, RK_EIO, "the transaction was aborted by the database");
		return;
	}
	if (s->commit_hook != NULL)
		s->commit_hook(s->commit_hook_arg, units);
	if (exec_cached(s, &s->w, "COMMIT", &e) < 0) {
		snprintf(msg, sizeof(msg), "commit: %s", sqlite3_errmsg(s->w.db));
		sqlite3_exec(s->w.db, "ROLLBACK", NULL, NULL, NULL);
		batch_end(s, RK_EIO, msg);
		return;
	}
	s->commits++;
	/* Their threads usually come straight back with their next step. */
	s->returning = units;
	batch_end(s, 0, NULL);
}

/*
 * Waits, as a unit of batch b, until b is durable (with wmu), committing it
 * when this unit is the one to: no other unit is queued for the connection
 * and none of the threads just acknowledged is expected back within
 * GATHER_US (PostgreSQL's commit_delay, bounded), or b is full.
 */
static void
batch_settle(struct rk_store *s, struct batch *b)
{
	int64_t until = mono_us() + GATHER_US;

	while (!b->done) {
		int queued = atomic_load(&s->arriving) > 0;
		int64_t now = mono_us();
		struct timespec ts;

		if (b->units >= BATCH_MAX_UNITS || (!queued && (s->returning == 0 || now >= until))) {
			if (!queued && now >= until)
				s->returning = 0;	/* they did not come back: stop waiting for them */
			batch_commit(s);
			return;
		}
		/* Woken when another unit ends or joins; else at the end of the gathering time. */
		if (queued)
			now += 10 * GATHER_US;
		else
			now = until;
		ts.tv_sec = (time_t)(now / 1000000);
		ts.tv_nsec = (long)(now % 1000000) * 1000;
		pthread_cond_timedwait(&s->changed, &s->wmu, &ts);
	}
}

static void
unit_unlock(struct rk_store *s)
{
	tl_unit = NULL;
	s->depth = 0;
	/* A transaction nobody joined is not left holding the DB's write lock. */
	if (s->open != NULL && s->open->units == 0 && atomic_load(&s->arriving) == 0)
		batch_commit(s);
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->wmu);
}

static int
unit_enter(struct rk_store *s, struct rk_error *err)
{
	int r;

	if (tl_unit == s) {
		s->depth++;
		return 0;
	}
	assert(tl_unit == NULL);	/* one unit per thread at a time */
	atomic_fetch_add(&s->arriving, 1);
	pthread_mutex_lock(&s->wmu);
	atomic_fetch_sub(&s->arriving, 1);
	if (s->returning > 0)
		s->returning--;
	tl_unit = s;
	s->depth = 1;
	s->failed = 0;
	if (s->open == NULL) {
		if ((s->open = calloc(1, sizeof(*s->open))) == NULL) {
			unit_unlock(s);
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		}
		if ((r = exec_cached(s, &s->w, "BEGIN IMMEDIATE", err)) < 0) {
			free(s->open);
			s->open = NULL;
			unit_unlock(s);
			return r;
		}
	}
	if ((r = exec_cached(s, &s->w, "SAVEPOINT unit", err)) < 0) {
		unit_unlock(s);
		return r;
	}
	return 0;
}

/*
 * Ends a unit: ok keeps its writes, else they are undone. The outermost end
 * returns once the batch holding the unit is durable, with its outcome.
 */
static int
unit_leave(struct rk_store *s, int ok, struct rk_error *err)
{
	struct batch *b;
	int r = 0;

	assert(tl_unit == s && s->depth > 0);
	if (--s->depth > 0) {
		if (!ok)
			s->failed = 1;
		return 0;
	}
	if (ok && s->failed)
		r = rk_error_set(err, RK_EIO, "state DB %s: a part of the transaction failed; "
				 "nothing was written", s->path);
	if (ok && r == 0)
		r = exec_cached(s, &s->w, "RELEASE unit", err);
	if (!ok || r < 0) {
		struct rk_error ignore = { 0 };
		(void)exec_cached(s, &s->w, "ROLLBACK TO unit", &ignore);
		(void)exec_cached(s, &s->w, "RELEASE unit", &ignore);
		unit_unlock(s);
		return r;
	}
	tl_unit = NULL;
	s->depth = 0;
	b = s->open;
	b->refs++;
	b->units++;
	s->units++;
	pthread_cond_broadcast(&s->changed);
	batch_settle(s, b);
	if (b->rc < 0)
		r = rk_error_set(err, b->rc, "state DB %s: %s; nothing of this step was written",
				 s->path, b->msg);
	if (--b->refs == 0)
		free(b);
	pthread_mutex_unlock(&s->wmu);
	return r;
}

int
rk_store_begin(struct rk_store *s, struct rk_error *err)
{
	return unit_enter(s, err);
}

int
rk_store_commit(struct rk_store *s, struct rk_error *err)
{
	return unit_leave(s, 1, err);
}

void
rk_store_rollback(struct rk_store *s)
{
	struct rk_error e = { 0 };

	(void)unit_leave(s, 0, &e);
}

void
rk_store_stats(struct rk_store *s, struct rk_store_stats *out)
{
	pthread_mutex_lock(&s->wmu);
	out->units = s->units;
	out->commits = s->commits;
	pthread_mutex_unlock(&s->wmu);
}

void
rk_store_set_commit_hook(struct rk_store *s, void (*fn)(void *arg, unsigned units), void *arg)
{
	pthread_mutex_lock(&s->wmu);
	s->commit_hook = fn;
	s->commit_hook_arg = arg;
	pthread_mutex_unlock(&s->wmu);
}

/* ---- statements ---- */

/*
 * Prepares sql on db and binds arguments by a type string: 's' text (NULL
 * ok), 'i' int64, 'b' blob (pointer, size_t length).
 */
static int
prepare(struct rk_store *s, struct conn *c, sqlite3_stmt **st, struct rk_error *err,
	const char *sql, const char *types, va_list ap)
{
	int r;

	if ((r = stmt_get(s, c, sql, st, err)) < 0)
		return r;
	for (int i = 0; types[i]; i++) {
		int rc = SQLITE_OK;
		switch (types[i]) {
		case 's': {
			const char *v = va_arg(ap, const char *);
			rc = v ? sqlite3_bind_text(*st, i + 1, v, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(*st, i + 1);
			break;
		}
		case 'i':
			rc = sqlite3_bind_int64(*st, i + 1, va_arg(ap, int64_t));
			break;
		case 'b': {
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			rc = p ? sqlite3_bind_blob(*st, i + 1, p, (int)n, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(*st, i + 1);
			break;
		}
		}
		if (rc != SQLITE_OK) {
			r = db_err(s, c->db, err, "bind");
			stmt_done(c, *st);
			*st = NULL;
			return r;
		}
	}
	return 0;
}

/*
 * Runs a statement that returns no rows, in this thread's unit or in one of
 * its own (durable on return); *changes (optional) gets the row count.
 */
static int
run(struct rk_store *s, struct rk_error *err, int *changes, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	va_list ap;
	int r, rc;

	if ((r = unit_enter(s, err)) < 0)
		return r;
	va_start(ap, types);
	r = prepare(s, &s->w, &st, err, sql, types, ap);
	va_end(ap);
	if (r == 0) {
		rc = sqlite3_step(st);
		r = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_err(s, s->w.db, err, "write");
		if (changes)
			*changes = sqlite3_changes(s->w.db);
		stmt_done(&s->w, st);
	}
	rc = unit_leave(s, r == 0, err);
	return r < 0 ? r : rc;
}

static json_t *
column_json(sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, i));
	case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, i));
	case SQLITE_NULL: return json_null();
	case SQLITE_BLOB: return json_null();	/* sealed blobs never leave as JSON */
	default: return json_string((const char *)sqlite3_column_text(st, i));
	}
}

/*
 * Runs a query and hands each row, as an object, to fn (which may keep a
 * reference); a negative return from fn stops the query with it.
 */
static int
query_each_v(struct rk_store *s, int (*fn)(void *arg, json_t *row, struct rk_error *err),
	     void *arg, struct rk_error *err, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st = NULL;
	struct conn *c = NULL;
	int r, rc;

	if ((r = conn_get(s, &c, err)) < 0)
		return r;
	if ((r = prepare(s, c, &st, err, sql, types, ap)) < 0)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row = json_object();
		if (row == NULL) {
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
		for (int i = 0; i < sqlite3_column_count(st); i++)
			json_object_set_new(row, sqlite3_column_name(st, i), column_json(st, i));
		r = fn(arg, row, err);
		json_decref(row);
		if (r < 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : db_err(s, c->db, err, "read");
out:
	stmt_done(c, st);
	conn_put(s, c);
	return r;
}

static int
append_row(void *arg, json_t *row, struct rk_error *err)
{
	if (json_array_append(arg, row) < 0)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}

/* Runs a query and returns its rows as an array of objects. */
static int
query(struct rk_store *s, json_t **out, struct rk_error *err, const char *sql, const char *types, ...)
{
	json_t *rows = json_array();
	va_list ap;
	int r;

	if (rows == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	va_start(ap, types);
	r = query_each_v(s, append_row, rows, err, sql, types, ap);
	va_end(ap);
	if (r < 0) {
		json_decref(rows);
		return r;
	}
	*out = rows;
	return 0;
}

/* The first column of the first row, as text, into out[0..n) ("" when no row). */
static int
first_text(void *arg, json_t *row, struct rk_error *err)
{
	struct { char *out; size_t n; int seen; } *t = arg;
	const char *k;
	json_t *v;

	(void)err;
	if (t->seen++)
		return 0;
	json_object_foreach(row, k, v) {
		snprintf(t->out, t->n, "%s", json_string_value(v) ? json_string_value(v) : "");
		break;
	}
	return 0;
}

static int
query_text(struct rk_store *s, char *out, size_t n, struct rk_error *err, const char *sql,
	   const char *types, ...)
{
	struct { char *out; size_t n; int seen; } t = { out, n, 0 };
	va_list ap;
	int r;

	out[0] = '\0';
	va_start(ap, types);
	r = query_each_v(s, first_text, &t, err, sql, types, ap);
	va_end(ap);
	return r;
}

static int
query_each(struct rk_store *s, int (*fn)(void *arg, json_t *row, struct rk_error *err), void *arg,
	   struct rk_error *err, const char *sql, const char *types, ...)
{
	va_list ap;
	int r;

	va_start(ap, types);
	r = query_each_v(s, fn, arg, err, sql, types, ap);
	va_end(ap);
	return r;
}

static int
migrate(struct rk_store *s, struct rk_error *err)
{
	sqlite3_stmt *st = NULL;
	int version = 0, r;

	if (sqlite3_prepare_v2(s->w.db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return db_err(s, s->w.db, err, "read schema version");
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > SCHEMA_VERSION)
		return rk_error_set(err, RK_EINVAL,
				    "state DB %s has schema version %d, newer than this rekey "
				    "(%d); upgrade rekey", s->path, version, SCHEMA_VERSION);
	for (; version < SCHEMA_VERSION; version++) {
		char pragma[64];
		if ((r = exec_sql(s, s->w.db, "BEGIN IMMEDIATE", err)) < 0)
			return r;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version + 1);
		if ((r = exec_sql(s, s->w.db, migrations[version], err)) < 0 ||
		    (r = exec_sql(s, s->w.db, pragma, err)) < 0 ||
		    (r = exec_sql(s, s->w.db, "COMMIT", err)) < 0) {
			sqlite3_exec(s->w.db, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
	}
	return 0;
}

void
rk_store_close(struct rk_store *s)
{
	if (s == NULL)
		return;
	assert(s->open == NULL && tl_unit != s);	/* every unit has ended */
	while (s->readers != NULL) {
		struct conn *c = s->readers;
		s->readers = c->next;
		conn_close(c);
		free(c);
	}
	conn_close(&s->w);
	pthread_mutex_destroy(&s->wmu);
	pthread_mutex_destroy(&s->rmu);
	pthread_cond_destroy(&s->changed);
	free(s->path);
	free(s);
}

int
rk_store_open(struct rk_store **out, const char *state_dir, int create, struct rk_error *err)
{
	struct rk_store *s = calloc(1, sizeof(*s));
	struct stat st;
	mode_t old_umask;
	int r;

	if (s == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	pthread_mutex_init(&s->wmu, NULL);
	pthread_mutex_init(&s->rmu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->changed, &ca);
		pthread_condattr_destroy(&ca);
	}
	atomic_init(&s->arriving, 0);
	if ((s->path = rk_path_join(state_dir, "rekey.db")) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	if (stat(s->path, &st) != 0) {
		if (!create) {
			r = rk_error_set(err, RK_ENOTFOUND,
					 "no state DB at %s; run `rekey init` first", s->path);
			goto out;
		}
	} else if ((st.st_mode & 077) != 0) {
		r = rk_error_set(err, RK_EINVAL,
				 "state DB %s is readable by group or others (mode %03o); run "
				 "chmod 600 %s and check who could read it", s->path,
				 (unsigned)(st.st_mode & 0777), s->path);
		goto out;
	}
	/*
	 * The DB, its -wal and -shm files are created 0600. The write connection
	 * is opened before any thread runs; readers find the files made.
	 */
	old_umask = umask(077);
	r = open_conn(s, &s->w.db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), err);
	umask(old_umask);
	if (r < 0)
		goto out;
	if ((r = exec_sql(s, s->w.db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			  "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;", err)) < 0 ||
	    (r = migrate(s, err)) < 0)
		goto out;
	*out = s;
	s = NULL;
	r = 0;
out:
	rk_store_close(s);
	return r;
}

const char *
rk_store_path(const struct rk_store *s)
{
	return s->path;
}

int
rk_state_lock(const char *state_dir, int *fd_out, struct rk_error *err)
{
	char *path = rk_path_join(state_dir, "rekey.lock");
	int fd;

	if (path == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int r = rk_error_set(err, RK_EIO, "cannot open %s: %s", path, strerror(errno));
		free(path);
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = rk_error_set(err, RK_EBUSY,
				     "another rekey holds the lock on %s (a rotation or the "
				     "daemon is running); try again when it is done", state_dir);
		close(fd);
		free(path);
		return r;
	}
	free(path);
	*fd_out = fd;
	return 0;
}

void
rk_state_unlock(int fd)
{
	if (fd >= 0)
		close(fd);	/* releases the flock */
}

int
rk_store_ping(struct rk_store *s, struct rk_error *err)
{
	struct statvfs vfs;
	json_t *rows = NULL;
	char *dir = strdup(s->path), *slash;
	int r;

	if (dir == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	if (access(s->path, W_OK) != 0 || access(slash ? dir : ".", W_OK) != 0) {
		r = rk_error_set(err, RK_EIO, "state DB %s is not writable: %s", s->path,
				 strerror(errno));
		free(dir);
		return r;
	}
	if (statvfs(slash ? dir : ".", &vfs) == 0 && vfs.f_bavail == 0) {
		free(dir);
		return rk_error_set(err, RK_EIO, "the filesystem of %s is full", s->path);
	}
	free(dir);
	if ((r = query(s, &rows, err, "SELECT count(*) AS n FROM runs", "")) < 0)
		return r;
	json_decref(rows);
	return 0;
}

/* ---- secrets ---- */

int
rk_store_secret_put(struct rk_store *s, const json_t *spec, int64_t now, struct rk_error *err)
{
	char *text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
	const char *name = json_string_value(json_object_get(spec, "name"));
	const json_t *deps = json_object_get(spec, "dependents"), *d;
	size_t i;
	int r;

	if (text == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	r = run(s, err, NULL,
		"INSERT INTO secrets (name, provider, policy, environment, owner, tier, spec,"
		" created_at, updated_at, last_rotated) VALUES (?,?,?,?,?,?,?,?,?,?)"
		" ON CONFLICT(name) DO UPDATE SET provider=excluded.provider,"
		" policy=excluded.policy, environment=excluded.environment, owner=excluded.owner,"
		" tier=excluded.tier, spec=excluded.spec, updated_at=excluded.updated_at,"
		" last_rotated=MAX(secrets.last_rotated, excluded.last_rotated)",
		"sssssisiii", name, json_string_value(json_object_get(spec, "provider")),
		json_string_value(json_object_get(spec, "policy")),
		json_string_value(json_object_get(spec, "environment")),
		json_string_value(json_object_get(spec, "owner")),
		(int64_t)json_integer_value(json_object_get(spec, "tier")), text, now, now,
		(int64_t)json_integer_value(json_object_get(spec, "last_rotated")));
	free(text);
	if (r < 0)
		return r;
	if ((r = run(s, err, NULL, "DELETE FROM dependents WHERE secret = ?", "s", name)) < 0)
		return r;
	json_array_foreach(deps, i, d) {
		const char *kind = json_string_value(json_object_get(d, "kind"));
		const char *key = json_string_value(json_object_get(d, "key"));
		if ((r = run(s, err, NULL,
			     "INSERT INTO dependents (secret, idx, kind, target) VALUES (?,?,?,?)",
			     "siss", name, (int64_t)i, kind, key)) < 0)
			return r;
	}
	return 0;
}

int
rk_store_secret_delete(struct rk_store *s, const char *name, struct rk_error *err)
{
	return run(s, err, NULL, "DELETE FROM secrets WHERE name = ?", "s", name);
}

static int
parse_specs(json_t *rows, struct rk_error *err)
{
	size_t i;
	json_t *row;

	json_array_foreach(rows, i, row) {
		json_t *spec = json_loads(json_string_value(json_object_get(row, "spec")), 0, NULL);
		if (spec == NULL)
			return rk_error_set(err, RK_EIO, "state DB: corrupt spec of '%s'",
					    json_string_value(json_object_get(row, "name")));
		json_object_set_new(row, "spec", spec);
	}
	return 0;
}

#define SECRET_COLUMNS                                                                     \
	"name, provider, policy, environment, owner, tier, spec, created_at, last_rotated,"   \
	" current_version, current_fp, failures, needs_attention, last_result, last_error,"   \
	" last_run"

int
rk_store_secret_list(struct rk_store *s, json_t **out, struct rk_error *err)
{
	int r;

	if ((r = query(s, out, err, "SELECT " SECRET_COLUMNS " FROM secrets ORDER BY name", "")) < 0)
		return r;
	if ((r = parse_specs(*out, err)) < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return r;
}

int
rk_store_secret_schedule(struct rk_store *s,
			 int (*fn)(void *arg, json_t *row, struct rk_error *err), void *arg,
			 struct rk_error *err)
{
	return query_each(s, fn, arg, err,
		     "SELECT name, provider, policy, environment, owner, tier, last_rotated,"
		     " current_version, failures, needs_attention, last_result, last_error, last_run,"
		     " COALESCE(json_extract(spec, '$.last_rotated'), 0) AS spec_last_rotated"
		     " FROM secrets ORDER BY name", "");
}

int
rk_store_secret_names(struct rk_store *s, json_t **out, struct rk_error *err)
{
	json_t *rows = NULL, *set, *row;
	size_t i;
	int r;

	if ((r = query(s, &rows, err, "SELECT name FROM secrets", "")) < 0)
		return r;
	if ((set = json_object()) == NULL) {
		json_decref(rows);
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	}
	json_array_foreach(rows, i, row)
		json_object_set_new(set, json_string_value(json_object_get(row, "name")), json_true());
	json_decref(rows);
	*out = set;
	return 0;
}

int
rk_store_secret_get(struct rk_store *s, const char *name, json_t **out, struct rk_error *err)
{
	json_t *rows = NULL;
	int r;

	if ((r = query(s, &rows, err, "SELECT " SECRET_COLUMNS " FROM secrets WHERE name = ?",
		       "s", name)) < 0)
		return r;
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return rk_error_set(err, RK_ENOTFOUND,
				    "no secret named '%s' in the inventory (see `rekey list`)", name);
	}
	if ((r = parse_specs(rows, err)) < 0) {
		json_decref(rows);
		return r;
	}
	*out = json_incref(json_array_get(rows, 0));
	json_decref(rows);
	return 0;
}

int
rk_store_secret_failed(struct rk_store *s, const char *name, const char *run_id,
		       const char *error, int max_attempts, struct rk_error *err)
{
	return run(s, err, NULL,
		   "UPDATE secrets SET failures = failures + 1,"
		   " needs_attention = (failures + 1 >= ?), last_result = 'failed',"
		   " last_error = ?, last_run = ? WHERE name = ?",
		   "isss", (int64_t)max_attempts, error, run_id, name);
}

int
rk_store_secret_promoted(struct rk_store *s, const char *name, const char *run_id,
			 const char *version, const char *fp, int64_t now, struct rk_error *err)
{
	int r;

	if ((r = run(s, err, NULL,
		     "UPDATE secrets SET current_version = ?, current_fp = ?, last_rotated = ?,"
		     " failures = 0, needs_attention = 0, last_result = 'rotated',"
		     " last_error = '', last_run = ? WHERE name = ?",
		     "ssiss", version, fp, now, run_id, name)) < 0)
		return r;
	return run(s, err, NULL,
		   "INSERT OR IGNORE INTO fingerprints (secret, environment, version, fp, seen_at)"
		   " SELECT name, environment, ?, ?, ? FROM secrets WHERE name = ?",
		   "ssis", version, fp, now, name);
}

int
rk_store_secret_clear_attention(struct rk_store *s, const char *name, struct rk_error *err)
{
	return run(s, err, NULL,
		   "UPDATE secrets SET needs_attention = 0, failures = 0 WHERE name = ?", "s", name);
}

int
rk_store_fp_other_env(struct rk_store *s, const char *fp, const char *environment,
		      char **name_out, struct rk_error *err)
{
	json_t *rows = NULL;
	int r;

	*name_out = NULL;
	if ((r = query(s, &rows, err,
		       "SELECT secret FROM fingerprints WHERE fp = ? AND environment <> ?"
		       " ORDER BY seen_at DESC LIMIT 1", "ss", fp, environment)) < 0)
		return r;
	if (json_array_size(rows) > 0) {
		const char *n = json_string_value(json_object_get(json_array_get(rows, 0), "secret"));
		if ((*name_out = strdup(n)) == NULL)
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
	}
	json_decref(rows);
	return r;
}

int
rk_store_fp_add(struct rk_store *s, const char *name, const char *environment,
		const char *version, const char *fp, int64_t now, struct rk_error *err)
{
	return run(s, err, NULL,
		   "INSERT OR IGNORE INTO fingerprints (secret, environment, version, fp, seen_at)"
		   " VALUES (?,?,?,?,?)", "ssssi", name, environment, version, fp, now);
}

/* ---- runs ---- */

int
rk_store_run_create(struct rk_store *s, const char *run_id, const char *kind, const char *reason,
		    int64_t now, struct rk_error *err)
{
	return run(s, err, NULL,
		   "INSERT INTO runs (id, kind, reason, status, started_at, seq)"
		   " VALUES (?,?,?,'running',?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM runs))",
		   "sssi", run_id, kind, reason ? reason : "", now);
}

int
rk_store_run_finish(struct rk_store *s, const char *run_id, const char *status, int64_t now,
		    struct rk_error *err)
{
	return run(s, err, NULL, "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", "sis",
		   status, now, run_id);
}

int
rk_store_run_retry(struct rk_store *s, const char *run_id, int64_t now, struct rk_error *err)
{
	int r;

	if ((r = rk_store_begin(s, err)) < 0)
		return r;
	/*
	 * A dependent restarted before the retry has to restart again after the
	 * retried secrets it reads change: a new round, so that the provider
	 * does not take it for the restart it already did.
	 */
	if ((r = run(s, err, NULL,
		     "UPDATE dep_restarts SET state = 'again', round = round + 1, updated_at = ?1"
		     " WHERE run_id = ?2 AND state = 'done' AND dependent IN ("
		     " SELECT json_extract(d.value, '$.key') FROM rotations r"
		     " JOIN secrets s ON s.name = r.secret, json_each(s.spec, '$.dependents') d"
		     " WHERE r.run_id = ?2 AND r.state IN ('failed', 'rolled_back'))",
		     "is", now, run_id)) < 0) {
		rk_store_rollback(s);
		return r;
	}
	if ((r = run(s, err, NULL,
		     "INSERT INTO steps (run_id, secret, step, detail, ts) SELECT run_id, secret,"
		     " 'planned', 'retried in the same run', ? FROM rotations WHERE run_id = ?"
		     " AND state IN ('failed', 'rolled_back')", "is", now, run_id)) < 0 ||
	    (r = run(s, err, NULL,
		     /*
		      * A new idempotency key (a UUID v4 form): the value generated again
		      * is not the one the failed try staged under the old key, which a
		      * provider would hand back as "already staged" (and another run may
		      * have rotated the secret meanwhile).
		      */
		     "UPDATE rotations SET state = 'planned', new_version = '', new_fp = '',"
		     " sealed_new = NULL, error = '', updated_at = ?,"
		     " idem_key = lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||"
		     "  substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) ||"
		     "  substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
		     " WHERE run_id = ? AND state IN ('failed', 'rolled_back')", "is", now, run_id)) < 0 ||
	    /* Rotated, but a dependent did not restart: restarted again by the resume. */
	    (r = run(s, err, NULL,
		     "UPDATE rotations SET state = 'promoted', updated_at = ? WHERE run_id = ?"
		     " AND state = 'restart_failed'", "is", now, run_id)) < 0 ||
	    (r = run(s, err, NULL,
		     "UPDATE runs SET status = 'running', finished_at = 0 WHERE id = ?", "s",
		     run_id)) < 0) {
		rk_store_rollback(s);
		return r;
	}
	return rk_store_commit(s, err);
}

int
rk_store_lock_set(struct rk_store *s, const char *name, const char *holder, int64_t now,
		  struct rk_error *err)
{
	return run(s, err, NULL, "INSERT OR REPLACE INTO locks (name, holder, since) VALUES (?,?,?)",
		   "ssi", name, holder, now);
}

int
rk_store_lock_clear(struct rk_store *s, const char *name, const char *holder,
		    struct rk_error *err)
{
	return run(s, err, NULL, "DELETE FROM locks WHERE name = ? AND holder = ?", "ss", name,
		   holder);
}

int
rk_store_lock_get(struct rk_store *s, const char *name, char *holder, size_t n,
		  struct rk_error *err)
{
	/* Held by a run that is still open: a process killed before or after its run leaves none. */
	return query_text(s, holder, n, err,
			  "SELECT l.holder FROM locks l JOIN runs u ON u.id = l.holder"
			  " WHERE l.name = ? AND u.status = 'running'", "s", name);
}

int
rk_store_run_list(struct rk_store *s, int limit, json_t **out, struct rk_error *err)
{
	return query(s, out, err,
		     "SELECT r.id, r.kind, r.reason, r.status, r.started_at, r.finished_at,"
		     " (SELECT COUNT(*) FROM rotations WHERE run_id = r.id) AS secrets,"
		     " (SELECT COUNT(*) FROM rotations WHERE run_id = r.id AND state = 'done') AS done,"
		     " (SELECT COUNT(*) FROM rotations WHERE run_id = r.id"
		     "   AND state IN ('failed','rolled_back')) AS failed"
		     " FROM runs r WHERE r.status = 'running'"
		     "   OR r.seq > (SELECT COALESCE(MAX(seq), 0) FROM runs) - ?"
		     " ORDER BY r.seq DESC",
		     "i", (int64_t)limit);
}

int
rk_store_run_get(struct rk_store *s, const char *run_id, json_t **out, struct rk_error *err)
{
	json_t *rows = NULL;
	int r;

	if ((r = query(s, &rows, err,
		       "SELECT id, kind, reason, status, started_at, finished_at FROM runs"
		       " WHERE id = ?", "s", run_id)) < 0)
		return r;
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		return rk_error_set(err, RK_ENOTFOUND, "no run '%s' (see `rekey runs`)", run_id);
	}
	*out = json_incref(json_array_get(rows, 0));
	json_decref(rows);
	return 0;
}

int
rk_store_run_unfinished(struct rk_store *s, json_t **out, struct rk_error *err)
{
	return query(s, out, err,
		     "SELECT id, kind, reason, started_at FROM runs WHERE status = 'running'"
		     " ORDER BY seq", "");
}

/* ---- journal ---- */

void
rk_rotation_clear(struct rk_rotation *rot)
{
	free(rot->sealed_new);
	free(rot->sealed_old);
	rot->sealed_new = rot->sealed_old = NULL;
	rot->sealed_new_len = rot->sealed_old_len = 0;
}

int
rk_store_rot_insert(struct rk_store *s, const struct rk_rotation *rot, int64_t now,
		    struct rk_error *err)
{
	int r;

	if ((r = rk_store_begin(s, err)) < 0)
		return r;
	if ((r = run(s, err, NULL,
		     "INSERT INTO rotations (run_id, secret, seq, state, idem_key, restore_version,"
		     " updated_at) VALUES (?, ?, (SELECT COUNT(*) FROM rotations WHERE run_id = ?),"
		     " 'planned', ?, ?, ?)",
		     "sssssi", rot->run_id, rot->secret, rot->run_id, rot->idem_key,
		     rot->restore_version, now)) < 0 ||
	    (r = run(s, err, NULL,
		     "INSERT INTO steps (run_id, secret, step, ts) VALUES (?, ?, 'planned', ?)",
		     "ssi", rot->run_id, rot->secret, now)) < 0) {
		rk_store_rollback(s);
		return r;
	}
	return rk_store_commit(s, err);
}

/*
 * After the UPDATE of a rotation row (its result r and row count): the step
 * row, then the unit (begun by the caller) committed, or undone on error.
 */
static int
rot_step_end(struct rk_store *s, int r, int changes, const char *run_id, const char *secret,
	     const char *step, const char *detail, int64_t now, struct rk_error *err)
{
	if (r == 0 && changes != 1)
		r = rk_error_set(err, RK_EINTERNAL, "journal row of '%s' in run %s is missing",
				 secret, run_id);
	if (r == 0)
		r = run(s, err, NULL,
			"INSERT INTO steps (run_id, secret, step, detail, ts) VALUES (?,?,?,?,?)",
			"ssssi", run_id, secret, step, detail ? detail : "", now);
	if (r < 0) {
		rk_store_rollback(s);
		return r;
	}
	return rk_store_commit(s, err);
}

int
rk_store_rot_step(struct rk_store *s, struct rk_rotation *rot, const char *step,
		  const char *detail, int64_t now, struct rk_error *err)
{
	int r, changes = 0;

	if ((r = rk_store_begin(s, err)) < 0)
		return r;
	r = run(s, err, &changes,
		"UPDATE rotations SET state = ?, old_version = ?, new_version = ?, old_fp = ?,"
		" new_fp = ?, sealed_new = ?, sealed_old = ?, error = ?, updated_at = ?"
		" WHERE run_id = ? AND secret = ?",
		"sssssbbsiss", step, rot->old_version, rot->new_version, rot->old_fp, rot->new_fp,
		(const void *)rot->sealed_new, rot->sealed_new_len, (const void *)rot->sealed_old,
		rot->sealed_old_len, rot->error, now, rot->run_id, rot->secret);
	if ((r = rot_step_end(s, r, changes, rot->run_id, rot->secret, step, detail, now, err)) < 0)
		return r;
	snprintf(rot->state, sizeof(rot->state), "%s", step);
	rot->updated_at = now;
	return 0;
}

static void
copy_col(char *dst, size_t n, sqlite3_stmt *st, int i)
{
	const char *v = (const char *)sqlite3_column_text(st, i);

	snprintf(dst, n, "%s", v ? v : "");
}

static int
copy_blob(unsigned char **dst, size_t *len, sqlite3_stmt *st, int i)
{
	const void *p = sqlite3_column_blob(st, i);
	int n = sqlite3_column_bytes(st, i);

	*dst = NULL;
	*len = 0;
	if (p == NULL || n <= 0)
		return 0;
	if ((*dst = malloc((size_t)n)) == NULL)
		return RK_ENOMEM;
	memcpy(*dst, p, (size_t)n);
	*len = (size_t)n;
	return 0;
}

void
rk_store_rot_free(struct rk_rotation *rots, size_t n)
{
	if (rots == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		rk_rotation_clear(&rots[i]);
	free(rots);
}

/* The rotations of run_id (one secret's when secret is not NULL), in insertion order. */
static int
rot_read(struct rk_store *s, const char *run_id, const char *secret, struct rk_rotation **out,
	 size_t *n, struct rk_error *err)
{
	sqlite3_stmt *st = NULL;
	struct rk_rotation *rots = NULL;
	size_t count = 0, cap = 0;
	struct conn *c = NULL;
	int r = 0, rc;

	if ((r = conn_get(s, &c, err)) < 0)
		return r;
	/* Two statements: an OR in one would make the one-secret read scan the run. */
#define ROT_COLUMNS "SELECT run_id, secret, state, idem_key, old_version, new_version," \
		    " old_fp, new_fp, sealed_new, sealed_old, error, updated_at," \
		    " restore_version FROM rotations WHERE run_id = ?1"
	static const char *const by_run = ROT_COLUMNS " ORDER BY seq",
			  *const by_secret = ROT_COLUMNS " AND secret = ?2";
#undef ROT_COLUMNS
	if ((r = stmt_get(s, c, secret ? by_secret : by_run, &st, err)) < 0) {
		conn_put(s, c);
		return r;
	}
	sqlite3_bind_text(st, 1, run_id, -1, SQLITE_TRANSIENT);
	if (secret != NULL)
		sqlite3_bind_text(st, 2, secret, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct rk_rotation *rot;
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : secret ? 1 : 16;
			struct rk_rotation *nr = realloc(rots, ncap * sizeof(*nr));
			if (nr == NULL) {
				r = rk_error_set(err, RK_ENOMEM, "out of memory");
				goto out;
			}
			rots = nr;
			cap = ncap;
		}
		rot = &rots[count];
		memset(rot, 0, sizeof(*rot));
		count++;
		copy_col(rot->run_id, sizeof(rot->run_id), st, 0);
		copy_col(rot->secret, sizeof(rot->secret), st, 1);
		copy_col(rot->state, sizeof(rot->state), st, 2);
		copy_col(rot->idem_key, sizeof(rot->idem_key), st, 3);
		copy_col(rot->old_version, sizeof(rot->old_version), st, 4);
		copy_col(rot->new_version, sizeof(rot->new_version), st, 5);
		copy_col(rot->old_fp, sizeof(rot->old_fp), st, 6);
		copy_col(rot->new_fp, sizeof(rot->new_fp), st, 7);
		if (copy_blob(&rot->sealed_new, &rot->sealed_new_len, st, 8) < 0 ||
		    copy_blob(&rot->sealed_old, &rot->sealed_old_len, st, 9) < 0) {
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
		copy_col(rot->error, sizeof(rot->error), st, 10);
		rot->updated_at = sqlite3_column_int64(st, 11);
		copy_col(rot->restore_version, sizeof(rot->restore_version), st, 12);
	}
	if (rc != SQLITE_DONE)
		r = db_err(s, c->db, err, "read");
out:
	stmt_done(c, st);
	conn_put(s, c);
	if (r < 0) {
		rk_store_rot_free(rots, count);
		return r;
	}
	*out = rots;
	*n = count;
	return 0;
}

int
rk_store_rot_list(struct rk_store *s, const char *run_id, struct rk_rotation **out, size_t *n,
		  struct rk_error *err)
{
	return rot_read(s, run_id, NULL, out, n, err);
}

int
rk_store_rot_get(struct rk_store *s, const char *run_id, const char *secret,
		 struct rk_rotation **out, struct rk_error *err)
{
	size_t n = 0;
	int r;

	if ((r = rot_read(s, run_id, secret, out, &n, err)) < 0)
		return r;
	if (n == 0) {
		free(*out);
		*out = NULL;
		return rk_error_set(err, RK_ENOTFOUND, "run %s has no rotation of '%s'", run_id,
				    secret);
	}
	return 0;
}

int
rk_store_rot_advance(struct rk_store *s, const char *run_id, const char *secret,
		     const char *step, int64_t now, struct rk_error *err)
{
	int r, changes = 0;

	if ((r = rk_store_begin(s, err)) < 0)
		return r;
	r = run(s, err, &changes,
		"UPDATE rotations SET state = ?, sealed_new = NULL, updated_at = ?"
		" WHERE run_id = ? AND secret = ?", "siss", step, now, run_id, secret);
	return rot_step_end(s, r, changes, run_id, secret, step, NULL, now, err);
}

int
rk_store_secret_in_flight(struct rk_store *s, const char *name, char *run_id, size_t n,
			  struct rk_error *err)
{
	return query_text(s, run_id, n, err,
			  "SELECT r.run_id FROM rotations r JOIN runs u ON u.id = r.run_id"
			  " WHERE u.status = 'running' AND r.secret = ?"
			  " AND r.state NOT IN ('done', 'failed', 'rolled_back') LIMIT 1", "s", name);
}

int
rk_store_steps(struct rk_store *s, const char *run_id, const char *secret, json_t **out,
	       struct rk_error *err)
{
	if (run_id != NULL)
		return query(s, out, err,
			     "SELECT secret, step, detail, ts FROM steps WHERE run_id = ? ORDER BY id",
			     "s", run_id);
	return query(s, out, err,
		     "SELECT run_id, step, detail, ts FROM steps WHERE secret = ? ORDER BY id", "s",
		     secret);
}

int
rk_store_history(struct rk_store *s, const char *secret, json_t **out, struct rk_error *err)
{
	return query(s, out, err,
		     "SELECT r.run_id, u.kind, r.state, r.old_version, r.new_version, r.new_fp,"
		     " r.error, u.started_at, r.updated_at FROM rotations r JOIN runs u"
		     " ON u.id = r.run_id WHERE r.secret = ? ORDER BY u.seq DESC",
		     "s", secret);
}

int
rk_store_last_change(struct rk_store *s, const char *secret, json_t **out, struct rk_error *err)
{
	json_t *rows = NULL;
	int r;

	/* steps.id is AUTOINCREMENT: the newest "promoted" row is the latest change. */
	if ((r = query(s, &rows, err,
		       "SELECT r.run_id, u.kind, r.old_version, r.new_version, r.old_fp, r.new_fp"
		       " FROM steps t JOIN rotations r ON r.run_id = t.run_id AND r.secret = t.secret"
		       " JOIN runs u ON u.id = r.run_id"
		       " WHERE t.secret = ? AND t.step = 'promoted' ORDER BY t.id DESC LIMIT 1",
		       "s", secret)) < 0)
		return r;
	*out = json_array_size(rows) ? json_incref(json_array_get(rows, 0)) : NULL;
	json_decref(rows);
	return 0;
}

/* ---- dependents ---- */

int
rk_store_dep_state(struct rk_store *s, const char *run_id, const char *dep, char *state,
		   size_t n, int *round, struct rk_error *err)
{
	json_t *rows = NULL, *row;
	int r;

	if ((r = query(s, &rows, err,
		       "SELECT state, round FROM dep_restarts WHERE run_id = ? AND dependent = ?",
		       "ss", run_id, dep)) < 0)
		return r;
	row = json_array_get(rows, 0);
	snprintf(state, n, "%s", row ? json_string_value(json_object_get(row, "state")) : "");
	*round = row ? (int)json_integer_value(json_object_get(row, "round")) : 0;
	json_decref(rows);
	return 0;
}

int
rk_store_dep_set(struct rk_store *s, const char *run_id, const char *dep, const char *state,
		 const char *error, int64_t now, struct rk_error *err)
{
	return run(s, err, NULL,
		   "INSERT INTO dep_restarts (run_id, dependent, state, error, updated_at)"
		   " VALUES (?,?,?,?,?) ON CONFLICT(run_id, dependent) DO UPDATE SET"
		   " state = excluded.state, error = excluded.error, updated_at = excluded.updated_at",
		   "ssssi", run_id, dep, state, error ? error : "", now);
}

int
rk_store_dep_list(struct rk_store *s, const char *run_id, json_t **out, struct rk_error *err)
{
	return query(s, out, err,
		     "SELECT dependent, state, error, updated_at FROM dep_restarts WHERE run_id = ?"
		     " ORDER BY dependent", "s", run_id);
}

/* ---- audit ---- */

int
rk_store_audit_last(struct rk_store *s, int64_t *seq, char *hash, size_t n, struct rk_error *err)
{
	json_t *rows = NULL;
	int r;

	if ((r = query(s, &rows, err, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
		       "")) < 0)
		return r;
	if (json_array_size(rows) == 0) {
		*seq = 0;
		snprintf(hash, n, "%s", "");
	} else {
		json_t *row = json_array_get(rows, 0);
		*seq = json_integer_value(json_object_get(row, "seq"));
		snprintf(hash, n, "%s", json_string_value(json_object_get(row, "hash")));
	}
	json_decref(rows);
	return 0;
}

int
rk_store_audit_insert(struct rk_store *s, int64_t seq, int64_t ts, const char *actor,
		      const char *event, const char *subject, const char *detail,
		      const char *prev_hash, const char *hash, struct rk_error *err)
{
	return run(s, err, NULL,
		   "INSERT INTO audit (seq, ts, actor, event, subject, detail, prev_hash, hash)"
		   " VALUES (?,?,?,?,?,?,?,?)", "iissssss", seq, ts, actor, event, subject, detail,
		   prev_hash, hash);
}

int
rk_store_audit_list(struct rk_store *s, int64_t since, json_t **out, struct rk_error *err)
{
	return query(s, out, err,
		     "SELECT seq, ts, actor, event, subject, detail, prev_hash, hash FROM audit"
		     " WHERE ts >= ? ORDER BY seq", "i", since);
}

/*
 * ---- backup ----
 * The DB image of a backup (src/backup.c), and the checks of a restored DB.
 * The image is taken on a connection of its own, never a pooled reader nor
 * the write connection: a unit of the calling thread must not leak into it,
 * and it holds no lock of the store, so writers of every thread and process
 * go on while it is copied (WAL: the copy is one read transaction).
 */

static int
snapshot_count(sqlite3 *db, int64_t *rows)
{
	sqlite3_stmt *st = NULL;
	int ok;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM audit", -1, &st, NULL) != SQLITE_OK)
		return -1;
	ok = sqlite3_step(st) == SQLITE_ROW;
	if (ok)
		*rows = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return ok ? 0 : -1;
}

int
rk_store_snapshot(struct rk_store *s, unsigned char **image, size_t *len, int64_t *audit_rows,
		  struct rk_error *err)
{
	sqlite3 *src = NULL, *mem = NULL;
	sqlite3_backup *b;
	sqlite3_int64 size = 0;
	unsigned char *data;
	int r, rc;

	if ((r = open_conn(s, &src, SQLITE_OPEN_READONLY, err)) < 0)
		return r;
	if (sqlite3_open_v2(":memory:", &mem, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		r = rk_error_set(err, RK_ENOMEM, "backup of %s: cannot open an in-memory DB", s->path);
		goto out;
	}
	if ((b = sqlite3_backup_init(mem, "main", src, "main")) == NULL) {
		r = db_err(s, mem, err, "backup");
		goto out;
	}
	/*
	 * All pages in one step: one read transaction, so one committed state.
	 * A writer holding the lock for a moment makes it BUSY: try again.
	 */
	for (int tries = 0; (rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY ||
			    rc == SQLITE_LOCKED; tries++) {
		if (tries >= BUSY_TIMEOUT_MS / 10)
			break;
		sqlite3_sleep(10);
	}
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		r = rk_error_set(err, RK_EIO, "state DB %s: backup: %s", s->path, sqlite3_errstr(rc));
		goto out;
	}
	if (snapshot_count(mem, audit_rows) < 0) {
		r = db_err(s, mem, err, "count the audit rows of the backup");
		goto out;
	}
	if ((data = sqlite3_serialize(mem, "main", &size, 0)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "backup of %s: out of memory", s->path);
		goto out;
	}
	*image = data;
	*len = (size_t)size;
	r = 0;
out:
	sqlite3_close_v2(mem);
	sqlite3_close_v2(src);
	return r;
}

void
rk_store_image_free(unsigned char *image, size_t len)
{
	if (image == NULL)
		return;
	explicit_bzero(image, len);
	sqlite3_free(image);
}

int
rk_store_integrity_check(struct rk_store *s, struct rk_error *err)
{
	char res[256];
	int r;

	if ((r = query_text(s, res, sizeof(res), err, "PRAGMA integrity_check", "")) < 0)
		return r;
	if (strcmp(res, "ok") != 0)
		return rk_error_set(err, RK_EINVAL, "state DB %s fails its integrity check: %s",
				    s->path, res);
	return 0;
}
