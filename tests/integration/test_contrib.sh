#!/bin/sh
# The operator's kit in contrib/ (README.md, "Operator's kit"), checked the way
# an operator uses it, without a cluster:
# (a) kubernetes: `kubectl kustomize` builds the daemon base and the cronjob/
#     variant; in the base a Deployment of one replica, strategy Recreate,
#     running `rekey serve -c` the ConfigMap's rekey.yaml (which this rekey
#     loads), probes on /healthz and /readyz, non-root, read-only root fs, no
#     capabilities, RuntimeDefault seccomp, the PVC mounted where state_dir is,
#     the API token from a Secret file, a Service port 9464 `metrics`, a
#     ServiceMonitor and a NetworkPolicy that select them, the CronJob
#     suspended; in the variant the CronJob running, no daemon;
# (b) systemd: rekey.service's hardening keys, and `systemd-analyze verify`
#     when systemd-analyze is installed;
# (c) prometheus: every alert has a severity and a runbook_url whose file
#     exists, each is tested firing and quiet in rekey-alerts.test.yaml, and
#     `promtool check rules` / `promtool test rules` pass (when promtool is
#     installed, else a SKIP line);
# (d) runbooks: each has its sections and fenced command blocks, every
#     `rekey COMMAND` in them is a command of $REKEY_BIN, links resolve, README.md indexes
#     them;
# (e) every metric name in the alerts and the dashboard is one rekey serve
#     exports (the list below), so a renamed metric fails here;
# (f) grafana: the dashboard parses, has the ${datasource} variable, unique
#     panel ids, gridPos inside 24 columns without overlaps, and its panels.
. "$(dirname "$0")/lib.sh"
python3 -c 'import yaml' 2>/dev/null || { echo "test_contrib: python3-yaml missing (make deps installs it)"; exit 1; }
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
PROMTOOL=${PROMTOOL:-$(command -v promtool || echo /usr/bin/promtool)}
SYSTEMD_ANALYZE=${SYSTEMD_ANALYZE:-systemd-analyze}
C="$SRC/contrib"

# Every metric `rekey serve` exports (histograms also as _bucket, _sum, _count).
cat >"$T/metrics.txt" <<'EOM'
rekey_rotations_total counter
rekey_rotation_duration_seconds histogram
rekey_secrets gauge
rekey_secret_age_seconds gauge
rekey_secret_overdue gauge
rekey_provider_requests_total counter
rekey_provider_request_duration_seconds histogram
rekey_provider_retries_total counter
rekey_provider_circuit_open gauge
rekey_emergency_active gauge
rekey_scheduler_paused gauge
rekey_last_run_timestamp_seconds gauge
rekey_last_success_timestamp_seconds gauge
rekey_leader gauge
rekey_last_backup_timestamp_seconds gauge
rekey_audit_chain_ok gauge
rekey_api_requests_total counter
rekey_api_unauthorized_total counter
rekey_api_rate_limited_total counter
rekey_build_info gauge
process_cpu_seconds_total counter
process_resident_memory_bytes gauge
process_virtual_memory_bytes gauge
process_start_time_seconds gauge
process_open_fds gauge
process_max_fds gauge
EOM

# rekey's commands: what --help lists, and what the daemon work adds.
"$REKEY_BIN" --help >"$T/help" 2>&1
{ sed -n '/^commands:/,/^$/p' "$T/help" | awk 'NF > 1 && /^  [a-z]/ {print $1}'; } |
	sort -u >"$T/commands.txt"
check "rekey --help lists its commands" [ "$(wc -l <"$T/commands.txt")" -ge 15 ]

# ---------------------------------------------------------------- (a) kubernetes
if [ -x "$KUBECTL" ]; then
	expect_rc "kubectl kustomize contrib/kubernetes (the daemon base)" 0 "$KUBECTL" kustomize "$C/kubernetes"
	cp "$T/out" "$T/k-base.yaml"
	expect_rc "kubectl kustomize contrib/kubernetes/cronjob (the CronJob variant)" 0 "$KUBECTL" kustomize "$C/kubernetes/cronjob"
	cp "$T/out" "$T/k-cron.yaml"
else
	fail "kubectl not found at $KUBECTL (kustomize is built into it)"
	: >"$T/k-base.yaml"; : >"$T/k-cron.yaml"
fi

