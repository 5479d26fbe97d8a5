/*
 * The state DB under concurrency (src/store.c): many threads journal steps
 * and append audit rows at once through one write connection with group
 * commit. What must hold: every acknowledged step is in the DB after a crash
 * between a batch's writes and its commit; nothing is acknowledged before its
 * batch is committed; units of several threads share commits; one unit's
 * failure undoes only its own writes; the audit chain stays one chain.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rekey/audit.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/store.h"
#include "unit.h"

#define THREADS 8
#define STEPS 40

struct fx {
	char dir[64];
	struct rk_ctx ctx;
};

static void
fx_init(struct fx *f)
{
	rk_test_state_ctx(f->dir, &f->ctx);
	(void)rk_ctx_actor(&f->ctx);	/* as rk_ctx_open_state does, before any thread */
}

static void
fx_done(struct fx *f)
{
	rk_ctx_cleanup(&f->ctx);
	rk_test_rm_rf(f->dir);
}

/* A run with one rotation per thread, secrets "s0".."s7". */
static void
make_run(struct fx *f)
{
	struct rk_error err = { 0 };

	ck_assert_msg(rk_store_run_create(f->ctx.store, "run1", "rotate", "", 1, &err) == 0, "%s",
		      err.msg);
	for (int t = 0; t < THREADS; t++) {
		struct rk_rotation rot;
		memset(&rot, 0, sizeof(rot));
		snprintf(rot.run_id, sizeof(rot.run_id), "run1");
		snprintf(rot.secret, sizeof(rot.secret), "s%d", t);
		snprintf(rot.idem_key, sizeof(rot.idem_key), "k%d", t);
		ck_assert_msg(rk_store_rot_insert(f->ctx.store, &rot, 1, &err) == 0, "%s", err.msg);
	}
}

struct worker {
	struct fx *f;
	int t;
	int ack_fd;		/* -1: no ack log */
	int failures;
	char msg[512];
};

/*
 * Journals STEPS steps (detail "t<t>-<i>") and an audit row after each;
 * logs "t i\n" to ack_fd once the step's call returned 0 (acknowledged).
 */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct rk_rotation rot;

	memset(&rot, 0, sizeof(rot));
	snprintf(rot.run_id, sizeof(rot.run_id), "run1");
	snprintf(rot.secret, sizeof(rot.secret), "s%d", w->t);
	for (int i = 0; i < STEPS; i++) {
		struct rk_error err = { 0 };
		char detail[32], line[32];
		json_t *d;
		snprintf(detail, sizeof(detail), "t%d-%d", w->t, i);
		snprintf(rot.new_version, sizeof(rot.new_version), "%d", i);
		if (rk_store_rot_step(w->f->ctx.store, &rot, "generated", detail, 2, &err) < 0) {
			w->failures++;
			snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
			continue;
		}
		if (w->ack_fd >= 0) {
			int n = snprintf(line, sizeof(line), "%d %d\n", w->t, i);
			if (write(w->ack_fd, line, (size_t)n) != n)
				w->failures++;
		}
		d = json_pack("{s:s}", "step", detail);
		if (rk_audit(&w->f->ctx, "test.step", rot.secret, d, &err) < 0) {
			w->failures++;
			snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
		}
		json_decref(d);
	}
	return NULL;
}

