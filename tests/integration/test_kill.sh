#!/bin/sh
# Crash tests from outside (issue 8): the RELEASE binary, 40 secrets on the
# local provider, `rekey rotate` of all 40 killed with SIGKILL by this shell at
# a random moment within the measured length L of one such run, over at least
# 50 trials. After each: every unfinished run is resumed, every secret is
# readable and its value is the one whose fingerprint the state DB records as
# current, the trial changed all 40 values (its run was recorded) or none (it
# was killed before), and `rekey rollback` of a sample of secrets (all 40 in
# some trials) returns exactly the value current before the latest change,
# derived from the fingerprint history this test keeps itself. Then 10 trials
# of two concurrent `rekey rotate` of the same secrets: one rotates, the other
# exits 75 (the state lock is busy). Finally the audit chain verifies.
# Every rotation runs 8 rotations at once (REKEY_KILL_PARALLEL), so kills
# land with several rotations in flight at different steps.
#
# Reproduce a run with REKEY_KILL_SEED=N (the seed is printed); values are
# never printed: they go from `rekey get` straight into rk-fp.
. "$(dirname "$0")/lib.sh"
: "${RK_FP:?}"
export REKEY_BIN RK_FP

NSECRETS=40
TRIALS=${REKEY_KILL_TRIALS:-50}
# Rotations in flight at once in every killed run (issue 9: crash tests pass with 8).
PAR="--parallel ${REKEY_KILL_PARALLEL:-8}"
CONC_TRIALS=10
SEED=${REKEY_KILL_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
t_start=$(date +%s%N)
echo "  seed $SEED (rerun with REKEY_KILL_SEED=$SEED)"

setup_local
# Quiet: rekey's logs (JSON, never a value) go to a file.
rk() { "$REKEY_BIN" "$@" 2>>"$T/log"; }
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\n' >"$T/policy/quick.yaml"
names=
{
	echo "secrets:"
	for i in $(seq -w 1 $NSECRETS); do
		echo "  - {name: k/s$i, locator: {path: k/s$i}, policy: quick}"
	done
} >"$T/inv.yaml"
for i in $(seq -w 1 $NSECRETS); do names="$names k/s$i"; done
all_idx=$(seq -w 1 $NSECRETS)

# fp1.sh IDX: "IDX GET_RC VALUE_FP" for secret k/sIDX, the fingerprint of what
# `rekey get` prints (the value goes through a pipe into rk-fp, nowhere else),
# and with "status" also "STATUS_FP VERSION": current_fp and current_version
# of `rekey status NAME --output json`.
cat >"$T/fp1.sh" <<EOS
#!/bin/sh
i=\$1
vfp=\$( { "\$REKEY_BIN" get "k/s\$i" 2>>"$T/log"; echo \$? >"$T/rc.\$i"; } | "\$RK_FP" "$T/var" 2>/dev/null)
if [ "\${2:-}" = status ]; then
	st=\$("\$REKEY_BIN" status "k/s\$i" --output json 2>>"$T/log" | awk -F'"' '
		\$1 == "  " && \$2 == "current_fp" { f = \$4 } \$1 == "  " && \$2 == "current_version" { v = \$4 }
		END { print (f == "" ? "-" : f), (v == "" ? "-" : v) }')
fi
echo "\$i \$(cat "$T/rc.\$i") \${vfp:--}\${st:+ \$st}"
EOS
# snap FILE IDX...: "IDX GET_RC VALUE_FP STATUS_FP VERSION" for each secret, two
# at a time, sorted into FILE (fingerprint and version from `rekey status NAME`).
snap() {
	f=$1; shift
	printf '%s\n' "$@" | xargs -P 2 -I{} sh "$T/fp1.sh" {} status | sort >"$f"
}
# snap_db FILE: the same for all secrets, but current_fp and current_version read
# with one sqlite3 query of the secrets table `rekey status` reads: 40 calls of
# `rekey status` per trial would make this test a third slower. The baseline
# and some trials check that both ways agree.
snap_db() {
	printf '%s\n' $all_idx | xargs -P 2 -n 1 sh "$T/fp1.sh" | sort >"$T/get.part"
	sqlite3 -readonly -separator ' ' "$T/var/rekey.db" \
		"SELECT substr(name, 4), current_fp, current_version FROM secrets WHERE name LIKE 'k/s%'" |
		sort >"$T/db.part"
	join "$T/get.part" "$T/db.part" >"$1"
}

# The model: for each secret, the fingerprints of its values in the order they
# became current (the test's own record, not rekey's history) and the version
# number it expects (every change, rotation or rollback, makes one new
# version), one line per secret: "IDX VERSION FP1 FP2 ...". awk, not python:
# it runs twice per trial.
cat >"$T/model.awk" <<'EOA'
function problem(s) { print "      | " s; bad = 1 }
FILENAME == ARGV[1] { v[$1] = $2; n[$1] = NF - 2; for (k = 3; k <= NF; k++) h[$1, k - 2] = $k; nstate++; next }
{
	i = $1; rc = $2; vfp = $3; sfp = $4; ver = $5; nseen++
	if (rc != "0") problem("k/s" i ": rekey get exited " rc)
	else if (sfp == "-" || vfp != sfp) problem("k/s" i ": the value read is not the one status records as current")
	if (cmd == "init") { v[i] = ver; n[i] = 1; h[i, 1] = sfp; next }
	# One new version per change: a resumed write must not leave a second one.
	wantv = v[i] + (cmd == "rolledback" ? 1 : mode == "changed" ? count : 0)
	if (ver != wantv) problem("k/s" i ": current version " ver ", expected " wantv " (one new version per change)")
	v[i] = ver
	last = h[i, n[i]]; pos = 0
	for (k = 1; k <= n[i]; k++) if (h[i, k] == sfp) pos = k
	if (cmd == "after") {
		if (mode == "changed" && sfp == last)
			problem("k/s" i ": unchanged although its run was recorded (the run rotates it)")
		else if (mode == "changed" && pos)
			problem("k/s" i ": the new value is an old one (value " pos " of " n[i] ")")
		else if (mode == "same" && sfp != last)
			problem("k/s" i ": changed although no run of this trial was recorded")
		if (sfp != last) h[i, ++n[i]] = sfp	# follow what is there: one problem, one report
	} else {	# rolledback: the value current just before the latest change
		if (sfp != h[i, n[i] - 1])
			problem("k/s" i ": rollback made " (pos ? "value " pos " of " n[i] : "a value never current before") \
				" current, not value " n[i] - 1 " (the one before the latest change)")
		h[i, ++n[i]] = sfp
	}
}
END {
	if (cmd == "after" && nseen != nstate) problem(nseen " secrets read, " nstate " expected")
	for (i in n) { line = i " " v[i]; for (k = 1; k <= n[i]; k++) line = line " " h[i, k]; print line >out }
	exit bad
}
EOA
: >"$T/model"
model() { # model init|after|rolledback SNAP [changed|same [CHANGES]]
	awk -v cmd="$1" -v mode="${3:-}" -v count="${4:-1}" -v out="$T/model.new" -f "$T/model.awk" "$T/model" "$2"
	m_rc=$?
	mv "$T/model.new" "$T/model"
	return $m_rc
}

# runs_list [--limit N]: "ID STATUS KIND SECRETS DONE" per run, as `rekey runs` lists them.
runs_list() {
	rk --output json runs "$@" | awk -F'"' '
		$2 == "id" { id = $4 } $2 == "status" { st = $4 } $2 == "kind" { kd = $4 }
		$2 == "secrets" { se = $3 } $2 == "done" { dn = $3 }
		/^  }/ { gsub(/[ :,]/, "", se); gsub(/[ :,]/, "", dn); print id, st, kd, se, dn }'
}
newest_run() { runs_list --limit 1 | head -1; }
# in_flight RUN: the secrets whose last journal step in RUN is not done, failed or rolled_back.
in_flight() {
	rk --output json run "$1" | awk -F'"' '
		$2 == "secret" { s = $4 } $2 == "step" { st[s] = $4 }
		END { for (x in st) if (st[x] != "done" && st[x] != "failed" && st[x] != "rolled_back") print x }' |
		sort | tr '\n' ' '
}
unfinished() { runs_list | awk '$2 == "running" { printf "%s ", $1 }'; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }

check "the release binary has no crash points" sh -c "! grep -aq REKEY_FAULT '$REKEY_BIN'"
rk init >/dev/null
expect_rc "apply $NSECRETS secrets" 0 rk apply -f "$T/inv.yaml"
# shellcheck disable=SC2086
expect_rc "initial rotation: every secret gets a value" 0 rk rotate $names

# ---- L: the median wall-clock length of one rotation of all 40 ----
: >"$T/lengths"
for k in 1 2 3; do
	t0=$(ms_now)
	# shellcheck disable=SC2086
	rk rotate $PAR $names >/dev/null
	echo $(( $(ms_now) - t0 )) >>"$T/lengths"
done
L=$(sort -n "$T/lengths" | sed -n 2p)
echo "  one rotation of $NSECRETS secrets: $(tr '\n' ' ' <"$T/lengths")ms; L = median = $L ms"
check "L measured" [ "$L" -gt 0 ]
snap "$T/snap" $all_idx
check "baseline: every secret readable, its value has the current fingerprint" model init "$T/snap"
snap_db "$T/snap.db"
check "sqlite3 reads the fingerprints and versions rekey status prints" cmp -s "$T/snap" "$T/snap.db"
# shellcheck disable=SC2086
rk rotate $names >/dev/null
snap "$T/snap" $all_idx
check "baseline: a second rotation changed every value" model after "$T/snap" changed

# ---- random kills ----
# Per trial: the delay in ms (uniform in [0, L]) and 3 distinct secrets to roll back.
awk -v seed="$SEED" -v L="$L" -v n="$TRIALS" -v ns="$NSECRETS" 'BEGIN {
	srand(seed)
	for (t = 1; t <= n; t++) {
		d = int(rand() * (L + 1)); if (d > L) d = L
		a = 1 + int(rand() * ns)
		do b = 1 + int(rand() * ns); while (b == a)
		do c = 1 + int(rand() * ns); while (c == a || c == b)
		printf "%d %02d %02d %02d\n", d, a, b, c
	}
}' >"$T/plan"
alldone_n=0 unfinished_n=0 finished_n=0 notstarted_n=0 rb_n=0 resumed_n=0
trial=0
while read -r delay r1 r2 r3; do
	trial=$((trial + 1))
	tag="trial $trial (kill after ${delay}ms)"
	before=$(newest_run)
	# shellcheck disable=SC2086
	"$REKEY_BIN" rotate $PAR $names >/dev/null 2>>"$T/log" &
	pid=$!
	sleep "$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 1000 }')"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null	# (dash reports "Killed" on stderr)
	rc=$?
	if [ "$rc" != 0 ] && [ "$rc" != 137 ]; then fail "$tag: rotate exited $rc (not 0, not 137)"; fi
	left=$(unfinished)
	if [ -n "$left" ]; then
		# A secret whose rotation in that run is not done may not be rotated again
		# before the run is resumed (one whose rotation is done may: the run was
		# killed between its rotations' last step and the run's own end).
		run=${left%% *}
		busy=$(in_flight "$run")
		case " $busy " in
		*" k/s$r1 "*) victim=k/s$r1 ;;
		*) victim=${busy%% *} ;;
		esac
		if [ -n "$victim" ]; then
			expect_rc "$tag: a new rotation of $victim (in flight in the unfinished run) is refused" 2 \
				"$REKEY_BIN" rotate "$victim"
			check "$tag: ... naming the run to resume" contains "$T/err" "has an unfinished rotation in run $run"
		else
			alldone_n=$((alldone_n + 1))
		fi
	fi
	for run in $left; do
		# shellcheck disable=SC2086
		expect_rc "$tag: rotate --resume $run" 0 "$REKEY_BIN" rotate $PAR --resume "$run"
		resumed_n=$((resumed_n + 1))
	done
	check "$tag: no run left unfinished" [ -z "$(unfinished)" ]
	after=$(newest_run)
	if [ -n "$left" ]; then
		unfinished_n=$((unfinished_n + 1))
	elif [ "$after" != "$before" ]; then
		finished_n=$((finished_n + 1))
	else
		notstarted_n=$((notstarted_n + 1))
	fi
	if [ "$after" != "$before" ]; then
		mode=changed
		check "$tag: its run is a finished rotation of all $NSECRETS" \
			[ "${after#* }" = "done rotate $NSECRETS $NSECRETS" ]
		if [ "$rc" = 0 ] && [ -n "$left" ]; then fail "$tag: rotate exited 0 but left its run unfinished"; fi
	else
		mode=same
		check "$tag: killed before its run was recorded (exit 137)" [ "$rc" = 137 ]
	fi
	if [ $((trial % 10)) = 0 ]; then snap "$T/snap" $all_idx; else snap_db "$T/snap"; fi
	check "$tag: every secret readable, value = current fingerprint, $mode" model after "$T/snap" $mode
	if [ $((trial % 25)) = 0 ]; then sample=$all_idx; else sample="$r1 $r2 $r3"; fi
	bad=
	for i in $sample; do
		rk rollback "k/s$i" >/dev/null || bad="$bad k/s$i"
		rb_n=$((rb_n + 1))
	done
	check "$tag: rollback of $(echo $sample | wc -w) secrets exits 0${bad:+ (failed:$bad)}" [ -z "$bad" ]
	snap "$T/snap" $sample
	check "$tag: each rollback restored the value from before the latest change" model rolledback "$T/snap"
