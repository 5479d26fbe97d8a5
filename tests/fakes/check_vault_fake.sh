#!/usr/bin/env bash
# Self-test of tests/fakes/vault_fake.py.
#
# (a) curl against the fake: status codes, bodies and headers from
#     shared/docs/provider-contracts.md section 1, plus every admin knob;
# (b) the real Node client `node-vault` (installed from npm into a temporary
#     directory) doing token auth, AppRole and Kubernetes login, KV v2 with cas,
#     health and transit rotate.
#
# Prints PASS/FAIL per check and a closing "vault_fake: N passed, N failed".
# Exit 0: all passed; 1: a check failed; 77: (a) passed but npm/the registry
# was unreachable so (b) was skipped.
#
# Env: PYTHON (default /usr/bin/python3, else python3), NODE_VAULT_PREFIX (an npm --prefix that
# already holds node-vault: skips the install), VAULT_FAKE_SKIP_NODE=1.

# Bash is needed below; `sh check_vault_fake.sh` (as `make fakes-check` runs it) re-executes under bash.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FAKE="$HERE/vault_fake.py"
# Debian's interpreter when present: a version-manager shim costs ~0.5 s a call.
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; elif [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/vault_fake_check.XXXXXX")"
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

start_fake() {
    rm -f "$tmp/port"
    "$PY" "$FAKE" --port 0 --port-file "$tmp/port" --root-token root "$@" 2>"$tmp/fake.stderr" &
    fake_pid=$!
    for _ in $(seq 100); do
        [ -s "$tmp/port" ] && break
        kill -0 "$fake_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ ! -s "$tmp/port" ]; then
        echo "FAIL fake did not start"; cat "$tmp/fake.stderr"; exit 1
    fi
    BASE="http://127.0.0.1:$(tr -d '\n' <"$tmp/port")"
}

# req METHOD PATH [curl args...]: sets STATUS, RC; body in $tmp/body, headers in $tmp/hdr.
TOKEN=root
req() {
    local method="$1" path="$2"; shift 2
    local tokargs=()
    [ -n "$TOKEN" ] && tokargs=(-H "X-Vault-Token: $TOKEN")
    STATUS="$(curl -sS --max-time 20 -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' \
        -X "$method" "${tokargs[@]}" "$@" "$BASE$path" 2>"$tmp/curl.err")"
    RC=$?
}
# body_is EXACT: the body without its trailing newline.
body() { "$PY" -c 'import sys; sys.stdout.write(open(sys.argv[1],"rb").read().decode().rstrip("\n"))' "$tmp/body"; }
# j EXPR: evaluate a Python expression over the JSON body `d`, print it as JSON.
j() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(eval(sys.argv[2]), sort_keys=True))' "$tmp/body" "$1" 2>/dev/null || echo "<no-json>"; }
hdr() { grep -i "^$1:" "$tmp/hdr" | head -1 | cut -d: -f2- | tr -d ' \r'; }
admin() { # METHOD PATH [JSON]
    curl -sS --max-time 10 -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$BASE$2" >"$tmp/admin" 2>&1
}
adminj() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/admin" "$1"; }

start_fake
echo "# fake at $BASE"

# ---------------------------------------------------------------- health
TOKEN=
req GET /v1/sys/health
check "health 200" 200 "$STATUS"
check "health initialized" true "$(j 'd["initialized"]')"
check "health has no performance_standby (intersection)" false "$(j '"performance_standby" in d')"
STATUS="$(curl -sS -I -o /dev/null -w '%{http_code} %{size_download}' "$BASE/v1/sys/health")"
check "health HEAD status only" "200 0" "$STATUS"
admin POST /__fake/config '{"standby":true}'
req GET /v1/sys/health
check "health standby 429" 429 "$STATUS"
req GET '/v1/sys/health?standbyok=true'
check "health standbyok 200" 200 "$STATUS"
req GET '/v1/sys/health?standbycode=abc'
check "health bad param 400" '400 {"errors":[]}' "$STATUS $(body)"
admin POST /__fake/config '{"standby":false,"sealed":true}'
req GET /v1/sys/health
check "health sealed 503" "503 false" "$STATUS $(j '"cluster_name" in d')"
TOKEN=root
req GET /v1/secret/data/x
check "sealed request 503" '503 {"errors":["Vault is sealed"]}' "$STATUS $(body)"
admin POST /__fake/config '{"sealed":false,"flavor":"vault","performance_standby":true}'
TOKEN=
req GET /v1/sys/health
check "vault perf standby 473" "473 true" "$STATUS $(j 'd["performance_standby"]')"
admin POST /__fake/config '{"flavor":"intersection","performance_standby":false}'
TOKEN=root

# ------------------------------------------------------------ KV v2 write/read
req POST /v1/secret/data/app/db -d '{"data":{"password":"p1","user":"app"},"options":{"cas":0},"custom_metadata":{"x":"y"}}'
check "kv write 200" 200 "$STATUS"
check "kv write version 1" 1 "$(j 'd["data"]["version"]')"
check "kv write ignores custom_metadata with warning" \
    '["Endpoint ignored these unrecognized parameters: [custom_metadata]"]' "$(j 'd["warnings"]')"
