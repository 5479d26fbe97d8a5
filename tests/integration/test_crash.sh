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

# ---- the same crash points with 8 rotations in flight (rotate --parallel 8) ----
# The first worker to reach the point kills the process while the other seven
# are at other steps; resume must finish all eight exactly once each, and the
# dependent they share restarts once, after the last of them.
{
	echo "secrets:"
	for i in 1 2 3 4 5 6 7 8; do
		printf '  - name: p/s%s\n    locator: {path: p/s%s}\n    policy: crashy\n' "$i" "$i"
		printf '    dependents:\n      - exec: [sh, %s, %s]\n' "$T/count.sh" "$T/restarts"
	done
} >"$T/inv8.yaml"
all8="p/s1 p/s2 p/s3 p/s4 p/s5 p/s6 p/s7 p/s8"
for point in planned generated stage-call staged verified set promote-call promoted \
	restart-call restarted; do
	tag="parallel 8, $point"
	rm -rf "$T/var" "$T/restarts"
	# shellcheck disable=SC2086
	rk init >/dev/null && rk apply -f "$T/inv8.yaml" >/dev/null && rk rotate $all8 >/dev/null 2>&1
	for s in $all8; do rk get "$s" >"$T/v1.${s#p/}"; done
	rm -f "$T/restarts"
	# shellcheck disable=SC2086
	REKEY_FAULT=$point "$REKEY_FAULT_BIN" rotate --parallel 8 $all8 >/dev/null 2>"$T/crash.err"
	rc=$?
	if [ "$rc" = 137 ]; then pass "$tag: killed by SIGKILL"; else fail "$tag: exit $rc, not 137"; fi
	expect_rc "$tag: resume finishes the run" 0 rk rotate --parallel 8 --resume all
	check "$tag: no run left unfinished" sh -c "! '$REKEY_BIN' runs | grep -q running"
	bad=
	for s in $all8; do
		cur=$(rk get "$s")
		want_fp=$(rk status "$s" --output json | json_field "['current_fp']")
		got_fp=$(printf %s "$cur" | "$RK_FP" "$T/var")
		ver=$(rk status "$s" --output json | json_field "['current_version']")
		[ -n "$got_fp" ] && [ "$got_fp" = "$want_fp" ] || bad="$bad $s:fingerprint"
		[ "$cur" != "$(cat "$T/v1.${s#p/}")" ] || bad="$bad $s:unchanged"
		[ "$ver" = 2 ] || bad="$bad $s:version=$ver"
		[ "$(rk get "$s" --version 1)" = "$(cat "$T/v1.${s#p/}")" ] || bad="$bad $s:previous"
		! "$REKEY_BIN" get "$s" --version 3 >/dev/null 2>&1 || bad="$bad $s:extra-version"
	done
	check "$tag: each of the 8: value = recorded fingerprint, changed, exactly one new version, previous kept${bad:+ (bad:$bad)}" [ -z "$bad" ]
	n=$(wc -l <"$T/restarts" 2>/dev/null || echo 0)
	if [ "$point" = restart-call ]; then
		check "$tag: the shared dependent restarted once or twice ($n)" [ "$n" -ge 1 -a "$n" -le 2 ]
	else
		check "$tag: the shared dependent restarted exactly once ($n)" [ "$n" = 1 ]
	fi
	check "$tag: audit chain intact" sh -c "'$REKEY_BIN' audit verify >/dev/null"
done
finish
