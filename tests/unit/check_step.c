/* Journal steps (src/step.c): words and codes, and the groups the engine decides on. */
#include <string.h>

#include "rekey/step.h"
#include "unit.h"

START_TEST(test_step_words_round_trip_and_are_distinct)
{
	for (int i = 0; i < RK_STEP_COUNT; i++) {
		const char *w = rk_step_name((enum rk_step)i);
		ck_assert_str_ne(w, "unknown");
		ck_assert_int_eq(rk_step_parse(w), i);
		for (int k = 0; k < i; k++)
			ck_assert_str_ne(w, rk_step_name((enum rk_step)k));
	}
	/* The words are the journal's: the state DB of earlier versions holds them. */
	ck_assert_str_eq(rk_step_name(RK_STEP_RESTART_FAILED), "restart_failed");
	ck_assert_str_eq(rk_step_name(RK_STEP_ROLLED_BACK), "rolled_back");
}
END_TEST

START_TEST(test_step_unknown_words_and_codes)
{
	ck_assert_int_eq(rk_step_parse(NULL), RK_STEP_UNKNOWN);
	ck_assert_int_eq(rk_step_parse(""), RK_STEP_UNKNOWN);
	ck_assert_int_eq(rk_step_parse("Done"), RK_STEP_UNKNOWN);
	ck_assert_int_eq(rk_step_parse("done "), RK_STEP_UNKNOWN);
	ck_assert_str_eq(rk_step_name(RK_STEP_UNKNOWN), "unknown");
	ck_assert_str_eq(rk_step_name(RK_STEP_COUNT), "unknown");
}
END_TEST

START_TEST(test_step_groups)
{
	static const char *const promoted[] = { "promoted", "restarted", "restart_failed", "done" };
	static const char *const staged[] = { "staged", "verified", "set" };
	static const char *const final[] = { "done", "failed", "rolled_back" };
	int np = 0, ns = 0, nf = 0;

	for (size_t i = 0; i < 4; i++)
		ck_assert(rk_step_is_promoted(rk_step_parse(promoted[i])));
	for (size_t i = 0; i < 3; i++)
		ck_assert(rk_step_is_staged(rk_step_parse(staged[i])));
	for (size_t i = 0; i < 3; i++)
		ck_assert(rk_step_is_final(rk_step_parse(final[i])));
	for (int i = 0; i < RK_STEP_COUNT; i++) {
		np += rk_step_is_promoted((enum rk_step)i);
		ns += rk_step_is_staged((enum rk_step)i);
		nf += rk_step_is_final((enum rk_step)i);
		/* A live value is never "staged", and what failed was never promoted. */
		ck_assert(!(rk_step_is_promoted((enum rk_step)i) && rk_step_is_staged((enum rk_step)i)));
	}
	ck_assert_int_eq(np, 4);
	ck_assert_int_eq(ns, 3);
	ck_assert_int_eq(nf, 3);
	ck_assert(!rk_step_is_promoted(RK_STEP_FAILED) && !rk_step_is_promoted(RK_STEP_ROLLED_BACK));
	ck_assert(!rk_step_is_final(RK_STEP_UNKNOWN) && !rk_step_is_staged(RK_STEP_UNKNOWN));
}
END_TEST

/* Results are codes; their words (the JSON report's "result") are fixed and distinct. */
START_TEST(test_step_result_words_are_distinct_and_changed_means_a_new_value)
{
	static const char *const want[RK_RESULT_COUNT] = {
		"", "rotated", "restored", "failed", "rolled_back", "interrupted",
	};
	static const char *const dep_want[RK_DEP_RESULT_COUNT] = {
		"restarted", "skipped", "not_restarted", "failed", "pending",
	};

	for (int r = 0; r < RK_RESULT_COUNT; r++) {
		ck_assert_str_eq(rk_result_name((enum rk_result)r), want[r]);
		ck_assert_int_eq(rk_result_changed((enum rk_result)r),
				 r == RK_RESULT_ROTATED || r == RK_RESULT_RESTORED);
	}
	for (int r = 0; r < RK_DEP_RESULT_COUNT; r++)
		ck_assert_str_eq(rk_dep_result_name((enum rk_dep_result)r), dep_want[r]);
	ck_assert_str_eq(rk_result_name(RK_RESULT_COUNT), "unknown");
	ck_assert_str_eq(rk_dep_result_name(RK_DEP_RESULT_COUNT), "unknown");
}
END_TEST

Suite *
step_suite(void)
{
	Suite *s = suite_create("step");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_step_words_round_trip_and_are_distinct);
	tcase_add_test(tc, test_step_unknown_words_and_codes);
	tcase_add_test(tc, test_step_groups);
	tcase_add_test(tc, test_step_result_words_are_distinct_and_changed_means_a_new_value);
	suite_add_tcase(s, tc);
	return s;
}