check "kv write custom_metadata null" null "$(j 'd["data"]["custom_metadata"]')"
check "kv envelope has no mount_type (intersection)" false "$(j '"mount_type" in d')"
req POST /v1/secret/data/app/db -d '{"data":{"password":"p2"},"options":{"cas":0}}'
check "kv cas conflict 400 exact body" \
    '400 {"errors":["check-and-set parameter did not match the current version"]}' "$STATUS $(body)"
req PUT /v1/secret/data/app/db -d '{"data":{"password":"p2","user":"app"},"options":{"cas":1}}'
check "kv write cas=1 → version 2" "200 2" "$STATUS $(j 'd["data"]["version"]')"
req GET /v1/secret/data/app/db
check "kv read latest" '"p2" 2' "$(j 'd["data"]["data"]["password"]') $(j 'd["data"]["metadata"]["version"]')"
req GET '/v1/secret/data/app/db?version=1'
check "kv read ?version=1" '"p1"' "$(j 'd["data"]["data"]["password"]')"
req GET /v1/secret/data/app/nope
check "kv read absent 404 empty errors" '404 {"errors":[]}' "$STATUS $(body)"
req GET '/v1/secret/data/app/db?version=9'
check "kv read absent version 404" '404 {"errors":[]}' "$STATUS $(body)"
req POST /v1/secret/data/app/db -d '{"options":{"cas":2}}'
check "kv write without data" '400 {"errors":["no data provided"]}' "$STATUS $(body)"
req LIST /v1/secret/data/app/db
check "kv LIST on data path 405" 405 "$STATUS"

# ------------------------------------------------------------ metadata
req POST /v1/secret/metadata/app/db -d '{"custom_metadata":{"owner":"team-payments"}}'
check "metadata POST 204" 204 "$STATUS"
req PATCH /v1/secret/metadata/app/db -H 'Content-Type: application/json' -d '{"custom_metadata":{"rekey.fingerprint":"b2:abc"}}'
check "metadata PATCH needs merge-patch 415" 415 "$STATUS"
req PATCH /v1/secret/metadata/app/db -H 'Content-Type: application/merge-patch+json' -d '{"custom_metadata":{"rekey.fingerprint":"b2:abc"}}'
check "metadata PATCH 204" 204 "$STATUS"
req GET /v1/secret/metadata/app/db
check "metadata merged custom_metadata" '{"owner": "team-payments", "rekey.fingerprint": "b2:abc"}' "$(j 'd["data"]["custom_metadata"]')"
check "metadata version keys are strings" '["1", "2"]' "$(j 'sorted(d["data"]["versions"])')"
check "metadata current_version" 2 "$(j 'd["data"]["current_version"]')"
req PATCH /v1/secret/metadata/app/db -H 'Content-Type: application/merge-patch+json' -d '{"custom_metadata":{"owner":null}}'
req GET /v1/secret/data/app/db
check "merge-patch null removes a key; data read shows custom_metadata" '{"rekey.fingerprint": "b2:abc"}' "$(j 'd["data"]["metadata"]["custom_metadata"]')"
req PATCH /v1/secret/metadata/app/missing -H 'Content-Type: application/merge-patch+json' -d '{"custom_metadata":{"a":"b"}}'
check "metadata PATCH on absent key 404 empty body" "404 0" "$STATUS $(wc -c <"$tmp/body" | tr -d ' ')"
req GET /v1/secret/metadata/app/missing
check "metadata GET absent 404" '404 {"errors":[]}' "$STATUS $(body)"
req LIST /v1/secret/metadata/app
check "metadata LIST" '["db"]' "$(j 'd["data"]["keys"]')"
req GET '/v1/secret/metadata/?list=true'
check "metadata GET ?list=true" '["app/"]' "$(j 'd["data"]["keys"]')"
req LIST /v1/secret/metadata/empty
check "empty LIST 404" '404 {"errors":[]}' "$STATUS $(body)"

req PATCH /v1/secret/data/app/db -H 'Content-Type: application/merge-patch+json' -d '{"data":{"extra":"e"},"options":{"cas":2}}'
check "data PATCH merges into a new version" "200 3" "$STATUS $(j 'd["data"]["version"]')"
req GET /v1/secret/data/app/db
check "data PATCH kept other keys" '"p2" "e"' "$(j 'd["data"]["data"]["password"]') $(j 'd["data"]["data"]["extra"]')"
req PATCH /v1/secret/data/app/db -H 'Content-Type: application/merge-patch+json' -d '{"data":{"extra":null},"options":{"cas":2}}'
check "data PATCH with stale cas 400" 400 "$STATUS"
req PATCH /v1/secret/data/app/absent -H 'Content-Type: application/merge-patch+json' -d '{"data":{"a":"b"}}'
check "data PATCH on absent key 404" 404 "$STATUS"