python3 - "$T" "$REKEY_BIN" >"$T/static" 2>&1 <<'PY'
import os, subprocess, sys, yaml
tdir, rekey = sys.argv[1], sys.argv[2]
def say(ok, name, why=""):
    print("%s\t%s%s" % ("ok" if ok else "FAIL", name, "\t" + str(why) if why and not ok else ""))
def load(f):
    try:
        return [d for d in yaml.safe_load_all(open(f)) if d]
    except yaml.YAMLError as e:
        say(False, "%s parses" % os.path.basename(f), str(e).replace("\n", " "))
        return []
base, cron = load(os.path.join(tdir, "k-base.yaml")), load(os.path.join(tdir, "k-cron.yaml"))
def get(docs, kind, name=None):
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"].get("name") == name)]
def one(docs, kind, name=None):
    m = get(docs, kind, name)
    return m[0] if len(m) == 1 else None
def matches(sel, labels):
    return bool(sel) and all(labels.get(k) == v for k, v in sel.items())

if base:
    dep = one(base, "Deployment", "rekey")
    say(dep is not None and dep["metadata"].get("namespace") == "rekey", "base: one Deployment rekey in namespace rekey")
    dep = dep or {"spec": {}}
    spec = dep["spec"]
    say(spec.get("replicas") == 1, "base: replicas 1", spec.get("replicas"))
    say((spec.get("strategy") or {}).get("type") == "Recreate", "base: strategy Recreate", spec.get("strategy"))
    pod = (spec.get("template") or {}).get("spec") or {}
    plabels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    say(matches((spec.get("selector") or {}).get("matchLabels"), plabels), "base: the selector matches the pod labels")
    ctr = next((c for c in pod.get("containers") or [] if "serve" in (c.get("args") or []) + (c.get("command") or [])), None)
    say(ctr is not None and len(pod.get("containers") or []) == 1, "base: one container, running rekey serve")
    ctr = ctr or {}
    argv = (ctr.get("command") or []) + (ctr.get("args") or [])
    cfg_path = argv[argv.index("-c") + 1] if "-c" in argv[:-1] else None
    say(argv[:2] == ["/usr/local/bin/rekey", "serve"] and cfg_path == "/etc/rekey/rekey.yaml",
        "base: argv is rekey serve -c /etc/rekey/rekey.yaml", argv)
    say(pod.get("serviceAccountName") == "rekey", "base: service account rekey", pod.get("serviceAccountName"))
    ports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports") or []}
    def probe(kind, path):
        hg = (ctr.get(kind) or {}).get("httpGet") or {}
        port = hg.get("port")
        say(hg.get("path") == path and (port == 9464 or ports.get(port) == 9464),
            "base: %s GET %s on 9464" % (kind, path), hg)
    probe("livenessProbe", "/healthz")
    probe("readinessProbe", "/readyz")
    psc = pod.get("securityContext") or {}
    bad = []
    for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        sc = c.get("securityContext") or {}
        nonroot = sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True and sc.get("runAsUser", psc.get("runAsUser", 1)) != 0
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault"
        if not (nonroot and sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
                and "ALL" in ((sc.get("capabilities") or {}).get("drop") or []) and seccomp and not sc.get("privileged")):
            bad.append(c.get("name"))
    say(not bad and ctr, "base: every container runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, "
        "capabilities drop ALL, seccomp RuntimeDefault", "not hardened: %s" % bad)
    say("resources" in ctr and (ctr["resources"].get("requests") and ctr["resources"].get("limits")),
        "base: the container has resource requests and limits")
    say((pod.get("terminationGracePeriodSeconds") or 30) >= 61,
        "base: terminationGracePeriodSeconds above the daemon's stop bound (hooks: 60 s)", pod.get("terminationGracePeriodSeconds"))
    vols = {v.get("name"): v for v in pod.get("volumes") or []}
    mounts = {m.get("name"): m.get("mountPath") for m in ctr.get("volumeMounts") or []}
    # the ConfigMap's rekey.yaml
    cmv = next((n for n, v in vols.items() if "configMap" in v), None)
    cm = one(base, "ConfigMap", vols[cmv]["configMap"]["name"]) if cmv else None
    conf = {}
    ok = cm is not None and cfg_path and os.path.dirname(cfg_path) == mounts.get(cmv) \
        and os.path.basename(cfg_path) in (cm.get("data") or {})
    say(ok, "base: %s is the ConfigMap's, mounted there" % cfg_path)
    if ok:
        text = cm["data"][os.path.basename(cfg_path)]
        conf = yaml.safe_load(text) or {}
        open(os.path.join(tdir, "cm-rekey.yaml"), "w").write(text)
        r = subprocess.run([rekey, "-c", os.path.join(tdir, "cm-rekey.yaml"), "list"], capture_output=True, text=True)
        say(r.returncode != 2, "base: this rekey loads that rekey.yaml (exit %d; 2 is a configuration error)" % r.returncode,
            r.stderr.strip().splitlines()[-1:] if r.stderr else "")
    srv = conf.get("server") or {}
    say(srv.get("listen") == "0.0.0.0:9464", "base: server.listen 0.0.0.0:9464", srv.get("listen"))
    # the state PVC where state_dir is
    pvv = next((n for n, v in vols.items() if "persistentVolumeClaim" in v), None)
    pvc = one(base, "PersistentVolumeClaim", vols[pvv]["persistentVolumeClaim"]["claimName"]) if pvv else None
    sd = str(conf.get("state_dir", ""))
    mp = mounts.get(pvv) or "\0"
    say(pvc is not None and sd.startswith(mp.rstrip("/") + "/"),
        "base: the PVC is mounted at %s, state_dir %s is on it" % (mp, sd))
    say(pvc is not None and "ReadWriteOnce" in ((pvc or {}).get("spec") or {}).get("accessModes", []),
        "base: the state PVC is ReadWriteOnce")
    # the API token from a Secret, as a file
    tf = str(srv.get("token_file", ""))
    sec = [n for n, v in vols.items() if "secret" in v and mounts.get(n) and tf.startswith(mounts[n].rstrip("/") + "/")]
    say(bool(sec), "base: server.token_file %s is in a Secret volume" % tf)
    # Service, ServiceMonitor, NetworkPolicy
    svc = one(base, "Service", "rekey")
    sp = [p for p in ((svc or {}).get("spec") or {}).get("ports") or [] if p.get("port") == 9464 and p.get("name") == "metrics"]
    say(svc is not None and bool(sp) and matches(svc["spec"].get("selector"), plabels),
        "base: Service rekey, port 9464 named metrics, selecting the daemon's pods")
    sm = get(base, "ServiceMonitor")
    smok = len(sm) == 1 and sm[0].get("apiVersion") == "monitoring.coreos.com/v1" \
        and matches(((sm[0].get("spec") or {}).get("selector") or {}).get("matchLabels"), (svc or {}).get("metadata", {}).get("labels") or {}) \
        and any(e.get("port") == "metrics" and e.get("path", "/metrics") == "/metrics" for e in sm[0]["spec"].get("endpoints") or [])
    say(smok, "base: ServiceMonitor (monitoring.coreos.com/v1) scraping the Service's metrics port at /metrics")
    def np_ok(docs, labels, tag):
        nps = get(docs, "NetworkPolicy")
        np = nps[0] if len(nps) == 1 else {}
        s = np.get("spec") or {}
        ing = s.get("ingress") or []
        ing_ok = bool(ing) and all(
            [p.get("port") for p in r.get("ports") or []] == [9464]
            and r.get("from") and all(((f.get("namespaceSelector") or {}).get("matchLabels") or {}).get("kubernetes.io/metadata.name") == "monitoring"
                                      for f in r["from"]) for r in ing)
        eg_ports = {p.get("port") for r in s.get("egress") or [] for p in r.get("ports") or []}
        say(bool(np) and matches((s.get("podSelector") or {}).get("matchLabels"), labels)
            and set(s.get("policyTypes") or []) == {"Ingress", "Egress"} and ing_ok and {53, 443} <= eg_ports,
            "%s: NetworkPolicy on rekey's pods: ingress 9464 from monitoring only; egress DNS and HTTPS" % tag)
    np_ok(base, plabels, "base")
    cj = one(base, "CronJob")
    say(cj is not None and cj["spec"].get("suspend") is True, "base: the CronJob is there, suspended (the daemon rotates)")
    roles = [r for d in get(base, "Role") for r in d.get("rules") or []]
    lease = set(v for r in roles if "coordination.k8s.io" in (r.get("apiGroups") or []) and "leases" in (r.get("resources") or [])
                for v in r.get("verbs") or [])
    say({"get", "create", "update"} <= lease, "base: a Role grants leases get/create/update (ha.lease)", sorted(lease))
    say(one(base, "Namespace", "rekey") is not None and one(base, "ServiceAccount", "rekey") is not None,
        "base: Namespace and ServiceAccount rekey")

