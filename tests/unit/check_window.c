/*
 * Rotation windows: parsing, the canonical form, half-open membership across
 * midnight, day ranges that wrap the week and fixed offsets, and next_open
 * checked by hand and against a brute-force scan of a calendar reference.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "rekey/util.h"
#include "rekey/window.h"
#include "unit.h"

/* 2026-01-05 is a Monday; 2026-01-11 a Sunday. */
static int64_t
at(const char *rfc3339)
{
	int64_t t;

	ck_assert_msg(rk_parse_time(rfc3339, &t) == 0, "bad time %s", rfc3339);
	return t;
}

static struct rk_window
win(const char *s)
{
	struct rk_window w;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_window_parse(&w, s, &err) == 0, "'%s' rejected: %s", s, err.msg);
	return w;
}

START_TEST(test_parse_valid_forms_and_canonical_text)
{
	static const struct {
		const char *in;
		unsigned days;
		int start, end, offset;
		const char *canon;
	} cases[] = {
		{ "Mon-Fri 02:00-05:00 UTC", 0x1f, 120, 300, 0, "Mon-Fri 02:00-05:00 UTC" },
		{ "Sat,Sun 00:00-06:00 UTC", 0x60, 0, 360, 0, "Sat,Sun 00:00-06:00 UTC" },
		{ "Mon-Sun 22:00-02:00 +01:00", 0x7f, 1320, 120, 60, "daily 22:00-02:00 +01:00" },
		{ "daily 03:00-04:00 UTC", 0x7f, 180, 240, 0, "daily 03:00-04:00 UTC" },
		{ "* 03:00-04:00 Z", 0x7f, 180, 240, 0, "daily 03:00-04:00 UTC" },
		{ "DAILY 03:00-04:00 z", 0x7f, 180, 240, 0, "daily 03:00-04:00 UTC" },
		{ "fri-MON 22:00-00:00 -05:30", 0x71, 1320, 1440, -330, "Fri-Mon 22:00-24:00 -05:30" },
		{ "  Mon,Wed,Fri \t 09:30-10:00   utc  ", 0x15, 570, 600, 0,
		  "Mon,Wed,Fri 09:30-10:00 UTC" },
		{ "Tue 00:00-24:00 UTC", 0x02, 0, 1440, 0, "Tue 00:00-24:00 UTC" },
		{ "Tue 00:00-00:00 UTC", 0x02, 0, 1440, 0, "Tue 00:00-24:00 UTC" },
		{ "Mon-Wed,Sat 01:00-02:00 +14:00", 0x27, 60, 120, 840,
		  "Mon-Wed,Sat 01:00-02:00 +14:00" },
		{ "Wed,Fri-Mon 23:59-00:01 -12:00", 0x75, 1439, 1, -720,
		  "Fri-Mon,Wed 23:59-00:01 -12:00" },
		{ "Sun,Mon 01:00-02:00 UTC", 0x41, 60, 120, 0, "Sun,Mon 01:00-02:00 UTC" },
		{ "Sat-Sun,Tue 01:00-02:00 UTC", 0x62, 60, 120, 0, "Tue,Sat,Sun 01:00-02:00 UTC" },
		{ "Thu-Thu 01:00-02:00 UTC", 0x08, 60, 120, 0, "Thu 01:00-02:00 UTC" },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		struct rk_window w = win(cases[i].in), again;
		char buf[64];

		ck_assert_msg(w.set == 1, "%s", cases[i].in);
		ck_assert_msg(w.days == cases[i].days, "%s: days 0x%x", cases[i].in, w.days);
		ck_assert_int_eq(w.start_min, cases[i].start);
		ck_assert_int_eq(w.end_min, cases[i].end);
		ck_assert_int_eq(w.offset_min, cases[i].offset);
		rk_window_format(&w, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].canon);
		/* The canonical text means the same window. */
		again = win(buf);
		ck_assert_int_eq(memcmp(&w, &again, sizeof(w)), 0);
	}
}
END_TEST