# ------------------------------------------------------------ delete/undelete/destroy
req POST /v1/secret/delete/app/db -d '{"versions":[3]}'
check "delete versions 204" 204 "$STATUS"
req GET /v1/secret/data/app/db
check "soft-deleted read: 404 with envelope, data.data null" '404 null true' \
    "$STATUS $(j 'd["data"]["data"]') $(j 'd["data"]["metadata"]["deletion_time"] != ""')"
req POST /v1/secret/undelete/app/db -d '{"versions":[3]}'
req GET /v1/secret/data/app/db
check "undelete restores" '200 "p2"' "$STATUS $(j 'd["data"]["data"]["password"]')"
req PUT /v1/secret/destroy/app/db -d '{"versions":[1]}'
req GET '/v1/secret/data/app/db?version=1'
check "destroyed read: 404 envelope destroyed=true" '404 true null' \
    "$STATUS $(j 'd["data"]["metadata"]["destroyed"]') $(j 'd["data"]["data"]')"
req POST /v1/secret/delete/app/db -d '{}'
check "delete without versions 400" '400 {"errors":["No version number provided"]}' "$STATUS $(body)"
req DELETE /v1/secret/data/app/db
req GET /v1/secret/data/app/db
check "DELETE data soft-deletes latest" 404 "$STATUS"
req POST /v1/secret/data/app/db -d '{"data":{"password":"p3"},"options":{"cas":3}}'
check "cas must name a soft-deleted latest version" "200 4" "$STATUS $(j 'd["data"]["version"]')"
req DELETE /v1/secret/metadata/app/gone
check "metadata DELETE of absent key 204" 204 "$STATUS"

# ------------------------------------------------------------ cas_required, max_versions
req POST /v1/secret/metadata/app/strict -d '{"cas_required":true,"max_versions":2}'
req POST /v1/secret/data/app/strict -d '{"data":{"a":"1"}}'
check "cas_required enforced" '400 {"errors":["check-and-set parameter required for this call"]}' "$STATUS $(body)"
for v in 0 1 2; do req POST /v1/secret/data/app/strict -d "{\"data\":{\"a\":\"$v\"},\"options\":{\"cas\":$v}}"; done
req GET /v1/secret/metadata/app/strict
check "max_versions trims old versions" '["2", "3"] 2' "$(j 'sorted(d["data"]["versions"])') $(j 'd["data"]["oldest_version"]')"
req GET '/v1/secret/data/app/strict?version=1'
check "trimmed version 404 empty errors" '404 {"errors":[]}' "$STATUS $(body)"
req GET /v1/secret/config
check "kv config read" '"0s"' "$(j 'd["data"]["delete_version_after"]')"
req GET /v1/sys/internal/ui/mounts/secret/app/db
check "ui mounts: kv v2" '200 "2" "secret/"' "$STATUS $(j 'd["data"]["options"]["version"]') $(j 'd["data"]["path"]')"
req GET /v1/sys/internal/ui/mounts/nomount/x
check "ui mounts: missing mount 403 preflight" 403 "$STATUS"

# ------------------------------------------------------------ tokens, auth, ACL
TOKEN=
req GET /v1/secret/data/app/db
check "no token 403 classic" '403 {"errors":["permission denied"]}' "$STATUS $(body)"
TOKEN=bogus
admin POST /__fake/config '{"flavor":"vault"}'
req GET /v1/secret/data/app/db
check "bad token 403 vault 1.17 form" '403 ["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]' "$STATUS $(j 'd["errors"]')"
TOKEN=root
req GET /v1/secret/data/app/db
check "vault flavor: mount_type kv" '"kv"' "$(j 'd["mount_type"]')"
admin POST /__fake/config '{"flavor":"intersection"}'

admin POST /__fake/config '{"tokens":[{"token":"short","ttl":1,"policies":["rekey"]}]}'
TOKEN=short
req GET /v1/auth/token/lookup-self
check "lookup-self short token" '200 true ["default", "rekey"]' "$STATUS $(j 'd["data"]["renewable"]') $(j 'd["data"]["policies"]')"
sleep 1.3
req GET /v1/auth/token/lookup-self
check "expired token 403" '403 {"errors":["permission denied"]}' "$STATUS $(body)"
TOKEN=root
req GET /v1/auth/token/lookup-self
check "root lookup-self: no renewable, expire_time null" 'false null' "$(j '"renewable" in d["data"]') $(j 'd["data"]["expire_time"]')"
req POST /v1/auth/token/renew-self
check "root renew-self 400 invalid lease ID" '400 {"errors":["invalid lease ID"]}' "$STATUS $(body)"

