#!/bin/sh
# `rekey emergency` killed from outside: the RELEASE binary, 200 secrets on the
# local provider in three tiers, 20 exec dependents each fed by about 20 of
# them (every secret feeds two), `rekey emergency --yes --parallel 8` of all
# 200 killed with SIGKILL at a random moment within the measured length L of
# one uninterrupted emergency (within its first quarter for the first 6),
# over up to 100 trials (as many as fit in a budget of about 90 s, at least
# 30; see TRIALS below), each with a fresh run on the same state. After
# each kill the run is looked up (the killed process printed nothing) and
# `rekey emergency --resume RUN` is run until the run is done. Then:
#   - each secret changed exactly once in the trial (its run was recorded) or
#     not at all (killed before): the local store's CURRENT is one past the
#     version before, no version past CURRENT was staged, the state DB agrees,
#     and the run's rotation row of each secret is done with old = before,
#     new = before + 1;
#   - the value read is the one whose fingerprint the state DB records as
#     current: for the secrets in flight when the kill landed and a random
#     one in every trial, for all 200 at the start, every 50th trial and at the end
#     (one `rekey get` is ~20 ms here: 200 of them in every trial would not
#     fit the budget);
#   - every dependent ran in the run, each time after the last of its
#     secrets was promoted (the exec dependent appends its name, the run and
#     `date +%s%N`; the promotion time is the mtime of the secret's CURRENT
#     file), with REKEY_SECRETS = exactly its secrets; once in an
#     uninterrupted run; after a kill, one the killed process had journaled
#     as restarted (dep_restarts 'done') is not run again by the resume, one
#     it had not started runs exactly once, one it had started but not
#     confirmed ('restarting') runs again (at most twice in all); a run that
#     was never recorded ran no dependent;
#   - no run is left unfinished, and the scheduler is not left paused.
# Balance: all 200 secrets and all dependents in every trial (no
# --no-restart); the per-trial value check is sampled as said above.
# Reproduce with REKEY_EMKILL_SEED=N (printed); values go from `rekey get`
# straight into rk-fp, never printed.
. "$(dirname "$0")/lib.sh"
: "${RK_FP:?}"
export REKEY_BIN RK_FP
# python3 may be a slow wrapper (pyenv's shim costs 0.3 s a call): the interpreter itself.
PY=$(python3 -c 'import sys; print(sys.executable)')

