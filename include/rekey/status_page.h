/*
 * The status page of `rekey serve` (GET /): server-rendered HTML, no
 * script, from the same JSON as GET /v1/status. Never holds a value.
 */
#ifndef REKEY_STATUS_PAGE_H
#define REKEY_STATUS_PAGE_H

#include <jansson.h>

/* The page (malloc'd, the caller's), or NULL when out of memory. */
char *rk_status_page(const json_t *status);

#endif
