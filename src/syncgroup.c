/* One syncfs for many writers (see syncgroup.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "rekey/syncgroup.h"

int
rk_sync_group_init(struct rk_sync_group *g, const char *dir, struct rk_error *err)
{
	memset(g, 0, sizeof(*g));
	if ((g->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return rk_error_set(err, RK_EIO, "cannot open %s: %s", dir, strerror(errno));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->ready = 1;
	return 0;
}

void
rk_sync_group_destroy(struct rk_sync_group *g)
{
	if (!g->ready)
		return;
	close(g->fd);
	g->ready = 0;
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
}

int
rk_sync_group_wait(struct rk_sync_group *g, struct rk_error *err)
{
	uint64_t my;
	int r = 0;

	pthread_mutex_lock(&g->mu);
	/* A sync that starts from now on covers my writes: one already running may not. */
	my = ++g->next;
	while (g->done < my) {
		if (g->running) {
			pthread_cond_wait(&g->cv, &g->mu);
			continue;
		}
		uint64_t target = g->next, from = g->done;
		int rc, e = 0;
		g->running = 1;
		g->started++;
		pthread_mutex_unlock(&g->mu);
		rc = syncfs(g->fd);
		if (rc < 0)
			e = errno;
		pthread_mutex_lock(&g->mu);
		g->running = 0;
		g->syncs++;
		if (rc < 0) {
			g->fail_lo = from;
			g->fail_hi = target;
			g->fail_errno = e;
		}
		g->done = target;
		pthread_cond_broadcast(&g->cv);
	}
	if (my > g->fail_lo && my <= g->fail_hi)
		r = rk_error_set(err, RK_EIO, "cannot make the local store durable (syncfs): %s",
				 strerror(g->fail_errno));
	pthread_mutex_unlock(&g->mu);
	return r;
}
