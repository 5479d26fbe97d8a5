#!/bin/sh
# `rekey rotate` sequential (--parallel 1) against parallel (--parallel P) in
# one run, the sequential run being the baseline measured in the same run on
# the same machine.
#
#   bench_rotate.sh REKEY
#
# local: N local secrets (BENCH_LOCAL_N, default 1000; 10000 for the RSS
#   target), each case on a fresh state dir (`rekey init`, `rekey apply`),
#   rotated with `rekey rotate --due` (secrets rekey never rotated are due;
#   the bench policy has no window and no hooks, the secrets no dependents).
#   Every case runs on a fresh state each time: timed under GNU time (wall
#   seconds, peak RSS) without strace, then once more under `strace -f -c`
#   counting fsync, fdatasync, syncfs, sync_file_range and msync (not timed:
#   strace slows it down).
# vault: BENCH_VAULT_N KV v2 secrets (default 200) in tests/fakes/vault_fake.py
#   with a latency injection of BENCH_VAULT_MS (default 20) ms on every request,
#   timed under GNU time (the fake sets TCP_NODELAY, as real Vault does).
#   The provider's own rate limit and concurrency are
#   raised (rate_limit.rps 100000, concurrency 64) so that they do not cap
#   the parallel run: the bench measures the engine, not the throttle.
# BENCH_PARALLEL: the parallel case (default 16). N=0 skips a part.
# BENCH_ROTATE_ROUNDS: timed runs of each case (default 1), the cases taking
#   turns; the median is reported. The figures are noisy on a shared disk.
# BENCH_PROFILE=1: one more sequential local run under a full `strace -f -c -w`
#   and the syscalls that take the most wall time.
#
# It reports and exits 0 whether or not the targets are met; it exits 1 when
# a rotate command fails or rotates fewer secrets than asked (from its
# `--output json` report). No secret value is ever printed.
set -u
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
REKEY=$(abs "${1:?usage: bench_rotate.sh REKEY}")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
NL=${BENCH_LOCAL_N:-1000}
NV=${BENCH_VAULT_N:-200}
P=${BENCH_PARALLEL:-16}
VMS=${BENCH_VAULT_MS:-20}
ROUNDS=${BENCH_ROTATE_ROUNDS:-1}
PYTHON=${PYTHON:-python3}
SYNCS=fsync,fdatasync,syncfs,sync_file_range,msync
for v in "$NL" "$NV" "$P" "$VMS" "$ROUNDS"; do
	case $v in '' | *[!0-9]*) echo "bench_rotate: '$v' is not a number" >&2; exit 2 ;; esac
done
if [ "$P" -lt 2 ] || [ "$ROUNDS" -lt 1 ]; then
	echo "bench_rotate: BENCH_PARALLEL must be 2 or more, BENCH_ROTATE_ROUNDS 1 or more" >&2
	exit 2
fi

T=$(mktemp -d /tmp/rekey-bench-rotate.XXXXXX)
FAKE=
CHILD=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$CHILD" ]; then kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null; fi
	if [ -n "$FAKE" ]; then kill "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null; fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() { echo "bench_rotate: $*" >&2; exit 1; }
# child COMMAND...: runs it in a process group of its own (setsid) and waits,
# so that an interrupt stops the measured command (GNU time or strace and the
# rekey under it) at once instead of when it ends. Sets rc.
SETSID=
command -v setsid >/dev/null 2>&1 && SETSID="setsid -w"
child() {
	$SETSID "$@" &
	CHILD=$!
	wait "$CHILD"
	rc=$?
	CHILD=
}

# Tools: GNU time for wall time and peak RSS, strace for the sync count.
GTIME=/usr/bin/time
"$GTIME" -f %M -o "$T/probe" true 2>/dev/null || GTIME=
STRACE=$(command -v strace 2>/dev/null || true)
SECCOMP=
if [ -n "$STRACE" ]; then
	if "$STRACE" -f --seccomp-bpf -c -o "$T/probe" -e trace=fsync true 2>/dev/null; then
		SECCOMP=--seccomp-bpf   # stops only at the traced calls: far less overhead
	elif ! "$STRACE" -f -c -o "$T/probe" -e trace=fsync true 2>/dev/null; then
		STRACE=                 # e.g. ptrace not permitted here
	fi
fi

cat >"$T/check.py" <<'EOP'
# check.py REPORT N: the run rotated all N secrets; prints nothing on success.
import json, sys
path, want = sys.argv[1], int(sys.argv[2])
try:
    d = json.load(open(path))
except Exception as e:
    sys.exit("the report is not JSON: %s" % e)
