#!/bin/sh
# Benchmarks. Figures are ratios against a baseline measured in the same run
# on the same machine, never absolute thresholds.
#
# guard: `rekey guard` on 20 strong values (as a deployment runs it on every
# start) against /bin/true (the cost of starting any process at all).
set -eu
REKEY=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
BENCH=$2
N=${BENCH_N:-200}
T=$(mktemp -d /tmp/rekey-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
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
base=$("$BENCH" "$N" /bin/true)
# shellcheck disable=SC2086
guard=$("$BENCH" "$N" "$REKEY" guard $args)
get() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
bm=$(get "$base" median_us); gm=$(get "$guard" median_us)
br=$(get "$base" max_rss_kb); gr=$(get "$guard" max_rss_kb)
echo "guard, 20 values, $N runs each:"
echo "  /bin/true     median $bm us, p95 $(get "$base" p95_us) us, peak RSS $br KiB"
echo "  rekey guard   median $gm us, p95 $(get "$guard" p95_us) us, peak RSS $gr KiB"
awk -v g="$gm" -v b="$bm" -v gr="$gr" -v br="$br" 'BEGIN {
	printf "  ratio: wall time %.1fx /bin/true (+%.2f ms), peak RSS %.1fx\n", g / b, (g - b) / 1000, gr / br }'
[ -d "$T/var" ] && { echo "bench: guard created a state dir it was not asked to use" >&2; exit 1; }
exit 0
