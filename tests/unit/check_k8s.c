/*
 * The kubernetes provider's pure parts: the rollout judge against the rules
 * of `kubectl rollout status` (contract 3.4) for each kind, with counters
 * omitted as the API server omits zeros, and the dependent target parser.
 */
#include <check.h>
#include <string.h>
#include <jansson.h>

#include "../../providers/k8s_int.h"
#include "unit.h"

static enum rk_k8s_rollout
judge_s(const char *kind, const char *json, char *why)
{
	json_error_t je;
	json_t *o = json_loads(json, 0, &je);
	enum rk_k8s_rollout r;

	ck_assert_msg(o != NULL, "bad test JSON: %s", je.text);
	why[0] = '\0';
	r = rk_k8s_judge(kind, o, why, 300);
	json_decref(o);
	return r;
}

START_TEST(deployment_rules)
{
	char why[300];

	/* The controller has not seen the new template yet. */
	ck_assert_int_eq(judge_s("deployment", "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":2},"
				 "\"status\":{\"observedGeneration\":2,\"replicas\":2,\"updatedReplicas\":2,"
				 "\"availableReplicas\":2}}", why), RK_K8S_ROLLOUT_WAIT);
	ck_assert_ptr_nonnull(strstr(why, "observed"));
	/* Zero counters are omitted: absent updatedReplicas is 0. */
	ck_assert_int_eq(judge_s("deployment", "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":2},"
				 "\"status\":{\"observedGeneration\":3,\"replicas\":2}}", why),
			 RK_K8S_ROLLOUT_WAIT);
	ck_assert_str_eq(why, "0 out of 2 new replicas have been updated");
	ck_assert_int_eq(judge_s("deployment", "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":2},"
				 "\"status\":{\"observedGeneration\":3,\"replicas\":3,\"updatedReplicas\":2,"
				 "\"availableReplicas\":2}}", why), RK_K8S_ROLLOUT_WAIT);
	ck_assert_str_eq(why, "1 old replicas are pending termination");
	ck_assert_int_eq(judge_s("deployment", "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":2},"
				 "\"status\":{\"observedGeneration\":3,\"replicas\":2,\"updatedReplicas\":2,"
				 "\"availableReplicas\":1}}", why), RK_K8S_ROLLOUT_WAIT);
	ck_assert_str_eq(why, "1 of 2 updated replicas are available");
	ck_assert_int_eq(judge_s("deployment", "{\"metadata\":{\"generation\":3},\"spec\":{\"replicas\":2},"
				 "\"status\":{\"observedGeneration\":3,\"replicas\":2,\"updatedReplicas\":2,"
				 "\"availableReplicas\":2}}", why), RK_K8S_ROLLOUT_DONE);
	/* spec.replicas absent: the API server's default of 1. */
	ck_assert_int_eq(judge_s("deployment", "{\"metadata\":{\"generation\":1},\"spec\":{},"
				 "\"status\":{\"observedGeneration\":1}}", why), RK_K8S_ROLLOUT_WAIT);
	ck_assert_int_eq(judge_s("deployment", "{\"metadata\":{\"generation\":1},\"spec\":{},"
				 "\"status\":{\"observedGeneration\":1,\"replicas\":1,\"updatedReplicas\":1,"
				 "\"availableReplicas\":1}}", why), RK_K8S_ROLLOUT_DONE);
	/* The progress deadline fails it at once, even with counters that look done. */
	ck_assert_int_eq(judge_s("deployment", "{\"metadata\":{\"generation\":4},\"spec\":{\"replicas\":1},"
				 "\"status\":{\"observedGeneration\":4,\"replicas\":2,\"updatedReplicas\":1,"
				 "\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"},"
				 "{\"type\":\"Progressing\",\"status\":\"False\",\"reason\":"
				 "\"ProgressDeadlineExceeded\"}]}}", why), RK_K8S_ROLLOUT_FAILED);
	ck_assert_ptr_nonnull(strstr(why, "progress deadline"));
	/* ...but only when observed: an old generation's condition does not count. */
	ck_assert_int_eq(judge_s("deployment", "{\"metadata\":{\"generation\":5},\"spec\":{\"replicas\":1},"
				 "\"status\":{\"observedGeneration\":4,\"conditions\":[{\"type\":"
				 "\"Progressing\",\"reason\":\"ProgressDeadlineExceeded\"}]}}", why),
			 RK_K8S_ROLLOUT_WAIT);
}
END_TEST

