#!/bin/sh
# kill -9 after every journal step (and between each external call and its
# journal row), then `rekey rotate --resume all`: the rotation finishes, the
# value in the store is the one whose fingerprint the state DB records as
# current, exactly one new version exists, the previous value is still
# retrievable, and the dependent restarted (once, or at least once when the
# crash fell between running it and journaling that it ran).
. "$(dirname "$0")/lib.sh"
: "${REKEY_FAULT_BIN:?}" "${RK_FP:?}"

setup_local
cat >"$T/count.sh" <<'EOS'
#!/bin/sh
# Reads and discards stdin (a hook gets the value there), counts its calls.
cat >/dev/null
echo x >>"$1"
EOS
cat >"$T/policy/crashy.yaml" <<EOP
name: crashy
rotate_every: 1d
generator: {type: password, length: 28}
verify: {exec: [sh, $T/count.sh, $T/verify.count]}
set: {exec: [sh, $T/count.sh, $T/set.count]}
EOP
cat >"$T/inv.yaml" <<EOI
secrets:
  - name: app/db
    locator: {path: app/db}
    policy: crashy
    dependents:
      - exec: [sh, $T/count.sh, $T/restarts]
EOI

check "the release binary has no crash points" sh -c "! grep -aq REKEY_FAULT '$REKEY_BIN'"
check "(control: the fault build has them)" grep -aq REKEY_FAULT "$REKEY_FAULT_BIN"

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

for point in planned generated stage-call staged verified set promote-call promoted \
	restart-call restarted; do
	rm -rf "$T/var" "$T/restarts"
	rk init >/dev/null && rk apply -f "$T/inv.yaml" >/dev/null && rk rotate app/db >/dev/null 2>&1
	v1=$(rk get app/db)
	rm -f "$T/restarts"
	REKEY_FAULT=$point "$REKEY_FAULT_BIN" rotate app/db >/dev/null 2>"$T/crash.err"
	rc=$?
	if [ "$rc" = 137 ]; then pass "$point: killed by SIGKILL"; else fail "$point: exit $rc, not 137"; fi
	check "$point: the run is left unfinished" sh -c "'$REKEY_BIN' runs | grep -q running"
	expect_rc "$point: resume finishes the run" 0 rk rotate --resume all
	check "$point: no run left unfinished" sh -c "! '$REKEY_BIN' runs | grep -q running"
	cur=$(rk get app/db)
	want_fp=$(rk status app/db --output json | json_field "['current_fp']")
	got_fp=$(printf %s "$cur" | "$RK_FP" "$T/var")
	check "$point: store value matches the recorded fingerprint" [ -n "$got_fp" -a "$got_fp" = "$want_fp" ]
	check "$point: the value changed" [ "$cur" != "$v1" ]
	check "$point: previous value retrievable" [ "$(rk get app/db --version 1)" = "$v1" ]
	ver=$(rk status app/db --output json | json_field "['current_version']")
	check "$point: exactly one new version" [ "$ver" = 2 ]
	check "$point: no second staged version" sh -c "! '$REKEY_BIN' get app/db --version 3 >/dev/null 2>&1"
	n=$(wc -l <"$T/restarts" 2>/dev/null || echo 0)
	if [ "$point" = restart-call ]; then
		check "$point: dependent restarted at least once, at most twice" [ "$n" -ge 1 -a "$n" -le 2 ]
	else
		check "$point: dependent restarted exactly once" [ "$n" = 1 ]
	fi
	check "$point: audit chain intact" sh -c "'$REKEY_BIN' audit verify >/dev/null"
done
finish