NSECRETS=200
NDEPS=20
# Trials: up to TRIALS, but once MIN_TRIALS are done no new one starts after
# BUDGET seconds of the whole test (0: no budget, all TRIALS run). A trial is
# bound by rekey itself (the kill delay, L/2 on average, and a resume of what
# is left, about L more), so how many fit depends on the machine: about 100
# in 90 s where one emergency of 200 takes 0.4 s, about 35 where it takes 1.2 s.
TRIALS=${REKEY_EMKILL_TRIALS:-100}
MIN_TRIALS=${REKEY_EMKILL_MIN_TRIALS:-30}
BUDGET=${REKEY_EMKILL_BUDGET:-80}
# The first EARLY trials kill within the first quarter of L (start-up, the
# plan, the scheduler's pause, the run's first steps), the others anywhere in L.
EARLY=${REKEY_EMKILL_EARLY:-6}
PAR="--parallel ${REKEY_EMKILL_PARALLEL:-8}"
SEED=${REKEY_EMKILL_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
t_start=$(date +%s%N)
echo "  seed $SEED (rerun with REKEY_EMKILL_SEED=$SEED)"

setup_local
rk() { "$REKEY_BIN" "$@" 2>>"$T/log"; }
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\n' >"$T/policy/quick.yaml"
# Secret i (1..200) feeds dependents d(i % 20) and d((i % 20 + 1 + (i / 20) % 19) % 20).
{
	echo "secrets:"
	for i in $(seq 1 $NSECRETS); do
		a=$((i % NDEPS)); b=$(( (a + 1 + (i / NDEPS) % (NDEPS - 1)) % NDEPS ))
		printf '  - {name: e/s%03d, locator: {path: e/s%03d}, policy: quick, tier: %d, dependents: [' "$i" "$i" $((i % 3))
		for d in $a $b; do
			printf "{exec: [sh, -c, 'echo \"d%d \$REKEY_RUN_ID \$(date +%%s%%N) \$REKEY_SECRETS\" >>%s/restarts']}" "$d" "$T"
			[ "$d" = "$a" ] && printf ', '
		done
		echo ']}'
	done
} >"$T/inv.yaml"
all_idx=$(seq -f '%03g' 1 $NSECRETS)
: >"$T/restarts"
db() { sqlite3 -readonly -cmd '.timeout 10000' "$T/var/rekey.db" "$@"; }

# The checker (python: one process per trial for 200 secrets, 20 dependents).
# check.py MODE RUN: MODE changed|same. Reads $T/model ("NAME VERSION" per
# secret, before the trial), $T/confirmed (below), prints
# "P check" / "F check: detail" lines and writes the new model.
cat >"$T/check.py" <<'EOP'
import hashlib, os, re, sqlite3, sys
import json
T, mode, run, nsec, ndeps, reason = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
names = ["e/s%03d" % i for i in range(1, nsec + 1)]
feeds = {}
for i in range(1, nsec + 1):
    a = i % ndeps; b = (a + 1 + (i // ndeps) % (ndeps - 1)) % ndeps
    for d in (a, b):
        feeds.setdefault("d%d" % d, set()).add("e/s%03d" % i)
model = {}
for line in open(os.path.join(T, "model")):
    n, v = line.split()
    model[n] = int(v)
def out(ok, name, detail=""):
    print(("P " if ok else "F ") + name + ("" if ok or not detail else ": " + detail))
def sdir(n):
    return os.path.join(T, "var", "local", hashlib.blake2b(n.encode(), digest_size=16).hexdigest())
cur, top, mt, bad_read = {}, {}, {}, []
for n in names:
    d = sdir(n)
    try:
        cur[n] = int(open(os.path.join(d, "CURRENT")).read().strip())
        mt[n] = os.stat(os.path.join(d, "CURRENT")).st_mtime_ns
        top[n] = max(int(m.group(1)) for m in (re.match(r"v(\d+)\.json$", f) for f in os.listdir(d)) if m)
    except Exception as e:
        bad_read.append("%s: %s" % (n, e))
out(not bad_read, "the local store's CURRENT of every secret is readable", ", ".join(bad_read[:3]))
if bad_read:
    sys.exit(0)
want = {n: model[n] + (1 if mode == "changed" else 0) for n in names}
bad = ["%s %d->%d (want %d)" % (n, model[n], cur[n], want[n]) for n in names if cur[n] != want[n]]
out(not bad, "every secret's version is %s" % ("one past the one before (rotated once)" if mode == "changed" else "unchanged"),
    "%d wrong: %s" % (len(bad), ", ".join(bad[:4])))
bad = ["%s v%d staged past CURRENT v%d" % (n, top[n], cur[n]) for n in names if top[n] != cur[n]]
out(not bad, "no version staged past CURRENT (no second write)", "%d: %s" % (len(bad), ", ".join(bad[:4])))
con = sqlite3.connect("file:%s?mode=ro" % os.path.join(T, "var", "rekey.db"), uri=True, timeout=10)
dbv = dict(con.execute("SELECT name, current_version FROM secrets WHERE name LIKE 'e/s%'"))
bad = [n for n in names if dbv.get(n) != str(cur[n])]
out(not bad, "the state DB's current_version is the store's CURRENT", "%d: %s" % (len(bad), ", ".join("%s db %s store %d" % (n, dbv.get(n), cur[n]) for n in bad[:4])))
lines = []
for line in open(os.path.join(T, "restarts")):
    f = line.split()
    if len(f) >= 3:
        lines.append((f[0], f[1], int(f[2]), f[3] if len(f) > 3 else ""))
if mode == "changed":
    got = con.execute("SELECT status, kind, reason FROM runs WHERE id = ?", (run,)).fetchone()
    out(got == ("done", "emergency", reason), "the run is done, an emergency with its reason", "got %r" % (got,))
    try:
        rep = open(os.path.join(T, "resume.out")).read()
    except OSError:
        rep = ""
    if rep.strip():
        try:
            d = json.loads(rep)
            got = (d.get("run_id"), d.get("kind"), d.get("status"))
        except ValueError as e:
            got = "not JSON: %s" % e
        out(got == (run, "emergency", "done"), "the --resume report is of the same run, an emergency, done", "got %r" % (got,))
    rows = {r[0]: r[1:] for r in con.execute("SELECT secret, state, old_version, new_version FROM rotations WHERE run_id = ?", (run,))}
    bad = []
    for n in names:
        r = rows.get(n)
        if r is None:
            bad.append(n + " has no rotation row")
        elif r[0] != "done" or r[1] != (str(model[n]) if model[n] else "") or r[2] != str(model[n] + 1):
            bad.append("%s %s %s->%s (want done %d->%d)" % (n, r[0], r[1], r[2], model[n], model[n] + 1))
    out(not bad, "the run's rotation of each secret is done, from the version before to the next",
        "%d: %s" % (len(bad), ", ".join(bad[:4])))
    mine = [l for l in lines if l[1] == run]
    cnt = {}
    for l in mine:
        cnt[l[0]] = cnt.get(l[0], 0) + 1
    missing = sorted(set(feeds) - set(cnt))
    out(not missing, "every dependent ran in the run", "never ran: " + " ".join(missing[:6]))
    early, wrong = [], []
    for dep, r, ts, secs in mine:
        last = max(mt[n] for n in feeds[dep])
        if ts < last:
            early.append("%s ran %.1f ms before its last secret's promotion" % (dep, (last - ts) / 1e6))
        if set(s for s in secs.split(",") if s) != feeds[dep]:
            got = set(s for s in secs.split(",") if s)
            wrong.append("%s: REKEY_SECRETS has %d (%d extra, %d missing)" % (dep, len(got), len(got - feeds[dep]), len(feeds[dep] - got)))
    out(not early, "each dependent ran after the last of its secrets was promoted", "; ".join(early[:4]))
    out(not wrong, "each dependent was told exactly its secrets (REKEY_SECRETS)", "; ".join(wrong[:4]))
    # $T/confirmed: "DEP COUNT STATE" per dependent when the run was resumed:
    # its invocations in the run and its dep_restarts state when the killed
    # process was gone; empty when no resume ran (one restart each, exactly).
    conf = {}
    for line in open(os.path.join(T, "confirmed")):
        f = line.split()
        if len(f) == 3:
            conf[f[0]] = (int(f[1]), f[2])
    bad = []
    for d in sorted(feeds):
        post = cnt.get(d, 0)
        if not conf:
            if post != 1: bad.append("%s ran %d times in an uninterrupted run" % (d, post))
            continue
        pre, st = conf.get(d, (0, "-"))
        if st == "done":
            if post != pre: bad.append("%s journaled restarted (ran %d times) before the kill, then run again by --resume (%d)" % (d, pre, post))
        elif st == "restarting":
            # started, not confirmed: run again by --resume (its first run may land late)
            if post < pre + 1 or post > 2: bad.append("%s restarting at the kill (ran %d times), %d in all" % (d, pre, post))
        elif pre != 0 or post != 1:
            bad.append("%s not journaled (%s) at the kill, ran %d times then, %d in all" % (d, st, pre, post))
    out(not bad, "each dependent restarted once in the run, again only if its restart was not confirmed (%d confirmed before the kill)"
        % sum(1 for v in conf.values() if v[1] == "done"), "; ".join(bad[:4]))
else:
    base = int(open(os.path.join(T, "restarts.before")).read())
    out(len(lines) == base, "no dependent ran (no run was recorded)", "%d new restart lines" % (len(lines) - base))
with open(os.path.join(T, "model"), "w") as f:
    for n in names:
        f.write("%s %d\n" % (n, cur[n]))
EOP
# run_checks MODE RUN TAG [REASON]: the checker's verdicts as pass/fail.
run_checks() {
	$PY "$T/check.py" "$T" "$1" "$2" $NSECRETS $NDEPS "${4:-}" >"$T/verdicts" 2>&1 || echo "F checker crashed: $(tail -1 "$T/verdicts")" >>"$T/verdicts"
	while IFS= read -r v; do
		case $v in
		"P "*) pass "$3: ${v#P }" ;;
		"F "*) fail "$3: ${v#F }" ;;
		*) fail "$3: checker: $v" ;;
		esac
	done <"$T/verdicts"
}
# fp_check TAG IDX...: each secret's value (rekey get | rk-fp) is the DB's current_fp.
cat >"$T/fp1.sh" <<EOS
#!/bin/sh
vfp=\$("\$REKEY_BIN" get "e/s\$1" 2>>"$T/log" | "\$RK_FP" "$T/var" 2>/dev/null)
echo "\$1 \${vfp:--}"
EOS
fp_check() {
	tag=$1; shift
	printf '%s\n' "$@" | xargs -P 2 -n 1 sh "$T/fp1.sh" | sort >"$T/fp.got"
	db "SELECT substr(name, 4), current_fp FROM secrets WHERE name LIKE 'e/s%'" | tr '|' ' ' | sort >"$T/fp.db"
	bad=$(join -a 1 "$T/fp.got" "$T/fp.db" | awk '$2 == "-" || $2 != $3 { if (++k <= 5) printf " e/s%s", $1 } END { if (k > 5) printf " and %d more", k - 5 }')
	n=$(wc -l <"$T/fp.got")
	check "$tag: the value of each of $n secrets read is the one the DB records as current${bad:+ (not:$bad)}" \
		[ -z "$bad" -a "$n" = $# ]
}
# runs_list: "ID STATUS KIND" per run (`rekey runs --output json`, unfinished ones included).
runs_list() {
	rk --output json runs | $PY -c '
import json, sys
for r in json.load(sys.stdin): print(r["id"], r["status"], r["kind"])'
}
unfinished() { db "SELECT id FROM runs WHERE status NOT IN ('done', 'partial', 'failed')" | tr '\n' ' '; }
# paused_by: scheduler_paused_by as `rekey status NAME --output json` shows it ("" when
# absent; `rekey status --output json` of every secret does not show it).
paused_by() {
	rk status e/s001 --output json | $PY -c '
import json, sys
d = json.load(sys.stdin)
def find(x):
    if isinstance(x, dict):
        if "scheduler_paused_by" in x: return x["scheduler_paused_by"] or ""
        for v in x.values():
            r = find(v)
            if r is not None: return r
    elif isinstance(x, list):
        for v in x:
            r = find(v)
            if r is not None: return r
    return None
print(find(d) or "")'
}
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
snap_model() {
	$PY -c '
import hashlib, os, sys
T, n = sys.argv[1], int(sys.argv[2])
for i in range(1, n + 1):
    nm = "e/s%03d" % i
    p = os.path.join(T, "var", "local", hashlib.blake2b(nm.encode(), digest_size=16).hexdigest(), "CURRENT")
    print(nm, int(open(p).read()) if os.path.exists(p) else 0)' "$T" $NSECRETS >"$T/model"
}

check "the release binary has no crash points" sh -c "! grep -aq REKEY_FAULT '$REKEY_BIN'"
rk init >/dev/null
expect_rc "apply $NSECRETS secrets with $NDEPS shared exec dependents" 0 rk apply -f "$T/inv.yaml"
snap_model
# An emergency of all 200 without kills: the baseline (and L, the median of three).
: >"$T/lengths"
for k in 1 2 3; do
	wc -l <"$T/restarts" >"$T/restarts.before"
	: >"$T/confirmed"
	t0=$(ms_now)
	# shellcheck disable=SC2086
	expect_rc "uninterrupted emergency $k of all $NSECRETS" 0 rk emergency --yes --reason "baseline $k" $PAR --output json
	echo $(( $(ms_now) - t0 )) >>"$T/lengths"
	run=$($PY -c 'import json,sys; print(json.load(sys.stdin)["run_id"])' <"$T/out" 2>/dev/null)
	check "  its report names its run" [ -n "$run" ]
	: >"$T/resume.out"
	run_checks changed "$run" "uninterrupted $k" "baseline $k"
done
L=$(sort -n "$T/lengths" | sed -n 2p)
echo "  one emergency of $NSECRETS secrets: $(tr '\n' ' ' <"$T/lengths")ms; L = median = $L ms"
check "L measured" [ "$L" -gt 0 ]
check "the newest run is an emergency with its reason" \
	[ "$(db "SELECT kind || ' ' || reason FROM runs ORDER BY seq DESC LIMIT 1")" = "emergency baseline 3" ]
fp_check "baseline" $all_idx
check "baseline: the scheduler is not left paused" [ -z "$(paused_by)" ]

awk -v seed="$SEED" -v L="$L" -v n="$TRIALS" -v ns="$NSECRETS" -v early="$EARLY" 'BEGIN {
	srand(seed)
	for (t = 1; t <= n; t++) {
		m = t <= early ? int(L / 4) : L
		d = int(rand() * (m + 1)); if (d > m) d = m
		printf "%d %03d\n", d, 1 + int(rand() * ns)
	}
}' >"$T/plan"
killed_n=0 finished_n=0 notstarted_n=0 resumed_n=0 confirmed_n=0
trial=0
while read -r delay r1; do
	if [ "$trial" -ge "$MIN_TRIALS" ] && [ "$BUDGET" -gt 0 ] &&
		[ $(( ($(date +%s%N) - t_start) / 1000000000 )) -ge "$BUDGET" ]; then
		break
	fi
	trial=$((trial + 1))
	tag="trial $trial (kill after ${delay}ms)"
	before=$(db "SELECT id FROM runs ORDER BY seq DESC LIMIT 1")
	wc -l <"$T/restarts" >"$T/restarts.before"
	# shellcheck disable=SC2086
	"$REKEY_BIN" emergency --yes --reason "trial $trial" $PAR --output json >"$T/killed.out" 2>>"$T/log" &
	pid=$!
	sleep "$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 1000 }')"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	[ "$rc" = 0 ] || [ "$rc" = 137 ] || fail "$tag: emergency exited $rc (not 0, not 137)"
	# The run (the killed process printed nothing): from `rekey runs` every
	# 10th trial, otherwise straight from the runs table `rekey runs` reads
	# (rekey + python per trial would cost a fifth of a second).
	if [ $((trial % 10)) = 0 ]; then
		runs_list >"$T/runs"
	else
		db "SELECT id, status, kind FROM runs ORDER BY seq DESC" | tr '|' ' ' >"$T/runs"
	fi
	run=$(awk -v b="$before" 'NR == 1 && $1 != b { print $1 }' "$T/runs")
	st=$(awk -v r="$run" '$1 == r { print $2 }' "$T/runs")
	sample="$r1"
	: >"$T/confirmed"
	: >"$T/resume.out"
	if [ -n "$run" ] && [ "$st" != "done" ]; then
		killed_n=$((killed_n + 1))
		check "$tag: the killed run $run is listed unfinished ($st) as an emergency" \
			[ "$(awk -v r="$run" '$1 == r { print $3 }' "$T/runs")" = emergency ]
		busy=$(db "SELECT substr(secret, 4) FROM rotations WHERE run_id = '$run' AND secret LIKE 'e/s%' AND state NOT IN ('done', 'failed', 'rolled_back') LIMIT 8")
		sample="$sample $(echo $busy)"
		# Each dependent's journaled restart state in the run and its invocations so far.
		db "SELECT dependent || '|' || state FROM dep_restarts WHERE run_id = '$run'" |
			sed -n 's/.*"echo \\"\(d[0-9]*\) .*|\([a-z_]*\)$/\1 \2/p' >"$T/depstate"
		awk -v r="$run" -v nd=$NDEPS 'FILENAME == ARGV[1] { st[$1] = $2; next } $2 == r { c[$1]++ }
			END { for (i = 0; i < nd; i++) { d = "d" i; print d, c[d] + 0, (d in st) ? st[d] : "-" } }' \
			"$T/depstate" "$T/restarts" >"$T/confirmed"
		confirmed_n=$((confirmed_n + $(awk '$3 == "done"' "$T/confirmed" | wc -l)))
		k=0 rrc=1
		while [ "$rrc" != 0 ] && [ $k -lt 3 ]; do
			# shellcheck disable=SC2086
			rk emergency --resume "$run" $PAR --output json >"$T/resume.out"
			rrc=$?
			cat "$T/resume.out" >>"$T/all.out"
			k=$((k + 1)); resumed_n=$((resumed_n + 1))
		done
		check "$tag: emergency --resume $run finishes it (exit $rrc after $k)" [ "$rrc.$k" = 0.1 ]
	elif [ -n "$run" ]; then
		finished_n=$((finished_n + 1))
	else
		notstarted_n=$((notstarted_n + 1))
		check "$tag: killed before its run was recorded (exit 137)" [ "$rc" = 137 ]
	fi
	check "$tag: no run left unfinished" [ -z "$(unfinished)" ]
	if [ -n "$run" ]; then
		run_checks changed "$run" "$tag" "trial $trial"
	else
		run_checks same - "$tag"
	fi
	if [ $((trial % 50)) = 0 ]; then
		fp_check "$tag" $all_idx
	else
		# shellcheck disable=SC2086
		# shellcheck disable=SC2046
		fp_check "$tag" $(printf '%s\n' $sample | sort -u)
	fi
	if [ $((trial % 10)) = 0 ] || [ -z "$run" ]; then
		holder=$(paused_by)
		known=
		[ -n "$holder" ] && known=$(db "SELECT status FROM runs WHERE id = '$holder'")
		check "$tag: the scheduler is not left paused${holder:+ (paused by $holder, ${known:-a run that does not exist})}" [ -z "$holder" ]
	fi
done <"$T/plan"
fp_check "after $trial trials" $all_idx
check "at least $MIN_TRIALS trials ran ($trial of $TRIALS in the ${BUDGET}s budget)" [ "$trial" -ge "$MIN_TRIALS" -o "$trial" = "$TRIALS" ]
check "after the trials: the scheduler is not left paused" [ -z "$(paused_by)" ]
expect_rc "audit verify" 0 rk audit verify
secs=$(( ($(date +%s%N) - t_start) / 1000000000 ))
echo "  kill trials: $trial of $TRIALS (L = ${L}ms, seed $SEED): $killed_n killed mid-run (resumed), $finished_n finished before the kill, $notstarted_n killed before the run was recorded; $resumed_n resumes; $confirmed_n dependents journaled restarted by a killed process; ${secs}s"
[ "$FAILED" = 0 ] || echo "  to reproduce: REKEY_EMKILL_SEED=$SEED sh $0"
finish
