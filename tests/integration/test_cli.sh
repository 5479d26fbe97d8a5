#!/bin/sh
# The commands of the foundation against the local provider: init, apply and
# its diff, validation errors that change nothing, rotate/rollback/history,
# needs_attention after repeated failures, the lock, permissions, audit
# tampering, and --output json.
. "$(dirname "$0")/lib.sh"

setup_local
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- init ----
expect_rc "init succeeds" 0 rk init
check "state dir is 0700" [ "$(stat -c %a "$T/var")" = 700 ]
check "DB is 0600" [ "$(stat -c %a "$T/var/rekey.db")" = 600 ]
check "master key is 0600" [ "$(stat -c %a "$T/var/master.key")" = 600 ]
check "fingerprint key is 0600" [ "$(stat -c %a "$T/var/fingerprint.key")" = 600 ]
k1=$(cat "$T/var/master.key")
expect_rc "init again keeps what exists" 0 rk init
check "keys are not replaced" [ "$(cat "$T/var/master.key")" = "$k1" ]

# ---- apply ----
cat >"$T/policy/quick.yaml" <<EOP
name: quick
rotate_every: 1d
generator: {type: password, length: 24}
EOP
cat >"$T/inv.yaml" <<EOI
secrets:
  - {name: one, locator: {path: one}, policy: quick, tier: 0, owner: team-a}
  - {name: two, locator: {path: two}, policy: api-key}
  - {name: old, locator: {path: old}, policy: quick, last_rotated: 2020-01-01}
EOI
expect_rc "apply --dry-run" 0 rk apply -f "$T/inv.yaml" --dry-run
check "dry run shows the additions" contains "$T/out" "+ one"
expect_rc "list after a dry run is empty" 0 rk list
check "nothing was added by the dry run" sh -c "! grep -q '^one' '$T/out'"
expect_rc "apply" 0 rk apply -f "$T/inv.yaml"
check "apply prints the diff" contains "$T/out" "3 added, 0 changed, 0 removed"
expect_rc "apply again" 0 rk apply -f "$T/inv.yaml"
check "re-applying changes nothing" contains "$T/out" "0 added, 0 changed, 0 removed"
sed 's/tier: 0, owner: team-a/tier: 1, owner: team-a/' "$T/inv.yaml" | grep -v 'name: two' >"$T/inv2.yaml"
expect_rc "apply a change" 0 rk apply -f "$T/inv2.yaml"
check "the diff names the changed field" contains "$T/out" "~ one (tier)"
check "a secret missing from the file is kept" contains "$T/out" "! two is not in"
expect_rc "apply --prune" 0 rk apply -f "$T/inv2.yaml" --prune
check "prune removes it" contains "$T/out" "- two"
check "the audit log has each change once, with its kind" python3 -c "
import json, subprocess
rows = json.loads(subprocess.run(['$REKEY_BIN', '--output', 'json', 'audit'], capture_output=True).stdout)
ev = [(r['event'], r['subject']) for r in rows if r['event'].startswith('secret.')]
assert sorted(ev) == sorted([('secret.added','one'), ('secret.added','two'), ('secret.added','old'),
                             ('secret.changed','one'), ('secret.removed','two')]), ev"

