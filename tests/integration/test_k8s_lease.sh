#!/bin/sh
# Leader election on a coordination.k8s.io/v1 Lease (rekey.yaml `ha`) against
# tests/fakes/k8s_fake.py over TLS: two instances (two state directories,
# as on two hosts) contend and exactly one rotates while the other exits 75
# at once naming the holder (emergency too); a dead holder's Lease is refused until it has
# expired (renewTime + duration + skew margin) and then taken over
# (leaseTransitions + 1, ours during the run, released after); --wait-lease
# waits for a live holder that releases; a lease lost mid-run stops the
# run (exit 3, lease.lost) and is left alone; a bad `ha` block is exit 2 at
# file:line with nothing sent to the cluster.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "test_k8s_lease: curl missing"; exit 1; }
command -v openssl >/dev/null || { echo "test_k8s_lease: openssl missing"; exit 1; }

mkdir -p "$T/policy"
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\n' >"$T/policy/quick.yaml"
printf 'name: slow\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nverify: {exec: [sh, -c, "sleep 6"]}\n' >"$T/policy/slow.yaml"

# host NAME [HA-BLOCK]: a config of its own state directory (one per "host").
host() {
	cat >"$T/$1.yaml" <<EOC
state_dir: $T/var-$1
environment: test
policy_dir: $T/policy
providers:
  cluster: {type: kubernetes, kubeconfig: $T/k8s/kubeconfig, context: fake-token}
ha:
  lease: {provider: cluster, namespace: rekey, name: rekey-leader, duration: 2s, skew_margin: 1s}
EOC
}
host a
host b

# Until providers/kubernetes.c is in the binary there is nothing to test.
if "$REKEY_BIN" -c "$T/a.yaml" list 2>&1 | grep -q "unknown provider type 'kubernetes'"; then
	echo "test_k8s_lease: skipped (this rekey has no kubernetes provider)"
	exit 0
fi

start_k8s_fake

