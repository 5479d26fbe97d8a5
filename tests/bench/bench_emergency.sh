#!/bin/sh
# `rekey emergency` over many secrets on the three test doubles and the local
# store, against the bound the quotas and latency imply and against the same
# job scripted as operators do it today (tests/bench/runbook.sh).
#
#   bench_emergency.sh REKEY [RK_FP]
#
# Sizes (environment):
#   BENCH_EM_SECRETS   secrets in all (default 10000), split as
#     BENCH_EM_AWS     on the AWS double        (default 5 % of them)
#     BENCH_EM_K8S     Kubernetes Secrets       (default 25 %)
#     BENCH_EM_VAULT   Vault KV v2              (default 30 %)
#                      and the rest on the local store.
#   BENCH_EM_DEPS      Deployments depending on them (default 1000): secret i
#                      has one dependent, Deployment i mod DEPS, so each
#                      workload depends on secrets of every provider.
#   BENCH_EM_MS        latency of every request on every double (default 20)
#   BENCH_EM_VAULT_RPS Vault quota (default 0: unthrottled)
#   BENCH_EM_K8S_QPS   the Kubernetes client's rate limit (default 100, burst the same)
#   BENCH_EM_PARALLEL  --parallel (default: rekey's, the sum of the providers' caps)
#   BENCH_EM_KILL_SECRETS  size of the kill -9 + --resume run (default 2000,
#                      the same split and share of workloads, fresh doubles and
#                      state; 0 skips it). Killed at a random moment in the first
#                      80 % of rekey's own estimate, then `emergency --resume RUN`;
#                      every remote value is checked against the fingerprint
#                      rekey records (hashlib's keyed BLAKE2b, which is
#                      libsodium's crypto_generichash; RK_FP cross-checks one).
#   BENCH_EM_AWS_RPS, BENCH_EM_AWS_BURST  rekey's AWS rate_limit (default 50, 50)
#   BENCH_EM_AWS_CLIENT  the runbook's AWS client: cli (default, if installed) or sign
#   BENCH_EM_KEEP=1    keep the temporary directory (logs, reports, state)
#   BENCH_EM_SAMPLE    runbook items timed per kind (default 16; 0 skips it)
#   BENCH_EM_VERIFY_SAMPLE  after the resume, local secrets read back through
#                      `rekey get`, and secrets whose `rekey status` is compared
#                      with the state DB (default 20; every remote value is checked)
#   BENCH_EM_COMMAND   auto (default: emergency when this rekey has it, else
#                      `rotate --due`, the same engine and report), emergency, rotate
#   BENCH_OUT          the table is appended to this file as well
# Quotas on the doubles: AWS PutSecretValue + UpdateSecretVersionStage share a
# 50/s bucket, GetSecretValue 10,000/s (the published Secrets Manager quotas);
# Vault BENCH_EM_VAULT_RPS; the Kubernetes client is limited by rekey's own
# rate_limit (client-go style), as kubectl is by its own.
#
# Exits 1 when a run fails to rotate or restart what it should; a missed
# target is reported, not a failure. No secret value is ever printed.
set -u
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
REKEY=$(abs "${1:?usage: bench_emergency.sh REKEY [RK_FP]}")
RK_FP=${2:+$(abs "$2")}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-python3}
N=${BENCH_EM_SECRETS:-10000}
ND=${BENCH_EM_DEPS:-1000}
MS=${BENCH_EM_MS:-20}
VRPS=${BENCH_EM_VAULT_RPS:-0}
KQPS=${BENCH_EM_K8S_QPS:-100}
PAR=${BENCH_EM_PARALLEL:-}
KN=${BENCH_EM_KILL_SECRETS:-2000}
SAMPLE=${BENCH_EM_SAMPLE:-16}
for v in "$N" "$ND" "$MS" "$VRPS" "$KQPS" "$KN" "$SAMPLE" ${PAR:+"$PAR"}; do
	case $v in '' | *[!0-9]*) echo "bench_emergency: '$v' is not a number" >&2; exit 2 ;; esac
done
NA=${BENCH_EM_AWS:-$((N * 5 / 100))}
NK=${BENCH_EM_K8S:-$((N * 25 / 100))}
NV=${BENCH_EM_VAULT:-$((N * 30 / 100))}
NL=$((N - NA - NK - NV))
[ "$NL" -ge 0 ] || { echo "bench_emergency: BENCH_EM_AWS + K8S + VAULT exceed BENCH_EM_SECRETS" >&2; exit 2; }
[ "$KQPS" -ge 1 ] || { echo "bench_emergency: BENCH_EM_K8S_QPS must be 1 or more" >&2; exit 2; }

T=$(mktemp -d /tmp/rekey-bench-em.XXXXXX)
VF='' AF='' KF='' CHILD=''
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$CHILD" ]; then kill -KILL "$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null; fi
	for p in $VF $AF $KF; do kill "$p" 2>/dev/null; done
	for p in $VF $AF $KF; do wait "$p" 2>/dev/null; done
	[ -n "${BENCH_EM_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
die() { echo "bench_emergency: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

GTIME=/usr/bin/time
"$GTIME" -f '%e %M %U %S' -o "$T/probe" true 2>/dev/null || GTIME=
[ "${BENCH_EM_NO_GNU_TIME:-}" = 1 ] && GTIME=

CMD=${BENCH_EM_COMMAND:-auto}
if [ "$CMD" = auto ]; then
	CMD=rotate
	"$REKEY" emergency --help >/dev/null 2>&1 && CMD=emergency
fi
case $CMD in emergency | rotate) ;; *) die "BENCH_EM_COMMAND must be auto, emergency or rotate" ;; esac