# ---- bad input: exit 2, file:line:col, nothing changed ----
rk --output json list >"$T/before.json"
printf 'secrets:\n  - {name: x, locator: {path: x}, policy: nope}\n' >"$T/bad1.yaml"
expect_rc "unknown policy is a usage error" 2 rk apply -f "$T/bad1.yaml"
check "error names file:line:col" contains "$T/err" "bad1.yaml:2:"
printf 'secrets:\n  - name: x\n    locator: {path: x}\n    colour: blue\n' >"$T/bad2.yaml"
expect_rc "unknown key" 2 rk apply -f "$T/bad2.yaml"
check "error names the key and line" sh -c "grep -q \"bad2.yaml:4:5: unknown key 'colour'\" '$T/err'"
printf 'secrets:\n  - name: x\n    locator: {path: x\n' >"$T/bad3.yaml"
expect_rc "malformed YAML" 2 rk apply -f "$T/bad3.yaml"
check "malformed YAML names the file" contains "$T/err" "bad3.yaml:"
printf 'secrets:\n  - {name: x, locator: {path: x}, provider: vault}\n' >"$T/bad4.yaml"
expect_rc "unknown provider" 2 rk apply -f "$T/bad4.yaml"
printf 'secrets:\n  - {name: a, locator: {path: x}}\n  - {name: a, locator: {path: y}}\n' >"$T/bad5.yaml"
expect_rc "duplicate name" 2 rk apply -f "$T/bad5.yaml"
check "duplicate names the second entry" contains "$T/err" "bad5.yaml:3:"
printf 'name: broken\nrotate_every: 30x\n' >"$T/policy/broken.yaml"
expect_rc "a bad duration in a policy" 2 rk list
check "names the policy file and line" contains "$T/err" "broken.yaml:2:"
rm "$T/policy/broken.yaml"
printf 'state_dir: %s/var\nproviders:\n  v: {type: vault-ish}\n' "$T" >"$T/badcfg.yaml"
expect_rc "unknown provider type in rekey.yaml" 2 rk -c "$T/badcfg.yaml" list
check "names rekey.yaml:3" contains "$T/err" "badcfg.yaml:3:"
rk --output json list >"$T/after.json"
check "failed applies changed nothing" cmp -s "$T/before.json" "$T/after.json"

# ---- plan, rotate, history, get, rollback ----
expect_rc "plan" 0 rk plan
check "plan explains a never-rotated secret" contains "$T/out" "never rotated by rekey"
check "plan explains an overdue one" contains "$T/out" "past grace"
expect_rc "rotate --due --dry-run" 0 rk rotate --due --dry-run
check "dry run lists what would rotate" contains "$T/out" "would rotate old"
for bad in 0 257 -1 abc 4x; do
	expect_rc "rotate --parallel $bad is a usage error" 2 rk rotate --parallel "$bad" one
	check "  ... saying the range" contains "$T/err" "--parallel takes a number from 1 to 256"
