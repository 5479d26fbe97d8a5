#!/bin/sh
# Backup and restore on the local provider: a round trip (values, audit
# chain, history); backups taken while rotations and applies run, the last
# one restored and the state going on from it; restore refused while the
# state is locked (75), for a changed, cut or wrong-key backup (1, the state
# unchanged) and without --yes off a terminal (2); the file's and the key's
# modes; no plaintext in a backup; --output json.
. "$(dirname "$0")/lib.sh"
: "${RK_FP:?}"

setup_local
# Quiet: the info logs of every step go to a file (expect_rc still captures its own).
rk() { "$REKEY_BIN" "$@" 2>>"$T/log"; }
# For the checks of what a refusal says: its stderr goes to $T/err.
rke() { "$REKEY_BIN" "$@"; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\n' >"$T/policy/quick.yaml"
cat >"$T/policy/slow.yaml" <<EOP
name: slow
rotate_every: 1d
generator: {type: password, length: 24}
set: {exec: [sh, -c, "cat >/dev/null; sleep 3"]}
EOP
names="bk/alpha bk/beta bk/gamma bk/delta"
{
	echo "secrets:"
	for n in $names; do printf '  - {name: %s, locator: {path: %s}, policy: quick}\n' "$n" "$n"; done
	echo "  - {name: bk/slow, locator: {path: bk/slow}, policy: slow}"
} >"$T/inv.yaml"
rk init >/dev/null
expect_rc "apply" 0 rk apply -f "$T/inv.yaml"
# shellcheck disable=SC2086
expect_rc "a first rotation gives each a value" 0 rk rotate $names
sum() { sha256sum "$1" | cut -d' ' -f1; }
mode() { stat -c %a "$1"; }
# consistent LABEL: each secret's recorded fingerprint is its current value's.
consistent() {
	bad=
	for n in $names; do
		got=$(rk get "$n" | "$RK_FP" "$T/var")
		want=$(rk status "$n" --output json | jq_ "d['current_fp']")
		[ -n "$got" ] && [ "$got" = "$want" ] || bad="$bad $n"
	done
	if [ -z "$bad" ]; then pass "$1"; else fail "$1 (not:$bad)"; fi
}

# ---- a backup: mode, key, contents, json ----
expect_rc "backup --to FILE" 0 rk --output json backup --to "$T/b1.bak"
cp "$T/out" "$T/b1.json"
check "the backup file is 0600" [ "$(mode "$T/b1.bak")" = 600 ]
check "the backup key was made, 0600" [ "$(mode "$T/var/backup.key")" = 600 ]
check "no temporary file is left beside it" sh -c "! ls '$T' | grep -q 'b1.bak.tmp'"
check "--output json: path, bytes, created_at, audit_rows, files" python3 -c "
import json, os, subprocess
d = json.load(open('$T/b1.json'))
assert set(d) == {'path', 'bytes', 'created_at', 'audit_rows', 'files'}, d
assert d['path'] == '$T/b1.bak' and d['bytes'] == os.path.getsize('$T/b1.bak'), d
rows = json.loads(subprocess.check_output(['$REKEY_BIN', '--output', 'json', 'audit', 'verify']))['rows']
assert d['audit_rows'] == rows, (d, rows)
assert d['files'] >= 3 + 2 * 4, d   # the DB, 2 keys, CURRENT and a version per secret
assert abs(d['created_at'] - __import__('time').time()) < 60, d"
check "the plain DB does hold the names and the SQLite header (the grep works)" \
	sh -c "grep -q 'bk/alpha' '$T/var/rekey.db' && grep -q 'SQLite format 3' '$T/var/rekey.db'"
leak=
for n in $names; do
	v=$(rk get "$n")
	grep -qF -- "$v" "$T/b1.bak" && leak="$leak value-of-$n"
	grep -qF -- "$n" "$T/b1.bak" && leak="$leak $n"
done
for s in "SQLite format 3" "secret.rotated" "state.initialized" "quick"; do
	grep -qF -- "$s" "$T/b1.bak" && leak="$leak '$s'"
done
check "no value, secret name, audit event or SQLite header in the backup" [ -z "$leak" ]

# ---- round trip ----
for n in $names; do rk get "$n" >"$T/before.${n#bk/}"; done
rk --output json history bk/alpha >"$T/hist.before"
rk rotate bk/alpha bk/beta >/dev/null
check "(a rotation after the backup changed a value)" sh -c "[ \"\$('$REKEY_BIN' get bk/alpha)\" != \"\$(cat '$T/before.alpha')\" ]"
expect_rc "restore without --yes and without a terminal is a usage error" 2 \
	rke restore --from "$T/b1.bak" </dev/null
check "  and says why" contains "$T/err" "--yes"
expect_rc "restore --from FILE --yes" 0 rk --output json restore --from "$T/b1.bak" --yes
cp "$T/out" "$T/r1.json"
same=1
for n in $names; do [ "$(rk get "$n")" = "$(cat "$T/before.${n#bk/}")" ] || same=0; done
check "every value is the one at the backup" [ "$same" = 1 ]
expect_rc "audit verify after the restore" 0 rk audit verify
rk --output json history bk/alpha >"$T/hist.after"
check "history is the one at the backup" cmp -s "$T/hist.before" "$T/hist.after"
check "restore --output json: restored_from, created_at, audit_rows, previous_state" python3 -c "
import json, os
d = json.load(open('$T/r1.json')); b = json.load(open('$T/b1.json'))
assert set(d) == {'restored_from', 'created_at', 'audit_rows', 'previous_state'}, d
assert d['restored_from'] == '$T/b1.bak' and d['created_at'] == b['created_at'], d
assert d['audit_rows'] == b['audit_rows'], d
assert os.path.isfile(os.path.join(d['previous_state'], 'rekey.db')), d
assert d['previous_state'].startswith('$T/var.pre-restore-'), d"
check "the audit log ends with state.restored, by this user, with the backup's time" python3 -c "
import json, subprocess
rows = json.loads(subprocess.check_output(['$REKEY_BIN', '--output', 'json', 'audit']))
b = json.load(open('$T/b1.json'))
last = rows[-1]
assert last['event'] == 'state.restored', last
assert json.loads(last['detail'])['created_at'] == b['created_at'], last
assert '@' in last['actor'], last
assert len(rows) == b['audit_rows'] + 1, len(rows)"
check "the backup key stayed in the state dir" [ "$(mode "$T/var/backup.key")" = 600 ]
check "the restored DB passes SQLite's integrity check" \
	sh -c "[ \"\$(sqlite3 '$T/var/rekey.db' 'PRAGMA integrity_check')\" = ok ]"
check "nothing left of the unpacking" sh -c "! ls -d '$T'/var.restore-* 2>/dev/null | grep -q ."
consistent "after the restore: each fingerprint matches its value"

# ---- refused restores: the state unchanged ----
before=$(sum "$T/var/rekey.db")
python3 -c "
d = bytearray(open('$T/b1.bak', 'rb').read()); d[len(d) // 2] ^= 1
open('$T/tampered.bak', 'wb').write(d)"
expect_rc "a changed backup is refused with exit 1" 1 rke restore --from "$T/tampered.bak" --yes
check "  and says so" contains "$T/err" "does not decrypt"
head -c $(( $(stat -c %s "$T/b1.bak") - 40 )) "$T/b1.bak" >"$T/cut.bak"
expect_rc "a truncated backup is refused with exit 1" 1 rke restore --from "$T/cut.bak" --yes
check "  and says so" contains "$T/err" "truncated"
printf 'not a backup at all\n' >"$T/junk.bak"
expect_rc "a file that is no backup is refused with exit 1" 1 rk restore --from "$T/junk.bak" --yes
python3 -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())" >"$T/other.key"
chmod 600 "$T/other.key"
cp "$T/rekey.yaml" "$T/other.yaml"
echo "backup: {key_file: $T/other.key}" >>"$T/other.yaml"
expect_rc "a backup under another key is refused with exit 1" 1 \
	rke -c "$T/other.yaml" restore --from "$T/b1.bak" --yes
check "  and says so" contains "$T/err" "another backup key"
check "the state DB is unchanged by the refused restores" [ "$(sum "$T/var/rekey.db")" = "$before" ]
check "and no previous-state copy was made for them" \
	[ "$(ls -d "$T"/var.pre-restore-* | wc -l)" = 1 ]

# ---- the lock ----
before=$(sum "$T/var/rekey.db")
if command -v flock >/dev/null; then
	flock "$T/var/rekey.lock" sleep 3 &
	fl=$!
	sleep 0.5
	expect_rc "restore while another process holds the state lock: 75" 75 \
		rke restore --from "$T/b1.bak" --yes
	check "  and is told to stop it" contains "$T/err" "stop"
	wait $fl
	check "  the state DB unchanged" [ "$(sum "$T/var/rekey.db")" = "$before" ]
fi
rk rotate bk/slow >"$T/slow.out" &
rot=$!
# Until the rotation holds the lock (its set hook sleeps 3 s).
i=0
while flock -n "$T/var/rekey.lock" true 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
expect_rc "restore while a rotation runs (held in a slow set hook): 75" 75 \
	rk restore --from "$T/b1.bak" --yes
expect_rc "while a backup during that rotation works" 0 rk backup --to "$T/during.bak"
wait $rot
check "the rotation was not disturbed" [ $? = 0 ]
expect_rc "audit verify" 0 rk audit verify

# ---- the key file's mode ----
chmod 644 "$T/var/backup.key"
expect_rc "a backup key readable by others is refused" 1 rke backup --to "$T/b2.bak"
check "  with the fix in the message" contains "$T/err" "chmod 600"
check "  and no file written" [ ! -e "$T/b2.bak" ]
expect_rc "restore refuses it too" 1 rk restore --from "$T/b1.bak" --yes
chmod 600 "$T/var/backup.key"

# ---- backups under load ----
rm -f "$T/stop"
(
	while [ ! -f "$T/stop" ]; do
		# shellcheck disable=SC2086
		"$REKEY_BIN" rotate $names >/dev/null 2>>"$T/load.log"
		"$REKEY_BIN" apply -f "$T/inv.yaml" >/dev/null 2>>"$T/load.log"
	done
) &
loop=$!
sleep 0.5
ok=0
for i in 1 2 3 4 5; do
	"$REKEY_BIN" --output json backup --to "$T/load$i.bak" >"$T/load$i.json" 2>>"$T/log" && ok=$((ok + 1))
	sleep 0.3
done
touch "$T/stop"
wait $loop
check "5 backups taken while rotations and applies ran" [ "$ok" = 5 ]
runs=$(rk --output json runs --limit 1000 | jq_ "len(d)")
check "(the loop did rotate meanwhile: $runs runs)" [ "$runs" -gt 6 ]
expect_rc "restore the last backup taken under load" 0 rk restore --from "$T/load5.bak" --yes
expect_rc "audit verify after it" 0 rk audit verify
rk rotate --resume all >/dev/null 2>&1
# shellcheck disable=SC2086
expect_rc "the restored state goes on: rotate again" 0 rk rotate $names
gets=0
for n in $names; do rk get "$n" >/dev/null && gets=$((gets + 1)); done
check "rekey get works for each secret" [ "$gets" = 4 ]
consistent "status is consistent: each fingerprint matches its current value"
expect_rc "and the audit chain still verifies" 0 rk audit verify

finish
