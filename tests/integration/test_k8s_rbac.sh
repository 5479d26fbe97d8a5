#!/bin/sh
# contrib/kubernetes/ against what the kubernetes provider does on the API,
# without the provider:
# (a) every manifest parses (contrib/kubernetes/*.yaml but kustomization.yaml;
#     rbac.yaml and rekey-cronjob.yaml are links into common/ and cronjob/);
#     the grants to system:serviceaccount:rekey:rekey (Role/ClusterRole
#     rules through their bindings) are exactly the list below, nothing
#     wider; the optional Secret-create role is unbound; the CronJob runs
#     `rekey rotate --due` as that account, non-root, read-only root fs, no
#     privilege escalation, config from its ConfigMap (a valid
#     in_cluster provider block), state on its PVC;
# (b) those grants converted into tests/fakes/k8s_fake.py rules for one
#     token, then with curl the very requests rekey sends (Secret GET +
#     merge patch with resourceVersion, rollout-restart strategic patch and
#     GET polls for the three workload kinds, Lease GET/POST/PUT, both
#     self-reviews) must be allowed, and what rekey must not do (delete or
#     list or update Secrets, Secrets in a namespace without a RoleBinding,
#     Leases outside `rekey` or under another name, list/watch workloads)
#     must be 403 with the API server's text;
# (c) kubectl auth can-i / whoami with a kubeconfig for that token (skipped
#     when /usr/bin/kubectl, or $KUBECTL, is missing).
# The conversion keeps RBAC's meaning: a rule counts only through a binding
# whose subjects include the service account, a RoleBinding limits it to its
# namespace, a resource in the wrong API group matches nothing, and
# resourceNames become the fake's "names" (so create cannot be name-limited).
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "test_k8s_rbac: curl missing"; exit 1; }
python3 -c 'import yaml' 2>/dev/null || { echo "test_k8s_rbac: python3-yaml missing (make deps installs it)"; exit 1; }
KDIR="$SRC/contrib/kubernetes"
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
SA_USER=system:serviceaccount:rekey:rekey

# ---------------------------------------------------------------- (a) the manifests
# Prints "ok<TAB>check" / "FAIL<TAB>check<TAB>why" lines; writes the fake's
# rules for the service account to $T/rules.json (and, with the optional
# rekey-secrets-creator bound in payments, to $T/rules-create.json).
python3 - "$KDIR" "$T" >"$T/static" 2>&1 <<'PY'
import glob, json, os, sys, yaml

kdir, tdir = sys.argv[1], sys.argv[2]
SA = {"kind": "ServiceAccount", "name": "rekey", "namespace": "rekey"}
# API group of each resource rekey touches: a rule naming it in another group grants nothing.
GROUP = {"secrets": "", "deployments": "apps", "statefulsets": "apps", "daemonsets": "apps",
         "leases": "coordination.k8s.io", "selfsubjectaccessreviews": "authorization.k8s.io",
         "selfsubjectreviews": "authentication.k8s.io"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}

def say(ok, name, why=""):
    print("%s\t%s%s" % ("ok" if ok else "FAIL", name, "\t" + why if why and not ok else ""))

docs = {}
for f in sorted(glob.glob(os.path.join(kdir, "*.yaml"))):
    base = os.path.basename(f)
    try:
        with open(f) as fh:
            ds = [d for d in yaml.safe_load_all(fh) if d is not None]
    except yaml.YAMLError as e:
        say(False, "%s parses" % base, str(e).replace("\n", " "))
        continue
    # kustomization.yaml is kustomize's file, not a manifest (test_contrib.sh builds it).
    if base == "kustomization.yaml" and [d.get("kind") for d in ds if isinstance(d, dict)] == ["Kustomization"]:
        continue
    bad = [i for i, d in enumerate(ds) if not (isinstance(d, dict) and d.get("apiVersion") and d.get("kind")
           and (d.get("metadata") or {}).get("name")
           and (d["kind"] in CLUSTER_SCOPED or (d.get("metadata") or {}).get("namespace")))]
    say(bool(ds) and not bad, "%s: %d documents parse, each with apiVersion, kind, name (and namespace)" % (base, len(ds)),
        "document(s) %s incomplete" % bad)
    docs[base] = ds

rbac = docs.get("rbac.yaml", [])
cron = docs.get("rekey-cronjob.yaml", [])
say(bool(rbac), "rbac.yaml present")
say(bool(cron), "rekey-cronjob.yaml present")
every = [d for ds in docs.values() for d in ds]