static void
run_workers(struct fx *f, int ack_fd)
{
	pthread_t th[THREADS];
	struct worker w[THREADS];

	for (int t = 0; t < THREADS; t++) {
		w[t] = (struct worker){ .f = f, .t = t, .ack_fd = ack_fd };
		ck_assert_int_eq(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		ck_assert_msg(w[t].failures == 0, "thread %d: %d failures (%s)", t, w[t].failures,
			      w[t].msg);
	}
}

/* Step rows of one secret: their details must be t<t>-0 .. t<t>-(n-1), in order, no gaps. */
static int
steps_of(struct fx *f, int t)
{
	struct rk_error err = { 0 };
	json_t *rows = NULL, *row;
	char secret[8], want[32];
	size_t i;
	int n = 0;

	snprintf(secret, sizeof(secret), "s%d", t);
	ck_assert_msg(rk_store_steps(f->ctx.store, NULL, secret, &rows, &err) == 0, "%s", err.msg);
	json_array_foreach(rows, i, row) {
		const char *step = json_string_value(json_object_get(row, "step"));
		if (strcmp(step, "planned") == 0)
			continue;
		snprintf(want, sizeof(want), "t%d-%d", t, n);
		ck_assert_str_eq(json_string_value(json_object_get(row, "detail")), want);
		n++;
	}
	json_decref(rows);
	return n;
}

static void
slow_commit(void *arg, unsigned units)
{
	struct timespec ts = { 0, 2 * 1000 * 1000 };

	(void)arg;
	(void)units;
	nanosleep(&ts, NULL);	/* as a slow disk would: the queue fills meanwhile */
}

START_TEST(test_store_threads_share_commits_and_lose_nothing)
{
	struct fx f;
	struct rk_error err = { 0 };
	struct rk_store_stats st;
	int64_t rows = 0;

	fx_init(&f);
	make_run(&f);
	rk_store_set_commit_hook(f.ctx.store, slow_commit, NULL);
	rk_store_stats(f.ctx.store, &st);
	uint64_t units0 = st.units, commits0 = st.commits;
	run_workers(&f, -1);
	rk_store_stats(f.ctx.store, &st);
	/* 8 threads x 40 x (one step + one audit row) units. */
	ck_assert_uint_eq(st.units - units0, THREADS * STEPS * 2);
	/* Group commit: with 8 writers and a 2 ms fsync, far fewer commits than units. */
	ck_assert_msg(st.commits - commits0 < (st.units - units0) / 2,
		      "%llu commits for %llu units", (unsigned long long)(st.commits - commits0),
		      (unsigned long long)(st.units - units0));
	for (int t = 0; t < THREADS; t++)
		ck_assert_int_eq(steps_of(&f, t), STEPS);
	ck_assert_msg(rk_audit_verify(f.ctx.store, f.ctx.keys, &rows, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(rows, THREADS * STEPS);
	fx_done(&f);
}
END_TEST

/* The crash point: the k-th commit never happens (the process dies first). */
static int crash_at;
static int commits_seen;

static void
die_before_commit(void *arg, unsigned units)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };

	(void)arg;
	(void)units;
	if (++commits_seen < crash_at)
		return;
	/* Time for any thread wrongly acknowledged already to log it. */
	nanosleep(&ts, NULL);
	_exit(0);
}

START_TEST(test_store_crash_between_writes_and_commit_keeps_every_acknowledged_step)
{
	for (int trial = 0; trial < 4; trial++) {
		struct fx f;
		struct rk_error err = { 0 };
		char ack_path[128], line[64];
		int64_t rows = 0;
		int status, acked[THREADS], seen[THREADS];
		pid_t pid;
		FILE *fp;

		fx_init(&f);
		make_run(&f);
		snprintf(ack_path, sizeof(ack_path), "%s/acks", f.dir);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int fd = open(ack_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
			crash_at = 5 + trial * 15;
			commits_seen = 0;
			rk_store_set_commit_hook(f.ctx.store, die_before_commit, NULL);
			run_workers(&f, fd);
			_exit(3);	/* the crash point was never reached */
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d",
			      status);
		/* The parent's handle is stale after the child wrote: open the DB again. */
		rk_store_close(f.ctx.store);
		f.ctx.store = NULL;
		ck_assert_msg(rk_store_open(&f.ctx.store, f.dir, 0, &err) == 0, "%s", err.msg);
		for (int t = 0; t < THREADS; t++) {
			acked[t] = -1;
			seen[t] = steps_of(&f, t);
		}
		ck_assert_ptr_nonnull(fp = fopen(ack_path, "r"));
		while (fgets(line, sizeof(line), fp) != NULL) {
			int t, i;
			ck_assert_int_eq(sscanf(line, "%d %d", &t, &i), 2);
			ck_assert(t >= 0 && t < THREADS);
			if (i > acked[t])
				acked[t] = i;
		}
		fclose(fp);
		int total = 0;
		for (int t = 0; t < THREADS; t++) {
			/* Every acknowledged step survived the crash. */
			ck_assert_msg(seen[t] >= acked[t] + 1, "trial %d thread %d: acked step %d, "
				      "DB has %d", trial, t, acked[t], seen[t]);
			/*
			 * And the uncommitted batch did not: at most the one step whose
			 * commit a thread had not yet logged when the process died.
			 */
			ck_assert_msg(seen[t] <= acked[t] + 2, "trial %d thread %d: DB has %d steps, "
				      "%d acknowledged", trial, t, seen[t], acked[t] + 1);
			total += seen[t];
		}
		/* The crash cut the run short (else this trial proved nothing). */
		ck_assert_int_lt(total, THREADS * STEPS);
		ck_assert_msg(rk_audit_verify(f.ctx.store, f.ctx.keys, &rows, &err) == 0,
			      "trial %d: %s", trial, err.msg);
		fx_done(&f);
	}
}
END_TEST

/* Two threads in one batch: A's unit waits in it while B's fails. */
struct pair {
	struct fx *f;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int a_wrote;
	int a_rc, b_rc;
	int b_saw_uncommitted;	/* B read A's unit's write before it committed */
	int a_saw_own;		/* A read its own write inside its unit */
};

static void *
pair_a(void *arg)
{
	struct pair *p = arg;
	struct rk_error err = { 0 };
	struct timespec ts = { 0, 80 * 1000 * 1000 };
	json_t *run = NULL;

	ck_assert_int_eq(rk_store_begin(p->f->ctx.store, &err), 0);
	ck_assert_int_eq(rk_store_run_create(p->f->ctx.store, "kept", "rotate", "", 1, &err), 0);
	p->a_saw_own = rk_store_run_get(p->f->ctx.store, "kept", &run, &err) == 0;
	json_decref(run);
	pthread_mutex_lock(&p->mu);
	p->a_wrote = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	nanosleep(&ts, NULL);	/* B reads, then queues for the writer meanwhile */
	p->a_rc = rk_store_commit(p->f->ctx.store, &err);
	return NULL;
}

static void *
pair_b(void *arg)
{
	struct pair *p = arg;
	struct rk_error err = { 0 };
	json_t *run = NULL;

	pthread_mutex_lock(&p->mu);
	while (!p->a_wrote)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
	/* A reader of its own: committed data only. */
	p->b_saw_uncommitted = rk_store_run_get(p->f->ctx.store, "kept", &run, &err) == 0;
	json_decref(run);
	rk_error_clear(&err);
	ck_assert_int_eq(rk_store_begin(p->f->ctx.store, &err), 0);
	ck_assert_int_eq(rk_store_run_create(p->f->ctx.store, "undone", "rotate", "", 1, &err), 0);
	rk_store_rollback(p->f->ctx.store);
	/* The same name again fails (a constraint) and undoes only this unit. */
	p->b_rc = rk_store_run_create(p->f->ctx.store, "kept", "rotate", "", 1, &err);
	return NULL;
}

START_TEST(test_store_failed_unit_in_a_shared_batch_undoes_only_its_own_writes)
{
	struct fx f;
	struct pair p = { .f = &f };
	struct rk_error err = { 0 };
	pthread_t a, b;
	json_t *run = NULL;

	fx_init(&f);
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);
	ck_assert_int_eq(pthread_create(&a, NULL, pair_a, &p), 0);
	ck_assert_int_eq(pthread_create(&b, NULL, pair_b, &p), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	ck_assert_int_eq(p.a_saw_own, 1);
	ck_assert_int_eq(p.b_saw_uncommitted, 0);
	ck_assert_int_eq(p.a_rc, 0);
	ck_assert_int_eq(p.b_rc, RK_EIO);
	ck_assert_int_eq(rk_store_run_get(f.ctx.store, "kept", &run, &err), 0);
	json_decref(run);
	ck_assert_int_eq(rk_store_run_get(f.ctx.store, "undone", &run, &err), RK_ENOTFOUND);
	fx_done(&f);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
}
END_TEST
/* One value of a one-row query on the DB file itself, behind the store's back. */
static int64_t
db_int(const char *dir, const char *sql)
{
	char path[128];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	snprintf(path, sizeof(path), "%s/rekey.db", dir);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void
db_exec(const char *dir, const char *sql)
{
	char path[128];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/rekey.db", dir);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/*
 * A state DB of schema 2 (before the rotations(secret) index) is upgraded
 * in place when opened: the index is made, its rows are kept and found by
 * secret; a DB newer than this rekey is refused and left as it is.
 */
START_TEST(test_store_schema_2_is_upgraded_with_the_rotations_index)
{
	struct fx f;
	struct rk_error err = { 0 };
	struct rk_rotation *rot = NULL;
	char run[64];

	fx_init(&f);
	make_run(&f);
	rk_store_close(f.ctx.store);
	f.ctx.store = NULL;
	db_exec(f.dir, "DROP INDEX rotations_secret; DROP TABLE locks;"
		       " ALTER TABLE dep_restarts DROP COLUMN round; PRAGMA user_version = 2;");
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM sqlite_master WHERE name = "
				       "'rotations_secret'"), 0);
	ck_assert_msg(rk_store_open(&f.ctx.store, f.dir, 0, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(db_int(f.dir, "PRAGMA user_version"), 4);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM sqlite_master WHERE name = "
				       "'rotations_secret'"), 1);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'locks'"), 1);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM rotations"), THREADS);
	ck_assert_msg(rk_store_secret_in_flight(f.ctx.store, "s3", run, sizeof(run), &err) == 0,
		      "%s", err.msg);
	ck_assert_str_eq(run, "run1");
	ck_assert_msg(rk_store_rot_get(f.ctx.store, "run1", "s5", &rot, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(rot->idem_key, "k5");
	rk_store_rot_free(rot, 1);
	rk_store_close(f.ctx.store);
	f.ctx.store = NULL;
	db_exec(f.dir, "PRAGMA user_version = 5;");
	ck_assert_int_eq(rk_store_open(&f.ctx.store, f.dir, 0, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "schema version 5, newer than this rekey") != NULL, "%s",
		      err.msg);
	ck_assert_int_eq(db_int(f.dir, "PRAGMA user_version"), 5);
	fx_done(&f);
}
END_TEST

/*
 * Statements are kept prepared and used again: each use gets its own
 * arguments (nothing left bound from the last), a read after a miss still
 * finds rows, and the after-promote step changes only the state, drops the
 * sealed value and adds a step row.
 */
START_TEST(test_store_reused_statements_take_their_own_arguments)
{
	struct fx f;
	struct rk_error err = { 0 };
	struct rk_rotation *rot = NULL;
	json_t *steps = NULL;

	fx_init(&f);
	make_run(&f);
	for (int round = 0; round < 3; round++) {
		for (int t = 0; t < THREADS; t++) {
			char name[8], key[8];
			snprintf(name, sizeof(name), "s%d", t);
			snprintf(key, sizeof(key), "k%d", t);
			ck_assert_msg(rk_store_rot_get(f.ctx.store, "run1", name, &rot, &err) == 0,
				      "%s", err.msg);
			ck_assert_str_eq(rot->secret, name);
			ck_assert_str_eq(rot->idem_key, key);
			rk_store_rot_free(rot, 1);
			rot = NULL;
		}
		ck_assert_int_eq(rk_store_rot_get(f.ctx.store, "run1", "nope", &rot, &err),
				 RK_ENOTFOUND);
		ck_assert_ptr_null(rot);
		rk_error_clear(&err);
		ck_assert_int_eq(rk_store_rot_get(f.ctx.store, "run2", "s1", &rot, &err),
				 RK_ENOTFOUND);
		rk_error_clear(&err);
	}
	/* A sealed value in the journal row, then the after-promote step. */
	ck_assert_msg(rk_store_rot_get(f.ctx.store, "run1", "s2", &rot, &err) == 0, "%s", err.msg);
	rot->sealed_new = (unsigned char *)strdup("sealed");
	rot->sealed_new_len = 6;
	snprintf(rot->new_version, sizeof(rot->new_version), "7");
	ck_assert_msg(rk_store_rot_step(f.ctx.store, rot, "promoted", NULL, 2, &err) == 0, "%s",
		      err.msg);
	rk_store_rot_free(rot, 1);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM rotations WHERE secret = 's2'"
				       " AND sealed_new IS NOT NULL"), 1);
	ck_assert_msg(rk_store_rot_advance(f.ctx.store, "run1", "s2", "restarted", 3, &err) == 0,
		      "%s", err.msg);
	ck_assert_int_eq(rk_store_rot_advance(f.ctx.store, "run1", "gone", "done", 3, &err),
			 RK_EINTERNAL);
	rk_error_clear(&err);
	ck_assert_msg(rk_store_rot_get(f.ctx.store, "run1", "s2", &rot, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(rot->state, "restarted");
	ck_assert_str_eq(rot->new_version, "7");
	ck_assert_ptr_null(rot->sealed_new);
	ck_assert_int_eq(rot->updated_at, 3);
	rk_store_rot_free(rot, 1);
	ck_assert_msg(rk_store_steps(f.ctx.store, "run1", "s2", &steps, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(steps,
		json_array_size(steps) - 1), "step")), "restarted");
	json_decref(steps);
	fx_done(&f);
}
END_TEST


