#!/bin/sh
# The kubernetes provider against tests/fakes/k8s_fake.py over TLS on
# loopback, objects made and read with the real kubectl where natural:
# rotation of one key of a Secret by merge PATCH under resourceVersion (other
# keys, labels and annotations kept, rekey.io/rotated-at and rekey.io/run
# set, read back), a Secret created when missing, 409s (another key changed,
# our key changed, a bare 409, endless conflicts), rollback sequences checked
# byte for byte, status, dependents (Deployment, StatefulSet, DaemonSet
# restarted once per run after their last secret, rollouts waited for and
# capped by `rollouts`), stuck and crash-looping rollouts (keep and rollback),
# a missing workload, --no-restart, crashes at every fault point finished by
# --resume (no second write, no second restart), each way to connect (token,
# client certificate, in-cluster with a token file that rotates mid-run,
# insecure-skip-tls-verify), bad kubeconfigs, bad data, 403, 429, 503,
# doctor, and no value in rekey's output, its state DB or the API requests.
. "$(dirname "$0")/lib.sh"
: "${REKEY_FAULT_BIN:?}" "${RK_FP:?}"
command -v curl >/dev/null || { echo "test_k8s: curl missing"; exit 1; }
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
[ -x "$KUBECTL" ] || { echo "test_k8s: kubectl missing ($KUBECTL)"; exit 1; }

KD="$T/k8s"
python3 "$SRC/tests/fakes/k8s_fake.py" --port 0 --port-file "$T/kport" --cert-dir "$KD" 2>"$T/fake.log" &
FAKE=$!
# KEEP_T=1 keeps the directory, with the fake's request log in requests.json, for debugging.
trap '[ -n "${KEEP_T:-}" ] && admin GET requests?values=1 >"$T/requests.json"; kill $FAKE 2>/dev/null; wait $FAKE 2>/dev/null
	[ -n "${KEEP_T:-}" ] && echo "kept $T" || rm -rf "$T"' EXIT
i=0
while { [ ! -s "$T/kport" ] || [ ! -s "$KD/kubeconfig" ]; } && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$T/kport" ] && [ -s "$KD/kubeconfig" ] || { echo "test_k8s: the fake did not start"; cat "$T/fake.log"; exit 1; }
PORT=$(cat "$T/kport")
A="https://127.0.0.1:$PORT"
KC="$KD/kubeconfig"

