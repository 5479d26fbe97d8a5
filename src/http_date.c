/*
 * HTTP-date and Retry-After parsing (RFC 9110 5.6.7, 10.2.3): pure functions
 * of a header value and the current time, without libcurl, so a retry
 * decision can be tested on its own.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "rekey/error.h"
#include "rekey/http_date.h"

/* RFC 9111 1.2.2: a delta-seconds too large to represent is taken as 2^31. */
#define DELTA_SECONDS_MAX 2147483648.0

static const char *const wkday_short[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
static const char *const wkday_long[] = { "Monday", "Tuesday", "Wednesday", "Thursday",
					  "Friday", "Saturday", "Sunday" };
static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* Cursor over an HTTP-date; every matcher advances only on success. */
struct cur {
	const char *p, *end;
};

static int
cur_lit(struct cur *c, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return 0;
	c->p += n;
	return 1;
}

static int
cur_digits(struct cur *c, int n, int *out)
{
	int v = 0;

	if (c->end - c->p < n)
		return 0;
	for (int i = 0; i < n; i++) {
		if (c->p[i] < '0' || c->p[i] > '9')
			return 0;
		v = v * 10 + (c->p[i] - '0');
	}
	c->p += n;
	*out = v;
	return 1;
}

/* Index of the name at the cursor (case-sensitive, RFC 9110 5.6.7), or -1. */
static int
cur_name(struct cur *c, const char *const *names, int count)
{
	for (int i = 0; i < count; i++)
		if (cur_lit(c, names[i]))
			return i;
	return -1;
}

static int
cur_time(struct cur *c, int *hh, int *mm, int *ss)
{
	return cur_digits(c, 2, hh) && cur_lit(c, ":") && cur_digits(c, 2, mm) &&
	       cur_lit(c, ":") && cur_digits(c, 2, ss);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dim[m - 1];
}

/*
 * The three HTTP-date forms a recipient must accept (RFC 9110 5.6.7):
 *   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
 *   rfc850-date  Sunday, 06-Nov-94 08:49:37 GMT
 *   asctime      Sun Nov  6 08:49:37 1994
 */
static int
parse_http_date(const char *s, size_t n, int64_t now, int64_t *out)
{
	struct cur c = { s, s + n };
	int y = 0, mon = 0, d = 0, hh = 0, mm = 0, ss = 0;

	if (cur_name(&c, wkday_long, 7) >= 0) {
		int yy;
		if (!(cur_lit(&c, ", ") && cur_digits(&c, 2, &d) && cur_lit(&c, "-") &&
		      (mon = cur_name(&c, month_names, 12)) >= 0 && cur_lit(&c, "-") &&
		      cur_digits(&c, 2, &yy) && cur_lit(&c, " ") &&
		      cur_time(&c, &hh, &mm, &ss) && cur_lit(&c, " GMT")))
			return RK_EINVAL;
		/* A two-digit year more than 50 years ahead is in the past century. */
		time_t tnow = (time_t)now;
		struct tm tm;
		int now_year = gmtime_r(&tnow, &tm) ? tm.tm_year + 1900 : 1970;
		y = now_year - now_year % 100 + yy;
		if (y > now_year + 50)
			y -= 100;
	} else if (cur_name(&c, wkday_short, 7) >= 0) {
		if (cur_lit(&c, ", ")) {
			if (!(cur_digits(&c, 2, &d) && cur_lit(&c, " ") &&
			      (mon = cur_name(&c, month_names, 12)) >= 0 && cur_lit(&c, " ") &&
			      cur_digits(&c, 4, &y) && cur_lit(&c, " ") &&
			      cur_time(&c, &hh, &mm, &ss) && cur_lit(&c, " GMT")))
				return RK_EINVAL;
		} else {
			if (!(cur_lit(&c, " ") && (mon = cur_name(&c, month_names, 12)) >= 0 &&
			      cur_lit(&c, " ")))
				return RK_EINVAL;
			/* The day is two digits or a space and one digit. */
			if (cur_lit(&c, " ") ? !cur_digits(&c, 1, &d) : !cur_digits(&c, 2, &d))
				return RK_EINVAL;
			if (!(cur_lit(&c, " ") && cur_time(&c, &hh, &mm, &ss) && cur_lit(&c, " ") &&
			      cur_digits(&c, 4, &y)))
				return RK_EINVAL;
		}
	} else {
		return RK_EINVAL;
	}
	if (c.p != c.end || d < 1 || d > days_in_month(y, mon + 1) || hh > 23 || mm > 59 ||
	    ss > 60)
		return RK_EINVAL;
	*out = days_from_civil(y, mon + 1, d) * 86400 + hh * 3600 + mm * 60 + ss;
	return 0;
}

/* A header value without the blanks and line end around it: *s, and its length. */
static size_t
trimmed(const char **s)
{
	const char *e;

	while (**s == ' ' || **s == '\t')
		(*s)++;
	e = *s + strlen(*s);
	while (e > *s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	return (size_t)(e - *s);
}

int
rk_parse_http_date(const char *value, int64_t now, int64_t *out)
{
	const char *s = value;
	size_t n;

	if (value == NULL)
		return RK_EINVAL;
	n = trimmed(&s);
	return parse_http_date(s, n, now, out);
}

int
rk_parse_retry_after(const char *value, int64_t now, double *seconds)
{
	const char *s = value;
	size_t n;
	int64_t when;

	if (value == NULL)
		return RK_EINVAL;
	n = trimmed(&s);
	if (n == 0)
		return RK_EINVAL;
	if (strspn(s, "0123456789") >= n) {
		double v = 0;
		for (size_t i = 0; i < n && v <= DELTA_SECONDS_MAX; i++)
			v = v * 10 + (s[i] - '0');
		*seconds = v > DELTA_SECONDS_MAX ? DELTA_SECONDS_MAX : v;
		return 0;
	}
	if (parse_http_date(s, n, now, &when) < 0)
		return RK_EINVAL;
	*seconds = when > now ? (double)(when - now) : 0.0;
	return 0;
}
