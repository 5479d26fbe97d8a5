#!/usr/bin/env bash
# Self-test of tests/fakes/k8s_fake.py.
#
# (a) curl against the fake over TLS: Status bodies, secrets (CAS, the three
#     patch types, base64 validation), workloads and the rollout simulation,
#     leases, access reviews, auth, and every admin knob (injections, APF
#     quota, request log redaction, state/seed/reset, SIGTERM, --state-file);
# (b) the real kubectl (/usr/bin/kubectl, or $KUBECTL) with the kubeconfig the
#     fake writes: secrets, workloads, rollout restart/status, leases, auth
#     can-i/whoami, token and client-certificate users, a wrong token.
#
# Prints PASS/FAIL per check and a closing "k8s_fake: N passed, N failed".
# Exit 0: all passed; 1: a check failed; 77: (a) passed but kubectl is missing
# so (b) was skipped.
#
# Env: PYTHON (default /usr/bin/python3, else python3), KUBECTL (default /usr/bin/kubectl).

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FAKE="$HERE/k8s_fake.py"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; elif [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
KUBECTL="${KUBECTL:-/usr/bin/kubectl}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/k8s_fake_check.XXXXXX")"
fake_pid=""
# shellcheck disable=SC2317  # invoked through the EXIT trap
cleanup() {
    if [ -n "$fake_pid" ] && kill -0 "$fake_pid" 2>/dev/null; then
        kill -TERM "$fake_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$fake_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$fake_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

pass=0
fail=0
check() { # name expected actual
    if [ "$2" = "$3" ]; then
        echo "PASS $1"
        pass=$((pass + 1))
    else
        echo "FAIL $1: expected [$2] got [$3]"
        fail=$((fail + 1))
    fi
}
check_true() { # name command...
    local name="$1"; shift
    if "$@"; then echo "PASS $name"; pass=$((pass + 1)); else echo "FAIL $name"; fail=$((fail + 1)); fi
}

CERTS="$tmp/certs"
start_fake() {
    rm -f "$tmp/port"
    "$PY" "$FAKE" --port 0 --port-file "$tmp/port" --cert-dir "$CERTS" "$@" 2>"$tmp/fake.stderr" &
    fake_pid=$!
    for _ in $(seq 100); do
        [ -s "$tmp/port" ] && break
        kill -0 "$fake_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -s "$tmp/port" ]; then
        echo "FAIL fake did not start"; cat "$tmp/fake.stderr"; exit 1
    fi
    PORT="$(tr -d '\n' <"$tmp/port")"
    BASE="https://127.0.0.1:$PORT"
}
stop_fake() {
    kill -TERM "$fake_pid" 2>/dev/null
    wait "$fake_pid" 2>/dev/null
    fake_pid=""
}

# req METHOD PATH [curl args...]: sets STATUS, RC; body in $tmp/body, headers in $tmp/hdr.
TOKEN=rekey-token
req() {
    local method="$1" path="$2"; shift 2
    local tokargs=()
    [ -n "$TOKEN" ] && tokargs=(-H "Authorization: Bearer $TOKEN")
    STATUS="$(curl -sS --max-time 20 --cacert "$CERTS/ca.crt" -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' \
        -X "$method" "${tokargs[@]}" "$@" "$BASE$path" 2>"$tmp/curl.err")"
    RC=$?
}
jreq() { # METHOD PATH JSON [content-type]
    req "$1" "$2" -H "Content-Type: ${4:-application/json}" --data-binary "$3"
}
body() { "$PY" -c 'import sys; sys.stdout.write(open(sys.argv[1],"rb").read().decode().rstrip("\n"))' "$tmp/body"; }
j() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(eval(sys.argv[2]), sort_keys=True))' "$tmp/body" "$1" 2>/dev/null || echo "<no-json>"; }
hdr() { grep -i "^$1:" "$tmp/hdr" | head -1 | cut -d: -f2- | tr -d ' \r'; }
admin() { # METHOD PATH [JSON]
    curl -sS --max-time 10 --cacert "$CERTS/ca.crt" -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} \
        "$BASE$2" >"$tmp/admin" 2>&1
}
adminj() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/admin" "$1"; }
b64() { printf '%s' "$1" | base64 -w0; }
S=/api/v1/namespaces/payments/secrets
D=/apis/apps/v1/namespaces/payments/deployments
L=/apis/coordination.k8s.io/v1/namespaces/rekey/leases

t_start=$(date +%s)
start_fake
echo "# fake at $BASE"

# ---------------------------------------------------------------- TLS, files, auth
check "cert dir has ca.crt, client.crt, client.key, kubeconfig" "yes" \
    "$([ -s "$CERTS/ca.crt" ] && [ -s "$CERTS/client.crt" ] && [ -s "$CERTS/client.key" ] && [ -s "$CERTS/kubeconfig" ] && echo yes)"
check "server certificate verifies against ca.crt for IP 127.0.0.1" "0" \
    "$(openssl verify -CAfile "$CERTS/ca.crt" -verify_ip 127.0.0.1 "$CERTS/server.crt" >/dev/null 2>&1; echo $?)"
check "client certificate is signed by the client CA, not the server CA" "0 2" \
    "$(openssl verify -CAfile "$CERTS/client-ca.crt" "$CERTS/client.crt" >/dev/null 2>&1; echo $?) $(openssl verify -CAfile "$CERTS/ca.crt" "$CERTS/client.crt" >/dev/null 2>&1; echo $?)"
check "kubeconfig points at this port with the CA" "2" \
    "$(grep -cE "server: https://127.0.0.1:$PORT\$|certificate-authority: $CERTS/ca.crt\$" "$CERTS/kubeconfig")"
STATUS="$(curl -s -o /dev/null -w '%{http_code}' "$BASE/version" 2>/dev/null)"
check "untrusted TLS refused by curl without the CA" "000" "$STATUS"
TOKEN=; req GET /api/v1/namespaces/payments/secrets
check "no credentials → 401 Status" '401 {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}' "$STATUS $(body)"
TOKEN=wrong; req GET /version
check "unknown token → 401 Unauthorized" '401 "Unauthorized"' "$STATUS $(j 'd["reason"]')"
TOKEN=rekey-token
req GET /version
check "/version with the default token" "200 1 32" "$STATUS $(j 'd["major"]' | tr -d '"') $(j 'd["minor"]' | tr -d '"')"
req GET /version --cert "$CERTS/client.crt" --key "$CERTS/client.key" -H "Authorization:"
check "client certificate alone authenticates" "200" "$STATUS"
TOKEN=; req POST /apis/authentication.k8s.io/v1/selfsubjectreviews --cert "$CERTS/client.crt" --key "$CERTS/client.key" -H 'Content-Type: application/json' -d '{}'
check "selfsubjectreview for the cert user: CN and O" '201 "rekey-client" ["rekey-testers", "system:authenticated"]' "$STATUS $(j 'd["status"]["userInfo"]["username"]') $(j 'd["status"]["userInfo"]["groups"]')"
TOKEN=rekey-token
jreq POST /apis/authentication.k8s.io/v1/selfsubjectreviews '{}'
check "selfsubjectreview for the token user" '"system:serviceaccount:rekey:rekey"' "$(j 'd["status"]["userInfo"]["username"]')"