secrets = d.get("secrets") or []
rotated = sum(1 for s in secrets if s.get("result") == "rotated")
if rotated != want or d.get("status") != "done":
    bad = [s for s in secrets if s.get("result") != "rotated"][:3]
    msg = "run %s: status %s, %d of %d rotated (%d in the report)" % (
        d.get("run_id"), d.get("status"), rotated, want, len(secrets))
    for s in bad:  # names, results and errors only: rekey never puts a value there
        msg += "\n  %s: %s %s" % (s.get("name"), s.get("result"), s.get("error"))
    sys.exit(msg)
EOP

mkdir "$T/policy"
printf 'name: bench\nrotate_every: 1d\ngenerator: {type: password, length: 32}\n' >"$T/policy/bench.yaml"

# fresh DIR PROVIDER_LINE INVENTORY: a new state dir and config in DIR, the
# inventory applied.
fresh() {
	mkdir -p "$1"
	{
		printf 'state_dir: %s/var\nenvironment: bench\npolicy_dir: %s/policy\nproviders:\n' "$1" "$T"
		printf '  %s\n' "$2"
	} >"$1/rekey.yaml"
	"$REKEY" -c "$1/rekey.yaml" init >/dev/null 2>"$1/init.err" || { cat "$1/init.err" >&2; die "init failed in $1"; }
	"$REKEY" -c "$1/rekey.yaml" apply -f "$3" >/dev/null 2>"$1/apply.err" ||
		{ tail -5 "$1/apply.err" >&2; die "apply of $3 failed"; }
}

# rotate DIR N PARALLEL MODE: `rekey rotate --due` in DIR, checked to have
# rotated N secrets. MODE time: wall seconds and peak RSS into DIR/time
# ("SECONDS KB"); MODE count: under strace, "CALLS SYNC_SECONDS WALL_SECONDS"
# into DIR/syncs.
rotate() {
	d=$1; n=$2; par=$3; mode=$4
	set -- "$REKEY" -c "$d/rekey.yaml" --output json rotate --due --parallel "$par"
	t0=$(date +%s%N)
	if [ "$mode" = count ]; then
		child "$STRACE" -f $SECCOMP -c -w -o "$d/strace" -e trace="$SYNCS" "$@" >"$d/out.json" 2>"$d/err"
	elif [ -n "$GTIME" ]; then
		child "$GTIME" -f '%e %M' -o "$d/time" "$@" >"$d/out.json" 2>"$d/err"
	else
		child "$@" >"$d/out.json" 2>"$d/err"
		echo "$t0 $(date +%s%N)" | awk '{ printf "%.3f -\n", ($2 - $1) / 1e9 }' >"$d/time"
	fi
	t1=$(date +%s%N)
	if [ $rc != 0 ]; then
		tail -5 "$d/err" >&2
		"$PYTHON" "$T/check.py" "$d/out.json" "$n" >&2
		die "rekey rotate --due --parallel $par ($mode run, $n secrets in $d) exited $rc"
	fi
	"$PYTHON" "$T/check.py" "$d/out.json" "$n" || die "rekey rotate --due --parallel $par ($mode run) rotated fewer than $n secrets"
	if [ "$mode" = count ]; then
		awk -v names="^($(echo "$SYNCS" | tr , '|'))\$" -v wall="$(((t1 - t0) / 1000000))" \
			'$NF ~ names { c += $4; s += $2 } END { printf "%d %.3f %.3f\n", c, s, wall / 1000 }' "$d/strace" >"$d/syncs"
	fi
}

# timed NAME N PARALLEL PROVIDER_LINE INVENTORY: one timed run on a fresh
# state; "SECONDS KB" appended to $T/NAME.times.
timed() {
	fresh "$T/$1.run" "$4" "$5"
	rotate "$T/$1.run" "$2" "$3" time
	cat "$T/$1.run/time" >>"$T/$1.times"
	rm -rf "$T/$1.run"
}

# Results, one line per case in $T/results:
#   CASE N PARALLEL SECONDS RSS_KB SYNC_CALLS SYNC_SECONDS COUNT_WALL ("-": not measured)
# SECONDS is the median of the timed runs, RSS_KB their maximum.
record() { # record CASE N PARALLEL TIMES_FILE COUNTED_DIR|-
	secs=$(sort -n "$4" | awk '{ t[NR] = $1 } END { print t[int(NR / 2) + 1] }')
	kb=$(awk '$2 != "-" && $2 > m { m = $2 } END { print m ? m : "-" }' "$4")
	calls=- ssec=- cwall=-
	[ "$5" != - ] && read -r calls ssec cwall <"$5/syncs"
	echo "$1 $2 $3 $secs $kb $calls $ssec $cwall" >>"$T/results"
}
: >"$T/results"

