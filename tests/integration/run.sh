#!/bin/sh
# Runs every integration test and prints one closing line: "N passed, N failed".
set -u
dir=$(cd "$(dirname "$0")" && pwd)
total_p=0
total_f=0
for t in "$dir"/test_*.sh; do
	echo "== $(basename "$t")"
	t0=$(date +%s)
	out=$(sh "$t" 2>&1)
	rc=$?
	echo "$out"
	echo "   ($(( $(date +%s) - t0 )) s)"
	line=$(echo "$out" | grep -E ': [0-9]+ passed, [0-9]+ failed$' | tail -1)
	p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
	[ -n "$p" ] || p=0
	[ -n "$f" ] || f=0
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; echo "  FAIL $(basename "$t") exited $rc"; fi
	total_p=$((total_p + p))
	total_f=$((total_f + f))
done
echo "integration: $total_p passed, $total_f failed"
[ "$total_f" = 0 ]