# ---------------------------------------------------------------- discovery
req GET /api
check "/api lists v1" '["v1"]' "$(j 'd["versions"]')"
req GET /apis -H 'Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json'
check "/apis answers the legacy APIGroupList as application/json" "APIGroupList application/json" \
    "$(j 'd["kind"]' | tr -d '"') $(hdr Content-Type)"
check "/apis has apps, coordination, authorization, authentication" '["apps", "authentication.k8s.io", "authorization.k8s.io", "coordination.k8s.io"]' \
    "$(j 'sorted(g["name"] for g in d["groups"])')"
req GET /apis/apps/v1
check "apps/v1 resources with short names" '[["daemonsets", ["ds"]], ["deployments", ["deploy"]], ["statefulsets", ["sts"]]]' \
    "$(j '[[r["name"], r.get("shortNames")] for r in d["resources"] if "/" not in r["name"]]')"
req GET /apis/coordination.k8s.io/v1
check "coordination.k8s.io/v1 has leases" '["leases"]' "$(j '[r["name"] for r in d["resources"]]')"
req GET /apis/authorization.k8s.io/v1
check "authorization.k8s.io/v1 has selfsubjectaccessreviews" '["selfsubjectaccessreviews"]' "$(j '[r["name"] for r in d["resources"]]')"
req GET /openapi/v3
check "/openapi/v3 lists the group versions" "true" "$(j '"api/v1" in d["paths"] and "apis/apps/v1" in d["paths"]')"
req GET "$(j 'd["paths"]["api/v1"]["serverRelativeURL"]' | tr -d '"')"
check "/openapi/v3/api/v1 has the secret patch operation" '"patch"' \
    "$(j 'd["paths"]["/api/v1/namespaces/{namespace}/secrets/{name}"]["patch"]["x-kubernetes-action"]')"
req GET /openapi/v2
check "/openapi/v2 → 404 (kubectl falls back to its built-in types)" 404 "$STATUS"
req GET /api/v1/namespaces/payments/configmaps
check "unknown resource → 404 Status" '404 "the server could not find the requested resource" "NotFound"' "$STATUS $(j 'd["message"]') $(j 'd["reason"]')"
req GET /api/v1/namespaces/payments/secrets -H 'Accept: application/vnd.kubernetes.protobuf, */*'
check "protobuf Accept is answered with JSON" "200 application/json" "$STATUS $(hdr Content-Type)"

# ---------------------------------------------------------------- secrets
jreq POST $S "{\"metadata\":{\"name\":\"db\",\"labels\":{\"app\":\"pay\"}},\"data\":{\"password\":\"$(b64 s3cr3t)\",\"username\":\"$(b64 app)\"}}"
check "create secret → 201" "201 Secret" "$STATUS $(j 'd["kind"]' | tr -d '"')"
RV1="$(j 'd["metadata"]["resourceVersion"]' | tr -d '"')"
check "resourceVersion is a numeric string, uid and creationTimestamp set, type Opaque" "true true true Opaque" \
    "$(j 'd["metadata"]["resourceVersion"].isdigit()') $(j 'len(d["metadata"]["uid"])==36') $(j 'd["metadata"]["creationTimestamp"].endswith("Z")') $(j 'd["type"]' | tr -d '"')"
jreq POST $S '{"metadata":{"name":"db"},"data":{}}'
check "create existing → 409 AlreadyExists" '409 "AlreadyExists" "secrets \"db\" already exists"' "$STATUS $(j 'd["reason"]') $(j 'd["message"]')"
req GET $S/db
check "get secret" "200 $(b64 s3cr3t)" "$STATUS $(j 'd["data"]["password"]' | tr -d '"')"
req GET $S/nope
check "missing secret → 404 with details" '404 {"code": 404, "details": {"kind": "secrets", "name": "nope"}, "message": "secrets \"nope\" not found", "reason": "NotFound"}' \
    "$STATUS $(j '{k: d[k] for k in ("code","details","message","reason")}')"
