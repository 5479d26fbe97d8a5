#!/bin/sh
# Soak test of `rekey serve` (not part of `make check`):
#
#   REKEY_BIN=./rekey RK_FP=build/release/rk-fp sh tests/soak/soak.sh [SECONDS]
#
# Runs the daemon for SECONDS (default 300) against the Kubernetes test double
# and the local store, 24 secrets rotating every 3-7 s with 3 dependents,
# while faults come and go on the double (500s, resets after the write
# landed, latency, a connection that hangs) and SIGHUPs reload the config.
# RSS is sampled every 5 s. At the end (SIGTERM, then one more start to
# finish what was cut off) it checks:
#   - no rotation lost: every secret rotated, each value in the double or the
#     local store has the fingerprint rekey recorded, `audit verify` passes;
#   - no run stuck: no run is left "running";
#   - memory did not grow: the last RSS sample is within 25% (plus 4 MiB) of
#     the one taken after the first minute (or a fifth of the run);
#   - the daemon exited 0 on SIGTERM each time.
# Exit 0 when all hold; the figures are printed.
set -u
DUR=${1:-300}
: "${REKEY_BIN:?REKEY_BIN must point at rekey}"
: "${RK_FP:?RK_FP must point at rk-fp (make build/release/rk-fp)}"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/rekey-soak.XXXXXX)
FAKE="" D=""
trap '[ -n "$D" ] && kill -9 $D 2>/dev/null; [ -n "$FAKE" ] && kill $FAKE 2>/dev/null; rm -rf "$T"' EXIT
bad=0
say() { echo "soak: $*"; }
flunk() { echo "soak: FAIL $*"; bad=1; }

python3 "$SRC/tests/fakes/k8s_fake.py" --port 0 --port-file "$T/kport" --cert-dir "$T/k8s" 2>"$T/fake.log" &
FAKE=$!
i=0; while [ ! -s "$T/kport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
K="https://127.0.0.1:$(cat "$T/kport")"
admin() { curl -sS --cacert "$T/k8s/ca.crt" -X "$1" "$K/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }

mkdir -p "$T/policy"
for p in 3 5 7; do
	printf 'name: p%s\nrotate_every: %ss\ngrace: 1h\nmax_attempts: 100\ngenerator: {type: password, length: 24}\nrestart: {wait: true, timeout: 20s}\n' "$p" "$p" >"$T/policy/p$p.yaml"
done
cat >"$T/rekey.yaml" <<EOC
state_dir: $T/var
environment: soak
policy_dir: $T/policy
providers:
  local: {type: local}
  cluster: {type: kubernetes, kubeconfig: $T/k8s/kubeconfig, context: fake-token,
            timeout: {connect: 2s, total: 5s}, retry: {max_attempts: 3, base_delay: 100ms, max_delay: 1s},
            circuit_breaker: {failures: 8, cooldown: 3s}}
server: {listen: "127.0.0.1:0"}
scheduler: {jitter: 1s, audit_verify_every: 30s}
backup: {every: 20s, keep: 3}
EOC
export REKEY_CONFIG="$T/rekey.yaml"
for d in api worker web; do
	admin POST seed "{\"kind\":\"Deployment\",\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"$d\",\"namespace\":\"soak\"},\"spec\":{\"replicas\":1,\"selector\":{\"matchLabels\":{\"app\":\"$d\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"$d\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}}}" >/dev/null
done
{
	echo 'secrets:'
	for i in $(seq 1 12); do
		p=$((3 + (i % 3) * 2))
		dep=$(echo api worker web | cut -d' ' -f$((1 + i % 3)))
		echo "  - {name: k$i, provider: cluster, locator: {namespace: soak, secret: s$i, key: password}, policy: p$p, dependents: [{kubernetes: cluster/deployment/soak/$dep}]}"
		echo "  - {name: l$i, locator: {path: l$i}, policy: p$p}"
	done
} >"$T/inv.yaml"
"$REKEY_BIN" init >/dev/null && "$REKEY_BIN" apply -f "$T/inv.yaml" >/dev/null || { say "setup failed"; exit 1; }