START_TEST(statefulset_rules)
{
	char why[300];

	ck_assert_int_eq(judge_s("statefulset", "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":2,"
				 "\"updateStrategy\":{\"type\":\"OnDelete\"}},\"status\":{}}", why),
			 RK_K8S_ROLLOUT_FAILED);
	ck_assert_ptr_nonnull(strstr(why, "OnDelete"));
	/* observedGeneration 0 (absent) is "not observed". */
	ck_assert_int_eq(judge_s("statefulset", "{\"metadata\":{\"generation\":1},\"spec\":{\"replicas\":1},"
				 "\"status\":{\"replicas\":1,\"readyReplicas\":1,\"updatedReplicas\":1}}",
				 why), RK_K8S_ROLLOUT_WAIT);
	ck_assert_int_eq(judge_s("statefulset", "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":3},"
				 "\"status\":{\"observedGeneration\":2,\"replicas\":3,\"readyReplicas\":2,"
				 "\"updatedReplicas\":3}}", why), RK_K8S_ROLLOUT_WAIT);
	ck_assert_str_eq(why, "2 of 3 pods are ready");
	/* Stricter than kubectl: a new revision that is not current yet is not done. */
	ck_assert_int_eq(judge_s("statefulset", "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":3,"
				 "\"updateStrategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":"
				 "{\"partition\":0}}},\"status\":{\"observedGeneration\":2,\"replicas\":3,"
				 "\"readyReplicas\":3,\"updatedReplicas\":3,\"currentRevision\":\"w-1\","
				 "\"updateRevision\":\"w-2\"}}", why), RK_K8S_ROLLOUT_WAIT);
	ck_assert_int_eq(judge_s("statefulset", "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":3},"
				 "\"status\":{\"observedGeneration\":2,\"replicas\":3,\"readyReplicas\":3,"
				 "\"updatedReplicas\":2,\"currentRevision\":\"w-2\",\"updateRevision\":"
				 "\"w-2\"}}", why), RK_K8S_ROLLOUT_WAIT);
	/* A partition leaves the pods below it on the old revision: done when the rest are updated. */
	ck_assert_int_eq(judge_s("statefulset", "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":3,"
				 "\"updateStrategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":"
				 "{\"partition\":2}}},\"status\":{\"observedGeneration\":2,\"replicas\":3,"
				 "\"readyReplicas\":3,\"updatedReplicas\":1,\"currentRevision\":\"w-1\","
				 "\"updateRevision\":\"w-2\"}}", why), RK_K8S_ROLLOUT_DONE);
	ck_assert_int_eq(judge_s("statefulset", "{\"metadata\":{\"generation\":2},\"spec\":{\"replicas\":3},"
				 "\"status\":{\"observedGeneration\":2,\"replicas\":3,\"readyReplicas\":3,"
				 "\"updatedReplicas\":3,\"currentRevision\":\"w-2\",\"updateRevision\":"
				 "\"w-2\"}}", why), RK_K8S_ROLLOUT_DONE);
}
END_TEST

START_TEST(daemonset_rules)
{
	char why[300];

	ck_assert_int_eq(judge_s("daemonset", "{\"metadata\":{\"generation\":2},\"spec\":{},\"status\":"
				 "{\"observedGeneration\":1,\"desiredNumberScheduled\":2}}", why),
			 RK_K8S_ROLLOUT_WAIT);
	ck_assert_int_eq(judge_s("daemonset", "{\"metadata\":{\"generation\":2},\"spec\":{},\"status\":"
				 "{\"observedGeneration\":2,\"desiredNumberScheduled\":2,"
				 "\"updatedNumberScheduled\":1,\"numberAvailable\":2}}", why),
			 RK_K8S_ROLLOUT_WAIT);
	ck_assert_str_eq(why, "1 out of 2 new pods have been updated");
	ck_assert_int_eq(judge_s("daemonset", "{\"metadata\":{\"generation\":2},\"spec\":{},\"status\":"
				 "{\"observedGeneration\":2,\"desiredNumberScheduled\":2,"
				 "\"updatedNumberScheduled\":2,\"numberAvailable\":1}}", why),
			 RK_K8S_ROLLOUT_WAIT);
	ck_assert_int_eq(judge_s("daemonset", "{\"metadata\":{\"generation\":2},\"spec\":{},\"status\":"
				 "{\"observedGeneration\":2,\"desiredNumberScheduled\":2,"
				 "\"updatedNumberScheduled\":2,\"numberAvailable\":2}}", why),
			 RK_K8S_ROLLOUT_DONE);
	ck_assert_int_eq(judge_s("daemonset", "{\"metadata\":{\"generation\":2},\"spec\":{\"updateStrategy\":"
				 "{\"type\":\"OnDelete\"}},\"status\":{\"observedGeneration\":2}}", why),
			 RK_K8S_ROLLOUT_FAILED);
}
END_TEST

START_TEST(targets)
{
	struct rk_k8s_target t;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_k8s_parse_target("deployment/payments/api", &t, &err), 0);
	ck_assert_str_eq(t.path, "/apis/apps/v1/namespaces/payments/deployments/api");
	ck_assert_int_eq(rk_k8s_parse_target("statefulset/db/pg-0.x", &t, &err), 0);
	ck_assert_str_eq(t.path, "/apis/apps/v1/namespaces/db/statefulsets/pg-0.x");
	ck_assert_int_eq(rk_k8s_parse_target("daemonset/kube-system/agent", &t, &err), 0);
	ck_assert_str_eq(t.plural, "daemonsets");
	ck_assert_int_eq(rk_k8s_parse_target("cronjob/payments/api", &t, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "unsupported kind 'cronjob'"));
	rk_error_clear(&err);
	ck_assert_int_eq(rk_k8s_parse_target("Deployment/payments/api", &t, &err), RK_EINVAL);
	rk_error_clear(&err);
	ck_assert_int_eq(rk_k8s_parse_target("deployment/payments", &t, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "KIND/NAMESPACE/NAME"));
	rk_error_clear(&err);
	ck_assert_int_eq(rk_k8s_parse_target("deployment/payments/api/x", &t, &err), RK_EINVAL);
	rk_error_clear(&err);
	ck_assert_int_eq(rk_k8s_parse_target("deployment/Pay_ments/api", &t, &err), RK_EINVAL);
	rk_error_clear(&err);
	ck_assert_int_eq(rk_k8s_parse_target("deployment//api", &t, &err), RK_EINVAL);
	rk_error_clear(&err);
	/* A namespace is a DNS label: no dots, at most 63. */
	ck_assert_int_eq(rk_k8s_parse_target("deployment/a.b/api", &t, &err), RK_EINVAL);
	rk_error_clear(&err);
}
END_TEST

Suite *
k8s_suite(void)
{
	Suite *s = suite_create("k8s");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, deployment_rules);
	tcase_add_test(tc, statefulset_rules);
	tcase_add_test(tc, daemonset_rules);
	tcase_add_test(tc, targets);
	suite_add_tcase(s, tc);
	return s;
}