jreq POST $S '{"metadata":{"name":"other","labels":{"app":"x"}},"stringData":{"k":"v"}}'
check "stringData merged into data, not returned" '{"k": "dg=="} false' "$(j 'd["data"]') $(j '"stringData" in d')"
req GET "$S?labelSelector=app%3Dpay"
check "list with labelSelector" '"SecretList" ["db"]' "$(j 'd["kind"]') $(j '[i["metadata"]["name"] for i in d["items"]]')"
check "list metadata.resourceVersion" "true" "$(j 'int(d["metadata"]["resourceVersion"]) >= '"$RV1")"
req GET /api/v1/secrets
check "list across namespaces" '["db", "other"]' "$(j 'sorted(i["metadata"]["name"] for i in d["items"])')"
# PUT with a stale resourceVersion
jreq PUT $S/db "{\"metadata\":{\"name\":\"db\",\"resourceVersion\":\"1\"},\"data\":{\"password\":\"$(b64 x)\"}}"
check "PUT with stale resourceVersion → exact 409 Conflict" '409 {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on secrets \"db\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"db","kind":"secrets"},"code":409}' "$STATUS $(body)"
jreq PUT $S/db "{\"metadata\":{\"name\":\"db\",\"resourceVersion\":\"$RV1\"},\"data\":{\"password\":\"$(b64 new)\",\"username\":\"$(b64 app)\"}}"
RV2="$(j 'd["metadata"]["resourceVersion"]' | tr -d '"')"
check "PUT with current resourceVersion → 200, new resourceVersion" "200 True" "$STATUS $( [ "$RV2" -gt "$RV1" ] && echo True)"
jreq PUT $S/db "{\"metadata\":{\"name\":\"db\"},\"data\":{\"password\":\"$(b64 lastwins)\"}}"
check "PUT without resourceVersion overwrites (unconditional update)" "200 $(b64 lastwins) false" "$STATUS $(j 'd["data"]["password"]' | tr -d '"') $(j '"username" in d.get("data",{})')"
RV3="$(j 'd["metadata"]["resourceVersion"]' | tr -d '"')"
# patches
jreq PATCH $S/db "{\"metadata\":{\"resourceVersion\":\"$RV1\"},\"data\":{\"password\":\"$(b64 p)\"}}" application/merge-patch+json
check "merge patch with stale resourceVersion → 409 Conflict" "409 Conflict" "$STATUS $(j 'd["reason"]' | tr -d '"')"
jreq PATCH $S/db "{\"metadata\":{\"resourceVersion\":\"$RV3\"},\"data\":{\"username\":\"$(b64 u2)\"}}" application/merge-patch+json
check "merge patch with current resourceVersion keeps other keys" "200 $(b64 lastwins) $(b64 u2)" "$STATUS $(j 'd["data"]["password"]' | tr -d '"') $(j 'd["data"]["username"]' | tr -d '"')"
jreq PATCH $S/db '{"data":{"username":null}}' application/merge-patch+json
check "merge patch null deletes a key" "200 false" "$STATUS $(j '"username" in d["data"]')"
jreq PATCH $S/db "{\"data\":{\"extra\":\"$(b64 e)\"},\"metadata\":{\"annotations\":{\"rekey.io/fp\":\"abc\"}}}" application/strategic-merge-patch+json
check "strategic merge patch merges maps" '200 ["extra", "password"] "abc"' "$STATUS $(j 'sorted(d["data"])') $(j 'd["metadata"]["annotations"]["rekey.io/fp"]')"
RV4="$(j 'd["metadata"]["resourceVersion"]' | tr -d '"')"
jreq PATCH $S/db "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"$RV1\"},{\"op\":\"replace\",\"path\":\"/data/password\",\"value\":\"$(b64 jp)\"}]" application/json-patch+json
check "json patch failed test → 422 Invalid" "422 Invalid" "$STATUS $(j 'd["reason"]' | tr -d '"')"
jreq PATCH $S/db "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"$RV4\"},{\"op\":\"replace\",\"path\":\"/data/password\",\"value\":\"$(b64 jp)\"},{\"op\":\"remove\",\"path\":\"/data/extra\"}]" application/json-patch+json
check "json patch test+replace+remove" "200 $(b64 jp) false" "$STATUS $(j 'd["data"]["password"]' | tr -d '"') $(j '"extra" in d["data"]')"
jreq PATCH $S/db '[{"op":"remove","path":"/data/nope"}]' application/json-patch+json
check "json patch remove of a missing key → 422" "422" "$STATUS"
jreq PATCH $S/db '{"data":{}}' text/plain
check "unknown patch type → 415 UnsupportedMediaType" "415 UnsupportedMediaType" "$STATUS $(j 'd["reason"]' | tr -d '"')"
jreq PATCH $S/nope '{"data":{}}' application/merge-patch+json
check "patch of a missing secret → 404" "404" "$STATUS"
jreq PATCH $S/db '{"data":{"bad":"not base64!"}}' application/merge-patch+json
check "patch with invalid base64 → 422 Invalid with a data[bad] cause" '422 "Invalid" "data[bad]"' "$STATUS $(j 'd["reason"]') $(j 'd["details"]["causes"][0]["field"]')"
jreq POST $S '{"metadata":{"name":"b64"},"data":{"k":"@@@"}}'
check "create with invalid base64 → 400 BadRequest (decode error, as the API server)" '400 "BadRequest" "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0"' \
    "$STATUS $(j 'd["reason"]') $(j 'd["message"]')"
admin POST /__fake/config '{"base64_error":"invalid"}'
jreq POST $S '{"metadata":{"name":"b64"},"data":{"k":"@@@"}}'
check "base64_error=invalid: create → 422" "422 Invalid" "$STATUS $(j 'd["reason"]' | tr -d '"')"
admin POST /__fake/config '{"base64_error":"auto"}'
jreq POST $S '{"metadata":{"name":"badkey"},"stringData":{"a b":"x"}}'
check "invalid data key → 422" '422 "Secret \"badkey\" is invalid"' "$STATUS $(j 'd["message"].split(":")[0]')"
jreq POST "$S?dryRun=All" '{"metadata":{"name":"dry"},"stringData":{"a":"b"}}'
check "dryRun=All answers 201 without storing" "201" "$STATUS"
req GET $S/dry
check "dryRun object not stored" "404" "$STATUS"
req DELETE $S/other
check "delete → 200 Status Success with uid" '200 "Success" "other" true' "$STATUS $(j 'd["status"]') $(j 'd["details"]["name"]') $(j 'len(d["details"]["uid"])==36')"
req GET $S/other
check "deleted secret is gone" "404" "$STATUS"
req DELETE $S/other
check "delete missing → 404" "404" "$STATUS"

# ---------------------------------------------------------------- RBAC-ish rules and 403 texts
admin POST /__fake/config '{"tokens":[{"token":"ro","user":"system:serviceaccount:rekey:reader","rules":[{"verbs":["get","list"],"resources":["secrets"],"namespaces":["payments"]}]}]}'
TOKEN=ro
req GET $S/db
check "restricted token may get" "200" "$STATUS"
jreq PATCH $S/db '{"data":{}}' application/merge-patch+json
check "restricted token patch → 403 with the API server text" '403 "secrets \"db\" is forbidden: User \"system:serviceaccount:rekey:reader\" cannot patch resource \"secrets\" in API group \"\" in the namespace \"payments\""' "$STATUS $(j 'd["message"]')"
jreq POST $S '{"metadata":{"name":"z"}}'
check "collection create → name-less 403 text" '"secrets is forbidden: User \"system:serviceaccount:rekey:reader\" cannot create resource \"secrets\" in API group \"\" in the namespace \"payments\""' "$(j 'd["message"]')"
req GET /api/v1/namespaces/other/secrets/db
check "other namespace → 403 Forbidden with details" '403 {"kind": "secrets", "name": "db"}' "$STATUS $(j 'd["details"]')"
req GET $D/api
check "apps 403 names the group" '"deployments.apps \"api\" is forbidden: User \"system:serviceaccount:rekey:reader\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"payments\""' "$(j 'd["message"]')"
jreq POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews '{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","spec":{"resourceAttributes":{"namespace":"payments","verb":"get","resource":"secrets"}}}'
check "SSAR allowed for get" "201 true" "$STATUS $(j 'd["status"]["allowed"]')"
jreq POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews '{"spec":{"resourceAttributes":{"namespace":"payments","verb":"patch","resource":"secrets"}}}'
check "SSAR denied for patch" "false" "$(j 'd["status"]["allowed"]')"
TOKEN=rekey-token

