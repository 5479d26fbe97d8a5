#!/bin/sh
# rekey guard: every input source, every rule kind with and without `when`,
# cross-environment reuse, an overdue secret, --warn-only, JSON output, a bad
# rules file, the entrypoint wrapper, and that no tested value is ever printed.
. "$(dirname "$0")/lib.sh"

setup_local
STRONG=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
STRONG2=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
: >"$T/tested"
note() { printf '%s\n' "$1" >>"$T/tested"; }   # values whose absence from output is asserted
note "$STRONG"; note "$STRONG2"
g() { "$REKEY_BIN" guard "$@"; }

# ---- environment variables ----
expect_rc "a strong env value passes" 0 env DB_PASSWORD="$STRONG" "$REKEY_BIN" guard --env-var DB_PASSWORD
for bad in changeme dev-secret 'Django-insecure-abcdefghijklmnopqrstuvwxyz' '${DB_PASSWORD}' \
	'<your password here>' 'passwordpasswordpassword' 'Secret123' 'xxxxxxxxxxxxxxxxxxxx'; do
	note "$bad"
	expect_rc "refused: a known default, placeholder or weak value (#$(grep -c . "$T/tested"))" 1 \
		env DB_PASSWORD="$bad" "$REKEY_BIN" guard --env-var DB_PASSWORD
	check "  the failure names the variable" contains "$T/out" "env DB_PASSWORD"
done
expect_rc "a missing variable fails" 1 g --env-var NOT_SET_ANYWHERE
check "as not present" contains "$T/out" "NOT_SET_ANYWHERE: present"
expect_rc "an empty variable fails" 1 env EMPTY= "$REKEY_BIN" guard --env-var EMPTY
note "short-but-random-Q9"
expect_rc "the default policy wants 16 characters" 1 env V="short-but-random-Q9" "$REKEY_BIN" guard --env-var V --policy strict
check "  says the policy's minimum" contains "$T/out" "at least 32"

# ---- a policy's forbid list, for every value checked ----
FORBID=payments-dev-Qx7vL2mN9pR4sT8w
note "$FORBID"
printf 'name: payments\nrotate_every: 30d\nguards: {min_length: 16, forbid: [%s]}\n' "$FORBID" >"$T/policy/payments.yaml"
expect_rc "a value on the policy's forbid list is refused" 1 \
	env A="$FORBID" B="$(echo "$FORBID" | tr a-z A-Z)" C="$STRONG" "$REKEY_BIN" guard --env-var A --env-var B --env-var C --policy payments
check "  the first value, as forbidden" contains "$T/out" "env A: forbidden"
check "  the second too (case-insensitive)" contains "$T/out" "env B: forbidden"
check "  a strong value passes under the same policy" sh -c "! grep -q 'env C:' '$T/out'"

# ---- files (mounted secrets end in a newline) ----
printf '%s\n' "$STRONG" >"$T/mounted"
expect_rc "a mounted secret with a trailing newline passes" 0 g --file "$T/mounted"
printf 'changeme\n' >"$T/weak-file"
expect_rc "a weak file fails" 1 g --file "$T/weak-file"
check "  the failure names the file" contains "$T/out" "file $T/weak-file"
expect_rc "a missing file fails" 1 g --file "$T/nope"
check "  as not present" contains "$T/out" "present"

# ---- inventory secrets from their provider, cross-environment reuse, overdue ----
rk init >/dev/null
cat >"$T/inv.yaml" <<EOI
secrets:
  - {name: prod/db, locator: {path: prod/db}, environment: production}
  - {name: staging/db, locator: {path: staging/db}, environment: staging}
  - {name: prod/old, locator: {path: prod/old}, environment: production, last_rotated: 2020-01-01}
  - {name: prod/never, locator: {path: prod/never}, environment: production}
EOI
rk apply -f "$T/inv.yaml" >/dev/null
rk rotate prod/db staging/db >/dev/null 2>&1
PROD=$(rk get prod/db); STAGING=$(rk get staging/db)
note "$PROD"; note "$STAGING"
expect_rc "--secret reads a generated value and passes" 0 g --secret prod/db
expect_rc "--secret of a value never written fails" 1 g --secret prod/never
check "  and says how to fix it" contains "$T/out" "rekey rotate prod/never"
expect_rc "production's own value passes the reuse check" 1 \
	env DB_PASSWORD="$PROD" "$REKEY_BIN" guard --env-var DB_PASSWORD --inventory --environment production