if cron:
    cj = one(cron, "CronJob", "rekey-rotate")
    js = (cj or {}).get("spec") or {}
    pod = ((((js.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}))
    say(cj is not None and not js.get("suspend"), "cronjob: the CronJob rekey-rotate, not suspended")
    argv = [a for c in (pod.get("spec") or {}).get("containers") or [] for a in (c.get("command") or []) + (c.get("args") or [])]
    say("rotate" in argv and "--due" in argv, "cronjob: it runs rekey rotate --due", argv)
    say(not get(cron, "Deployment") and not get(cron, "Service") and not get(cron, "ServiceMonitor"),
        "cronjob: no Deployment, Service or ServiceMonitor")
    say(all(one(cron, k, n) is not None for k, n in (("Namespace", "rekey"), ("ServiceAccount", "rekey"),
        ("ConfigMap", "rekey-config"), ("PersistentVolumeClaim", "rekey-state"))),
        "cronjob: Namespace, ServiceAccount, ConfigMap rekey-config, PVC rekey-state")
    say(bool(base) and sorted(yaml.safe_dump(d) for d in get(cron, "PersistentVolumeClaim") + get(cron, "ConfigMap")) ==
        sorted(yaml.safe_dump(d) for d in get(base, "PersistentVolumeClaim") + get(base, "ConfigMap")),
        "cronjob and base share the same ConfigMap and PVC (the state moves between them)")
    np_ok(cron, (pod.get("metadata") or {}).get("labels") or {}, "cronjob")
PY
while IFS='	' read -r res name why; do
	case $res in
	ok) pass "$name" ;;
	FAIL) fail "$name${why:+: $why}" ;;
	*) fail "kit check: $res $name $why" ;;
	esac