START_TEST(test_parse_rejects_bad_forms_and_shows_the_expected_one)
{
	static const struct {
		const char *in, *word;
	} cases[] = {
		{ "", "empty" },
		{ "   ", "empty" },
		{ "Mon-Fri", "missing" },
		{ "Mon-Fri 02:00-05:00", "zone" },
		{ "Mon-Fro 02:00-05:00 UTC", "'Fro'" },
		{ "Monday 02:00-05:00 UTC", "'Monday'" },
		{ "Mon,,Fri 02:00-05:00 UTC", "day" },
		{ "Mon- 02:00-05:00 UTC", "'Mon-'" },
		{ "Mon-Tue-Wed 02:00-05:00 UTC", "day" },
		{ "Mon-Fri 2:00-05:00 UTC", "'2:00-05:00'" },
		{ "Mon-Fri 02:00-25:00 UTC", "times" },
		{ "Mon-Fri 24:00-05:00 UTC", "times" },
		{ "Mon-Fri 02:00-24:01 UTC", "times" },
		{ "Mon-Fri 02:60-05:00 UTC", "times" },
		{ "Mon-Fri 02:00~05:00 UTC", "times" },
		{ "Mon-Fri 02:00-05:00x UTC", "times" },
		{ "Mon 03:00-03:00 UTC", "same time" },
		{ "Mon-Fri 02:00-05:00 CET", "'CET'" },
		{ "Mon-Fri 02:00-05:00 +1:00", "zone" },
		{ "Mon-Fri 02:00-05:00 +0100", "zone" },
		{ "Mon-Fri 02:00-05:00 +15:00", "zone" },
		{ "Mon-Fri 02:00-05:00 UTC+01:00", "zone" },
		{ "Mon-Fri 02:00-05:00 UTC now", "'now'" },
		{ "Mon-Fri 02:00-05:00 UTC                                        "
		  "                                                                "
		  "                  ", "longer" },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		struct rk_window w, before;
		struct rk_error err = { 0 };

		memset(&w, 0x5a, sizeof(w));
		before = w;
		ck_assert_msg(rk_window_parse(&w, cases[i].in, &err) == RK_EINVAL, "'%s' accepted",
			      cases[i].in);
		ck_assert_int_eq(err.code, RK_EINVAL);
		ck_assert_msg(strstr(err.msg, cases[i].word) != NULL, "'%s': '%s' not in '%s'",
			      cases[i].in, cases[i].word, err.msg);
		ck_assert_msg(strstr(err.msg, "\"Mon-Fri 02:00-05:00 UTC\"") != NULL,
			      "'%s': no expected form in '%s'", cases[i].in, err.msg);
		ck_assert_msg(memcmp(&w, &before, sizeof(w)) == 0, "'%s' changed the window",
			      cases[i].in);
	}
}
END_TEST

START_TEST(test_contains_is_half_open)
{
	struct rk_window w = win("Mon-Fri 02:00-05:00 UTC");

	ck_assert(!rk_window_contains(&w, at("2026-01-05T01:59:59Z")));
	ck_assert(rk_window_contains(&w, at("2026-01-05T02:00:00Z")));
	ck_assert(rk_window_contains(&w, at("2026-01-05T04:59:59Z")));
	ck_assert(!rk_window_contains(&w, at("2026-01-05T05:00:00Z")));
	ck_assert(rk_window_contains(&w, at("2026-01-09T03:00:00Z")));	/* Friday */
	ck_assert(!rk_window_contains(&w, at("2026-01-10T03:00:00Z")));	/* Saturday */
	ck_assert(!rk_window_contains(&w, at("2026-01-11T03:00:00Z")));	/* Sunday */
	ck_assert(rk_window_contains(&w, at("2026-01-12T03:00:00Z")));	/* next Monday */
}
END_TEST

