/*
 * Rotation windows: "Mon-Fri 02:00-05:00 UTC", "Sat,Sun 00:00-06:00 UTC",
 * "Mon-Sun 22:00-02:00 +01:00", "daily 03:00-04:00 UTC".
 *
 * Days: Mon Tue Wed Thu Fri Sat Sun (case-insensitive), ranges with '-' that
 * may wrap (Fri-Mon), lists with ','; "daily" or "*" for every day. Times are
 * HH:MM, 24h; an end before the start crosses midnight (the day named is the
 * day the window opens). Zone: "UTC" / "Z" or a fixed offset "+HH:MM"/"-HH:MM".
 * The window is half-open: [start, end).
 */
#ifndef REKEY_WINDOW_H
#define REKEY_WINDOW_H

#include <stdint.h>
#include "rekey/error.h"

struct rk_window {
	int set;		/* 0: no window, always open */
	unsigned char days;	/* bit 0 = Monday ... bit 6 = Sunday */
	int start_min;		/* minutes after local midnight, [0, 1440) */
	int end_min;		/* (0, 1440]; end <= start means crossing midnight */
	int offset_min;		/* local = UTC + offset */
};

/* Parses s; on error err->msg says what is wrong (the caller adds file:line). */
int rk_window_parse(struct rk_window *w, const char *s, struct rk_error *err) RK_WARN_UNUSED;
/* 1 if Unix time t is inside the window (always 1 when !w->set). */
int rk_window_contains(const struct rk_window *w, int64_t t);
/* The earliest time >= t inside the window (t itself when inside or !set). */
int64_t rk_window_next_open(const struct rk_window *w, int64_t t);
/* Canonical text, e.g. "Mon-Fri 02:00-05:00 UTC". */
void rk_window_format(const struct rk_window *w, char *buf, unsigned n);

#endif
