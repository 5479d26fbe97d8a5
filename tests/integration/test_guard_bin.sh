#!/bin/sh
# rekey-guard: `rekey-guard ARGS` answers exactly as `rekey guard ARGS` (stdout,
# stderr and exit code, byte for byte but for log timestamps) on passing,
# failing, usage, configuration, JSON, --rules and --file runs; it hands
# --secret, --inventory and configurations naming other provider types to the
# full rekey ($REKEY_BIN, else the rekey beside it) and says so when there is
# none; and it loads at most three shared libraries, none of them SQLite,
# curl or libmicrohttpd.
. "$(dirname "$0")/lib.sh"
: "${REKEY_GUARD_BIN:?REKEY_GUARD_BIN must point at the rekey-guard binary}"
G=$REKEY_GUARD_BIN

setup_local
STRONG=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
MEDIUM=$(head -c 15 /dev/urandom | base64 | tr -d '\n')   # 20 characters: default yes, strict no
export STRONG MEDIUM WEAK=changeme EMPTY= ENVIRONMENT=production DRY_RUN=true MODE=prod
printf '%s\n' "$STRONG" >"$T/mounted"
printf 'changeme\n' >"$T/weak-file"
cat >"$T/rules.yaml" <<'EOR'
rules:
  - {setting: DRY_RUN, equals: "false", when: {ENVIRONMENT: production}}
  - {setting: MODE, not_equals: debug}
EOR
printf 'rules:\n  - {setting: A, colour: red}\n' >"$T/bad-rules.yaml"
printf 'name: payments\nrotate_every: 30d\nguards: {min_length: 16, forbid: [%s]}\n' "$STRONG" >"$T/policy/payments.yaml"