# ---------------------------------------------------------------- workloads and rollouts
admin POST /__fake/config '{"rollout_seconds":1.0}'
DEP='{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"api"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"api"}},"template":{"metadata":{"labels":{"app":"api"}},"spec":{"containers":[{"name":"c","image":"img:1"}]}}}}'
jreq POST $D "$DEP"
check "create deployment: generation 1, defaults" '201 1 "RollingUpdate" 600' "$STATUS $(j 'd["metadata"]["generation"]') $(j 'd["spec"]["strategy"]["type"]') $(j 'd["spec"]["progressDeadlineSeconds"]')"
sleep 1.5
req GET $D/api
check "rollout done after rollout_seconds" '1 3 3 3 3' "$(j 'd["status"]["observedGeneration"]') $(j 'd["status"]["replicas"]') $(j 'd["status"]["updatedReplicas"]') $(j 'd["status"]["readyReplicas"]') $(j 'd["status"]["availableReplicas"]')"
check "done: Progressing NewReplicaSetAvailable" '"NewReplicaSetAvailable"' "$(j '[c["reason"] for c in d["status"]["conditions"] if c["type"]=="Progressing"][0]')"
jreq PATCH $D/api '{"spec":{"replicas":4}}' application/merge-patch+json
check "spec change bumps generation" "2" "$(j 'd["metadata"]["generation"]')"
jreq PATCH $D/api '{"metadata":{"labels":{"x":"y"}}}' application/merge-patch+json
check "metadata-only change keeps generation" "2" "$(j 'd["metadata"]["generation"]')"
jreq PATCH $D/api '{"status":{"observedGeneration":99}}' application/merge-patch+json
check "status writes through the main resource are ignored" "true" "$(j 'd["status"].get("observedGeneration",0) != 99')"
sleep 0.3
jreq PATCH $D/api '{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-08-22T14:03:05+02:00"}}}}}' application/strategic-merge-patch+json
GEN="$(j 'd["metadata"]["generation"]')"
check "restart patch: generation 3, containers kept" '3 ["c"]' "$GEN $(j '[c["name"] for c in d["spec"]["template"]["spec"]["containers"]]')"
sleep 0.5
req GET $D/api
check "mid-rollout: observed, not all updated, old replicas pending" "3 true true" \
    "$(j 'd["status"]["observedGeneration"]') $(j 'd["status"].get("updatedReplicas",0) < 4') $(j 'd["status"]["replicas"] > d["status"].get("updatedReplicas",0)')"
sleep 1
req GET $D/api
check "rollout of generation 3 finished" "3 4 4 4" "$(j 'd["status"]["observedGeneration"]') $(j 'd["status"]["updatedReplicas"]') $(j 'd["status"]["availableReplicas"]') $(j 'd["status"]["replicas"]')"
check "revision annotation advanced" '"2"' "$(j 'd["metadata"]["annotations"]["deployment.kubernetes.io/revision"]')"
jreq PATCH $D/api '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"s:1"}]}}}}' application/strategic-merge-patch+json
check "strategic patch merges containers by name" '["c", "side"]' "$(j '[c["name"] for c in d["spec"]["template"]["spec"]["containers"]]')"
jreq PATCH $D/api '{"spec":{"template":{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}}}' application/strategic-merge-patch+json
check "strategic \$patch: delete removes a container" '["c"]' "$(j '[c["name"] for c in d["spec"]["template"]["spec"]["containers"]]')"
# stuck with a short progress deadline
admin POST /__fake/config '{"objects":{"deployments/payments/api":{"rollout_mode":"stuck"}}}'
jreq PATCH $D/api '{"spec":{"progressDeadlineSeconds":1,"template":{"metadata":{"annotations":{"r":"1"}}}}}' application/merge-patch+json
sleep 0.6
req GET $D/api
check "stuck: one new replica never becomes available" "1 4" "$(j 'd["status"]["updatedReplicas"]') $(j 'd["status"]["availableReplicas"]')"
check "stuck: Progressing still True before the deadline" '"ReplicaSetUpdated"' "$(j '[c["reason"] for c in d["status"]["conditions"] if c["type"]=="Progressing"][0]')"
sleep 1
req GET $D/api
check "stuck: ProgressDeadlineExceeded after progressDeadlineSeconds" '"False" "ProgressDeadlineExceeded"' \
    "$(j '[c["status"] for c in d["status"]["conditions"] if c["type"]=="Progressing"][0]') $(j '[c["reason"] for c in d["status"]["conditions"] if c["type"]=="Progressing"][0]')"
admin POST /__fake/config '{"objects":{"deployments/payments/api":{"rollout_mode":"crashloop"}}}'
jreq PATCH $D/api '{"spec":{"template":{"metadata":{"annotations":{"r":"2"}}}}}' application/merge-patch+json
sleep 0.3
req GET $D/api
check "crashloop: visible as a ReplicaFailure CrashLoopBackOff condition" '"CrashLoopBackOff"' "$(j '[c["reason"] for c in d["status"]["conditions"] if c["type"]=="ReplicaFailure"][0]')"
# statefulset and daemonset
jreq POST /apis/apps/v1/namespaces/payments/statefulsets '{"metadata":{"name":"db"},"spec":{"replicas":2,"serviceName":"db","selector":{"matchLabels":{"a":"db"}},"template":{"metadata":{"labels":{"a":"db"}},"spec":{"containers":[{"name":"c","image":"pg"}]}}}}'
check "statefulset defaults updateStrategy RollingUpdate partition 0" '"RollingUpdate" 0' "$(j 'd["spec"]["updateStrategy"]["type"]') $(j 'd["spec"]["updateStrategy"]["rollingUpdate"]["partition"]')"
sleep 1.4
jreq PATCH /apis/apps/v1/namespaces/payments/statefulsets/db '{"spec":{"template":{"metadata":{"annotations":{"r":"1"}}}}}' application/strategic-merge-patch+json
sleep 0.4
req GET /apis/apps/v1/namespaces/payments/statefulsets/db
check "statefulset mid-rollout: revisions differ" "true" "$(j 'd["status"]["currentRevision"] != d["status"]["updateRevision"]')"
sleep 1
req GET /apis/apps/v1/namespaces/payments/statefulsets/db
check "statefulset done: revisions equal, all ready and updated" "true 2 2 2" "$(j 'd["status"]["currentRevision"] == d["status"]["updateRevision"]') $(j 'd["status"]["readyReplicas"]') $(j 'd["status"]["updatedReplicas"]') $(j 'd["status"]["replicas"]')"
admin POST /__fake/config '{"daemonset_nodes":3}'
jreq POST /apis/apps/v1/namespaces/payments/daemonsets '{"metadata":{"name":"agent"},"spec":{"selector":{"matchLabels":{"a":"ag"}},"template":{"metadata":{"labels":{"a":"ag"}},"spec":{"containers":[{"name":"c","image":"ag"}]}}}}'
sleep 1.4
req GET /apis/apps/v1/namespaces/payments/daemonsets/agent
check "daemonset done: desired/updated/ready/available 3" "3 3 3 3" "$(j 'd["status"]["desiredNumberScheduled"]') $(j 'd["status"]["updatedNumberScheduled"]') $(j 'd["status"]["numberReady"]') $(j 'd["status"]["numberAvailable"]')"
jreq POST /apis/apps/v1/namespaces/payments/daemonsets '{"metadata":{"name":"bad"},"spec":{"template":{"spec":{"containers":[]}}}}'
check "workload without containers → 422" '422 "spec.template.spec.containers"' "$STATUS $(j 'd["details"]["causes"][0]["field"]')"
# zero counters are omitted
admin POST /__fake/config '{"objects":{"deployments/payments/zero":{"rollout_mode":"stuck"}}}'
jreq POST $D '{"metadata":{"name":"zero"},"spec":{"replicas":2,"selector":{"matchLabels":{"a":"z"}},"template":{"metadata":{"labels":{"a":"z"}},"spec":{"containers":[{"name":"c","image":"z"}]}}}}'
sleep 0.3
req GET $D/zero
check "zero status counters are absent (omitempty)" "false false" "$(j '"readyReplicas" in d["status"]') $(j '"availableReplicas" in d["status"]')"
# watch
( sleep 0.4; curl -sS --cacert "$CERTS/ca.crt" -H "Authorization: Bearer rekey-token" -H 'Content-Type: application/merge-patch+json' \
    -X PATCH -d '{"metadata":{"labels":{"w":"1"}}}' "$BASE$S/db" >/dev/null ) &
