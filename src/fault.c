/*
 * Test-build crash points (see fault.h). The translation unit is empty in
 * release builds.
 */
#include "rekey/fault.h"

#ifdef RK_FAULT_INJECTION
#include <signal.h>
#include <stdlib.h>
#include <string.h>

void
rk_fault_point(const char *name)
{
	const char *want = getenv("REKEY_FAULT");

	if (want != NULL && strcmp(want, name) == 0)
		raise(SIGKILL);
}
#else
/* ISO C forbids an empty translation unit. */
typedef int rk_fault_unused;
#endif
