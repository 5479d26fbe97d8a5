#!/bin/sh
# SIGTERM (and Ctrl-C) during `rekey rotate --parallel N`: the command stops
# within a bound (no new rotation starts; steps in flight finish or are left
# where the journal has them), exits 3 and prints the exact --resume command;
# the run stays unfinished and blocks new rotations of its secrets; --resume
# finishes every secret exactly once, each value the one whose fingerprint
# the state DB records, and the audit chain verifies. Repeated a few times,
# the signal landing at different moments.
. "$(dirname "$0")/lib.sh"
: "${RK_FP:?}"

setup_local
rk() { "$REKEY_BIN" "$@" 2>>"$T/log"; }
# A set hook of 0.3 s: a run of 16 secrets on 4 workers lasts about 1.2 s.
cat >"$T/policy/slow.yaml" <<EOP
name: slow
rotate_every: 1d
generator: {type: password, length: 24}
set: {exec: [sh, -c, "cat >/dev/null; sleep 0.3"]}
EOP
names=
{
	echo "secrets:"
	for i in $(seq 1 16); do
		printf '  - {name: st/s%02d, locator: {path: st/s%02d}, policy: slow}\n' "$i" "$i"
		names="$names st/s$(printf %02d "$i")"
	done
} >"$T/inv.yaml"
rk init >/dev/null
expect_rc "apply 16 secrets" 0 rk apply -f "$T/inv.yaml"
# shellcheck disable=SC2086
expect_rc "a first rotation gives each a value" 0 rk rotate --parallel 8 $names

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }

for trial in 1 2 3; do
	for sig in TERM INT; do
		tag="trial $trial, SIG$sig"
		for s in $names; do
			rk status "$s" --output json | json_field "['current_version']" >"$T/ver.${s#st/}"
		done
		# shellcheck disable=SC2086
		"$REKEY_BIN" rotate --parallel 4 $names >"$T/out" 2>>"$T/log" &
		pid=$!
		sleep "0.$((trial * 2))"
		t0=$(ms_now)
		kill -"$sig" "$pid"
		wait "$pid"
		rc=$?
		ms=$(( $(ms_now) - t0 ))
		check "$tag: exits 3 (got $rc)" [ "$rc" = 3 ]
		# Bound: the 0.3 s hooks in flight finish; nothing new starts.
		check "$tag: within 1.5 s of the signal ($ms ms)" [ "$ms" -lt 1500 ]
		run=$("$REKEY_BIN" runs --output json 2>/dev/null | python3 -c "import json,sys; r=[x for x in json.load(sys.stdin) if x['status']=='running']; print(r[0]['id'] if r else '')")
		check "$tag: the run is left unfinished" [ -n "$run" ]
		check "$tag: the output names the command that finishes it" \
			contains "$T/out" "finish with: rekey rotate --resume $run"
		check "$tag: some rotations were stopped before their end" contains "$T/out" "interrupted"
		busy=$(sqlite3 "$T/var/rekey.db" "SELECT secret FROM rotations WHERE run_id='$run' AND state NOT IN ('done','failed','rolled_back') LIMIT 1")
		if [ -n "$busy" ]; then
			expect_rc "$tag: a new rotation of $busy (unfinished in that run) is refused" 2 \
				"$REKEY_BIN" rotate "$busy"
		fi
		expect_rc "$tag: --resume finishes the run" 0 rk rotate --parallel 4 --resume "$run"
		check "$tag: the run is done" [ "$(sqlite3 "$T/var/rekey.db" "SELECT status FROM runs WHERE id='$run'")" = done ]
		bad=
		for s in $names; do
			v0=$(cat "$T/ver.${s#st/}")
			ver=$(rk status "$s" --output json | json_field "['current_version']")
			want_fp=$(rk status "$s" --output json | json_field "['current_fp']")
			got_fp=$(rk get "$s" | "$RK_FP" "$T/var")
			[ "$ver" = $((v0 + 1)) ] || bad="$bad $s:version $v0->$ver"
			[ -n "$got_fp" ] && [ "$got_fp" = "$want_fp" ] || bad="$bad $s:fingerprint"
		done
		check "$tag: every secret rotated exactly once, value = recorded fingerprint${bad:+ (bad:$bad)}" [ -z "$bad" ]
	done
done
expect_rc "audit verify" 0 rk audit verify
finish