done
check "  ... and nothing was rotated" sh -c "! '$REKEY_BIN' get one >/dev/null 2>&1"
expect_rc "rotate one" 0 rk rotate --parallel 1 one
v1=$(rk get one)
check "value has the policy's length" [ ${#v1} = 24 ]
expect_rc "rotate one again" 0 rk rotate one
v2=$(rk get one)
check "the value changed" [ "$v1" != "$v2" ]
check "the previous version is retrievable" [ "$(rk get one --version 1)" = "$v1" ]
expect_rc "history" 0 rk history one
check "history shows two rotations" [ "$(grep -c done "$T/out")" = 2 ]
expect_rc "rollback" 0 rk rollback one
check "rollback restores the previous value" [ "$(rk get one)" = "$v1" ]
check "rollback made a new version" [ "$(rk status one --output json | json "d['current_version']")" = 3 ]
expect_rc "rotate --due" 0 rk rotate --due
check "due secrets rotated" sh -c "'$REKEY_BIN' --output json list | python3 -c 'import json,sys; assert all(p[\"last_result\"]==\"rotated\" for p in json.load(sys.stdin))'"
expect_rc "rotate --due again has nothing to do" 0 rk rotate --due
check "nothing to rotate" contains "$T/out" "nothing to rotate"
expect_rc "unknown secret" 2 rk rotate nosuch
expect_rc "rotate without names is a usage error" 2 rk rotate
expect_rc "get of an unknown secret is a usage error" 2 rk get nosuch

# ---- logs: one JSON object a line, a run_id on every line of a run ----
"$REKEY_BIN" --log-level debug --log-format json rotate one old >/dev/null 2>"$T/log.json"
check "every log line of a run is JSON with a run_id" python3 -c "
import json
lines=[json.loads(l) for l in open('$T/log.json')]
assert len(lines) >= 8, len(lines)
for l in lines:
    assert {'ts','level','event','run_id'} <= set(l), l
assert len({l['run_id'] for l in lines}) == 1"

# ---- needs_attention after max_attempts failures ----
cat >"$T/policy/failing.yaml" <<EOP
name: failing
rotate_every: 1d
max_attempts: 2
generator: {type: password, length: 24}
verify: {exec: ["false"]}
EOP
printf 'secrets:\n  - {name: bad, locator: {path: bad}, policy: failing}\n' >"$T/inv3.yaml"
expect_rc "apply a failing secret" 0 rk apply -f "$T/inv3.yaml"
expect_rc "a failed rotation exits 1" 1 rk rotate bad
check "the failure is explained" contains "$T/err" "verify hook false exited with status 1"
expect_rc "second failure" 1 rk rotate --due
expect_rc "status" 0 rk status
check "status shows attention" sh -c "grep '^bad ' '$T/out' | grep -q attention"
expect_rc "--due skips a secret that needs attention" 0 rk rotate --due --dry-run
check "it is not in the due list" sh -c "! grep -q 'would rotate bad' '$T/out'"
check "the failed rotation left no current value" sh -c "! '$REKEY_BIN' get bad >/dev/null 2>&1"
expect_rc "partial failure exits 3" 3 rk rotate bad one

# ---- a dependent that fails: the value is rotated, the run is partial ----
printf 'secrets:\n  - {name: depfail, locator: {path: depfail}, policy: quick, dependents: [{exec: ["false"]}]}\n' >"$T/inv4.yaml"
expect_rc "apply a secret with a failing dependent" 0 rk apply -f "$T/inv4.yaml"
expect_rc "its rotation is a partial success (exit 3)" 3 rk --output json rotate depfail
check "  the secret rotated and the dependent is reported failed" python3 -c "
import json; d=json.load(open('$T/out'))
assert d['status'] == 'partial', d['status']
assert [s['result'] for s in d['secrets']] == ['rotated'], d['secrets']
assert [x['result'] for x in d['dependents']] == ['failed'], d['dependents']"

# ---- the lock ----
if command -v flock >/dev/null; then
	flock "$T/var/rekey.lock" sleep 3 &
	sleep 0.5
	expect_rc "a second rekey gets exit 75" 75 rk rotate one
	check "and is told why" contains "$T/err" "another rekey holds the lock"
	wait
fi

# ---- permissions ----
chmod 644 "$T/var/rekey.db"
expect_rc "a world-readable DB is refused" 2 rk list
check "with the fix in the message" contains "$T/err" "chmod 600"
chmod 600 "$T/var/rekey.db"

# ---- audit ----
expect_rc "audit verify on an intact log" 0 rk audit verify
n=$(rk --output json audit | json "len(d)")
check "every change was audited ($n rows)" [ "$n" -ge 10 ]
cp "$T/var/rekey.db" "$T/db.bak"
sqlite3 "$T/var/rekey.db" "DROP TRIGGER audit_no_update; UPDATE audit SET subject='evil' WHERE seq=3;"
expect_rc "an edited row is detected" 1 rk audit verify
check "and named" contains "$T/err" "row 3"
cp "$T/db.bak" "$T/var/rekey.db"; rm -f "$T/var/rekey.db-wal" "$T/var/rekey.db-shm"
sqlite3 "$T/var/rekey.db" "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq=4;"
expect_rc "a removed row is detected" 1 rk audit verify
check "the missing row is named" contains "$T/err" "row 4 is missing"
cp "$T/db.bak" "$T/var/rekey.db"; rm -f "$T/var/rekey.db-wal" "$T/var/rekey.db-shm"
sqlite3 "$T/var/rekey.db" "DROP TRIGGER audit_no_update; UPDATE audit SET seq=-1 WHERE seq=5; UPDATE audit SET seq=5 WHERE seq=6; UPDATE audit SET seq=6 WHERE seq=-1;"
expect_rc "reordered rows are detected" 1 rk audit verify
check "at the first moved row" contains "$T/err" "row 5"
cp "$T/db.bak" "$T/var/rekey.db"; rm -f "$T/var/rekey.db-wal" "$T/var/rekey.db-shm"
check "the triggers reject UPDATE" sh -c "! sqlite3 '$T/var/rekey.db' \"UPDATE audit SET actor='x'\" 2>/dev/null"
check "the triggers reject DELETE" sh -c "! sqlite3 '$T/var/rekey.db' 'DELETE FROM audit' 2>/dev/null"

# ---- json and help ----
expect_rc "runs --output json" 0 rk --output json runs
check "is JSON" python3 -c "import json; json.load(open('$T/out'))"
for c in init apply list status plan rotate rollback history runs run audit get; do
	expect_rc "$c --help" 0 rk $c --help
done
expect_rc "unknown command" 2 rk frobnicate
finish