admin() { curl -sS --cacert "$T/k8s/ca.crt" -X "$1" "$K/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
# lease EXPR: EXPR over the stored Lease rekey/rekey-leader (l; None when there is none)
lease() { admin GET state | python3 -c "
import json,sys; d=json.load(sys.stdin)
l=[o for o in d['objects'] if o.get('kind')=='Lease' and o['metadata']['name']=='rekey-leader' and o['metadata'].get('namespace')=='rekey']
l=l[0] if l else None
s=(l or {}).get('spec',{})
print($1)"; }
# writes_since SEQ: Secret writes (PUT, PATCH, POST) the fake logged after SEQ
writes_since() { admin GET "requests?since=$1" | python3 -c "
import json,sys; d=json.load(sys.stdin)
print(len([r for r in d['requests'] if r['method'] in ('PUT','PATCH','POST') and '/secrets' in r['path'] and r.get('status',0) < 300]))"; }
requests_since() { admin GET "requests?since=$1" | python3 -c "
import json,sys; print(len(json.load(sys.stdin)['requests']))"; }
last_seq() { admin GET requests | python3 -c "
import json,sys; d=json.load(sys.stdin); print(max([r['seq'] for r in d['requests']] or [0]))"; }
now_ms() { date +%s%3N; }
# wait_holder PREFIX: until the Lease's holderIdentity starts with PREFIX (5 s at most)
wait_holder() {
	i=0
	while [ "$(lease "'yes' if (s.get('holderIdentity') or '').startswith('$1') else 'no'")" != yes ] &&
		[ $i -lt 50 ]; do
		sleep 0.1; i=$((i + 1))
	done
}
# seed_lease HOLDER TRANSITIONS: a Lease renewed now for 2 s (its holder then dies)
seed_lease() {
	t=$(python3 -c 'import datetime; print(datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))')
	admin POST seed "{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\",\"metadata\":{\"name\":\"rekey-leader\",\"namespace\":\"rekey\"},\"spec\":{\"holderIdentity\":\"$1\",\"leaseDurationSeconds\":2,\"acquireTime\":\"$t\",\"renewTime\":\"$t\",\"leaseTransitions\":$2}}" >/dev/null
}

for s in db fast; do
	admin POST seed "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"$s\",\"namespace\":\"payments\"},\"data\":{\"password\":\"b2xkLXZhbHVl\"}}" >/dev/null
done
cat >"$T/inv.yaml" <<'EOI'
secrets:
  - {name: k/db, provider: cluster, locator: {namespace: payments, secret: db, key: password}, policy: slow}
  - {name: k/fast, provider: cluster, locator: {namespace: payments, secret: fast, key: password}, policy: quick}
EOI
for h in a b; do
	rk -c "$T/$h.yaml" init >/dev/null
	expect_rc "host $h: apply the inventory" 0 rk -c "$T/$h.yaml" apply -f "$T/inv.yaml"
done
HOST=$(hostname)

# ---- 1. two instances contend: one rotates, the other exits 75 at once ----
seq0=$(last_seq)
"$REKEY_BIN" -c "$T/a.yaml" rotate k/db >"$T/a.out" 2>"$T/a.err" &
A=$!
# (each poll of the fake takes a few hundred ms: a's 6 s hook leaves room for b's checks)
wait_holder "${HOST}_${A}_"
t0=$(now_ms)
expect_rc "instance b: exit 75 while a holds the lease" 75 rk -c "$T/b.yaml" rotate k/db
t1=$(now_ms)
check "  at once (well under a's 6 s hook: $((t1 - t0)) ms)" test $((t1 - t0)) -lt 1500
check "  naming the holder" contains "$T/err" "held by \\\"${HOST}_${A}_"
check "  and the lease" contains "$T/err" "rekey/rekey-leader"
check "instance a held the lease meanwhile" sh -c "[ \"\$1\" = yes ]" - \
	"$(lease "'yes' if s.get('holderIdentity','').startswith('${HOST}_${A}_') else s")"
expect_rc "instance b: emergency exits 75 as well" 75 rk -c "$T/b.yaml" emergency --reason test --yes
check "  naming the holder" contains "$T/err" "held by \\\"${HOST}_${A}_"
wait $A
rc_a=$?
check "instance a rotated (exit $rc_a)" test "$rc_a" = 0
check "exactly one Secret write (a's)" test "$(writes_since "$seq0")" = 1
check "a released the lease: holderIdentity \"\"" test "$(lease "s.get('holderIdentity')")" = ""
check "  with leaseDurationSeconds 1" test "$(lease "s.get('leaseDurationSeconds')")" = 1

# ---- 2. a dead holder: refused until expired, then taken over ----
seed_lease dead-host_1_dead 5
seq0=$(last_seq)
expect_rc "a live-looking lease of a dead holder: exit 75" 75 rk -c "$T/a.yaml" rotate k/fast
check "  naming it" contains "$T/err" "held by \\\"dead-host_1_dead\\\""
check "  nothing written" test "$(writes_since "$seq0")" = 0
check "  the lease untouched" test "$(lease "s['holderIdentity']")" = dead-host_1_dead
sleep 3.3	# 2 s duration + 1 s margin since its renewTime
"$REKEY_BIN" -c "$T/a.yaml" rotate k/db >"$T/a.out" 2>"$T/a.err" &
A=$!
wait_holder "${HOST}_${A}_"
check "taken over after duration + margin: ours during the run" sh -c "[ \"\$1\" = yes ]" - \
	"$(lease "'yes' if s.get('holderIdentity','').startswith('${HOST}_${A}_') else s")"
check "  leaseTransitions 5 -> 6" test "$(lease "s.get('leaseTransitions')")" = 6
wait $A
rc_a=$?
check "  rotated (exit $rc_a)" test "$rc_a" = 0
check "  released after: holderIdentity \"\"" test "$(lease "s.get('holderIdentity')")" = ""
check "  transitions kept by the release" test "$(lease "s.get('leaseTransitions')")" = 6

# ---- 3. --wait-lease waits for a live holder that releases ----
seq0=$(last_seq)
"$REKEY_BIN" -c "$T/a.yaml" rotate k/db >"$T/a.out" 2>"$T/a.err" &
A=$!
wait_holder "${HOST}_${A}_"
t0=$(now_ms)
expect_rc "instance b with --wait-lease 10s: rotates once a is done" 0 \
	rk -c "$T/b.yaml" rotate --wait-lease 10s k/fast
t1=$(now_ms)
check "  it waited for a ($((t1 - t0)) ms)" test $((t1 - t0)) -ge 1000
wait $A
rc_a=$?
check "  a rotated too (exit $rc_a)" test "$rc_a" = 0
check "  two Secret writes, one each" test "$(writes_since "$seq0")" = 2
check "  the lease is free at the end" test "$(lease "s.get('holderIdentity')")" = ""
expect_rc "--wait-lease with a bad duration: 2" 2 rk -c "$T/b.yaml" rotate --wait-lease soon k/fast

# ---- 4. a lease lost during the run stops it, and is left to its new holder ----
"$REKEY_BIN" -c "$T/a.yaml" --output json rotate k/db >"$T/a.out" 2>"$T/a.err" &
A=$!
wait_holder "${HOST}_${A}_"
seed_lease usurper_9_beef 7	# another writer takes it over under a's feet
wait $A
rc_a=$?
check "a run that lost its lease: exit 3 (got $rc_a)" test "$rc_a" = 3
check "  lease.lost logged" contains "$T/a.err" '"event":"lease.lost"'
check "  lease_lost in the report" contains "$T/a.out" '"lease_lost": true'
check "  the new holder's lease untouched" test "$(lease "s['holderIdentity']")" = usurper_9_beef
check "  and its term too" test "$(lease "s['leaseTransitions']")" = 7

# ---- 5. a bad ha block: exit 2 at file:line, nothing sent ----
seq0=$(last_seq)
sed 's/provider: cluster, namespace/provider: nope, namespace/' "$T/a.yaml" >"$T/bad1.yaml"
expect_rc "ha naming an unknown provider: 2" 2 rk -c "$T/bad1.yaml" rotate k/fast
check "  at file:line" contains "$T/err" "bad1.yaml:7:"
check "  naming the provider" contains "$T/err" "ha.lease.provider 'nope' is not one of the providers"
sed 's/provider: cluster, namespace/provider: local, namespace/' "$T/a.yaml" >"$T/bad2.yaml"
expect_rc "ha on a provider that cannot hold a lease (local): 2" 2 rk -c "$T/bad2.yaml" rotate k/fast
check "  at file:line" contains "$T/err" "bad2.yaml:7:"
check "  saying why" contains "$T/err" "is of type local, which cannot hold a lease"
check "nothing was sent to the cluster" test "$(requests_since "$seq0")" = 0

finish
