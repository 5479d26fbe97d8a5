#!/bin/sh
# After a run of rotations (with verify/set hooks and exec dependents, one
# hook failing to exercise error paths), none of the generated values, current
# or previous, appears in stdout, stderr, the logs, the DB files, the audit
# log, the local store files, or the argv and environment of any child.
. "$(dirname "$0")/lib.sh"

setup_local
cat >"$T/spy.sh" <<'EOS'
#!/bin/sh
# Records what a child can see of itself: its argv and environment.
cat >/dev/null
tr '\0' ' ' </proc/$$/cmdline >>"$1.cmdline"; echo >>"$1.cmdline"
tr '\0' '\n' </proc/$$/environ >>"$1.environ"
env >>"$1.env"
EOS
cat >"$T/echo-fail.sh" <<'EOS'
#!/bin/sh
# A broken verify hook that prints the value it was given and fails: rekey
# must redact it from the error it reports.
v=$(cat)
echo "hook saw: $v" >&2
exit 3
EOS
cat >"$T/policy/spied.yaml" <<EOP
name: spied
rotate_every: 1d
generator: {type: password, length: 30}
verify: {exec: [sh, $T/spy.sh, $T/verify]}
set: {exec: [sh, $T/spy.sh, $T/set]}
EOP
cat >"$T/policy/leaky-hook.yaml" <<EOP
name: leaky-hook
rotate_every: 1d
generator: {type: bytes, length: 24, encoding: hex}
verify: {exec: [sh, $T/echo-fail.sh]}
EOP
cat >"$T/policy/keys.yaml" <<EOP
name: keys
rotate_every: 1d
generator: {type: template, template: "postgres://app:{{password}}@db/app", password: {type: password, length: 20}}
EOP
cat >"$T/inv.yaml" <<EOI
secrets:
  - {name: a, locator: {path: a}, policy: spied, dependents: [{exec: [sh, $T/spy.sh, $T/dep]}]}
  - {name: b, locator: {path: b}, policy: spied}
  - {name: c, locator: {path: c}, policy: keys, dependents: [{exec: [sh, $T/spy.sh, $T/dep]}]}
  - {name: d, locator: {path: d}, policy: leaky-hook}
  - {name: e, locator: {path: e}, policy: signing-key}
EOI
rk init >"$T/o1" 2>"$T/e1"
rk apply -f "$T/inv.yaml" >>"$T/o1" 2>>"$T/e1"
for i in 1 2 3; do
	rk --log-level debug rotate a b c d e >>"$T/o1" 2>>"$T/e1"
done
rk --log-level debug --log-format text rotate a c >>"$T/o1" 2>>"$T/e1"
rk rollback a >>"$T/o1" 2>>"$T/e1"
for cmd in list status plan runs "history a" "audit" "audit verify"; do
	rk $cmd >>"$T/o1" 2>>"$T/e1"
	rk --output json $cmd >>"$T/o1" 2>>"$T/e1"
done
for r in $(rk --output json runs | python3 -c 'import json,sys; [print(r["id"]) for r in json.load(sys.stdin)]'); do
	rk run "$r" >>"$T/o1" 2>>"$T/e1"
done
check "the failing hook's error was reported" contains "$T/e1" "verify hook"
check "its echo of the value was redacted" contains "$T/e1" "[REDACTED]"

# Every value rekey generated: current and all previous versions of each secret.
: >"$T/values"
for s in a b c; do
	v=1
	while rk get "$s" --version $v >"$T/val" 2>/dev/null; do
		cat "$T/val" >>"$T/values"; echo >>"$T/values"
		v=$((v + 1))
	done
done
rk get e --version 1 | sed -n 2p >>"$T/values"   # a line of the PEM body
n=$(grep -c . "$T/values")
check "collected the generated values ($n)" [ "$n" -ge 10 ]
# d's hex values never became current (its verify fails); the hook echoed them:
# what reached rekey's stderr must not contain any 48-hex-digit run.
check "no hex value of the failing hook in stderr" sh -c "! grep -Eq '[0-9a-f]{48}' '$T/e1'"

scan() { # scan WHAT FILE...: no generated value appears in these files
	what=$1; shift
	found=""
	while IFS= read -r v; do
		[ -n "$v" ] || continue
		for f in "$@"; do
			[ -f "$f" ] || continue
			if grep -qaF -- "$v" "$f"; then found="$f"; fi
		done
	done <"$T/values"
	if [ -z "$found" ]; then pass "no value in $what"; else fail "a value leaked into $what ($found)"; fi
}
# Control: the scanner must see a value that is there.
head -1 "$T/values" >"$T/planted"
(scan "planted control file" "$T/planted") >"$T/control" 2>&1   # subshell: its FAIL is expected
check "the scanner detects a planted value" contains "$T/control" "leaked"
scan "stdout" "$T/o1"
scan "stderr and logs" "$T/e1"
sqlite3 "$T/var/rekey.db" .dump >"$T/dbdump" 2>/dev/null
check "the DB dump is readable" [ -s "$T/dbdump" ]
scan "the state DB (files and dump)" "$T/var/rekey.db" "$T/var/rekey.db-wal" "$T/dbdump"
rk --output json audit >"$T/audit.json"
scan "the audit log" "$T/audit.json"
scan "the local store files" $(find "$T/var/local" -type f)
check "children ran" [ -s "$T/dep.cmdline" -a -s "$T/verify.environ" ]
scan "argv and environment of hooks and dependents" "$T/verify.cmdline" "$T/verify.environ" \
	"$T/set.cmdline" "$T/set.environ" "$T/dep.cmdline" "$T/dep.environ" "$T/dep.env"
check "children got the run id but no value" contains "$T/dep.environ" "REKEY_RUN_ID="
finish