check "  (only the overdue secrets fail)" sh -c "! grep -q reused '$T/out'"
check "  an overdue secret is refused" contains "$T/out" "inventory prod/old: not_overdue"
check "  a never-rotated one too" contains "$T/out" "inventory prod/never: not_overdue"
check "  a secret of the other environment is not judged" sh -c "! grep -q 'inventory staging/db' '$T/out'"
expect_rc "staging's value in production is refused" 1 \
	env DB_PASSWORD="$STAGING" "$REKEY_BIN" guard --env-var DB_PASSWORD --inventory --environment production
check "  as reused, naming the other secret" contains "$T/out" "reused_across_environments: is the same value as inventory secret 'staging/db'"
rk rotate prod/old prod/never >/dev/null 2>&1
expect_rc "after rotating, the inventory passes" 0 \
	env DB_PASSWORD="$PROD" "$REKEY_BIN" guard --env-var DB_PASSWORD --inventory --environment production
printf 'state_dir: %s/var\n' "$T" >"$T/noenv.yaml"
expect_rc "--inventory needs an environment" 2 g -c "$T/noenv.yaml" --inventory

# ---- rules on plain settings ----
cat >"$T/rules.yaml" <<'EOR'
rules:
  - {setting: DRY_RUN, equals: "false", when: {ENVIRONMENT: production}}
  - {setting: MODE, not_equals: debug}
  - {setting: NODE_RPC, not_matches: "localhost|127\\.0\\.0\\.1", when: {ENVIRONMENT: [production, staging]}}
  - {setting: REGION, matches: "^eu-[a-z]+-[0-9]$"}
  - {setting: LOG_LEVEL, one_of: [info, warn, error]}
  - {setting: SESSION_SECRET, required: true, message: sessions need a signing secret}
EOR
good="ENVIRONMENT=production DRY_RUN=false MODE=prod NODE_RPC=https://rpc.internal REGION=eu-west-1 LOG_LEVEL=info SESSION_SECRET=x"
expect_rc "all rules pass" 0 env $good "$REKEY_BIN" guard --rules "$T/rules.yaml"
expect_rc "equals with when: DRY_RUN=true in production" 1 env $good DRY_RUN=true "$REKEY_BIN" guard --rules "$T/rules.yaml"
check "  names the setting and the rule" contains "$T/out" "setting DRY_RUN: equals: must be 'false' when ENVIRONMENT is 'production'"
check "  and the rule's file:line" contains "$T/out" "rules.yaml:2"
expect_rc "the same outside production passes (when not matched)" 0 env $good ENVIRONMENT=dev DRY_RUN=true "$REKEY_BIN" guard --rules "$T/rules.yaml"
expect_rc "not_equals" 1 env $good MODE=debug "$REKEY_BIN" guard --rules "$T/rules.yaml"
expect_rc "not_matches with a when list" 1 env $good ENVIRONMENT=staging NODE_RPC=http://localhost:8545 "$REKEY_BIN" guard --rules "$T/rules.yaml"
check "  says it must not match" contains "$T/out" "must not match"
expect_rc "matches" 1 env $good REGION=us-east-1 "$REKEY_BIN" guard --rules "$T/rules.yaml"
expect_rc "one_of" 1 env $good LOG_LEVEL=trace "$REKEY_BIN" guard --rules "$T/rules.yaml"
expect_rc "required" 1 env $good SESSION_SECRET= "$REKEY_BIN" guard --rules "$T/rules.yaml"
check "  with the rule's message" contains "$T/out" "sessions need a signing secret"
check "  rule failures never print a setting's value" sh -c "! grep -q 'us-east-1\|trace\|localhost:8545' '$T/out'"
printf 'rules:\n  - {setting: A, equals: x}\n  - {setting: B, colour: red}\n' >"$T/bad-rules.yaml"
expect_rc "a malformed rules file is exit 2" 2 g --rules "$T/bad-rules.yaml"
check "  naming file:line" contains "$T/err" "bad-rules.yaml:3:"
printf 'rules:\n  - {setting: A, matches: "([a-z"}\n' >"$T/bad-re.yaml"
expect_rc "a bad regex is exit 2" 2 g --rules "$T/bad-re.yaml"
check "  naming file:line" contains "$T/err" "bad-re.yaml:2:"
printf 'rules:\n  - {setting: A, equals: x, one_of: [y]}\n' >"$T/two.yaml"
expect_rc "two kinds in one rule is exit 2" 2 g --rules "$T/two.yaml"