# ---- the helper: seeding, inventory, checks, verification, the table ----
cat >"$T/em.py" <<'EOP'
import hashlib, http.client, json, os, ssl, subprocess, sys, time, urllib.parse, base64, secrets as rnd

E = os.environ
def conn(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=E["EM_KCA"])
        return http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=60)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)

class Admin:
    def __init__(self, url):
        self.url, self.c = url, conn(url)
    def __call__(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            try:
                self.c.request(method, "/__fake/" + path, body=data,
                               headers={"Content-Type": "application/json"})
                r = self.c.getresponse()
                out = r.read()
                break
            except (http.client.HTTPException, OSError):
                self.c.close(); self.c = conn(self.url)
                if attempt == 2: raise
        if r.status >= 300:
            sys.exit("admin %s %s: %d %s" % (method, path, r.status, out[:300]))
        return json.loads(out) if out else None

def fakes():
    return Admin(E["EM_V"]), Admin(E["EM_A"]), Admin(E["EM_K"])

def names(prefix, nl, nv, na, nk):
    """(index, provider, name) of every secret, in provider blocks."""
    out, i = [], 0
    for prov, n in (("local", nl), ("vault", nv), ("aws", na), ("k8s", nk)):
        for j in range(n):
            out.append((i, prov, "%s/%s/s%05d" % (prefix, prov, j)))
            i += 1
    return out

def dep(i, nd):
    return None if nd == 0 else ("em%d" % (i % nd % 10), "app%04d" % (i % nd))

def k8s_loc(name):
    # em/k8s/s00012 -> namespace em2, Secret s00012-<prefix>
    parts = name.split("/")
    j = int(parts[2][1:])
    return "em%d" % (j % 10), "%s-%s" % (parts[0], parts[2])

def cmd_seed(prefix, nl, nv, na, nk, nd, inv):
    nl, nv, na, nk, nd = map(int, (nl, nv, na, nk, nd))
    v, a, k = fakes()
    ms, vrps = int(E["EM_MS"]), int(E["EM_VRPS"])
    for adm in (v, a, k):
        adm("POST", "reset")
    all_ = names(prefix, nl, nv, na, nk)
    objs = []
    for i, prov, name in all_:
        if prov == "vault":
            v("POST", "kv", {"mount": "secret", "path": name,
                             "data": {"username": "app", "password": rnd.token_urlsafe(24)}})
        elif prov == "aws":
            a("POST", "seed", {"Name": name, "SecretString": rnd.token_urlsafe(24)})
        elif prov == "k8s":
            ns, sname = k8s_loc(name)
            objs.append({"kind": "Secret", "metadata": {"name": sname, "namespace": ns},
                         "data": {"password": base64.b64encode(rnd.token_urlsafe(24).encode()).decode(),
                                  "username": "YXBw"}})
    for d in range(nd):
        ns, dn = "em%d" % (d % 10), "app%04d" % d
        objs.append({"kind": "Deployment", "metadata": {"name": dn, "namespace": ns},
                     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": dn}},
                              "template": {"metadata": {"labels": {"app": dn}},
                                           "spec": {"containers": [{"name": "app", "image": "app:1"}]}}}})
    for s in range(0, len(objs), 500):
        k("POST", "seed", {"objects": objs[s:s + 500]})
    # Latency on every request, the quotas, short rollouts.
    for adm in (v, a, k):
        adm("POST", "inject", {"path_regex": "^/", "method": "*", "action": "latency", "ms": ms, "count": -1})
    a("POST", "quota", {"rps": {"PutSecretValue+UpdateSecretVersionStage": 50, "GetSecretValue": 10000}})
    if vrps > 0:
        v("POST", "quota", {"rps": vrps})
    k("POST", "config", {"rollout_seconds": 1.0})
    for adm in (v, a, k):
        adm("DELETE", "requests")
    with open(inv, "w") as f:
        f.write("secrets:\n")
        for i, prov, name in all_:
            if prov == "local":
                p, loc = "local", "{path: %s}" % name
            elif prov == "vault":
                p, loc = "vault", "{path: %s, key: password}" % name
            elif prov == "aws":
                p, loc = "aws", "{secret_id: %s}" % name
            else:
                ns, sname = k8s_loc(name)
                p, loc = "cluster", "{namespace: %s, secret: %s, key: password}" % (ns, sname)
            dd = dep(i, nd)
            deps = "" if dd is None else ", dependents: [{kubernetes: cluster/deployment/%s/%s}]" % dd
            f.write("  - {name: %s, provider: %s, locator: %s, policy: em, tier: 1, owner: team%d%s}\n"
                    % (name, p, loc, i % 7, deps))

def cmd_check(report, want, wantdeps):
    """Prints 'status rotated failed restarted dep_failed'; exit 1 unless all done."""
    want, wantdeps = int(want), int(wantdeps)
    try:
        d = json.load(open(report))
    except Exception as e:
        print("- 0 0 0 0"); sys.exit("the report is not JSON: %s" % e)
    ss = d.get("secrets") or []
    ds = d.get("dependents") or []
    rot = sum(1 for s in ss if s.get("result") in ("rotated", "done"))
    rst = sum(1 for s in ds if s.get("result") in ("restarted", "done"))
    print(d.get("status"), rot, len(ss) - rot, rst, len(ds) - rst)
    bad = [s for s in ss if s.get("result") not in ("rotated", "done")][:3]
    bad += [s for s in ds if s.get("result") not in ("restarted", "done")][:3]
    for s in bad:  # names, results and errors only: rekey never puts a value there
        print("  %s: %s %s" % (s.get("name") or s.get("dependent"), s.get("result"), s.get("error")), file=sys.stderr)
    if rot != want or rst != wantdeps or d.get("status") != "done":
        sys.exit(1)

