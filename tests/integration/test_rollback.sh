#!/bin/sh
# Rollback and run order on the local provider: rollback restores the value
# current just before the latest change (rotation or rollback) even when the
# changes fall in the same second; after a killed and resumed run; a killed
# rollback resumes as the same rollback; history and runs newest first; an
# unfinished run is never hidden by --limit; a name given twice; dependents
# see every secret; a failed restart is journaled as failed.
. "$(dirname "$0")/lib.sh"
: "${REKEY_FAULT_BIN:?}" "${RK_FP:?}"

setup_local
# Quiet: the info logs of every step go to a file (expect_rc still captures its own).
rk() { "$REKEY_BIN" "$@" 2>>"$T/log"; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\n' >"$T/policy/quick.yaml"
cat >"$T/count.sh" <<'EOS'
#!/bin/sh
echo "$REKEY_RUN_ID" >>"$1"
EOS
cat >"$T/inv.yaml" <<EOI
secrets:
  - {name: m/a, locator: {path: m/a}, policy: quick}
  - {name: m/b, locator: {path: m/b}, policy: quick}
  - name: m/dep
    locator: {path: m/dep}
    policy: quick
    dependents:
      - exec: [sh, $T/count.sh, $T/dep.count]
EOI
rk init >/dev/null
expect_rc "apply" 0 rk apply -f "$T/inv.yaml"

# ---- rotate / rollback sequences, all within about one second ----
seq_check() { # seq_check LABEL EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1"; fi
}
rk rotate m/a >/dev/null; v1=$(rk get m/a)
rk rotate m/a >/dev/null; v2=$(rk get m/a)
seq_check "rotate: a new value" 1 "$([ "$v2" != "$v1" ] && echo 1)"
rk rollback m/a >"$T/rb1.out"; v3=$(rk get m/a)
seq_check "rollback 1 restores v1 (the value before the latest rotation)" "$v1" "$v3"
check "rollback's table says 'rolled back'" contains "$T/rb1.out" "rolled back"
check "rollback's table does not say rotated" sh -c "! grep -q ' rotated ' '$T/rb1.out'"
rk rotate m/a >/dev/null; v4=$(rk get m/a)
seq_check "rotate after a rollback: a new value" 1 "$([ "$v4" != "$v1" ] && [ "$v4" != "$v2" ] && echo 1)"
rk rollback m/a >/dev/null; v5=$(rk get m/a)
seq_check "rollback 2 restores v3's value (not v2, the one rolled back from)" "$v3" "$v5"
rk rollback m/a >/dev/null; v6=$(rk get m/a)
seq_check "rollback of a rollback restores v4 (the value before the latest change)" "$v4" "$v6"
rk rollback m/a >/dev/null; v7=$(rk get m/a)
seq_check "and again: v5's value" "$v5" "$v7"
check "every step made exactly one version (8 versions)" \
	[ "$(rk status m/a --output json | jq_ "d['current_version']")" = 7 ]
want_fp=$(rk status m/a --output json | jq_ "d['current_fp']")
check "the recorded fingerprint is the current value's" [ "$(printf %s "$v7" | "$RK_FP" "$T/var")" = "$want_fp" ]
rk rollback m/a --to 2 >/dev/null
seq_check "rollback --to 2 restores version 2's value" "$v2" "$(rk get m/a)"
rk rollback m/a >/dev/null
seq_check "then rollback undoes the --to" "$v7" "$(rk get m/a)"

# ---- history and runs: newest first, whatever the second ----
rk --output json history m/a >"$T/h.json"
check "history is newest first (a strict run sequence)" sh -c "python3 - '$T/h.json' <<'EOP'
import json, sys
h = json.load(open(sys.argv[1]))
kinds = [r['kind'] for r in h]
assert kinds == ['rollback', 'rollback', 'rollback', 'rollback', 'rollback', 'rotate', 'rollback', 'rotate', 'rotate'], kinds
EOP"
rk --output json runs --limit 3 >"$T/runs.json"
check "runs --limit 3: the three newest, newest first" sh -c "python3 - '$T/runs.json' '$T/h.json' <<'EOP'
import json, sys
runs = [r['id'] for r in json.load(open(sys.argv[1]))]
hist = [r['run_id'] for r in json.load(open(sys.argv[2]))]
assert runs == hist[:3], (runs, hist[:3])
EOP"

# ---- after a killed and resumed run, rollback returns the value from before it ----
rk rotate m/b >/dev/null
before=$(rk get m/b)
REKEY_FAULT=staged "$REKEY_FAULT_BIN" rotate m/b >/dev/null 2>&1
check "killed mid-rotation" sh -c "'$REKEY_BIN' runs | grep -q running"
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22; do rk rotate m/a >/dev/null; done
expect_rc "runs --limit 5 still lists the unfinished run" 0 rk runs --limit 5
check "the unfinished run is in the table" contains "$T/out" running
check "a header line gives the resume command" contains "$T/out" "rekey rotate --resume"
rk --output json runs --limit 1 >"$T/runs.json"
check "runs --output json --limit 1 lists the unfinished run too" sh -c \
	"python3 -c \"import json; r=json.load(open('$T/runs.json')); assert any(x['status']=='running' for x in r), r\""
expect_rc "resume" 0 rk rotate --resume all
after=$(rk get m/b)
check "the resumed run changed the value" [ "$after" != "$before" ]
expect_rc "rollback after the resumed run" 0 rk rollback m/b
seq_check "rollback restores the value from before the interrupted run" "$before" "$(rk get m/b)"

# ---- a killed rollback resumes as the rollback, not as a rotation to a new value ----
for point in generated staged verified promoted; do
	rk rotate m/b >/dev/null
	prev=$(rk get m/b)
	rk rotate m/b >/dev/null
	REKEY_FAULT=$point "$REKEY_FAULT_BIN" rollback m/b >/dev/null 2>&1
	rc=$?
	check "rollback killed at $point (exit 137)" [ "$rc" = 137 ]
	expect_rc "rollback killed at $point: resume" 0 rk rotate --resume all
	seq_check "rollback killed at $point: resumed to the value it was restoring" "$prev" "$(rk get m/b)"
done
check "the audit chain verifies" rk audit verify

# ---- a name given twice is rotated once, and no run is left behind ----
expect_rc "rotate m/a m/a" 0 rk rotate m/a m/a
check "one rotation in that run" sh -c "'$REKEY_BIN' --output json runs --limit 1 | python3 -c \"import json,sys; r=json.load(sys.stdin)[0]; assert r['secrets']==1 and r['status']=='done', r\""
check "no run left running" sh -c "! '$REKEY_BIN' runs | grep -q running"
expect_rc "rollback of an unknown secret: usage error" 2 rk rollback m/nope
check "no run left running after a refused rollback" sh -c "! '$REKEY_BIN' runs | grep -q running"

# ---- rollback --no-restart; rollback restarts dependents otherwise ----
rk rotate m/dep >/dev/null
rk rotate m/dep >/dev/null
rm -f "$T/dep.count"
expect_rc "rollback --no-restart" 0 rk rollback m/dep --no-restart
check "the dependent did not run" [ ! -e "$T/dep.count" ]
check "the report says not restarted" contains "$T/out" "not restarted"
expect_rc "rollback restarts the dependent" 0 rk rollback m/dep
check "the dependent ran once" [ "$(wc -l <"$T/dep.count")" = 1 ]

# ---- a failed restart: exit 3 and the journal says restart_failed ----
cat >"$T/inv2.yaml" <<EOI
secrets:
  - name: f/a
    locator: {path: f/a}
    policy: quick
    dependents:
      - exec: [sh, -c, "exit 4"]
EOI
rk apply -f "$T/inv2.yaml" >/dev/null
expect_rc "rotation with a failing dependent: exit 3" 3 rk rotate f/a
run=$(rk --output json runs --limit 1 | jq_ "d[0]['id']")
rk --output json run "$run" >"$T/run.json"
check "the journal records restart_failed, not restarted" sh -c "python3 - '$T/run.json' <<'EOP'
import json, sys
steps = [s['step'] for s in json.load(open(sys.argv[1]))['steps'] if s['secret'] == 'f/a']
assert 'restart_failed' in steps and 'restarted' not in steps, steps
EOP"
check "history shows the state restart_failed" sh -c "'$REKEY_BIN' history f/a | grep -q restart_failed"

# ---- a dependent of 100 secrets with long names sees them all ----
long=$(printf 'x%.0s' $(seq 1 150))
{
	echo "secrets:"
	for i in $(seq 1 100); do
		printf '  - name: many/%s-%03d\n    locator: {path: many/%03d}\n    policy: quick\n' "$long" "$i" "$i"
		printf '    dependents:\n      - exec: [sh, -c, "printf %%s \\"$REKEY_SECRETS\\" >%s/secrets.env; echo $REKEY_SECRETS_COUNT >%s/secrets.count"]\n' "$T" "$T"
	done
} >"$T/inv3.yaml"
expect_rc "apply 100 secrets with long names" 0 rk apply -f "$T/inv3.yaml"
names=$(rk --output json list | jq_ "' '.join(s['name'] for s in d if s['name'].startswith('many/'))")
# shellcheck disable=SC2086
expect_rc "rotate the 100 (one shared dependent)" 0 rk rotate $names
check "REKEY_SECRETS_COUNT is 100" [ "$(cat "$T/secrets.count")" = 100 ]
check "REKEY_SECRETS names all 100 secrets, in full" sh -c "python3 - '$T/secrets.env' '$long' <<'EOP'
import sys
got = open(sys.argv[1]).read().split(',')
want = ['many/%s-%03d' % (sys.argv[2], i) for i in range(1, 101)]
assert sorted(got) == want, (len(got), got[:2])
EOP"

# ---- rollback --to a version max_versions pruned says so ----
printf '  small: {type: local, max_versions: 2}\n' >>"$T/rekey.yaml"
printf 'secrets:\n  - {name: pr/a, provider: small, locator: {path: pr/a}, policy: quick}\n' >"$T/pr.yaml"
expect_rc "apply a secret on a store that keeps 2 versions" 0 rk apply -f "$T/pr.yaml"
for i in 1 2 3 4; do rk rotate pr/a >/dev/null; done
before=$(rk get pr/a | "$RK_FP" "$T/var")
expect_rc "rollback --to 1 after pruning: exit 1" 1 "$REKEY_BIN" rollback pr/a --to 1
check "  says max_versions pruned it" sh -c "grep -q \"version 1 of 'pr/a' was pruned: the local store keeps the newest 2 versions (max_versions of provider 'small'); it is at version 4\" '$T/err'"
check "  the value is unchanged" [ "$(rk get pr/a | "$RK_FP" "$T/var")" = "$before" ]
expect_rc "rollback --to a version never written: exit 1" 1 "$REKEY_BIN" rollback pr/a --to 9
check "  says it has no such version" sh -c "grep -q 'local store has no version 9' '$T/err'"
expect_rc "rollback --to 3 (kept) works" 0 rk rollback pr/a --to 3

finish
