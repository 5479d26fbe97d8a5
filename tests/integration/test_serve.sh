#!/bin/sh
# rekey serve's scheduler against the local store and tests/fakes/k8s_fake.py:
# it rotates secrets as they come due (rotate_every: 3s) and between due
# times makes no request and does not wake; it picks up `rekey apply`
# without a restart; a closed window keeps a due secret waiting and a
# SIGHUP that opens it lets it go; a SIGHUP with a broken policy keeps the
# old one; jitter spreads secrets that come due together over several
# runs; SIGTERM during a rotation exits 0 and leaves a journal that the
# next start finishes; the audit chain is re-verified (rekey_audit_chain_ok
# drops after tampering); and with `ha` two daemons on one Lease: exactly
# one rotates, the other takes over after the first is killed.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "test_serve: curl missing"; exit 1; }
command -v sqlite3 >/dev/null || { echo "test_serve: sqlite3 missing"; exit 1; }

DAEMONS=""
# start_serve NAME CONFIG: a daemon, its log in $T/NAME.err; sets PORT_<NAME> and PID_<NAME>.
start_serve() {
	"$REKEY_BIN" -c "$2" --log-format json serve >"$T/$1.out" 2>"$T/$1.err" &
	eval "PID_$1=$!"
	DAEMONS="$DAEMONS $!"
	i=0
	while ! grep -q '"event":"serve.listening"' "$T/$1.err" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	eval "PORT_$1=$(sed -n 's/.*"event":"serve.listening".*"port":"\([0-9]*\)".*/\1/p' "$T/$1.err" | head -1)"
}
stop_all() { for p in $DAEMONS; do kill -9 "$p" 2>/dev/null; done; }
trap 'stop_all; [ -n "${FAKE:-}" ] && kill $FAKE 2>/dev/null; rm -rf "$T"' EXIT
# metric PORT NAME: the value of a sample (NAME may carry labels), "" when absent
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }
# rotations CONFIG NAME: how many rotations of the secret are done (read from the
# state DB: while a policy file is broken, every command refuses to start)
rotations() {
	sd=$(sed -n 's/^state_dir: //p' "$1")
	sqlite3 "file:$sd/rekey.db?mode=ro" "SELECT count(*) FROM rotations WHERE secret = '$2' AND state = 'done'" 2>/dev/null || echo 0
}
# wait_for SECONDS COMMAND...: until the command succeeds
wait_for() {
	n=$(($1 * 10)); shift
	i=0
	while ! "$@" && [ $i -lt $n ]; do sleep 0.1; i=$((i + 1)); done
	"$@"
}
ge() { [ "$(rotations "$1" "$2")" -ge "$3" ]; }
# main_switches PID: voluntary context switches of the daemon's main thread
main_switches() { awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$1/task/$1/status"; }

mkdir -p "$T/policy"
printf 'name: tick\nrotate_every: 3s\ngrace: 1h\ngenerator: {type: password, length: 24}\n' >"$T/policy/tick.yaml"
printf 'name: failing\nrotate_every: 2s\ngrace: 1h\nmax_attempts: 100\ngenerator: {type: password, length: 24}\nverify: {exec: [sh, -c, "exit 1"]}\n' >"$T/policy/failing.yaml"
printf 'name: hourly\nrotate_every: 1h\ngenerator: {type: password, length: 24}\n' >"$T/policy/hourly.yaml"
# A window two hours from now: closed now, whatever the time.
H=$(( ($(date -u +%H | sed 's/^0//') + 2) % 24 ))
printf 'name: windowed\nrotate_every: 1h\nwindow: "daily %02d:00-%02d:30 UTC"\ngenerator: {type: password, length: 24}\n' "$H" "$H" >"$T/policy/windowed.yaml"
printf 'name: slowset\nrotate_every: 1h\ngenerator: {type: password, length: 24}\nset: {exec: [sh, -c, "sleep 4"]}\n' >"$T/policy/slowset.yaml"

# conf NAME [PROVIDER-LINE [BLOCK]]: a config of its own state dir, initialised
conf() {
	cat >"$T/$1.yaml" <<EOC
state_dir: $T/var-$1
environment: test
policy_dir: $T/policy
providers:
  local: {type: local}
${2:-}
server: {listen: "127.0.0.1:0"}
scheduler: {jitter: 0s, audit_verify_every: ${AV:-1h}}
${3:-}
EOC
	rk -c "$T/$1.yaml" init >/dev/null
}

# ---- 1. due rotations as they come due; SIGHUP with a broken policy keeps the old one ----
AV=1s conf a
printf 'secrets:\n  - {name: t1, locator: {path: t1}, policy: tick}\n  - {name: t2, locator: {path: t2}, policy: tick}\n  - {name: f1, locator: {path: f1}, policy: failing}\n' >"$T/a-inv.yaml"
expect_rc "apply two secrets rotating every 3 s (and one whose verify always fails)" 0 rk -c "$T/a.yaml" apply -f "$T/a-inv.yaml"
start_serve a "$T/a.yaml"
check "the daemon listens (port $PORT_a)" test -n "$PORT_a"
check "it rotates t1 at start (never rotated) and again when due" wait_for 12 ge "$T/a.yaml" t1 2
check "  and t2" ge "$T/a.yaml" t2 2
f1tries=$(sqlite3 "file:$T/var-a/rekey.db?mode=ro" "SELECT count(*) FROM rotations WHERE secret = 'f1'")
check "f1's failing rotation is not retried at once: 1 try in ~6 s (it backs off 30 s)" test "$f1tries" = 1
check "  the log says it backs off" contains "$T/a.err" '"event":"serve.backoff","secret":"f1"'
cp "$T/policy/tick.yaml" "$T/tick.good"
printf 'rotate_every: [\n' >>"$T/policy/tick.yaml"
kill -HUP "$PID_a"
check "SIGHUP with a broken policy: refused, naming file:line" wait_for 3 contains "$T/a.err" "reload refused, still running on the configuration loaded before: $T/policy/tick.yaml:5:1: duplicate key"
n=$(rotations "$T/a.yaml" t1)
check "  the daemon still runs" kill -0 "$PID_a"
check "  and rotates on the old policy" wait_for 8 ge "$T/a.yaml" t1 $((n + 1))
cp "$T/tick.good" "$T/policy/tick.yaml"
kill -HUP "$PID_a"
check "SIGHUP with the file fixed: reloaded" wait_for 3 contains "$T/a.err" "configuration and policies reloaded"
# rekey.yaml itself: a broken one is refused; a good one takes effect (backups every second).
cp "$T/a.yaml" "$T/a.yaml.good"
printf 'scheduler: {jitter: soon}\n' >>"$T/a.yaml"
kill -HUP "$PID_a"
check "SIGHUP with a broken rekey.yaml: refused, naming file:line" wait_for 3 contains "$T/a.err" "reload refused, still running on the configuration loaded before: $T/a.yaml:"
check "  no backup was scheduled by it" test ! -d "$T/var-a/backups"
cp "$T/a.yaml.good" "$T/a.yaml"
printf 'backup: {every: 1s, keep: 1}\n' >>"$T/a.yaml"
kill -HUP "$PID_a"
check "SIGHUP adding backup.every: the daemon starts backing up" wait_for 5 sh -c "ls '$T/var-a/backups' 2>/dev/null | grep -q '^rekey-.*\.bak$'"
cp "$T/a.yaml.good" "$T/a.yaml"
kill -HUP "$PID_a"
check "  rekey_rotations_total counts the failure (undone: result rolled_back)" test "$(metric "$PORT_a" 'rekey_rotations_total{provider="local",result="rolled_back"}')" = 1
m=$(metric "$PORT_a" 'rekey_rotations_total{provider="local",result="rotated"}')
h=$(( $(rotations "$T/a.yaml" t1) + $(rotations "$T/a.yaml" t2) ))
check "rekey_rotations_total counts what it rotated ($m, history $h)" sh -c "[ \"$m\" -ge $((h - 2)) ] && [ \"$m\" -le $h ]"
check "rekey audit verify: intact" rk -c "$T/a.yaml" audit verify
check "  the command line's rows name user@host" sh -c "\"$REKEY_BIN\" -c '$T/a.yaml' audit --output json | grep -q '\"actor\": *\"$(id -un)@'"
check "  the runs' audit rows name the scheduler as the actor" sh -c "rk() { \"$REKEY_BIN\" \"\$@\"; }; rk -c '$T/a.yaml' audit --output json | grep -q '\"actor\": *\"scheduler\"'"
# An emergency by the API that fails (f1's verify), then {"resume": RUN} once it can work.
TOKA=$(cat "$T/var-a/api.token")
api() { curl -s -H "Authorization: Bearer $TOKA" -X POST "http://127.0.0.1:$PORT_a/v1/emergency" -d "$1"; }
run_status() { curl -s -H "Authorization: Bearer $TOKA" "http://127.0.0.1:$PORT_a/v1/runs/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",""))'; }
is_status() { case " $2 " in *" $(run_status "$1") "*) return 0 ;; esac; return 1; }
erun=$(api '{"reason": "leak", "scope": ["name=f1"]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
check "POST /v1/emergency over f1: a run id ($erun)" test -n "$erun"
check "  the run ends failed (f1's verify fails)" wait_for 10 is_status "$erun" "failed partial"
printf 'name: failing\nrotate_every: 1h\ngrace: 1h\ngenerator: {type: password, length: 24}\n' >"$T/policy/failing.yaml"
kill -HUP "$PID_a"
sleep 0.5
check "POST {\"resume\": RUN} after the fix: 202" sh -c "curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $TOKA' -X POST http://127.0.0.1:$PORT_a/v1/emergency -d '{\"resume\": \"$erun\"}' | grep -q 202"
check "  the same run ends done" wait_for 10 is_status "$erun" done
check "  f1 rotated in it" test "$(sqlite3 "file:$T/var-a/rekey.db?mode=ro" "SELECT state FROM rotations WHERE run_id = '$erun' AND secret = 'f1'")" = done
check "  audited as api.emergency_resume" sh -c "'$REKEY_BIN' -c '$T/a.yaml' audit --output json | grep -q '\"event\": *\"api.emergency_resume\"'"
check "  /metrics: rekey_audit_chain_ok 1" test "$(metric "$PORT_a" rekey_audit_chain_ok)" = 1
# Tampering with the audit log (past its triggers) is seen by the periodic check (every 1 s here).
sqlite3 "$T/var-a/rekey.db" "DROP TRIGGER audit_no_update; UPDATE audit SET detail = '{\"x\":1}' WHERE seq = 2;"
check "an edited audit row: rekey_audit_chain_ok drops to 0" wait_for 4 sh -c "[ \"\$(curl -s http://127.0.0.1:$PORT_a/metrics | awk '\$1 == \"rekey_audit_chain_ok\" { print \$2 }')\" = 0 ]"
check "  and the log says why" contains "$T/a.err" "the audit chain does not verify"
kill -TERM "$PID_a"
wait "$PID_a"
check "SIGTERM: exit 0" test $? = 0

# ---- 2. idle between due times: no request, no wake-up; apply is picked up; windows ----
start_k8s_fake
# (start_k8s_fake sets an EXIT trap of its own: ours stops the daemons too)
trap 'stop_all; kill $FAKE 2>/dev/null; wait $FAKE 2>/dev/null; rm -rf "$T"' EXIT
admin() { curl -sS --cacert "$T/k8s/ca.crt" -X "$1" "$K/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
last_seq() { admin GET requests | python3 -c "
import json,sys; d=json.load(sys.stdin); print(max([r['seq'] for r in d['requests']] or [0]))"; }
requests_since() { admin GET "requests?since=$1" | python3 -c "
import json,sys; print(len(json.load(sys.stdin)['requests']))"; }
CLUSTER="  cluster: {type: kubernetes, kubeconfig: $T/k8s/kubeconfig, context: fake-token,
            retry: {max_attempts: 2, base_delay: 50ms, max_delay: 100ms}, circuit_breaker: {failures: 2, cooldown: 30s}}"
conf b "$CLUSTER"
admin POST seed '{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"payments"},"data":{"password":"b2xkLXZhbHVl"}}' >/dev/null
cat >"$T/b-inv.yaml" <<'EOI'
secrets:
  - {name: k/db, provider: cluster, locator: {namespace: payments, secret: db, key: password}, policy: hourly}
  - {name: h1, locator: {path: h1}, policy: hourly}
  - {name: w1, locator: {path: w1}, policy: windowed}
EOI
expect_rc "apply: a Kubernetes secret, a local one, one with a closed window" 0 rk -c "$T/b.yaml" apply -f "$T/b-inv.yaml"
start_serve b "$T/b.yaml"
check "the first run rotates the never-rotated ones" wait_for 10 ge "$T/b.yaml" k/db 1
check "  h1 too" ge "$T/b.yaml" h1 1
sleep 1
seq0=$(last_seq)
sw0=$(main_switches "$PID_b")
sleep 4
check "4 s idle: no request to the Kubernetes API" test "$(requests_since "$seq0")" = 0
sw1=$(main_switches "$PID_b")
check "  and the scheduler thread did not wake ($sw0 -> $sw1 context switches)" test $((sw1 - sw0)) -le 2
check "w1 is due but its window is closed: not rotated" test "$(rotations "$T/b.yaml" w1)" = 0
check "  status says it waits for its window" sh -c "\"$REKEY_BIN\" -c '$T/b.yaml' status w1 --output json | grep -q '\"window_open\": *false'"
printf '  - {name: h2, locator: {path: h2}, policy: hourly}\n' >>"$T/b-inv.yaml"
expect_rc "rekey apply adds h2 while the daemon sleeps" 0 rk -c "$T/b.yaml" apply -f "$T/b-inv.yaml"
check "  the daemon rotates it without a restart" wait_for 5 ge "$T/b.yaml" h2 1
check "  and w1 still waits" test "$(rotations "$T/b.yaml" w1)" = 0
printf 'name: windowed\nrotate_every: 1h\ngenerator: {type: password, length: 24}\n' >"$T/policy/windowed.yaml"
kill -HUP "$PID_b"
check "SIGHUP with the window removed: w1 is rotated" wait_for 5 ge "$T/b.yaml" w1 1
# The HTTP client's per-provider counters and latency histogram.
req200=$(metric "$PORT_b" 'rekey_provider_requests_total{provider="cluster",code="200"}')
latn=$(metric "$PORT_b" 'rekey_provider_request_duration_seconds_count{provider="cluster"}')
seen=$(admin GET requests | python3 -c "
import json,sys; print(len([r for r in json.load(sys.stdin)['requests'] if r.get('status') == 200]))")
check "/metrics: the Kubernetes requests answered 200 ($req200; the fake logged $seen)" test "${req200:-0}" = "$seen"
check "  the latency histogram counts every request ($latn)" sh -c "[ '${latn:-0}' -ge '$seen' ] && [ '${latn:-0}' -gt 0 ]"
check "  the cluster's circuit is closed" test "$(metric "$PORT_b" 'rekey_provider_circuit_open{provider="cluster"}')" = 0
check "  /readyz: ready" sh -c "curl -s http://127.0.0.1:$PORT_b/readyz | grep -q '\"ready\": *true'"
# The API server fails: the circuit opens (failures: 2), /readyz says so with 503.
admin POST inject '{"path_regex": "/secrets/", "method": "*", "action": "status", "status": 500, "count": -1}' >/dev/null
TOKB=$(cat "$T/var-b/api.token")
curl -s -o /dev/null -H "Authorization: Bearer $TOKB" -X POST "http://127.0.0.1:$PORT_b/v1/rotate/k/db"
check "a failing API server opens the cluster's circuit" wait_for 15 metric_is "$PORT_b" 'rekey_provider_circuit_open{provider="cluster"}' 1
check "  /readyz answers 503" test "$(curl -s -o "$T/ready.json" -w '%{http_code}' "http://127.0.0.1:$PORT_b/readyz")" = 503
check "  naming the open circuit" sh -c "grep -q '\"cluster\": *\"open\"' '$T/ready.json'"
n500=$(metric "$PORT_b" 'rekey_provider_requests_total{provider="cluster",code="500"}')
check "  rekey_provider_requests_total counts the 500s ($n500)" test "${n500:-0}" -ge 2
admin DELETE inject >/dev/null
check "  /metrics: rekey_leader 1 without ha" test "$(metric "$PORT_b" rekey_leader)" = 1
check "  rekey_audit_chain_ok 1" test "$(metric "$PORT_b" rekey_audit_chain_ok)" = 1
kill -TERM "$PID_b"
wait "$PID_b"
check "SIGTERM: exit 0" test $? = 0

# ---- 3. jitter spreads secrets that come due together ----
conf j
sed -i 's/jitter: 0s/jitter: 2s/' "$T/j.yaml"
printf 'name: five\nrotate_every: 5s\ngrace: 1h\ngenerator: {type: password, length: 24}\n' >"$T/policy/five.yaml"
{ echo 'secrets:'; for i in 1 2 3 4 5 6; do echo "  - {name: j$i, locator: {path: j$i}, policy: five}"; done; } >"$T/j-inv.yaml"
rk -c "$T/j.yaml" apply -f "$T/j-inv.yaml" >/dev/null
start_serve j "$T/j.yaml"
all_twice() { for i in 1 2 3 4 5 6; do ge "$T/j.yaml" j$i 2 || return 1; done; }
check "six secrets due together: all rotated again" wait_for 12 all_twice
kill -TERM "$PID_j"
wait "$PID_j"
runs=$(rk -c "$T/j.yaml" runs --output json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "  the first round in one run, the second spread over several by jitter ($runs runs)" test "$runs" -ge 3

# ---- 4. SIGTERM during a rotation: exit 0, the next start finishes the journal ----
conf s
printf 'secrets:\n  - {name: s1, locator: {path: s1}, policy: slowset}\n' >"$T/s-inv.yaml"
rk -c "$T/s.yaml" apply -f "$T/s-inv.yaml" >/dev/null
start_serve s "$T/s.yaml"
check "a rotation with a 4 s set hook starts" wait_for 5 contains "$T/s.err" '"step":"verified"'
t0=$(date +%s%3N)
kill -TERM "$PID_s"
wait "$PID_s"
rc=$?
t1=$(date +%s%3N)
check "SIGTERM mid-rotation: exit 0 (rc $rc)" test "$rc" = 0
check "  within 10 s ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 10000
run=$(rk -c "$T/s.yaml" runs --output json | python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin) if x["status"]=="running"]; print(r[0]["id"] if r else "")')
check "  the run is left unfinished in the journal ($run)" test -n "$run"
start_serve s "$T/s.yaml"
check "the next start resumes it" wait_for 15 contains "$T/s.err" "\"event\":\"serve.resumed\",\"run_id\":\"$run\""
check "  to done" sh -c "\"$REKEY_BIN\" -c '$T/s.yaml' run '$run' --output json | grep -q '\"status\": *\"done\"'"
check "  s1 rotated once in that run" test "$(rotations "$T/s.yaml" s1)" = 1
kill -TERM "$PID_s"
wait "$PID_s"
# kill -9 in the middle of a rotation: the next start finishes it as well.
printf '  - {name: s2, locator: {path: s2}, policy: slowset}\n' >>"$T/s-inv.yaml"
rk -c "$T/s.yaml" apply -f "$T/s-inv.yaml" >/dev/null
: >"$T/s.err"
start_serve s "$T/s.yaml"
check "s2's rotation starts" wait_for 5 contains "$T/s.err" '"secret":"s2","provider":"local","step":"verified"'
kill -9 "$PID_s"
wait "$PID_s" 2>/dev/null
run=$(rk -c "$T/s.yaml" runs --output json | python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin) if x["status"]=="running"]; print(r[0]["id"] if r else "")')
check "kill -9 mid-rotation leaves the run unfinished ($run)" test -n "$run"
: >"$T/s.err"
start_serve s "$T/s.yaml"
check "  the next start resumes it to done" wait_for 15 sh -c "\"$REKEY_BIN\" -c '$T/s.yaml' run '$run' --output json | grep -q '\"status\": *\"done\"'"
check "  s2 rotated exactly once" test "$(rotations "$T/s.yaml" s2)" = 1
got=$(rk -c "$T/s.yaml" get s2 | "$RK_FP" "$T/var-s")
want=$(rk -c "$T/s.yaml" status s2 --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["current_fp"])')
check "  its value is the one recorded" sh -c "[ -n '$got' ] && [ '$got' = '$want' ]"
kill -TERM "$PID_s"
wait "$PID_s"

# ---- 5. HA: two daemons on one Lease; exactly one rotates; the other takes over ----
lease_block="ha:
  lease: {provider: cluster, namespace: rekey, name: rekey-leader, duration: 2s, skew_margin: 1s}"
for h in ha1 ha2; do
	conf $h "$CLUSTER" "$lease_block"
	printf 'secrets:\n  - {name: k/db, provider: cluster, locator: {namespace: payments, secret: db, key: password}, policy: tick}\n' >"$T/$h-inv.yaml"
	rk -c "$T/$h.yaml" apply -f "$T/$h-inv.yaml" >/dev/null
done
start_serve ha1 "$T/ha1.yaml"
check "ha1 takes the lease" wait_for 5 contains "$T/ha1.err" '"event":"serve.leader","result":"acquired"'
start_serve ha2 "$T/ha2.yaml"
sleep 5
check "ha1: rekey_leader 1" test "$(metric "$PORT_ha1" rekey_leader)" = 1
check "ha2: rekey_leader 0 (standing by)" test "$(metric "$PORT_ha2" rekey_leader)" = 0
check "ha2 still serves /healthz" sh -c "curl -sf http://127.0.0.1:$PORT_ha2/healthz | grep -q ok"
check "  and /readyz (ready, not the leader)" sh -c "curl -s http://127.0.0.1:$PORT_ha2/readyz | grep -q '\"leader\": *false'"
TOK2=$(cat "$T/var-ha2/api.token")
check "  POST /v1/rotate on the standby: 503" test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOK2" -X POST "http://127.0.0.1:$PORT_ha2/v1/rotate/k/db")" = 503
check "only ha1 rotated" ge "$T/ha1.yaml" k/db 1
check "  ha2 none" test "$(rotations "$T/ha2.yaml" k/db)" = 0
kill -9 "$PID_ha1"
t0=$(date +%s)
check "ha1 killed: ha2 takes over within the lease (2 s + 1 s margin + a retry)" wait_for 8 contains "$T/ha2.err" '"event":"serve.leader","result":"acquired"'
t1=$(date +%s)
check "  ($((t1 - t0)) s) and rotates" wait_for 6 ge "$T/ha2.yaml" k/db 1
check "  ha2: rekey_leader 1" test "$(metric "$PORT_ha2" rekey_leader)" = 1
kill -TERM "$PID_ha2"
wait "$PID_ha2"
check "ha2 SIGTERM: exit 0" test $? = 0

# ---- 6. bounded concurrency: scheduler.parallel ----
# Each set hook counts the hooks running with it (under flock) and notes the peak.
cat >"$T/conc.sh" <<EOS
#!/bin/sh
exec 9>>"$T/conc.lock"
flock 9; n=\$((\$(cat "$T/conc" 2>/dev/null || echo 0) + 1)); echo \$n >"$T/conc"; echo \$n >>"$T/conc.peak"; flock -u 9
sleep 0.4
flock 9; echo \$((\$(cat "$T/conc") - 1)) >"$T/conc"; flock -u 9
EOS
chmod +x "$T/conc.sh"
printf 'name: counted\nrotate_every: 1h\ngenerator: {type: password, length: 24}\nset: {exec: [%s]}\n' "$T/conc.sh" >"$T/policy/counted.yaml"
{ echo 'secrets:'; for i in 1 2 3 4 5 6; do echo "  - {name: c$i, locator: {path: c$i}, policy: counted}"; done; } >"$T/c-inv.yaml"
for par in 1 3; do
	rm -f "$T/conc" "$T/conc.peak"
	conf c$par
	sed -i "s/jitter: 0s/jitter: 0s, parallel: $par/" "$T/c$par.yaml"
	rk -c "$T/c$par.yaml" apply -f "$T/c-inv.yaml" >/dev/null
	start_serve c$par "$T/c$par.yaml"
	all6() { for i in 1 2 3 4 5 6; do ge "$T/c$par.yaml" c$i 1 || return 1; done; }
	check "scheduler.parallel $par: six rotations done" wait_for 15 all6
	peak=$(sort -n "$T/conc.peak" | tail -1)
	check "  at most $par set hooks at once (peak $peak)" test "$peak" = "$par"
	eval "kill -TERM \$PID_c$par; wait \$PID_c$par"
done

# ---- 7. scheduled backups under load, retention, then restore and go on ----
AV=1s conf k "" "backup: {every: 1s, keep: 2}"
printf 'secrets:\n  - {name: t1, locator: {path: t1}, policy: tick}\n  - {name: t2, locator: {path: t2}, policy: tick}\n' >"$T/k-inv.yaml"
rk -c "$T/k.yaml" apply -f "$T/k-inv.yaml" >/dev/null
start_serve k "$T/k.yaml"
check "the daemon backs up every second while it rotates" wait_for 8 sh -c "[ \$(grep -c '\"event\":\"serve.backup\"' '$T/k.err') -ge 4 ]"
check "  keeping the newest 2" test "$(ls "$T/var-k/backups" | grep -c '^rekey-.*\.bak$')" = 2
lb=$(metric "$PORT_k" rekey_last_backup_timestamp_seconds)
check "  rekey_last_backup_timestamp_seconds is recent ($lb)" sh -c "[ \$(( $(date +%s) - ${lb%.*} )) -le 3 ]"
check "  t1 rotated meanwhile" wait_for 8 ge "$T/k.yaml" t1 2
expect_rc "rekey backup --to FILE while the daemon runs" 0 rk -c "$T/k.yaml" backup --to "$T/online.bak"
kill -TERM "$PID_k"
wait "$PID_k"
newest=$(ls "$T/var-k/backups"/rekey-*.bak | sort | tail -1)
n_at=$(rotations "$T/k.yaml" t1)
expect_rc "restore the newest backup taken under load" 0 rk -c "$T/k.yaml" restore --from "$newest" --yes
check "  the audit chain verifies" rk -c "$T/k.yaml" audit verify
for n in t1 t2; do
	got=$(rk -c "$T/k.yaml" get "$n" | "$RK_FP" "$T/var-k")
	want=$(rk -c "$T/k.yaml" status "$n" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["current_fp"])')
	check "  $n's value matches its recorded fingerprint" sh -c "[ -n '$got' ] && [ '$got' = '$want' ]"
done
start_serve k "$T/k.yaml"
check "the daemon goes on from the restored state: t1 rotates again" wait_for 10 ge "$T/k.yaml" t1 $((n_at))
check "  and the chain still verifies" rk -c "$T/k.yaml" audit verify
kill -TERM "$PID_k"
wait "$PID_k"
check "  SIGTERM: exit 0" test $? = 0

# Nothing a daemon printed carries a generated value.
for n in t1 t2; do
	v=$(rk -c "$T/a.yaml" get "$n" 2>/dev/null)
	check "no value of $n in the daemon's logs" sh -c "! grep -qF -- '$v' '$T/a.err' '$T/a.out'"
done
finish