def cmd_stats(out, t0_ms):
    """Per double: requests, throttled answers, time of the last answer after t0."""
    t0 = int(t0_ms) / 1000.0
    v, a, k = fakes()
    res = {}
    for name, adm in (("vault", v), ("aws", a), ("k8s", k)):
        d = adm("GET", "requests")
        rs = d["requests"]
        last = max([r["time"] + (r.get("duration_ms") or 0) / 1000.0 for r in rs] or [t0])
        ops = {}
        for r in rs:
            key = r.get("target") or r["method"]
            ops[key] = ops.get(key, 0) + 1
        thr = sum(1 for r in rs if r.get("status") == 429 or r.get("error_type") == "ThrottlingException")
        res[name] = {"requests": len(rs) + d.get("dropped", 0), "logged": len(rs), "ops": ops,
                     "throttled": thr, "last_s": last - t0}
        if name == "aws":
            # the AWSPENDING tidy: a label removal, no MoveToVersionId
            def tidy(r):
                b = r.get("body") if isinstance(r.get("body"), dict) else {}
                return r.get("target") == "UpdateSecretVersionStage" and not b.get("MoveToVersionId")
            td = [r for r in rs if tidy(r)]
            ur = [r for r in rs if not tidy(r)]
            res[name]["tidy"] = len(td)
            res[name]["tidy_first_s"] = (min(r["time"] for r in td) - t0) if td else None
            res[name]["urgent_last_s"] = max([r["time"] + (r.get("duration_ms") or 0) / 1000.0 for r in ur] or [t0]) - t0
    json.dump(res, open(out, "w"))

def fp_key(state_dir):
    raw = open(os.path.join(state_dir, "fingerprint.key")).read().strip()
    return base64.b64decode(raw)

def fp(key, value):
    return hashlib.blake2b(value.encode(), digest_size=32, key=key).hexdigest()