done <"$T/static"

# ---------------------------------------------------------------- (b) systemd
UNIT="$C/systemd/rekey.service"
python3 - "$UNIT" >"$T/static" 2>&1 <<'PY'
import re, sys
def say(ok, name, why=""):
    print("%s\t%s%s" % ("ok" if ok else "FAIL", name, "\t" + str(why) if why and not ok else ""))
path = sys.argv[1]
try:
    text = open(path).read()
except OSError as e:
    say(False, "rekey.service readable", e); sys.exit()
keys, section, comments = {}, None, []
lines = text.replace("\\\n", " ").splitlines()
for ln in lines:
    s = ln.strip()
    if not s or s[0] in "#;":
        comments.append(s); continue
    m = re.match(r"\[(\w+)\]$", s)
    if m:
        section = m.group(1); continue
    k, _, v = s.partition("=")
    keys.setdefault((section, k.strip()), []).append(v.strip())
svc = lambda k: keys.get(("Service", k))
last = lambda k: (svc(k) or [None])[-1]
want = {"StateDirectory": "rekey", "StateDirectoryMode": "0700", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes", "UMask": "0077", "LimitCORE": "0", "Restart": "on-failure", "KillSignal": "SIGTERM",
        "ExecStart": "/usr/local/bin/rekey serve -c /etc/rekey/rekey.yaml", "ExecReload": "/bin/kill -HUP $MAINPID"}
for k, v in want.items():
    say(last(k) == v, "rekey.service: %s=%s" % (k, v), "got %r" % last(k))
fams = set(" ".join(svc("RestrictAddressFamilies") or []).split())
say(fams == {"AF_UNIX", "AF_INET", "AF_INET6"}, "rekey.service: RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", fams)
say("@system-service" in " ".join(f for f in svc("SystemCallFilter") or [] if not f.startswith("~")).split(),
    "rekey.service: SystemCallFilter=@system-service")
dyn, user = last("DynamicUser"), last("User")
say(dyn == "yes" or (user not in (None, "", "root", "0")), "rekey.service: DynamicUser=yes or a dedicated User=", (dyn, user))
say(any("DynamicUser" in c for c in comments), "rekey.service: a comment says why User=/DynamicUser=")
creds = [c.split(":", 1)[0] for c in svc("LoadCredential") or []]
say("rekey-master.key" in creds and "api-token" in creds,
    "rekey.service: LoadCredential= the master key (rekey-master.key) and the API token (api-token)", creds)
