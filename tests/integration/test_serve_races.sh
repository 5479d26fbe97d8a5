#!/bin/sh
# rekey serve between the steps, on the local provider: kill -9 at random
# moments over many trials, then a resume leaves every run and rotation final,
# the audit chain intact and each value the one whose fingerprint is recorded;
# a `rekey rotate`, `rekey emergency` (which pauses the scheduler) and `rekey
# apply` / `apply --prune` from the command line while the daemon rotates; a
# SIGHUP storm during runs; concurrent POST /v1/rotate/NAME racing the
# scheduler; and two daemons (no `ha`) on one state dir.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "test_serve_races: curl missing"; exit 1; }
command -v sqlite3 >/dev/null || { echo "test_serve_races: sqlite3 missing"; exit 1; }

DAEMONS=""
# start_serve NAME CONFIG: a daemon, its log appended to $T/NAME.err; sets PORT_<NAME>
# and PID_<NAME> (PORT_<NAME> empty when it did not listen within 10 s).
start_serve() {
	: >>"$T/$1.err"
	lines=$(wc -l <"$T/$1.err")
	"$REKEY_BIN" -c "$2" --log-format json serve >>"$T/$1.out" 2>>"$T/$1.err" &
	eval "PID_$1=$!"
	DAEMONS="$DAEMONS $!"
	i=0
	while ! tail -n +$((lines + 1)) "$T/$1.err" | grep -q '"event":"serve.listening"' && [ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	eval "PORT_$1=$(tail -n +$((lines + 1)) "$T/$1.err" | sed -n 's/.*"event":"serve.listening".*"port":"\([0-9]*\)".*/\1/p' | head -1)"
}
# stop NAME: SIGTERM to the daemon, waits; returns its exit code
stop() { eval "kill -TERM \$PID_$1; wait \$PID_$1"; }
stop_all() { for p in $DAEMONS; do kill -9 "$p" 2>/dev/null; done; }
trap 'stop_all; rm -rf "$T"' EXIT
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
wait_for() {
	n=$(($1 * 10)); shift
	i=0
	while ! "$@" && [ $i -lt $n ]; do sleep 0.1; i=$((i + 1)); done
	"$@"
}
# db NAME SQL: a read-only query on NAME's state DB
db() { sqlite3 "file:$T/var-$1/rekey.db?mode=ro" "$2"; }
rotations() { db "$1" "SELECT count(*) FROM rotations WHERE secret = '$2' AND state = 'done'"; }
done_total() { db "$1" "SELECT count(*) FROM rotations WHERE state = 'done'"; }
ge_total() { [ "$(done_total "$1")" -ge "$2" ]; }
running_runs() {
	rk -c "$T/$1.yaml" runs --output json | python3 -c '
import json,sys; print(len([r for r in json.load(sys.stdin) if r["status"] == "running"]))'
}
# rnd LO HI: a random integer in [LO, HI]
rnd() { echo $(($1 + $(od -An -N2 -tu2 /dev/urandom) % ($2 - $1 + 1))); }
ms_sleep() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# conf NAME [BLOCK]: a config with its own state dir and policy dir (fast: every 1 s;
# hooked: every 1 s with a set hook of 0.1-0.3 s), initialised; $PAR: scheduler.parallel
conf() {
	mkdir -p "$T/pol-$1"
	printf 'name: fast\nrotate_every: 1s\ngrace: 1h\ngenerator: {type: password, length: 24}\n' >"$T/pol-$1/fast.yaml"
	printf 'name: hooked\nrotate_every: 1s\ngrace: 1h\ngenerator: {type: password, length: 24}\nset: {exec: [sh, -c, "sleep 0.$(($$ %% 3 + 1))"]}\n' >"$T/pol-$1/hooked.yaml"
	cat >"$T/$1.yaml" <<EOC
state_dir: $T/var-$1
environment: test
policy_dir: $T/pol-$1
providers:
  local: {type: local}
# (the volleys of part 4 are many requests from one client: no rate limit in the way)
server: {listen: "127.0.0.1:0", rate_limit: {rps: 1000, burst: 1000}}
scheduler: {jitter: 0s${PAR:+, parallel: $PAR}}
${2:-}
EOC
	rk -c "$T/$1.yaml" init >/dev/null
}
# eight NAME: apply 8 secrets (s1-s4 fast, s5-s8 hooked)
eight() {
	{ echo 'secrets:'; for i in 1 2 3 4 5 6 7 8; do
		p=fast; [ $i -gt 4 ] && p=hooked
		echo "  - {name: s$i, locator: {path: s$i}, policy: $p}"
	done; } >"$T/$1-inv.yaml"
	rk -c "$T/$1.yaml" apply -f "$T/$1-inv.yaml" >/dev/null
}
# settle NAME: nothing due for an hour, then a daemon resumes what is unfinished
# and (once idle: no run running, nothing due) SIGTERM: exit 0
idle() {
	[ "$(running_runs "$1")" = 0 ] &&
		rk -c "$T/$1.yaml" status --output json | python3 -c '
import json,sys; sys.exit(1 if any(x["due"] for x in json.load(sys.stdin)) else 0)' &&
		[ "$(running_runs "$1")" = 0 ]
}
settle() {
	sed -i 's/^rotate_every: 1s/rotate_every: 1h/' "$T/pol-$1"/*.yaml
	start_serve "$1" "$T/$1.yaml"
	check "$1: a last start resumes what is unfinished and goes idle" wait_for 20 idle "$1"
	stop "$1"
	check "  SIGTERM: exit 0 ($?)" test $? = 0
}
# invariants NAME SECRET...: no run running, the audit chain intact, each value's
# fingerprint the one recorded, every rotation in a final state
invariants() {
	n=$1; shift
	check "$n: no run left running" test "$(running_runs "$n")" = 0
	check "  rekey audit verify: intact" verified "$n"
	bad=""
	for s in "$@"; do
		got=$(rk -c "$T/$n.yaml" get "$s" 2>/dev/null | "$RK_FP" "$T/var-$n")
		want=$(rk -c "$T/$n.yaml" status "$s" --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["current_fp"])')
		{ [ -n "$got" ] && [ "$got" = "$want" ]; } || bad="$bad $s"
	done
	check "  every value has the recorded fingerprint (wrong:${bad:- none})" test -z "$bad"
	nf=$(db "$n" "SELECT count(*) FROM rotations WHERE state NOT IN ('done', 'failed', 'rolled_back')")
	check "  no rotation in a non-final state ($nf)" test "$nf" = 0
	check "  the state DB passes integrity_check" test "$(db "$n" 'PRAGMA integrity_check')" = ok
}
verified() { rk -c "$T/$1.yaml" audit verify >/dev/null; }
S8="s1 s2 s3 s4 s5 s6 s7 s8"

# ---- 1. kill -9 at random moments, over many trials ----
# One rotation at a time: a run of the four hooks takes ~0.8 s of each ~1.8 s.
PAR=1; conf k; PAR=
eight k
trials=0 midrun=0 midstep=0
t_end=$(($(date +%s) + 22))
while [ "$(date +%s)" -lt "$t_end" ] || [ $trials -lt 10 ]; do
	"$REKEY_BIN" -c "$T/k.yaml" --log-format json serve >>"$T/k.out" 2>>"$T/k.err" &
	p=$!
	ms_sleep "$(rnd 50 1500)"
	kill -9 "$p"
	wait "$p" 2>/dev/null
	trials=$((trials + 1))
	[ "$(running_runs k)" -gt 0 ] && midrun=$((midrun + 1))
	[ "$(db k "SELECT count(*) FROM rotations WHERE state NOT IN ('done', 'failed', 'rolled_back')")" -gt 0 ] &&
		midstep=$((midstep + 1))
done
echo "  kill -9 trials: $trials ($midrun left a run unfinished, $midstep a rotation between its steps; $(done_total k) rotations done)"
check "at least 10 kill -9 trials ($trials)" test $trials -ge 10
check "  some kills landed mid-run ($midrun)" test $midrun -ge 1
check "  and the daemon got work done between them" test "$(done_total k)" -ge 8
check "  the next starts resumed the runs left unfinished" contains "$T/k.err" '"event":"serve.resumed"'
settle k
invariants k $S8

# ---- 2. two commands at once ----
conf c
eight c
printf 'name: slowem\nrotate_every: 1h\ngenerator: {type: password, length: 24}\nset: {exec: [sh, -c, "sleep 1"]}\n' >"$T/pol-c/slowem.yaml"
printf '  - {name: e1, locator: {path: e1}, policy: slowem}\n  - {name: e2, locator: {path: e2}, policy: slowem}\n' >>"$T/c-inv.yaml"
rk -c "$T/c.yaml" apply -f "$T/c-inv.yaml" >/dev/null
start_serve c "$T/c.yaml"
check "the daemon listens (port $PORT_c)" test -n "$PORT_c"
wait_for 10 ge_total c 10
codes=""
for i in 1 2 3 4 5 6 7 8 9 10; do
	rk -c "$T/c.yaml" rotate "s$(rnd 1 8)" >/dev/null 2>"$T/rot.err"
	codes="$codes $?"
	ms_sleep "$(rnd 0 150)"
done
check "rekey rotate NAME while the daemon rotates: 0 or 75, never else (exit codes:$codes)" \
	sh -c "! echo '$codes' | tr ' ' '\n' | grep -qv '^\(0\|75\|\)$'"
# The emergency (two 1 s set hooks, one at a time) waits while the daemon is in a run (75).
rk_emergency() {
	i=0
	while :; do
		rk -c "$T/c.yaml" emergency --yes --reason x --scope 'name=e*' --parallel 1 >"$T/em.out" 2>"$T/em.err"
		rc=$?
		[ $rc = 75 ] && [ $i -lt 50 ] || break
		i=$((i + 1)); sleep 0.1
	done
	echo $rc >"$T/em.rc"
}
rk_emergency &
em=$!
paused=0
i=0
while kill -0 $em 2>/dev/null && [ $i -lt 200 ]; do
	[ "$(metric "$PORT_c" rekey_scheduler_paused)" = 1 ] && paused=$((paused + 1))
	sleep 0.1; i=$((i + 1))
done
wait $em
check "rekey emergency while the daemon runs: exit 0 ($(cat "$T/em.rc"))" test "$(cat "$T/em.rc")" = 0
check "  /metrics said rekey_scheduler_paused 1 during it ($paused samples)" test $paused -ge 1
check "  and 0 after it" test "$(metric "$PORT_c" rekey_scheduler_paused)" = 0
n=$(done_total c)
check "  the daemon goes on rotating after it" wait_for 6 ge_total c $((n + 4))
# A `rekey emergency` killed mid-run leaves its run open: the daemon must not stay paused for good.
i=0
while [ $i -lt 50 ]; do
	: >"$T/em.err"
	"$REKEY_BIN" -c "$T/c.yaml" emergency --yes --reason y --scope 'name=e*' --parallel 1 >"$T/em.out" 2>"$T/em.err" &
	em=$!
	wait_for 2 sh -c "grep -q '\"event\":\"run.started\"' '$T/em.err' || ! kill -0 $em 2>/dev/null"
	grep -q '"event":"run.started"' "$T/em.err" && break
	wait $em; i=$((i + 1)); sleep 0.1
done
sleep 0.5
kill -9 $em; wait $em 2>/dev/null
emrun=$(sed -n 's/.*"event":"run.started","run_id":"\([^"]*\)".*/\1/p' "$T/em.err")
check "an emergency killed mid-run ($emrun) pauses the scheduler" test "$(metric "$PORT_c" rekey_scheduler_paused)" = 1
check "  the daemon sees its command died and finishes the run" wait_for 8 contains "$T/c.err" "\"event\":\"serve.resumed\",\"run_id\":\"$emrun\""
check "  which lifts the pause" test "$(metric "$PORT_c" rekey_scheduler_paused)" = 0
n=$(done_total c)
check "  and it goes on rotating" wait_for 6 ge_total c $((n + 4))
# apply adds x1, x2; --prune then removes x1 while the daemon rotates.
apply_c() {
	i=0
	while rk -c "$T/c.yaml" apply "$@" >/dev/null 2>"$T/apply.err"; [ $? = 75 ] && [ $i -lt 50 ]; do
		i=$((i + 1)); sleep 0.1
	done
}
printf '  - {name: x1, locator: {path: x1}, policy: fast}\n  - {name: x2, locator: {path: x2}, policy: hooked}\n' >>"$T/c-inv.yaml"
apply_c -f "$T/c-inv.yaml"
check "apply adds x1 and x2: the daemon rotates them" wait_for 6 sh -c "[ \$(sqlite3 'file:$T/var-c/rekey.db?mode=ro' \"SELECT count(*) FROM rotations WHERE secret = 'x1' AND state = 'done'\") -ge 2 ]"
check "  and x2" test "$(rotations c x2)" -ge 1
grep -v 'name: x1' "$T/c-inv.yaml" >"$T/c-inv2.yaml"
apply_c -f "$T/c-inv2.yaml" --prune
gone() { ! rk -c "$T/c.yaml" status "$1" >/dev/null 2>&1; }
check "apply --prune removes x1 while the daemon rotates" gone x1
sleep 0.5	# a run that took x1 before the prune ends
mark=$(wc -l <"$T/c.err")
sleep 2
x1_steps=$(tail -n +$((mark + 1)) "$T/c.err" | grep -c '"secret":"x1"')
check "  x1 is not rotated after it ($x1_steps step lines in 2 s)" test "$x1_steps" = 0
check "  x2 still is" sh -c "tail -n +$((mark + 1)) '$T/c.err' | grep -q '\"secret\":\"x2\".*\"step\":\"done\"'"
check "  the daemon is up" kill -0 "$PID_c"
errs=$(grep '"level":"error"' "$T/c.err" | grep -c 'x1')
check "  its log has no error line about x1 ($errs)" test "$errs" = 0
check "  nor any error line at all ($(grep -c '"level":"error"' "$T/c.err"))" sh -c "! grep -q '\"level\":\"error\"' '$T/c.err'"
stop c
check "SIGTERM: exit 0 ($?)" test $? = 0
settle c
invariants c $S8 e1 e2 x2

# ---- 3. a SIGHUP storm during runs ----
conf h
eight h
start_serve h "$T/h.yaml"
wait_for 10 ge_total h 8
n=$(done_total h)
for i in $(seq 20); do kill -HUP "$PID_h"; sleep 0.05; done
check "20 SIGHUPs 50 ms apart: the daemon stays up" kill -0 "$PID_h"
check "  it rotated during them and goes on ($n -> $(done_total h))" wait_for 5 ge_total h $((n + 8))
rl=$(grep -c 'configuration and policies reloaded' "$T/h.err")
check "  reloaded ($rl times), never refused" sh -c "[ $rl -ge 1 ] && ! grep -q 'reload refused' '$T/h.err'"
stop h
check "  SIGTERM: exit 0 ($?)" test $? = 0
check "  rekey audit verify: intact" verified h

# ---- 4. the API racing the scheduler ----
conf a
printf 'secrets:\n  - {name: api1, locator: {path: api1}, policy: hooked}\n' >"$T/a-inv.yaml"
rk -c "$T/a.yaml" apply -f "$T/a-inv.yaml" >/dev/null
start_serve a "$T/a.yaml"
TOK=$(cat "$T/var-a/api.token")
wait_for 5 sh -c "[ \$(sqlite3 'file:$T/var-a/rekey.db?mode=ro' \"SELECT count(*) FROM rotations WHERE state = 'done'\") -ge 1 ]"
# A volley of 10 at once; another (up to 5) while all met a rotation in flight (409).
volley() {
	curls=""
	for i in 1 2 3 4 5 6 7 8 9 10; do
		curl -s -o "$T/post$1-$i.json" -w '%{http_code}\n' -H "Authorization: Bearer $TOK" \
			-X POST "http://127.0.0.1:$PORT_a/v1/rotate/api1" >"$T/post$1-$i.code" &
		curls="$curls $!"
	done
	wait $curls
}
ids="" v=0
while [ -z "$ids" ] && [ $v -lt 5 ]; do
	v=$((v + 1))
	volley $v
	ids=$(python3 -c '
import json,sys
for f in sys.argv[1:]:
    try: print(json.load(open(f)).get("run_id", ""))
    except ValueError: pass' "$T"/post*.json | grep . | tr '\n' ' ')
done
codes=$(cat "$T"/post*.code | tr '\n' ' ')
check "$v volley(s) of 10 concurrent POST /v1/rotate/api1: each 202 or 409 ($codes)" \
	sh -c "! echo '$codes' | tr ' ' '\n' | grep -qv '^\(202\|409\|\)$' && [ \$(echo '$codes' | wc -w) = $((v * 10)) ]"
check "  at least one accepted (${ids:-none})" test -n "$ids"
run_final() {
	st=$(curl -s -H "Authorization: Bearer $TOK" "http://127.0.0.1:$PORT_a/v1/runs/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status"))')
	[ "$st" = done ] || [ "$st" = not_started ]
}
# Meanwhile api1 never has two rotations in flight (not in a final state) at once.
in_flight=0
all_final() {
	f=$(db a "SELECT count(*) FROM rotations WHERE secret = 'api1' AND state NOT IN ('done', 'failed', 'rolled_back')")
	[ "$f" -gt "$in_flight" ] && in_flight=$f
	for id in $ids; do run_final "$id" || return 1; done
}
check "  every accepted run reads done or not_started" wait_for 20 all_final
check "  api1 had at most one rotation in flight at any sample ($in_flight)" test "$in_flight" -le 1
check "  the daemon is up" kill -0 "$PID_a"
# No two rotations of api1 in flight at once: one step stream a run, never interleaved.
inter=$(db a "SELECT count(*) FROM steps a JOIN steps b ON a.secret = b.secret AND a.run_id < b.run_id
	WHERE a.secret = 'api1' AND b.id > (SELECT min(id) FROM steps WHERE run_id = a.run_id AND secret = 'api1')
	AND b.id < (SELECT max(id) FROM steps WHERE run_id = a.run_id AND secret = 'api1')")
check "  api1's runs' steps never interleave ($inter)" test "$inter" = 0
stop a
check "  SIGTERM: exit 0 ($?)" test $? = 0
settle a
invariants a api1

# ---- 5. two daemons on one state dir, without ha ----
conf d
eight d
start_serve d1 "$T/d.yaml"
start_serve d2 "$T/d.yaml"
check "two daemons on one state dir both listen ($PORT_d1, $PORT_d2)" sh -c "[ -n '$PORT_d1' ] && [ -n '$PORT_d2' ]"
sleep 2
check "  both still up" sh -c "kill -0 $PID_d1 && kill -0 $PID_d2"
r1=$(grep -c '"event":"serve.run"' "$T/d1.err")
r2=$(grep -c '"event":"serve.run"' "$T/d2.err")
echo "  runs in 2 s: d1 $r1, d2 $r2; $(grep -c '"event":"serve.wait"' "$T/d1.err" "$T/d2.err" | tr '\n' ' ')waits for the lock"
check "  they rotated ($(done_total d) done)" test "$(done_total d)" -ge 8
stop d1
check "  d1 SIGTERM: exit 0 ($?)" test $? = 0
stop d2
check "  d2 SIGTERM: exit 0 ($?)" test $? = 0
settle d
invariants d $S8
finish
