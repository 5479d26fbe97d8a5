/* Journal steps: codes and their words (see include/rekey/step.h). */
#include <string.h>

#include "rekey/step.h"

static const char *const names[RK_STEP_COUNT] = {
	[RK_STEP_PLANNED] = "planned",
	[RK_STEP_GENERATED] = "generated",
	[RK_STEP_STAGED] = "staged",
	[RK_STEP_VERIFIED] = "verified",
	[RK_STEP_SET] = "set",
	[RK_STEP_PROMOTED] = "promoted",
	[RK_STEP_RESTARTED] = "restarted",
	[RK_STEP_RESTART_FAILED] = "restart_failed",
	[RK_STEP_DONE] = "done",
	[RK_STEP_FAILED] = "failed",
	[RK_STEP_ROLLED_BACK] = "rolled_back",
};

const char *
rk_step_name(enum rk_step s)
{
	return s >= 0 && s < RK_STEP_COUNT ? names[s] : "unknown";
}

enum rk_step
rk_step_parse(const char *word)
{
	if (word == NULL)
		return RK_STEP_UNKNOWN;
	for (int i = 0; i < RK_STEP_COUNT; i++)
		if (strcmp(word, names[i]) == 0)
			return (enum rk_step)i;
	return RK_STEP_UNKNOWN;
}

int
rk_step_is_promoted(enum rk_step s)
{
	return s == RK_STEP_PROMOTED || s == RK_STEP_RESTARTED || s == RK_STEP_RESTART_FAILED ||
	       s == RK_STEP_DONE;
}

int
rk_step_is_staged(enum rk_step s)
{
	return s == RK_STEP_STAGED || s == RK_STEP_VERIFIED || s == RK_STEP_SET;
}

int
rk_step_is_final(enum rk_step s)
{
	return s == RK_STEP_DONE || s == RK_STEP_FAILED || s == RK_STEP_ROLLED_BACK;
}

static const char *const results[RK_RESULT_COUNT] = {
	[RK_RESULT_NONE] = "",
	[RK_RESULT_ROTATED] = "rotated",
	[RK_RESULT_RESTORED] = "restored",
	[RK_RESULT_FAILED] = "failed",
	[RK_RESULT_ROLLED_BACK] = "rolled_back",
	[RK_RESULT_INTERRUPTED] = "interrupted",
};

const char *
rk_result_name(enum rk_result r)
{
	return r >= 0 && r < RK_RESULT_COUNT ? results[r] : "unknown";
}

int
rk_result_changed(enum rk_result r)
{
	return r == RK_RESULT_ROTATED || r == RK_RESULT_RESTORED;
}

static const char *const dep_results[RK_DEP_RESULT_COUNT] = {
	[RK_DEP_RESTARTED] = "restarted",
	[RK_DEP_SKIPPED] = "skipped",
	[RK_DEP_NOT_RESTARTED] = "not_restarted",
	[RK_DEP_FAILED] = "failed",
	[RK_DEP_PENDING] = "pending",
};

const char *
rk_dep_result_name(enum rk_dep_result r)
{
	return r >= 0 && r < RK_DEP_RESULT_COUNT ? dep_results[r] : "unknown";
}
