#!/bin/sh
# `rekey emergency` on three providers at once: the local store, Kubernetes
# (tests/fakes/k8s_fake.py) and Vault (tests/fakes/vault_fake.py), nine
# secrets in three tiers with dependents shared between secrets and across
# providers (two Deployments, four exec dependents). Checks:
#   - without --yes and without a terminal it refuses (exit 2, names --yes),
#     on a terminal it asks, rotates on "yes" (with a progress bar) and
#     changes nothing on "no"; --reason is required;
#   - every scope selector and ANDed combinations select exactly the right
#     secrets (dry-run JSON: waves by tier, dependents once with their
#     in-scope secrets, providers); malformed selectors exit 2, an empty
#     scope exits 1, nothing done;
#   - a dry run changes nothing: values, versions, workloads, runs, and the
#     fakes saw only reads;
#   - a full emergency: every secret written once, each dependent restarted
#     exactly once (PATCH count per workload in the k8s fake's log; lines of
#     the exec dependents) and after the last write of the secrets feeding it
#     (k8s log order; local CURRENT mtimes; Vault's log times); the scheduler
#     is paused by the run while it runs (`rekey status` from another process)
#     and not after; report fields and totals; audit and `rekey run RUN`;
#   - Vault down for the whole run (every request hangs; timeout 1 s, circuit
#     breaker failures: 2): its secrets fail fast, naming the circuit, the
#     others are rotated, exit 3, retry = `rekey emergency --resume RUN`;
#     with Vault back, that command finishes the run: the Vault secrets
#     rotated once, nothing else written again, every dependent restarted
#     after the last of its secrets (also those restarted before the retry),
#     one that had no failed secret not restarted again;
#   - SIGTERM while Kubernetes writes are slow: exit 3, interrupted, and
#     --resume finishes with every secret written exactly once and every
#     dependent restarted once;
#   - no secret value in any output, log, exec dependent's record or DB file.
. "$(dirname "$0")/lib.sh"
: "${RK_FP:?}"
command -v curl >/dev/null || { echo "test_emergency: curl missing"; exit 1; }
# python3 may be a slow wrapper (pyenv's shim): use the interpreter itself.
PY=$(python3 -c 'import sys; print(sys.executable)')
export REKEY_BIN RK_FP