inventory() { # inventory FILE N PROVIDER PREFIX
	awk -v n="$2" -v prov="$3" -v pre="$4" 'BEGIN {
		print "secrets:"
		for (i = 1; i <= n; i++) {
			if (prov == "local")
				printf "  - {name: bench/s%05d, locator: {path: bench/s%05d}, policy: bench}\n", i, i
			else
				printf "  - {name: bench/s%05d, provider: %s, locator: {path: %s/s%05d, key: password}, policy: bench}\n", i, prov, pre, i
		}
	}' >"$1"
}

start=$(date +%s)
if [ "$NL" -gt 0 ]; then
	inventory "$T/local.yaml" "$NL" local -
	lp='local: {type: local}'
	r=1
	while [ $r -le "$ROUNDS" ]; do   # the cases take turns
		for par in 1 "$P"; do timed "l$par" "$NL" "$par" "$lp" "$T/local.yaml"; done
		r=$((r + 1))
	done
	for par in 1 "$P"; do
		if [ -n "$STRACE" ]; then
			fresh "$T/l$par-count" "$lp" "$T/local.yaml"
			rotate "$T/l$par-count" "$NL" "$par" count
			record local "$NL" "$par" "$T/l$par.times" "$T/l$par-count"
			rm -rf "$T/l$par-count/var"
		else
			record local "$NL" "$par" "$T/l$par.times" -
		fi
	done
	if [ "${BENCH_PROFILE:-0}" = 1 ] && [ -n "$STRACE" ]; then
		fresh "$T/lprof" "$lp" "$T/local.yaml"
		child "$STRACE" -f -c -w -S time -o "$T/lprof/strace" "$REKEY" -c "$T/lprof/rekey.yaml" --output json \
			rotate --due --parallel 1 >"$T/lprof/out.json" 2>"$T/lprof/err"
		[ $rc = 0 ] || { tail -5 "$T/lprof/err" >&2; die "profile run exited $rc"; }
		"$PYTHON" "$T/check.py" "$T/lprof/out.json" "$NL" || die "profile run rotated fewer than $NL secrets"
	fi
fi

if [ "$NV" -gt 0 ]; then
	"$PYTHON" "$SRC/tests/fakes/vault_fake.py" --port 0 --port-file "$T/vault.port" \
		--root-token root 2>"$T/fake.log" &
	FAKE=$!
	i=0
	while [ ! -s "$T/vault.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$T/vault.port" ] || { cat "$T/fake.log" >&2; die "the Vault fake did not start"; }
	V="http://127.0.0.1:$(cat "$T/vault.port")"
	# Seed the KV entries of both cases (the admin API bypasses injections),
	# then slow every request down; initial values are random and never shown.
	"$PYTHON" - "$V" "$NV" "$VMS" <<'EOP' || die "seeding the Vault fake failed"