say(any(re.match(r"#\s*LoadCredential=\S+:/", c) for c in comments), "rekey.service: provider tokens shown as LoadCredential= lines")
say(last("ExecStartPre") == "/usr/local/bin/rekey -c /etc/rekey/rekey.yaml init", "rekey.service: ExecStartPre= rekey init (first start)",
    last("ExecStartPre"))
def secs(v):
    if v is None: return 0
    t = 0
    for n, u in re.findall(r"(\d+)\s*(min|ms|s|h|)", v):
        t += int(n) * {"": 1, "s": 1, "ms": 0.001, "min": 60, "h": 3600}[u]
    return t
say(secs(last("TimeoutStopSec")) > 60, "rekey.service: TimeoutStopSec above the daemon's stop bound (hooks: 60 s)", last("TimeoutStopSec"))
say(keys.get(("Install", "WantedBy")) == ["multi-user.target"], "rekey.service: WantedBy=multi-user.target")
PY
while IFS='	' read -r res name why; do
	case $res in
	ok) pass "$name" ;;
	FAIL) fail "$name${why:+: $why}" ;;
	*) fail "unit check: $res $name $why" ;;
	esac
done <"$T/static"
if command -v "$SYSTEMD_ANALYZE" >/dev/null 2>&1; then
	# verify wants ExecStart's binary to exist: this build's, in a copy.
	mkdir -p "$T/unit"
	sed "s|/usr/local/bin/rekey|$REKEY_BIN|g" "$UNIT" >"$T/unit/rekey.service"
	"$SYSTEMD_ANALYZE" verify "$T/unit/rekey.service" >"$T/verify.out" 2>&1
	rc=$?
	# It exits 0 on settings it ignores; any line about the unit is a failure.
	if [ $rc = 0 ] && ! grep -q 'rekey\.service' "$T/verify.out"; then pass "systemd-analyze verify rekey.service"; else
		fail "systemd-analyze verify rekey.service (exit $rc)"; sed 's/^/      | /' "$T/verify.out" | head -5
	fi
else
	echo "  SKIP systemd-analyze not installed: rekey.service not verified by systemd (its keys are checked above)"
fi

# ---------------------------------------------------------------- (c), (d), (e), (f)
python3 - "$C" "$T" >"$T/static" 2>&1 <<'PY'
import glob, json, os, re, sys, yaml
cdir, tdir = sys.argv[1], sys.argv[2]
def say(ok, name, why=""):
    print("%s\t%s%s" % ("ok" if ok else "FAIL", name, "\t" + str(why) if why and not ok else ""))
METRICS = {}
for ln in open(os.path.join(tdir, "metrics.txt")):
    n, t = ln.split()
    METRICS[n] = t
ALLOWED = set(METRICS) | {n + s for n, t in METRICS.items() if t == "histogram" for s in ("_bucket", "_sum", "_count")}
ALLOWED_ALERTS = ALLOWED | {"up"}     # Prometheus's own, for RekeyDown
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan"}
def metric_names(expr):
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", e):
        if m.group(2) or m.group(1).lower() in KEYWORDS:
            continue
        names.add(m.group(1))
    return names

# ---- (c) alerts
RB = os.path.join(cdir, "runbooks")
URL = "https://github.com/rekey/rekey/blob/main/contrib/runbooks/"
want_alerts = {"RekeyRotationFailed", "RekeySecretOverdue", "RekeyProviderCircuitOpen", "RekeyNoLeader",
               "RekeyEmergencyActive", "RekeyLastSuccessfulRunTooOld", "RekeyAuditChainBroken", "RekeyBackupTooOld",
               "RekeyDown"}
rules = []
try:
    doc = yaml.safe_load(open(os.path.join(cdir, "prometheus", "rekey-alerts.yaml")))
    rules = [r for g in doc["groups"] for r in g["rules"]]
except Exception as e:
    say(False, "rekey-alerts.yaml parses", e)