admin POST /__fake/config '{"approle_roles":[{"role_name":"rekey","role_id":"rid-1","secret_id":"sid-1","policies":["rekey"],"token_ttl":600,"token_max_ttl":900}]}'
TOKEN=
req POST /v1/auth/approle/login -d '{"role_id":"rid-1","secret_id":"sid-1"}'
check "approle login" '200 600 true ["default", "rekey"]' \
    "$STATUS $(j 'd["auth"]["lease_duration"]') $(j 'd["auth"]["renewable"]') $(j 'd["auth"]["policies"]')"
AR_TOKEN="$(j 'd["auth"]["client_token"]' | tr -d '"')"
req POST /v1/auth/approle/login -d '{"role_id":"rid-1","secret_id":"wrong"}'
check "approle bad secret 400" '400 {"errors":["invalid role or secret ID"]}' "$STATUS $(body)"
req POST /v1/auth/approle/login -d '{"secret_id":"sid-1"}'
check "approle missing role_id 400" '400 {"errors":["missing role_id"]}' "$STATUS $(body)"
TOKEN="$AR_TOKEN"
req POST /v1/auth/token/renew-self -d '{"increment":"1h"}'
check "renew-self capped at max_ttl with warning" '200 true 1' \
    "$STATUS $(j 'd["auth"]["lease_duration"] <= 900') $(j 'len(d["warnings"])')"

admin POST /__fake/config '{"kubernetes_roles":[{"role":"rekey","jwt":"jwt-ok","policies":["rekey"],"ttl":300}]}'
TOKEN=
req POST /v1/auth/kubernetes/login -d '{"role":"rekey","jwt":"jwt-ok"}'
check "kubernetes login" '200 "rekey" 300' "$STATUS $(j 'd["auth"]["metadata"]["role"]') $(j 'd["auth"]["lease_duration"]')"
req POST /v1/auth/kubernetes/login -d '{"role":"rekey","jwt":"jwt-bad"}'
check "kubernetes bad jwt 403" 403 "$STATUS"
req POST /v1/auth/kubernetes/login -d '{"role":"other","jwt":"jwt-ok"}'
check "kubernetes unknown role 400" '400 {"errors":["invalid role name \"other\""]}' "$STATUS $(body)"

admin POST /__fake/config '{"tokens":[{"token":"limited","ttl":600,"capabilities":{"secret/data/app/*":["create","read","update"],"secret/metadata/app/*":["patch","read"]}}]}'
TOKEN=limited
req POST /v1/sys/capabilities-self -d '{"paths":["secret/data/app/db"]}'
check "capabilities-self" '["create", "read", "update"] ["create", "read", "update"]' \
    "$(j 'd["data"]["secret/data/app/db"]') $(j 'd["capabilities"]')"
req POST /v1/sys/capabilities-self -d '{"paths":["transit/keys/k/rotate","secret/metadata/app/db"]}'
check "capabilities-self two paths" '["deny"] ["patch", "read"] false' \
    "$(j 'd["data"]["transit/keys/k/rotate"]') $(j 'd["data"]["secret/metadata/app/db"]') $(j '"capabilities" in d["data"]')"
req GET /v1/secret/data/other
check "ACL denial 403 multierror" '403 ["1 error occurred:\n\t* permission denied\n\n"]' "$STATUS $(j 'd["errors"]')"
req DELETE /v1/secret/metadata/app/db
check "ACL: delete not granted" 403 "$STATUS"
TOKEN=root

# ------------------------------------------------------------ transit
req POST /v1/transit/keys/pay -d '{"type":"aes256-gcm96"}'
check "transit create 200" '200 1' "$STATUS $(j 'd["data"]["latest_version"]')"
req POST /v1/transit/encrypt/pay -d '{"plaintext":"aGVsbG8="}'
CT1="$(j 'd["data"]["ciphertext"]' | tr -d '"')"
check "transit encrypt v1" 'vault:v1:' "${CT1:0:9}"
req POST /v1/transit/keys/pay/rotate
check "transit rotate 200 latest 2" '200 2' "$STATUS $(j 'd["data"]["latest_version"]')"
req POST /v1/transit/keys/pay/config -d '{"min_decryption_version":2}'
check "transit config min_decryption_version" '200 2' "$STATUS $(j 'd["data"]["min_decryption_version"]')"
req GET /v1/transit/keys/pay
check "transit read keys map" '["1", "2"] 2' "$(j 'sorted(d["data"]["keys"])') $(j 'd["data"]["latest_version"]')"
req POST /v1/transit/decrypt/pay -d "{\"ciphertext\":\"$CT1\"}"
check "transit decrypt below min version 400" '400 {"errors":["ciphertext or signature version is disallowed by policy (too old)"]}' "$STATUS $(body)"
req POST /v1/transit/rewrap/pay -d "{\"ciphertext\":\"$CT1\"}"
check "transit rewrap of a too-old ciphertext fails too" 400 "$STATUS"
req POST /v1/transit/keys/missing/rotate
check "transit rotate unknown 400" '400 {"errors":["key not found"]}' "$STATUS $(body)"
req GET /v1/transit/keys/missing
check "transit read unknown 404" '404 {"errors":[]}' "$STATUS $(body)"
admin POST /__fake/config '{"transit_write_status":204}'
req POST /v1/transit/keys/pay/rotate
check "old-Vault rotate 204" "204" "$STATUS"
admin POST /__fake/config '{"transit_write_status":200}'
req GET /v1/transit/keys/pay
check "rotate 204 still rotated" 3 "$(j 'd["data"]["latest_version"]')"