import json, secrets, sys, urllib.request
v, n, ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def admin(method, path, body):
    req = urllib.request.Request(v + "/__fake/" + path, method=method,
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
for prefix in ("seq", "par"):
    for i in range(1, n + 1):
        admin("POST", "kv", {"mount": "secret", "path": "%s/s%05d" % (prefix, i),
                             "data": {"username": "app", "password": secrets.token_urlsafe(24)}})
admin("POST", "inject", {"path_regex": "^/", "method": "*", "action": "latency",
                         "ms": ms, "count": -1})
EOP
	printf 'root\n' >"$T/token"
	chmod 600 "$T/token"
	vp="vault: {type: vault, address: \"$V\", insecure_http: true, auth: {method: token, token_file: $T/token}, rate_limit: {rps: 100000, burst: 10000}, concurrency: 64}"
	inventory "$T/vault-1.yaml" "$NV" vault seq
	inventory "$T/vault-$P.yaml" "$NV" vault par
	r=1
	while [ $r -le "$ROUNDS" ]; do
		for par in 1 "$P"; do timed "v$par" "$NV" "$par" "$vp" "$T/vault-$par.yaml"; done
		r=$((r + 1))
	done
	for par in 1 "$P"; do record vault "$NV" "$par" "$T/v$par.times" -; done
fi
took=$(($(date +%s) - start))

# ---- report ----
runs="a run"
[ "$ROUNDS" -gt 1 ] && runs="the median of $ROUNDS runs (the cases taking turns)"
how="wall time and peak RSS from $runs without strace"
[ -n "$GTIME" ] || how="wall time from date (no GNU time: no RSS), $runs without strace"
if [ -n "$STRACE" ]; then how="$how; syncs counted in a separate run of the same case under strace -f${SECCOMP:+ $SECCOMP} -c"
else how="$how; syncs not counted (no usable strace)"; fi
echo "rotate: sequential (--parallel 1) vs --parallel $P, each case on a fresh state dir ($took s in all)"
echo "  $how"
nodelay=on
awk -v p="$P" -v vms="$VMS" -v nl="$NL" -v nodelay="$nodelay" '
function num(x) { return x != "-" && x != "" }
{ c[NR] = $1; n[NR] = $2; par[NR] = $3; s[NR] = $4; kb[NR] = $5; calls[NR] = $6; ss[NR] = $7; cw[NR] = $8
  if ($3 == 1) base[$1] = $4 }
END {
	printf "  %-6s %6s %8s %9s %10s %13s %13s %10s\n", "case", "N", "parallel", "seconds", "secrets/s", "syncs/secret", "peak RSS MB", "speed"
	for (i = 1; i <= NR; i++) {
		sps = s[i] > 0 ? sprintf("%.1f", n[i] / s[i]) : "-"
		spr = num(calls[i]) ? sprintf("%.2f", calls[i] / n[i]) : "-"
		rss = num(kb[i]) ? sprintf("%.1f", kb[i] / 1024) : "-"
		sp = (c[i] in base && s[i] > 0) ? sprintf("%.2fx", base[c[i]] / s[i]) : "-"
		printf "  %-6s %6d %8d %9.2f %10s %13s %13s %10s\n", c[i], n[i], par[i], s[i], sps, spr, rss, sp
		if (c[i] == "local" && par[i] == 1) lseq = i
		if (c[i] == "local" && par[i] == p) lpar = i
		if (c[i] == "vault" && par[i] == 1) vseq = i
		if (c[i] == "vault" && par[i] == p) vpar = i
	}
	print "  speed: sequential seconds / these seconds, same case, same run; MB = MiB (GNU time %M / 1024)"
	print "  vault: the fake answers every request " vms " ms late (TCP_NODELAY " nodelay "); syncs not counted there"
	for (i = 1; i <= NR; i++) if (num(ss[i]))
		printf "  %s --parallel %d: %d sync calls took %.2f s (summed over threads) of the %.2f s counting run\n", c[i], par[i], calls[i], ss[i], cw[i]
	print "targets (reported, never fail the build):"
	if (lpar && num(calls[lpar])) {
		v = calls[lpar] / n[lpar]
		printf "  %-52s %8.2f   %s\n", "syncs/secret at --parallel " p ", local (<= 2)", v, (v <= 2 ? "met" : "MISSED")
	} else printf "  %-52s %8s\n", "syncs/secret at --parallel " p ", local (<= 2)", "not measured"
	if (lseq && lpar && s[lpar] > 0) {
		v = s[lseq] / s[lpar]
		printf "  %-52s %7.2fx   %s\n", "local --parallel " p " vs sequential (>= 5x)", v, (v >= 5 ? "met" : "MISSED")
		if (n[lseq] == 1000)
			printf "  %-52s %7.2f s  (information)\n", "  sequential 1,000 local (reference: about 3.5 s)", s[lseq]
	}
	if (vseq && vpar && s[vpar] > 0) {
		v = s[vseq] / s[vpar]
		printf "  %-52s %7.2fx   %s\n", "vault --parallel " p " vs sequential (>= 10x)", v, (v >= 10 ? "met" : "MISSED")
	}
	if (lseq && num(kb[lseq])) {
		m = kb[lseq]; if (lpar && kb[lpar] > m) m = kb[lpar]
		if (nl >= 10000)
			printf "  %-52s %8.1f   %s\n", "peak RSS MB, local, " nl " secrets (<= 40 for 10,000)", m / 1024, (m / 1024 <= 40 ? "met" : "MISSED")
		else
			printf "  %-52s %8.1f   (target applies at 10,000: BENCH_LOCAL_N=10000)\n", "peak RSS MB, local, " nl " secrets (<= 40 for 10,000)", m / 1024
	}
}' "$T/results"
if [ -f "$T/lprof/strace" ]; then
	echo "profile: sequential local run under strace -f -c -w (wall time per syscall, top 10)"
	awk 'NR == 1 { print "  " $0 } /^-----/ { d++; next } d == 1 && NF >= 5 { print "  " $0 }' "$T/lprof/strace" | head -11
fi
exit 0