alerts = {r.get("alert"): r for r in rules if r.get("alert")}
say(want_alerts <= set(alerts), "alerts: all of %s" % ", ".join(sorted(want_alerts)), "missing: %s" % sorted(want_alerts - set(alerts)))
linked = set()
for name, r in sorted(alerts.items()):
    sev = (r.get("labels") or {}).get("severity")
    url = (r.get("annotations") or {}).get("runbook_url", "")
    f = url[len(URL):] if url.startswith(URL) else None
    ok = sev in ("critical", "warning", "info") and f and re.fullmatch(r"[a-z0-9-]+\.md", f) and os.path.isfile(os.path.join(RB, f))
    say(ok, "alert %s: severity %s, runbook %s exists" % (name, sev, f or url))
    if f: linked.add(f)
    bad = metric_names(r.get("expr", "")) - ALLOWED_ALERTS
    say(not bad and metric_names(r.get("expr", "")), "alert %s: every metric in its expr is exported by rekey" % name, sorted(bad))
tests = {}
try:
    tdoc = yaml.safe_load(open(os.path.join(cdir, "prometheus", "rekey-alerts.test.yaml")))
    say(tdoc.get("rule_files") == ["rekey-alerts.yaml"], "rekey-alerts.test.yaml tests rekey-alerts.yaml")
    for t in tdoc.get("tests") or []:
        for a in t.get("alert_rule_test") or []:
            tests.setdefault(a.get("alertname"), set()).add(bool(a.get("exp_alerts")))
except Exception as e:
    say(False, "rekey-alerts.test.yaml parses", e)
for name in sorted(alerts):
    say(tests.get(name) == {True, False}, "alert %s is tested both firing and quiet" % name, tests.get(name))

# ---- (d) runbooks
want_rb = {"scheduled-rotation-failed.md", "provider-down.md", "emergency-compromise-response.md",
           "unknown-rotation-outcome.md", "restore-state-db.md", "rotating-rekeys-own-keys.md", "no-leader.md",
           "audit-chain-broken.md", "backup-too-old.md", "last-run-too-old.md", "secret-overdue.md"}
have = {os.path.basename(f) for f in glob.glob(os.path.join(RB, "*.md"))} - {"README.md"}
say(want_rb <= have, "runbooks: all %d of the kit" % len(want_rb), "missing: %s" % sorted(want_rb - have))
cmds = set(open(os.path.join(tdir, "commands.txt")).read().split())
readme = open(os.path.join(RB, "README.md")).read() if os.path.isfile(os.path.join(RB, "README.md")) else ""
say(all("(%s)" % f in readme for f in have), "runbooks/README.md links every runbook",
    sorted(f for f in have if "(%s)" % f not in readme))
CMD = re.compile(r"(?:^[ \t]*|[;&|(]\s*|--\s+|\$\s+|`)(?:/usr/local/bin/)?rekey[ \t]+"
                 r"((?:(?:-c|--output|--log-format|--log-level)[ \t]+\S+[ \t]+)*)([A-Za-z][\w-]*)", re.M)
for f in sorted(have | {"README.md"}):
    text = open(os.path.join(RB, f)).read()
    blocks = re.findall(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", text, re.S | re.M)
    say(bool(blocks) and all(b.strip() for b in blocks), "%s: fenced blocks of commands (%d)" % (f, len(blocks)))
    if f != "README.md":
        heads = [h.lower() for h in re.findall(r"^## (.+)$", text, re.M)]
        need = ["symptoms", "impact", "diagnosis", "fix", "verify"]
        say([h for h in heads if h in need] == need, "%s: sections %s" % (f, ", ".join(need)), heads)
    prose = re.sub(r"^[ \t]*```[^\n]*\n.*?^[ \t]*```", "", text, flags=re.S | re.M)
    code = blocks + re.findall(r"`([^`\n]+)`", prose)
    used = {m.group(2) for c in code for m in CMD.finditer(c) if not m.group(2).isupper()}   # COMMAND: a placeholder
    bad = used - cmds
    say(not bad, "%s: every rekey COMMAND is one (%s)" % (f, " ".join(sorted(used))), "unknown: %s" % sorted(bad))
    links = re.findall(r"\]\(([\w.-]+\.md)\)", text)
    say(all(os.path.isfile(os.path.join(RB, l)) for l in links), "%s: its links resolve" % f,
        [l for l in links if not os.path.isfile(os.path.join(RB, l))])

# ---- (f) grafana, (e) its metrics
try:
    dash = json.load(open(os.path.join(cdir, "grafana", "rekey-dashboard.json")))
except Exception as e:
    say(False, "rekey-dashboard.json parses", e); sys.exit()
say(True, "rekey-dashboard.json parses")
say(isinstance(dash.get("schemaVersion"), int) and 36 <= dash["schemaVersion"] <= 41, "dashboard: schemaVersion %s" % dash.get("schemaVersion"))
tv = {v.get("name"): v for v in (dash.get("templating") or {}).get("list") or []}
ds = tv.get("datasource") or {}
say(ds.get("type") == "datasource" and ds.get("query") == "prometheus", "dashboard: a ${datasource} Prometheus variable")
def walk(ps):
    for p in ps:
        yield p
        yield from walk(p.get("panels") or [])
panels = list(walk(dash.get("panels") or []))
ids = [p.get("id") for p in panels]
say(all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), "dashboard: %d panels, unique ids" % len(ids),
    sorted(i for i in ids if ids.count(i) > 1))