START_TEST(test_contains_across_midnight_belongs_to_the_opening_day)
{
	struct rk_window fri = win("Fri 22:00-02:00 UTC");
	struct rk_window sun = win("Sun 23:00-01:00 UTC");
	struct rk_window to_midnight = win("Fri 22:00-00:00 UTC");

	ck_assert(!rk_window_contains(&fri, at("2026-01-09T21:59:59Z")));
	ck_assert(rk_window_contains(&fri, at("2026-01-09T22:00:00Z")));
	ck_assert(rk_window_contains(&fri, at("2026-01-10T00:00:00Z")));	/* Saturday morning */
	ck_assert(rk_window_contains(&fri, at("2026-01-10T01:59:59Z")));
	ck_assert(!rk_window_contains(&fri, at("2026-01-10T02:00:00Z")));
	ck_assert(!rk_window_contains(&fri, at("2026-01-10T23:00:00Z")));	/* Saturday night */
	ck_assert(!rk_window_contains(&fri, at("2026-01-09T01:00:00Z")));	/* Thursday's night */
	/* Sunday night runs into Monday morning: the week wraps. */
	ck_assert(rk_window_contains(&sun, at("2026-01-11T23:30:00Z")));
	ck_assert(rk_window_contains(&sun, at("2026-01-12T00:30:00Z")));
	ck_assert(!rk_window_contains(&sun, at("2026-01-12T01:00:00Z")));
	ck_assert(!rk_window_contains(&sun, at("2026-01-05T23:30:00Z")));	/* Monday night */
	ck_assert(!rk_window_contains(&sun, at("2026-01-11T00:30:00Z")));	/* Saturday's night */
	/* Ending at 00:00 ends at midnight, not a day later. */
	ck_assert(rk_window_contains(&to_midnight, at("2026-01-09T23:59:59Z")));
	ck_assert(!rk_window_contains(&to_midnight, at("2026-01-10T00:00:00Z")));
	ck_assert(!rk_window_contains(&to_midnight, at("2026-01-10T12:00:00Z")));
}
END_TEST

START_TEST(test_contains_day_range_wrapping_the_week)
{
	struct rk_window w = win("Fri-Mon 10:00-11:00 UTC");
	static const struct {
		const char *t;
		int in;
	} cases[] = {
		{ "2026-01-09T10:30:00Z", 1 },	/* Fri */
		{ "2026-01-10T10:30:00Z", 1 },	/* Sat */
		{ "2026-01-11T10:30:00Z", 1 },	/* Sun */
		{ "2026-01-12T10:30:00Z", 1 },	/* Mon */
		{ "2026-01-13T10:30:00Z", 0 },	/* Tue */
		{ "2026-01-14T10:30:00Z", 0 },	/* Wed */
		{ "2026-01-15T10:30:00Z", 0 },	/* Thu */
		{ "2026-01-12T11:00:00Z", 0 },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++)
		ck_assert_msg(rk_window_contains(&w, at(cases[i].t)) == cases[i].in, "%s",
			      cases[i].t);
}
END_TEST

START_TEST(test_contains_with_offsets_moves_the_day)
{
	struct rk_window east = win("Mon 02:00-05:00 +02:00");	/* Mon 00:00-03:00Z */
	struct rk_window west = win("Mon 22:00-23:00 -05:00");	/* Tue 03:00-04:00Z */
	struct rk_window far_east = win("Mon 01:00-02:00 +05:00");	/* Sun 20:00-21:00Z */
	struct rk_window half = win("daily 00:00-00:30 +05:30");	/* 18:30-19:00Z */

	ck_assert(!rk_window_contains(&east, at("2026-01-04T23:59:59Z")));
	ck_assert(rk_window_contains(&east, at("2026-01-05T00:00:00Z")));
	ck_assert(rk_window_contains(&east, at("2026-01-05T02:59:59Z")));
	ck_assert(!rk_window_contains(&east, at("2026-01-05T03:00:00Z")));
	ck_assert(!rk_window_contains(&west, at("2026-01-05T22:30:00Z")));
	ck_assert(rk_window_contains(&west, at("2026-01-06T03:30:00Z")));
	ck_assert(rk_window_contains(&far_east, at("2026-01-11T20:30:00Z")));
	ck_assert(!rk_window_contains(&far_east, at("2026-01-12T01:30:00Z")));
	ck_assert(!rk_window_contains(&half, at("2026-01-07T18:29:59Z")));
	ck_assert(rk_window_contains(&half, at("2026-01-07T18:30:00Z")));
	ck_assert(!rk_window_contains(&half, at("2026-01-07T19:00:00Z")));
}
END_TEST

