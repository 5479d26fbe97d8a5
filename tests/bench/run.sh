#!/bin/sh
# Benchmarks. Figures are ratios against a baseline measured in the same run
# on the same machine, never absolute thresholds.
#
#   run.sh REKEY BENCH_EXEC [REKEY_GUARD [CORPUS_COUNT_FILE]]
#
# guard: `rekey guard` and rekey-guard on 1 strong value (the start-up cost:
# loading, configuration, policies, one check) and on 20 (as a deployment
# runs it on every start), against /bin/true (the cost of starting any
# process at all). The three commands take turns, in rounds, so that a busy
# moment of the machine weighs on all of them alike; each figure is the
# median over every run. Then the sizes of both binaries and, from
# CORPUS_COUNT_FILE (build/gen/known_secrets.count), how many entries the
# hashed known-secrets corpus built into them holds.
#
# rotate: then tests/bench/bench_rotate.sh, `rekey rotate` sequential against
# --parallel 16 (local and Vault; see that file for its settings).
#
# emergency: then tests/bench/bench_emergency.sh, `rekey emergency` over
# 10,000 secrets on the three test doubles and the local store with 1,000
# dependent workloads, against the bound the quotas and latency imply and
# against the same job done by a shell runbook (see that file; BENCH_EM_*
# settings, BENCH_EM_SECRETS=0 skips it). rk-fp next to BENCH_EXEC, when
# built, cross-checks its fingerprints.
set -eu
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
HERE=$(cd "$(dirname "$0")" && pwd)
REKEY=$(abs "$1")
BENCH=$2
GUARD=${3:+$(abs "$3")}
COUNT_FILE=${4:+$(abs "$4")}
N=${BENCH_N:-200}
ROUNDS=${BENCH_ROUNDS:-5}
T=$(mktemp -d /tmp/rekey-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
one="--env-var GUARD_V1"
args=""
i=1
while [ $i -le 20 ]; do
	export "GUARD_V$i=$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
	args="$args --env-var GUARD_V$i"
	i=$((i + 1))
done
export REKEY_CONFIG="$T/none.yaml"
printf 'state_dir: %s/var\n' "$T" >"$T/none.yaml"
# shellcheck disable=SC2086
"$REKEY" guard $args >/dev/null || { echo "bench: guard failed on strong values" >&2; exit 1; }
if [ -n "$GUARD" ]; then
	# shellcheck disable=SC2086
	"$GUARD" $args >/dev/null || { echo "bench: rekey-guard failed on strong values" >&2; exit 1; }
fi

# sample NAME COMMAND...: appends this round's per-run times (us) to $T/NAME.
per=$(( (N + ROUNDS - 1) / ROUNDS ))
sample() {
	name=$1; shift
	BENCH_EXEC_ALL=1 "$BENCH" "$per" "$@" >>"$T/$name.raw"
}
r=1
while [ $r -le "$ROUNDS" ]; do
	sample true /bin/true
	# shellcheck disable=SC2086
	sample rekey1 "$REKEY" guard $one
	# shellcheck disable=SC2086
	sample rekey20 "$REKEY" guard $args
	if [ -n "$GUARD" ]; then
		# shellcheck disable=SC2086
		sample guard1 "$GUARD" $one
		# shellcheck disable=SC2086
		sample guard20 "$GUARD" $args
	fi
	r=$((r + 1))
done
# stat NAME: "median p95 max_rss_kb failures" over every round.
stat() {
	grep '^t=' "$T/$1.raw" | sed 's/^t=//' | sort -n >"$T/$1.sorted"
	n=$(wc -l <"$T/$1.sorted")
	med=$(sed -n "$((n / 2 + 1))p" "$T/$1.sorted")
	p95=$(sed -n "$((n * 95 / 100 + 1))p" "$T/$1.sorted")
	rss=$(sed -n 's/.*max_rss_kb=\([0-9]*\).*/\1/p' "$T/$1.raw" | sort -n | tail -1)
	failures=$(sed -n 's/.*failures=\([0-9]*\).*/\1/p' "$T/$1.raw" | awk '{ s += $1 } END { print s + 0 }')
	echo "$med $p95 $rss $failures"
}
row() { # row LABEL NAME BASE_MEDIAN
	set -- "$1" $(stat "$2") "$3"
	awk -v l="$1" -v m="$2" -v p="$3" -v r="$4" -v f="$5" -v b="$6" 'BEGIN {
		printf "  %-28s median %6d us  p95 %6d us  peak RSS %6d KiB", l, m, p, r
		if (b > 0) printf "   %5.1fx /bin/true (%+.2f ms)", m / b, (m - b) / 1000
		if (f > 0) printf "   %d FAILED RUNS", f
		printf "\n" }'
}
base=$(stat true | cut -d' ' -f1)
size() { wc -c <"$1" | tr -d ' '; }
echo "guard: $((per * ROUNDS)) runs of each command, in $ROUNDS rounds taking turns"
row "/bin/true" true 0
row "rekey guard, 1 value" rekey1 "$base"
[ -z "$GUARD" ] || row "rekey-guard, 1 value" guard1 "$base"
row "rekey guard, 20 values" rekey20 "$base"
[ -z "$GUARD" ] || row "rekey-guard, 20 values" guard20 "$base"
echo "  binaries: rekey $(size "$REKEY") bytes, $(readelf -d "$REKEY" | grep -c NEEDED) shared libraries"
if [ -n "$GUARD" ]; then
	echo "            rekey-guard $(size "$GUARD") bytes, $(readelf -d "$GUARD" | grep -c NEEDED) shared libraries ($(readelf -d "$GUARD" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '))"
fi
if [ -n "$COUNT_FILE" ] && [ -r "$COUNT_FILE" ]; then
	echo "  known-secrets corpus: $(cat "$COUNT_FILE")"
fi
[ -d "$T/var" ] && { echo "bench: guard created a state dir it was not asked to use" >&2; exit 1; }
echo
sh "$HERE/bench_rotate.sh" "$REKEY"
if [ "${BENCH_EM_SECRETS:-10000}" != 0 ]; then
	echo
	RK_FP=$(dirname "$BENCH")/rk-fp
	[ -x "$RK_FP" ] || RK_FP=
	sh "$HERE/bench_emergency.sh" "$REKEY" "$RK_FP" || exit 1
fi
exit 0