# ------------------------------------------------------------ quota 429
admin POST /__fake/quota '{"max_requests":2,"retry_after":3}'
req GET /v1/secret/data/app/db
req GET /v1/secret/data/app/db
req GET /v1/secret/data/app/db
check "quota 429 body" '429 {"errors":["request path \"secret/data/app/db\": rate limit quota exceeded"]}' "$STATUS $(body)"
check "quota Retry-After" 3 "$(hdr Retry-After)"
check "quota X-Ratelimit-Remaining" 0 "$(hdr X-Ratelimit-Remaining)"
req GET /v1/sys/health
check "health exempt from quota" 200 "$STATUS"
admin POST /__fake/quota '{"max_requests":0,"headers":false}'
req GET /v1/secret/data/app/db
check "quota without headers (Vault default)" "429 " "$STATUS $(hdr Retry-After)"
admin DELETE /__fake/quota
req GET /v1/secret/data/app/db
check "quota cleared" 200 "$STATUS"
# The same through Vault's own endpoints (what a real test bed would configure).
req POST /v1/sys/quotas/config -d '{"enable_rate_limit_response_headers":true}'
check "sys/quotas/config 204" 204 "$STATUS"
req POST /v1/sys/quotas/rate-limit/rekey -d '{"path":"secret/","rate":2,"interval":"10s","block_interval":"20s"}'
check "sys/quotas/rate-limit 204" 204 "$STATUS"
req GET /v1/secret/data/app/db
check "allowed answers carry X-Ratelimit-* when enabled" "200 2 1" "$STATUS $(hdr X-Ratelimit-Limit) $(hdr X-Ratelimit-Remaining)"
req GET /v1/secret/data/app/db
req GET /v1/secret/data/app/db
check "rate-limit quota 429 with block_interval Retry-After" "429 true" "$STATUS $([ "$(hdr Retry-After)" -ge 18 ] && echo true)"
req GET /v1/transit/keys/pay
check "quota path prefix scopes it" 200 "$STATUS"
req DELETE /v1/sys/quotas/rate-limit/rekey
req GET /v1/secret/data/app/db
check "rate-limit quota deleted" 200 "$STATUS"
req POST /v1/sys/quotas/config -d '{"enable_rate_limit_response_headers":false}'