START_TEST(test_unset_window_is_always_open)
{
	struct rk_window w = { 0 };
	char buf[32];

	ck_assert(rk_window_contains(&w, at("2026-01-10T03:00:00Z")));
	ck_assert_int_eq(rk_window_next_open(&w, 12345), 12345);
	rk_window_format(&w, buf, sizeof(buf));
	ck_assert_str_eq(buf, "always");
}
END_TEST

START_TEST(test_next_open_by_hand)
{
	static const struct {
		const char *win, *t, *want;
	} cases[] = {
		/* inside: now */
		{ "Mon-Fri 02:00-05:00 UTC", "2026-01-05T03:00:00Z", "2026-01-05T03:00:00Z" },
		{ "Mon-Fri 02:00-05:00 UTC", "2026-01-05T02:00:00Z", "2026-01-05T02:00:00Z" },
		/* before, the same day, to the second */
		{ "Mon-Fri 02:00-05:00 UTC", "2026-01-05T01:00:00Z", "2026-01-05T02:00:00Z" },
		{ "Mon-Fri 02:00-05:00 UTC", "2026-01-05T01:59:59Z", "2026-01-05T02:00:00Z" },
		/* after: the next open day */
		{ "Mon-Fri 02:00-05:00 UTC", "2026-01-05T05:00:00Z", "2026-01-06T02:00:00Z" },
		{ "Mon-Fri 02:00-05:00 UTC", "2026-01-09T06:00:00Z", "2026-01-12T02:00:00Z" },
		{ "Mon-Fri 02:00-05:00 UTC", "2026-01-10T12:00:00Z", "2026-01-12T02:00:00Z" },
		/* across the week: one open day, just missed */
		{ "Mon 02:00-05:00 UTC", "2026-01-05T05:00:00Z", "2026-01-12T02:00:00Z" },
		{ "Mon 02:00-05:00 UTC", "2026-01-11T23:00:00Z", "2026-01-12T02:00:00Z" },
		{ "Sun 02:00-05:00 UTC", "2026-01-05T00:00:00Z", "2026-01-11T02:00:00Z" },
		/* across midnight: inside the tail, then the next evening */
		{ "Fri 22:00-02:00 UTC", "2026-01-10T01:00:00Z", "2026-01-10T01:00:00Z" },
		{ "Fri 22:00-02:00 UTC", "2026-01-10T02:00:00Z", "2026-01-16T22:00:00Z" },
		{ "Sun 23:00-01:00 UTC", "2026-01-12T00:59:59Z", "2026-01-12T00:59:59Z" },
		{ "Sun 23:00-01:00 UTC", "2026-01-12T01:00:00Z", "2026-01-18T23:00:00Z" },
		/* wrapping day ranges */
		{ "Fri-Mon 10:00-11:00 UTC", "2026-01-06T10:30:00Z", "2026-01-09T10:00:00Z" },
		{ "Fri-Mon 10:00-11:00 UTC", "2026-01-11T11:00:00Z", "2026-01-12T10:00:00Z" },
		/* offsets */
		{ "Mon 02:00-05:00 +02:00", "2026-01-11T23:00:00Z", "2026-01-12T00:00:00Z" },
		{ "Mon 02:00-05:00 +02:00", "2026-01-05T03:00:00Z", "2026-01-12T00:00:00Z" },
		{ "daily 01:00-02:00 -03:00", "2026-01-05T00:00:00Z", "2026-01-05T04:00:00Z" },
		{ "daily 01:00-02:00 -03:00", "2026-01-05T05:00:00Z", "2026-01-06T04:00:00Z" },
		{ "Mon 22:00-23:00 -05:00", "2026-01-05T12:00:00Z", "2026-01-06T03:00:00Z" },
		{ "Mon 01:00-02:00 +05:00", "2026-01-11T21:00:00Z", "2026-01-18T20:00:00Z" },
		/* Thursday 00:00Z starts a Unix week; a negative offset puts it on Wednesday. */
		{ "Wed 20:00-21:00 -05:00", "2026-01-08T00:00:00Z", "2026-01-08T01:00:00Z" },
		{ "Wed 20:00-21:00 -05:00", "2026-01-08T01:30:00Z", "2026-01-08T01:30:00Z" },
		{ "Wed 20:00-21:00 -05:00", "2026-01-08T02:00:00Z", "2026-01-15T01:00:00Z" },
		/* daily and "*" */
		{ "daily 03:00-04:00 UTC", "2026-01-07T05:00:00Z", "2026-01-08T03:00:00Z" },
		{ "* 03:00-04:00 UTC", "2026-01-07T02:59:00Z", "2026-01-07T03:00:00Z" },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		struct rk_window w = win(cases[i].win);
		int64_t got = rk_window_next_open(&w, at(cases[i].t)), want = at(cases[i].want);
		char buf[32];

		rk_format_time(got, buf, sizeof(buf));
		ck_assert_msg(got == want, "%s from %s: got %s, want %s", cases[i].win, cases[i].t,
			      buf, cases[i].want);
		ck_assert(rk_window_contains(&w, got));
	}
	/* Before 1970 (rk_parse_time does not go there): Sat 1969-12-27 12:00 -> Mon 29th 02:00. */
	{
		struct rk_window w = win("Mon-Fri 02:00-05:00 UTC");
		ck_assert_int_eq(rk_window_next_open(&w, -5 * 86400 + 12 * 3600),
				 -3 * 86400 + 2 * 3600);
	}
}
END_TEST