start() {
	"$REKEY_BIN" --log-format json serve >>"$T/serve.out" 2>>"$T/serve.err" &
	D=$!
}
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$D/status" 2>/dev/null || echo 0; }
start
t0=$(date +%s)
warm=$(( DUR / 5 < 60 ? DUR / 5 : 60 ))
rss_warm="" rss_last=0 n=0
while [ $(( $(date +%s) - t0 )) -lt "$DUR" ]; do
	sleep 5
	n=$((n + 1))
	case $((n % 6)) in
	1) admin POST inject '{"path_regex": "/secrets/", "method": "PATCH", "action": "status", "status": 500, "count": 3}' >/dev/null ;;
	2) admin POST inject '{"path_regex": "/secrets/", "method": "PATCH", "action": "reset_after_apply", "count": 2}' >/dev/null ;;
	3) admin POST inject '{"path_regex": "/deployments/", "method": "*", "action": "latency", "ms": 800, "count": 5}' >/dev/null ;;
	4) admin POST inject '{"path_regex": "/secrets/", "method": "GET", "action": "hang", "ms": 3000, "count": 1}' >/dev/null ;;
	5) kill -HUP "$D" ;;
	0) admin DELETE inject >/dev/null ;;
	esac
	rss_last=$(rss)
	[ -z "$rss_warm" ] && [ $(( $(date +%s) - t0 )) -ge "$warm" ] && rss_warm=$rss_last
	kill -0 "$D" 2>/dev/null || { flunk "the daemon died"; break; }
done
admin DELETE inject >/dev/null
kill -TERM "$D"; wait "$D"; rc=$?
[ "$rc" = 0 ] || flunk "SIGTERM: exit $rc"
# One more start finishes what SIGTERM cut off; then stop it again.
: >"$T/serve2.err"
"$REKEY_BIN" --log-format json serve 2>"$T/serve2.err" >/dev/null &
D=$!
sleep 4
kill -TERM "$D"; wait "$D"; rc=$?; D=""
[ "$rc" = 0 ] || flunk "second SIGTERM: exit $rc"
"$REKEY_BIN" rotate --resume all >/dev/null 2>&1
stuck=$("$REKEY_BIN" runs --output json | python3 -c 'import json,sys; print(len([r for r in json.load(sys.stdin) if r["status"] == "running"]))')
[ "$stuck" = 0 ] || flunk "$stuck runs left running"
"$REKEY_BIN" audit verify >/dev/null || flunk "audit verify"
rot=$(sqlite3 "$T/var/rekey.db" "SELECT count(*) FROM rotations WHERE state = 'done'")
runs=$(sqlite3 "$T/var/rekey.db" "SELECT count(*) FROM runs")
# Every secret rotated, and what the store holds is what rekey recorded.
admin GET state >"$T/state.json"
for i in $(seq 1 12); do
	for s in k$i l$i; do
		c=$(sqlite3 "$T/var/rekey.db" "SELECT count(*) FROM rotations WHERE secret = '$s' AND state = 'done'")
		[ "$c" -gt 0 ] || flunk "$s never rotated"
		want=$("$REKEY_BIN" status "$s" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["current_fp"])')
		if [ "${s#k}" != "$s" ]; then
			got=$(python3 -c "
import json,sys,base64
d=json.load(open('$T/state.json'))
o=[o for o in d['objects'] if o.get('kind')=='Secret' and o['metadata']['name']=='s$i' and o['metadata'].get('namespace')=='soak'][0]
sys.stdout.write(base64.b64decode(o['data']['password']).decode())" | "$RK_FP" "$T/var")
		else
			got=$("$REKEY_BIN" get "$s" | "$RK_FP" "$T/var")
		fi
		[ -n "$got" ] && [ "$got" = "$want" ] || flunk "$s: the stored value's fingerprint is not the recorded one"
	done
done
limit=$(( ${rss_warm:-0} + ${rss_warm:-0} / 4 + 4096 ))
say "ran ${DUR}s: $runs runs, $rot rotations done, RSS ${rss_warm:-?} kB after warm-up -> $rss_last kB at the end (limit $limit kB)"
[ -n "$rss_warm" ] && [ "$rss_last" -le "$limit" ] || flunk "memory grew: ${rss_warm:-?} -> $rss_last kB"
grep -q '"level":"error"' "$T/serve.err" && say "errors logged (faults were injected): $(grep -c '"level":"error"' "$T/serve.err")"
[ "$bad" = 0 ] && say "ok" || say "FAILED"
exit "$bad"
