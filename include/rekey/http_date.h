/*
 * HTTP dates and Retry-After (RFC 9110): the value a server sends to say
 * how long to wait, read without libcurl so retry decisions can be tested
 * alone.
 */
#ifndef REKEY_HTTP_DATE_H
#define REKEY_HTTP_DATE_H

#include <stdint.h>
#include "rekey/error.h"

/* Retry-After: delta-seconds or an HTTP-date (RFC 9110), relative to now (Unix s). */
int rk_parse_retry_after(const char *value, int64_t now, double *seconds) RK_WARN_UNUSED;

/*
 * An HTTP-date (any of the three forms) as Unix seconds; now only places a
 * two-digit year. For a server's Date header (clock skew). RK_EINVAL.
 */
int rk_parse_http_date(const char *value, int64_t now, int64_t *out) RK_WARN_UNUSED;

#endif