wpid=$!
req GET "$S?watch=true&fieldSelector=metadata.name%3Ddb&resourceVersion=$(curl -sS --cacert "$CERTS/ca.crt" -H "Authorization: Bearer rekey-token" "$BASE$S" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])')&timeoutSeconds=1"
wait "$wpid"
check "watch streams a MODIFIED event for a change" '"MODIFIED" "1"' "$(head -1 "$tmp/body" | "$PY" -c 'import json,sys; e=json.loads(sys.stdin.readline()); print(json.dumps(e["type"]), json.dumps(e["object"]["metadata"]["labels"]["w"]))' 2>&1)"

# ---------------------------------------------------------------- leases
T0="$("$PY" -c 'import time; t=time.time(); print(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int(t%1*1e6))')"
jreq POST $L "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{\"name\":\"rekey-leader\"},\"spec\":{\"holderIdentity\":\"a\",\"leaseDurationSeconds\":15,\"acquireTime\":\"$T0\",\"renewTime\":\"$T0\",\"leaseTransitions\":0}}"
check "create lease keeps MicroTime spec" "201 \"$T0\" 15" "$STATUS $(j 'd["spec"]["renewTime"]') $(j 'd["spec"]["leaseDurationSeconds"]')"
LRV="$(j 'd["metadata"]["resourceVersion"]' | tr -d '"')"
jreq POST $L '{"metadata":{"name":"rekey-leader"},"spec":{"holderIdentity":"b"}}'
check "racing lease create → 409 AlreadyExists (qualified name)" '409 "AlreadyExists" "leases.coordination.k8s.io \"rekey-leader\" already exists"' "$STATUS $(j 'd["reason"]') $(j 'd["message"]')"
jreq PUT $L/rekey-leader '{"metadata":{"name":"rekey-leader"},"spec":{"holderIdentity":"b"}}'
check "lease PUT without resourceVersion → 422" '422 "leases.coordination.k8s.io \"rekey-leader\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"' "$STATUS $(j 'd["message"]' | sed 's/Lease.coordination.k8s.io/leases.coordination.k8s.io/')"
jreq PUT $L/rekey-leader "{\"metadata\":{\"name\":\"rekey-leader\",\"resourceVersion\":\"$LRV\"},\"spec\":{\"holderIdentity\":\"b\",\"leaseDurationSeconds\":15,\"acquireTime\":\"$T0\",\"renewTime\":\"$T0\",\"leaseTransitions\":1}}"
check "lease takeover PUT with resourceVersion → 200" '200 "b" 1' "$STATUS $(j 'd["spec"]["holderIdentity"]') $(j 'd["spec"]["leaseTransitions"]')"
jreq PUT $L/rekey-leader "{\"metadata\":{\"name\":\"rekey-leader\",\"resourceVersion\":\"$LRV\"},\"spec\":{\"holderIdentity\":\"c\"}}"
check "second takeover with the old resourceVersion → 409 Conflict" '409 "Conflict" "Operation cannot be fulfilled on leases.coordination.k8s.io \"rekey-leader\": the object has been modified; please apply your changes to the latest version and try again"' "$STATUS $(j 'd["reason"]') $(j 'd["message"]')"
jreq POST $L '{"metadata":{"name":"bad"},"spec":{"renewTime":"yesterday"}}'
check "lease with a non-MicroTime time → 400" "400" "$STATUS"
req DELETE $L/rekey-leader
check "delete lease" "200" "$STATUS"
req GET $L/rekey-leader
check "deleted lease → 404 with group" '404 {"group": "coordination.k8s.io", "kind": "leases", "name": "rekey-leader"}' "$STATUS $(j 'd["details"]')"

