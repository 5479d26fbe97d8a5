/*
 * Retry-After and HTTP dates (src/http_date.c): delta-seconds, the three
 * HTTP-date forms, and what is refused.
 */
#include <check.h>
#include <stdint.h>

#include "rekey/http_date.h"
#include "rekey/util.h"
#include "unit.h"

/* ---- Retry-After ---------------------------------------------------------- */

#define T_1994 784111777LL	/* Sun, 06 Nov 1994 08:49:37 GMT */

START_TEST(test_retry_after_delta_seconds)
{
	double s = -1;

	ck_assert_int_eq(rk_parse_retry_after("0", 0, &s), 0);
	ck_assert(s == 0);
	ck_assert_int_eq(rk_parse_retry_after("3", 0, &s), 0);
	ck_assert(s == 3);
	ck_assert_int_eq(rk_parse_retry_after(" 120 ", 0, &s), 0);
	ck_assert(s == 120);
	/* RFC 9111 1.2.2: too large to represent means 2^31. */
	ck_assert_int_eq(rk_parse_retry_after("99999999999999999999999", 0, &s), 0);
	ck_assert(s == 2147483648.0);
}
END_TEST

START_TEST(test_retry_after_http_dates)
{
	double s = -1;

	ck_assert_int_eq(rk_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", T_1994 - 30, &s), 0);
	ck_assert(s == 30);
	/* The obsolete forms every recipient must still accept. */
	ck_assert_int_eq(rk_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", T_1994 - 30, &s), 0);
	ck_assert(s == 30);
	ck_assert_int_eq(rk_parse_retry_after("Sun Nov  6 08:49:37 1994", T_1994 - 30, &s), 0);
	ck_assert(s == 30);
	ck_assert_int_eq(rk_parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800 - 5, &s), 0);
	ck_assert(s == 5);
	/* A date in the past asks for no wait at all. */
	ck_assert_int_eq(rk_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", T_1994 + 100, &s), 0);
	ck_assert(s == 0);
	ck_assert_int_eq(rk_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", T_1994, &s), 0);
	ck_assert(s == 0);
}
END_TEST

START_TEST(test_retry_after_rejects_garbage_and_negatives)
{
	static const char *const bad[] = {
		"", "   ", "soon", "-1", "-0", "+5", "1.5", "5s", "0x10",
		"Sun, 06 Nov 1994 08:49:37 UTC", "sun, 06 Nov 1994 08:49:37 GMT",
		"Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 29 Feb 2023 08:49:37 GMT",
		"Sun, 06 Nov 1994 24:49:37 GMT", "Sun, 06 Nov 1994 08:60:37 GMT",
		"Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT x",
		"Sun, 6 Nov 1994 08:49:37 GMT", "Sun Nov 6 08:49:37 1994",
		"Sunday, 06 Nov 1994 08:49:37 GMT",
	};
	double s = 42;

	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++)
		ck_assert_msg(rk_parse_retry_after(bad[i], T_1994, &s) == RK_EINVAL,
			      "accepted '%s'", bad[i]);
	ck_assert(s == 42);
}
END_TEST


/* A server's Date header as an absolute time, for correcting a skewed clock. */
START_TEST(test_http_date_absolute)
{
	int64_t t = 0;

	ck_assert_int_eq(rk_parse_http_date("Wed, 02 Dec 2026 12:00:00 GMT", 0, &t), 0);
	ck_assert_int_eq(t, 1796212800);
	ck_assert_int_eq(rk_parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT\r\n", 0, &t), 0);
	ck_assert_int_eq(t, 784111777);
	ck_assert_int_eq(rk_parse_http_date("Sun Nov  6 08:49:37 1994", 0, &t), 0);
	ck_assert_int_eq(t, 784111777);
	ck_assert_int_eq(rk_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", 784111777, &t), 0);
	ck_assert_int_eq(t, 784111777);
	t = 5;
	ck_assert_int_eq(rk_parse_http_date("yesterday", 0, &t), RK_EINVAL);
	ck_assert_int_eq(rk_parse_http_date("Wed, 31 Feb 2026 12:00:00 GMT", 0, &t), RK_EINVAL);
	ck_assert_int_eq(rk_parse_http_date("", 0, &t), RK_EINVAL);
	ck_assert_int_eq(rk_parse_http_date(NULL, 0, &t), RK_EINVAL);
	ck_assert_int_eq(t, 5);
}
END_TEST

Suite *
http_date_suite(void)
{
	Suite *s = suite_create("http_date");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_retry_after_delta_seconds);
	tcase_add_test(tc, test_retry_after_http_dates);
	tcase_add_test(tc, test_retry_after_rejects_garbage_and_negatives);
	tcase_add_test(tc, test_http_date_absolute);
	suite_add_tcase(s, tc);
	return s;
}
