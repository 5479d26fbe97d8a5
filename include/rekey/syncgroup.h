/*
 * Group sync: many threads that each need "what I wrote is on disk" share
 * one syncfs(2) of the file system, as group commit shares one WAL fsync.
 * The local store calls it where crash safety needs durability (before a
 * new version becomes current, and before its promotion is journaled),
 * instead of four fsyncs per secret.
 */
#ifndef REKEY_SYNCGROUP_H
#define REKEY_SYNCGROUP_H

#include <pthread.h>
#include <stdint.h>
#include "rekey/error.h"

struct rk_sync_group {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fd;			/* a directory on the file system to sync */
	uint64_t next;		/* tickets handed out */
	uint64_t done;		/* every ticket up to this one is durable (or failed) */
	uint64_t fail_lo, fail_hi;	/* tickets in (lo, hi] got an error from the last failed sync */
	int fail_errno;
	int running;		/* a sync is under way */
	uint64_t started, syncs;	/* syncs begun and finished (for tests and benchmarks) */
	int ready;		/* initialised: destroy has something to free */
};

int rk_sync_group_init(struct rk_sync_group *g, const char *dir, struct rk_error *err) RK_WARN_UNUSED;
void rk_sync_group_destroy(struct rk_sync_group *g);	/* accepts a zeroed, never initialised one */
/*
 * Returns once everything this thread wrote to the file system before the
 * call is durable: joins a sync that starts after the call, or starts one.
 * RK_EIO when that sync failed.
 */
int rk_sync_group_wait(struct rk_sync_group *g, struct rk_error *err) RK_WARN_UNUSED;

#endif
