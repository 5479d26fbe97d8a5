/* Deadlines and cancellation for waits (see call.h). */
#include <time.h>

#include "rekey/call.h"
#include "rekey/error.h"
#include "rekey/util.h"

int
rk_call_cancelled(const struct rk_call *c)
{
	return c != NULL && c->cancel != NULL && atomic_load(c->cancel) != 0;
}

int
rk_call_expired(const struct rk_call *c)
{
	return c != NULL && c->deadline_ms > 0 && rk_mono_ms() >= c->deadline_ms;
}

int64_t
rk_call_deadline(const struct rk_call *c, int64_t deadline_ms)
{
	int64_t own = c != NULL ? c->deadline_ms : 0;

	if (own <= 0)
		return deadline_ms;
	if (deadline_ms <= 0)
		return own;
	return own < deadline_ms ? own : deadline_ms;
}

int
rk_call_sleep(const struct rk_call *c, int64_t ms)
{
	int64_t end = rk_mono_ms() + ms;

	if (c != NULL && c->deadline_ms > 0 && end > c->deadline_ms)
		return rk_call_cancelled(c) ? RK_ECANCELED : RK_ETRANSIENT;
	for (;;) {
		int64_t left = end - rk_mono_ms();
		struct timespec ts;
		if (rk_call_cancelled(c))
			return RK_ECANCELED;
		if (left <= 0)
			return 0;
		if (left > RK_CALL_TICK_MS)
			left = RK_CALL_TICK_MS;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (long)(left % 1000) * 1000000L;
		nanosleep(&ts, NULL);
	}
}