# ------------------------------------------------------------ injections
admin POST /__fake/inject '{"path_regex":"^/v1/secret/data/app/db$","method":"GET","action":"status","status":503,"headers":{"Retry-After":"1"},"count":1}'
req GET /v1/secret/data/app/db
check "inject 503 once" '503 {"errors":["Vault is sealed"]} 1' "$STATUS $(body) $(hdr Retry-After)"
req GET /v1/secret/data/app/db
check "inject expired after count" 200 "$STATUS"
admin POST /__fake/inject '{"path_regex":"secret/data","method":"PUT|POST","action":"status","status":412,"body":{"errors":["custom"]},"skip":1}'
req POST /v1/secret/data/app/inj -d '{"data":{"a":"1"}}'
check "inject skip lets the first through" 200 "$STATUS"
req POST /v1/secret/data/app/inj -d '{"data":{"a":"2"}}'
check "inject 412 custom body" '412 {"errors":["custom"]}' "$STATUS $(body)"
admin POST /__fake/inject '{"path_regex":"secret/data/app/db","action":"reset"}'
req GET /v1/secret/data/app/db
check "inject reset → curl 56 (connection reset)" 56 "$RC"
req GET /v1/secret/data/app/db
CUR="$(j 'd["data"]["metadata"]["version"]')"
admin POST /__fake/inject '{"path_regex":"secret/data/app/db","method":"POST","action":"reset_after_apply"}'
req POST /v1/secret/data/app/db -d "{\"data\":{\"password\":\"p4\"},\"options\":{\"cas\":$CUR}}"
check "reset_after_apply: client sees a reset" 56 "$RC"
req GET /v1/secret/data/app/db
check "reset_after_apply: the write landed" "\"p4\" $((CUR + 1))" "$(j 'd["data"]["data"]["password"]') $(j 'd["data"]["metadata"]["version"]')"
req POST /v1/secret/data/app/db -d "{\"data\":{\"password\":\"p4\"},\"options\":{\"cas\":$CUR}}"
check "blind retry after a lost response hits the CAS 400" 400 "$STATUS"
req GET /v1/secret/data/app/db
CUR="$(j 'd["data"]["metadata"]["version"]')"
admin POST /__fake/inject '{"path_regex":"secret/data/app/db","method":"POST","action":"status_after_apply","status":502}'
req POST /v1/secret/data/app/db -d "{\"data\":{\"password\":\"p5\"},\"options\":{\"cas\":$CUR}}"
check "status_after_apply: client sees the 502" 502 "$STATUS"
req GET /v1/secret/data/app/db
check "status_after_apply: the write landed" "\"p5\" $((CUR + 1))" "$(j 'd["data"]["data"]["password"]') $(j 'd["data"]["metadata"]["version"]')"
CUR=$((CUR + 1))
admin POST /__fake/inject '{"path_regex":"secret/data/app/db","method":"POST","action":"write_before","kv":{"path":"app/db","data":{"other":"theirs"}}}'
req POST /v1/secret/data/app/db -d "{\"data\":{\"password\":\"p6\"},\"options\":{\"cas\":$CUR}}"
check "write_before: our cas write now mismatches" 400 "$STATUS"
req GET /v1/secret/data/app/db
check "write_before: their version kept our keys and added theirs" "\"p5\" \"theirs\" $((CUR + 1))" "$(j 'd["data"]["data"]["password"]') $(j 'd["data"]["data"]["other"]') $(j 'd["data"]["metadata"]["version"]')"
admin POST /__fake/inject '{"path_regex":"sys/health","action":"hang","ms":400}'
t0=$(date +%s%N)
req GET /v1/sys/health
t1=$(date +%s%N)
check "hang then close → curl 52 (empty reply)" 52 "$RC"
check_true "hang lasted ≥ 0.4 s" [ $(( (t1 - t0) / 1000000 )) -ge 380 ]
admin POST /__fake/inject '{"path_regex":"sys/health","action":"latency","ms":300}'
t0=$(date +%s%N)
req GET /v1/sys/health
t1=$(date +%s%N)
check "latency still answers" 200 "$STATUS"
check_true "latency ≥ 0.3 s" [ $(( (t1 - t0) / 1000000 )) -ge 280 ]
admin POST /__fake/inject '{"path_regex":"sys/health","action":"html"}'
req GET /v1/sys/health
check "html 502" "502 text/html" "$STATUS $(hdr Content-Type)"
admin POST /__fake/inject '{"path_regex":"secret/data/app/db","action":"truncated"}'
req GET /v1/secret/data/app/db
check "truncated body → curl 18" 18 "$RC"
admin POST /__fake/inject '{"path_regex":"secret/data/app/db","action":"big","bytes":200000}'
req GET /v1/secret/data/app/db
check "big body size" "200 200000" "$STATUS $(wc -c <"$tmp/body" | tr -d ' ')"
check "big body is JSON" true "$(j 'len(d["data"]["padding"]) > 0')"
admin POST /__fake/inject '{"path_regex":"sys/health","action":"close"}'
req GET /v1/sys/health
check "close → curl 52" 52 "$RC"

# A hang must not block other requests (threaded server).
admin POST /__fake/inject '{"path_regex":"sys/health","action":"hang","ms":3000}'
curl -sS --max-time 10 -o /dev/null "$BASE/v1/sys/health" 2>/dev/null &
hang_curl=$!
sleep 0.2
t0=$(date +%s%N)
req GET /v1/secret/data/app/db
t1=$(date +%s%N)
check "other requests served during a hang" 200 "$STATUS"
check_true "…promptly" [ $(( (t1 - t0) / 1000000 )) -lt 1000 ]
wait "$hang_curl" 2>/dev/null

# ------------------------------------------------------------ 413, 404, log, state, seed
admin POST /__fake/config '{"max_request_size":1024}'
big="$("$PY" -c 'print("{\"data\":{\"a\":\"" + "x"*2000 + "\"}}")')"
req POST /v1/secret/data/app/huge -d "$big"
check "413 body too large" '413 {"errors":["http: request body too large"]}' "$STATUS $(body)"
admin POST /__fake/config "{\"max_request_size\":$((32 * 1024 * 1024))}"
req GET /v1/nomount/x
check "unknown route 404" '404 {"errors":["no handler for route \"nomount/x\". route entry not found."]}' "$STATUS $(body)"
req POST /v1/secret/data/app/bad -d '{not json'
check "bad JSON 400" 400 "$STATUS"

admin GET /__fake/requests
check "request log redacts tokens" "True" "$(adminj 'all(e["headers"].get("X-Vault-Token","<redacted>")=="<redacted>" for e in d["requests"])')"
check "request log has bodies and statuses" "True" "$(adminj 'any(e["method"]=="POST" and e["status"]==400 and e["body"]["options"]=={"cas":0} for e in d["requests"])')"
admin DELETE /__fake/requests
admin GET /__fake/requests
check "request log cleared" 0 "$(adminj 'len(d["requests"])')"