admin() { curl -sS --cacert "$KD/ca.crt" -X "$1" "$A/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
kc() { "$KUBECTL" --kubeconfig "$KC" "$@"; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }
last_seq() { admin GET requests | jq_ "max([r['seq'] for r in d['requests']] or [0])"; }
# val NS SECRET KEY: the bytes of one key of a Secret (kubectl, base64 -d); every
# value read is also kept (base64, one a line) for the leak check at the end.
val() {
	b=$(kc -n "$1" get secret "$2" -o "jsonpath={.data.$3}" 2>/dev/null)
	[ -n "$b" ] && echo "$b" >>"$T/seen.b64"
	printf %s "$b" | base64 -d 2>/dev/null
}
# meta NS SECRET JSONPATH: a field of a Secret, e.g. '{.metadata.resourceVersion}'
meta() { kc -n "$1" get secret "$2" -o "jsonpath=$3" 2>/dev/null; }
# obj RES NS NAME EXPR: EXPR over the fake's object (o), e.g. "o['status']"
obj() { admin GET state | python3 -c "
import json,sys
d=json.load(sys.stdin)
kind={'secrets':'Secret','deployments':'Deployment','statefulsets':'StatefulSet','daemonsets':'DaemonSet'}['$1']
o=([x for x in d['objects'] if x['kind']==kind and x['metadata']['namespace']=='$2' and x['metadata']['name']=='$3'] or [None])[0]
print($4)" 2>/dev/null; }
# nreq SINCE METHOD-REGEX PATH-REGEX [PY-COND over r]: how many of rekey's logged requests
# (not kubectl's) match
nreq() { admin GET "requests?since=$1" | python3 -c "
import json,sys,re
d=json.load(sys.stdin)
print(len([r for r in d['requests'] if not r['headers'].get('User-Agent','').startswith('kubectl') and re.fullmatch('$2', r['method']) and re.search(r'$3', r['path']) and (${4:-True})]))" 2>/dev/null; }
# nwrite SINCE NS SECRET: successful writes of a Secret (PATCH/PUT on it, POST naming it),
# a write that landed but was answered with an error included
nwrite() { admin GET "requests?since=$1" | python3 -c "
import json,sys
d=json.load(sys.stdin)
p='/api/v1/namespaces/$2/secrets'
def ok(r): return (r.get('applied_status') or r['status'] or 999) < 300
print(len([r for r in d['requests'] if ok(r) and (
    (r['method'] in ('PATCH','PUT') and r['path']==p+'/$3') or
    (r['method']=='POST' and r['path']==p and ((r['body'] or {}).get('metadata') or {}).get('name')=='$3'))]))" 2>/dev/null; }
wpath() { echo "/apis/apps/v1/namespaces/$2/$1/$3"; }
fp() { "$RK_FP" "$T/var"; }
# fpok VALUE NAME [CONFIG STATE-DIR]: VALUE's fingerprint is the one rekey records as current
fpok() {
	a=$(printf %s "$1" | "$RK_FP" "${4:-$T/var}" 2>/dev/null)
	b=$("$REKEY_BIN" ${3:+-c "$3"} status "$2" --output json 2>/dev/null | jq_ "d['current_fp']")
	[ -n "$a" ] && [ "$a" = "$b" ]
}
same() { [ -s "$1" ] && cmp -s "$1" "$2"; }	# same FILE FILE: the same bytes, not nothing
samerv() { [ -n "$2" ] && [ "$(meta payments "$1" '{.metadata.resourceVersion}')" = "$2" ]; }	# samerv SECRET RV
untouched() { [ "$(nreq "$1" '.*' "/secrets/$2\$")" = 0 ] && samerv "$2" "$3"; }	# untouched SEQ SECRET RV: no request since
fpokf() { # fpokf FILE NAME: the same for a value in a file (any bytes)
	a=$("$RK_FP" "$T/var" <"$1" 2>/dev/null)
	[ -n "$a" ] && [ "$a" = "$(st_ "$2" current_fp)" ]
}
st_() { rk status "$1" --output json | jq_ "d['$2']"; }
# rep EXPR: EXPR over the JSON report in $T/out (d)
rep() { jq_ "$1" <"$T/out"; }
b64() { printf %s "$1" | base64 | tr -d '\n'; }
rfc3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$'
# sec NS NAME KEY=VALUE...: a Secret object for the seed API
sec() {
	ns=$1; n=$2; shift 2
	printf '{"kind":"Secret","metadata":{"name":"%s","namespace":"%s"},"data":{' "$n" "$ns"
	sep=""
	for kv in "$@"; do printf '%s"%s":"%s"' "$sep" "${kv%%=*}" "$(b64 "${kv#*=}")"; sep=,; done
	printf '}}'
}
# wl KIND NS NAME: a workload object for the seed API (settled at once)
wl() { printf '{"kind":"%s","metadata":{"name":"%s","namespace":"%s"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"%s"}},"template":{"metadata":{"labels":{"app":"%s"}},"spec":{"containers":[{"name":"app","image":"nginx"}]}}}}' "$1" "$3" "$2" "$3" "$3"; }
# seed OBJECT...: create or replace objects (each one word of JSON, no spaces)
seed() { python3 -c "import json,sys; print(json.dumps({'objects': [json.loads(a) for a in sys.argv[1:]]}))" "$@" |
	curl -sS --cacert "$KD/ca.crt" -X POST "$A/__fake/seed" -H 'Content-Type: application/json' -d @- >/dev/null; }
# A copy of the fake's kubeconfig with sed expressions applied.
kubeconfig_with() { out=$1; shift; sed "$@" "$KC" >"$out"; }
rollout_done() { # rollout_done RES NS NAME: as kubectl rollout status judges it (3.4)
	obj "$1" "$2" "$3" "(lambda s,sp,m: s.get('observedGeneration',0)>=m.get('generation',0) and (
 s.get('updatedReplicas',0)==sp.get('replicas',1)==s.get('replicas',0)==s.get('availableReplicas',0) if '$1'=='deployments' else
 s.get('updatedReplicas',0)==sp.get('replicas',1) and s.get('readyReplicas',0)==sp.get('replicas',1) and s.get('currentRevision')==s.get('updateRevision') if '$1'=='statefulsets' else
 s.get('updatedNumberScheduled',0)==s.get('desiredNumberScheduled',-1) and s.get('numberAvailable',0)==s.get('desiredNumberScheduled',-1)))(o.get('status',{}),o['spec'],o['metadata'])" | grep -qx True
}
# The restart PATCHes of a workload since SEQ, as "content-type|body" lines
restarts() { admin GET "requests?since=$1" | python3 -c "
import json,sys
d=json.load(sys.stdin)
for r in d['requests']:
    if r['method']=='PATCH' and r['path']=='$2': print('%s|%s' % ((r['content_type'] or '').split(';')[0].strip(), json.dumps(r['body'], sort_keys=True)))" 2>/dev/null; }

admin POST config '{"rollout_seconds": 0.3}' >/dev/null
# rate_limit above the default (5/s, burst 10) keeps the test short: doctor alone asks ~100 reviews.
conn='timeout: {connect: 1s, total: 3s}, retry: {max_attempts: 4, base_delay: 20ms, max_delay: 300ms}, rate_limit: {rps: 200, burst: 50}'
kubeconfig_with "$T/kc-ro" 's/token: rekey-token/token: ro-token/'
cat >"$T/rekey.yaml" <<EOC
state_dir: $T/var
environment: test
policy_dir: $T/policy
providers:
  cluster: {type: kubernetes, kubeconfig: $KC, context: fake-token, rollouts: 2, rollout_poll: 100ms, $conn}
  certp: {type: kubernetes, kubeconfig: $KC, context: fake-cert, rollout_poll: 100ms, $conn}
EOC
mkdir -p "$T/policy"
# on_failure (keep, the default, or rollback) is in policies of their own, so that
# a rekey without it fails those checks only.
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nrestart: {wait: true, timeout: 3s}\n' >"$T/policy/quick.yaml"
printf 'name: fast\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nrestart: {wait: true, timeout: 1s}\n' >"$T/policy/fast.yaml"
mkdir -p "$T/policy-onf"
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nrestart: {wait: true, timeout: 3s, on_failure: keep}\n' >"$T/policy-onf/quick.yaml"
printf 'name: undo\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nrestart: {wait: true, timeout: 1s, on_failure: rollback}\n' >"$T/policy-onf/undo.yaml"

# A provider of its own in a config (and state) of its own:
# mini NAME PROVIDER-FIELDS INVENTORY-LINE [POLICY-DIR]; the exit code of its apply
mini() {
	cat >"$T/$1.yaml" <<EOC
state_dir: $T/$1.var
environment: test
policy_dir: ${4:-$T/policy}
providers:
  p: {type: kubernetes, $2}
EOC
	printf 'secrets:\n  - %s\n' "$3" >"$T/$1.inv"
	rk -c "$T/$1.yaml" init >/dev/null 2>&1
	rk -c "$T/$1.yaml" apply -f "$T/$1.inv" >"$T/mini.out" 2>&1
	rc=$?
	cat "$T/mini.out" >>"$T/all.out"
	return $rc
}

d() { echo "[{kubernetes: cluster/$1}]"; }
cat >"$T/inv.yaml" <<EOI
secrets:
  - {name: pay/db, provider: cluster, locator: {namespace: payments, secret: db, key: password}, policy: quick, dependents: $(d deployment/payments/api)}
  - {name: m/a, provider: cluster, locator: {namespace: payments, secret: m-a, key: k}, policy: quick, dependents: $(d deployment/payments/multi)}
  - {name: m/b, provider: cluster, locator: {namespace: payments, secret: m-b, key: k}, policy: quick, dependents: $(d deployment/payments/multi)}
  - {name: m/c, provider: cluster, locator: {namespace: payments, secret: m-c, key: k}, policy: quick, dependents: $(d deployment/payments/multi)}
  - {name: kinds/db, provider: cluster, locator: {namespace: payments, secret: kinds, key: password}, policy: quick, dependents: [{kubernetes: cluster/statefulset/payments/st}, {kubernetes: cluster/daemonset/payments/ds}]}
  - {name: cap/1, provider: cluster, locator: {namespace: cap, secret: s1, key: k}, policy: quick, dependents: $(d deployment/cap/d1)}
  - {name: cap/2, provider: cluster, locator: {namespace: cap, secret: s2, key: k}, policy: quick, dependents: $(d deployment/cap/d2)}
  - {name: cap/3, provider: cluster, locator: {namespace: cap, secret: s3, key: k}, policy: quick, dependents: $(d deployment/cap/d3)}
  - {name: cap/4, provider: cluster, locator: {namespace: cap, secret: s4, key: k}, policy: quick, dependents: $(d deployment/cap/d4)}
  - {name: cap/5, provider: cluster, locator: {namespace: cap, secret: s5, key: k}, policy: quick, dependents: $(d deployment/cap/d5)}
  - {name: dflt/db, provider: cluster, locator: {secret: dflt, key: password}, policy: quick}
  - {name: new/db, provider: cluster, locator: {namespace: payments, secret: brand-new, key: password}, policy: quick}
  - {name: cf/other, provider: cluster, locator: {namespace: payments, secret: cf1, key: password}, policy: quick}
  - {name: cf/bare, provider: cluster, locator: {namespace: payments, secret: cf2, key: password}, policy: quick}
  - {name: cf/ours, provider: cluster, locator: {namespace: payments, secret: cf3, key: password}, policy: quick}
  - {name: cf/endless, provider: cluster, locator: {namespace: payments, secret: cf4, key: password}, policy: quick}
  - {name: rb/db, provider: cluster, locator: {namespace: payments, secret: rbs, key: password}, policy: quick}
  - {name: stuck/db, provider: cluster, locator: {namespace: payments, secret: stuck, key: password}, policy: fast, dependents: $(d deployment/payments/stuck)}
  - {name: crash/db, provider: cluster, locator: {namespace: payments, secret: crashy, key: password}, policy: fast, dependents: $(d deployment/payments/crashy)}
  - {name: miss/db, provider: cluster, locator: {namespace: payments, secret: miss, key: password}, policy: quick, dependents: $(d deployment/payments/nope)}
  - {name: b64/db, provider: cluster, locator: {namespace: payments, secret: b64, key: password}, policy: quick}
  - {name: h/429, provider: cluster, locator: {namespace: payments, secret: h429, key: password}, policy: quick}
  - {name: h/apf, provider: cluster, locator: {namespace: payments, secret: happf, key: password}, policy: quick}
  - {name: h/503, provider: cluster, locator: {namespace: payments, secret: h503, key: password}, policy: quick}
  - {name: h/lost, provider: cluster, locator: {namespace: payments, secret: hlost, key: password}, policy: quick}
  - {name: cert/db, provider: certp, locator: {namespace: payments, secret: certdb, key: password}, policy: quick}
EOI
PTS="planned generated stage-call staged verified promote-call promoted restart-call restarted"
for pt in $PTS; do
	echo "  - {name: kp/$pt, provider: cluster, locator: {namespace: kp, secret: $pt, key: password}, policy: quick, dependents: $(d deployment/kp/$pt)}" >>"$T/inv.yaml"
done

# Objects: the main ones with kubectl, the rest seeded in one call.
cat >"$T/api.yaml" <<'EOY'
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: payments}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}, annotations: {team: payments}}
    spec: {containers: [{name: app, image: nginx}]}
EOY
kc create -f "$T/api.yaml" >/dev/null
kc -n payments create secret generic db --from-literal=password=initial-pay-db-0001 --from-literal=user=app >/dev/null
kc -n payments label secret db team=payments >/dev/null
kc -n payments annotate secret db owner=alice >/dev/null
s=""
for n in m-a m-b m-c; do s="$s $(sec payments $n k=initial-$n-value)"; done
for i in 1 2 3 4 5; do s="$s $(sec cap s$i k=initial-cap-$i-value) $(wl Deployment cap d$i)"; done
for pt in $PTS; do s="$s $(sec kp $pt password=initial-kp-$pt) $(wl Deployment kp $pt)"; done
for n in cf1 cf2 cf3 cf4 stuck crashy undo miss h429 happf h503 hlost certdb; do
	s="$s $(sec payments $n password=initial-$n-value other=x)"
done
seed $s $(sec default dflt password=initial-dflt-value) $(sec payments kinds password=initial-kinds-value) \
	$(wl Deployment payments multi) $(wl StatefulSet payments st) $(wl DaemonSet payments ds) \
	$(wl Deployment payments stuck) $(wl Deployment payments crashy) $(wl Deployment payments undo)
check "kubectl sees the seeded objects" sh -c "'$KUBECTL' --kubeconfig '$KC' -n payments get deploy,sts,ds 2>&1 | grep -q statefulset.apps/st"

rk init >/dev/null
expect_rc "apply an inventory with kubernetes secrets" 0 rk apply -f "$T/inv.yaml"

# ---- the inventory: workload kinds, the default namespace ----
printf 'secrets:\n  - {name: ok/one, provider: cluster, locator: {namespace: payments, secret: okone, key: k}, policy: quick}\n  - {name: cj/db, provider: cluster, locator: {namespace: payments, secret: cj, key: k}, policy: quick,\n     dependents: [{kubernetes: cluster/cronjob/payments/nightly}]}\n' >"$T/cj.yaml"
expect_rc "a cronjob dependent is refused" 2 rk apply -f "$T/cj.yaml"
check "  naming file:line" grep -q "$T/cj.yaml:[34]" "$T/err"
check "  and the kind" grep -q cronjob "$T/err"
expect_rc "  nothing of that file was applied" 2 rk status ok/one

# ---- rotation: one key changed by a merge PATCH under resourceVersion ----
rv0=$(meta payments db '{.metadata.resourceVersion}')
seq0=$(last_seq)
expect_rc "rotate pay/db" 0 rk --output json rotate pay/db
rollout_done deployments payments api && done_api=yes || done_api=no	# at once, before it could finish on its own
run=$(rep "d['run_id']")
new=$(val payments db password)
check "the password is a new 24-character value" [ "$new" != initial-pay-db-0001 -a ${#new} = 24 ]
check "  the other key of data is kept" [ "$(val payments db user)" = app ]
check "  the label is kept" [ "$(meta payments db '{.metadata.labels.team}')" = payments ]
check "  the other annotation is kept" [ "$(meta payments db '{.metadata.annotations.owner}')" = alice ]
ra=$(meta payments db '{.metadata.annotations.rekey\.io/rotated-at}')
check "  rekey.io/rotated-at is RFC 3339 UTC ($ra)" sh -c "echo '$ra' | grep -Eq '$rfc3339'"
check "  and recent" python3 -c "
import datetime,sys; t=datetime.datetime.fromisoformat('$ra'.replace('Z','+00:00'))
sys.exit(abs((datetime.datetime.now(datetime.timezone.utc)-t).total_seconds())>120)"
check "  rekey.io/run is the run id ($run)" [ -n "$run" -a "$(meta payments db '{.metadata.annotations.rekey\.io/run}')" = "$run" ]
check "  written by one merge PATCH" [ "$(nreq "$seq0" PATCH '/secrets/db$' "(r['content_type'] or '').startswith('application/merge-patch+json')")" = 1 ]
check "  carrying the resourceVersion it read ($rv0)" [ "$(nreq "$seq0" PATCH '/secrets/db$' "(r['body'] or {}).get('metadata',{}).get('resourceVersion')=='$rv0'")" = 1 ]
check "  no PUT" [ "$(nreq "$seq0" PUT '/secrets/')" = 0 ]
check "  read back after the write" [ "$(admin GET "requests?since=$seq0" | jq_ "(lambda rs: any(r['method']=='GET' and r['path'].endswith('/secrets/db') for r in rs[[i for i,r in enumerate(rs) if r['method']=='PATCH' and r['path'].endswith('/secrets/db')][0]+1:]))(d['requests'])")" = True ]
check "status: current_version is the Secret's resourceVersion" [ -n "$(st_ pay/db current_version)" -a "$(st_ pay/db current_version)" = "$(meta payments db '{.metadata.resourceVersion}')" ]
check "status: current_fp is the value's fingerprint" fpok "$new" pay/db
api=$(wpath deployments payments api)
check "the deployment was restarted once" [ "$(nreq "$seq0" PATCH "$api\$")" = 1 ]
rs=$(restarts "$seq0" "$api")
check "  with a strategic merge patch" [ "${rs%%|*}" = application/strategic-merge-patch+json ]
check "  of exactly restartedAt and rekey.io/restart" python3 -c "
import json,re,sys; b=json.loads(sys.argv[1].split('|',1)[1]); a=b['spec']['template']['metadata']['annotations']
assert b=={'spec':{'template':{'metadata':{'annotations':a}}}} and sorted(a)==['kubectl.kubernetes.io/restartedAt','rekey.io/restart'], b
assert re.match(r'$rfc3339', a['kubectl.kubernetes.io/restartedAt']) and a['rekey.io/restart']=='$run', a" "$rs"
check "  after the secret was written" [ "$(admin GET "requests?since=$seq0" | jq_ "(lambda rs: min(r['seq'] for r in rs if r['path']=='$api' and r['method']=='PATCH') > max(r['seq'] for r in rs if r['path'].endswith('/secrets/db') and r['method']=='PATCH'))(d['requests'])")" = True ]
check "  its template keeps its own annotation" [ "$(obj deployments payments api "o['spec']['template']['metadata']['annotations'].get('team')")" = payments ]
check "  rekey waited for the rollout (complete when rekey exited)" [ $done_api = yes ]
check "  polling it with GET" [ "$(nreq "$seq0" GET "$api\$")" -ge 2 ]
check "  the report says restarted" [ "$(rep "[x['result'] for x in d['dependents']]")" = "['restarted']" ]
check "kubectl agrees the rollout is done" sh -c "'$KUBECTL' --kubeconfig '$KC' -n payments rollout status deploy/api --timeout=2s >/dev/null 2>&1"

expect_rc "rekey get refuses a kubernetes secret" 2 rk get pay/db
check "  printing no value" [ ! -s "$T/out" ]
check "  and saying why" grep -q "only local" "$T/err"

seq0=$(last_seq)
expect_rc "--no-restart" 0 rk --output json rotate --no-restart pay/db
check "  restarts nothing" [ "$(nreq "$seq0" PATCH '/apis/apps/')" = 0 ]
check "  reported as not restarted" [ "$(rep "[x['result'] for x in d['dependents']]")" = "['not_restarted']" ]
check "  the secret still rotated" [ "$(val payments db password)" != "$new" ]

# ---- three secrets, one deployment: one restart after the last of them ----
seq0=$(last_seq)
expect_rc "rotate three secrets of one deployment in one run" 0 rk rotate m/a m/b m/c
mp=$(wpath deployments payments multi)
check "  the deployment is PATCHed exactly once" [ "$(nreq "$seq0" PATCH "$mp\$")" = 1 ]
check "  after the last of the three secrets" [ "$(admin GET "requests?since=$seq0" | jq_ "(lambda rs: min(r['seq'] for r in rs if r['path']=='$mp' and r['method']=='PATCH') > max(r['seq'] for r in rs if '/secrets/m-' in r['path'] and r['method']=='PATCH'))(d['requests'])")" = True ]
check "  all three rotated" [ "$(for n in m-a m-b m-c; do val payments $n k | grep -c '^initial-'; done | sort -u)" = 0 ]

# ---- StatefulSet and DaemonSet ----
seq0=$(last_seq)
expect_rc "a secret with a statefulset and a daemonset" 0 rk --output json rotate kinds/db
{ rollout_done statefulsets payments st && echo statefulsets; rollout_done daemonsets payments ds && echo daemonsets; } >"$T/kinds.done"
for w in statefulsets/st daemonsets/ds; do
	p=$(wpath ${w%/*} payments ${w#*/})
	check "  ${w%/*} restarted once" [ "$(nreq "$seq0" PATCH "$p\$")" = 1 ]
	check "  ${w%/*} template names the run" [ "$(obj ${w%/*} payments ${w#*/} "o['spec']['template']['metadata'].get('annotations',{}).get('rekey.io/restart')")" = "$(rep "d['run_id']")" ]
	check "  ${w%/*} rolled out when rekey exited" grep -qx ${w%/*} "$T/kinds.done"
done
check "  both reported restarted" [ "$(rep "sorted(x['result'] for x in d['dependents'])")" = "['restarted', 'restarted']" ]

# ---- rollouts in flight never exceed rollouts: 2 ----
admin POST config '{"objects": {"deployments/cap/d1": {"rollout_seconds": 0.6}, "deployments/cap/d2": {"rollout_seconds": 0.6},
  "deployments/cap/d3": {"rollout_seconds": 0.6}, "deployments/cap/d4": {"rollout_seconds": 0.6}, "deployments/cap/d5": {"rollout_seconds": 0.6}}}' >/dev/null
seq0=$(last_seq)
expect_rc "five secrets, five deployments, rollouts: 2" 0 rk rotate cap/1 cap/2 cap/3 cap/4 cap/5
for i in 1 2 3 4 5; do rollout_done deployments cap d$i && echo d$i; done >"$T/cap.done"
# In flight: from a deployment's restart PATCH to rekey's last GET of it.
admin GET "requests?since=$seq0" | python3 -c "
import json,sys
rs=json.load(sys.stdin)['requests']; iv=[]
for i in range(1,6):
    p='/apis/apps/v1/namespaces/cap/deployments/d%d' % i
    pt=[r['time'] for r in rs if r['path']==p and r['method']=='PATCH']
    gt=[r['time'] for r in rs if r['path']==p and r['method']=='GET']
    if pt: iv.append((pt[0], max(gt+[pt[0]])))
print(len(iv), max(sum(1 for a,b in iv if a<=t<=b) for t,_ in iv) if iv else 0)" >"$T/overlap"
read -r nwl peak <"$T/overlap"
check "  all five restarted" [ "$nwl" = 5 ]
check "  at most 2 rollouts in flight at once (peak $peak)" [ "$peak" -le 2 ]
check "  and 2 at once were used (peak $peak)" [ "$peak" = 2 ]
for i in 1 2 3 4 5; do
	check "  cap/d$i rolled out when rekey exited" grep -qx d$i "$T/cap.done"
done

# ---- the context's namespace when the locator has none ----
expect_rc "a locator without namespace" 0 rk rotate dflt/db
check "  rotated in the context's namespace (default)" [ "$(val default dflt password | wc -c)" = 24 ]

# ---- a Secret that does not exist yet is created ----
seq0=$(last_seq)
expect_rc "rotate a Secret that does not exist yet" 0 rk rotate new/db
check "  created with POST" [ "$(nreq "$seq0" POST '/namespaces/payments/secrets$')" = 1 ]
nv=$(val payments brand-new password)
check "  holding a 24-character value" [ ${#nv} = 24 ]
check "  recorded" fpok "$nv" new/db
check "  annotated with the run" [ -n "$(meta payments brand-new '{.metadata.annotations.rekey\.io/run}')" ]

# ---- conflicts ----
# Another writer changes another key between rekey's GET and its PATCH.
seq0=$(last_seq)
admin POST inject '{"path_regex": "/namespaces/payments/secrets/cf1$", "method": "PATCH", "action": "write_before",
  "object": {"resource": "secrets", "namespace": "payments", "name": "cf1", "patch": {"data": {"other": "dGhlaXJz"}}}, "count": 1}' >/dev/null
expect_rc "another key changed before our PATCH: rotated" 0 rk rotate cf/other
check "  the first PATCH got 409" [ "$(nreq "$seq0" PATCH '/secrets/cf1$' "r['status']==409")" = 1 ]
check "  their key kept" [ "$(val payments cf1 other)" = theirs ]
v=$(val payments cf1 password)
check "  our value written" [ "$v" != initial-cf1-value -a ${#v} = 24 ]
check "  and recorded" fpok "$v" cf/other
check "  one value change" [ "$(nwrite "$seq0" payments cf1)" = 1 ]
check "  re-read after the 409" [ "$(admin GET "requests?since=$seq0" | jq_ "(lambda rs: any(r['method']=='GET' and r['path'].endswith('/secrets/cf1') for r in rs[[i for i,r in enumerate(rs) if r['status']==409][0]+1:]))(d['requests'])")" = True ]
admin DELETE inject >/dev/null

seq0=$(last_seq)
admin POST inject '{"path_regex": "/namespaces/payments/secrets/cf2$", "method": "PATCH", "action": "status", "status": 409,
  "body": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Conflict", "code": 409,
  "message": "Operation cannot be fulfilled on secrets \"cf2\": the object has been modified; please apply your changes to the latest version and try again",
  "details": {"name": "cf2", "kind": "secrets"}}, "count": 1}' >/dev/null
expect_rc "a bare 409 on the PATCH: rotated" 0 rk rotate cf/bare
v=$(val payments cf2 password)
check "  one value change, recorded" [ "$(nwrite "$seq0" payments cf2)" = 1 -a "$(fpok "$v" cf/bare && echo y)" = y ]
check "  the other key untouched" [ "$(val payments cf2 other)" = x ]
admin DELETE inject >/dev/null

# Another writer changes OUR key: never overwritten blindly; rekey starts again from theirs.
seq0=$(last_seq)
admin POST inject "{\"path_regex\": \"/namespaces/payments/secrets/cf3\$\", \"method\": \"PATCH\", \"action\": \"write_before\",
  \"object\": {\"resource\": \"secrets\", \"namespace\": \"payments\", \"name\": \"cf3\", \"patch\": {\"data\": {\"password\": \"$(b64 theirs-cf3-password)\"}}}, \"count\": 1}" >/dev/null
expect_rc "another writer changed our key: rekey starts again" 0 rk rotate cf/ours
check "  logged as a conflict" grep -q conflict "$T/err"
v=$(val payments cf3 password)
check "  our value is current after theirs" [ "$v" != theirs-cf3-password -a "$v" != initial-cf3-value -a ${#v} = 24 ]
check "  recorded" fpok "$v" cf/ours
check "  the second PATCH carried the resourceVersion after their write" [ "$(admin GET "requests?since=$seq0" | jq_ "(lambda ps: len(ps)==2 and ps[0]['status']==409 and ps[1]['body']['metadata']['resourceVersion']!=ps[0]['body']['metadata']['resourceVersion'])([r for r in d['requests'] if r['method']=='PATCH' and r['path'].endswith('/secrets/cf3')])")" = True ]
admin DELETE inject >/dev/null
expect_rc "  rollback restores their value (the one rekey replaced)" 0 rk rollback cf/ours
check "  which is theirs" [ "$(val payments cf3 password)" = theirs-cf3-password ]

# Their writes to our key never stop: bounded, and theirs stays.
rules=""
for i in 1 2 3 4 5 6 7 8; do
	rules="$rules${rules:+,}{\"path_regex\": \"/namespaces/payments/secrets/cf4\$\", \"method\": \"PATCH\", \"action\": \"write_before\", \"count\": 1,
	  \"object\": {\"resource\": \"secrets\", \"namespace\": \"payments\", \"name\": \"cf4\", \"patch\": {\"data\": {\"password\": \"$(b64 theirs-cf4-$i)\"}}}}"
done
admin POST inject "{\"rules\": [$rules]}" >/dev/null
seq0=$(last_seq)
expect_rc "our key changed before every PATCH: the rotation fails" 1 rk rotate cf/endless
n=$(nreq "$seq0" PATCH '/secrets/cf4$')
check "  after a bounded number of PATCHes ($n, fewer than the 8 conflicts injected)" [ "$n" -ge 2 -a "$n" -le 8 ]
check "  never writing over theirs" [ "$(nwrite "$seq0" payments cf4)" = 0 ]
check "  their value stands" sh -c "echo '$(val payments cf4 password)' | grep -q '^theirs-cf4-'"
check "  the error names the secret and the conflict" sh -c "grep -i conflict '$T/err' | grep -q 'cf'"
admin DELETE inject >/dev/null

# ---- rollback: exactly the previous bytes ----
# A value no password generator makes: a NUL, a newline, high bytes.
printf 'A\000\nB\377\376z-initial' >"$T/rbA"
admin POST seed "{\"kind\": \"Secret\", \"metadata\": {\"name\": \"rbs\", \"namespace\": \"payments\"}, \"data\": {\"password\": \"$(base64 -w0 <"$T/rbA")\", \"other\": \"a2VlcA==\"}}" >/dev/null
rbv() { kc -n payments get secret rbs -o 'jsonpath={.data.password}' | base64 -d >"$T/$1"; base64 -w0 <"$T/$1" >>"$T/seen.b64"; echo >>"$T/seen.b64"; }
expect_rc "rotate (A -> B)" 0 rk rotate rb/db
rbv rbB
check "  B differs from A" sh -c "[ -s '$T/rbB' ] && ! cmp -s '$T/rbA' '$T/rbB'"
expect_rc "rollback (-> A)" 0 rk rollback rb/db
rbv rb1
check "  exactly A's bytes" same "$T/rbA" "$T/rb1"
check "  recorded as current" fpokf "$T/rb1" rb/db
expect_rc "rollback again (swaps back to B)" 0 rk rollback rb/db
rbv rb2
check "  exactly B's bytes" same "$T/rbB" "$T/rb2"
expect_rc "rollback once more (A)" 0 rk rollback rb/db
rbv rb3
check "  A again" same "$T/rbA" "$T/rb3"
expect_rc "rotate (A -> C)" 0 rk rotate rb/db
rbv rbC
check "  C is new" sh -c "[ -s '$T/rbC' ] && ! cmp -s '$T/rbC' '$T/rbA' && ! cmp -s '$T/rbC' '$T/rbB'"
expect_rc "rollback (-> A, not B)" 0 rk rollback rb/db
rbv rb4
check "  exactly A's bytes" same "$T/rbA" "$T/rb4"
expect_rc "rollback of the rollback (-> C)" 0 rk rollback rb/db
rbv rb5
check "  exactly C's bytes" same "$T/rbC" "$T/rb5"
check "the other key is kept throughout" [ "$(val payments rbs other)" = keep ]
check "status follows the Secret's resourceVersion" [ -n "$(st_ rb/db current_version)" -a "$(st_ rb/db current_version)" = "$(meta payments rbs '{.metadata.resourceVersion}')" ]

# ---- a rollout that never completes ----
admin POST config '{"objects": {"deployments/payments/stuck": {"rollout_mode": "stuck"}, "deployments/payments/crashy": {"rollout_mode": "crashloop"},
  "deployments/payments/undo": {"rollout_mode": "stuck"}}}' >/dev/null
for c in "stuck/db stuck stuck 1" "crash/db crashy crashloop 1"; do
	set -- $c
	seq0=$(last_seq)
	t0=$(date +%s%N)
	expect_rc "a $3 rollout: exit 3" 3 rk --output json rotate "$1"
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	check "  bounded by the policy's timeout of ${4}s ($ms ms)" [ "$ms" -ge $(($4 * 1000)) -a "$ms" -lt $(($4 * 1000 + 4000)) ]
	check "  the rotation stands" [ "$(rep "[s['result'] for s in d['secrets']]")" = "['rotated']" ]
	v=$(val payments "$2" password)
	check "  the new value is in the Secret and recorded" [ "$v" != "initial-$2-value" -a "$(fpok "$v" "$1" && echo y)" = y ]
	check "  the dependent failed" [ "$(rep "[x['result'] for x in d['dependents']]")" = "['failed']" ]
	check "  with an error about the deadline" sh -c "python3 -c \"import json; d=json.load(open('$T/out')); print(d['dependents'][0]['error'])\" | grep -qi deadline"
	check "  restarted once" [ "$(nreq "$seq0" PATCH "$(wpath deployments payments "$2")\$")" = 1 ]
done

if mini undo "kubeconfig: $KC, context: fake-token, rollout_poll: 100ms, $conn" \
	"{name: undo/db, provider: p, locator: {namespace: payments, secret: undo, key: password}, policy: undo, dependents: [{kubernetes: p/deployment/payments/undo}]}" \
	"$T/policy-onf"; then pass "policies with restart.on_failure (keep, rollback) load"
else fail "policies with restart.on_failure (keep, rollback) load"; sed 's/^/      | /' "$T/mini.out" | tail -2; fi
seq0=$(last_seq)
before=$(val payments undo password)
expect_rc "a stuck rollout with on_failure: rollback: exit 3" 3 rk -c "$T/undo.yaml" --output json rotate undo/db
check "  the secret was rotated, then put back: two writes" [ "$(nwrite "$seq0" payments undo)" = 2 ]
check "  the secret is back at its previous value" [ "$(val payments undo password)" = "$before" ]
check "  recorded as current again" fpok "$before" undo/db "$T/undo.yaml" "$T/undo.var"
check "  the workload was PATCHed twice (restart, then restart for the rollback)" [ "$(nreq "$seq0" PATCH "$(wpath deployments payments undo)\$")" = 2 ]
check "  the report has the rollback run" python3 -c "
import json; d=json.load(open('$T/out')); r=d['rollback']
assert r['run_id'] and r['run_id']!=d['run_id'], r
assert [s['name'] for s in r['secrets']]==['undo/db'] and r['secrets'][0]['result']=='restored', r['secrets']
assert len(r['dependents'])==1 and r['dependents'][0]['result'] in ('restarted','failed'), r['dependents']"
admin POST config '{"objects": {"deployments/payments/stuck": {"rollout_mode": "normal"}, "deployments/payments/crashy": {"rollout_mode": "normal"},
  "deployments/payments/undo": {"rollout_mode": "normal"}}}' >/dev/null

seq0=$(last_seq)
expect_rc "a dependent that does not exist: exit 3" 3 rk --output json rotate miss/db
v=$(val payments miss password)
check "  the secret is still rotated" [ "$v" != initial-miss-value -a "$(fpok "$v" miss/db && echo y)" = y ]
check "  the restart failed" [ "$(rep "[x['result'] for x in d['dependents']]")" = "['failed']" ]
check "  saying it was not found" sh -c "python3 -c \"import json; d=json.load(open('$T/out')); print(d['dependents'][0]['error'])\" | grep -q 'not found'"

# ---- crash safety: every fault point, then --resume ----
admin POST config "{\"objects\": {$(for pt in $PTS; do printf '"deployments/kp/%s": {"rollout_seconds": 0.05}, ' $pt; done | sed 's/, $//')}}" >/dev/null
for pt in $PTS; do
	seq0=$(last_seq)
	REKEY_FAULT=$pt "$REKEY_FAULT_BIN" rotate "kp/$pt" >>"$T/all.out" 2>&1
	rc=$?
	run=$("$REKEY_BIN" --output json runs 2>/dev/null | jq_ "d[0]['id']")
	check "$pt: killed at the point (exit $rc)" [ "$rc" = 137 ]
	[ "$pt" = restart-call ] && check "$pt: the workload was PATCHed before the crash" [ "$(nreq "$seq0" PATCH "$(wpath deployments kp "$pt")\$")" = 1 ]
	expect_rc "$pt: --resume $run finishes" 0 rk rotate --resume "$run"
	v=$(val kp "$pt" password)
	check "$pt: the value changed, written once" [ "$v" != "initial-kp-$pt" -a "$(nwrite "$seq0" kp "$pt")" = 1 ]
	check "$pt: rekey records the Secret's value" fpok "$v" "kp/$pt"
	check "$pt: the workload restarted exactly once" [ "$(nreq "$seq0" PATCH "$(wpath deployments kp "$pt")\$")" = 1 ]
done

# ---- bad data, 403 ----
admin POST seed '{"kind": "Secret", "metadata": {"name": "b64", "namespace": "payments"}, "data": {"password": "not base64!", "other": "eA=="}}' >/dev/null
rvb=$(meta payments b64 '{.metadata.resourceVersion}')
seq0=$(last_seq)
expect_rc "a data value that is not base64: exit 1" 1 rk rotate b64/db
check "  one error naming the secret, the key and base64" sh -c "cat '$T/out' '$T/err' | grep -i base64 | grep password | grep -q -e payments/b64 -e b64/db"
check "  the Secret is unchanged" samerv b64 "$rvb"
check "  nothing was sent to change it" [ "$(nreq "$seq0" 'PATCH|PUT|POST' '/secrets')" = 0 ]

# ---- 429 with Retry-After, APF, 503, a lost answer ----
seq0=$(last_seq)
admin POST inject '{"path_regex": "/secrets/h429$", "method": "PATCH", "action": "status", "status": 429, "headers": {"Retry-After": "1"}, "count": 1}' >/dev/null
t0=$(date +%s%N)
expect_rc "a 429 with Retry-After on the PATCH: rotated" 0 rk rotate h/429
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "  after waiting the Retry-After ($ms ms)" [ "$ms" -ge 1000 ]
check "  one value change" [ "$(nwrite "$seq0" payments h429)" = 1 ]
admin DELETE inject >/dev/null
seq0=$(last_seq)
admin POST quota '{"max_requests": 1, "interval": 1, "retry_after": 1, "path_regex": "/secrets/happf$"}' >/dev/null
expect_rc "API Priority and Fairness 429s (text/plain): rotated" 0 rk rotate h/apf
check "  the fake throttled ($(nreq "$seq0" '.*' happf "r.get('outcome')=='throttled'"))" [ "$(nreq "$seq0" '.*' happf "r.get('outcome')=='throttled'")" -ge 1 ]
check "  one value change" [ "$(nwrite "$seq0" payments happf)" = 1 ]
admin DELETE quota >/dev/null
seq0=$(last_seq)
admin POST inject '{"path_regex": "/secrets/h503$", "method": "PATCH", "action": "status", "status": 503, "count": 1}' >/dev/null
expect_rc "a 503 on the PATCH: retried" 0 rk rotate h/503
v=$(val payments h503 password)
check "  one value change, recorded" [ "$(nwrite "$seq0" payments h503)" = 1 -a "$(fpok "$v" h/503 && echo y)" = y ]
seq0=$(last_seq)
admin POST inject '{"path_regex": "/secrets/hlost$", "method": "PATCH", "action": "status_after_apply", "status": 503, "count": 1}' >/dev/null
expect_rc "a PATCH that landed but was answered 503: settled by reading back" 0 rk rotate h/lost
v=$(val payments hlost password)
check "  one value change" [ "$(nwrite "$seq0" payments hlost)" = 1 ]
check "  the landed value is the recorded one" [ "$v" != initial-hlost-value -a "$(fpok "$v" h/lost && echo y)" = y ]
admin DELETE inject >/dev/null

# ---- connections ----
seq0=$(last_seq)
expect_rc "context fake-cert (client certificate)" 0 rk rotate cert/db
check "  every request as the certificate's user, without a token" [ "$(admin GET "requests?since=$seq0" | jq_ "sorted(set((r['user'], 'Authorization' in r['headers']) for r in d['requests'] if '/secrets/certdb' in r['path']))")" = "[('rekey-client', False)]" ]
check "  rotated" [ "$(val payments certdb password | wc -c)" = 24 ]

# In cluster: REKEY_K8S_SA_DIR, KUBERNETES_SERVICE_HOST/PORT, the token file rotating mid-run.
mkdir -p "$T/sa"
cp "$KD/ca.crt" "$T/sa/ca.crt"
printf 'sa-token-one-aaaaaaaa' >"$T/sa/token"
printf 'inside' >"$T/sa/namespace"
chmod 644 "$T/sa/token"
admin POST config '{"tokens": [{"token": "sa-token-one-aaaaaaaa", "user": "system:serviceaccount:inside:one"}],
  "objects": {"deployments/inside/web": {"rollout_mode": "stuck"}}}' >/dev/null
seed "$(sec inside idb password=initial-idb-value)" "$(wl Deployment inside web)"
mini incl "in_cluster: true, rollout_poll: 100ms, $conn" \
	"{name: incl/db, provider: p, locator: {secret: idb, key: password}, policy: quick, dependents: [{kubernetes: p/deployment/inside/web, timeout: 60s}]}"
ic() { env KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT="$PORT" REKEY_K8S_SA_DIR="$T/sa" "$REKEY_BIN" -c "$T/incl.yaml" "$@"; }
seq0=$(last_seq)
ic --output json rotate incl/db >"$T/out" 2>"$T/err" &
icpid=$!
i=0
while [ "$(nreq "$seq0" PATCH "$(wpath deployments inside web)\$")" = 0 ] && [ $i -lt 40 ]; do sleep 0.1; i=$((i + 1)); done
# The kubelet's way: a new file renamed over the old one; the old token stops working.
admin POST config '{"tokens": [{"token": "sa-token-two-bbbbbbbb", "user": "system:serviceaccount:inside:two"}]}' >/dev/null
printf 'sa-token-two-bbbbbbbb' >"$T/sa/token.new" && mv "$T/sa/token.new" "$T/sa/token"
admin POST config '{"tokens": [{"token": "sa-token-one-aaaaaaaa", "delete": true}]}' >/dev/null
seqswap=$(last_seq)
# The rollout is held until the token is swapped, so rekey's polls span the swap however slow it is.
admin POST config '{"objects": {"deployments/inside/web": {"rollout_mode": "normal", "rollout_seconds": 0.5}}}' >/dev/null
wait $icpid
rc=$?
cat "$T/out" "$T/err" >>"$T/all.out"
check "in cluster (REKEY_K8S_SA_DIR): rotated, restart waited through a token rotation (exit $rc)" [ "$rc" = 0 ]
check "  in the service account's namespace" [ "$(val inside idb password | wc -c)" = 24 ]
check "  the first requests used the token file's token" [ "$(admin GET "requests?since=$seq0" | jq_ "[r['user'] for r in d['requests'] if '/inside/' in r['path']][0]")" = system:serviceaccount:inside:one ]
check "  the dependent's rollout was seen through" [ "$(rep "[x['result'] for x in d['dependents']]")" = "['restarted']" ]
check "  after the rotation the new token was used" [ "$(admin GET "requests?since=$seqswap" | jq_ "sorted(set(r['user'] for r in d['requests'] if '/inside/' in r['path'] and r['status']!=401 and not r['headers'].get('User-Agent','').startswith('kubectl')))")" = "['system:serviceaccount:inside:two']" ]
admin POST config '{"objects": {"deployments/inside/web": {"rollout_seconds": 0.3}}}' >/dev/null
expect_rc "  and the next run reads the new token" 0 ic rotate incl/db

# insecure-skip-tls-verify: only with allow_insecure_tls, and then a warning every run.
kubeconfig_with "$T/kc-insecure" "s|certificate-authority: .*|insecure-skip-tls-verify: true|"
seed "$(sec payments insec password=initial-insec-value)"
mini ins "kubeconfig: $T/kc-insecure, allow_insecure_tls: true, $conn" \
	"{name: ins/db, provider: p, locator: {namespace: payments, secret: insec, key: password}, policy: quick}"
expect_rc "insecure-skip-tls-verify with allow_insecure_tls: rotated" 0 rk -c "$T/ins.yaml" rotate ins/db
check "  with a warning" grep -qi insecure "$T/err"
expect_rc "  again" 0 rk -c "$T/ins.yaml" rotate ins/db
check "  and the warning again" grep -qi insecure "$T/err"
sed -i 's/allow_insecure_tls: true, //' "$T/ins.yaml"
rvi=$(meta payments insec '{.metadata.resourceVersion}')
seq0=$(last_seq)
expect_rc "insecure-skip-tls-verify without allow_insecure_tls is refused" 2 rk -c "$T/ins.yaml" rotate ins/db
check "  naming the kubeconfig's line" grep -q "$T/kc-insecure:[0-9]" "$T/err"
check "  and the setting" grep -q insecure-skip-tls-verify "$T/err"
check "  nothing sent, nothing changed" untouched "$seq0" insec "$rvi"

# Broken kubeconfigs: exit 2 naming file:line, nothing changed.
cp "$KC" "$T/kc-bad"
seed "$(sec payments bad password=initial-bad-value)"
mini bad "kubeconfig: $T/kc-bad, $conn" "{name: bad/db, provider: p, locator: {namespace: payments, secret: bad, key: password}, policy: quick}"
rvd=$(meta payments bad '{.metadata.resourceVersion}')
seq0=$(last_seq)
# Line 7 becomes "    server: https://127.0.0.1:PORT: oops" (a YAML error on that line).
sed -i '7s/$/: oops/' "$T/kc-bad"
check "(the kubeconfig's line 7 is the server)" sh -c "sed -n 7p '$T/kc-bad' | grep -q 'server:.*oops'"
expect_rc "a kubeconfig that is not valid YAML: exit 2" 2 rk -c "$T/bad.yaml" rotate bad/db
check "  naming file:line" grep -q "$T/kc-bad:7" "$T/err"
sed "s/^current-context: .*/current-context: gone-ctx/" "$KC" >"$T/kc-bad"
sed -i "s/context: fake-token, //; s|kubeconfig: [^,]*,|kubeconfig: $T/kc-bad,|" "$T/bad.yaml"
expect_rc "a current-context that does not exist: exit 2" 2 rk -c "$T/bad.yaml" rotate bad/db
check "  naming file:line and the context" sh -c "grep -q '$T/kc-bad:[0-9]' '$T/err' && grep -q gone-ctx '$T/err'"
cp "$KC" "$T/kc-bad"
sed -i "s|kubeconfig: [^,]*,|kubeconfig: $T/kc-bad, context: nope-ctx,|" "$T/bad.yaml"
expect_rc "a context: that the kubeconfig lacks: exit 2" 2 rk -c "$T/bad.yaml" rotate bad/db
check "  naming file:line and the context" sh -c "grep -q '\.yaml:[0-9]\|kc-bad:[0-9]' '$T/err' && grep -q nope-ctx '$T/err'"
check "nothing sent, nothing changed by any of them" untouched "$seq0" bad "$rvd"

# 403: a token that may read but not patch.
admin POST config '{"tokens": [{"token": "ro-token", "user": "system:serviceaccount:rekey:reader",
  "rules": [{"verbs": ["get", "list", "watch"], "resources": ["secrets", "deployments"]},
            {"verbs": ["create"], "resources": ["selfsubjectaccessreviews", "selfsubjectreviews"]}]}]}' >/dev/null
seed "$(sec payments rodb password=initial-rodb-value)"
mini ro "kubeconfig: $T/kc-ro, $conn" "{name: ro/db, provider: p, locator: {namespace: payments, secret: rodb, key: password}, policy: quick, dependents: [{kubernetes: p/deployment/payments/api}]}"
rvr=$(meta payments rodb '{.metadata.resourceVersion}')
expect_rc "a token that cannot patch secrets: exit 1" 1 rk -c "$T/ro.yaml" rotate ro/db
check "  quoting the API server" grep -qF 'secrets "rodb" is forbidden: User "system:serviceaccount:rekey:reader" cannot patch resource "secrets" in API group "" in the namespace "payments"' "$T/out" "$T/err"
check "  nothing changed" samerv rodb "$rvr"

# ---- doctor ----
seq0=$(last_seq)
expect_rc "doctor passes" 0 rk --output json doctor
dline() { python3 -c "
import json,sys; d=json.load(open('$T/out'))
sys.exit(0 if [c for c in d['checks'] if all(w in c['check'] for w in sys.argv[2:]) and c['ok']==(sys.argv[1]=='ok')] else 1)" "$@"; }
check "  the server is reachable (v1.32.4)" dline ok v1.32.4
check "  identity from SelfSubjectReview" dline ok system:serviceaccount:rekey:rekey
check "  get permission on pay/db's Secret" dline ok payments/db get
check "  patch permission on pay/db's Secret" dline ok payments/db patch
check "  patch permission on its deployment" dline ok payments/api patch
ssar() { admin GET "requests?since=$seq0" | jq_ "any((lambda a: a.get('verb')=='$1' and a.get('resource')=='$2' and a.get('namespace')=='$3' and a.get('name')=='$4' and (a.get('group') or '')==('' if '$2'=='secrets' else 'apps'))(((r['body'] or {}).get('spec') or {}).get('resourceAttributes') or {}) for r in d['requests'] if r['path'].endswith('/selfsubjectaccessreviews'))"; }
check "  asked by SelfSubjectAccessReview: get secrets/db" [ "$(ssar get secrets payments db)" = True ]
check "  patch secrets/db" [ "$(ssar patch secrets payments db)" = True ]
check "  patch deployments/api (group apps)" [ "$(ssar patch deployments payments api)" = True ]
check "  asked who it is (SelfSubjectReview)" [ "$(nreq "$seq0" POST selfsubjectreviews)" -ge 1 ]
check "  changed nothing" [ "$(nreq "$seq0" 'PATCH|PUT|DELETE' '.')" = 0 ]
expect_rc "doctor with a token that cannot patch: exit 1" 1 rk -c "$T/ro.yaml" --output json doctor
check "  patch on the Secret is not ok" dline fail payments/rodb patch
check "  get on it is ok" dline ok payments/rodb get
check "  patch on the deployment is not ok" dline fail payments/api patch

# ---- every write rekey made, over the whole test ----
admin GET requests | python3 -c "
import json,sys
bad=[]
for r in json.load(sys.stdin)['requests']:
    ua=r['headers'].get('User-Agent','')
    if ua.startswith('kubectl') or r['method'] not in ('PATCH','PUT'): continue
    ct=(r['content_type'] or '').split(';')[0].strip()
    md=(r['body'] or {}).get('metadata') or {}
    if '/secrets/' in r['path']:
        if r['method']=='PUT' and not md.get('resourceVersion'): bad.append(('PUT without resourceVersion', r['path']))
        if r['method']=='PATCH' and (ct!='application/merge-patch+json' or not md.get('resourceVersion')): bad.append((ct, r['path']))
    elif '/apis/apps/' in r['path'] and (r['method']!='PATCH' or ct!='application/strategic-merge-patch+json'): bad.append((r['method'], ct, r['path']))
print(len(bad), bad[:3])" >"$T/writes"
check "every Secret write is a merge PATCH with resourceVersion, every restart a strategic merge PATCH ($(cat "$T/writes"))" grep -q '^0 ' "$T/writes"

# ---- no value anywhere ----
# Every value the fake holds now, every one read during the test, and every one
# rekey wrote (the data of its Secret PATCHes and POSTs).
admin GET state | python3 -c "
import json,sys
for o in json.load(sys.stdin)['objects']:
    for v in (o.get('data') or {}).values(): print(v)" >>"$T/seen.b64"
admin GET 'requests?values=1' | python3 -c "
import json,sys
for r in json.load(sys.stdin)['requests']:
    if '/secrets' in r['path'] and r['method'] in ('PATCH','POST','PUT') and isinstance(r['body'],dict):
        for v in (r['body'].get('data') or {}).values(): print(v)" >>"$T/seen.b64"
sort -u "$T/seen.b64" | python3 -c "
import sys,base64
for l in sys.stdin:
    try: v=base64.b64decode(l.strip(), validate=True)
    except Exception: continue
    if len(v)>=8 and v.isascii() and v.decode().isprintable(): print(v.decode())" >"$T/values"
nv=$(wc -l <"$T/values")
check "the leak check has values to look for ($nv)" [ "$nv" -gt 40 ]
# rekey's requests (not kubectl's), with values; then without the data of Secret bodies
admin GET 'requests?values=1' | python3 -c "
import json,sys
rs=[r for r in json.load(sys.stdin)['requests'] if not r['headers'].get('User-Agent','').startswith('kubectl')]
json.dump(rs,open('$T/reqlog','w'))
for r in rs:
    b=r.get('body')
    if '/secrets' in r['path'] and isinstance(b,dict): b.pop('data',None)
json.dump(rs,open('$T/reqlog.nodata','w'))"
while IFS= read -r v; do b64 "$v"; echo; done <"$T/values" >"$T/values.b64"
for f in "$T"/var/rekey.db "$T"/var/rekey.db-wal "$T"/*.var/rekey.db "$T"/*.var/rekey.db-wal; do [ -f "$f" ] && echo "$f"; done >"$T/dbs"
hits() { grep -aoF -f "$2" "$1" | sort -u | wc -l; }	# hits FILE PATTERNS: how many of them occur
leak=$(hits "$T/all.out" "$T/values")
dbleak=0
while IFS= read -r f; do
	dbleak=$((dbleak + $(grep -caF -f "$T/values" "$f") + $(grep -caF -f "$T/values.b64" "$f")))
done <"$T/dbs"
logleak=$(( $(hits "$T/reqlog" "$T/values") + $(hits "$T/reqlog.nodata" "$T/values.b64") ))
check "(control: the values rekey wrote are in its requests, as base64: $(hits "$T/reqlog" "$T/values.b64"))" [ "$(hits "$T/reqlog" "$T/values.b64")" -gt 30 ]
check "no value in rekey's stdout or stderr ($(wc -c <"$T/all.out") bytes; $leak found)" [ "$leak" = 0 ]
check "no value in the state DBs or WAL files, plain or base64 ($(wc -l <"$T/dbs") files; $dbleak found)" [ "$dbleak" = 0 -a "$(wc -l <"$T/dbs")" -ge 1 ]
check "no value in the API requests but as base64 in Secret bodies ($logleak found)" [ "$logleak" = 0 ]
finish
