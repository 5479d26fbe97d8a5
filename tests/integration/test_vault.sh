#!/bin/sh
# The vault provider against tests/fakes/vault_fake.py over loopback: KV v2
# rotation that keeps the other keys (one version per rotation, the run named
# in custom_metadata), Transit, rollback, every auth method and an expired
# token, a concurrent writer (no lost update), 429 with Retry-After, 5xx
# bursts, a hang (bounded; the circuit opens), a reset mid-write followed by
# --resume (no second version), bad responses (nothing recorded as rotated),
# and doctor.
. "$(dirname "$0")/lib.sh"
: "${REKEY_FAULT_BIN:?}" "${RK_FP:?}"
command -v curl >/dev/null || { echo "test_vault: curl missing"; exit 1; }

python3 "$SRC/tests/fakes/vault_fake.py" --port 0 --port-file "$T/vport" 2>"$T/fake.log" &
FAKE=$!
trap 'kill $FAKE 2>/dev/null; wait $FAKE 2>/dev/null; rm -rf "$T"' EXIT
i=0
while [ ! -s "$T/vport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$T/vport" ] || { echo "test_vault: the fake did not start"; cat "$T/fake.log"; exit 1; }
V="http://127.0.0.1:$(cat "$T/vport")"

admin() { curl -sS -X "$1" "$V/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
vault() { curl -sS -X "$1" "$V/v1/$2" -H 'X-Vault-Token: root' ${3:+-d "$3"}; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
kvstate() { admin GET state | jq_ "d['namespaces']['']['mounts']['secret']['keys']['$1']$2"; }

printf 'root\n' >"$T/token"
printf 'sid-123\n' >"$T/secret_id"
printf 'eyJhbGciOi.jwt.fake\n' >"$T/jwt"
# A token or a secret_id open to group or others is refused (the kit's
# RK_CRED_PRIVATE); the service account JWT is not (Kubernetes makes it 0644).
chmod 600 "$T/token" "$T/secret_id"
chmod 644 "$T/jwt"
admin POST config '{"approle_roles":[{"role_name":"rekey","role_id":"rid-1","secret_id":"sid-123","token_ttl":2,"renewable":false}],
  "kubernetes_roles":[{"role":"rekey","jwt":"eyJhbGciOi.jwt.fake","ttl":3600}],
  "tokens":[{"token":"short-lived","ttl":1}]}' >/dev/null
admin POST config '{"approle_roles":[{"role_name":"renewer","role_id":"rid-2","secret_id":"sid-123","token_ttl":3,"token_max_ttl":60,"renewable":true}]}' >/dev/null

conn='timeout: {connect: 1s, total: 2s}, retry: {max_attempts: 3, base_delay: 50ms, max_delay: 1s}, circuit_breaker: {failures: 3, cooldown: 30s}, insecure_http: true'
cat >"$T/rekey.yaml" <<EOC
state_dir: $T/var
environment: test
policy_dir: $T/policy
providers:
  vault: {type: vault, address: "$V", $conn, auth: {method: token, token_file: $T/token}}
  vault-slow: {type: vault, address: "$V", timeout: {connect: 1s, total: 5s}, insecure_http: true, auth: {method: token, token_file: $T/token}}
  vault-ar: {type: vault, address: "$V", $conn, auth: {method: approle, role_id: rid-1, secret_id_file: $T/secret_id}}
  vault-k8s: {type: vault, address: "$V", $conn, auth: {method: kubernetes, role: rekey, jwt_file: $T/jwt}}
  vault-exp: {type: vault, address: "$V", $conn, auth: {method: token, token_file: $T/token-exp}}
  vault-cb: {type: vault, address: "$V", timeout: {connect: 1s, total: 500ms}, retry: {max_attempts: 3, base_delay: 10ms, max_delay: 50ms}, circuit_breaker: {failures: 3, cooldown: 2s}, insecure_http: true, auth: {method: token, token_file: $T/token}}
  vault-renew: {type: vault, address: "$V", $conn, auth: {method: approle, role_id: rid-2, secret_id_file: $T/secret_id, mount: approle}}
EOC
mkdir -p "$T/policy"
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\n' >"$T/policy/quick.yaml"
printf 'name: sleepy\nrotate_every: 1d\nverify: {exec: [sleep, "2.5"]}\n' >"$T/policy/sleepy.yaml"
cat >"$T/inv.yaml" <<'EOI'
secrets:
  - {name: app/db, provider: vault, locator: {path: app/db, key: password}, policy: quick}
  - {name: app/tk, provider: vault, locator: {transit_key: app-key, min_decryption_keep: 1}, policy: quick}
  - {name: ar/db, provider: vault-ar, locator: {path: ar/db, key: password}, policy: quick}
  - {name: k8s/db, provider: vault-k8s, locator: {path: k8s/db, key: password}, policy: quick}
  - {name: exp/db, provider: vault-exp, locator: {path: exp/db, key: password}, policy: quick}
  - {name: race/db, provider: vault-slow, locator: {path: race/db, key: password}, policy: quick}
  - {name: sg/a, provider: vault-slow, locator: {path: sg/a, key: v}, policy: quick}
  - {name: sg/b, provider: vault-slow, locator: {path: sg/b, key: v}, policy: quick}
  - {name: h1, provider: vault, locator: {path: h/1, key: v}, policy: quick}
  - {name: h2, provider: vault, locator: {path: h/2, key: v}, policy: quick}
  - {name: h3, provider: vault, locator: {path: h/3, key: v}, policy: quick}
  - {name: bad/db, provider: vault, locator: {path: bad/db, key: password}, policy: quick}
  - {name: cb/a, provider: vault-cb, locator: {path: cb/a, key: v}, policy: quick}
  - {name: cb/b, provider: vault-cb, locator: {path: cb/b, key: v}, policy: quick}
  - {name: cb/c, provider: vault-cb, locator: {path: cb/c, key: v}, policy: quick}
  - {name: rn/a, provider: vault-renew, locator: {path: rn/a, key: v}, policy: quick}
  - {name: rn/b, provider: vault-renew, locator: {path: rn/b, key: v}, policy: quick}
  - {name: sleeper, locator: {path: sleeper}, policy: sleepy}
EOI
rk init >/dev/null
expect_rc "apply an inventory with vault secrets" 0 rk apply -f "$T/inv.yaml"

# ---- KV v2: other keys preserved, one version per rotation, run in custom_metadata ----
admin POST kv '{"mount":"secret","path":"app/db","data":{"username":"app","password":"old-password-1"}}' >/dev/null
expect_rc "rotate a KV v2 secret" 0 rk rotate app/db
run1=$(rk --output json runs | jq_ "d[0]['id']")
check "version went from 1 to 2" [ "$(kvstate app/db "['current_version']")" = 2 ]
check "the other key is preserved" [ "$(kvstate app/db "['versions']['2']['data']['username']")" = app ]
new=$(kvstate app/db "['versions']['2']['data']['password']")
check "the password changed" [ "$new" != old-password-1 -a ${#new} = 24 ]
check "custom_metadata names the run" [ "$(kvstate app/db "['custom_metadata']['rekey-run']")" = "$run1" ]
check "custom_metadata names the secret" [ "$(kvstate app/db "['custom_metadata']['rekey-secret']")" = app/db ]
fp=$(printf %s "$new" | "$RK_FP" "$T/var")
check "the recorded fingerprint is Vault's value" [ "$fp" = "$(rk status app/db --output json | jq_ "d['current_fp']")" ]
expect_rc "rotate again" 0 rk rotate app/db
check "exactly one more version" [ "$(kvstate app/db "['current_version']")" = 3 ]
expect_rc "rollback" 0 rk rollback app/db
check "rollback wrote version 4" [ "$(kvstate app/db "['current_version']")" = 4 ]
check "with version 2's value" [ "$(kvstate app/db "['versions']['4']['data']['password']")" = "$new" ]
check "and the other key" [ "$(kvstate app/db "['versions']['4']['data']['username']")" = app ]

# ---- Transit ----
vault POST transit/keys/app-key '{"type":"aes256-gcm96"}' >/dev/null
expect_rc "rotate a transit key" 0 rk rotate app/tk
lv=$(vault GET transit/keys/app-key | jq_ "d['data']['latest_version']")
check "latest_version went to 2" [ "$lv" = 2 ]
check "min_decryption_version raised (keep 1)" [ "$(vault GET transit/keys/app-key | jq_ "d['data']['min_decryption_version']")" = 2 ]
check "rekey records version 2" [ "$(rk status app/tk --output json | jq_ "d['current_version']")" = 2 ]

# ---- auth methods ----
expect_rc "AppRole login" 0 rk rotate ar/db
sleep 3   # the AppRole token (ttl 2s) expires; the next call gets 403 and logs in again
expect_rc "AppRole after its token expired (re-login on 403)" 0 rk rotate ar/db
expect_rc "Kubernetes login" 0 rk rotate k8s/db
printf 'short-lived\n' >"$T/token-exp"
chmod 600 "$T/token-exp"
sleep 2
expect_rc "an expired token fails" 1 rk rotate exp/db
check "  with Vault's reason" contains "$T/err" "permission denied"
check "  as an auth failure of that provider" contains "$T/err" "vault-exp"
printf 'root\n' >"$T/token-exp"
expect_rc "a renewed token file is read again" 0 rk rotate exp/db
chmod 644 "$T/token-exp"
expect_rc "a token file readable by others is refused" 1 rk rotate exp/db
check "  naming the file and the fix" contains "$T/err" "$T/token-exp holds a credential but is open to group or others (mode 0644); fix it with: chmod 600 $T/token-exp"
chmod 600 "$T/token-exp"
expect_rc "  and used once it is private again" 0 rk rotate exp/db

# ---- a concurrent writer: the cas conflict is resolved, nothing lost ----
# Another writer replaces the whole entry while our write is delayed.
admin POST kv '{"mount":"secret","path":"race/db","data":{"password":"p0"}}' >/dev/null
admin POST inject '{"path_regex":"^/v1/secret/data/race/db$","method":"POST","action":"latency","ms":1500,"count":1}' >/dev/null
( sleep 0.5; admin POST kv '{"mount":"secret","path":"race/db","data":{"password":"theirs","extra":"e"}}' >/dev/null ) &
writer=$!
expect_rc "a rotation racing another writer starts again from their version" 0 rk rotate race/db
wait $writer
check "  their version stays in the history" [ "$(kvstate race/db "['versions']['2']['data']['password']")" = theirs ]
check "  ours is the one version after it" [ "$(kvstate race/db "['current_version']")" = 3 ]
check "  keeping the key they added" [ "$(kvstate race/db "['versions']['3']['data']['extra']")" = e ]
v=$(kvstate race/db "['versions']['3']['data']['password']")
check "  with our value, as recorded" [ "$(printf %s "$v" | "$RK_FP" "$T/var")" = "$(rk status race/db --output json | jq_ "d['current_fp']")" ]
check "  and their version as the one before ours" [ "$(rk history race/db --output json | jq_ "d[0]['old_version']")" = 2 ]
expect_rc "the next rotation succeeds" 0 rk rotate race/db

# Between our read and our write someone changes another key of the entry.
admin POST kv '{"mount":"secret","path":"cw/db","data":{"password":"p0","username":"app"}}' >/dev/null
cat >"$T/cw.yaml" <<'EOI'
secrets:
  - {name: cw/db, provider: vault, locator: {path: cw/db, key: password}, policy: quick}
  - {name: cw/tk, provider: vault, locator: {transit_key: cw-key}, policy: quick}
  - {name: seq/db, provider: vault, locator: {path: seq/db, key: password}, policy: quick}
EOI
expect_rc "apply more vault secrets" 0 rk apply -f "$T/cw.yaml"
admin POST inject '{"path_regex":"^/v1/secret/data/cw/db$","method":"POST","action":"write_before","kv":{"path":"cw/db","data":{"username":"renamed"}},"count":1}' >/dev/null
expect_rc "another key changed between our read and write: rotated" 0 rk rotate cw/db
check "  after their version 2, ours is version 3" [ "$(kvstate cw/db "['current_version']")" = 3 ]
check "  their change kept" [ "$(kvstate cw/db "['versions']['3']['data']['username']")" = renamed ]
v=$(kvstate cw/db "['versions']['3']['data']['password']")
check "  our new value written" [ "$v" != p0 -a "$(printf %s "$v" | "$RK_FP" "$T/var")" = "$(rk status cw/db --output json | jq_ "d['current_fp']")" ]
check "  their version 2 still has the old value (exactly one version of ours)" [ "$(kvstate cw/db "['versions']['2']['data']['password']")" = p0 ]
check "  the conflict is in the journal" sh -c "rk() { \"\$REKEY_BIN\" \"\$@\"; }; REKEY_CONFIG='$T/rekey.yaml' \"$REKEY_BIN\" -c '$T/rekey.yaml' run \"\$(\"$REKEY_BIN\" -c '$T/rekey.yaml' --output json runs | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"id\"])')\" | grep -q conflict"
before=$(kvstate cw/db "['current_version']")
admin POST inject '{"path_regex":"^/v1/secret/data/cw/db$","method":"POST","action":"write_before","kv":{"path":"cw/db","data":{"username":"again"}},"count":3}' >/dev/null
expect_rc "three conflicts in a row: the rotation fails" 1 rk rotate cw/db
check "  with a conflict error naming the secret" sh -c "grep -q \"conflict: 'cw/db' was changed by someone else during each of 3 attempts\" '$T/err' || grep -q \"conflict: 'cw/db'\" '$T/out'"
check "  only their three versions were added" [ "$(kvstate cw/db "['current_version']")" = $((before + 3)) ]
check "  our key untouched by rekey" [ "$(kvstate cw/db "['versions']['$((before + 3))']['data']['password']")" = "$(kvstate cw/db "['versions']['$before']['data']['password']")" ]
admin DELETE inject >/dev/null
expect_rc "  and the next rotation succeeds" 0 rk rotate cw/db

# ---- writes refused with 429/503, failing with 5xx, or landing behind a 502 ----
wcount() { admin GET requests | jq_ "len([r for r in d['requests'] if r['path']=='/v1/secret/data/$1' and r['method'] in ('POST','PUT')])"; }
cwv() { kvstate cw/db "['current_version']"; }
cwfp() { v=$(kvstate cw/db "['versions'][str(d['namespaces']['']['mounts']['secret']['keys']['cw/db']['current_version'])]['data']['password']"); printf %s "$v" | "$RK_FP" "$T/var"; }
for case in '429 quota:{"action":"status","status":429,"headers":{"Retry-After":"1"},"body":{"errors":["request path \"secret/data/cw/db\": rate limit quota exceeded"]},"count":1}:2' \
	'502 burst:{"action":"status","status":502,"count":2}:3' \
	'503 burst (sealed/standby):{"action":"status","status":503,"body":{"errors":["Vault is sealed"]},"count":2}:3' \
	'reset, not applied:{"action":"reset","count":1}:2' \
	'landed but answered 502:{"action":"status_after_apply","status":502,"count":1}:1' \
	'landed but reset:{"action":"reset_after_apply","count":1}:1'; do
	what=${case%%:*}; rest=${case#*:}; inj=${rest%:*}; nw=${rest##*:}
	admin DELETE inject >/dev/null
	admin DELETE requests >/dev/null
	admin POST inject "$(echo "$inj" | sed 's/^{/{"path_regex":"^\/v1\/secret\/data\/cw\/db$","method":"POST",/')" >/dev/null
	b=$(cwv)
	expect_rc "a write $what: rotated" 0 rk rotate cw/db
	check "  exactly one new version" [ "$(cwv)" = $((b + 1)) ]
	check "  $nw write(s) sent" [ "$(wcount cw/db)" = "$nw" ]
	check "  the recorded fingerprint is Vault's value" [ "$(cwfp)" = "$(rk status cw/db --output json | jq_ "d['current_fp']")" ]
done
admin DELETE inject >/dev/null
admin DELETE requests >/dev/null
admin POST inject '{"path_regex":"^/v1/secret/data/cw/db$","method":"POST","action":"status","status":502,"count":-1}' >/dev/null
b=$(cwv)
expect_rc "writes that keep failing with 502: the rotation fails" 1 rk rotate cw/db
check "  bounded by retry.max_attempts (3 writes)" [ "$(wcount cw/db)" = 3 ]
check "  nothing written" [ "$(cwv)" = "$b" ]
admin DELETE inject >/dev/null

# Transit rotate: latest_version settles an unknown outcome.
vault POST transit/keys/cw-key '{"type":"aes256-gcm96"}' >/dev/null
tlv() { vault GET transit/keys/cw-key | jq_ "d['data']['latest_version']"; }
for case in 'rotate landed but answered 502:{"action":"status_after_apply","status":502,"count":1}' \
	'rotate refused with 503:{"action":"status","status":503,"count":1}' \
	'rotate failed with 500:{"action":"status","status":500,"count":1}'; do
	what=${case%%:*}; inj=${case#*:}
	admin DELETE inject >/dev/null
	admin POST inject "$(echo "$inj" | sed 's/^{/{"path_regex":"^\/v1\/transit\/keys\/cw-key\/rotate$","method":"POST",/')" >/dev/null
	b=$(tlv)
	expect_rc "transit: $what: rotated" 0 rk rotate cw/tk
	check "  exactly one new key version" [ "$(tlv)" = $((b + 1)) ]
	check "  recorded" [ "$(rk status cw/tk --output json | jq_ "d['current_version']")" = $((b + 1)) ]
done
admin DELETE inject >/dev/null

# ---- rollback sequences on Vault KV: always the value before the latest change ----
admin POST kv '{"mount":"secret","path":"seq/db","data":{"password":"v0-original","username":"u"}}' >/dev/null
seqv() { kvstate seq/db "['versions'][str(d['namespaces']['']['mounts']['secret']['keys']['seq/db']['current_version'])]['data']['password']"; }
s0=$(seqv)
rk rotate seq/db >/dev/null 2>&1; s1=$(seqv)
check "seq: rotate changes the value" [ "$s1" != "$s0" ]
rk rollback seq/db >/dev/null 2>&1
check "seq: rollback restores the original" [ "$(seqv)" = "$s0" ]
rk rotate seq/db >/dev/null 2>&1; s3=$(seqv)
check "seq: rotate again, a new value" [ "$s3" != "$s0" -a "$s3" != "$s1" ]
rk rollback seq/db >/dev/null 2>&1
check "seq: rollback gives the value before that rotation (the restored original), not the rolled-back one" [ "$(seqv)" = "$s0" ]
rk rollback seq/db >/dev/null 2>&1
check "seq: rollback of the rollback gives the rotated value back" [ "$(seqv)" = "$s3" ]
check "seq: the other key is kept throughout" [ "$(kvstate seq/db "['versions'][str(d['namespaces']['']['mounts']['secret']['keys']['seq/db']['current_version'])]['data']['username']")" = u ]
check "seq: rekey's record matches Vault" [ "$(printf %s "$(seqv)" | "$RK_FP" "$T/var")" = "$(rk status seq/db --output json | jq_ "d['current_fp']")" ]

# ---- 429 with Retry-After, 5xx bursts ----
admin DELETE requests >/dev/null
admin POST inject '{"path_regex":"^/v1/secret/data/h/1$","method":"GET","action":"status","status":429,"headers":{"Retry-After":"1"},"count":1}' >/dev/null
t0=$(date +%s%N)
expect_rc "429 with Retry-After: waits, then succeeds" 0 rk rotate h1
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "  it waited at least the Retry-After ($ms ms)" [ "$ms" -ge 1000 ]
admin POST inject '{"path_regex":"^/v1/secret/data/h/2$","method":"GET","action":"status","status":503,"count":2}' >/dev/null
admin DELETE requests >/dev/null
expect_rc "a burst of two 503s: retried, then succeeds" 0 rk rotate h2
n=$(admin GET requests | jq_ "len([r for r in d['requests'] if r['path']=='/v1/secret/data/h/2' and r['method']=='GET'])")
check "  the reads were retried ($n GETs)" [ "$n" -ge 3 ]

# ---- a hang: bounded, and the circuit opens ----
admin DELETE inject >/dev/null
admin POST inject '{"path_regex":"^/v1/secret/data/h/","method":"*","action":"hang","ms":20000,"count":-1}' >/dev/null
admin DELETE requests >/dev/null
t0=$(date +%s%N)
expect_rc "a hanging Vault fails the run" 1 rk rotate --parallel 1 h1 h2 h3
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "  within the configured bound ($ms ms < 15000)" [ "$ms" -lt 15000 ]
check "  the report says it timed out" sh -c "grep -qi 'tim' '$T/err' || grep -qi 'tim' '$T/out'"
check "  the circuit opened" sh -c "grep -q 'circuit open' '$T/err' || grep -q 'circuit open' '$T/out'"
n=$(admin GET requests | jq_ "len([r for r in d['requests'] if r['path'].startswith('/v1/secret/data/h/')])")
check "  later secrets were not sent once it was open ($n requests)" [ "$n" -le 4 ]
admin DELETE inject >/dev/null
expect_rc "a new process starts closed and succeeds" 0 rk rotate h3

# ---- SIGTERM while Vault hangs: the HTTP waits stop at once, --resume finishes ----
admin DELETE inject >/dev/null
admin POST kv '{"mount":"secret","path":"sg/a","data":{"v":"a0","other":"kept"}}' >/dev/null
admin POST inject '{"path_regex":"^/v1/secret/data/sg/","method":"*","action":"hang","ms":20000,"count":-1}' >/dev/null
"$REKEY_BIN" rotate --parallel 2 sg/a sg/b >"$T/sg.out" 2>"$T/sg.err" &
pid=$!
sleep 0.7
t0=$(date +%s%N)
kill -TERM "$pid"
wait "$pid"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "SIGTERM during a hanging Vault call: exit 3 (got $rc)" [ "$rc" = 3 ]
# vault-slow's own timeout is 5 s: only the cancellation explains an earlier end.
check "  within 2 s of the signal ($ms ms), not at the 5 s timeout" [ "$ms" -lt 2000 ]
check "  prints the command that finishes the run" contains "$T/sg.out" "finish with: rekey rotate --resume"
check "  nothing written to Vault meanwhile" [ "$(kvstate sg/a "['current_version']")" = 1 ]
admin DELETE inject >/dev/null
expect_rc "  --resume finishes the run" 0 rk rotate --resume all
check "  one new version of sg/a" [ "$(kvstate sg/a "['current_version']")" = 2 ]
check "  sg/a: the recorded value is in Vault" [ "$(printf %s "$(kvstate sg/a "['versions']['2']['data']['v']")" | "$RK_FP" "$T/var")" = "$(rk status sg/a --output json | jq_ "d['current_fp']")" ]
check "  sg/a: its other key kept" [ "$(kvstate sg/a "['versions']['2']['data']['other']")" = kept ]
check "  sg/b created once" [ "$(kvstate sg/b "['current_version']")" = 1 ]

# ---- in one process: the circuit opens, fails fast, then closes after the cool-down ----
# (one rotation at a time: the sequence, not the concurrency, is under test)
admin DELETE requests >/dev/null
admin POST inject '{"path_regex":"^/v1/secret/data/cb/a$","method":"GET","action":"hang","ms":20000,"count":3}' >/dev/null
expect_rc "hang, open, cool-down, close: a partial run" 3 rk --output json rotate --parallel 1 cb/a cb/b sleeper cb/c
res() { python3 -c "import json; d=json.load(open('$T/out')); print([s for s in d['secrets'] if s['name']=='$1'][0]['$2'])"; }
check "  cb/a timed out" sh -c "python3 -c \"import json; d=json.load(open('$T/out')); s=[s for s in d['secrets'] if s['name']=='cb/a'][0]; assert s['result']=='failed' and 'tim' in s['error'].lower(), s\""
check "  cb/b failed fast on the open circuit" [ "$(res cb/b result)" = failed ]
check "  with a message saying so" sh -c "python3 -c \"import json; d=json.load(open('$T/out')); s=[s for s in d['secrets'] if s['name']=='cb/b'][0]; assert 'circuit open' in s['error'], s\""
n=$(admin GET requests | jq_ "len([r for r in d['requests'] if r['path'].startswith('/v1/secret/data/cb/b')])")
check "  cb/b sent nothing ($n requests)" [ "$n" = 0 ]
check "  after the cool-down the probe closed it: cb/c rotated" [ "$(res cb/c result)" = rotated ]
admin DELETE inject >/dev/null

# ---- token renewal before expiry (AppRole token of 3 s, renewed at 2/3) ----
admin DELETE requests >/dev/null
expect_rc "a run longer than the token's lease" 0 rk rotate --parallel 1 rn/a sleeper rn/b
n=$(admin GET requests | jq_ "len([r for r in d['requests'] if r['path']=='/v1/auth/token/renew-self'])")
check "  renewed the token ($n renew-self)" [ "$n" -ge 1 ]
n=$(admin GET requests | jq_ "len([r for r in d['requests'] if r['path']=='/v1/auth/approle/login'])")
check "  without logging in again ($n logins)" [ "$n" = 1 ]

# ---- a reset mid-write, crash, --resume: no second version ----
admin POST kv '{"mount":"secret","path":"h/1","data":{"v":"x"}}' >/dev/null
before=$(kvstate h/1 "['current_version']")
admin POST inject '{"path_regex":"^/v1/secret/data/h/1$","method":"POST","action":"reset_after_apply","count":1}' >/dev/null
REKEY_FAULT=stage-call "$REKEY_FAULT_BIN" rotate h1 >/dev/null 2>&1
check "killed right after the write whose reply was reset" [ $? = 137 ]
check "  the write had landed" [ "$(kvstate h/1 "['current_version']")" = $((before + 1)) ]
expect_rc "resume finishes it" 0 rk rotate --resume all
check "  without a second version" [ "$(kvstate h/1 "['current_version']")" = $((before + 1)) ]
v=$(kvstate h/1 "['versions']['$((before + 1))']['data']['v']")
check "  and records Vault's value as current" [ "$(printf %s "$v" | "$RK_FP" "$T/var")" = "$(rk status h1 --output json | jq_ "d['current_fp']")" ]
admin POST inject '{"path_regex":"^/v1/secret/data/h/2$","method":"POST","action":"reset_after_apply","count":1}' >/dev/null
b2=$(kvstate h/2 "['current_version']")
expect_rc "a reset reply without a crash is settled by reading back" 0 rk rotate h2
check "  one version, not two" [ "$(kvstate h/2 "['current_version']")" = $((b2 + 1)) ]

# ---- bad responses: clear error, no crash, nothing recorded as rotated ----
admin POST kv '{"mount":"secret","path":"bad/db","data":{"password":"stay"}}' >/dev/null
for inj in '{"action":"truncated"}' '{"action":"html"}' '{"action":"big","bytes":10485760}' \
	'{"action":"status","status":200,"body":{"data":{"data":"nope","metadata":{"version":"x"}}}}' \
	'{"action":"status","status":200,"body":"[1,2"}'; do
	admin DELETE inject >/dev/null
	admin POST inject "$(echo "$inj" | sed 's/^{/{"path_regex":"^\/v1\/secret\/data\/bad\/db$","method":"GET","count":-1,/')" >/dev/null
	expect_rc "bad response $(echo "$inj" | cut -c1-40): exit 1" 1 rk rotate bad/db
	check "  a clear error" sh -c "grep -q 'vault vault: read\\|larger than\\|not a JSON\\|unexpected response\\|bytes remaining' '$T/err' || { cat '$T/err' >&2; false; }"
	check "  nothing recorded as rotated" [ "$(rk status bad/db --output json | jq_ "d['current_version']")" = "" ]
	check "  Vault unchanged" [ "$(kvstate bad/db "['current_version']")" = 1 ]
done
admin DELETE inject >/dev/null
# A bad answer is the provider's fault, not the user's: exit 1 (never 2), naming the call.
# Each row: what|path regex|method|injection|command|words the error must hold.
while IFS='|' read -r what re m inj cmd words; do
	admin DELETE inject >/dev/null
	admin POST inject "{\"path_regex\":\"$re\",\"method\":\"$m\",\"count\":-1,$inj}" >/dev/null
	# shellcheck disable=SC2086
	expect_rc "$what: exit 1" 1 rk $cmd
	check "  the error names the call" grep -qF "$words" "$T/err" "$T/out"
done <<'EOB'
a malformed read answer|^/v1/secret/data/bad/db$|GET|"action":"status","status":200,"body":{"data":{"data":"nope"}}|rotate bad/db|vault vault: read secret/bad/db: unexpected response shape
an unexpected status|^/v1/secret/data/bad/db$|GET|"action":"status","status":418,"body":{"errors":["teapot"]}|rotate bad/db|vault vault: read: HTTP 418: teapot
a write answered without data.version|^/v1/secret/data/bad/db$|POST|"action":"status","status":200,"body":{"data":{"created_time":"x"}}|rotate bad/db|vault vault: write: no data.version in the response
a transit key read without latest_version|^/v1/transit/keys/cw-key$|GET|"action":"status","status":200,"body":{"data":{"name":"cw-key"}}|rotate cw/tk|vault vault: read transit key transit/cw-key: no latest_version
a login answered without a token|^/v1/auth/approle/login$|POST|"action":"status","status":200,"body":{"auth":null}|rotate ar/db|vault vault-ar: login: no auth.client_token
a malformed version read, for rollback|^/v1/secret/data/app/db|GET|"action":"status","status":200,"body":{"data":{"data":"nope"}}|rollback app/db --to 1|vault vault: read secret/app/db: unexpected response shape
an HTML health page, for doctor|^/v1/sys/health|GET|"action":"html","status":200|doctor|health: the response (HTTP 200
EOB
admin DELETE inject >/dev/null
check "the write-answer case recorded nothing as rotated" [ "$(rk status bad/db --output json | jq_ "d['current_version']")" = "" ]

# ---- no Vault value in rekey's output, debug logs, DB or audit log ----
"$REKEY_BIN" --log-level debug rotate app/db ar/db k8s/db >"$T/leak.out" 2>"$T/leak.err"
"$REKEY_BIN" --log-level debug --output json audit >>"$T/leak.out" 2>>"$T/leak.err"
sqlite3 "$T/var/rekey.db" .dump >"$T/leak.db"
admin GET state | python3 -c "
import json,sys
d=json.load(sys.stdin)
for p,k in d['namespaces']['']['mounts']['secret']['keys'].items():
    for v in k['versions'].values():
        for val in (v.get('data') or {}).values():
            if isinstance(val,str) and len(val)>=20: print(val)" >"$T/vault-values"
n=$(grep -c . "$T/vault-values")
leaked=0
while IFS= read -r val; do
	grep -qF -- "$val" "$T/leak.out" "$T/leak.err" "$T/leak.db" "$T/var/rekey.db" && leaked=$((leaked + 1))
done <"$T/vault-values"
check "none of $n generated Vault values in stdout, debug logs, the DB or the audit log" [ "$n" -ge 8 -a "$leaked" = 0 ]

# ---- rollback --to a version max_versions pruned says so ----
admin POST kv '{"mount":"secret","path":"pr/db","data":{"password":"p0"}}' >/dev/null
vault POST secret/metadata/pr/db '{"max_versions":2}' >/dev/null
printf 'secrets:\n  - {name: pr/db, provider: vault, locator: {path: pr/db, key: password}, policy: quick}\n' >"$T/pr.yaml"
expect_rc "apply a secret whose key keeps 2 versions" 0 rk apply -f "$T/pr.yaml"
for i in 1 2 3; do rk rotate pr/db >/dev/null 2>&1; done
check "  Vault dropped the oldest" [ "$(kvstate pr/db "['oldest_version']")" = 3 ]
expect_rc "rollback --to 1 after pruning: exit 1" 1 rk rollback pr/db --to 1
check "  says max_versions pruned it" grep -q "version 1 of secret/pr/db was pruned: Vault keeps the newest 2 (the key's max_versions); the oldest kept is 3" "$T/err"
check "  nothing written" [ "$(kvstate pr/db "['current_version']")" = 4 ]
expect_rc "rollback --to a version never written: exit 1" 1 rk rollback pr/db --to 9
check "  says it does not exist" grep -q "vault vault: secret/pr/db has no version 9" "$T/err"
expect_rc "rollback --to 3 (kept) works" 0 rk rollback pr/db --to 3

# ---- a Transit key that does not exist ----
printf 'secrets:\n  - {name: nokey/tk, provider: vault, locator: {transit_key: nope-key}, policy: quick}\n' >"$T/nokey.yaml"
expect_rc "apply a secret on a missing transit key" 0 rk apply -f "$T/nokey.yaml"
expect_rc "rotating it fails: exit 1" 1 rk rotate nokey/tk
check "  saying the key does not exist, with mount and name" sh -c "grep -q 'transit key transit/nope-key does not exist' '$T/out' '$T/err'"
expect_rc "doctor fails on it" 1 rk doctor
check "  with the same words" sh -c "grep FAIL '$T/out' | grep -q 'transit key transit/nope-key does not exist'"
vault POST transit/keys/nope-key '{"type":"aes256-gcm96"}' >/dev/null
expect_rc "once created, it rotates" 0 rk rotate nokey/tk

# ---- doctor ----
expect_rc "doctor passes with a root token" 0 rk doctor
check "  checks reachability" contains "$T/out" "reachable and healthy"
check "  checks permissions per path" contains "$T/out" "permission on secret/data/app/db"
check "  checks the transit key exists" contains "$T/out" "transit key transit/app-key exists"
for tp in "transit/keys/app-key (needs read)" "transit/keys/app-key/rotate (needs update)" "transit/keys/app-key/config (needs update, to raise min_decryption_version)"; do
	check "  checks $tp" contains "$T/out" "permission on $tp"
done
admin POST config '{"tokens":[{"token":"tr","capabilities":{"secret/data/*":["create","update","read"],"secret/metadata/*":["patch"],"transit/keys/*":["update"],"auth/token/lookup-self":["read"],"sys/capabilities-self":["update"]}}]}' >/dev/null
printf 'tr\n' >"$T/token"
expect_rc "doctor fails when the transit key cannot be read" 1 rk doctor
check "  naming the read path" sh -c "grep 'FAIL' '$T/out' | grep -q 'permission on transit/keys/app-key (needs read)'"
grep 'app-key/rotate\|app-key/config' "$T/out" >"$T/tk-lines"
check "  rotate and config are reported, and fine" sh -c "[ \$(wc -l <'$T/tk-lines') = 2 ] && ! grep -q FAIL '$T/tk-lines'"
check "  the key read names the key" contains "$T/out" "read transit key transit/app-key: HTTP 403"
admin POST config '{"tokens":[{"token":"ro","capabilities":{"secret/data/*":["read"],"auth/token/lookup-self":["read"],"sys/capabilities-self":["update"]}}]}' >/dev/null
printf 'ro\n' >"$T/token"
expect_rc "doctor fails when a permission is missing" 1 rk doctor
check "  naming the path" sh -c "grep 'FAIL' '$T/out' | grep -q 'secret/data/app/db'"
printf 'root\n' >"$T/token"
kill $FAKE 2>/dev/null; wait $FAKE 2>/dev/null
expect_rc "doctor fails when Vault is down" 1 rk doctor
check "  saying it is unreachable" contains "$T/out" "reachable over TLS"
finish