# ---------------------------------------------------------------- injections
admin POST /__fake/inject '{"path_regex":"/secrets/db$","method":"GET","action":"status","status":503}'
check "inject answer has an id" "1" "$(adminj 'len(d["injections"])')"
req GET $S/db
check "inject status 503 → Status ServiceUnavailable" '503 "ServiceUnavailable"' "$STATUS $(j 'd["reason"]')"
req GET $S/db
check "inject count 1: next request normal" "200" "$STATUS"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","action":"status","status":500,"body":{"kind":"Status","code":500,"message":"custom"},"headers":{"Retry-After":"2"},"skip":1}'
req GET $S/db; s1=$STATUS
req GET $S/db
check "inject skip + custom body + headers" '200 500 "custom" 2' "$s1 $STATUS $(j 'd["message"]') $(hdr Retry-After)"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","action":"latency","ms":400}'
t0=$(date +%s%N); req GET $S/db; t1=$(date +%s%N)
check "inject latency ≥ 400 ms then normal" "200 True" "$STATUS $([ $(( (t1 - t0) / 1000000 )) -ge 400 ] && echo True)"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","action":"reset"}'
req GET $S/db
check "inject reset: no HTTP answer" "000" "$STATUS"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","action":"close"}'
req GET $S/db
check "inject close: no HTTP answer" "000" "$STATUS"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","action":"hang","ms":500}'
req GET $S/db
check "inject hang for 500 ms, then closed" "000" "$STATUS"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","action":"html"}'
req GET $S/db
check "inject html 502" "502 text/html True" "$STATUS $(hdr Content-Type) $(grep -q 'Bad Gateway' "$tmp/body" && echo True)"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","action":"big","bytes":100000}'
req GET $S/db
check "inject big: exactly the requested bytes, valid JSON" "200 100000 Status" "$STATUS $(wc -c <"$tmp/body" | tr -d ' ') $(j 'd["kind"]' | tr -d '"')"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","method":"PATCH","action":"truncated"}'
jreq PATCH $S/db '{"metadata":{"labels":{"t":"1"}}}' application/merge-patch+json
check "inject truncated: curl sees a short body" "18" "$RC"
req GET $S/db
check "truncated write was applied" '"1"' "$(j 'd["metadata"]["labels"]["t"]')"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","method":"PATCH","action":"reset_after_apply"}'
jreq PATCH $S/db '{"metadata":{"labels":{"t":"2"}}}' application/merge-patch+json
s1=$STATUS; req GET $S/db
check "reset_after_apply: no answer, write landed" '000 "2"' "$s1 $(j 'd["metadata"]["labels"]["t"]')"
admin POST /__fake/inject '{"path_regex":"/secrets/db$","method":"PATCH","action":"status_after_apply","status":504}'
jreq PATCH $S/db '{"metadata":{"labels":{"t":"3"}}}' application/merge-patch+json
s1="$STATUS $(j 'd["reason"]')"; req GET $S/db
check "status_after_apply 504 Timeout, write landed" '504 "Timeout" "3"' "$s1 $(j 'd["metadata"]["labels"]["t"]')"
CUR="$(j 'd["metadata"]["resourceVersion"]' | tr -d '"')"
admin POST /__fake/inject "{\"path_regex\":\"/secrets/db\$\",\"method\":\"PATCH\",\"action\":\"write_before\",\"object\":{\"resource\":\"secrets\",\"namespace\":\"payments\",\"name\":\"db\",\"patch\":{\"data\":{\"other\":\"$(b64 o)\"}}}}"
jreq PATCH $S/db "{\"metadata\":{\"resourceVersion\":\"$CUR\"},\"data\":{\"password\":\"$(b64 mine)\"}}" application/merge-patch+json
check "write_before: a concurrent writer makes the CAS patch a 409" "409 Conflict" "$STATUS $(j 'd["reason"]' | tr -d '"')"
req GET $S/db
check "write_before's change is there, ours is not" "$(b64 o) $(b64 jp)" "$(j 'd["data"]["other"]' | tr -d '"') $(j 'd["data"]["password"]' | tr -d '"')"
admin POST /__fake/inject '{"action":"nope"}'
check "bad injection rule → 400" "True" "$(adminj '"unknown action" in d["error"]')"
admin POST /__fake/inject '{"path_regex":"x","count":-1}'
admin GET /__fake/inject; n1=$(adminj 'len(d["injections"])')
admin DELETE /__fake/inject; admin GET /__fake/inject
check "inject list and clear" "1 0" "$n1 $(adminj 'len(d["injections"])')"

# ---------------------------------------------------------------- APF quota
admin POST /__fake/quota '{"max_requests":2,"retry_after":3}'
req GET $S/db; a=$STATUS; req GET $S/db; b=$STATUS; req GET $S/db
check "quota: 2 pass, 3rd is 429" "200 200 429" "$a $b $STATUS"
check "APF 429: plain text body, Retry-After, nosniff, PF headers" "Too many requests, please try again later. 3 text/plain;charset=utf-8 nosniff True" \
    "$(body) $(hdr Retry-After) $(hdr Content-Type) $(hdr X-Content-Type-Options) $([ -n "$(hdr X-Kubernetes-Pf-Flowschema-Uid)" ] && [ -n "$(hdr X-Kubernetes-Pf-Prioritylevel-Uid)" ] && echo True)"
admin GET /__fake/ping
check "admin API is never throttled" "True" "$(adminj 'd["ok"]')"
admin POST /__fake/quota '{"max_requests":0,"retry_after":2,"style":"status"}'
req GET $S/db
check "quota style status: Status TooManyRequests with retryAfterSeconds" '429 "TooManyRequests" 2 2' "$STATUS $(j 'd["reason"]') $(j 'd["details"]["retryAfterSeconds"]') $(hdr Retry-After)"
admin POST /__fake/quota '{"rps":1}'
req GET $S/db; a=$STATUS; req GET $S/db; b=$STATUS; sleep 1.05; req GET $S/db
check "quota rps 1: window resets" "200 429 200" "$a $b $STATUS"
admin DELETE /__fake/quota
req GET $S/db
check "quota cleared; ordinary answers carry the PF headers too" "200 True" "$STATUS $([ -n "$(hdr X-Kubernetes-Pf-Flowschema-Uid)" ] && echo True)"

# ---------------------------------------------------------------- request log
admin DELETE /__fake/requests
jreq PATCH $S/db "{\"data\":{\"password\":\"$(b64 topsecret)\"},\"stringData\":{\"x\":\"plain\"}}" application/merge-patch+json
jreq PATCH $S/db "[{\"op\":\"replace\",\"path\":\"/data/password\",\"value\":\"$(b64 jpsecret)\"}]" application/json-patch+json
admin GET /__fake/requests
check "log: Authorization redacted" "<redacted>" "$(adminj 'd["requests"][0]["headers"]["Authorization"]')"
check "log: data/stringData values redacted, keys kept" "{'password': '<redacted>'} {'x': '<redacted>'}" "$(adminj 'd["requests"][0]["body"]["data"]') $(adminj 'd["requests"][0]["body"]["stringData"]')"
check "log: json-patch value under /data redacted" "<redacted>" "$(adminj 'd["requests"][1]["body"][0]["value"]')"
check "log: no secret value anywhere" "0" "$(grep -c -e "$(b64 topsecret)" -e plain -e "$(b64 jpsecret)" "$tmp/admin")"
check "log: method, path, status, user" "PATCH /api/v1/namespaces/payments/secrets/db 200 system:serviceaccount:rekey:rekey" \
    "$(adminj 'd["requests"][0]["method"]') $(adminj 'd["requests"][0]["path"]') $(adminj 'd["requests"][0]["status"]') $(adminj 'd["requests"][0]["user"]')"
admin GET "/__fake/requests?values=1"
check "log ?values=1 shows the values" "$(b64 topsecret) plain" "$(adminj 'd["requests"][0]["body"]["data"]["password"]') $(adminj 'd["requests"][0]["body"]["stringData"]["x"]')"
check "log: admin calls are not logged" "2" "$(adminj 'len(d["requests"])')"