admin POST /__fake/kv '{"mount":"secret","path":"app/db","data":{"password":"other-writer"},"custom_metadata":{"owner":"someone-else"}}'
NEWV="$(adminj 'd["version"]')"
req GET /v1/secret/data/app/db
check "seeded concurrent write visible" "\"other-writer\" $NEWV {\"owner\": \"someone-else\"}" \
    "$(j 'd["data"]["data"]["password"]') $(j 'd["data"]["metadata"]["version"]') $(j 'd["data"]["metadata"]["custom_metadata"]')"
admin GET /__fake/state
check "state dump has versions" "True" "$(adminj "'$NEWV' in d['namespaces']['']['mounts']['secret']['keys']['app/db']['versions']")"
admin POST /__fake/reset
req GET /v1/secret/data/app/db
check "reset clears state" 404 "$STATUS"

# Namespaces keep separate state.
req POST /v1/secret/data/ns-x -H 'X-Vault-Namespace: team-a/' -d '{"data":{"a":"1"}}'
req GET /v1/secret/data/ns-x
check "namespace state separate (root ns)" 404 "$STATUS"
req GET /v1/team-a/secret/data/ns-x
check "namespace via path prefix" 200 "$STATUS"

# ------------------------------------------------------------ SIGTERM with a hanging connection
admin POST /__fake/inject '{"path_regex":".*","action":"hang"}'
curl -sS --max-time 30 -o /dev/null "$BASE/v1/sys/health" 2>/dev/null &
hang_curl=$!
sleep 0.3
t0=$(date +%s%N)
kill -TERM "$fake_pid"
for _ in $(seq 50); do kill -0 "$fake_pid" 2>/dev/null || break; sleep 0.1; done
t1=$(date +%s%N)
if kill -0 "$fake_pid" 2>/dev/null; then alive=yes; else alive=no; fi
wait "$fake_pid"; frc=$?
check "SIGTERM stops promptly despite a hang" "no 0" "$alive $frc"
check_true "…within 3 s" [ $(( (t1 - t0) / 1000000 )) -lt 3000 ]
check "port file removed on exit" no "$([ -e "$tmp/port" ] && echo yes || echo no)"
wait "$hang_curl" 2>/dev/null
fake_pid=""

# ------------------------------------------------------------ --state-file survives a restart
start_fake --state-file "$tmp/state.json"
admin POST /__fake/kv '{"path":"persist/me","data":{"k":"v"}}'
kill -TERM "$fake_pid"; wait "$fake_pid"; fake_pid=""
check "state file written on exit" yes "$([ -s "$tmp/state.json" ] && echo yes || echo no)"
start_fake --state-file "$tmp/state.json"
TOKEN=root
req GET /v1/secret/data/persist/me
check "state file reloaded on start" '200 "v"' "$STATUS $(j 'd["data"]["data"]["k"]')"
kill -TERM "$fake_pid"; wait "$fake_pid"; fake_pid=""

# ------------------------------------------------------------ (b) node-vault
node_status=ok
if [ "${VAULT_FAKE_SKIP_NODE:-}" = 1 ]; then
    node_status=skip
elif ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    node_status=skip
else
    prefix="${NODE_VAULT_PREFIX:-$tmp/node}"
    if [ ! -d "$prefix/node_modules/node-vault" ]; then
        mkdir -p "$prefix"
        if ! timeout 300 npm install --prefix "$prefix" --no-audit --no-fund --fetch-retries=1 --loglevel=error node-vault \
                >"$tmp/npm.log" 2>&1; then
            sed 's/^/# npm: /' "$tmp/npm.log" | tail -5
            node_status=skip
        fi
    fi
fi

if [ "$node_status" = ok ]; then
    start_fake
    echo "# node-vault against $BASE"
    admin POST /__fake/config '{"approle_roles":[{"role_name":"rekey","role_id":"node-rid","secret_id":"node-sid","policies":["rekey"],"token_ttl":600}],"kubernetes_roles":[{"role":"rekey","jwt":"node-jwt","policies":["rekey"]}]}'
    cat >"$tmp/check.js" <<'EOF'
'use strict';
const path = require('path');
const nodeVault = require(path.join(process.env.NV_PREFIX, 'node_modules', 'node-vault'));
const endpoint = process.env.VAULT_ADDR;
let pass = 0;
let fail = 0;
function check(name, ok, detail) {
    if (ok) { pass++; console.log(`PASS node: ${name}`); }
    else { fail++; console.log(`FAIL node: ${name}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`); }
}
async function rejects(name, promise, status, message) {
    try {
        const v = await promise;
        check(name, false, { resolved: v });
    } catch (e) {
        const got = e.response && e.response.statusCode;
        check(name, got === status && (message === undefined || e.message === message),
              { status: got, message: e.message });
    }
}
setTimeout(() => { console.log('FAIL node: timed out'); process.exit(1); }, 60000).unref();