def cmd_verify(prefix, nl, nv, na, nk, nd, state_dir, rekey, cfg, rk_fp, sample):
    """Every remote secret's value in its double has rekey's current fingerprint,
    and local ones (a sample, through rekey get); every workload restarted.
    The fingerprints are read from the state DB (read-only: one `rekey status`
    per secret takes too long for thousands); on a sample `rekey status NAME`
    is asked too and must say the same."""
    import sqlite3
    nl, nv, na, nk, nd, sample = map(int, (nl, nv, na, nk, nd, sample))
    v, a, k = fakes()
    key = fp_key(state_dir)
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir, "rekey.db"), uri=True, timeout=30)
    cur_fp = dict(db.execute("SELECT name, current_fp FROM secrets"))
    db.close()
    vs = v("GET", "state")["namespaces"][""]["mounts"]["secret"]["keys"]
    ast = a("GET", "state")["secrets"]
    ks = k("GET", "state")["objects"]
    kobj = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in ks}
    checked = bad = 0
    first_value = None
    notes = []
    lcount = 0
    cli = {}
    for i, prov, name in names(prefix, nl, nv, na, nk):
        if prov == "local":
            if lcount >= sample:
                continue
            lcount += 1
            r = subprocess.run([rekey, "-c", cfg, "get", name], capture_output=True, text=True)
            if r.returncode != 0:
                bad += 1; notes.append("%s: rekey get exited %d" % (name, r.returncode)); continue
            value = r.stdout
        elif prov == "vault":
            e = vs[name]
            value = e["versions"][str(e["current_version"])]["data"]["password"]
        elif prov == "aws":
            cur = [x for x in ast[name]["versions"].values() if "AWSCURRENT" in x["stages"]]
            value = cur[0]["value"]
        else:
            ns, sname = k8s_loc(name)
            value = base64.b64decode(kobj[("Secret", ns, sname)]["data"]["password"]).decode()
        if first_value is None:
            first_value = value
        want = cur_fp.get(name)
        if len(cli) < sample or prov == "local":   # the CLI says the same as the DB
            r = subprocess.run([rekey, "-c", cfg, "--output", "json", "status", name], capture_output=True, text=True)
            cli[name] = json.loads(r.stdout).get("current_fp") if r.returncode == 0 else None
            if cli[name] != want:
                bad += 1; notes.append("%s: rekey status and the state DB disagree" % name)
        checked += 1
        if fp(key, value) != want:
            bad += 1
            if len(notes) < 5:
                notes.append("%s (%s): the double's value is not rekey's current one" % (name, prov))
    # the Python fingerprint is libsodium's crypto_generichash: cross-checked once with rk-fp
    if rk_fp and first_value is not None:
        r = subprocess.run([rk_fp, state_dir], input=first_value, capture_output=True, text=True)
        if r.stdout.strip() != fp(key, first_value):
            bad += 1; notes.append("rk-fp disagrees with the fingerprint computed here")
    once = twice = never = 0
    for d in range(nd):
        o = kobj[("Deployment", "em%d" % (d % 10), "app%04d" % d)]
        rev = int(o["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "1"))
        if rev <= 1: never += 1
        elif rev == 2: once += 1
        else: twice += 1
    print(checked, bad, once, twice, never)
    for n in notes:
        print("  " + n, file=sys.stderr)

def cmd_table(res_file, out_file):
    R = json.load(open(res_file))
    ms = R["ms"] / 1000.0
    na, nk, nv, nl, nd = R["na"], R["nk"], R["nv"], R["nl"], R["nd"]
    kq, vr = R["kqps"], R["vrps"]
    # The lower bound: a request on a quota'd API can be sent no faster than the
    # bucket refills (after its initial burst), and is answered one latency later.
    # Writes: the minimum the same protocol needs (AWS: PutSecretValue to
    # AWSPENDING + UpdateSecretVersionStage to AWSCURRENT; Kubernetes: GET for
    # the resourceVersion precondition + PATCH; one PATCH per restart;
    # Vault: read for the cas + write).
    def bucket(n, rate, burst):
        return max(0.0, (n - burst) / rate) + ms if n > 0 else 0.0
    aws_w = bucket(2 * na, 50.0, 50)
    aws_r = bucket(1 * na, 10000.0, 10000)
    t_aws = max(aws_w, aws_r)
    t_k8s = bucket(2 * nk + nd, float(kq), kq)
    t_vault = bucket(2 * nv, float(vr), vr) if vr > 0 else (2 * ms if nv else 0.0)
    # restarts of workloads depending on AWS secrets can only start after them
    deps_aws = min(nd, na) if nd else 0
    t_chain = t_aws + deps_aws / float(kq) if nd else 0.0
    bound = max(t_aws, t_k8s, t_vault, t_chain, 2 * ms)
    why = max((("aws writes", t_aws), ("kubernetes requests", t_k8s), ("vault", t_vault),
               ("aws then its workloads' restarts", t_chain)), key=lambda x: x[1])[0]
    wall = R["wall"]
    rows = []
    def row(metric, value, ratio="", target=""):
        rows.append((metric, value, ratio, target))
    row("secrets / workloads", "%d (local %d, vault %d, aws %d, k8s %d) / %d" % (nl + nv + na + nk, nl, nv, na, nk, nd))
    row("command", R["command"])
    row("wall time", "%.1f s" % wall)
    row("lower bound (quotas + latency)", "%.1f s (%s)" % (bound, why))
    met = "met" if wall <= 1.1 * bound else "MISSED"
    row("rekey / bound", "", "%.2fx" % (wall / bound), "<= 1.1x: %s" % met)
    st = R.get("stats") or {}
    if st:
        a_ops = st.get("aws", {}).get("ops", {})
        a_w = a_ops.get("PutSecretValue", 0) + a_ops.get("UpdateSecretVersionStage", 0)
        s_k8s_n = st.get("k8s", {}).get("requests", 0)
        sb = max(bucket(a_w, 50.0, 50), bucket(s_k8s_n, float(kq), kq),
                 bucket(st.get("vault", {}).get("requests", 0), float(vr), vr) if vr > 0 else 2 * ms)
        row("same bound, rekey's own requests", "%.1f s (k8s %d, aws writes %d)" % (sb, s_k8s_n, a_w), "%.2fx" % (wall / sb))
    rb = R.get("runbook")
    if rb:
        for label, key, tgt in (("runbook, sequential (extrapolated)", "seq", 100),
                                ("runbook, xargs -P 8 (extrapolated)", "par", 50)):
            t = rb[key]
            r = t / wall
            row(label, "%.0f s" % t, "%.1fx" % r, ">= %dx faster: %s" % (tgt, "met" if r >= tgt else "MISSED"))
    row("peak RSS", "%.1f MiB" % (R["rss_kb"] / 1024.0) if R.get("rss_kb") else "-")
    row("CPU time (user + sys)", "%.1f s (%.1f + %.1f)" % (R["usr"] + R["sys"], R["usr"], R["sys"]) if R.get("usr") is not None else "-",
        "%.0f%% of one core" % (100 * (R["usr"] + R["sys"]) / wall) if R.get("usr") is not None else "")
    if R.get("kill"):
        row("survived kill -9 + resume", R["kill"].split(" ")[0])
    # per double
    det = []
    for prov, t in (("aws", t_aws), ("k8s", t_k8s), ("vault", t_vault)):
        s = st.get(prov)
        if not s: continue
        det.append("  %-6s %6d requests, %d throttled, last answer at %.1f s; its own bound %.1f s"
                   % (prov, s["requests"], s["throttled"], s["last_s"], t))
        if s.get("tidy"):
            det.append("         of which %d AWSPENDING tidy writes from %.1f s (after the rotations and restarts); the rotations' last answer at %.1f s"
                       % (s["tidy"], s["tidy_first_s"], s["urgent_last_s"]))
    w = [max(len(r[i]) for r in rows + [("metric", "value", "ratio", "target")]) for i in range(4)]
    lines = ["emergency: one run, %d ms latency on every request of every double" % R["ms"]]
    fmt = "  %%-%ds | %%-%ds | %%-%ds | %%s" % (w[0], w[1], w[2])
    lines.append((fmt % ("metric", "value", "ratio", "target")).rstrip())
    lines.append("  " + "-" * (w[0] + w[1] + w[2] + w[3] + 9))
    for r in rows:
        lines.append((fmt % r).rstrip())
    lines.append("  bound = max over providers of (requests - burst) / rate + latency:")
    lines.append("    aws   2 writes x %d / 50/s (PutSecretValue + UpdateSecretVersionStage share the bucket) = %.1f s" % (na, aws_w))
    lines.append("    k8s   (2 x %d secrets (GET + PATCH) + %d restart PATCHes - %d burst) / %d QPS = %.1f s" % (nk, nd, kq, kq, t_k8s))
    lines.append("    vault %s" % (("2 x %d / %d rps = %.1f s" % (nv, vr, t_vault)) if vr > 0 else "unthrottled: 2 round trips = %.2f s" % t_vault))
    lines.append("    local no quota (0); aws then the restarts of the %d workloads that depend on aws secrets = %.1f s" % (deps_aws, t_chain))
    # the same buckets over the requests rekey actually sent
    if st:
        def sent(p):
            return st.get(p, {}).get("requests", 0)
        a_ops = st.get("aws", {}).get("ops", {})
        a_w = a_ops.get("PutSecretValue", 0) + a_ops.get("UpdateSecretVersionStage", 0)
        s_aws = bucket(a_w, 50.0, 50)
        s_k8s = bucket(sent("k8s"), float(kq), kq)
        s_v = bucket(sent("vault"), float(vr), vr) if vr > 0 else (t_vault)
        sb = max(s_aws, s_k8s, s_v, 2 * ms)
        lines.append("  the same bound over the requests rekey sent (aws %d writes = %.2f per secret, k8s %d requests, vault %d): %.1f s; wall / that = %.2fx"
                     % (a_w, a_w / float(na or 1), sent("k8s"), sent("vault"), sb, wall / sb))
    if R.get("kill"):
        lines.append("  kill -9 + resume: %s" % R["kill"])
    if R.get("estimate"):
        lines.append("  rekey's own estimate (--dry-run plan): %s s" % R["estimate"])
    if rb:
        lines.append("  runbook: %s" % rb["how"])
    if det:
        lines.append("  per double, from its request log (times from the start of the run):")
        lines += det
    if R.get("doubles_cpu"):
        lines.append("  CPU of the three doubles (Python) during the run: %s" % R["doubles_cpu"])
    for n in R.get("notes", []):
        lines.append("  " + n)
    text = "\n".join(lines)
    print(text)
    if out_file:
        with open(out_file, "a") as f:
            f.write(text + "\n")

def cmd_extrapolate(times_file, nl, nv, na, nk, nd, sample):
    """times_file: lines 'MODE KIND SECONDS'; prints 'SEQ PAR' extrapolated seconds."""
    n = {"local": int(nl), "vault": int(nv), "aws": int(na), "k8s": int(nk), "restart": int(nd)}
    s = int(sample)
    tot = {"seq": 0.0, "par": 0.0}
    per = {}
    for line in open(times_file):
        mode, kind, secs = line.split()
        per[(mode, kind)] = float(secs) / s
        tot[mode] += n[kind] * float(secs) / s
    desc = ", ".join("%s %.0f/%.0f ms" % (k, 1000 * per.get(("seq", k), 0), 1000 * per.get(("par", k), 0))
                     for k in ("local", "vault", "aws", "k8s", "restart"))
    # no runbook beats the AWS write quota either (one PutSecretValue each)
    floor = n["aws"] / 50.0
    print("%.3f %.3f %s" % (max(tot["seq"], floor), max(tot["par"], floor), desc.replace(" ", "_")))

def cmd_proc_cpu(*pids):
    t = 0
    for p in pids:
        try:
            f = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        except OSError:
            pass
    print("%.2f" % (t / os.sysconf("SC_CLK_TCK")))

def cmd_rusage(out, *argv):
    """Without GNU time: runs argv, writes 'WALL MAX_RSS_KB USER SYS' (getrusage of the child)."""
    t = time.time()
    p = subprocess.Popen(list(argv))
    _, status, ru = os.wait4(p.pid, 0)
    with open(out, "w") as f:
        f.write("%.2f %d %.2f %.2f\n" % (time.time() - t, ru.ru_maxrss, ru.ru_utime, ru.ru_stime))
    sys.exit(os.waitstatus_to_exitcode(status))

if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
EOP

# ---- the doubles ----
start_fake() { # start_fake NAME ARGS...: sets $FAKE_PID, waits for $T/NAME.port
	name=$1; shift
	"$PYTHON" "$@" --port 0 --port-file "$T/$name.port" 2>"$T/$name.log" &
	FAKE_PID=$!
	i=0
	while [ ! -s "$T/$name.port" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$T/$name.port" ] || { tail -5 "$T/$name.log" >&2; die "the $name double did not start"; }
}
start_fake vault "$SRC/tests/fakes/vault_fake.py" --root-token root; VF=$FAKE_PID
start_fake aws "$SRC/tests/fakes/aws_fake.py"; AF=$FAKE_PID
start_fake k8s "$SRC/tests/fakes/k8s_fake.py" --cert-dir "$T/k8s"; KF=$FAKE_PID
EM_V="http://127.0.0.1:$(cat "$T/vault.port")"
EM_A="http://127.0.0.1:$(cat "$T/aws.port")"
EM_K="https://127.0.0.1:$(cat "$T/k8s.port")"
export EM_V EM_A EM_K
export EM_KCA="$T/k8s/ca.crt" EM_MS="$MS" EM_VRPS="$VRPS"
printf 'root\n' >"$T/token"
chmod 600 "$T/token"

export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN \
	AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_ENDPOINT_URL \
	AWS_ENDPOINT_URL_SECRETS_MANAGER AWS_ENDPOINT_URL_STS 2>/dev/null
mkdir -p "$T/home"
export HOME="$T/home" AWS_CONFIG_FILE="$T/home/none" AWS_SHARED_CREDENTIALS_FILE="$T/home/none"
export KUBECONFIG="$T/k8s/kubeconfig"

mkdir "$T/policy"
printf 'name: em\nrotate_every: 1d\ngenerator: {type: password, length: 32}\nrestart: {wait: false}\n' >"$T/policy/em.yaml"

# AWS: rate_limit set to the write quota, as the README advises. rekey's rate
# limit is one bucket for all of a provider's requests, reads included (a
# rotation sends GetSecretValue x 3 and DescribeSecret besides its 3 writes),
# so this also paces the reads; a higher BENCH_EM_AWS_RPS lets the reads go
# faster but the writes of the AWSPENDING tidy (all writes) would then exceed
# the quota and be throttled.
AWS_RPS=${BENCH_EM_AWS_RPS:-50}
# fresh DIR: a state dir and config in DIR
fresh() {
	mkdir -p "$1"
	cat >"$1/rekey.yaml" <<EOC
state_dir: $1/var
environment: bench
policy_dir: $T/policy
providers:
  local: {type: local}
  vault: {type: vault, address: "$EM_V", insecure_http: true, auth: {method: token, token_file: $T/token},
          rate_limit: {rps: ${VRPS_CFG:-100000}, burst: ${VBURST_CFG:-10000}}, concurrency: 64}
  aws: {type: aws, endpoint: "$EM_A", insecure_http: true, region: us-east-1,
        rate_limit: {rps: $AWS_RPS, burst: ${BENCH_EM_AWS_BURST:-50}}, concurrency: 16,
        retry: {max_attempts: 10, base_delay: 100ms, max_delay: 2s}}
  cluster: {type: kubernetes, kubeconfig: $T/k8s/kubeconfig, context: fake-token,
            rate_limit: {rps: $KQPS, burst: $KQPS}, rollouts: 100, rollout_poll: 1s, concurrency: 32}
EOC
	"$REKEY" -c "$1/rekey.yaml" init >/dev/null 2>"$1/init.err" || { cat "$1/init.err" >&2; die "init failed in $1"; }
}
if [ "$VRPS" -gt 0 ]; then VRPS_CFG=$VRPS VBURST_CFG=1; fi

em_args() { # the command line of the run
	if [ "$CMD" = emergency ]; then
		echo "emergency --reason bench --yes${PAR:+ --parallel $PAR}"
	else
		echo "rotate --due${PAR:+ --parallel $PAR}"
	fi
}
resume_args() { # resume_args RUN
	if [ "$CMD" = emergency ]; then echo "emergency --resume $1${PAR:+ --parallel $PAR}"
	else echo "rotate --resume $1${PAR:+ --parallel $PAR}"; fi
}

total0=$(date +%s)
load0=$(cut -d' ' -f1 /proc/loadavg)
echo "emergency bench: $N secrets (local $NL, vault $NV, aws $NA, kubernetes $NK), $ND workloads, ${MS} ms latency, rekey $CMD"

# ---- the main run ----
s0=$(date +%s)
"$PYTHON" "$T/em.py" seed em "$NL" "$NV" "$NA" "$NK" "$ND" "$T/inv.yaml" || die "seeding the doubles failed"
fresh "$T/main"
"$REKEY" -c "$T/main/rekey.yaml" apply -f "$T/inv.yaml" >/dev/null 2>"$T/main/apply.err" ||
	{ tail -5 "$T/main/apply.err" >&2; die "apply failed"; }
echo "  set up in $(($(date +%s) - s0)) s (doubles seeded, inventory applied)"
estimate=
if [ "$CMD" = emergency ]; then
	estimate=$("$REKEY" -c "$T/main/rekey.yaml" --output json emergency --reason bench --dry-run 2>/dev/null |
		"$PYTHON" -c 'import json, sys; print(json.load(sys.stdin).get("estimate_seconds", ""))' 2>/dev/null)
fi
cpu0=$("$PYTHON" "$T/em.py" proc_cpu $VF $AF $KF)
t0=$(now_ms)
# shellcheck disable=SC2046
if [ -n "$GTIME" ]; then
	"$GTIME" -f '%e %M %U %S' -o "$T/main/time" "$REKEY" -c "$T/main/rekey.yaml" --output json \
		$(em_args) >"$T/main/out.json" 2>"$T/main/err" &
else # getrusage through Python
	"$PYTHON" "$T/em.py" rusage "$T/main/time" "$REKEY" -c "$T/main/rekey.yaml" --output json \
		$(em_args) >"$T/main/out.json" 2>"$T/main/err" &
fi
CHILD=$!
wait "$CHILD"; rc=$?; CHILD=
t1=$(now_ms)
cpu1=$("$PYTHON" "$T/em.py" proc_cpu $VF $AF $KF)
"$PYTHON" "$T/em.py" stats "$T/main/stats.json" "$t0"
if ! res=$("$PYTHON" "$T/em.py" check "$T/main/out.json" "$N" "$ND"); then
	grep -v '"level":"info"' "$T/main/err" | tail -5 >&2
	die "the run ($(em_args)) exited $rc: $res"
fi
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
rss='' usr='' sys=''
[ -s "$T/main/time" ] && read -r _ rss usr sys <"$T/main/time"
echo "  main run: $wall s, exit $rc ($res)"

# ---- kill -9 at a random moment, then --resume ----
kill_line=
if [ "$KN" -gt 0 ]; then
	kna=$((KN * NA / (N > 0 ? N : 1))) knk=$((KN * NK / (N > 0 ? N : 1))) knv=$((KN * NV / (N > 0 ? N : 1)))
	knl=$((KN - kna - knk - knv)) knd=$((ND * KN / (N > 0 ? N : 1)))
	try=1
	while :; do
		"$PYTHON" "$T/em.py" seed kill "$knl" "$knv" "$kna" "$knk" "$knd" "$T/kinv.yaml" || die "seeding the doubles failed"
		rm -rf "$T/kill"
		fresh "$T/kill"
		"$REKEY" -c "$T/kill/rekey.yaml" apply -f "$T/kinv.yaml" >/dev/null 2>"$T/kill/apply.err" ||
			{ tail -5 "$T/kill/apply.err" >&2; die "apply failed"; }
		# how long it should take: rekey's own estimate (its plan), else the
		# main run's pace; the kill comes at a random moment in the first 80 %
		# of it (earlier on each retry, should the run have finished first)
		est=
		if [ "$CMD" = emergency ]; then
			est=$("$REKEY" -c "$T/kill/rekey.yaml" --output json emergency --reason bench --dry-run 2>/dev/null |
				"$PYTHON" -c 'import json, sys; print(json.load(sys.stdin).get("estimate_seconds", ""))' 2>/dev/null)
		fi
		at=$(od -An -N2 -tu2 /dev/urandom | awk -v e="$est" -v w="$wall" -v k="$KN" -v n="$N" -v t="$try" '{
			d = (e != "" && e > 0) ? e : w * k / (n > 0 ? n : 1); if (d < 1) d = 1
			printf "%.2f", d * (0.05 + 0.75 * $1 / 65535) / 2 ^ (t - 1) }')
		# shellcheck disable=SC2046
		"$REKEY" -c "$T/kill/rekey.yaml" --output json $(em_args) >"$T/kill/out1.json" 2>"$T/kill/err1" &
		CHILD=$!
		sleep "$at"
		kill -KILL "$CHILD" 2>/dev/null
		wait "$CHILD" 2>/dev/null; CHILD=
		run=$("$REKEY" -c "$T/kill/rekey.yaml" --output json runs 2>/dev/null | "$PYTHON" -c '
import json, sys
runs = json.load(sys.stdin)
todo = [r for r in runs if r.get("status") not in ("done", "partial", "failed")]
print(todo[0]["id"] if todo else (runs[0]["id"] + " " + runs[0]["status"] if runs else ""))')
		case $run in *' '*) [ $try -lt 3 ] && { try=$((try + 1)); continue; } ;; esac
		break
	done
	# promoted before the kill, from the killed process's own log
	done_at_kill=$(grep -c '"step":"promoted"' "$T/kill/err1")
	case $run in
	'') die "no run recorded by the killed $CMD" ;;
	*' '*) kill_line="not-exercised (the run had finished, ${run#* }, before the kill at ${at} s, $try tries)" ;;
	*)
		# shellcheck disable=SC2046
		"$REKEY" -c "$T/kill/rekey.yaml" --output json $(resume_args "$run") >"$T/kill/out2.json" 2>"$T/kill/err2"
		rc2=$?
		v=$("$PYTHON" "$T/em.py" verify kill "$knl" "$knv" "$kna" "$knk" "$knd" "$T/kill/var" "$REKEY" \
			"$T/kill/rekey.yaml" "$RK_FP" "${BENCH_EM_VERIFY_SAMPLE:-20}" 2>"$T/kill/verify.err")
		# shellcheck disable=SC2086 # five numbers
		set -- $v
		checked=${1:-0} bad=${2:-1} once=${3:-0} twice=${4:-0} never=${5:-0}
		ok=no
		[ "$rc2" = 0 ] && [ "$bad" = 0 ] && [ "$never" = 0 ] && [ "$checked" -gt 0 ] && ok=yes
		kill_line="$ok (kill -9 at ${at} s of an estimated ${est:-?} s, try $try, $done_at_kill of $KN secrets promoted by then; --resume exit $rc2; $checked values checked against rekey's fingerprints (every remote one, ${BENCH_EM_VERIFY_SAMPLE:-20} local), $bad wrong; workloads restarted once $once, twice $twice, never $never)"
		[ "$ok" = yes ] || { cat "$T/kill/verify.err" >&2; grep -v '"level":"info"' "$T/kill/err2" | tail -3 >&2; }
		;;
	esac
	echo "  kill -9 + resume: $kill_line"
