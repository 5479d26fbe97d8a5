#!/bin/sh
# What rekey accepts from its user and how it answers: bad provider blocks are
# refused by every command that loads rekey.yaml (exit 2, file:line, the key);
# missing input files are exit 2; one exit code per outcome and command family
# (0, 1, 2, 3, 75, the table in the README); messages that name the element,
# the encoding error or the line; and what `plan` says when nothing is due.
. "$(dirname "$0")/lib.sh"

setup_local
cat >"$T/policy/quick.yaml" <<EOP
name: quick
rotate_every: 1d
generator: {type: password, length: 24}
EOP
cat >"$T/policy/failing.yaml" <<EOP
name: failing
rotate_every: 1d
generator: {type: password, length: 24}
verify: {exec: ["false"]}
EOP
cat >"$T/inv.yaml" <<EOI
secrets:
  - {name: one, locator: {path: one}, policy: quick}
  - {name: two, locator: {path: two}, policy: quick}
  - {name: fresh, locator: {path: fresh}, policy: quick}
  - {name: broken, locator: {path: broken}, policy: failing}
  - {name: depfail, locator: {path: depfail}, policy: quick, dependents: [{exec: ["false"]}]}
EOI
# Every command with arguments that would succeed on a good configuration.
COMMANDS="init|apply -f $T/inv.yaml|list|status|plan|rotate --due|rollback one|history one|runs|audit|doctor|get one|guard --env-var HOME"
either() { cat "$T/out" "$T/err" | grep -qF -- "$1"; }	# doctor reports on stdout
each_command() { # each_command PREFIX RC WHAT ARGS...: every command, with ARGS before it
	prefix=$1; want=$2; what=$3; shift 3
	echo "$COMMANDS" | tr '|' '\n' >"$T/commands"
	while read -r c; do
		# shellcheck disable=SC2086
		expect_rc "$prefix: $(echo "$c" | cut -d' ' -f1) exits $want" "$want" rk "$@" $c
		[ -z "$what" ] || check "  and names $what" either "$what"
	done <"$T/commands"
}

# ---- 1. a bad provider block is refused by every command, before anything is made ----
cat >"$T/badlocal.yaml" <<EOC
state_dir: $T/var
policy_dir: $T/policy
providers:
  local: {type: local, max_versions: 1}
EOC
each_command "local max_versions: 1" 2 "badlocal.yaml:4:" -c "$T/badlocal.yaml"
check "  the message names the key" contains "$T/err" "max_versions of provider 'local' must be between 2 and 1000"
check "init made no state directory" [ ! -e "$T/var" ]
cat >"$T/badvault.yaml" <<EOC
state_dir: $T/var
policy_dir: $T/policy
providers:
  vault:
    type: vault
    address: http://127.0.0.1:8200
    auth: {method: token, token_file: $T/no-token-file}
EOC
each_command "vault http:// address" 2 "badvault.yaml:6:" -c "$T/badvault.yaml"
check "  the message names the key" contains "$T/err" "plain http:// address refused"
check "init made no state directory" [ ! -e "$T/var" ]
sed 's/    address: .*/    address: https:\/\/vault.example:8200/; s/method: token, token_file: .*}/method: approle, role_id: x}/' \
	"$T/badvault.yaml" >"$T/badauth.yaml"
for c in list apply plan status; do
	[ "$c" = apply ] && a="-f $T/inv.yaml" || a=""
	# shellcheck disable=SC2086
	expect_rc "vault approle without secret_id_file: $c exits 2" 2 rk -c "$T/badauth.yaml" $c $a
	check "  naming badauth.yaml:7 and the key" sh -c "grep -q 'badauth.yaml:7:.*secret_id_file' '$T/err'"
done

# ---- 3. a missing input file is a usage error (2), whoever names it ----
each_command "-c a missing file" 2 "$T/nope.yaml" -c "$T/nope.yaml"
expect_rc "\$REKEY_CONFIG naming a missing file: list exits 2" 2 env REKEY_CONFIG="$T/nope.yaml" "$REKEY_BIN" list
check "  and names it" contains "$T/err" "$T/nope.yaml"
expect_rc "\$REKEY_CONFIG naming a missing file: guard exits 2" 2 env REKEY_CONFIG="$T/nope.yaml" "$REKEY_BIN" guard --env-var HOME
expect_rc "-c a directory: list exits 2" 2 rk -c "$T" list
printf 'state_dir: %s/var\nenvironment: test\npolicy_dir: %s/no-policies\n' "$T" "$T" >"$T/nopol.yaml"
each_command "a missing policy_dir" 2 "nopol.yaml:3:13: policy_dir $T/no-policies cannot be read" -c "$T/nopol.yaml"