# Log lines carry a timestamp (JSON "ts" or the text line's first field).
norm() { sed -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/TS/g' "$1"; }
# same NAME WANT_RC ARGS...: both binaries exit WANT_RC with the same output.
same() {
	name=$1; want=$2; shift 2
	"$REKEY_BIN" guard "$@" >"$T/a.out" 2>"$T/a.err"; ra=$?
	"$G" "$@" >"$T/b.out" 2>"$T/b.err"; rb=$?
	norm "$T/a.err" >"$T/a.errn"; norm "$T/b.err" >"$T/b.errn"
	cat "$T/a.out" "$T/a.err" "$T/b.out" "$T/b.err" >>"$T/all"
	if [ "$ra" = "$want" ] && [ "$rb" = "$want" ] && cmp -s "$T/a.out" "$T/b.out" &&
	   cmp -s "$T/a.errn" "$T/b.errn"; then
		pass "same answer: $name (exit $want)"
	else
		fail "same answer: $name (rekey guard exit $ra, rekey-guard exit $rb, wanted $want)"
		diff "$T/a.out" "$T/b.out" | head -5 | sed 's/^/      out| /'
		diff "$T/a.errn" "$T/b.errn" | head -5 | sed 's/^/      err| /'
	fi
}

# ---- the same answer, run by rekey-guard itself ----
same "a strong value passes" 0 --env-var STRONG
same "a default fails" 1 --env-var WEAK
# The hashed known-secrets corpus (Grafana's secret_key, Hasura's admin secret).
export CORPUS_GRAFANA=SW2YcwTIb9zpOOhoPsMm CORPUS_HASURA="'MyAdminSecretKey'"
same "a value of the known-secrets corpus fails" 1 --env-var CORPUS_GRAFANA
expect_rc "rekey-guard: a corpus value, quoted and in other case, fails (exit 1)" 1 "$G" --env-var CORPUS_HASURA
check "  as a known default" contains "$T/out" "FAIL env CORPUS_HASURA: known_default"
check "  without echoing it" sh -c "! grep -qi 'adminsecret' '$T/out' '$T/err'"
same "several sources, one failing" 1 --env-var STRONG --env-var WEAK --env-var EMPTY --env-var UNSET_X
same "--file: a mounted secret passes" 0 --file "$T/mounted"
same "--file: a weak one fails" 1 --file "$T/weak-file"
same "--file: a missing one fails" 1 --file "$T/nope"
same "--rules: a failing rule" 1 --rules "$T/rules.yaml"
same "--rules and values, --warn-only" 0 --rules "$T/rules.yaml" --env-var WEAK --warn-only
same "--rules: a malformed file" 2 --rules "$T/bad-rules.yaml"
same "--output json" 1 --output json --env-var STRONG --env-var WEAK --file "$T/mounted"
same "--output json, global option last" 0 --env-var STRONG --output json
same "--policy strict" 1 --env-var MEDIUM --policy strict
same "a policy_dir policy and its forbid list" 1 --env-var STRONG --policy payments
same "an unknown policy" 2 --env-var STRONG --policy nope
same "usage: nothing to check" 2
same "usage: an unknown option" 2 --env-var STRONG --frobnicate
same "usage: an unexpected argument" 2 --env-var STRONG extra
same "usage: an option without its value" 2 --env-var
same "usage: a bad --output" 2 --output yaml --env-var STRONG
same "--help" 0 --help
same "--log-format text --log-level debug" 1 --log-format text --log-level debug --env-var WEAK
same "-c with the built-in default config" 0 -c /dev/null --env-var STRONG
printf 'state_dir: %s/var\ncolour: red\n' "$T" >"$T/bad.yaml"
same "a malformed rekey.yaml (handed over)" 2 -c "$T/bad.yaml" --env-var STRONG

# ---- handed over to rekey ----
cat >"$T/vault.yaml" <<EOC
state_dir: $T/var
providers:
  vault: {type: vault, address: "https://vault.invalid:8200", auth: {method: token, token_file: $T/tok}}
EOC
same "a configuration naming vault (handed over)" 1 -c "$T/vault.yaml" --env-var WEAK
rk init >/dev/null
printf 'secrets:\n  - {name: app/db, locator: {path: app/db}, environment: test}\n' >"$T/inv.yaml"
rk apply -f "$T/inv.yaml" >/dev/null
rk rotate app/db >/dev/null 2>&1
same "--secret (handed over)" 0 --secret app/db
same "--secret of a missing secret (handed over)" 1 --secret nope/none
same "--inventory (handed over)" 0 --inventory --env-var STRONG
same "--inv, getopt's abbreviation (handed over)" 0 --inv --env-var STRONG

if command -v strace >/dev/null 2>&1 && strace -f -o /dev/null true 2>/dev/null; then
	strace -f -qq -e trace=execve -o "$T/st1" "$G" --env-var STRONG >/dev/null 2>&1
	check "a plain run executes nothing else" [ "$(grep -c 'execve(' "$T/st1")" = 1 ]
	strace -f -qq -s 1000 -e trace=execve -o "$T/st2" "$G" --secret app/db >/dev/null 2>&1
	check "--secret executes \$REKEY_BIN guard with the same arguments" \
		grep -qF "execve(\"$REKEY_BIN\", [\"$REKEY_BIN\", \"guard\", \"--secret\", \"app/db\"]" "$T/st2"
fi

# Without $REKEY_BIN, the rekey beside rekey-guard; without one, a clear error.
mkdir -p "$T/bin" "$T/lonely"
cp "$G" "$T/bin/rekey-guard"; cp "$REKEY_BIN" "$T/bin/rekey"; cp "$G" "$T/lonely/rekey-guard"
expect_rc "the rekey beside rekey-guard takes --secret" 0 env -u REKEY_BIN "$T/bin/rekey-guard" --secret app/db
check "  and answers it" contains "$T/out" "guard: 5 checks, 0 violations"
expect_rc "no rekey to hand --secret to: exit 2" 2 env -u REKEY_BIN "$T/lonely/rekey-guard" --secret app/db
check "  saying where it looked and what to do" contains "$T/err" "there is no rekey at $T/lonely/rekey (No such file or directory): install it beside rekey-guard or set REKEY_BIN"
expect_rc "REKEY_BIN naming rekey-guard itself: exit 2, no loop" 2 env REKEY_BIN="$T/lonely/rekey-guard" "$T/lonely/rekey-guard" --secret app/db
check "  saying so" contains "$T/err" "is rekey-guard itself, not rekey"
expect_rc "no rekey for a vault configuration: rekey-guard's own error" 2 env -u REKEY_BIN "$T/lonely/rekey-guard" -c "$T/vault.yaml" --env-var WEAK
check "  naming the provider type" contains "$T/err" "unknown provider type 'vault' (known: local)"
check "  after a warning that it could not hand over" contains "$T/err" "cannot hand the configuration over to rekey"
expect_rc "a plain run needs no rekey at all" 0 env -u REKEY_BIN "$T/lonely/rekey-guard" --env-var STRONG

# ---- the deployment recipes run rekey-guard ----
ENTRY="$SRC/contrib/docker/rekey-entrypoint"
printf '#!/bin/sh\necho "started: $*" >"$APP_MARK"\n' >"$T/app.sh"
export APP_MARK="$T/app-started"
expect_rc "entrypoint, REKEY_GUARD: a default stops the app (exit 1)" 1 \
	env -u REKEY REKEY_GUARD="$G" sh "$ENTRY" --env-var WEAK -- sh "$T/app.sh" x
check "  the app did not start" [ ! -e "$APP_MARK" ]
check "  the guard's report is rekey-guard's" contains "$T/out" "FAIL env WEAK: known_default"
expect_rc "entrypoint, rekey-guard from PATH: a strong value starts the app" 0 \
	env -u REKEY -u REKEY_GUARD PATH="$T/bin:$PATH" sh "$ENTRY" --env-var STRONG -- sh "$T/app.sh" x
check "  with its arguments" grep -qx "started: x" "$APP_MARK"
for f in docker/rekey-entrypoint docker/Dockerfile.rekey docker/Dockerfile.example \
	 kubernetes/guard-init-container.yaml systemd/rekey-guard.conf ci/github-actions-guard.yml; do
	check "contrib/$f runs rekey-guard" grep -q 'rekey-guard' "$SRC/contrib/$f"
done
# (the runbooks are commands for a person at a terminal, not startup recipes)
check "no recipe runs the slow \`rekey guard\` any more" sh -c "! grep -rn --exclude-dir=runbooks 'rekey guard \\|\\[guard,' '$SRC/contrib' | grep -v '^[^:]*:[0-9]*:#'"

# ---- what it loads ----
readelf -d "$G" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' >"$T/needed"
if grep -q 'libasan\|libubsan' "$T/needed"; then
	pass "shared libraries: not counted in a sanitizer build ($(tr '\n' ' ' <"$T/needed"))"
else
	check "at most 3 shared libraries: $(tr '\n' ' ' <"$T/needed")" [ "$(wc -l <"$T/needed")" -le 3 ]
fi
check "neither SQLite, curl nor libmicrohttpd" sh -c "! grep -q 'sqlite\|curl\|microhttpd' '$T/needed'"
check "no value printed by either binary" sh -c "! grep -qF -e '$STRONG' -e '$MEDIUM' '$T/all'"
finish