done <"$T/plan"

# ---- two concurrent rotations of the same 40 secrets ----
for k in $(seq 1 $CONC_TRIALS); do
	tag="concurrent $k"
	before=$(newest_run)
	# shellcheck disable=SC2086
	"$REKEY_BIN" rotate $PAR $names >/dev/null 2>"$T/c1.err" &
	p1=$!
	# shellcheck disable=SC2086
	"$REKEY_BIN" rotate $PAR $names >/dev/null 2>"$T/c2.err" &
	p2=$!
	wait "$p1"; rc1=$?
	wait "$p2"; rc2=$?
	cat "$T/c1.err" "$T/c2.err" >>"$T/log"
	check "$tag: one exits 0, the other 75 (got $rc1 and $rc2)" \
		[ "$(printf '%s\n' "$rc1" "$rc2" | sort -n | tr '\n' ' ')" = "0 75 " ]
	if [ "$rc1" = 75 ]; then loser=$T/c1.err; else loser=$T/c2.err; fi
	check "$tag: the one refused says the lock is held" contains "$loser" "another rekey holds the lock"
	runs_list --limit 2 >"$T/runs2"
	check "$tag: exactly one new run, a finished rotation of all $NSECRETS" \
		[ "$(cut -d' ' -f2- "$T/runs2" | head -1) $(sed -n 2p "$T/runs2")" = "done rotate $NSECRETS $NSECRETS $before" ]
done
snap "$T/snap" $all_idx
check "after $CONC_TRIALS concurrent pairs: every value new, one version per pair, value = current fingerprint" \
	model after "$T/snap" changed $CONC_TRIALS
check "no run left unfinished" [ -z "$(unfinished)" ]
expect_rc "audit verify" 0 rk audit verify
secs=$(( ($(date +%s%N) - t_start) / 1000000000 ))
echo "  kill trials: $TRIALS (L = ${L}ms, seed $SEED): $unfinished_n killed mid-run (left unfinished, resumed; in $alldone_n of them every rotation was already done), $finished_n finished before the kill, $notstarted_n killed before the run was recorded; $resumed_n resumes, $rb_n rollbacks; $CONC_TRIALS concurrent pairs; ${secs}s"
[ "$FAILED" = 0 ] || echo "  to reproduce: REKEY_KILL_SEED=$SEED sh $0 (same delays and samples; the kill
  delays are wall-clock, so where in the run they land varies a little)"
finish