# ---- exit codes per command family: 0 ----
expect_rc "init: 0" 0 rk init
expect_rc "apply: 0" 0 rk apply -f "$T/inv.yaml"
expect_rc "list: 0" 0 rk list
expect_rc "status: 0" 0 rk status
expect_rc "status NAME: 0" 0 rk status one
expect_rc "plan: 0" 0 rk plan
expect_rc "rotate NAME: 0" 0 rk rotate one two
expect_rc "rotate again: 0" 0 rk rotate one
expect_rc "rollback: 0" 0 rk rollback one
expect_rc "history: 0" 0 rk history one
expect_rc "runs: 0" 0 rk runs
run_id=$(rk --output json runs | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['id'])")
expect_rc "run RUN: 0" 0 rk run "$run_id"
expect_rc "audit: 0" 0 rk audit
expect_rc "audit verify: 0" 0 rk audit verify
expect_rc "doctor: 0" 0 rk doctor
expect_rc "get: 0" 0 rk get two
expect_rc "guard: 0" 0 env V="$(head -c 32 /dev/urandom | base64)" "$REKEY_BIN" guard --env-var V
expect_rc "rotate --resume all: 0" 0 rk rotate --resume all

# ---- 2: usage, configuration, an unknown NAME or RUN, a missing input file ----
expect_rc "init with an argument: 2" 2 rk init extra
expect_rc "apply without -f: 2" 2 rk apply
expect_rc "apply -f a missing file: 2" 2 rk apply -f "$T/nope.yaml"
check "  names the file" contains "$T/err" "$T/nope.yaml"
expect_rc "apply -f a directory: 2" 2 rk apply -f "$T"
expect_rc "list with an argument: 2" 2 rk list extra
expect_rc "status of an unknown NAME: 2" 2 rk status nosuch
check "  says so" contains "$T/err" "no secret named 'nosuch'"
expect_rc "plan --at garbage: 2" 2 rk plan --at soon
expect_rc "rotate an unknown NAME: 2" 2 rk rotate nosuch
expect_rc "rotate --resume an unknown RUN: 2" 2 rk rotate --resume r-nosuch
expect_rc "rollback an unknown NAME: 2" 2 rk rollback nosuch
expect_rc "history of an unknown NAME: 2" 2 rk history nosuch
expect_rc "runs --limit x: 2" 2 rk runs --limit x
expect_rc "run of an unknown RUN: 2" 2 rk run r-nosuch
expect_rc "audit --since garbage: 2" 2 rk audit --since garbage
expect_rc "doctor with an argument: 2" 2 rk doctor extra
expect_rc "get of an unknown NAME: 2" 2 rk get nosuch
expect_rc "get without NAME: 2" 2 rk get
expect_rc "guard with nothing to check: 2" 2 rk guard
expect_rc "guard --rules a missing file: 2" 2 rk guard --rules "$T/nope-rules.yaml"
check "  names the file" contains "$T/err" "$T/nope-rules.yaml"
expect_rc "guard --policy unknown: 2" 2 rk guard --env-var HOME --policy nosuch

# ---- 1: a check or an operation failed ----
printf 'state_dir: %s/nostate\npolicy_dir: %s/policy\n' "$T" "$T" >"$T/nostate.yaml"
for c in list status plan "rotate --due" "history one" runs audit "get one" "rollback one" "apply -f $T/inv.yaml"; do
	# shellcheck disable=SC2086
	expect_rc "$(echo "$c" | cut -d' ' -f1) without a state directory: 1" 1 rk -c "$T/nostate.yaml" $c
	check "  says to run init" contains "$T/err" "rekey init"
done
expect_rc "doctor without a state directory: 1" 1 rk -c "$T/nostate.yaml" doctor
printf 'state_dir: /proc/rekey-cannot-exist\n' >"$T/procstate.yaml"
expect_rc "init that cannot create the state directory: 1" 1 rk -c "$T/procstate.yaml" init
expect_rc "rotate whose every secret fails: 1" 1 rk rotate broken
expect_rc "get of a secret never rotated: 1" 1 rk get fresh
expect_rc "rollback of a secret never rotated: 1" 1 rk rollback fresh
expect_rc "guard on a weak value: 1" 1 env V=changeme "$REKEY_BIN" guard --env-var V
expect_rc "guard --file of a missing file: 1 (a failed check, not a usage error)" 1 rk guard --file "$T/no-secret-file"
check "  as not present" contains "$T/out" "present"

# ---- 3: something in the run did not finish ----
expect_rc "rotate with a failing dependent: 3" 3 rk rotate depfail
expect_rc "rotate with one secret failing and one rotating: 3" 3 rk rotate broken two