/* An independent membership test on the libc calendar (gmtime_r), not on modular arithmetic. */
static int
ref_contains(const struct rk_window *w, int64_t t)
{
	time_t local = (time_t)(t + (int64_t)w->offset_min * 60), prev = local - 86400;
	struct tm tm, tp;
	int mins, dow, pdow;

	gmtime_r(&local, &tm);
	gmtime_r(&prev, &tp);
	mins = tm.tm_hour * 60 + tm.tm_min;
	dow = (tm.tm_wday + 6) % 7;	/* Monday = 0 */
	pdow = (tp.tm_wday + 6) % 7;
	if (w->end_min > w->start_min)
		return ((w->days >> dow) & 1) && mins >= w->start_min && mins < w->end_min;
	return (((w->days >> dow) & 1) && mins >= w->start_min) ||
	       (((w->days >> pdow) & 1) && mins < w->end_min);
}

/* The first second >= t inside w, by scanning minute boundaries (offsets are whole minutes). */
static int64_t
brute_next_open(const struct rk_window *w, int64_t t)
{
	int64_t s;

	if (ref_contains(w, t))
		return t;
	s = t - (t % 60 + 60) % 60 + 60;
	for (int i = 0; i < 8 * 1440 + 2; i++, s += 60)
		if (ref_contains(w, s))
			return s;
	return INT64_MAX;
}

