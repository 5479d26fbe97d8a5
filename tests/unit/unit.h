/*
 * Included by every unit test file: declares all suites (the list is
 * generated from the test sources) and small shared helpers.
 */
#ifndef REKEY_TESTS_UNIT_H
#define REKEY_TESTS_UNIT_H

#include <check.h>

#define X(name) Suite *name##_suite(void);
#include "suites.h"
#undef X

#endif