def find(kind, name, ns=None):
    for d in every:
        md = d.get("metadata") or {}
        if d.get("kind") == kind and md.get("name") == name and (ns is None or md.get("namespace") == ns):
            return d
    return None

say(find("ServiceAccount", "rekey", "rekey") is not None, "ServiceAccount rekey in namespace rekey")

roles = {}
for d in every:
    if d.get("kind") in ("Role", "ClusterRole") and d.get("apiVersion") == "rbac.authorization.k8s.io/v1":
        md = d["metadata"]
        roles[(d["kind"], md.get("namespace") if d["kind"] == "Role" else None, md["name"])] = d.get("rules") or []

def grants(extra_bindings=()):
    """-> (fake rules, set of (group, resource, verb, namespace|'*', name|'*'))"""
    fake, flat = [], set()
    bindings = [d for d in every if d.get("kind") in ("RoleBinding", "ClusterRoleBinding")] + list(extra_bindings)
    for b in bindings:
        if b.get("apiVersion") != "rbac.authorization.k8s.io/v1":
            continue
        if not any(all(s.get(k) == v for k, v in SA.items()) for s in b.get("subjects") or []):
            continue
        ref = b.get("roleRef") or {}
        if ref.get("apiGroup") != "rbac.authorization.k8s.io":
            continue
        bns = b["metadata"].get("namespace") if b["kind"] == "RoleBinding" else None
        if ref.get("kind") == "Role":
            if bns is None:
                continue        # a ClusterRoleBinding cannot reference a Role
            rules = roles.get(("Role", bns, ref.get("name")))
        else:
            rules = roles.get(("ClusterRole", None, ref.get("name")))
        for r in rules or []:
            if r.get("nonResourceURLs"):
                continue
            res_out = []
            for g in r.get("apiGroups") or []:
                for res in r.get("resources") or []:
                    if res == "*":
                        res_out.append("*")
                    elif g == "*" or GROUP.get(res) == g:
                        res_out.append(res)
                    else:
                        res_out.append("%s.%s" % (res, g or "core"))    # matches nothing in the fake
                    for v in r.get("verbs") or []:
                        for n in r.get("resourceNames") or ["*"]:
                            flat.add((g, res, v, bns or "*", n))
            if res_out:
                fake.append({"verbs": list(r.get("verbs") or []), "resources": res_out,
                             "namespaces": [bns] if bns else ["*"],
                             "names": list(r.get("resourceNames") or ["*"])})
    return fake, flat

fake, flat = grants()
want = set()
for v in ("get", "patch"):
    want.add(("", "secrets", v, "payments", "*"))
    for w in ("deployments", "statefulsets", "daemonsets"):
        want.add(("apps", w, v, "payments", "*"))
for v in ("get", "update"):
    want.add(("coordination.k8s.io", "leases", v, "rekey", "rekey-leader"))
want.add(("coordination.k8s.io", "leases", "create", "rekey", "*"))
want.add(("authorization.k8s.io", "selfsubjectaccessreviews", "create", "*", "*"))
want.add(("authentication.k8s.io", "selfsubjectreviews", "create", "*", "*"))
fmt = lambda s: "; ".join("%s/%s %s ns=%s name=%s" % (g or "core", r, v, n, nm) for g, r, v, n, nm in sorted(s))
missing, extra = want - flat, flat - want
say(not missing, "the service account is granted everything rekey does", "missing: " + fmt(missing))
say(not extra, "and nothing more (least privilege)", "extra: " + fmt(extra))
wild = [r for rs in roles.values() for r in rs
        if "*" in (r.get("verbs") or []) + (r.get("resources") or []) + (r.get("apiGroups") or [])]
say(not wild, "no wildcard verbs, resources or API groups in any rule", json.dumps(wild))

creator = roles.get(("ClusterRole", None, "rekey-secrets-creator"))
say(creator == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}],
    "optional ClusterRole rekey-secrets-creator: create secrets only", json.dumps(creator))
bound = [b["metadata"]["name"] for b in every if b.get("kind") in ("RoleBinding", "ClusterRoleBinding")
         and (b.get("roleRef") or {}).get("name") == "rekey-secrets-creator"]
