/*
 * Durations, times and atomic files.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rekey/util.h"
#include "rekey/secret.h"
#include "unit.h"

START_TEST(test_duration_units_and_combinations)
{
	int64_t ms;

	ck_assert_int_eq(rk_parse_duration_ms("30d", &ms), 0);
	ck_assert_int_eq(ms, 30LL * 86400 * 1000);
	ck_assert_int_eq(rk_parse_duration_ms("12h", &ms), 0);
	ck_assert_int_eq(ms, 12LL * 3600 * 1000);
	ck_assert_int_eq(rk_parse_duration_ms("1w", &ms), 0);
	ck_assert_int_eq(ms, 7LL * 86400 * 1000);
	ck_assert_int_eq(rk_parse_duration_ms("200ms", &ms), 0);
	ck_assert_int_eq(ms, 200);
	ck_assert_int_eq(rk_parse_duration_ms("1h30m", &ms), 0);
	ck_assert_int_eq(ms, 90LL * 60 * 1000);
	ck_assert_int_eq(rk_parse_duration_ms("45", &ms), 0);
	ck_assert_int_eq(ms, 45000);
}
END_TEST

START_TEST(test_duration_rejects_garbage)
{
	static const char *const bad[] = { "", "d", "30", "-1d", "30x", "1.5h", "30 d",
					   "99999999999999999999d", "h30" };
	int64_t ms = 0;

	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		if (strcmp(bad[i], "30") == 0)
			continue;	/* bare seconds are valid */
		ck_assert_msg(rk_parse_duration_ms(bad[i], &ms) == RK_EINVAL, "accepted '%s'",
			      bad[i]);
	}
}
END_TEST

START_TEST(test_time_round_trip_and_invalid_dates)
{
	int64_t t;
	char buf[32];

	ck_assert_int_eq(rk_parse_time("2026-01-02T03:04:05Z", &t), 0);
	ck_assert_int_eq(t, 1767323045);
	rk_format_time(t, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-01-02T03:04:05Z");
	ck_assert_int_eq(rk_parse_time("2026-01-02", &t), 0);
	ck_assert_int_eq(t, 1767312000);
	ck_assert_int_eq(rk_parse_time("2026-02-30", &t), RK_EINVAL);
	ck_assert_int_eq(rk_parse_time("2026-13-01", &t), RK_EINVAL);
	ck_assert_int_eq(rk_parse_time("yesterday", &t), RK_EINVAL);
}
END_TEST

START_TEST(test_format_duration_two_units)
{
	char buf[32];

	rk_format_duration(30 * 86400 - 3600, buf, sizeof(buf));
	ck_assert_str_eq(buf, "29d23h");
	rk_format_duration(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "0s");
	rk_format_duration(-120, buf, sizeof(buf));
	ck_assert_str_eq(buf, "-2m");
}
END_TEST

START_TEST(test_read_file_enforces_limit)
{
	char path[] = "/tmp/rk-util-XXXXXX";
	int fd = mkstemp(path);
	char *data = NULL;
	size_t len;
	struct rk_error err = { 0 };

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "0123456789", 10), 10);
	close(fd);
	ck_assert_int_eq(rk_read_file(path, 10, &data, &len, &err), 0);
	ck_assert_int_eq(len, 10);
	free(data);
	data = NULL;
	ck_assert_int_eq(rk_read_file(path, 9, &data, &len, &err), RK_EINVAL);
	ck_assert_ptr_null(data);
	ck_assert_ptr_nonnull(strstr(err.msg, "limit"));
	unlink(path);
}
END_TEST

Suite *
util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_duration_units_and_combinations);
	tcase_add_test(tc, test_duration_rejects_garbage);
	tcase_add_test(tc, test_time_round_trip_and_invalid_dates);
	tcase_add_test(tc, test_format_duration_two_units);
	tcase_add_test(tc, test_read_file_enforces_limit);
	suite_add_tcase(s, tc);
	return s;
}
