# Shared helpers for integration tests: each test_*.sh sources this, runs the
# real binary in a temporary directory and calls pass/fail per check.
set -u
: "${REKEY_BIN:?REKEY_BIN must point at the rekey binary}"
SRC=${REKEY_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d /tmp/rekey-it.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
PASSED=0
FAILED=0
export REKEY_CONFIG="$T/rekey.yaml"

pass() { PASSED=$((PASSED + 1)); echo "  ok   $1"; }
fail() { FAILED=$((FAILED + 1)); echo "  FAIL $1"; }
check() { # check NAME COMMAND...: passes when the command succeeds
	name=$1; shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}
# expect_rc NAME RC COMMAND...: the command exits with RC (output in $T/out, $T/err;
# all of it, every command's, also in $T/all.out)
expect_rc() {
	name=$1; want=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	cat "$T/out" "$T/err" >>"$T/all.out"	# every command's output, for leak checks
	if [ "$got" = "$want" ]; then pass "$name"; else
		fail "$name (exit $got, wanted $want)"; sed 's/^/      | /' "$T/err" | tail -5
	fi
}
contains() { grep -qF -- "$2" "$1"; }
rk() { "$REKEY_BIN" "$@"; }

# A config on the local provider and an inventory of N local secrets.
setup_local() {
	cat >"$T/rekey.yaml" <<EOC
state_dir: $T/var
environment: test
policy_dir: $T/policy
providers:
  local: {type: local}
EOC
	mkdir -p "$T/policy"
}

# local_inventory NAME:POLICY[:OWNER]...: $T/inv.yaml, those secrets on the local provider
# (each stored at its name's path).
local_inventory() {
	echo "secrets:" >"$T/inv.yaml"
	for s in "$@"; do
		n=${s%%:*}; rest=${s#*:}; p=${rest%%:*}; o=${rest#"$p"}; o=${o#:}
		printf '  - {name: %s, locator: {path: %s}, policy: %s%s}\n' "$n" "$n" "$p" "${o:+, owner: $o}"
	done >>"$T/inv.yaml"
}

# start_k8s_fake: tests/fakes/k8s_fake.py on a free port, its certificates and
# kubeconfig in $T/k8s; sets FAKE (its pid, stopped at exit) and K (its URL).
start_k8s_fake() {
	python3 "$SRC/tests/fakes/k8s_fake.py" --port 0 --port-file "$T/kport" --cert-dir "$T/k8s" \
		2>"$T/fake.log" &
	FAKE=$!
	trap 'kill $FAKE 2>/dev/null; wait $FAKE 2>/dev/null; rm -rf "$T"' EXIT
	i=0
	while [ ! -s "$T/kport" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$T/kport" ] || { echo "$(basename "$0" .sh): the fake did not start"; cat "$T/fake.log"; exit 1; }
	K="https://127.0.0.1:$(cat "$T/kport")"
}

# start_serve LOG: `rekey serve` in the background on $REKEY_CONFIG (whose server.listen
# asks for port 0), its JSON log in LOG; sets SERVE (its pid; every one started is
# stopped at exit, then $ON_EXIT runs), PORT and U (http://127.0.0.1:PORT). Returns 1
# when it exited before listening (its exit code in $T/serve.rc).
start_serve() {
	"${SERVE_BIN:-$REKEY_BIN}" --log-format json serve 2>"$1" &
	SERVE=$!
	echo "$SERVE" >>"$T/serve.pids"
	trap 'for p in $(cat "$T/serve.pids" 2>/dev/null); do kill $p 2>/dev/null; wait $p 2>/dev/null; done; eval "${ON_EXIT:-:}"; rm -rf "$T"' EXIT
	i=0
	PORT=
	while [ -z "$PORT" ] && [ $i -lt 100 ]; do
		if ! kill -0 "$SERVE" 2>/dev/null; then
			wait "$SERVE"; echo $? >"$T/serve.rc"
			return 1
		fi
		PORT=$(sed -n 's/.*"event":"serve.listening".*"port":"\([0-9]*\)".*/\1/p' "$1" 2>/dev/null | tail -1)
		[ -n "$PORT" ] || sleep 0.05
		i=$((i + 1))
	done
	[ -n "$PORT" ] || { echo "$(basename "$0" .sh): rekey serve did not listen"; cat "$1"; exit 1; }
	U="http://127.0.0.1:$PORT"
}
# stop_serve: SIGTERM to $SERVE; returns its exit code.
stop_serve() {
	kill -TERM "$SERVE"
	wait "$SERVE"
}

finish() {
	echo "$(basename "$0" .sh): $PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
}