fi

# ---- the runbook: a sample of each kind, sequential and 8 at once ----
rb_seq='' rb_par='' rb_how='' rb_note=''
if [ "$SAMPLE" -gt 0 ]; then
	# the doubles as the kill run left them (or freshly seeded), same latency and quotas
	if [ "$KN" -eq 0 ]; then
		"$PYTHON" "$T/em.py" seed kill "$SAMPLE" "$SAMPLE" "$SAMPLE" "$SAMPLE" "$SAMPLE" "$T/kinv.yaml" || die "seeding failed"
		sl=$SAMPLE sv=$SAMPLE sa=$SAMPLE sk=$SAMPLE sd=$SAMPLE
	else
		sl=$knl sv=$knv sa=$kna sk=$knk sd=$knd
	fi
	for v in "$sl" "$sv" "$sa" "$sk" "$sd"; do
		[ "$v" -ge "$SAMPLE" ] || die "BENCH_EM_KILL_SECRETS too small for a sample of $SAMPLE of each kind"
	done
	: >"$T/rb.items"
	j=0
	while [ $j -lt "$SAMPLE" ]; do
		printf 'local kill/local/s%05d\n' $j >>"$T/rb.local"
		printf 'vault kill/vault/s%05d\n' $j >>"$T/rb.vault"
		printf 'aws kill/aws/s%05d\n' $j >>"$T/rb.aws"
		printf 'k8s em%d kill-s%05d\n' $((j % 10)) $j >>"$T/rb.k8s"
		printf 'restart em%d app%04d\n' $((j % 10)) $j >>"$T/rb.restart"
		j=$((j + 1))
	done
	export RB_LOCAL_DIR="$T/rb-local" VAULT_ADDR="$EM_V" VAULT_TOKEN_FILE="$T/token" RB_AWS_ENDPOINT="$EM_A"
	RB_AWS=$(command -v aws 2>/dev/null || true)
	# a pyenv shim adds a shell and pyenv to every call: use what it points to
	if [ -n "$RB_AWS" ] && command -v pyenv >/dev/null 2>&1 && pyenv which aws >/dev/null 2>&1; then
		RB_AWS=$(pyenv which aws)
	fi
	# without the AWS CLI: curl's equivalent, a small SigV4 signer (one Python process a call)
	[ "${BENCH_EM_AWS_CLIENT:-cli}" = sign ] && RB_AWS=
	export RB_AWS RB_AWS_SIGNER="$T/sign.py"
	cat >"$T/sign.py" <<'EOS'