/*
 * A finished emergency tried again in its own run: failed and rolled-back
 * rotations back to planned (sealed value and versions dropped), a failed
 * restart back to promoted, done ones untouched, the run running again.
 */
START_TEST(test_store_run_retry_replans_only_what_failed)
{
	struct fx f;
	struct rk_error err = { 0 };
	char holder[64];

	fx_init(&f);
	make_run(&f);
	db_exec(f.dir, "UPDATE rotations SET state = 'failed', new_version = '7', error = 'x',"
		       " sealed_new = x'01' WHERE secret = 's0';"
		       "UPDATE rotations SET state = 'rolled_back' WHERE secret = 's1';"
		       "UPDATE rotations SET state = 'restart_failed' WHERE secret = 's2';"
		       "UPDATE rotations SET state = 'done' WHERE secret = 's3';"
		       "UPDATE runs SET status = 'partial', finished_at = 5 WHERE id = 'run1';");
	db_exec(f.dir, "CREATE TABLE old_keys AS SELECT secret, idem_key FROM rotations;");
	ck_assert_msg(rk_store_run_retry(f.ctx.store, "run1", 9, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM rotations WHERE state = 'planned' AND"
				       " secret IN ('s0', 's1')"), 2);
	/* A replanned rotation stages under a new idempotency key (UUID form); the others keep theirs. */
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM rotations r JOIN old_keys o USING (secret)"
				       " WHERE r.idem_key <> o.idem_key"), 2);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM rotations r JOIN old_keys o USING (secret)"
				       " WHERE r.idem_key <> o.idem_key AND r.secret IN ('s0', 's1') AND"
				       " length(r.idem_key) = 36 AND substr(r.idem_key, 15, 1) = '4' AND"
				       " r.idem_key GLOB '[0-9a-f]*-[0-9a-f]*-4*-[89ab]*-[0-9a-f]*'"), 2);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM rotations WHERE secret = 's0' AND"
				       " new_version = '' AND error = '' AND sealed_new IS NULL"), 1);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM rotations WHERE secret = 's2' AND"
				       " state = 'promoted'"), 1);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM rotations WHERE secret = 's3' AND"
				       " state = 'done'"), 1);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM steps WHERE detail = 'retried in the"
				       " same run'"), 2);
	ck_assert_int_eq(db_int(f.dir, "SELECT COUNT(*) FROM runs WHERE id = 'run1' AND"
				       " status = 'running' AND finished_at = 0"), 1);
	/* Named locks: set, read, cleared only by their holder. */
	ck_assert_int_eq(rk_store_lock_get(f.ctx.store, "scheduler", holder, sizeof(holder), &err), 0);
	ck_assert_str_eq(holder, "");
	ck_assert_int_eq(rk_store_lock_set(f.ctx.store, "scheduler", "run1", 3, &err), 0);
	ck_assert_int_eq(rk_store_lock_clear(f.ctx.store, "scheduler", "run2", &err), 0);
	ck_assert_int_eq(rk_store_lock_get(f.ctx.store, "scheduler", holder, sizeof(holder), &err), 0);
	ck_assert_str_eq(holder, "run1");
	ck_assert_int_eq(rk_store_lock_clear(f.ctx.store, "scheduler", "run1", &err), 0);
	ck_assert_int_eq(rk_store_lock_get(f.ctx.store, "scheduler", holder, sizeof(holder), &err), 0);
	ck_assert_str_eq(holder, "");
	fx_done(&f);
}
END_TEST

Suite *
store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("concurrency");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_store_threads_share_commits_and_lose_nothing);
	tcase_add_test(tc, test_store_crash_between_writes_and_commit_keeps_every_acknowledged_step);
	tcase_add_test(tc, test_store_failed_unit_in_a_shared_batch_undoes_only_its_own_writes);
	tcase_add_test(tc, test_store_schema_2_is_upgraded_with_the_rotations_index);
	tcase_add_test(tc, test_store_reused_statements_take_their_own_arguments);
	tcase_add_test(tc, test_store_run_retry_replans_only_what_failed);
	suite_add_tcase(s, tc);
	return s;
}
