/*
 * Rotation windows: when scheduled rotations may run.
 *
 * A policy's `window:` string is parsed into a struct rk_window; the scheduler
 * asks rk_window_contains() before rotating and rk_window_next_open() to know
 * how long to sleep. Time is Unix seconds; a window is a weekly pattern in a
 * fixed-offset local time (no DST: a named zone would make "02:00" ambiguous
 * or missing twice a year, and rotations should not depend on tzdata).
 *
 * The pattern repeats every week, so all arithmetic is done on t's position
 * inside its UTC week: numbers stay small and no input can overflow.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rekey/window.h"

#define DAY_SECS 86400
#define WEEK_SECS (7 * DAY_SECS)
#define ALL_DAYS 0x7f
#define MAX_OFFSET_MIN (14 * 60)	/* real zones span UTC-12:00 to UTC+14:00 */
#define MAX_INPUT 128

#define EXPECTED "expected \"<days> HH:MM-HH:MM <zone>\" like \"Mon-Fri 02:00-05:00 UTC\""

#define DAYS_FORMS "Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges like Mon-Fri or Fri-Mon, " \
	"lists like Sat,Sun, or daily"

static const char *const day_names[7] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };

static int64_t
floor_div(int64_t a, int64_t m)
{
	int64_t q = a / m;

	return (a % m != 0 && (a < 0) != (m < 0)) ? q - 1 : q;
}

static int64_t
floor_mod(int64_t a, int64_t m)
{
	int64_t r = a % m;

	return r < 0 ? r + m : r;
}

/* Monday = 0; day 0 of the Unix epoch (1970-01-01) was a Thursday. */
static int
weekday(int64_t day)
{
	return (int)floor_mod(day + 3, 7);
}

/* ---- parsing ------------------------------------------------------------------ */

struct tok {
	const char *p;
	size_t n;
};

static int
parse_day(const char *p, size_t n)
{
	if (n != 3)
		return -1;
	for (int d = 0; d < 7; d++)
		if (strncasecmp(p, day_names[d], 3) == 0)
			return d;
	return -1;
}

static int
parse_days(struct tok t, unsigned char *out, const char *s, struct rk_error *err)
{
	unsigned char days = 0;
	const char *p = t.p, *end = t.p + t.n;

	if ((t.n == 5 && strncasecmp(t.p, "daily", 5) == 0) || (t.n == 1 && *t.p == '*')) {
		*out = ALL_DAYS;
		return 0;
	}
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma ? comma : end;
		const char *dash = memchr(p, '-', (size_t)(item_end - p));
		int a, b;

		if (dash == NULL) {
			a = b = parse_day(p, (size_t)(item_end - p));
		} else {
			a = parse_day(p, (size_t)(dash - p));
			b = parse_day(dash + 1, (size_t)(item_end - dash - 1));
		}
		if (a < 0 || b < 0) {
			/* Name the exact culprit: "Fro" in Mon-Fro, or the item missing a day. */
			const char *bad = a < 0 ? p : dash + 1;
			const char *bad_end = a < 0 && dash ? dash : item_end;

			if (bad == bad_end)
				return rk_error_set(err, RK_EINVAL,
						    "window \"%.*s\": a day is missing in '%.*s' "
						    "(days are " DAYS_FORMS "); " EXPECTED,
						    MAX_INPUT, s, (int)t.n, t.p);
			return rk_error_set(err, RK_EINVAL,
					    "window \"%.*s\": unknown day '%.*s' (days are "
					    DAYS_FORMS "); " EXPECTED,
					    MAX_INPUT, s, (int)(bad_end - bad), bad);
		}
		/* A range may wrap past Sunday: Fri-Mon is Fri, Sat, Sun, Mon. */
		for (int d = a;; d = (d + 1) % 7) {
			days |= (unsigned char)(1u << d);
			if (d == b)
				break;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*out = days;
	return 0;
}

/* "HH:MM" into minutes; hours up to max_hour (24 only as "24:00"). */
static int
parse_hhmm(const char *p, int max_hour, int *out)
{
	int h, m;

	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' || p[2] != ':' ||
	    p[3] < '0' || p[3] > '9' || p[4] < '0' || p[4] > '9')
		return -1;
	h = (p[0] - '0') * 10 + (p[1] - '0');
	m = (p[3] - '0') * 10 + (p[4] - '0');
	if (m > 59 || h > max_hour || (h == 24 && m != 0))
		return -1;
	*out = h * 60 + m;
	return 0;
}

