#!/bin/sh
# Runs every integration test and prints one closing line: "N passed, N failed".
#
# REKEY_IT_JOBS tests run at once (default 2): most of them wait on fakes,
# rollouts and timeouts rather than on a CPU. Each test has its own
# temporary directory and its fakes on ports of their own, so they do not
# meet. The longest go first; outputs are printed whole, in name order.
set -u
dir=$(cd "$(dirname "$0")" && pwd)
jobs=${REKEY_IT_JOBS:-2}
case $jobs in '' | *[!0-9]* | 0) echo "REKEY_IT_JOBS must be a number >= 1" >&2; exit 2 ;; esac
out=$(mktemp -d /tmp/rekey-it-run.XXXXXX)
trap 'rm -rf "$out"' EXIT

# The slow ones first, so that the lanes end together.
first="test_k8s.sh test_kill.sh test_emergency_kill.sh test_emergency.sh test_aws.sh
test_vault.sh test_k8s_workloads.sh test_k8s_lease.sh test_crash.sh test_stop.sh"
{
	for t in $first; do [ -f "$dir/$t" ] && echo "$t"; done
	for t in "$dir"/test_*.sh; do
		b=$(basename "$t")
		case " $(echo $first) " in *" $b "*) ;; *) echo "$b" ;; esac
	done
} | xargs -P "$jobs" -I{} sh -c '
	t0=$(date +%s)
	sh "$1/$2" >"$3/$2.out" 2>&1
	echo $? >"$3/$2.rc"
	echo $(( $(date +%s) - t0 )) >"$3/$2.time"
' _ "$dir" {} "$out"

total_p=0
total_f=0
for t in "$dir"/test_*.sh; do
	b=$(basename "$t")
	echo "== $b"
	cat "$out/$b.out" 2>/dev/null
	rc=$(cat "$out/$b.rc" 2>/dev/null || echo 1)
	echo "   ($(cat "$out/$b.time" 2>/dev/null || echo '?') s)"
	line=$(grep -E ': [0-9]+ passed, [0-9]+ failed$' "$out/$b.out" 2>/dev/null | tail -1)
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
	[ -n "$p" ] || p=0
	[ -n "$f" ] || f=0
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; echo "  FAIL $b exited $rc"; fi
	total_p=$((total_p + p))
	total_f=$((total_f + f))
done
echo "integration: $total_p passed, $total_f failed"
[ "$total_f" = 0 ]