say(not bound, "rekey-secrets-creator is not bound by default", "bound by " + ", ".join(bound))
fake_c, _ = grants([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": {"name": "rekey-creator", "namespace": "payments"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                 "name": "rekey-secrets-creator"}, "subjects": [SA]}])
json.dump(fake, open(os.path.join(tdir, "rules.json"), "w"))
json.dump(fake_c, open(os.path.join(tdir, "rules-create.json"), "w"))

# ---- the CronJob
cj = next((d for d in cron if d.get("kind") == "CronJob"), None)
say(cj is not None and cj.get("apiVersion") == "batch/v1" and cj["metadata"].get("namespace") == "rekey",
    "CronJob (batch/v1) in namespace rekey")
if cj is None:
    sys.exit(0)
js = cj.get("spec") or {}
say(js.get("concurrencyPolicy") == "Forbid", "CronJob concurrencyPolicy: Forbid", str(js.get("concurrencyPolicy")))
pod = ((((js.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")) or {}
say(pod.get("serviceAccountName") == "rekey", "pod runs as service account rekey", str(pod.get("serviceAccountName")))
say(pod.get("automountServiceAccountToken") is not False, "the service account token is mounted (in_cluster needs it)")
psc = pod.get("securityContext") or {}
ctrs = (pod.get("initContainers") or []) + (pod.get("containers") or [])
def c_ok(c):
    sc = c.get("securityContext") or {}
    nonroot = sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True and sc.get("runAsUser", psc.get("runAsUser", 1)) != 0
    return nonroot and sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False \
        and not sc.get("privileged")
badc = [c.get("name") for c in ctrs if not c_ok(c)]
say(bool(ctrs) and not badc, "every container: non-root, read-only root fs, no privilege escalation",
    "not hardened: " + ", ".join(map(str, badc)))
main = pod.get("containers") or [{}]
argv = (main[0].get("command") or []) + (main[0].get("args") or [])
say(len(main) == 1 and "rotate" in argv and "--due" in argv, "the container runs rekey rotate --due", json.dumps(argv))

vols = {v.get("name"): v for v in pod.get("volumes") or []}
mounts = {m.get("name"): m.get("mountPath") for m in main[0].get("volumeMounts") or []}
cmv = next((v for v in vols.values() if "configMap" in v), None)
cm = find("ConfigMap", (cmv or {}).get("configMap", {}).get("name"), "rekey")
env = {e.get("name"): e.get("value") for e in main[0].get("env") or []}
cfg_path = env.get("REKEY_CONFIG") or (argv[argv.index("-c") + 1] if "-c" in argv else "/etc/rekey/rekey.yaml")
cm_mount = mounts.get((cmv or {}).get("name"))
say(cm is not None and cm_mount is not None and os.path.dirname(cfg_path) == cm_mount
    and os.path.basename(cfg_path) in (cm.get("data") or {}),
    "rekey.yaml comes from the ConfigMap in the file (%s)" % cfg_path)
conf = {}
try:
    conf = yaml.safe_load((cm.get("data") or {}).get(os.path.basename(cfg_path), "")) or {} if cm else {}
except yaml.YAMLError as e:
    say(False, "the ConfigMap's rekey.yaml parses", str(e).replace("\n", " "))
provs = [p for p in (conf.get("providers") or {}).values() if isinstance(p, dict) and p.get("type") == "kubernetes"]
KEYS = {"type", "in_cluster", "kubeconfig", "context", "namespace", "allow_insecure_tls", "rollouts",
        "rollout_poll", "timeout", "retry", "circuit_breaker", "rate_limit", "concurrency", "insecure_http"}
say(len(provs) == 1 and provs[0].get("in_cluster") is True and not (set(provs[0]) - KEYS)
    and not ({"kubeconfig", "context", "allow_insecure_tls"} & set(provs[0])),
    "its kubernetes provider is in_cluster: true with known keys only", json.dumps(provs))
pvv = next((v for v in vols.values() if "persistentVolumeClaim" in v), None)
pvc = find("PersistentVolumeClaim", (pvv or {}).get("persistentVolumeClaim", {}).get("claimName"), "rekey")
pv_mount = mounts.get((pvv or {}).get("name"))
sd = str(conf.get("state_dir", ""))
say(pvc is not None and pv_mount is not None and sd.startswith(pv_mount.rstrip("/") + "/"),
    "state_dir %s is a directory on the PVC in the file (not its root)" % sd)
inv = next((i for i in (cm.get("data") or {}) if i.startswith("inventory")), None) if cm else None
try:
    secrets = (yaml.safe_load(cm["data"][inv]) or {}).get("secrets") if inv else None
except yaml.YAMLError:
    secrets = None
say(bool(secrets) and all((s.get("locator") or {}).get("namespace") in ("payments", None) for s in secrets),
    "the example inventory parses and stays in payments (where the RoleBinding is)")
PY
while IFS='	' read -r res name why; do
	case $res in
	ok) pass "$name" ;;
	FAIL) fail "$name${why:+: $why}" ;;
	*) fail "manifest check: $res $name $why" ;;
	esac
done <"$T/static"
[ -s "$T/rules.json" ] || { echo "test_k8s_rbac: no rules derived"; finish; exit 1; }

# ---------------------------------------------------------------- (b) the fake API server
start_k8s_fake
API=$K
CA="$T/k8s/ca.crt"

admin() { curl -sS --cacert "$CA" -X "$1" "$API/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
# Two tokens: the service account with exactly the manifest's grants, and the
# same with the optional rekey-secrets-creator bound in payments.
admin POST config "{\"tokens\": [
  {\"token\": \"sa-token\", \"user\": \"$SA_USER\", \"rules\": $(cat "$T/rules.json")},
  {\"token\": \"sa-create\", \"user\": \"$SA_USER\", \"rules\": $(cat "$T/rules-create.json")}]}" >"$T/cfg.out" ||
	{ echo "test_k8s_rbac: config refused"; cat "$T/cfg.out"; exit 1; }
tpl='"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "x", "image": "x"}]}}'
admin POST seed "{\"objects\": [
  {\"kind\": \"Secret\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"db\", \"namespace\": \"payments\", \"labels\": {\"app\": \"payments\"}},
   \"data\": {\"password\": \"b2xk\", \"username\": \"YXBw\"}},
  {\"kind\": \"Secret\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"db\", \"namespace\": \"billing\"}, \"data\": {\"password\": \"b2xk\"}},
  {\"kind\": \"Deployment\", \"apiVersion\": \"apps/v1\", \"metadata\": {\"name\": \"api\", \"namespace\": \"payments\"},
   \"spec\": {\"replicas\": 2, \"selector\": {\"matchLabels\": {\"app\": \"x\"}}, $tpl}},
  {\"kind\": \"StatefulSet\", \"apiVersion\": \"apps/v1\", \"metadata\": {\"name\": \"ledger\", \"namespace\": \"payments\"},
   \"spec\": {\"replicas\": 1, \"serviceName\": \"ledger\", \"selector\": {\"matchLabels\": {\"app\": \"x\"}}, $tpl}},
  {\"kind\": \"DaemonSet\", \"apiVersion\": \"apps/v1\", \"metadata\": {\"name\": \"agent\", \"namespace\": \"payments\"},
   \"spec\": {\"selector\": {\"matchLabels\": {\"app\": \"x\"}}, $tpl}},
  {\"kind\": \"Lease\", \"apiVersion\": \"coordination.k8s.io/v1\", \"metadata\": {\"name\": \"rekey-leader\", \"namespace\": \"default\"},
   \"spec\": {\"holderIdentity\": \"someone\", \"leaseDurationSeconds\": 15}}]}" >"$T/seed.out" ||
	{ echo "test_k8s_rbac: seed refused"; cat "$T/seed.out"; exit 1; }
admin POST config '{"rollout_seconds": 0.3}' >/dev/null

TOKEN=sa-token
# call METHOD PATH [CONTENT-TYPE BODY]: the status in $code, the body in $T/body
call() {
	if [ $# -ge 4 ]; then
		code=$(curl -sS --max-time 20 --cacert "$CA" -o "$T/body" -w '%{http_code}' -X "$1" \
			-H "Authorization: Bearer $TOKEN" -H 'Accept: application/json' \
			-H "Content-Type: $3" --data-binary "$4" "$API$2" 2>"$T/curl.err")
	else
		code=$(curl -sS --max-time 20 --cacert "$CA" -o "$T/body" -w '%{http_code}' -X "$1" \
			-H "Authorization: Bearer $TOKEN" -H 'Accept: application/json' "$API$2" 2>"$T/curl.err")
	fi
}
jf() { python3 -c 'import json,sys
try: d=json.load(open(sys.argv[1]))
except Exception: print("<not json>"); sys.exit()
v=eval(sys.argv[2]); print(v if isinstance(v, str) else json.dumps(v))' "$T/body" "$1" 2>/dev/null; }
# allow NAME WANT METHOD PATH [CT BODY]: answered WANT (a status that is not 401/403)
allow() {
	name=$1; want=$2; shift 2
	call "$@"
	if [ "$code" = "$want" ]; then pass "$name"; else
		fail "$name (HTTP $code, wanted $want: $(jf 'd.get("message")'))"
	fi
}
# deny NAME MESSAGE METHOD PATH [CT BODY]: 403 Forbidden with exactly MESSAGE
deny() {
	name=$1; msg=$2; shift 2
	call "$@"
	got="$code $(jf 'd.get("reason")') $(jf 'd.get("message")')"
	if [ "$got" = "403 Forbidden $msg" ]; then pass "$name"; else
		fail "$name"; echo "      | got:    $got"; echo "      | wanted: 403 Forbidden $msg"
	fi
}
who="User \"$SA_USER\""
S=/api/v1/namespaces/payments/secrets
L=/apis/coordination.k8s.io/v1/namespaces/rekey/leases
MP=application/merge-patch+json
SMP=application/strategic-merge-patch+json
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run=r20261203T140000Z-0badc0de

# A rotation: read the Secret, merge patch one key + annotations under the version read.
allow "GET the Secret payments/db" 200 GET $S/db
rv=$(jf 'd["metadata"]["resourceVersion"]')
allow "PATCH it (merge patch, resourceVersion precondition, rekey.io annotations)" 200 \
	PATCH "$S/db?fieldManager=rekey" $MP \
	"{\"metadata\": {\"resourceVersion\": \"$rv\", \"annotations\": {\"rekey.io/rotated-at\": \"$now\", \"rekey.io/run\": \"$run\"}}, \"data\": {\"password\": \"bmV3\"}}"
check "the patch kept the other key and the labels" \
	[ "$(jf '[d["data"]["username"], d["metadata"]["labels"]["app"], d["metadata"]["annotations"]["rekey.io/run"]]')" = "[\"YXBw\", \"payments\", \"$run\"]" ]
allow "a stale resourceVersion is a 409 Conflict (authorized, refused by the precondition)" 409 \
	PATCH "$S/db?fieldManager=rekey" $MP "{\"metadata\": {\"resourceVersion\": \"$rv\"}, \"data\": {\"password\": \"eA==\"}}"
allow "dry-run patch for rekey plan" 200 PATCH "$S/db?dryRun=All&fieldManager=rekey" $MP '{"data": {"password": "eA=="}}'

# Restarts: GET, the kubectl rollout restart patch, GET polls.
for w in deployments/api statefulsets/ledger daemonsets/agent; do
	P=/apis/apps/v1/namespaces/payments/$w
	allow "GET $w" 200 GET $P
	allow "PATCH $w (rollout restart, strategic merge patch)" 200 PATCH "$P?fieldManager=rekey" $SMP \
		"{\"spec\": {\"template\": {\"metadata\": {\"annotations\": {\"kubectl.kubernetes.io/restartedAt\": \"$now\"}}}}}"
	allow "GET $w while waiting for the rollout" 200 GET $P
done

# Leader election in the rekey namespace (client-go's LeaseLock sequence).
allow "GET the Lease rekey/rekey-leader (404 = authorized, not there yet)" 404 GET $L/rekey-leader
check "that 404 is NotFound, not a masked denial" [ "$(jf 'd["reason"]')" = NotFound ]
mt=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
allow "POST the Lease (create)" 201 POST "$L?fieldManager=rekey" application/json \
	"{\"apiVersion\": \"coordination.k8s.io/v1\", \"kind\": \"Lease\", \"metadata\": {\"name\": \"rekey-leader\", \"namespace\": \"rekey\"},
	  \"spec\": {\"holderIdentity\": \"rekey-0_$run\", \"leaseDurationSeconds\": 15, \"acquireTime\": \"$mt\", \"renewTime\": \"$mt\", \"leaseTransitions\": 0}}"
allow "GET the Lease" 200 GET $L/rekey-leader
lrv=$(jf 'd["metadata"]["resourceVersion"]')
allow "PUT the Lease (renew, with resourceVersion)" 200 PUT "$L/rekey-leader?fieldManager=rekey" application/json \
	"{\"apiVersion\": \"coordination.k8s.io/v1\", \"kind\": \"Lease\", \"metadata\": {\"name\": \"rekey-leader\", \"namespace\": \"rekey\", \"resourceVersion\": \"$lrv\"},
	  \"spec\": {\"holderIdentity\": \"rekey-0_$run\", \"leaseDurationSeconds\": 15, \"acquireTime\": \"$mt\", \"renewTime\": \"$mt\", \"leaseTransitions\": 0}}"
lrv=$(jf 'd["metadata"]["resourceVersion"]')
allow "PUT the Lease (release: empty holder)" 200 PUT "$L/rekey-leader?fieldManager=rekey" application/json \
	"{\"apiVersion\": \"coordination.k8s.io/v1\", \"kind\": \"Lease\", \"metadata\": {\"name\": \"rekey-leader\", \"namespace\": \"rekey\", \"resourceVersion\": \"$lrv\"},
	  \"spec\": {\"holderIdentity\": \"\", \"leaseDurationSeconds\": 1, \"acquireTime\": \"$mt\", \"renewTime\": \"$mt\", \"leaseTransitions\": 0}}"

# rekey doctor. The fake answers both reviews for everyone (as system:basic-user
# does on a real cluster), so what the manifest grants is asked with a review.
allow "POST selfsubjectreviews (who am I)" 201 POST /apis/authentication.k8s.io/v1/selfsubjectreviews application/json \
	'{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}'
check "it names the service account" [ "$(jf 'd["status"]["userInfo"]["username"]')" = "$SA_USER" ]
ssar() { # ssar NAME WANT GROUP RESOURCE VERB [NS [NAME]]: POST answered 201 with status.allowed WANT
	call POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews application/json \
		"{\"apiVersion\": \"authorization.k8s.io/v1\", \"kind\": \"SelfSubjectAccessReview\", \"spec\": {\"resourceAttributes\":
		  {\"group\": \"$3\", \"resource\": \"$4\", \"verb\": \"$5\", \"namespace\": \"${6:-}\", \"name\": \"${7:-}\"}}}"
	got="$code $(jf 'd["status"]["allowed"]')"
	if [ "$got" = "201 $2" ]; then pass "$1"; else fail "$1 (got $got, wanted 201 $2)"; fi
}
ssar "SSAR: may create selfsubjectaccessreviews" true authorization.k8s.io selfsubjectaccessreviews create
ssar "SSAR: may create selfsubjectreviews" true authentication.k8s.io selfsubjectreviews create
ssar "SSAR: may patch secrets/db in payments" true "" secrets patch payments db
ssar "SSAR: may not get secrets in billing" false "" secrets get billing db

# What rekey must not be able to do.
deny "DELETE a Secret" \
	"secrets \"db\" is forbidden: $who cannot delete resource \"secrets\" in API group \"\" in the namespace \"payments\"" \
	DELETE $S/db
deny "LIST Secrets in payments" \
	"secrets is forbidden: $who cannot list resource \"secrets\" in API group \"\" in the namespace \"payments\"" \
	GET $S
deny "WATCH Secrets in payments" \
	"secrets is forbidden: $who cannot watch resource \"secrets\" in API group \"\" in the namespace \"payments\"" \
	GET "$S?watch=true"
deny "PUT (update) a Secret: rekey patches" \
	"secrets \"db\" is forbidden: $who cannot update resource \"secrets\" in API group \"\" in the namespace \"payments\"" \
	PUT $S/db application/json '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "payments"}, "data": {"password": "eA=="}}'
deny "create a Secret without the optional role" \
	"secrets is forbidden: $who cannot create resource \"secrets\" in API group \"\" in the namespace \"payments\"" \
	POST $S application/json '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "new"}, "data": {"password": "eA=="}}'
deny "GET a Secret in a namespace without a RoleBinding" \
	"secrets \"db\" is forbidden: $who cannot get resource \"secrets\" in API group \"\" in the namespace \"billing\"" \
	GET /api/v1/namespaces/billing/secrets/db
deny "PATCH a Secret in a namespace without a RoleBinding" \
	"secrets \"db\" is forbidden: $who cannot patch resource \"secrets\" in API group \"\" in the namespace \"billing\"" \
	PATCH /api/v1/namespaces/billing/secrets/db $MP '{"data": {"password": "eA=="}}'
deny "LIST Deployments in payments (rekey polls by name)" \
	"deployments.apps is forbidden: $who cannot list resource \"deployments\" in API group \"apps\" in the namespace \"payments\"" \
	GET /apis/apps/v1/namespaces/payments/deployments
deny "DELETE a Deployment" \
	"deployments.apps \"api\" is forbidden: $who cannot delete resource \"deployments\" in API group \"apps\" in the namespace \"payments\"" \
	DELETE /apis/apps/v1/namespaces/payments/deployments/api
deny "PATCH a Lease in another namespace" \
	"leases.coordination.k8s.io \"rekey-leader\" is forbidden: $who cannot patch resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"default\"" \
	PATCH /apis/coordination.k8s.io/v1/namespaces/default/leases/rekey-leader $MP '{"spec": {"holderIdentity": "rekey"}}'
deny "PUT a Lease in another namespace" \
	"leases.coordination.k8s.io \"rekey-leader\" is forbidden: $who cannot update resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"default\"" \
	PUT /apis/coordination.k8s.io/v1/namespaces/default/leases/rekey-leader application/json \
	'{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "rekey-leader", "namespace": "default", "resourceVersion": "1"}, "spec": {}}'
deny "PATCH the rekey Lease (rekey PUTs)" \
	"leases.coordination.k8s.io \"rekey-leader\" is forbidden: $who cannot patch resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"rekey\"" \
	PATCH $L/rekey-leader $MP '{"spec": {"holderIdentity": "x"}}'
deny "PUT a Lease of another name in rekey (resourceNames)" \
	"leases.coordination.k8s.io \"other\" is forbidden: $who cannot update resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"rekey\"" \
	PUT $L/other application/json '{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "other", "namespace": "rekey", "resourceVersion": "1"}, "spec": {}}'

# The optional role does what its comment says once bound in payments.
TOKEN=sa-create
allow "with rekey-secrets-creator bound in payments: create a Secret there" 201 POST "$S?fieldManager=rekey" application/json \
	'{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "created"}, "data": {"password": "eA=="}}'
deny "... but still not in billing" \
	"secrets is forbidden: $who cannot create resource \"secrets\" in API group \"\" in the namespace \"billing\"" \
	POST /api/v1/namespaces/billing/secrets application/json '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "created"}}'
TOKEN=sa-token

# ---------------------------------------------------------------- (c) kubectl
if [ -x "$KUBECTL" ]; then
	cat >"$T/kubeconfig" <<EOK
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "$API", certificate-authority: "$CA"}
users:
- name: rekey
  user: {token: sa-token}
contexts:
- name: fake
  context: {cluster: fake, user: rekey}
current-context: fake
EOK
	mkdir -p "$T/home"
	K() { HOME="$T/home" "$KUBECTL" --kubeconfig "$T/kubeconfig" --request-timeout=20s "$@"; }
	can() { # can yes|no ARGS...: kubectl auth can-i ARGS says so (exit 0 / 1)
		want=$1; shift
		out=$(K auth can-i "$@" 2>"$T/kerr")
		rc=$?
		case "$want $rc $out" in
		"yes 0 yes" | "no 1 no") pass "kubectl auth can-i $*: $want" ;;
		*) fail "kubectl auth can-i $* (exit $rc: $out $(cat "$T/kerr")), wanted $want" ;;
		esac
	}
	can yes get secrets/db -n payments
	can yes patch secrets/db -n payments
	can yes patch deployments.apps/api -n payments
	can yes get statefulsets.apps/ledger -n payments
	can yes patch daemonsets.apps/agent -n payments
	can yes update leases.coordination.k8s.io/rekey-leader -n rekey
	can yes create leases.coordination.k8s.io -n rekey
	can yes create selfsubjectaccessreviews.authorization.k8s.io -A
	can yes create selfsubjectreviews.authentication.k8s.io -A
	can no delete secrets/db -n payments
	can no list secrets -n payments
	can no get secrets/db -n billing
	can no patch leases.coordination.k8s.io/rekey-leader -n default
	can no watch deployments.apps -n payments
	out=$(K auth whoami -o jsonpath='{.status.userInfo.username}' 2>&1)
	check "kubectl auth whoami: $SA_USER" [ "$out" = "$SA_USER" ]
	out=$(K delete secret db -n payments 2>&1)
	check "kubectl delete secret: the Forbidden text" [ "$out" = "Error from server (Forbidden): secrets \"db\" is forbidden: $who cannot delete resource \"secrets\" in API group \"\" in the namespace \"payments\"" ]
else
	echo "  skip kubectl checks: $KUBECTL not found"
fi

finish