static int
parse_times(struct tok t, int *start, int *end, const char *s, struct rk_error *err)
{
	if (t.n != 11 || t.p[5] != '-' || parse_hhmm(t.p, 23, start) < 0 ||
	    parse_hhmm(t.p + 6, 24, end) < 0)
		return rk_error_set(err, RK_EINVAL,
				    "window \"%.*s\": bad times '%.*s' (24-hour HH:MM-HH:MM, "
				    "like 02:00-05:00 or 22:00-02:00 across midnight); " EXPECTED,
				    MAX_INPUT, s, (int)t.n, t.p);
	/* An end at 00:00 is the midnight that ends the day: 22:00-00:00 is 22:00-24:00. */
	if (*end == 0)
		*end = 1440;
	if (*end == *start)
		return rk_error_set(err, RK_EINVAL,
				    "window \"%.*s\": '%.*s' starts and ends at the same time "
				    "(for a whole day write 00:00-24:00); " EXPECTED,
				    MAX_INPUT, s, (int)t.n, t.p);
	return 0;
}

static int
parse_zone(struct tok t, int *offset, const char *s, struct rk_error *err)
{
	int v;

	if ((t.n == 3 && strncasecmp(t.p, "UTC", 3) == 0) ||
	    (t.n == 1 && (*t.p == 'Z' || *t.p == 'z'))) {
		*offset = 0;
		return 0;
	}
	if (t.n != 6 || (t.p[0] != '+' && t.p[0] != '-') || parse_hhmm(t.p + 1, 23, &v) < 0 ||
	    v > MAX_OFFSET_MIN)
		return rk_error_set(err, RK_EINVAL,
				    "window \"%.*s\": bad zone '%.*s' (UTC, Z, or a fixed offset "
				    "+HH:MM / -HH:MM up to 14:00, like +01:00); " EXPECTED,
				    MAX_INPUT, s, (int)t.n, t.p);
	*offset = t.p[0] == '-' ? -v : v;
	return 0;
}

int
rk_window_parse(struct rk_window *w, const char *s, struct rk_error *err)
{
	struct rk_window nw = { .set = 1 };
	struct tok toks[3];
	const char *p = s;
	int ntok = 0, r;

	if (strnlen(s, MAX_INPUT + 1) > MAX_INPUT)
		return rk_error_set(err, RK_EINVAL, "window is longer than %d characters; " EXPECTED,
				    MAX_INPUT);
	for (;;) {
		const char *q;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		for (q = p; *q != '\0' && *q != ' ' && *q != '\t'; q++)
			;
		if (ntok == 3)
			return rk_error_set(err, RK_EINVAL,
					    "window \"%s\": unexpected '%.*s' after the zone; "
					    EXPECTED, s, (int)(q - p), p);
		toks[ntok].p = p;
		toks[ntok].n = (size_t)(q - p);
		ntok++;
		p = q;
	}
	if (ntok < 3)
		return rk_error_set(err, RK_EINVAL, "window \"%s\": %s; " EXPECTED, s,
				    ntok == 0 ? "empty"
				    : ntok == 1 ? "missing the times and the zone"
						: "missing the zone (UTC, Z or +HH:MM)");
	if ((r = parse_days(toks[0], &nw.days, s, err)) < 0 ||
	    (r = parse_times(toks[1], &nw.start_min, &nw.end_min, s, err)) < 0 ||
	    (r = parse_zone(toks[2], &nw.offset_min, s, err)) < 0)
		return r;
	*w = nw;
	return 0;
}

/* ---- queries ------------------------------------------------------------------ */