# ---------------------------------------------------------------- state, seed, reset
admin POST /__fake/seed '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"seeded","namespace":"payments"},"data":{"k":"dg=="}}'
req GET $S/seeded
check "seed secret then GET" '200 "dg=="' "$STATUS $(j 'd["data"]["k"]')"
admin POST /__fake/seed '{"objects":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"payments"},"spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"c","image":"w"}]}}}}]}'
req GET $D/web
check "seeded deployment is settled at once" "2 2 1" "$(j 'd["status"]["availableReplicas"]') $(j 'd["status"]["updatedReplicas"]') $(j 'd["status"]["observedGeneration"]')"
admin POST /__fake/seed '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"payments"},"spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"c","image":"w"}]}}},"status":{"observedGeneration":1,"replicas":2}}'
sleep 0.2; req GET $D/web
check "seed with an explicit status keeps it" "2 false" "$(j 'd["status"]["replicas"]') $(j '"availableReplicas" in d["status"]')"
admin GET /__fake/state
check "state lists objects and the resourceVersion counter" "True True" "$(adminj 'any(o["metadata"]["name"]=="seeded" for o in d["objects"])') $(adminj 'd["resourceVersion"] > 1000')"
admin POST /__fake/seed '{"kind":"Nope","metadata":{"name":"x"}}'
check "seed of an unknown kind → 400" "True" "$(adminj '"unknown kind" in d["error"]')"
admin POST /__fake/config '{"bogus":1}'
check "unknown config key → 400" "True" "$(adminj '"unknown config key" in d["error"]')"
admin POST /__fake/reset
req GET $S/seeded
check "reset clears objects" "404" "$STATUS"
TOKEN=ro; req GET $S/seeded; TOKEN=rekey-token
check "reset drops configured tokens" "401" "$STATUS"
admin GET /__fake/config
check "reset restores the config" "2.0 normal" "$(adminj 'd["config"]["rollout_seconds"]') $(adminj 'd["config"]["rollout_mode"]')"

# ---------------------------------------------------------------- SIGTERM during a hang
admin POST /__fake/inject '{"action":"hang","count":-1}'
curl -sS --cacert "$CERTS/ca.crt" --max-time 10 -H "Authorization: Bearer rekey-token" "$BASE$S/db" >/dev/null 2>&1 &
cpid=$!
sleep 0.3
t0=$(date +%s%N)
kill -TERM "$fake_pid"
for _ in $(seq 20); do kill -0 "$fake_pid" 2>/dev/null || break; sleep 0.05; done
t1=$(date +%s%N)
alive=no; kill -0 "$fake_pid" 2>/dev/null && alive=yes
wait "$fake_pid"; frc=$?
fake_pid=""
wait "$cpid" 2>/dev/null
check "SIGTERM stops promptly despite a hang (≤ 0.5 s, exit 0)" "no 0 True" "$alive $frc $([ $(( (t1 - t0) / 1000000 )) -le 500 ] && echo True)"
check "port file removed on exit" "no" "$([ -e "$tmp/port" ] && echo yes || echo no)"

# ---------------------------------------------------------------- --state-file
start_fake --state-file "$tmp/state.json"
jreq POST $S '{"metadata":{"name":"persist"},"stringData":{"a":"b"}}'
RVP="$(j 'd["metadata"]["resourceVersion"]' | tr -d '"')"
stop_fake
start_fake --state-file "$tmp/state.json"
req GET $S/persist
check "--state-file keeps objects and resourceVersion across a restart" "200 $RVP" "$STATUS $(j 'd["metadata"]["resourceVersion"]' | tr -d '"')"
jreq POST $S '{"metadata":{"name":"after"}}'
check "resourceVersion counter continues after restart" "true" "$(j 'int(d["metadata"]["resourceVersion"]) > '"$RVP")"
stop_fake

# ---------------------------------------------------------------- plain http
start_fake --plain-http
check "--plain-http serves http" "200" "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer rekey-token' "http://127.0.0.1:$PORT/version")"
check "--plain-http kubeconfig has an http server and no CA" "1 0" "$(grep -c "server: http://127.0.0.1:$PORT" "$CERTS/kubeconfig") $(grep -c certificate-authority "$CERTS/kubeconfig")"
stop_fake
echo "# part (a) took $(( $(date +%s) - t_start )) s"

# ---------------------------------------------------------------- (b) kubectl
kubectl_status=run
if [ ! -x "$KUBECTL" ]; then
    kubectl_status=skip
else
    t_b=$(date +%s)
    start_fake
    export KUBECONFIG="$CERTS/kubeconfig"
    K() { "$KUBECTL" --request-timeout=20s "$@"; }
    admin POST /__fake/config '{"rollout_seconds":1.5}'
    out="$(K create secret generic db --from-literal=password=s3cr3t --from-literal=user=app 2>&1)"
    check "kubectl create secret generic --from-literal" "secret/db created" "$out"
    admin GET "/__fake/requests?values=1"
    check "kubectl create sent protobuf, decoded by the fake" "True" \
        "$(adminj 'any(r["method"]=="POST" and "protobuf" in (r["content_type"] or "") and r["body"]["data"]["password"]=="czNjcjN0" for r in d["requests"])')"
    check "kubectl get secret -o jsonpath" "$(b64 s3cr3t)" "$(K get secret db -o jsonpath='{.data.password}' 2>&1)"
    out="$(K get secrets 2>&1)"
    check "kubectl get secrets (server-side Table)" "True" "$(echo "$out" | grep -qE '^db +Opaque +2 ' && echo True || echo "$out")"
    check "kubectl patch secret --type merge" "secret/db patched" "$(K patch secret db --type merge -p "{\"data\":{\"password\":\"$(b64 m)\"}}" 2>&1)"
    check "kubectl patch secret --type strategic" "secret/db patched" "$(K patch secret db --type strategic -p '{"stringData":{"s":"x"}}' 2>&1)"
    check "patched values" "$(b64 m) $(b64 x) $(b64 app)" "$(K get secret db -o jsonpath='{.data.password} {.data.s} {.data.user}' 2>&1)"
    check "kubectl patch --type json with a failed test → error" "1" "$(K patch secret db --type json -p '[{"op":"test","path":"/metadata/resourceVersion","value":"1"}]' >/dev/null 2>&1; echo $?)"
    cat >"$tmp/s.yaml" <<'EOF'
apiVersion: v1
kind: Secret
metadata:
  name: applied
data:
  k: b25l