START_TEST(test_contains_and_next_open_match_a_brute_force_reference)
{
	static const char *const wins[] = {
		"Mon-Fri 02:00-05:00 UTC", "Sat,Sun 00:00-06:00 UTC",
		"Mon-Sun 22:00-02:00 +01:00", "Fri-Mon 23:30-00:15 -09:30",
		"Wed 00:00-24:00 +14:00", "Sun 23:59-00:01 -12:00", "Tue,Thu 12:00-11:59 +05:45",
		"daily 00:00-00:01 UTC", "Wed,Thu 20:00-21:00 -05:00",
	};
	int64_t lo = -20000000 /* 1969-05-15 */, hi = at("2040-01-01T00:00:00Z");

	for (size_t k = 0; k < RK_ARRAY_SIZE(wins); k++) {
		struct rk_window w = win(wins[k]);

		for (int n = 0; n < 300; n++) {
			/* Half the samples sit near a boundary, where off-by-ones live. */
			int64_t t = lo + (int64_t)(((uint64_t)randombytes_random() << 32 |
						    randombytes_random()) %
						   (uint64_t)(hi - lo));
			int64_t want;

			if (n % 2) {
				int64_t b = brute_next_open(&w, t);
				t = b + (int64_t)randombytes_uniform(5) - 2;
			}
			ck_assert_msg(rk_window_contains(&w, t) == ref_contains(&w, t),
				      "%s at %lld", wins[k], (long long)t);
			want = brute_next_open(&w, t);
			ck_assert_msg(rk_window_next_open(&w, t) == want, "%s from %lld: %lld != %lld",
				      wins[k], (long long)t, (long long)rk_window_next_open(&w, t),
				      (long long)want);
		}
	}
}
END_TEST

START_TEST(test_extreme_times_do_not_overflow)
{
	struct rk_window w = win("Mon 02:00-05:00 -12:00");
	int64_t t;

	/* Any answer must be inside the window and not before t; at the top it saturates. */
	t = rk_window_next_open(&w, INT64_MAX - 10);
	ck_assert(t == INT64_MAX || (t >= INT64_MAX - 10 && rk_window_contains(&w, t)));
	t = rk_window_next_open(&w, INT64_MIN);
	ck_assert(t >= INT64_MIN && rk_window_contains(&w, t));
	ck_assert_int_le(t - INT64_MIN, 8LL * 86400);
	(void)rk_window_contains(&w, INT64_MIN);
	(void)rk_window_contains(&w, INT64_MAX);
}
END_TEST

START_TEST(test_format_truncates_safely)
{
	struct rk_window w = win("Mon-Wed,Fri 02:00-05:00 +01:00");
	char buf[64];

	rk_window_format(&w, buf, sizeof(buf));
	ck_assert_str_eq(buf, "Mon-Wed,Fri 02:00-05:00 +01:00");
	memset(buf, 'x', sizeof(buf));
	rk_window_format(&w, buf, 8);
	ck_assert_str_eq(buf, "Mon-Wed");
	ck_assert_int_eq(buf[8], 'x');
	rk_window_format(&w, buf, 1);
	ck_assert_str_eq(buf, "");
	buf[0] = 'x';
	rk_window_format(&w, buf, 0);
	ck_assert_int_eq(buf[0], 'x');
}
END_TEST

Suite *
window_suite(void)
{
	Suite *s = suite_create("window");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);	/* the brute-force reference is slow under sanitizers */
	tcase_add_test(tc, test_parse_valid_forms_and_canonical_text);
	tcase_add_test(tc, test_parse_rejects_bad_forms_and_shows_the_expected_one);
	tcase_add_test(tc, test_contains_is_half_open);
	tcase_add_test(tc, test_contains_across_midnight_belongs_to_the_opening_day);
	tcase_add_test(tc, test_contains_day_range_wrapping_the_week);
	tcase_add_test(tc, test_contains_with_offsets_moves_the_day);
	tcase_add_test(tc, test_unset_window_is_always_open);
	tcase_add_test(tc, test_next_open_by_hand);
	tcase_add_test(tc, test_contains_and_next_open_match_a_brute_force_reference);
	tcase_add_test(tc, test_extreme_times_do_not_overflow);
	tcase_add_test(tc, test_format_truncates_safely);
	suite_add_tcase(s, tc);
	return s;
}