(async () => {
    const root = nodeVault({ endpoint, token: 'root' });

    const health = await root.health();
    check('health', health.initialized === true && health.sealed === false, health);

    const self = await root.tokenLookupSelf();
    check('token auth: lookup-self root', self.data.policies.includes('root') && self.data.expire_time === null, self.data.policies);

    const app = nodeVault({ endpoint });
    const login = await app.approleLogin({ role_id: 'node-rid', secret_id: 'node-sid' });
    check('approle login sets token', app.token === login.auth.client_token && login.auth.lease_duration === 600
          && login.auth.renewable === true, login.auth);
    await rejects('approle bad secret_id → 400', nodeVault({ endpoint }).approleLogin({ role_id: 'node-rid', secret_id: 'nope' }),
                  400, 'invalid role or secret ID');

    const w1 = await app.write('secret/data/x', { data: { password: 'p1', user: 'app' }, options: { cas: 0 } });
    check('kv write cas=0 → version 1', w1.data.version === 1, w1.data);
    const r1 = await app.read('secret/data/x');
    check('kv read', r1.data.data.password === 'p1' && r1.data.metadata.version === 1, r1.data);
    await rejects('kv cas conflict rejects with 400', app.write('secret/data/x', { data: { password: 'p2' }, options: { cas: 0 } }),
                  400, 'check-and-set parameter did not match the current version');
    const w2 = await app.write('secret/data/x', { data: { password: 'p2', user: 'app' }, options: { cas: 1 } });
    check('kv write cas=1 → version 2', w2.data.version === 2, w2.data);
    const r0 = await app.read('secret/data/x?version=1');
    check('kv read ?version=1', r0.data.data.password === 'p1', r0.data);
    await rejects('kv read absent → 404', app.read('secret/data/absent'), 404);

    await app.update('secret/metadata/x', { custom_metadata: { 'rekey.fingerprint': 'b2:abc' } });
    const md = await app.read('secret/metadata/x');
    check('metadata merge-patch via update()', md.data.custom_metadata['rekey.fingerprint'] === 'b2:abc'
          && md.data.current_version === 2, md.data);
    const list = await app.list('secret/metadata/');
    check('LIST metadata', JSON.stringify(list.data.keys) === '["x"]', list.data);

    const renewed = await app.tokenRenewSelf({ increment: '5m' });
    check('renew-self', renewed.auth.lease_duration === 300 && renewed.auth.client_token === login.auth.client_token, renewed.auth);

    const k8s = nodeVault({ endpoint });
    const kl = await k8s.kubernetesLogin({ role: 'rekey', jwt: 'node-jwt', mount_point: 'kubernetes' });
    check('kubernetes login', typeof kl.auth.client_token === 'string' && kl.auth.metadata.role === 'rekey', kl.auth);
    await rejects('kubernetes bad jwt → 403', nodeVault({ endpoint }).kubernetesLogin({ role: 'rekey', jwt: 'bad', mount_point: 'kubernetes' }), 403);

    const created = await root.write('transit/keys/node-k', { type: 'aes256-gcm96' });
    check('transit create', created.data.latest_version === 1, created.data);
    const rotated = await root.write('transit/keys/node-k/rotate', {});
    check('transit rotate → 200 body, latest_version 2', rotated.data.latest_version === 2, rotated.data);
    const key = await root.read('transit/keys/node-k');
    check('transit read', key.data.latest_version === 2 && Object.keys(key.data.keys).sort().join() === '1,2', key.data);
    const enc = await root.encryptData({ name: 'node-k', plaintext: Buffer.from('hi').toString('base64') });
    const dec = await root.decryptData({ name: 'node-k', ciphertext: enc.data.ciphertext });
    check('transit encrypt/decrypt', enc.data.ciphertext.startsWith('vault:v2:')
          && Buffer.from(dec.data.plaintext, 'base64').toString() === 'hi', [enc.data, dec.data]);
    await rejects('transit rotate unknown key → 400', root.write('transit/keys/nope/rotate', {}), 400, 'key not found');

    await rejects('bad token → 403', nodeVault({ endpoint, token: 'bogus' }).read('secret/data/x'), 403, 'permission denied');

    console.log(`# node-vault: ${pass} passed, ${fail} failed`);
    process.exit(fail ? 1 : 0);
})().catch((e) => { console.log(`FAIL node: unexpected error: ${e && e.stack ? e.stack : e}`); process.exit(1); });
EOF
    NV_PREFIX="$prefix" VAULT_ADDR="$BASE" timeout 120 node "$tmp/check.js" >"$tmp/node.out" 2>&1
    cat "$tmp/node.out"
    pass=$((pass + $(grep -c '^PASS ' "$tmp/node.out")))
    fail=$((fail + $(grep -c '^FAIL ' "$tmp/node.out")))
    kill -TERM "$fake_pid" 2>/dev/null
    wait "$fake_pid" 2>/dev/null
    fake_pid=""
fi

echo "vault_fake: $pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
    exit 1
fi
if [ "$node_status" = skip ]; then
    echo "SKIP node-vault checks: VAULT_FAKE_SKIP_NODE=1, or node/npm or the npm registry is unavailable"
    exit 77
fi
exit 0
