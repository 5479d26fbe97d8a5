#!/bin/sh
# Restarts of each apps/v1 kind against tests/fakes/k8s_fake.py, waited for as
# `kubectl rollout status` judges: a StatefulSet and a DaemonSet restarted and
# awaited; a Deployment whose progress deadline passes fails before rekey's
# own timeout; an OnDelete StatefulSet and a paused Deployment are reported
# failed restarts (the rotation stands, exit 3); SIGTERM in the middle of a
# rollout wait leaves the run for --resume, which waits again without a
# second restart patch; and `restart.wait: false` does not wait at all.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "test_k8s_workloads: curl missing"; exit 1; }

start_k8s_fake
admin() { curl -sS --cacert "$T/k8s/ca.crt" -X "$1" "$K/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
# patches PATH: how many PATCH requests the fake got on that object path so far
patches() { admin GET requests | python3 -c "
import json,sys; d=json.load(sys.stdin)
print(sum(1 for r in d['requests'] if r['method']=='PATCH' and r['path']=='$1'))"; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

admin POST config '{"rollout_seconds": 0.3}' >/dev/null
cat >"$T/rekey.yaml" <<EOC
state_dir: $T/var
environment: test
policy_dir: $T/policy
providers:
  cluster: {type: kubernetes, kubeconfig: $T/k8s/kubeconfig, context: fake-token, rollout_poll: 50ms,
            retry: {max_attempts: 3, base_delay: 20ms, max_delay: 200ms}}
EOC
mkdir -p "$T/policy"
printf 'name: wait\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nrestart: {wait: true, timeout: 4s}\n' >"$T/policy/wait.yaml"
printf 'name: nowait\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nrestart: {wait: false}\n' >"$T/policy/nowait.yaml"

# Objects: a namespace of Secrets and one workload of each kind (and two odd ones).
kubectl_() { kubectl --kubeconfig "$T/k8s/kubeconfig" "$@"; }
rolled_out() { kubectl_ -n apps rollout status "$1" --timeout=1s >/dev/null 2>&1; }
# secret NAME: a Secret apps/NAME with data.v = "old" (seeded: no request of rekey's)
secret() { admin POST seed "{\"kind\": \"Secret\", \"metadata\": {\"name\": \"$1\", \"namespace\": \"apps\"}, \"data\": {\"v\": \"b2xk\"}}" | grep -q resourceVersion || echo "  (seeding $1 failed)"; }
for s in s-sts s-ds s-dl s-od s-pause s-stop s-nowait; do secret $s; done
cat >"$T/w.yaml" <<'EOW'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: apps}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: pg}]}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: apps}
spec:
  selector: {matchLabels: {app: agent}}
  template: {metadata: {labels: {app: agent}}, spec: {containers: [{name: a, image: a}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: late, namespace: apps}
spec:
  replicas: 1
  progressDeadlineSeconds: 1
  selector: {matchLabels: {app: late}}
  template: {metadata: {labels: {app: late}}, spec: {containers: [{name: l, image: l}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: manual, namespace: apps}
spec:
  replicas: 1
  serviceName: manual
  updateStrategy: {type: OnDelete}
  selector: {matchLabels: {app: manual}}
  template: {metadata: {labels: {app: manual}}, spec: {containers: [{name: m, image: m}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: paused, namespace: apps}
spec:
  replicas: 1
  paused: true
  selector: {matchLabels: {app: paused}}
  template: {metadata: {labels: {app: paused}}, spec: {containers: [{name: p, image: p}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: slow, namespace: apps}
spec:
  replicas: 2
  selector: {matchLabels: {app: slow}}
  template: {metadata: {labels: {app: slow}}, spec: {containers: [{name: s, image: s}]}}
EOW
kubectl_ apply -f "$T/w.yaml" >"$T/apply.out" 2>&1 || { echo "kubectl apply failed"; cat "$T/apply.out"; }
kubectl_ -n apps rollout status deployment/slow --timeout=20s >/dev/null 2>&1
cat >"$T/inv.yaml" <<'EOI'
secrets:
  - {name: sts, provider: cluster, locator: {namespace: apps, secret: s-sts, key: v}, policy: wait,
     dependents: [{kubernetes: cluster/statefulset/apps/db}]}
  - {name: ds, provider: cluster, locator: {namespace: apps, secret: s-ds, key: v}, policy: wait,
     dependents: [{kubernetes: cluster/daemonset/apps/agent}]}
  - {name: dl, provider: cluster, locator: {namespace: apps, secret: s-dl, key: v}, policy: wait,
     dependents: [{kubernetes: cluster/deployment/apps/late}]}
  - {name: od, provider: cluster, locator: {namespace: apps, secret: s-od, key: v}, policy: wait,
     dependents: [{kubernetes: cluster/statefulset/apps/manual}]}
  - {name: pause, provider: cluster, locator: {namespace: apps, secret: s-pause, key: v}, policy: wait,
     dependents: [{kubernetes: cluster/deployment/apps/paused}]}
  - {name: stop, provider: cluster, locator: {namespace: apps, secret: s-stop, key: v}, policy: wait,
     dependents: [{kubernetes: cluster/deployment/apps/slow}]}
  - {name: nowait, provider: cluster, locator: {namespace: apps, secret: s-nowait, key: v}, policy: nowait,
     dependents: [{kubernetes: cluster/deployment/apps/slow}]}
EOI
expect_rc "init" 0 rk init
expect_rc "apply the inventory" 0 rk apply -f "$T/inv.yaml"

STS=/apis/apps/v1/namespaces/apps/statefulsets/db
DS=/apis/apps/v1/namespaces/apps/daemonsets/agent
expect_rc "a StatefulSet and a DaemonSet restarted and waited for" 0 rk rotate sts ds --output json
check "  both reported restarted" [ "$(jq_ "sorted(x['result'] for x in d['dependents'])" <"$T/out")" = "['restarted', 'restarted']" ]
check "  the StatefulSet got one restart patch" [ "$(patches $STS)" = 1 ]
check "  the DaemonSet got one restart patch" [ "$(patches $DS)" = 1 ]
check "  the StatefulSet is rolled out when rekey returns (kubectl agrees at once)" \
	rolled_out statefulset/db
check "  the DaemonSet is rolled out when rekey returns" \
	rolled_out daemonset/agent
check "  the patch carries kubectl's restartedAt and the run" [ "$(kubectl_ -n apps get sts db -o json | jq_ "sorted(d['spec']['template']['metadata']['annotations'])")" = "['kubectl.kubernetes.io/restartedAt', 'rekey.io/restart']" ]

# A progress deadline that passes: failed as kubectl fails it, before rekey's own 4 s.
admin POST config '{"objects": {"deployments/apps/late": {"rollout_mode": "stuck"}}}' >/dev/null
t0=$(date +%s%N)
expect_rc "a Deployment past its progress deadline: partial" 3 rk rotate dl --output json
t1=$(date +%s%N)
check "  reported as its progress deadline" [ "$(jq_ "'progress deadline' in d['dependents'][0]['error'] and d['dependents'][0]['result']" <"$T/out")" = failed ]
check "  before rekey's own timeout" [ $(( (t1 - t0) / 1000000 )) -lt 3900 ]
check "  the rotation itself stands" [ "$(jq_ "d['secrets'][0]['result']" <"$T/out")" = rotated ]

expect_rc "an OnDelete StatefulSet: a failed restart" 3 rk rotate od --output json
check "  the reason says its pods do not restart" [ "$(jq_ "'OnDelete' in d['dependents'][0]['error']" <"$T/out")" = True ]
expect_rc "a paused Deployment: a failed restart" 3 rk rotate pause --output json
check "  kubectl's words: can't restart paused deployment" [ "$(jq_ "'paused deployment apps/paused' in d['dependents'][0]['error']" <"$T/out")" = True ]
check "  and no restart patch was sent to it" [ "$(patches /apis/apps/v1/namespaces/apps/deployments/paused)" = 0 ]

# SIGTERM while waiting for a rollout: interrupted; --resume waits again, no second patch.
SLOW=/apis/apps/v1/namespaces/apps/deployments/slow
admin POST config '{"objects": {"deployments/apps/slow": {"rollout_seconds": 3}}}' >/dev/null
"$REKEY_BIN" rotate stop --output json >"$T/stop.out" 2>"$T/stop.err" &
pid=$!
i=0
while [ "$(patches $SLOW)" = 0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.3
kill -TERM $pid
t0=$(date +%s%N)
wait $pid
rc=$?
t1=$(date +%s%N)
cat "$T/stop.out" "$T/stop.err" >>"$T/all.out"
check "SIGTERM during the rollout wait: exit 3" [ "$rc" = 3 ]
check "  within a second" [ $(( (t1 - t0) / 1000000 )) -lt 1000 ]
check "  the run is left interrupted with its --resume command" [ "$(jq_ "d['status'] + ' ' + d['retry']" <"$T/stop.out")" = "interrupted rekey rotate --resume $(jq_ "d['run_id']" <"$T/stop.out")" ]
run=$(jq_ "d['run_id']" <"$T/stop.out")
admin POST config '{"objects": {"deployments/apps/slow": {"rollout_seconds": 0.3}}}' >/dev/null
expect_rc "--resume finishes the run" 0 rk rotate --resume "$run" --output json
check "  the dependent is restarted (waited for, not patched again)" [ "$(jq_ "d['dependents'][0]['result']" <"$T/out")" = restarted ]
check "  one restart patch in all" [ "$(patches $SLOW)" = 1 ]

# restart.wait: false patches and returns at once.
admin POST config '{"objects": {"deployments/apps/slow": {"rollout_seconds": 5}}}' >/dev/null
t0=$(date +%s%N)
expect_rc "restart.wait: false" 0 rk rotate nowait
t1=$(date +%s%N)
check "  the workload was patched" [ "$(patches $SLOW)" = 2 ]
check "  without waiting for the 5 s rollout" [ $(( (t1 - t0) / 1000000 )) -lt 2500 ]

# restart.on_failure: rollback with two workloads reading the secret, one
# of them stuck: the secret goes back to its previous value through the
# policy's set hook (which gets that value), and both workloads restart
# again in the rollback run.
printf 'name: undo\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nset: {exec: [sh, -c, "sha256sum | cut -c1-64 >> %s/set.log"]}\nrestart: {wait: true, timeout: 1s, on_failure: rollback}\n' "$T" >"$T/policy/undo.yaml"
secret s-undo
cat >"$T/w2.yaml" <<'EOW'
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: apps}
spec:
  replicas: 1
  selector: {matchLabels: {app: bad}}
  template: {metadata: {labels: {app: bad}}, spec: {containers: [{name: b, image: b}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: good, namespace: apps}
spec:
  replicas: 1
  selector: {matchLabels: {app: good}}
  template: {metadata: {labels: {app: good}}, spec: {containers: [{name: g, image: g}]}}
EOW
kubectl_ apply -f "$T/w2.yaml" >/dev/null 2>&1
rolled_out_wait() { kubectl_ -n apps rollout status "$1" --timeout=20s >/dev/null 2>&1; }
rolled_out_wait deployment/bad
rolled_out_wait deployment/good
printf 'secrets:\n  - {name: undo, provider: cluster, locator: {namespace: apps, secret: s-undo, key: v}, policy: undo,\n     dependents: [{kubernetes: cluster/deployment/apps/bad}, {kubernetes: cluster/deployment/apps/good}]}\n' >"$T/undo.yaml"
expect_rc "apply a secret read by two workloads" 0 rk apply -f "$T/undo.yaml"
before=$(kubectl_ -n apps get secret s-undo -o jsonpath='{.data.v}' | base64 -d | sha256sum | cut -c1-64)
admin POST config '{"objects": {"deployments/apps/bad": {"rollout_mode": "crashloop"}}}' >/dev/null
: >"$T/set.log"
expect_rc "a crash-looping rollout under on_failure: rollback: partial" 3 rk rotate undo --output json
cp "$T/out" "$T/undo.json"
check "  the secret is back at its previous value" [ "$(kubectl_ -n apps get secret s-undo -o jsonpath='{.data.v}' | base64 -d | sha256sum | cut -c1-64)" = "$before" ]
check "  the set hook ran twice, the second time with the previous value" [ "$(wc -l <"$T/set.log" | tr -d ' ') $(tail -1 "$T/set.log")" = "2 $before" ]
check "  the stuck workload was restarted again" [ "$(patches /apis/apps/v1/namespaces/apps/deployments/bad)" = 2 ]
check "  and so was the other workload that reads the secret" [ "$(patches /apis/apps/v1/namespaces/apps/deployments/good)" = 2 ]
check "  the report has the rollback run: restored, both dependents" [ "$(jq_ "(d['rollback']['secrets'][0]['result'], sorted(x['dependent'].split('/')[-1] for x in d['rollback']['dependents']))" <"$T/undo.json")" = "('restored', ['bad', 'good'])" ]
check "  and the first run's failed restart with its deadline" [ "$(jq_ "[x['result'] for x in d['dependents'] if x['dependent'].endswith('/bad')][0]" <"$T/undo.json")" = failed ]

# The client-side rate limit (client-go's 5 QPS, burst 10, by default): 8
# rotations are 24 requests (GET, PATCH, GET), so at 5/s after a burst of 10
# they take at least 14 / 5 = 2.8 s; with the limit raised, far less.
for n in 1 2 3 4 5 6 7 8; do secret "rl-$n"; done
{
	echo "secrets:"
	for n in 1 2 3 4 5 6 7 8; do
		echo "  - {name: rl-$n, provider: cluster, locator: {namespace: apps, secret: rl-$n, key: v}, policy: nowait}"
	done
} >"$T/rl.yaml"
expect_rc "apply 8 more" 0 rk apply -f "$T/rl.yaml"
t0=$(date +%s%N)
expect_rc "8 rotations at the default rate limit" 0 rk rotate rl-1 rl-2 rl-3 rl-4 rl-5 rl-6 rl-7 rl-8
t1=$(date +%s%N)
check "  take at least 2.8 s (5 requests a second after a burst of 10)" [ $(( (t1 - t0) / 1000000 )) -ge 2800 ]
sed -i 's|rollout_poll: 50ms,|rollout_poll: 50ms, rate_limit: {rps: 1000, burst: 100},|' "$T/rekey.yaml"
t0=$(date +%s%N)
expect_rc "the same with rate_limit raised" 0 rk rotate rl-1 rl-2 rl-3 rl-4 rl-5 rl-6 rl-7 rl-8
t1=$(date +%s%N)
check "  takes well under that" [ $(( (t1 - t0) / 1000000 )) -lt 2000 ]

finish