static int
day_set(const struct rk_window *w, int64_t day)
{
	return (w->days >> weekday(day)) & 1;
}

/* Inside the window at second r of the UTC week (0 <= r < WEEK_SECS)? */
static int
contains_in_week(const struct rk_window *w, int64_t r)
{
	int64_t local = r + (int64_t)w->offset_min * 60;
	int64_t day = floor_div(local, DAY_SECS);
	int64_t sec = local - day * DAY_SECS;
	int64_t start = (int64_t)w->start_min * 60, end = (int64_t)w->end_min * 60;

	if (w->end_min > w->start_min)
		return day_set(w, day) && sec >= start && sec < end;
	/* Across midnight: the evening of an open day, or the morning after one. */
	return (day_set(w, day) && sec >= start) || (day_set(w, day - 1) && sec < end);
}

int
rk_window_contains(const struct rk_window *w, int64_t t)
{
	if (!w->set)
		return 1;
	return contains_in_week(w, floor_mod(t, WEEK_SECS));
}

int64_t
rk_window_next_open(const struct rk_window *w, int64_t t)
{
	int64_t r, local, day;

	if (!w->set || rk_window_contains(w, t))
		return t;
	r = floor_mod(t, WEEK_SECS);
	local = r + (int64_t)w->offset_min * 60;
	day = floor_div(local, DAY_SECS);
	/*
	 * Outside the window, the next open is the next start on an open day.
	 * Today's start may have passed; the same weekday a week later has not,
	 * so eight days always suffice.
	 */
	for (int k = 0; k <= 7; k++) {
		int64_t open = (day + k) * DAY_SECS + (int64_t)w->start_min * 60;
		int64_t delta = open - local;

		if (!day_set(w, day + k) || delta < 0)
			continue;
		return t > INT64_MAX - delta ? INT64_MAX : t + delta;
	}
	return INT64_MAX;	/* no open day (never from rk_window_parse): never opens */
}

static size_t
format_days(unsigned char days, char *buf, size_t n)
{
	size_t used = 0;
	int first = 0, emitted = 0;

	if ((days & ALL_DAYS) == ALL_DAYS)
		return (size_t)snprintf(buf, n, "daily");
	/* Start at Monday unless a run wraps past Sunday: then at that run's first day. */
	if ((days & 1) && (days & 0x40))
		for (first = 6; (days >> (first - 1)) & 1; first--)
			;
	for (int i = 0; i < 7;) {
		int d = (first + i) % 7, len = 0;

		if (!((days >> d) & 1)) {
			i++;
			continue;
		}
		while (i + len < 7 && ((days >> ((first + i + len) % 7)) & 1))
			len++;
		if (used < n)
			used += (size_t)snprintf(buf + used, n - used, "%s%s", emitted ? "," : "",
						 day_names[d]);
		/* Two days read better as a list (Sat,Sun), three or more as a range. */
		if (len == 2 && used < n)
			used += (size_t)snprintf(buf + used, n - used, ",%s",
						 day_names[(d + 1) % 7]);
		else if (len > 2 && used < n)
			used += (size_t)snprintf(buf + used, n - used, "-%s",
						 day_names[(d + len - 1) % 7]);
		emitted = 1;
		i += len;
	}
	return used;
}

void
rk_window_format(const struct rk_window *w, char *buf, unsigned n)
{
	size_t used;
	int off;

	if (n == 0)
		return;
	if (!w->set) {
		snprintf(buf, n, "always");
		return;
	}
	used = format_days(w->days, buf, n);
	if (used < n)
		used += (size_t)snprintf(buf + used, n - used, " %02d:%02d-%02d:%02d",
					 w->start_min / 60, w->start_min % 60, w->end_min / 60,
					 w->end_min % 60);
	if (used >= n)
		return;
	off = w->offset_min;
	if (off == 0)
		snprintf(buf + used, n - used, " UTC");
	else
		snprintf(buf + used, n - used, " %c%02d:%02d", off < 0 ? '-' : '+',
			 (off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
}
