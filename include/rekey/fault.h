/*
 * Crash points for the kill -9 tests. Compiled only into the test build
 * (-DRK_FAULT_INJECTION, build/fault/rekey); in release builds RK_FAULT()
 * is nothing at all. REKEY_FAULT=<point> makes the process SIGKILL itself
 * when it reaches that point.
 */
#ifndef REKEY_FAULT_H
#define REKEY_FAULT_H

#ifdef RK_FAULT_INJECTION
void rk_fault_point(const char *name);
#define RK_FAULT(name) rk_fault_point(name)
#else
#define RK_FAULT(name) ((void)0)
#endif

#endif