$PY "$SRC/tests/fakes/k8s_fake.py" --port 0 --port-file "$T/kport" --cert-dir "$T/k8s" 2>"$T/k8s.log" &
KFAKE=$!
$PY "$SRC/tests/fakes/vault_fake.py" --port 0 --port-file "$T/vport" 2>"$T/vault.log" &
VFAKE=$!
trap 'kill $KFAKE $VFAKE 2>/dev/null; wait $KFAKE $VFAKE 2>/dev/null; rm -rf "$T"' EXIT
i=0
while { [ ! -s "$T/kport" ] || [ ! -s "$T/vport" ]; } && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$T/kport" ] && [ -s "$T/vport" ] || { echo "test_emergency: a fake did not start"; cat "$T/k8s.log" "$T/vault.log"; exit 1; }
K="https://127.0.0.1:$(cat "$T/kport")"
V="http://127.0.0.1:$(cat "$T/vport")"
kadmin() { curl -sS --cacert "$T/k8s/ca.crt" -X "$1" "$K/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
vadmin() { curl -sS -X "$1" "$V/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
jq_() { $PY -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
rk() { "$REKEY_BIN" "$@"; }

kadmin POST config '{"rollout_seconds": 0.3}' >/dev/null
printf 'root\n' >"$T/token"
chmod 600 "$T/token"
cat >"$T/rekey.yaml" <<EOC
state_dir: $T/var
environment: test
policy_dir: $T/policy
providers:
  local: {type: local}
  cluster: {type: kubernetes, kubeconfig: $T/k8s/kubeconfig, context: fake-token, rollout_poll: 50ms,
            rate_limit: {rps: 1000, burst: 100}, retry: {max_attempts: 3, base_delay: 20ms, max_delay: 200ms}}
  vault: {type: vault, address: "$V", insecure_http: true, auth: {method: token, token_file: $T/token},
          timeout: {connect: 1s, total: 1s}, retry: {max_attempts: 3, base_delay: 10ms, max_delay: 50ms},
          circuit_breaker: {failures: 2, cooldown: 30s}, concurrency: 1}
EOC
mkdir -p "$T/policy"
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nrestart: {wait: true, timeout: 10s}\n' >"$T/policy/quick.yaml"

# Kubernetes: three Secrets and two Deployments in namespace apps.
objs=
for s in s-a s-b s-c; do
	objs="$objs{\"kind\": \"Secret\", \"metadata\": {\"name\": \"$s\", \"namespace\": \"apps\"}, \"data\": {\"v\": \"b2xkLXZhbHVl\", \"other\": \"a2VlcA==\"}},"
done
for w in api web; do
	objs="$objs{\"kind\": \"Deployment\", \"metadata\": {\"name\": \"$w\", \"namespace\": \"apps\"}, \"spec\": {\"replicas\": 2, \"selector\": {\"matchLabels\": {\"app\": \"$w\"}}, \"template\": {\"metadata\": {\"labels\": {\"app\": \"$w\"}}, \"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"$w\"}]}}}},"
done
kadmin POST seed "{\"objects\": [${objs%,}]}" >"$T/seed.out"
check "the k8s fake holds the Secrets and Deployments" [ "$(jq_ "len(d['objects'])" <"$T/seed.out")" = 5 ]
# Vault: three KV entries.
for p in a b c; do
	vadmin POST kv "{\"mount\": \"secret\", \"path\": \"app/$p\", \"data\": {\"password\": \"old-vault-value-$p\", \"user\": \"app\"}}" >/dev/null
done

# The inventory. Dependents (D1..D4 exec, api and web Deployments):
#   l/a -> D1 api   l/b -> D1 D4   l/c -> D2
#   k/a -> api      k/b -> api web D1   k/c -> web D4
#   v/a -> D1 api   v/b -> D2      v/c -> web D3
dep() { printf "{exec: [sh, -c, 'echo \"%s \$REKEY_RUN_ID \$(date +%%s%%N) \$REKEY_SECRETS\" >>%s/restarts']}" "$1" "$T"; }
API="{kubernetes: cluster/deployment/apps/api}"
WEB="{kubernetes: cluster/deployment/apps/web}"
cat >"$T/inv.yaml" <<EOI
secrets:
  - {name: l/a, locator: {path: l/a}, policy: quick, tier: 0, owner: team-a, environment: prod, dependents: [$(dep D1), $API]}
  - {name: l/b, locator: {path: l/b}, policy: quick, tier: 1, owner: team-b, dependents: [$(dep D1), $(dep D4)]}
  - {name: l/c, locator: {path: l/c}, policy: quick, tier: 2, owner: team-a, dependents: [$(dep D2)]}
  - {name: k/a, provider: cluster, locator: {namespace: apps, secret: s-a, key: v}, policy: quick, tier: 0, owner: team-a, environment: prod, dependents: [$API]}
  - {name: k/b, provider: cluster, locator: {namespace: apps, secret: s-b, key: v}, policy: quick, tier: 1, owner: team-b, environment: prod, dependents: [$API, $WEB, $(dep D1)]}
  - {name: k/c, provider: cluster, locator: {namespace: apps, secret: s-c, key: v}, policy: quick, tier: 2, owner: team-c, dependents: [$WEB, $(dep D4)]}
  - {name: v/a, provider: vault, locator: {path: app/a, key: password}, policy: quick, tier: 0, owner: team-a, dependents: [$(dep D1), $API]}
  - {name: v/b, provider: vault, locator: {path: app/b, key: password}, policy: quick, tier: 1, owner: team-c, environment: prod, dependents: [$(dep D2)]}
  - {name: v/c, provider: vault, locator: {path: app/c, key: password}, policy: quick, tier: 2, owner: team-b, dependents: [$WEB, $(dep D3)]}
EOI
ALL="l/a l/b l/c k/a k/b k/c v/a v/b v/c"
: >"$T/restarts"
expect_rc "init" 0 rk init
expect_rc "apply 9 secrets on three providers" 0 rk apply -f "$T/inv.yaml"
# The local secrets get a first value (the others have one in their fake).
expect_rc "a first value for the local secrets" 0 rk rotate --no-restart l/a l/b l/c

# ---- helpers ----
# The inventory as the checkers know it.
cat >"$T/inv.py" <<'EOP'
TIER = {"l/a": 0, "l/b": 1, "l/c": 2, "k/a": 0, "k/b": 1, "k/c": 2, "v/a": 0, "v/b": 1, "v/c": 2}
PROV = {n: {"l": "local", "k": "cluster", "v": "vault"}[n[0]] for n in TIER}
OWNER = {"l/a": "team-a", "l/b": "team-b", "l/c": "team-a", "k/a": "team-a", "k/b": "team-b",
         "k/c": "team-c", "v/a": "team-a", "v/b": "team-c", "v/c": "team-b"}
ENV = {n: "prod" if n in ("l/a", "k/a", "k/b", "v/b") else "test" for n in TIER}
FEEDS = {"D1": {"l/a", "l/b", "k/b", "v/a"}, "D2": {"l/c", "v/b"}, "D3": {"v/c"}, "D4": {"l/b", "k/c"},
         "api": {"l/a", "k/a", "k/b", "v/a"}, "web": {"k/b", "k/c", "v/c"}}
KSECRET = {"k/a": "s-a", "k/b": "s-b", "k/c": "s-c"}
VPATH = {"v/a": "app/a", "v/b": "app/b", "v/c": "app/c"}
import re
def depname(key):
    m = re.search(r'echo \\?"(D\d) ', key)
    if m:
        return m.group(1)
    m = re.search(r"deployment/apps/(\w+)", key)
    return m.group(1) if m else key
EOP
# plan.py FILE REASON "EXPECTED NAMES" SCOPE...: the dry-run JSON plan is that of exactly those secrets.
cat >"$T/plan.py" <<'EOP'
import json, sys
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
from inv import *
f, reason, want, scope = sys.argv[1], sys.argv[2], set(sys.argv[3].split()), sys.argv[4:]
bad = []
try:
    d = json.load(open(f))
except Exception as e:
    print("not JSON: %s" % e); sys.exit(1)
if d.get("dry_run") is not True: bad.append("dry_run is %r" % d.get("dry_run"))
if d.get("reason") != reason: bad.append("reason %r" % d.get("reason"))
if d.get("scope") != scope: bad.append("scope %r, not %r" % (d.get("scope"), scope))
if d.get("secrets") != len(want): bad.append("secrets %r, not %d" % (d.get("secrets"), len(want)))
waves = d.get("waves") or []
got = [n for w in waves for n in w.get("secrets", [])]
if sorted(got) != sorted(want): bad.append("waves hold %s, not %s" % (sorted(got), sorted(want)))
tiers = [w.get("tier") for w in waves]
if tiers != sorted(set(TIER[n] for n in want)): bad.append("wave tiers %s" % tiers)
for w in waves:
    wrong = [n for n in w.get("secrets", []) if TIER.get(n) != w.get("tier")]
    if wrong: bad.append("tier %s wave holds %s" % (w.get("tier"), wrong))
deps = d.get("dependents") or []
names = [depname(x.get("dependent", "")) for x in deps]
wantdeps = {k: v & want for k, v in FEEDS.items() if v & want}
if sorted(names) != sorted(wantdeps): bad.append("dependents %s, not %s" % (sorted(names), sorted(wantdeps)))
for x in deps:
    n = depname(x.get("dependent", ""))
    s = x.get("secrets", [])
    if n in wantdeps and (sorted(s) != sorted(wantdeps[n])):
        bad.append("%s fed by %s, not %s" % (n, sorted(s), sorted(wantdeps[n])))
provs = {p.get("provider"): p for p in d.get("providers") or []}
for pn in set(PROV[n] for n in want):
    p = provs.get(pn)
    if p is None:
        bad.append("no provider entry for " + pn); continue
    if p.get("secrets") != sum(1 for n in want if PROV[n] == pn):
        bad.append("%s: secrets %r" % (pn, p.get("secrets")))
for pn, p in provs.items():
    if p.get("secrets", 0) and pn not in set(PROV[n] for n in want): bad.append("provider %s listed with secrets" % pn)
    for k in ("calls", "rate_limit_rps", "estimate_seconds"):
        if not isinstance(p.get(k), (int, float)): bad.append("%s: %s missing" % (pn, k))
est = d.get("estimate_seconds")
if not isinstance(est, (int, float)) or any(isinstance(p.get("estimate_seconds"), (int, float)) and p["estimate_seconds"] > est + 1e-9 for p in provs.values()):
    bad.append("estimate_seconds %r (providers %s)" % (est, [p.get("estimate_seconds") for p in provs.values()]))
print("; ".join(bad[:4]))
sys.exit(1 if bad else 0)
EOP
# plan_ok TAG "EXPECTED" SCOPE...: a JSON dry run with those selectors plans exactly EXPECTED.
plan_ok() {
	tag=$1 names=$2; shift 2
	args=
	for s in "$@"; do args="$args --scope $s"; done
	# shellcheck disable=SC2086
	expect_rc "dry run $tag: exit 0" 0 rk emergency --dry-run --reason "plan $tag" $args --output json
	why=$($PY "$T/plan.py" "$T/out" "plan $tag" "$names" "$@" 2>&1)
	check "  plans exactly: $names${why:+ (got: $why)}" [ -z "$why" ]
}
# The local store: CURRENT (version) and its mtime (ns) of a secret.
lstate() {
	$PY -c '
import hashlib, os, sys
for n in sys.argv[2:]:
    p = os.path.join(sys.argv[1], "var", "local", hashlib.blake2b(n.encode(), digest_size=16).hexdigest(), "CURRENT")
    print(n, open(p).read().strip() if os.path.exists(p) else 0, os.stat(p).st_mtime_ns if os.path.exists(p) else 0)' "$T" "$@"
}
# snapshot FILE: every value's fingerprint and version (rekey's view and the fakes').
snapshot() {
	{
		for n in l/a l/b l/c; do echo "$n $(rk get "$n" 2>/dev/null | "$RK_FP" "$T/var") $(lstate "$n" | cut -d' ' -f2)"; done
		kadmin GET state | $PY -c '
import json, sys
d = json.load(sys.stdin)
for o in d["objects"]:
    m = o["metadata"]
    if m.get("namespace") == "apps":
        print(o["kind"], m["name"], m.get("resourceVersion"), m.get("generation", ""), json.dumps(o.get("data", {}), sort_keys=True), json.dumps((o.get("spec") or {}).get("template", {}), sort_keys=True))'
		vadmin GET state | $PY -c '
import json, sys
d = json.load(sys.stdin)["namespaces"][""]["mounts"]["secret"]["keys"]
for p in sorted(d): print("vault", p, d[p]["current_version"])'
		sqlite3 -readonly "$T/var/rekey.db" "SELECT count(*) FROM runs; SELECT name, current_version, current_fp FROM secrets ORDER BY name"
	} >"$1"
}
# values: every generated value we can see now (local: each version; k8s: the
# current data; Vault: every version), one a line, for the leak check.
values() {
	for n in l/a l/b l/c; do
		v=$(lstate "$n" | cut -d' ' -f2)
		k=1
		while [ "$k" -le "$v" ]; do rk get "$n" --version "$k" 2>/dev/null; echo; k=$((k + 1)); done
	done
	kadmin GET state | $PY -c '
import base64, json, sys
for o in json.load(sys.stdin)["objects"]:
    if o["kind"] == "Secret" and "v" in o.get("data", {}): print(base64.b64decode(o["data"]["v"]).decode())'
	vadmin GET state | $PY -c '
import json, sys
d = json.load(sys.stdin)["namespaces"][""]["mounts"]["secret"]["keys"]
for p in d:
    for v in d[p]["versions"].values():
        if (v.get("data") or {}).get("password"): print(v["data"]["password"])'
}
collect() { values | awk 'length($0) >= 20' >>"$T/values"; }
: >"$T/values"
# status_paused [NAME]: scheduler_paused_by wherever `rekey status [NAME] --output json` puts it.
status_paused() {
	rk status "$@" --output json 2>/dev/null | $PY -c '
import json, sys
def find(x):
    if isinstance(x, dict):
        if "scheduler_paused_by" in x: return x["scheduler_paused_by"] or ""
        x = list(x.values())
    if isinstance(x, list):
        for v in x:
            r = find(v)
            if r is not None: return r
    return None
try: print(find(json.load(sys.stdin)) or "")
except ValueError: print("(not JSON)")'
}
# order.py RUN "NAME:WANT ..." [SECRETS_WRITTEN "NAME:N ..."]: restarts and writes of a run from
# the fakes' logs ($T/kreq.json, $T/vreq.json, cleared before the run), the
# exec dependents' lines ($T/restarts) and the local store's mtimes ($T/lmt).
# WANT per dependent: a count, or "+" (at least one). Checks each dependent's
# restart count, that its last restart came after the last write of each of
# its secrets, and each secret's write count.
cat >"$T/order.py" <<'EOP'
import json, sys
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
from inv import *
T, run = sys.argv[1], sys.argv[2]
want_r = dict(x.split(":") for x in sys.argv[3].split())
want_w = dict(x.split(":") for x in sys.argv[4].split()) if len(sys.argv) > 4 else {}
kreq = json.load(open(T + "/kreq.json"))["requests"]
vreq = json.load(open(T + "/vreq.json"))["requests"]
ok2 = lambda r: r.get("status") is None or 200 <= (r.get("status") or 0) < 300
# Writes: (time, seq or None) per secret.
writes = {n: [] for n in TIER}
for r in kreq:
    for n, s in KSECRET.items():
        if r["method"] in ("PATCH", "PUT") and r["path"] == "/api/v1/namespaces/apps/secrets/" + s and ok2(r):
            writes[n].append((r["time"], r["seq"]))
for r in vreq:
    for n, p in VPATH.items():
        if r["method"] in ("POST", "PUT") and r["path"] == "/v1/secret/data/" + p and r.get("status") in (200, 204, None) and r.get("outcome") not in ("hang", "reset", "injected", "close"):
            writes[n].append((r["time"], None))
lmt = {}
for line in open(T + "/lmt.before"):
    n, v, m = line.split(); lmt[n] = (int(v), int(m))
for line in open(T + "/lmt"):
    n, v, m = line.split()
    if (int(v), int(m)) != lmt[n]:
        writes[n].append((int(m) / 1e9, None))
        writes[n].extend([(int(m) / 1e9, None)] * (int(v) - lmt[n][0] - 1))	# one per version
# Restarts: (time, seq or None) per dependent.
rs = {d: [] for d in FEEDS}
for r in kreq:
    for w in ("api", "web"):
        if r["method"] == "PATCH" and r["path"] == "/apis/apps/v1/namespaces/apps/deployments/" + w and ok2(r):
            rs[w].append((r["time"], r["seq"]))
for line in open(T + "/restarts"):
    f = line.split()
    if len(f) >= 3 and f[1] == run and f[0] in rs:
        rs[f[0]].append((int(f[2]) / 1e9, None))
bad = []
for d, w in want_r.items():
    n = len(rs[d])
    if (w == "+" and n < 1) or (w != "+" and n != int(w)):
        bad.append("%s restarted %d times, want %s" % (d, n, w))
print("P|F restart counts: " + ("; ".join(bad) or "ok"))
bad = []
for d, lst in rs.items():
    if not lst or d not in want_r:
        continue
    last = max(lst)
    for n in FEEDS[d]:
        for wt in writes[n]:
            if wt[1] is not None and last[1] is not None:
                if wt[1] > last[1]: bad.append("%s's last restart (k8s seq %d) before %s's write (seq %d)" % (d, last[1], n, wt[1]))
            elif wt[0] > last[0]:
                bad.append("%s's last restart %.3f s before a write of %s" % (d, wt[0] - last[0], n))
print("P|F each dependent's last restart after the last write of each of its secrets: " + ("; ".join(bad[:4]) or "ok"))
bad = []
for n, w in want_w.items():
    if len(writes[n]) != int(w):
        bad.append("%s written %d times, want %s" % (n, len(writes[n]), w))
if want_w:
    print("P|F secret write counts: " + ("; ".join(bad) or "ok"))
EOP
logs_clear() { kadmin DELETE requests >/dev/null; vadmin DELETE requests >/dev/null; lstate l/a l/b l/c >"$T/lmt.before"; }
logs_get() { kadmin GET requests >"$T/kreq.json"; vadmin GET requests >"$T/vreq.json"; lstate l/a l/b l/c >"$T/lmt"; }
# order TAG RUN RESTARTS [WRITES]: order.py's verdicts as checks.
order() {
	tag=$1; shift
	$PY "$T/order.py" "$T" "$@" >"$T/order.out" 2>&1 || echo "P|F order.py crashed: $(tail -1 "$T/order.out")" >>"$T/order.out"
	while IFS= read -r l; do
		l=${l#P|F }
		case $l in
		*": ok") pass "$tag: ${l%: ok}" ;;
		*) fail "$tag: $l" ;;
		esac
	done <"$T/order.out"
}
rep() { jq_ "$1" <"$T/${2:-out}"; }

# ---- refusals: no --yes without a terminal, no --reason ----
collect
snapshot "$T/snap0"
logs_clear
expect_rc "no --yes and no terminal: refused, exit 2" 2 rk emergency --reason "no tty" </dev/null
check "  the message names --yes" contains "$T/err" "--yes"
expect_rc "no --reason: exit 2" 2 rk emergency --yes --scope name=l/a
check "  the message names --reason" contains "$T/err" "--reason"
expect_rc "an empty --reason: exit 2" 2 rk emergency --yes --reason "" --scope name=l/a
for bad in 'tier<x' 'color=red' 'tier<=' 'provider' 'name=' 'tier<=x1' 'owner:team-a'; do
	expect_rc "a malformed selector '$bad': exit 2" 2 rk emergency --yes --reason bad --scope "$bad"
	check "  the message names it" contains "$T/err" "$bad"
done
expect_rc "a malformed selector next to good ones: exit 2" 2 rk emergency --yes --reason bad --scope provider=local --scope 'tier<x'
expect_rc "no secret in scope: exit 1" 1 rk emergency --yes --reason empty --scope provider=local --scope owner=team-c
check "  with a message saying so" sh -c "grep -qi 'scope' '$T/err' || grep -qi 'scope' '$T/out'"
expect_rc "a name glob matching nothing: exit 1" 1 rk emergency --yes --reason empty --scope 'name=zz/*'

# ---- scope selectors, each alone and ANDed (dry-run JSON) ----
plan_ok "of everything" "$ALL"
plan_ok "provider=local" "l/a l/b l/c" provider=local
plan_ok "provider=cluster" "k/a k/b k/c" provider=cluster
plan_ok "provider=vault" "v/a v/b v/c" provider=vault
plan_ok "environment=prod" "l/a k/a k/b v/b" environment=prod
plan_ok "environment=test" "l/b l/c k/c v/a v/c" environment=test
plan_ok "owner=team-a" "l/a l/c k/a v/a" owner=team-a
plan_ok "owner=team-c" "k/c v/b" owner=team-c
plan_ok "tier<=0" "l/a k/a v/a" 'tier<=0'
plan_ok "tier<=1" "l/a l/b k/a k/b v/a v/b" 'tier<=1'
plan_ok "tier<=9" "$ALL" 'tier<=9'
plan_ok "name=k/*" "k/a k/b k/c" 'name=k/*'
plan_ok "name=*/a" "l/a k/a v/a" 'name=*/a'
plan_ok "name=?/[bc]" "l/b l/c k/b k/c v/b v/c" 'name=?/[bc]'
plan_ok "name=l/a (no glob)" "l/a" 'name=l/a'
plan_ok "provider=cluster AND tier<=1" "k/a k/b" provider=cluster 'tier<=1'
plan_ok "owner=team-a AND environment=prod" "l/a k/a" owner=team-a environment=prod
plan_ok "owner=team-a AND environment=prod AND name=k/*" "k/a" owner=team-a environment=prod 'name=k/*'
plan_ok "provider=vault AND owner=team-b AND tier<=2" "v/c" provider=vault owner=team-b 'tier<=2'
plan_ok "environment=test AND tier<=1" "l/b v/a" environment=test 'tier<=1'
plan_ok "the same selector twice" "l/a l/c k/a v/a" owner=team-a owner=team-a
expect_rc "a text dry run" 0 rk emergency --dry-run --reason "text plan" --scope 'tier<=1'
check "  names each secret in scope" sh -c "for n in l/a l/b k/a k/b v/a v/b; do grep -q \"\$n\" '$T/out' || exit 1; done"
check "  and none out of it" sh -c "! grep -qE 'l/c|k/c|v/c' '$T/out'"
check "  shows the waves, tier 0 first" sh -c "grep -i 'tier' '$T/out' | grep -o 'tier [0-9]' | tr -d '\n' | grep -q 'tier 0tier 1'"

# ---- the dry runs changed nothing ----
logs_get
snapshot "$T/snap1"
check "dry runs and refusals changed nothing (values, versions, workloads, runs)" cmp -s "$T/snap0" "$T/snap1"
check "  no exec dependent ran" [ ! -s "$T/restarts" ]
check "  the k8s fake saw only reads ($(jq_ "sorted(set(r['method'] for r in d['requests']))" <"$T/kreq.json"))" \
	[ "$(jq_ "all(r['method'] in ('GET', 'HEAD') for r in d['requests'])" <"$T/kreq.json")" = True ]
check "  the Vault fake saw only reads ($(jq_ "sorted(set(r['method'] for r in d['requests']))" <"$T/vreq.json"))" \
	[ "$(jq_ "all(r['method'] in ('GET', 'HEAD', 'LIST') for r in d['requests'])" <"$T/vreq.json")" = True ]
check "  the scheduler is not paused" [ -z "$(status_paused l/a)" ]

# ---- a full emergency: writes once, restarts once and after, the pause, the report ----
logs_clear
collect
# Two pollers read the pause from other processes while the run goes on; the
# rollouts are made to last 1.5 s so that they see it whatever the load.
: >"$T/poll1"
: >"$T/poll2"
rm -f "$T/poll.stop"
( while [ ! -e "$T/poll.stop" ]; do echo "$(status_paused l/a)" >>"$T/poll1"; done ) &
POLL1=$!
( while [ ! -e "$T/poll.stop" ]; do echo "$(status_paused)" >>"$T/poll2"; done ) &
POLL2=$!
kadmin POST config '{"rollout_seconds": 1.5}' >/dev/null
sleep 0.5
"$REKEY_BIN" emergency --yes --reason "leak ticket 42" --output json >"$T/full.out" 2>"$T/full.err"
rc=$?
kadmin POST config '{"rollout_seconds": 0.3}' >/dev/null
sleep 0.3
touch "$T/poll.stop"
wait $POLL1 $POLL2
cat "$T/full.out" "$T/full.err" >>"$T/all.out"
check "full emergency: exit 0 (got $rc)" [ "$rc" = 0 ]
run=$(rep "d.get('run_id', '')" full.out)
check "  the report has a run id" [ -n "$run" ]
logs_get
order "full emergency" "$run" "api:1 web:1 D1:1 D2:1 D3:1 D4:1" "l/a:1 l/b:1 l/c:1 k/a:1 k/b:1 k/c:1 v/a:1 v/b:1 v/c:1"
inflight=$($PY -c "
import json, sys
iv = sorted((r['time'], r['time'] + (r.get('duration_ms') or 0) / 1000.0) for r in json.load(sys.stdin)['requests'])
print(max([0] + [1 + sum(1 for j, b in enumerate(iv) if j != i and b[0] < a[1] - 0.002 and b[1] > a[0] + 0.002) for i, a in enumerate(iv)]))" <"$T/vreq.json")
check "  Vault (concurrency: 1) never had two requests in flight (at most $inflight, $(jq_ "len(d['requests'])" <"$T/vreq.json") requests)" [ "$inflight" = 1 ]
check "  the exec dependents were told exactly their secrets" [ "$($PY -c "
import sys; sys.path.insert(0, '$T'); from inv import FEEDS
bad = []
for l in open('$T/restarts'):
    f = l.split()
    if len(f) >= 4 and f[1] == '$run' and set(f[3].split(',')) != FEEDS[f[0]]: bad.append(f[0])
print(bad)")" = "[]" ]
seen() { sort "$1" | uniq -c | awk '{ printf "%s%d x %s", (NR > 1 ? ", " : ""), $1, (NF > 1 ? $2 : "(none)") }'; }
check "  the scheduler was paused by the run, seen by \`rekey status NAME --output json\` from another process (seen: $(seen "$T/poll1"))" \
	grep -qx "$run" "$T/poll1"
check "  ... and by \`rekey status --output json\` (every secret) (seen: $(seen "$T/poll2"))" \
	grep -qx "$run" "$T/poll2"
check "  not paused before the run (the first reading)" [ -z "$(head -1 "$T/poll1")" ]
check "  nothing else seen as the pause's holder" [ -z "$(grep -vx "$run" "$T/poll1" | grep .)" ]
check "  not paused after the run (status NAME)" [ -z "$(status_paused l/a)" ]
check "  not paused after the run (status)" [ -z "$(status_paused)" ]
cat >"$T/report.py" <<'EOP'
import json, sys
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
from inv import *
d = json.load(open(sys.argv[1]))
want_status, reason, want = sys.argv[2], sys.argv[3], dict(x.split(":") for x in sys.argv[4].split())
want_deps = dict(x.split(":") for x in sys.argv[5].split())
bad = []
for k, v in (("kind", "emergency"), ("reason", reason), ("status", want_status)):
    if d.get(k) != v: bad.append("%s %r, not %r" % (k, d.get(k), v))
secs = {s.get("name"): s for s in d.get("secrets", [])}
if sorted(secs) != sorted(want): bad.append("secrets %s" % sorted(secs))
for n, s in secs.items():
    miss = [k for k in ("name", "provider", "result", "old_version", "new_version", "error", "duration_ms") if k not in s]
    if miss: bad.append("%s lacks %s" % (n, miss))
    if n in want and s.get("result") != want[n]: bad.append("%s %s, not %s" % (n, s.get("result"), want[n]))
    if n in PROV and s.get("provider") != PROV[n]: bad.append("%s provider %s" % (n, s.get("provider")))
    if s.get("result") == "rotated" and (s.get("error") or not s.get("new_version") or s.get("new_version") == s.get("old_version")):
        bad.append("%s rotated: versions %r -> %r, error %r" % (n, s.get("old_version"), s.get("new_version"), s.get("error")))
    if s.get("result") == "failed" and not s.get("error"): bad.append("%s failed without an error" % n)
deps = {depname(x.get("dependent", "")): x for x in d.get("dependents", [])}
if sorted(deps) != sorted(want_deps): bad.append("dependents %s" % sorted(deps))
for n, x in deps.items():
    miss = [k for k in ("dependent", "result", "error", "duration_ms") if k not in x]
    if miss: bad.append("%s lacks %s" % (n, miss))
    if n in want_deps and x.get("result") != want_deps[n]: bad.append("dependent %s %s, not %s" % (n, x.get("result"), want_deps[n]))
t = d.get("totals") or {}
res = [s.get("result") for s in secs.values()]
exp = {"secrets": len(secs), "rotated": res.count("rotated"), "failed": res.count("failed"),
       "unfinished": len(res) - res.count("rotated") - res.count("failed"),
       "dependents": len(deps), "restarted": [x.get("result") for x in deps.values()].count("restarted"),
       "restart_failed": [x.get("result") for x in deps.values()].count("failed")}
for k, v in exp.items():
    if t.get(k) != v: bad.append("totals.%s %r, not %r" % (k, t.get(k), v))
retry = d.get("retry") or ""
if want_status == "done" and retry: bad.append("retry %r on a done run" % retry)
if want_status != "done" and retry != "rekey emergency --resume " + str(d.get("run_id")):
    bad.append("retry %r" % retry)
print("; ".join(bad[:5]))
EOP
why=$($PY "$T/report.py" "$T/full.out" "done" "leak ticket 42" "l/a:rotated l/b:rotated l/c:rotated k/a:rotated k/b:rotated k/c:rotated v/a:rotated v/b:rotated v/c:rotated" "api:restarted web:restarted D1:restarted D2:restarted D3:restarted D4:restarted" 2>&1)
check "  the report: kind, reason, status, each secret and dependent, totals, no retry${why:+ ($why)}" [ -z "$why" ]
check "  the versions reported are the local store's" [ "$(rep "[s['new_version'] for s in d['secrets'] if s['name'] == 'l/a'][0]" full.out)" = "$(lstate l/a | cut -d' ' -f2)" ]
check "  ... and Vault's" [ "$(rep "[s['new_version'] for s in d['secrets'] if s['name'] == 'v/a'][0]" full.out)" = "$(vadmin GET state | jq_ "d['namespaces']['']['mounts']['secret']['keys']['app/a']['current_version']")" ]
check "  a Vault entry keeps its other key" [ "$(vadmin GET state | jq_ "d['namespaces']['']['mounts']['secret']['keys']['app/a']['versions']['2']['data']['user']")" = app ]
check "  a k8s Secret keeps its other key" [ "$(kadmin GET state | jq_ "[o for o in d['objects'] if o['metadata']['name'] == 's-b'][0]['data']['other']")" = a2VlcA== ]
fpok=
for n in $ALL; do
	wfp=$(rk status "$n" --output json 2>/dev/null | jq_ "d['current_fp']")
	case $n in
	l/*) got=$(rk get "$n" | "$RK_FP" "$T/var") ;;
	k/*) got=$(kadmin GET state | $PY -c "import base64,json,sys; sys.stdout.write(base64.b64decode([o for o in json.load(sys.stdin)['objects'] if o['metadata']['name'] == 's-${n#k/}'][0]['data']['v']).decode())" | "$RK_FP" "$T/var") ;;
	v/*) got=$(vadmin GET state | $PY -c "import json,sys; k=json.load(sys.stdin)['namespaces']['']['mounts']['secret']['keys']['app/${n#v/}']; sys.stdout.write(k['versions'][str(k['current_version'])]['data']['password'])" | "$RK_FP" "$T/var") ;;
	esac
	[ -n "$got" ] && [ "$got" = "$wfp" ] || fpok="$fpok $n"
done
check "  every secret's value is the one rekey records as current${fpok:+ (not:$fpok)}" [ -z "$fpok" ]
expect_rc "rekey run RUN" 0 rk run "$run" --output json
check "  shows an emergency with its reason, done" [ "$(rep "d['kind'] + '|' + d['reason'] + '|' + d['status']")" = "emergency|leak ticket 42|done" ]
check "  with every secret's steps" [ "$(rep "sorted(set(s['secret'] for s in d['steps'] if s['step'] == 'done'))")" = "['k/a', 'k/b', 'k/c', 'l/a', 'l/b', 'l/c', 'v/a', 'v/b', 'v/c']" ]
expect_rc "rekey run RUN (text)" 0 rk run "$run"
check "  names the reason" contains "$T/out" "leak ticket 42"
expect_rc "rekey runs lists it" 0 rk runs --output json
check "  as an emergency, done, 9 secrets" [ "$(rep "[(r['kind'], r['status'], r['secrets'], r['reason']) for r in d if r['id'] == '$run']")" = "[('emergency', 'done', 9, 'leak ticket 42')]" ]
expect_rc "rekey audit" 0 rk audit --output json
cat >"$T/audit.py" <<'EOP'
import json, sys
rows, run, reason, status = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
bad = []
def det(r):
    try: return json.loads(r.get("detail") or "{}")
    except ValueError: return {}
st = [r for r in rows if r.get("event") == "run.started" and r.get("subject") == run]
fi = [r for r in rows if r.get("event") == "run.finished" and r.get("subject") == run]
if len(st) != 1: bad.append("%d run.started" % len(st))
if not fi: bad.append("no run.finished")
for r in st:
    d = det(r)
    if d.get("kind") != "emergency" and r.get("kind") != "emergency": bad.append("run.started without kind emergency: %s" % r.get("detail"))
    if d.get("reason") != reason: bad.append("run.started reason %r" % d.get("reason"))
if fi and det(fi[-1]).get("status") != status: bad.append("run.finished status %r" % det(fi[-1]).get("status"))
if fi and det(fi[-1]).get("kind", "emergency") != "emergency": bad.append("run.finished kind %r" % det(fi[-1]).get("kind"))
print("; ".join(bad))
EOP
why=$($PY "$T/audit.py" "$T/out" "$run" "leak ticket 42" "done" 2>&1)
check "  run.started (kind emergency, the reason) and run.finished (done) for it${why:+ ($why)}" [ -z "$why" ]
expect_rc "audit verify" 0 rk audit verify
collect

# ---- on a terminal: it asks ----
if command -v script >/dev/null; then
	logs_clear
	v0=$(lstate l/c | cut -d' ' -f2)
	printf 'no\n' | script -qec "cd '$T' && REKEY_CONFIG='$T/rekey.yaml' '$REKEY_BIN' emergency --reason 'tty no' --scope name=l/c; echo \"rc=\$?\"" /dev/null >"$T/tty1.out" 2>&1
	cat "$T/tty1.out" >>"$T/all.out"
	check "terminal, answer no: asks (\"Type 'yes'\")" contains "$T/tty1.out" "yes"
	check "  shows the plan first" contains "$T/tty1.out" "l/c"
	check "  nothing rotated" [ "$(lstate l/c | cut -d' ' -f2)" = "$v0" ]
	check "  exits 1 (nothing done)" grep -q 'rc=1' "$T/tty1.out"
	printf 'yes\n' | script -qec "cd '$T' && REKEY_CONFIG='$T/rekey.yaml' '$REKEY_BIN' emergency --reason 'tty yes' --scope name=l/c; echo \"rc=\$?\"" /dev/null >"$T/tty2.out" 2>&1
	cat "$T/tty2.out" >>"$T/all.out"
	check "terminal, answer yes: exit 0" grep -q 'rc=0' "$T/tty2.out"
	check "  l/c rotated once" [ "$(lstate l/c | cut -d' ' -f2)" = $((v0 + 1)) ]
	check "  with a progress bar (redrawn after a carriage return)" sh -c "tr '\r' '\n' <'$T/tty2.out' | grep -qE '^\[[#.]+\] 1/1'"
	check "  D2 restarted once for it" [ "$(grep -c "^D2 .* l/c$" "$T/restarts")" = 1 ]
	# stdout to a file, stderr on the terminal: the bar is on stderr, the report on stdout.
	printf 'yes\n' | script -qec "cd '$T' && REKEY_CONFIG='$T/rekey.yaml' '$REKEY_BIN' emergency --reason 'tty bar' --scope name=l/c >'$T/tty3.stdout'; echo \"rc=\$?\"" /dev/null >"$T/tty3.out" 2>&1
	cat "$T/tty3.out" "$T/tty3.stdout" >>"$T/all.out"
	check "terminal, stdout a file: exit 0" grep -q 'rc=0' "$T/tty3.out"
	check "  the progress bar is on stderr (the terminal)" sh -c "tr '\r' '\n' <'$T/tty3.out' | grep -qE '^\[[#.]+\] 1/1'"
	check "  and not in stdout" sh -c "! grep -q '\[[#.]*\] ' '$T/tty3.stdout'"
	check "  stdout has the report (l/c rotated, the totals)" sh -c "grep -q 'l/c' '$T/tty3.stdout' && grep -q 'totals' '$T/tty3.stdout'"
else
	echo "  (no script(1): the terminal path is not tested)"
fi
collect

# ---- Vault down for the whole run ----
vadmin POST inject '{"path_regex": "^/v1/", "method": "*", "action": "hang", "ms": 20000, "count": -1}' >/dev/null
# Only Vault's secrets in scope: nothing done, exit 1, failed; retried once Vault is back.
expect_rc "Vault down, only its secrets in scope: exit 1 (nothing done)" 1 rk emergency --yes --reason "vault only" --scope provider=vault --output json
cp "$T/out" "$T/vonly.out"
vrun=$(rep "d.get('run_id', '')" vonly.out)
check "  status failed, 3 failed, retry = emergency --resume" [ "$(rep "d.get('status', '') + ' ' + str((d.get('totals') or {}).get('failed')) + ' ' + (d.get('retry') or '')" vonly.out)" = "failed 3 rekey emergency --resume $vrun" ]
check "  no exec dependent ran for it" [ "$(grep -c " $vrun " "$T/restarts")" = 0 ]
vadmin DELETE inject >/dev/null
expect_rc "  Vault back: emergency --resume of the failed run: exit 0" 0 rk emergency --resume "$vrun" --output json
check "  the same run, done, the 3 rotated" [ "$(rep "d.get('run_id', '') + ' ' + d.get('status', '') + ' ' + str((d.get('totals') or {}).get('rotated'))")" = "$vrun done 3" ]
check "  its report keeps the kind and the reason ($(rep "str(d.get('kind')) + '|' + str(d.get('reason'))"))" [ "$(rep "str(d.get('kind')) + '|' + str(d.get('reason'))")" = "emergency|vault only" ]
check "  D3 (fed by v/c only) restarted once" [ "$(grep -c "^D3 $vrun " "$T/restarts")" = 1 ]
collect

snapshot "$T/snap2"
logs_clear
vadmin POST inject '{"path_regex": "^/v1/", "method": "*", "action": "hang", "ms": 20000, "count": -1}' >/dev/null
t0=$(date +%s%N)
expect_rc "Vault down (every request hangs): exit 3" 3 rk emergency --yes --reason "outage" --output json
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
cp "$T/out" "$T/outage.out"
orun=$(rep "d.get('run_id', '')" outage.out)
# Vault's 3 secrets x 3 attempts x 1 s timeout = 9 s if each waited its timeouts out.
check "  Vault's secrets fail fast: the run took $ms ms (< 5000; their timeouts add up to 9 s)" [ "$ms" -lt 5000 ]
check "  Vault's secrets failed, the others rotated" [ "$(rep "' '.join(s['name'] + ':' + s['result'] for s in sorted(d['secrets'], key=lambda s: s['name']))" outage.out)" = "k/a:rotated k/b:rotated k/c:rotated l/a:rotated l/b:rotated l/c:rotated v/a:failed v/b:failed v/c:failed" ]
check "  the Vault secrets after the first name the open circuit ($(rep "[s['error'][:80] for s in d['secrets'] if s['provider'] == 'vault']" outage.out))" \
	[ "$(rep "sum('circuit' in s['error'] for s in d['secrets'] if s['provider'] == 'vault')" outage.out)" -ge 2 ]
check "  the first names the timeout or the circuit" [ "$(rep "all(('circuit' in s['error'] or 'tim' in s['error']) for s in d['secrets'] if s['provider'] == 'vault')" outage.out)" = True ]
vadmin GET requests >"$T/vreq.json"
check "  once open, Vault got no more requests ($(jq_ "len(d['requests'])" <"$T/vreq.json") in all, <= 3)" [ "$(jq_ "len(d['requests'])" <"$T/vreq.json")" -le 3 ]
why=$($PY "$T/report.py" "$T/outage.out" partial outage "l/a:rotated l/b:rotated l/c:rotated k/a:rotated k/b:rotated k/c:rotated v/a:failed v/b:failed v/c:failed" "api:restarted web:restarted D1:restarted D2:restarted D3:skipped D4:restarted" 2>&1)
check "  the report: partial, totals, dependents (D3's only secret failed: skipped), retry = emergency --resume${why:+ ($why)}" [ -z "$why" ]
retry=$(rep "d.get('retry') or ''" outage.out)
vadmin DELETE inject >/dev/null
case $retry in
"rekey emergency --resume $orun")
	# shellcheck disable=SC2086
	expect_rc "Vault back: the report's retry ($retry) finishes the run" 0 rk ${retry#rekey } --output json
	;;
*)
	fail "the outage report's retry is '$retry', not 'rekey emergency --resume $orun'"
	expect_rc "Vault back: emergency --resume $orun finishes the run" 0 rk emergency --resume "$orun" --output json
	;;
esac
cp "$T/out" "$T/retry.out"
check "  the same run, done" [ "$(rep "d.get('run_id', '') + ' ' + d.get('status', '')" retry.out)" = "$orun done" ]
check "  its report keeps the kind and the reason ($(rep "str(d.get('kind')) + '|' + str(d.get('reason'))" retry.out))" [ "$(rep "str(d.get('kind')) + '|' + str(d.get('reason'))" retry.out)" = "emergency|outage" ]
check "  its totals are the run's: 9 secrets, 9 rotated ($(rep "d.get('totals')" retry.out))" [ "$(rep "(d.get('totals') or {}).get('secrets') == 9 and (d.get('totals') or {}).get('rotated') == 9" retry.out)" = True ]
check "  the Vault secrets rotated, nothing else again ($(rep "sorted((s['name'], s['result']) for s in d['secrets'])" retry.out))" \
	[ "$(rep "' '.join(sorted(s['name'] for s in d['secrets'] if s['result'] == 'rotated' and s['name'].startswith('v/')))" retry.out)" = "v/a v/b v/c" ]
logs_get
order "outage then retry" "$orun" "api:+ web:+ D1:+ D2:+ D3:1 D4:1" "l/a:1 l/b:1 l/c:1 k/a:1 k/b:1 k/c:1 v/a:1 v/b:1 v/c:1"
expect_rc "rekey run of the retried run" 0 rk run "$orun" --output json
check "  done, an emergency with its reason" [ "$(rep "d['kind'] + '|' + d['reason'] + '|' + d['status']")" = "emergency|outage|done" ]
check "  not paused after it" [ -z "$(status_paused l/a)" ]
collect

# ---- SIGTERM while Kubernetes writes are slow; --resume finishes ----
logs_clear
kadmin POST inject '{"path_regex": "^/api/v1/namespaces/apps/secrets/", "method": "PATCH", "action": "latency", "ms": 1500, "count": -1}' >/dev/null
"$REKEY_BIN" emergency --yes --reason "sigterm" --output json >"$T/term.out" 2>"$T/term.err" &
pid=$!
i=0
while [ "$(kadmin GET requests | jq_ "sum(1 for r in d['requests'] if r['method'] == 'PATCH')")" = 0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.2
t0=$(date +%s%N)
kill -TERM $pid
wait $pid
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
cat "$T/term.out" "$T/term.err" >>"$T/all.out"
check "SIGTERM mid-run: exit 3 (got $rc)" [ "$rc" = 3 ]
check "  stops within 2 s ($ms ms)" [ "$ms" -lt 2000 ]
trun=$(rep "d.get('run_id', '')" term.out)
check "  status interrupted, retry = rekey emergency --resume RUN" [ "$(rep "d.get('status', '') + '|' + (d.get('retry') or '')" term.out)" = "interrupted|rekey emergency --resume $trun" ]
check "  totals count the unfinished ($(rep "d.get('totals')" term.out))" [ "$(rep "d['totals']['unfinished'] > 0 and d['totals']['secrets'] == 9" term.out)" = True ]
kadmin DELETE inject >/dev/null
sleep 1.6	# the slow writes in flight land
expect_rc "--resume finishes it" 0 rk emergency --resume "$trun" --output json
cp "$T/out" "$T/tresume.out"
check "  the same run, done" [ "$(rep "d.get('run_id', '') + ' ' + d.get('status', '')" tresume.out)" = "$trun done" ]
check "  its report keeps the kind and the reason ($(rep "str(d.get('kind')) + '|' + str(d.get('reason'))" tresume.out))" [ "$(rep "str(d.get('kind')) + '|' + str(d.get('reason'))" tresume.out)" = "emergency|sigterm" ]
logs_get
order "SIGTERM then --resume" "$trun" "api:1 web:1 D1:1 D2:1 D3:1 D4:1" "l/a:1 l/b:1 l/c:1 k/a:1 k/b:1 k/c:1 v/a:1 v/b:1 v/c:1"
fpok=
for n in k/a k/b k/c; do
	wfp=$(rk status "$n" --output json 2>/dev/null | jq_ "d['current_fp']")
	got=$(kadmin GET state | $PY -c "import base64,json,sys; sys.stdout.write(base64.b64decode([o for o in json.load(sys.stdin)['objects'] if o['metadata']['name'] == 's-${n#k/}'][0]['data']['v']).decode())" | "$RK_FP" "$T/var")
	[ -n "$got" ] && [ "$got" = "$wfp" ] || fpok="$fpok $n"
done
check "  each k8s Secret holds the value rekey records as current${fpok:+ (not:$fpok)}" [ -z "$fpok" ]
check "  not paused after it" [ -z "$(status_paused l/a)" ]
collect

# ---- no value anywhere ----
sort -u "$T/values" | awk 'length($0) >= 20' >"$T/values.u"
nvals=$(wc -l <"$T/values.u")
check "collected generated values to look for ($nvals)" [ "$nvals" -ge 20 ]
for f in "$T/all.out" "$T"/*.out "$T/restarts" "$T/poll1" "$T/poll2" "$T/var/rekey.db" "$T/var/rekey.db-wal"; do
	[ -e "$f" ] || continue
	check "no value in $(basename "$f")" sh -c "! grep -aqF -f '$T/values.u' '$f'"
done
finish
