/*
 * Prometheus text exposition format (0.0.4) for `rekey serve`'s /metrics:
 * a growing buffer of families (# HELP, # TYPE) and samples with escaped
 * label values, and the standard process_* metrics of this process.
 */
#ifndef REKEY_PROM_H
#define REKEY_PROM_H

#include <stddef.h>
#include <stdint.h>

struct rk_prom;

struct rk_prom *rk_prom_new(void);	/* NULL when out of memory */
/* Starts a family: type "counter", "gauge" or "histogram". */
void rk_prom_family(struct rk_prom *p, const char *name, const char *type, const char *help);
/* One sample; labels are name, value pairs ending with NULL (none: just NULL). */
void rk_prom_sample(struct rk_prom *p, const char *name, double v, ...);
/*
 * A histogram's samples (_bucket{le}, _sum, _count) with at most one label
 * (lname NULL: none); counts[0..n] per bucket, not cumulative, the last +Inf.
 */
void rk_prom_histogram(struct rk_prom *p, const char *name, const char *lname, const char *lvalue,
		       const double *bounds, const uint64_t *counts, size_t n, double sum);
/* process_cpu_seconds_total, _resident_memory_bytes, ... from /proc/self. */
void rk_prom_process(struct rk_prom *p);
/* The text (malloc'd, the caller's) and frees p; NULL when anything ran out of memory. */
char *rk_prom_finish(struct rk_prom *p, size_t *len);

#endif