# ---- 75: another rekey holds the lock ----
if command -v flock >/dev/null; then
	flock "$T/var/rekey.lock" sleep 6 &
	lock_pid=$!
	sleep 0.5
	expect_rc "init while locked: 75" 75 rk init
	expect_rc "apply while locked: 75" 75 rk apply -f "$T/inv.yaml"
	expect_rc "rotate while locked: 75" 75 rk rotate two
	check "  says why" contains "$T/err" "another rekey holds the lock"
	expect_rc "rotate --resume while locked: 75" 75 rk rotate --resume all
	expect_rc "rollback while locked: 75" 75 rk rollback two
	expect_rc "list does not need the lock: 0" 0 rk list
	wait "$lock_pid"
fi

# ---- 2. inventory input that is refused, naming file:line:col ----
printf 'secrets:\n  - {name: "a//b", locator: {path: x}}\n' >"$T/badname.yaml"
expect_rc "a name with an empty segment: 2" 2 rk apply -f "$T/badname.yaml"
check "  names file:line:col and the grammar" contains "$T/err" "badname.yaml:2:12: secret name 'a//b' must be 1-200 characters"
printf 'secrets:\n  - name: a/\n    locator: {path: x}\n' >"$T/badname2.yaml"
expect_rc "a name with a trailing /: 2" 2 rk apply -f "$T/badname2.yaml"
printf 'secrets:\n  - name: x\n    locator: {path: x}\n    environment: "prod eu"\n' >"$T/badenv.yaml"
expect_rc "an environment with a space: 2" 2 rk apply -f "$T/badenv.yaml"
check "  names file:line:col" contains "$T/err" "badenv.yaml:4:18: environment 'prod eu'"
printf 'secrets:\n  - name: x\n    locator: {path: x}\n    last_rotated: 2099-01-01\n' >"$T/future.yaml"
expect_rc "last_rotated in the future: 2" 2 rk apply -f "$T/future.yaml"
check "  names file:line:col" contains "$T/err" "future.yaml:4:19: last_rotated 2099-01-01 of 'x' is in the future"
check "none of them was applied" sh -c "! '$REKEY_BIN' list | grep -qE '^(x|a/) '"

# ---- 4. messages ----
printf 'secrets:\n  - name: x\n    locator: {path: x}\n    dependents:\n      - exec: [true]\n' >"$T/boolargv.yaml"
expect_rc "exec: [true] in an inventory: 2" 2 rk apply -f "$T/boolargv.yaml"
check "  names the element and why" contains "$T/err" "boolargv.yaml:5:16: exec[0] in dependent must be a string; \`true\` is a YAML boolean: quote it (\\\"true\\\")"
printf 'name: hook\nrotate_every: 1d\nverify: {exec: [check, 5]}\n' >"$T/policy/hook.yaml"
expect_rc "verify.exec with an integer in a policy: 2" 2 rk list
check "  names the element and why" contains "$T/err" "hook.yaml:3:24: exec[1] in verify must be a string; \`5\` is a YAML integer"
printf 'name: hook\nrotate_every: 1d\nset:\n  exec:\n    - a\n    -\n' >"$T/policy/hook.yaml"
expect_rc "set.exec with an empty element: 2" 2 rk list
check "  names the element" contains "$T/err" "hook.yaml:6:6: exec[1] in set must be a string; an empty"
printf 'name: latin1\nrotate_every: 1d\ndescription: caf\351 au lait\n' >"$T/policy/hook.yaml"
expect_rc "a policy that is not UTF-8: 2" 2 rk list
check "  names the encoding error at line:col" contains "$T/err" "hook.yaml:3:17: not valid UTF-8: an invalid byte sequence starts with 0xE9"
check "  and does not speak of a missing key" sh -c "! grep -qE 'missing|required' '$T/err'"
rm -f "$T/policy/hook.yaml"
printf 'secrets:\n  - name: x\n    owner: caf\351\n    locator: {path: x}\n' >"$T/latin1.yaml"
expect_rc "an inventory that is not UTF-8: 2" 2 rk apply -f "$T/latin1.yaml"
check "  names the encoding error at line:col" contains "$T/err" "latin1.yaml:3:15: not valid UTF-8"
printf 'state_dir: %s/var\nenvironment: t\351st\n' "$T" >"$T/latin1cfg.yaml"
expect_rc "a rekey.yaml that is not UTF-8: 2" 2 rk -c "$T/latin1cfg.yaml" list
check "  names the encoding error at line:col" contains "$T/err" "latin1cfg.yaml:2:15: not valid UTF-8"
printf 'state_dir: %s/var\nha:\n  lease: {provider: c, namespace: n, name: x}\n' "$T" >"$T/ha.yaml"
expect_rc "ha naming an unknown provider: 2" 2 rk -c "$T/ha.yaml" list
check "  names the provider at file:line:col" contains "$T/err" "ha.yaml:3:21: ha.lease.provider 'c' is not one of the providers in this file"
printf 'state_dir: %s/var\nserver:\n  listen: "127.0.0.1:99999"\n' "$T" >"$T/server.yaml"
expect_rc "server.listen with a bad port: 2" 2 rk -c "$T/server.yaml" list
check "  names it at file:line:col" contains "$T/err" "server.yaml:3:11: server.listen '127.0.0.1:99999' must be HOST:PORT"
printf 'state_dir: %s/var\nserver: {tls_cert_file: c.pem}\n' "$T" >"$T/server2.yaml"
expect_rc "a TLS certificate without its key: 2" 2 rk -c "$T/server2.yaml" list
check "  says they go together" contains "$T/err" "server.tls_cert_file and server.tls_key_file go together"
printf 'state_dir: %s/var\nbackup: {every: 500ms}\n' "$T" >"$T/backup.yaml"
expect_rc "backup.every under a second: 2" 2 rk -c "$T/backup.yaml" list
check "  names the key" contains "$T/err" "backup.every must be 0 (no scheduled backups) or at least 1s"
printf 'state_dir: %s/var\nscheduler: {parallel: 999}\n' "$T" >"$T/sched.yaml"
expect_rc "scheduler.parallel out of range: 2" 2 rk -c "$T/sched.yaml" list
check "  names the range" contains "$T/err" "scheduler.parallel must be from 0"
printf 'state_dir: %s/var\ncolour: blue\n' "$T" >"$T/colour.yaml"
expect_rc "an unknown key in rekey.yaml: 2" 2 rk -c "$T/colour.yaml" list
check "  lists only the keys rekey implements" contains "$T/err" "(known keys: state_dir, environment, policy_dir, providers, server, scheduler, backup, ha)"