boxes, bad = [], []
for p in panels:
    g = p.get("gridPos") or {}
    if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
        bad.append(p.get("id")); continue
    for q, h in boxes:
        if g["x"] < h["x"] + h["w"] and h["x"] < g["x"] + g["w"] and g["y"] < h["y"] + h["h"] and h["y"] < g["y"] + g["h"]:
            bad.append((q, p.get("id")))
    boxes.append((p.get("id"), g))
say(not bad, "dashboard: every gridPos inside 24 columns, none overlapping", bad)
nods = [p.get("id") for p in panels if p.get("type") != "row" and (p.get("datasource") or {}).get("uid") != "${datasource}"]
say(not nods, "dashboard: every panel queries ${datasource}", nods)
exprs = [t.get("expr", "") for p in panels for t in p.get("targets") or []]
q = (tv.get("job") or {}).get("query")
q = q.get("query") if isinstance(q, dict) else q
m = re.fullmatch(r"label_values\((\w+),\s*\w+\)", q or "")
say(bool(m), "dashboard: the job variable is label_values(METRIC, job)", q)
exprs += [m.group(1)] if m else []
used = set().union(*[metric_names(e) for e in exprs]) if exprs else set()
bad = used - ALLOWED
say(exprs and not bad, "dashboard: every metric in its %d queries is exported by rekey" % len(exprs), sorted(bad))
wantp = {"rekey_secrets": "secrets by state", "rekey_secret_overdue": "overdue secrets",
         "rekey_rotations_total": "rotations by provider/result", "rekey_rotation_duration_seconds_bucket": "rotation duration",
         "rekey_provider_requests_total": "provider requests by code", "rekey_provider_request_duration_seconds_bucket": "provider latency",
         "rekey_provider_circuit_open": "circuit open", "rekey_leader": "leader", "rekey_emergency_active": "emergency active",
         "rekey_last_success_timestamp_seconds": "last success age", "rekey_last_backup_timestamp_seconds": "backup age",
         "rekey_audit_chain_ok": "audit chain", "rekey_api_unauthorized_total": "API 401", "rekey_api_rate_limited_total": "API 429"}
missing = [v for k, v in wantp.items() if k not in used]
say(not missing, "dashboard: a panel for each of %d views" % len(wantp), missing)
q95 = [e for e in exprs if "histogram_quantile(0.95" in e and "rekey_rotation_duration_seconds_bucket" in e]
q50 = [e for e in exprs if "histogram_quantile(0.5" in e and "rekey_rotation_duration_seconds_bucket" in e]
say(bool(q95 and q50), "dashboard: rotation duration p50 and p95 from the histogram")
PY
while IFS='	' read -r res name why; do
	case $res in
	ok) pass "$name" ;;
	FAIL) fail "$name${why:+: $why}" ;;
	*) fail "kit check: $res $name $why" ;;
	esac
done <"$T/static"

if [ -x "$PROMTOOL" ]; then
	expect_rc "promtool check rules rekey-alerts.yaml" 0 "$PROMTOOL" check rules "$C/prometheus/rekey-alerts.yaml"
	# promtool resolves rule_files against the test file's directory.
	expect_rc "promtool test rules rekey-alerts.test.yaml" 0 "$PROMTOOL" test rules "$C/prometheus/rekey-alerts.test.yaml"
	[ -s "$T/out" ] && grep -q FAILED "$T/out" && sed 's/^/      | /' "$T/out" | head -20
else
	echo "  SKIP promtool not installed: rekey-alerts.yaml not checked or unit-tested by promtool (.ci/run installs it: apt-get install --no-install-recommends prometheus)"
fi

finish