# sign.py ENDPOINT SECRET_ID < VALUE: PutSecretValue, SigV4-signed, as curl --aws-sigv4 would
import datetime, hashlib, hmac, json, os, sys, urllib.parse, urllib.request, uuid
ep, sid = sys.argv[1], sys.argv[2]
region, ak, sk = os.environ.get("AWS_REGION", "us-east-1"), os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
body = json.dumps({"SecretId": sid, "SecretString": sys.stdin.read(), "ClientRequestToken": str(uuid.uuid4())}).encode()
t = datetime.datetime.now(datetime.timezone.utc)
amz, day = t.strftime("%Y%m%dT%H%M%SZ"), t.strftime("%Y%m%d")
h = {"content-type": "application/x-amz-json-1.1", "host": urllib.parse.urlsplit(ep).netloc,
     "x-amz-date": amz, "x-amz-target": "secretsmanager.PutSecretValue"}
signed = ";".join(sorted(h))
creq = "\n".join(["POST", "/", "", "".join("%s:%s\n" % (k, h[k]) for k in sorted(h)), signed,
                  hashlib.sha256(body).hexdigest()])
scope = "%s/%s/secretsmanager/aws4_request" % (day, region)
sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
k = ("AWS4" + sk).encode()
for part in (day, region, "secretsmanager", "aws4_request"):
    k = hmac.new(k, part.encode(), hashlib.sha256).digest()
sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
h["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (ak, scope, signed, sig)
del h["host"]
urllib.request.urlopen(urllib.request.Request(ep + "/", data=body, headers=h, method="POST"), timeout=30).read()
EOS
	rb_fail=
	if ! command -v "${RB_KUBECTL:-kubectl}" >/dev/null 2>&1; then
		rb_fail="no kubectl"
	fi
	[ -n "$rb_fail" ] || kubectl get deployments -n em0 >/dev/null 2>&1 # the discovery cache, warm as an operator's is
	: >"$T/rb.times"
	for kind in local vault aws k8s restart; do
		[ -z "$rb_fail" ] || break
		a0=$(now_ms)
		sh "$HERE/runbook.sh" seq <"$T/rb.$kind" 2>>"$T/rb.err" || { rb_fail="$kind, sequential: $(tail -1 "$T/rb.err")"; break; }
		a1=$(now_ms)
		# a restart less than a second after the last one is refused by kubectl
		[ "$kind" = restart ] && sleep 1.1
		a1b=$(now_ms)
		xargs -P 8 -L 1 sh "$HERE/runbook.sh" one <"$T/rb.$kind" 2>>"$T/rb.err" || { rb_fail="$kind, xargs -P 8: $(tail -1 "$T/rb.err")"; break; }
		a2=$(now_ms)
		echo "seq $kind $(awk -v a="$a0" -v b="$a1" 'BEGIN { print (b - a) / 1000 }')" >>"$T/rb.times"
		echo "par $kind $(awk -v a="$a1b" -v b="$a2" 'BEGIN { print (b - a) / 1000 }')" >>"$T/rb.times"
	done
	if [ -z "$rb_fail" ]; then
		# shellcheck disable=SC2046 # three words
		set -- $("$PYTHON" "$T/em.py" extrapolate "$T/rb.times" "$NL" "$NV" "$NA" "$NK" "$ND" "$SAMPLE")
		rb_seq=$1 rb_par=$2
		awsc="the AWS CLI ($RB_AWS)"
		[ -n "$RB_AWS" ] || awsc="a Python SigV4 signer (no AWS CLI)"
		rb_how="$SAMPLE items of each kind timed, per-item time x count; AWS through $awsc; sequential/8-wide per item: $(echo "$3" | tr _ ' ')"
		echo "  runbook: sequential $rb_seq s, xargs -P 8 $rb_par s (extrapolated)"
	else
		echo "  runbook: not measured ($rb_fail)"
		rb_note="runbook not measured: $rb_fail"
	fi
fi

# ---- the table ----
"$PYTHON" - "$T/results.json" <<EOP
import json, sys
rb = None
if "$rb_seq":
    rb = {"seq": float("$rb_seq"), "par": float("$rb_par"), "how": """$rb_how"""}
json.dump({"na": $NA, "nk": $NK, "nv": $NV, "nl": $NL, "nd": $ND, "ms": $MS, "kqps": $KQPS, "vrps": $VRPS,
           "command": "rekey $(em_args)", "wall": float("$wall"),
           "rss_kb": int("${rss:-0}" or 0), "usr": float("${usr:-0}") if "$usr" else None,
           "sys": float("${sys:-0}") if "$sys" else None, "kill": """$kill_line""",
           "stats": json.load(open("$T/main/stats.json")), "runbook": rb,
           "estimate": "$estimate", "doubles_cpu": "%.1f s" % (float("$cpu1") - float("$cpu0")),
           "notes": [n for n in ["""$rb_note"""] if n] + ["bench took %d s in all; load average at the start %s, at the end %s (other work on the machine slows the doubles and the runbook)" % ($(date +%s) - $total0, "$load0", "$(cut -d' ' -f1 /proc/loadavg)")]}, open(sys.argv[1], "w"))
EOP
echo
"$PYTHON" "$T/em.py" table "$T/results.json" "${BENCH_OUT:-}"
exit 0