EOF
    check "kubectl apply (create)" "secret/applied created" "$(K apply -f "$tmp/s.yaml" 2>&1)"
    sed -i 's/b25l/dHdv/' "$tmp/s.yaml"
    check "kubectl apply (patch)" "secret/applied configured" "$(K apply -f "$tmp/s.yaml" 2>&1)"
    check "applied value" "$(b64 two)" "$(K get secret applied -o jsonpath='{.data.k}' 2>&1)"
    check "kubectl apply again is unchanged" "secret/applied unchanged" "$(K apply -f "$tmp/s.yaml" 2>&1)"
    check "kubectl delete secret" 'secret "applied" deleted' "$(K delete secret applied 2>&1)"
    out="$(K get secret applied 2>&1)"; rc=$?
    check "kubectl get deleted secret → NotFound" '1 Error from server (NotFound): secrets "applied" not found' "$rc $out"
    cat >"$tmp/w.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: pg}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: agent}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 2
  progressDeadlineSeconds: 600
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec: {containers: [{name: c, image: nginx}]}
EOF
    check "kubectl apply workloads" "4" "$(K apply -f "$tmp/w.yaml" 2>&1 | grep -c created)"
    check "kubectl rollout status of the initial rollout" "0" "$(K rollout status deployment/api --timeout=20s >/dev/null 2>&1; echo $?)"
    out="$(K get deploy,sts,ds 2>&1)"
    check "kubectl get deploy,sts,ds" "3" "$(echo "$out" | grep -cE '^(deployment.apps/api +3/3|statefulset.apps/db +[0-2]/2|daemonset.apps/agent +2 +2)')"
    for w in deployment/api statefulset/db daemonset/agent; do
        out="$(K rollout restart "$w" 2>&1)"
        check "kubectl rollout restart $w" "$w restarted" "$(echo "$out" | sed 's/\.apps//')"
        t0=$(date +%s%N)
        out="$(K rollout status "$w" --timeout=20s 2>&1)"; rc=$?
        t1=$(date +%s%N)
        check "kubectl rollout status $w succeeds after waiting" "0 True True" \
            "$rc $(echo "$out" | tail -1 | grep -qE 'successfully rolled out|roll out complete' && echo True) $([ $(( (t1 - t0) / 1000000 )) -ge 700 ] && echo True)"
    done
    admin GET /__fake/requests
    check "rollout restart sent the strategic merge patch with restartedAt" "True" \
        "$(adminj 'any(r["method"]=="PATCH" and r["path"].endswith("/deployments/api") and r["content_type"]=="application/strategic-merge-patch+json" and "kubectl.kubernetes.io/restartedAt" in r["body"]["spec"]["template"]["metadata"]["annotations"] and r["query_params"].get("fieldManager")=="kubectl-rollout" for r in d["requests"])')"
    check "rollout status used a watch" "True" "$(adminj 'any(r["query_params"].get("watch")=="true" for r in d["requests"])')"
    # Two restarts within one second give an empty patch, which kubectl refuses (a pair may
    # straddle a second boundary, as on a real server: up to three tries).
    for _ in 1 2 3; do
        K rollout restart deployment/api >/dev/null 2>&1
        out="$(K rollout restart deployment/api 2>&1)"; rc=$?
        [ "$rc" != 0 ] && break
    done
    check "second restart within the same second refused by kubectl" "1 True" "$rc $(echo "$out" | grep -q 'within the past second' && echo True)"
    admin POST /__fake/config '{"objects":{"deployments/default/stuck":{"rollout_mode":"stuck"}}}'
    K rollout restart deployment/stuck >/dev/null 2>&1
    out="$(K rollout status deployment/stuck --timeout=3s 2>&1)"; rc=$?
    check "stuck rollout: rollout status --timeout=3s fails with the timeout error" "1 error: timed out waiting for the condition" "$rc $(echo "$out" | tail -1)"
    K patch deployment stuck -p '{"spec":{"progressDeadlineSeconds":1}}' >/dev/null 2>&1
    sleep 1.2
    out="$(K rollout status deployment/stuck --timeout=3s 2>&1)"; rc=$?
    check "stuck past progressDeadlineSeconds: exceeded its progress deadline" '1 error: deployment "stuck" exceeded its progress deadline' "$rc $(echo "$out" | tail -1)"
    K patch deployment api -p '{"spec":{"paused":true}}' >/dev/null 2>&1
    out="$(K rollout restart deployment/api 2>&1)"
    check "paused deployment: kubectl refuses restart" "True" "$(echo "$out" | grep -q "can't restart paused deployment" && echo True || echo "$out")"
    admin POST /__fake/seed '{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"rekey-leader","namespace":"default"},"spec":{"holderIdentity":"rekey-0","leaseDurationSeconds":15}}'
    out="$(K get lease 2>&1)"
    check "kubectl get lease" "True" "$(echo "$out" | grep -qE '^rekey-leader +rekey-0 ' && echo True || echo "$out")"
    check "kubectl auth can-i patch secrets" "yes" "$(K auth can-i patch secrets 2>&1)"
    admin POST /__fake/config '{"tokens":[{"token":"ro","user":"reader","rules":[{"verbs":["get","list","watch"],"resources":["secrets"],"namespaces":["default"]}]}],"client_certs":{"rekey-client":{"rules":[{"verbs":["get"],"resources":["secrets"],"namespaces":["default"]}]}}}'
    out="$(K --token ro auth can-i patch secrets 2>&1)"; rc=$?
    check "kubectl auth can-i for a restricted token: no, exit 1" "1 no" "$rc $out"
    check "kubectl auth can-i get secrets for it: yes" "yes" "$(K --token ro auth can-i get secrets 2>&1)"
    out="$(K --token ro patch secret db --type merge -p '{"data":{}}' 2>&1)"
    check "kubectl patch as the restricted token → Forbidden text" 'Error from server (Forbidden): secrets "db" is forbidden: User "reader" cannot patch resource "secrets" in API group "" in the namespace "default"' "$out"
    out="$(K auth whoami -o jsonpath='{.status.userInfo.username}' 2>&1)"
    check "kubectl auth whoami (token user)" "system:serviceaccount:rekey:rekey" "$out"
    out="$(K --context fake-cert auth whoami -o jsonpath='{.status.userInfo.username} {.status.userInfo.groups}' 2>&1)"
    check "kubectl auth whoami (client-certificate user)" 'rekey-client ["rekey-testers","system:authenticated"]' "$out"
    check "client-certificate user can get" "$(b64 m)" "$(K --context fake-cert get secret db -o jsonpath='{.data.password}' 2>&1)"
    out="$(K --context fake-cert delete secret db 2>&1)"
    check "client-certificate user is bound by its rules" 'Error from server (Forbidden): secrets "db" is forbidden: User "rekey-client" cannot delete resource "secrets" in API group "" in the namespace "default"' "$out"
    out="$(K --token wrong get secrets 2>&1)"; rc=$?
    check "wrong token: kubectl's Unauthorized message" "1 error: You must be logged in to the server (Unauthorized)" "$rc $out"
    admin POST /__fake/quota '{"max_requests":0,"retry_after":1,"path_regex":"/secrets/db$"}'
    ( sleep 1.5; curl -sS --cacert "$CERTS/ca.crt" -X DELETE "$BASE/__fake/quota" >/dev/null ) &
    qpid=$!
    t0=$(date +%s%N)
    out="$(K get secret db -o jsonpath='{.data.user}' 2>&1)"
    t1=$(date +%s%N)
    wait "$qpid"
    check "kubectl retries an APF 429 after Retry-After" "$(b64 app) True" "$out $([ $(( (t1 - t0) / 1000000 )) -ge 1000 ] && echo True)"
    stop_fake
    echo "# part (b) took $(( $(date +%s) - t_b )) s"
fi

echo "k8s_fake: $pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
    exit 1
fi
if [ "$kubectl_status" = skip ]; then
    echo "SKIP kubectl checks: $KUBECTL not found"
    exit 77
fi
exit 0