# ---- 5. plan: what comes next when nothing is due; --at before the last rotation ----
printf 'secrets:\n  - {name: p1, locator: {path: p1}, policy: quick}\n' >"$T/plan.yaml"
printf 'state_dir: %s/var2\npolicy_dir: %s/policy\n' "$T" "$T" >"$T/plan-cfg.yaml"
rk -c "$T/plan-cfg.yaml" init >/dev/null
expect_rc "plan on an empty inventory" 0 rk -c "$T/plan-cfg.yaml" plan
check "  says it is empty" contains "$T/out" "nothing would rotate: the inventory is empty"
rk -c "$T/plan-cfg.yaml" apply -f "$T/plan.yaml" >/dev/null
expect_rc "plan with one secret due" 0 rk -c "$T/plan-cfg.yaml" plan
check "  says it would rotate" contains "$T/out" "1 of 1 secrets would rotate; run \`rekey rotate --due\`"
rk -c "$T/plan-cfg.yaml" rotate p1 >/dev/null 2>&1
expect_rc "plan after the rotation" 0 rk -c "$T/plan-cfg.yaml" plan
check "  says nothing is due and what is next" contains "$T/out" "nothing is due; next: p1 in "
check "  and not that 0 secrets would rotate" sh -c "! grep -q '0 of 1' '$T/out'"
expect_rc "plan --at before the last rotation" 0 rk -c "$T/plan-cfg.yaml" plan --at 2020-01-01
check "  prints no negative age" sh -c "! grep -q 'age -' '$T/out'"
check "  says the secret was rotated after that time" contains "$T/out" "rotated after this time (on "
check "  and when it is next due" contains "$T/out" "nothing is due at 2020-01-01T00:00:00Z; next: p1 due "
printf 'secrets:\n  - {name: p2, locator: {path: p2}, policy: database-password}\n' >"$T/plan2.yaml"
rk -c "$T/plan-cfg.yaml" apply -f "$T/plan2.yaml" --prune >/dev/null
expect_rc "plan --at outside the window of a due secret" 0 rk -c "$T/plan-cfg.yaml" plan --at 2030-01-05T12:00:00Z
check "  names the window's opening" contains "$T/out" "nothing would rotate at 2030-01-05T12:00:00Z: 1 due secret waits for its window; next: p2 when its window opens at 2030-01-07T02:00:00Z"
printf 'name: slow\nrotate_every: 5000d\n' >"$T/policy/slow.yaml"
printf 'secrets:\n  - {name: p2, locator: {path: p2}, policy: database-password}\n  - {name: p3, locator: {path: p3}, policy: slow}\n' >"$T/plan3.yaml"
rk -c "$T/plan-cfg.yaml" apply -f "$T/plan3.yaml" >/dev/null
rk -c "$T/plan-cfg.yaml" rotate p3 >/dev/null 2>&1
expect_rc "plan --at with one secret waiting for its window and one not due" 0 rk -c "$T/plan-cfg.yaml" plan --at 2030-01-05T12:00:00Z
check "  does not say that nothing is due" sh -c "! grep -q 'nothing is due' '$T/out'"
check "  counts the waiting one" contains "$T/out" "nothing would rotate at 2030-01-05T12:00:00Z: 1 due secret waits for its window; next: p2"
finish