# ---- --warn-only, JSON, usage ----
expect_rc "--warn-only turns violations into warnings" 0 env V=changeme "$REKEY_BIN" guard --env-var V --warn-only
check "  printed as WARN" contains "$T/out" "WARN env V"
expect_rc "--output json" 1 env V=changeme W="$STRONG" "$REKEY_BIN" --output json guard --env-var V --env-var W
check "  lists every check with its result" python3 -c "
import json; d=json.load(open('$T/out'))
assert d['ok'] is False and d['violations'] >= 1
names={(c['name'],c['check']) for c in d['checks']}
assert ('W','min_entropy') in names and ('V','known_default') in names, names
assert all(c['ok'] for c in d['checks'] if c['name']=='W')"
expect_rc "nothing to check is a usage error" 2 g
expect_rc "an unknown policy is a configuration error" 2 g --env-var V --policy nope

# ---- the entrypoint wrapper: the app must not start on a bad secret ----
ENTRY="$SRC/contrib/docker/rekey-entrypoint"
cat >"$T/app.sh" <<'EOA'
#!/bin/sh
echo "started with: $*" >"$APP_MARK"
EOA
export APP_MARK="$T/app-started" REKEY="$REKEY_BIN"
expect_rc "entrypoint: a bad secret stops the app (exit 1)" 1 env DB_PASSWORD=changeme sh "$ENTRY" --env-var DB_PASSWORD -- sh "$T/app.sh" a "b c"
check "  the app did not start" [ ! -e "$APP_MARK" ]
expect_rc "entrypoint: a bad rules file stops it (exit 2)" 2 env DB_PASSWORD="$STRONG" sh "$ENTRY" --env-var DB_PASSWORD --rules "$T/bad-rules.yaml" -- sh "$T/app.sh"
check "  the app did not start" [ ! -e "$APP_MARK" ]
expect_rc "entrypoint: a good secret starts the app" 0 env DB_PASSWORD="$STRONG" sh "$ENTRY" --env-var DB_PASSWORD --rules "$T/rules.yaml" --warn-only -- sh "$T/app.sh" a "b c"
check "  with its arguments intact" sh -c "grep -qx 'started with: a b c' '$APP_MARK'"
expect_rc "entrypoint: no command is a usage error" 2 sh "$ENTRY" --env-var DB_PASSWORD

# ---- the guard touches neither the network nor the state DB unless asked ----
if command -v strace >/dev/null 2>&1 && strace -f -o /dev/null true 2>/dev/null; then
	env DB_PASSWORD="$STRONG" strace -f -qq -e trace=connect,socket,openat -o "$T/strace" \
		"$REKEY_BIN" guard --env-var DB_PASSWORD --rules "$T/rules.yaml" --warn-only >/dev/null 2>&1
	check "no socket opened by a plain guard" sh -c "! grep -q 'socket(\|connect(' '$T/strace'"
	check "no state DB or key file opened" sh -c "! grep -q 'rekey.db\|master.key\|fingerprint.key' '$T/strace'"
	env DB_PASSWORD="$STRONG" strace -f -qq -e trace=openat -o "$T/strace2" \
		"$REKEY_BIN" guard --env-var DB_PASSWORD --secret prod/db >/dev/null 2>&1
	check "(control: --secret does open the state DB)" grep -q 'rekey.db' "$T/strace2"
fi

# ---- no tested value ever appears in the guard's output ----
env DB_PASSWORD="$STAGING" V=changeme W="$STRONG" "$REKEY_BIN" --log-level debug guard --env-var DB_PASSWORD \
	--env-var V --env-var W --file "$T/mounted" --secret prod/db --inventory --environment production \
	>"$T/all.out" 2>"$T/all.err"
"$REKEY_BIN" --output json guard --env-var DB_PASSWORD --file "$T/weak-file" >>"$T/all.out" 2>>"$T/all.err"
leaked=""
while IFS= read -r v; do
	[ -n "$v" ] || continue
	if grep -qF -- "$v" "$T/all.out" "$T/all.err" "$T/out" "$T/err"; then leaked="$leaked [$v]"; fi
done <"$T/tested"
check "no tested value in stdout or stderr${leaked:+: $leaked}" [ -z "$leaked" ]
finish
