/*
 * Parts of the kubernetes provider that its unit tests reach: the rollout
 * judge (what `kubectl rollout status` decides from one read of a workload)
 * and the dependent target parser. Nothing here sends a request.
 */
#ifndef REKEY_K8S_INT_H
#define REKEY_K8S_INT_H

#include <stddef.h>
#include <jansson.h>
#include "rekey/error.h"

enum rk_k8s_rollout { RK_K8S_ROLLOUT_WAIT, RK_K8S_ROLLOUT_DONE, RK_K8S_ROLLOUT_FAILED };

/*
 * kind "deployment", "statefulset" or "daemonset"; obj the workload as read.
 * why[0..n) says what the rollout waits for, or why it failed.
 */
enum rk_k8s_rollout rk_k8s_judge(const char *kind, const json_t *obj, char *why, size_t n);

/* "deployment/payments/api": a workload rekey can restart. */
struct rk_k8s_target {
	const char *kind;		/* "deployment" */
	const char *plural;		/* "deployments" */
	char ns[64], name[254];
	char path[400];			/* /apis/apps/v1/namespaces/NS/PLURAL/NAME */
};

/* RK_EINVAL naming what is wrong: an unsupported kind, a missing part, a bad name. */
int rk_k8s_parse_target(const char *s, struct rk_k8s_target *t, struct rk_error *err);

#endif
