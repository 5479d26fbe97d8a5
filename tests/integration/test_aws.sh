#!/bin/sh
# The aws provider against tests/fakes/aws_fake.py over loopback (every
# request SigV4-verified by the fake): plain and JSON-key rotation with the
# AWS labels moving as AWS's own protocol moves them, a reset between
# PutSecretValue and the journal (one version, no ResourceExists surfaced),
# a crash after stage and after promote finished by --resume, rollback
# sequences, a throttling storm, 5xx and lost answers on writes, each
# credential source (env, profile file, web identity through STS, IMDSv2),
# an expired token, a skewed clock, delegated RotateSecret, bad answers and
# bad documents (nothing rotated), doctor, and no value in any output.
. "$(dirname "$0")/lib.sh"
: "${REKEY_FAULT_BIN:?}" "${RK_FP:?}"
command -v curl >/dev/null || { echo "test_aws: curl missing"; exit 1; }

python3 "$SRC/tests/fakes/aws_fake.py" --port 0 --port-file "$T/aport" 2>"$T/fake.log" &
FAKE=$!
trap 'kill $FAKE 2>/dev/null; wait $FAKE 2>/dev/null; rm -rf "$T"' EXIT
i=0
while [ ! -s "$T/aport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$T/aport" ] || { echo "test_aws: the fake did not start"; cat "$T/fake.log"; exit 1; }
A="http://127.0.0.1:$(cat "$T/aport")"

admin() { curl -sS -X "$1" "$A/__fake/$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# sm NAME EXPR: EXPR over the fake's state of secret NAME (s), e.g. "len(s['versions'])"
sm() { admin GET state | python3 -c "
import json,sys; d=json.load(sys.stdin); s=d['secrets'].get('$1')
cur=[v for v in (s or {}).get('versions',{}).values() if 'AWSCURRENT' in v['stages']]
cur=cur[0] if cur else None
print($2)"; }
seed() { admin POST seed "$1" >/dev/null; }
reqs_since() { admin GET "requests?since=$1"; }
last_seq() { admin GET requests | jq_ "max([r['seq'] for r in d['requests']] or [0])"; }

# Credentials: AWS's test pair from the environment unless a case says otherwise.
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN \
	AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_ENDPOINT_URL \
	AWS_ENDPOINT_URL_SECRETS_MANAGER AWS_ENDPOINT_URL_STS 2>/dev/null
export HOME="$T/home" AWS_CONFIG_FILE="$T/home/none" AWS_SHARED_CREDENTIALS_FILE="$T/home/none"
mkdir -p "$HOME"

conn='timeout: {connect: 1s, total: 3s}, retry: {max_attempts: 6, base_delay: 20ms, max_delay: 300ms}, insecure_http: true'
cat >"$T/rekey.yaml" <<EOC
state_dir: $T/var
environment: test
policy_dir: $T/policy
providers:
  aws: {type: aws, endpoint: "$A", $conn}
  aws-slow: {type: aws, endpoint: "$A", timeout: {connect: 1s, total: 3s}, insecure_http: true, rate_limit: {rps: 1000, burst: 100}, concurrency: 4, retry: {max_attempts: 20, base_delay: 100ms, max_delay: 1s}}
  aws-del: {type: aws, endpoint: "$A", $conn, delegate_timeout: 10s}
  aws-strict: {type: aws, endpoint: "https://127.0.0.1:9", timeout: {connect: 1s, total: 2s}, retry: {max_attempts: 1}}
EOC
mkdir -p "$T/policy"
printf 'name: quick\nrotate_every: 1d\ngenerator: {type: password, length: 24}\n' >"$T/policy/quick.yaml"
cat >"$T/inv.yaml" <<'EOI'
secrets:
  - {name: prod/db, provider: aws, locator: {secret_id: prod/db}, policy: quick}
  - {name: prod/json, provider: aws, locator: {secret_id: prod/json, json_key: password}, policy: quick}
  - {name: prod/big, provider: aws, locator: {secret_id: prod/big, json_key: password}, policy: quick}
  - {name: prod/text, provider: aws, locator: {secret_id: prod/text, json_key: password}, policy: quick}
  - {name: reset/db, provider: aws, locator: {secret_id: reset/db}, policy: quick}
  - {name: crash/a, provider: aws, locator: {secret_id: crash/a}, policy: quick}
  - {name: crash/b, provider: aws, locator: {secret_id: crash/b}, policy: quick}
  - {name: rb/db, provider: aws, locator: {secret_id: rb/db}, policy: quick}
  - {name: st/1, provider: aws-slow, locator: {secret_id: st/1}, policy: quick}
  - {name: st/2, provider: aws-slow, locator: {secret_id: st/2}, policy: quick}
  - {name: st/3, provider: aws-slow, locator: {secret_id: st/3}, policy: quick}
  - {name: st/4, provider: aws-slow, locator: {secret_id: st/4}, policy: quick}
  - {name: st/5, provider: aws-slow, locator: {secret_id: st/5}, policy: quick}
  - {name: st/6, provider: aws-slow, locator: {secret_id: st/6}, policy: quick}
  - {name: w/db, provider: aws, locator: {secret_id: w/db}, policy: quick}
  - {name: cred/db, provider: aws, locator: {secret_id: cred/db}, policy: quick}
  - {name: del/db, provider: aws-del, locator: {secret_id: del/db, delegate: true}, policy: quick}
  - {name: bad/db, provider: aws, locator: {secret_id: bad/db}, policy: quick}
  - {name: new/db, provider: aws, locator: {secret_id: new/db}, policy: quick}
  - {name: cf/db, provider: aws, locator: {secret_id: cf/db, json_key: password}, policy: quick}
  - {name: re/db, provider: aws, locator: {secret_id: re/db}, policy: quick}
  - {name: hook/db, provider: aws, locator: {secret_id: hook/db}, policy: hooked}
  - {name: hang/db, provider: aws, locator: {secret_id: hang/db}, policy: quick}
  - {name: q/01, provider: aws, locator: {secret_id: q/01}, policy: quick}
  - {name: q/02, provider: aws, locator: {secret_id: q/02}, policy: quick}
  - {name: q/03, provider: aws, locator: {secret_id: q/03}, policy: quick}
  - {name: q/04, provider: aws, locator: {secret_id: q/04}, policy: quick}
  - {name: q/05, provider: aws, locator: {secret_id: q/05}, policy: quick}
  - {name: q/06, provider: aws, locator: {secret_id: q/06}, policy: quick}
  - {name: q/07, provider: aws, locator: {secret_id: q/07}, policy: quick}
  - {name: q/08, provider: aws, locator: {secret_id: q/08}, policy: quick}
  - {name: q/09, provider: aws, locator: {secret_id: q/09}, policy: quick}
  - {name: q/10, provider: aws, locator: {secret_id: q/10}, policy: quick}
  - {name: q/11, provider: aws, locator: {secret_id: q/11}, policy: quick}
  - {name: q/12, provider: aws, locator: {secret_id: q/12}, policy: quick}
EOI
printf 'name: hooked\nrotate_every: 1d\ngenerator: {type: password, length: 24}\nverify: {exec: [sh, -c, "cat > %s/hook.val"]}\nset: {exec: [sh, -c, "cat > %s/set.val"]}\n' "$T" "$T" >"$T/policy/hooked.yaml"
rk init >/dev/null
expect_rc "apply an inventory with aws secrets" 0 rk apply -f "$T/inv.yaml"
for s in prod/db reset/db crash/a crash/b rb/db st/1 st/2 st/3 st/4 st/5 st/6 w/db cred/db bad/db re/db hook/db hang/db q/01 q/02 q/03 q/04 q/05 q/06 q/07 q/08 q/09 q/10 q/11 q/12; do
	seed "{\"Name\": \"$s\", \"SecretString\": \"initial-$s\"}"
done

# ---- plain rotation: AWSPENDING, verify, AWSCURRENT moved, AWSPENDING tidied ----
v1=$(sm prod/db "cur['id']")
seq0=$(last_seq)
expect_rc "rotate a plain secret" 0 rk rotate prod/db
check "two versions now" [ "$(sm prod/db "len(s['versions'])")" = 2 ]
new=$(sm prod/db "cur['value']")
check "the current value is a new 24-character password" [ "$new" != initial-prod/db -a ${#new} = 24 ]
check "the old version is AWSPREVIOUS" [ "$(sm prod/db "s['versions']['$v1']['stages']")" = "['AWSPREVIOUS']" ]
check "AWSPENDING was removed from the new current" [ "$(sm prod/db "cur['stages']")" = "['AWSCURRENT']" ]
ops=$(reqs_since "$seq0" | jq_ "' '.join(r['target'] or '-' for r in d['requests'] if r['service']=='secretsmanager')")
check "the calls are AWS's rotation protocol (put, get, update stage)" sh -c "echo '$ops' | grep -q 'PutSecretValue.*GetSecretValue.*UpdateSecretVersionStage'"
put=$(reqs_since "$seq0" | jq_ "[r['body'] for r in d['requests'] if r['target']=='PutSecretValue'][0]")
check "staged with VersionStages [AWSPENDING]" sh -c "echo \"\$1\" | grep -q \"'VersionStages': \\['AWSPENDING'\\]\"" _ "$put"
check "with a ClientRequestToken that is the new VersionId" sh -c "echo \"\$1\" | grep -q \"'ClientRequestToken': '$(sm prod/db "cur['id']")'\"" _ "$put"
fp=$(printf %s "$new" | "$RK_FP" "$T/var")
check "the recorded fingerprint is AWS's value" [ "$fp" = "$(rk status prod/db --output json | jq_ "d['current_fp']")" ]
check "rekey records AWS's VersionId" [ "$(rk status prod/db --output json | jq_ "d['current_version']")" = "$(sm prod/db "cur['id']")" ]
check "verified as AWSPENDING by its VersionId" [ "$(reqs_since "$seq0" | jq_ "[(r['body'].get('VersionStage'), r['body'].get('VersionId')) for r in d['requests'] if r['target']=='GetSecretValue' and r['body'].get('VersionId')][0]")" = "('AWSPENDING', '$(sm prod/db "cur['id']")')" ]
check "every request was signed and accepted" [ "$(reqs_since "$seq0" | jq_ "len([r for r in d['requests'] if r['error_type']])")" = 0 ]

# ---- json_key: only that key changes; the others keep value and type ----
seed '{"Name": "prod/json", "SecretString": "{\"username\":\"app\",\"password\":\"old\",\"port\":5432,\"ratio\":0.25,\"on\":true,\"none\":null,\"nested\":{\"a\":[1,\"x\"]}}"}'
expect_rc "rotate one key of a JSON secret" 0 rk rotate prod/json
doc=$(sm prod/json "cur['value']")
check "the password key changed" [ "$(echo "$doc" | jq_ "len(d['password'])")" = 24 ]
check "the other keys kept value and type" [ "$(echo "$doc" | jq_ "[d['username'], d['port'], d['ratio'], d['on'], d['none'], d['nested']]")" = "['app', 5432, 0.25, True, None, {'a': [1, 'x']}]" ]
check "and their order" [ "$(echo "$doc" | jq_ "list(d)")" = "['username', 'password', 'port', 'ratio', 'on', 'none', 'nested']" ]
seed '{"Name": "prod/big", "SecretString": "{\"password\":\"old\",\"id\":123456789012345678901234567890}"}'
expect_rc "a number jansson cannot hold exactly is refused" 1 rk rotate prod/big
check "  with a clear error" contains "$T/err" "holds a number rekey cannot keep exactly"
check "  naming the secret" contains "$T/err" "prod/big"
check "  and the document was not changed" [ "$(sm prod/big "len(s['versions'])")" = 1 ]
check "  nor marked rotated" [ "$(rk status prod/big --output json | jq_ "d['last_rotated']")" = 0 ]
seed '{"Name": "prod/text", "SecretString": "plain text, not JSON"}'
expect_rc "json_key on a SecretString that is not JSON fails" 1 rk rotate prod/text
check "  saying so" contains "$T/err" "is not a JSON object"
check "  and changes nothing" [ "$(sm prod/text "len(s['versions'])")" = 1 ]

# ---- a reset between PutSecretValue and the journal: resent under the same token ----
admin POST inject '{"target": "PutSecretValue", "action": "reset_after_apply", "count": 1}' >/dev/null
expect_rc "rotate through a connection reset after the write landed" 0 rk rotate reset/db
check "exactly one new version" [ "$(sm reset/db "len(s['versions'])")" = 2 ]
check "no ResourceExistsException surfaced" sh -c "! grep -q ResourceExists '$T/err' '$T/out'"
admin DELETE inject >/dev/null

# ---- ResourceExistsException for our token: a conflict, resolved by generating again ----
admin POST inject '{"target": "PutSecretValue", "action": "status", "status": 400, "body": {"__type": "ResourceExistsException", "Message": "You cannot use ClientRequestToken"}, "count": 1}' >/dev/null
expect_rc "a ResourceExistsException is a conflict, not a failure" 0 rk rotate re/db
check "  generated again (logged as a conflict)" contains "$T/err" "rotation.conflict"
check "  one new version" [ "$(sm re/db "len(s['versions'])")" = 2 ]
admin DELETE inject >/dev/null

# ---- someone else writes between our stage and our promote: never moved away ----
seed '{"Name": "cf/db", "SecretString": "{\"username\":\"app\",\"password\":\"p0\"}"}'
admin POST inject '{"target": "UpdateSecretVersionStage", "action": "write_before", "seed": {"Name": "cf/db", "SecretString": "{\"username\":\"theirs\",\"password\":\"p1\"}"}, "count": 1}' >/dev/null
expect_rc "a concurrent writer before promote: rekey starts again from their version" 0 rk rotate cf/db
check "  logged as a conflict" contains "$T/err" "rotation.conflict"
check "  their version is AWSPREVIOUS" [ "$(sm cf/db "[v['value'] for v in s['versions'].values() if 'AWSPREVIOUS' in v['stages']][0]")" = '{"username":"theirs","password":"p1"}' ]
check "  their other key is kept" [ "$(sm cf/db "cur['value']" | jq_ "d['username']")" = theirs ]
check "  and ours is current" [ "$(sm cf/db "cur['value']" | jq_ "len(d['password'])")" = 24 ]
admin DELETE inject >/dev/null

# ---- the policy's hooks get the value ----
expect_rc "rotate with a verify hook" 0 rk rotate hook/db
check "  the verify hook read the new value on stdin" [ "$(cat "$T/hook.val")" = "$(sm hook/db "cur['value']")" ]
check "  and so did the set hook" [ "$(cat "$T/set.val")" = "$(sm hook/db "cur['value']")" ]

# ---- a write whose connection hangs: timed out, sent again under the same token ----
admin POST inject '{"target": "PutSecretValue", "action": "hang", "ms": 6000, "count": 1}' >/dev/null
expect_rc "PutSecretValue that hangs past the timeout" 0 rk rotate hang/db
check "  one new version" [ "$(sm hang/db "len(s['versions'])")" = 2 ]
admin DELETE inject >/dev/null

# ---- a crash after stage and after promote, finished by --resume ----
REKEY_FAULT=staged "$REKEY_FAULT_BIN" rotate crash/a >/dev/null 2>&1
check "crash after stage: AWSCURRENT not moved" [ "$(sm crash/a "cur['value']")" = initial-crash/a ]
check "  the staged version is AWSPENDING" [ "$(sm crash/a "[v['stages'] for v in s['versions'].values() if not 'AWSCURRENT' in v['stages']]")" = "[['AWSPENDING']]" ]
expect_rc "  --resume finishes it" 0 rk rotate --resume all
check "  with the staged version, not another" [ "$(sm crash/a "len(s['versions'])")" = 2 ]
check "  now current" [ "$(sm crash/a "cur['value']")" != initial-crash/a ]
REKEY_FAULT=promoted "$REKEY_FAULT_BIN" rotate crash/b >/dev/null 2>&1
check "crash after promote: the new value is current" [ "$(sm crash/b "cur['value']")" != initial-crash/b ]
expect_rc "  --resume records it" 0 rk rotate --resume all
check "  still two versions" [ "$(sm crash/b "len(s['versions'])")" = 2 ]
check "  rekey knows the new version" [ "$(rk status crash/b --output json | jq_ "d['current_version']")" = "$(sm crash/b "cur['id']")" ]

# ---- a crash at every compiled-in point: --resume ends with exactly one new version, current ----
for pt in planned generated stage-call staged verified promote-call promoted restarted; do
	seed "{\"Name\": \"kp/$pt\", \"SecretString\": \"initial-$pt\"}"
	printf 'secrets:\n  - {name: kp/%s, provider: aws, locator: {secret_id: kp/%s}, policy: quick}\n' "$pt" "$pt" >"$T/kp.yaml"
	rk apply -f "$T/kp.yaml" >/dev/null 2>&1
	REKEY_FAULT=$pt "$REKEY_FAULT_BIN" rotate "kp/$pt" >/dev/null 2>&1
	rk rotate --resume all >/dev/null 2>&1
	rk rotate --resume all >/dev/null 2>&1   # nothing left: a no-op
	got="$(sm "kp/$pt" "(len(s['versions']), cur['value'] != 'initial-$pt', cur['id'])")"
	want="(2, True, '$(rk status "kp/$pt" --output json | jq_ "d['current_version']")')"
	check "killed at $pt, resumed: one new version, current, known to rekey" [ "$got" = "$want" ]
done

# ---- rollback: AWSCURRENT back where it was; rotate, rollback, rotate, rollback ----
r0=$(sm rb/db "cur['id']")
expect_rc "rotate" 0 rk rotate rb/db
r1=$(sm rb/db "cur['id']")
expect_rc "rollback" 0 rk rollback rb/db
check "AWSCURRENT moved back to the old version" [ "$(sm rb/db "cur['id']")" = "$r0" ]
check "  with the old value" [ "$(sm rb/db "cur['value']")" = initial-rb/db ]
check "  AWSPREVIOUS is on the version it left" [ "$(sm rb/db "s['versions']['$r1']['stages']")" = "['AWSPREVIOUS']" ]
check "  no version was written for it" [ "$(sm rb/db "len(s['versions'])")" = 2 ]
expect_rc "rotate again" 0 rk rotate rb/db
expect_rc "rollback again" 0 rk rollback rb/db
check "rotate, rollback, rotate, rollback ends on the value after the first rollback" [ "$(sm rb/db "cur['value']")" = initial-rb/db ]
check "  on that version" [ "$(sm rb/db "cur['id']")" = "$r0" ]
expect_rc "rollback to a version AWS does not have" 1 rk rollback rb/db --to 00000000-0000-4000-8000-000000000000
check "  is AWS's ResourceNotFoundException, final" contains "$T/err" "ResourceNotFoundException"
check "  and changes nothing" [ "$(sm rb/db "cur['id']")" = "$r0" ]

# ---- a throttling storm: waited out and sent again, every rotation lands ----
admin POST quota '{"rps": {"PutSecretValue+UpdateSecretVersionStage": 3}, "burst": 1}' >/dev/null
expect_rc "six rotations under a write quota of 3/s" 0 rk rotate --parallel 4 st/1 st/2 st/3 st/4 st/5 st/6
thr=$(admin GET requests | jq_ "len([r for r in d['requests'] if r['error_type']=='ThrottlingException'])")
check "the fake throttled some writes ($thr)" [ "$thr" -gt 0 ]
check "each secret got exactly one new version" [ "$(for s in 1 2 3 4 5 6; do sm st/$s "len(s['versions'])"; done | sort -u)" = 2 ]
admin DELETE quota >/dev/null

# ---- the defaults stay under Secrets Manager's own quota (50 writes/s) ----
seqq=$(last_seq)
expect_rc "twelve rotations at once with the default rate limit" 0 rk rotate --parallel 12 q/01 q/02 q/03 q/04 q/05 q/06 q/07 q/08 q/09 q/10 q/11 q/12
peak=$(reqs_since "$seqq" | jq_ "(lambda t: max(sum(1 for u in t if x <= u < x + 1) for x in t))(sorted(r['time'] for r in d['requests'] if r['service']=='secretsmanager'))")
check "  at most 35 requests in any second (rate_limit 20/s + burst 10, with arrival jitter; AWS allows 50 writes/s): $peak" [ "$peak" -le 35 ]
check "  each written once" [ "$(reqs_since "$seqq" | jq_ "len([r for r in d['requests'] if r['target'] == 'PutSecretValue'])")" = 12 ]

# ---- writes with an unknown outcome: settled by reading back ----
admin POST inject '{"target": "UpdateSecretVersionStage", "action": "status_after_apply", "status": 502, "count": 1}' >/dev/null
expect_rc "promote whose answer was lost behind a proxy" 0 rk rotate w/db
check "  promoted once" [ "$(sm w/db "len(s['versions'])")" = 2 ]
admin POST inject '{"target": "PutSecretValue", "action": "status", "status": 500, "count": 2}' >/dev/null
expect_rc "stage through two 500s" 0 rk rotate w/db
check "  one more version" [ "$(sm w/db "len(s['versions'])")" = 3 ]
admin DELETE inject >/dev/null

# ---- credential sources ----
cred_case() { # cred_case NAME SOURCE: rotate cred/db and check the fake saw SOURCE's keys
	seq=$(last_seq)
	expect_rc "credentials from $1" 0 rk rotate cred/db
	src=$(reqs_since "$seq" | jq_ "sorted(set(r['credential_source'] or '-' for r in d['requests'] if r['service']=='secretsmanager'))")
	check "  every Secrets Manager call signed with them ($src)" [ "$src" = "['$2']" ]
}
cred_case "the environment" config
printf '[ci]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret-key\n' >"$T/home/credentials"
admin POST config '{"credentials": [{"access_key_id": "AKIDPROFILE", "secret_access_key": "profile-secret-key"}]}' >/dev/null
(unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
 AWS_SHARED_CREDENTIALS_FILE="$T/home/credentials" AWS_PROFILE=ci; export AWS_SHARED_CREDENTIALS_FILE AWS_PROFILE
 cred_case "a profile in the shared credentials file" config; echo "$PASSED $FAILED" >"$T/counts")
read -r PASSED FAILED <"$T/counts"
printf 'eyJhbGciOiJSUzI1NiJ9.web-identity.token\n' >"$T/wi-token"
(unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
 AWS_WEB_IDENTITY_TOKEN_FILE="$T/wi-token" AWS_ROLE_ARN=arn:aws:iam::123456789012:role/rekey AWS_ENDPOINT_URL_STS="$A"
 export AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_ENDPOINT_URL_STS
 cred_case "web identity (STS AssumeRoleWithWebIdentity)" sts; echo "$PASSED $FAILED" >"$T/counts")
read -r PASSED FAILED <"$T/counts"
check "  STS got the token file's token" [ "$(admin GET 'requests?values=1' | jq_ "[r['body'].get('WebIdentityToken') for r in d['requests'] if r['service']=='sts'][-1]")" = eyJhbGciOiJSUzI1NiJ9.web-identity.token ]
(unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED
 AWS_EC2_METADATA_SERVICE_ENDPOINT="$A"; export AWS_EC2_METADATA_SERVICE_ENDPOINT
 seqi=$(last_seq)
 cred_case "EC2 instance metadata (IMDSv2)" imds
 first=$(reqs_since "$seqi" | jq_ "[(r['method'], r['path']) for r in d['requests'] if r['service']=='imds'][0]")
 check "  the token PUT came first" [ "$first" = "('PUT', '/latest/api/token')" ]
 echo "$PASSED $FAILED" >"$T/counts")
read -r PASSED FAILED <"$T/counts"
admin POST config '{"container_auth_token": "ctr-token-1"}' >/dev/null
(unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
 AWS_CONTAINER_CREDENTIALS_FULL_URI="$A/ecs/credentials" AWS_CONTAINER_AUTHORIZATION_TOKEN=ctr-token-1
 export AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN
 cred_case "container credentials (ECS)" container; echo "$PASSED $FAILED" >"$T/counts")
read -r PASSED FAILED <"$T/counts"
# Plain HTTP: instance metadata and container credentials only; STS needs https
# unless the provider allows http (aws-strict does not).
(unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED
 AWS_EC2_METADATA_SERVICE_ENDPOINT="$A"; export AWS_EC2_METADATA_SERVICE_ENDPOINT
 rk doctor >"$T/doc1" 2>&1
 check "a strict provider still gets IMDS credentials over http" contains "$T/doc1" "aws aws-strict: credentials found (instance metadata"
 echo "$PASSED $FAILED" >"$T/counts")
read -r PASSED FAILED <"$T/counts"
(unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
 AWS_WEB_IDENTITY_TOKEN_FILE="$T/wi-token" AWS_ROLE_ARN=arn:aws:iam::123456789012:role/rekey AWS_ENDPOINT_URL_STS="$A"
 export AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_ENDPOINT_URL_STS
 rk doctor >"$T/doc2" 2>&1
 check "but refuses an http:// STS endpoint" sh -c "grep 'aws aws-strict: credentials' '$T/doc2' | grep -q 'http://'"
 check "  (the other providers allow it: insecure_http)" contains "$T/doc2" "aws aws: credentials found (web identity"
 echo "$PASSED $FAILED" >"$T/counts")
read -r PASSED FAILED <"$T/counts"
admin POST config "{\"credentials\": [{\"access_key_id\": \"ASIAEXPIRED\", \"secret_access_key\": \"expired-secret\", \"session_token\": \"tok-1\", \"expires_at\": $(($(date +%s) - 60))}]}" >/dev/null
AWS_ACCESS_KEY_ID=ASIAEXPIRED AWS_SECRET_ACCESS_KEY=expired-secret AWS_SESSION_TOKEN=tok-1 \
	expect_rc "an expired session token fails" 1 rk rotate cred/db
check "  with AWS's reason" contains "$T/err" "ExpiredTokenException"
check "  and what to check" contains "$T/err" "rekey doctor"
check "  never printing the secret key" sh -c "! grep -q expired-secret '$T/err' '$T/out'"

AWS_SECRET_ACCESS_KEY=not-the-right-key expect_rc "a wrong secret key: an invalid signature is final" 1 rk rotate cred/db
check "  with AWS's reason" contains "$T/err" "InvalidSignatureException"
check "  never printing the key" sh -c "! grep -q not-the-right-key '$T/err' '$T/out'"
admin POST config '{"sts_credential_lifetime": 700}' >/dev/null
(unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
 AWS_WEB_IDENTITY_TOKEN_FILE="$T/wi-token" AWS_ROLE_ARN=arn:aws:iam::123456789012:role/rekey AWS_ENDPOINT_URL_STS="$A"
 export AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_ARN AWS_ENDPOINT_URL_STS
 seqs=$(last_seq)
 expect_rc "credentials that expire within 15 minutes" 0 rk rotate cred/db
 n=$(reqs_since "$seqs" | jq_ "len([r for r in d['requests'] if r['service']=='sts'])")
 check "  are refreshed before they expire ($n STS calls in one rotation)" [ "$n" -gt 1 ]
 echo "$PASSED $FAILED" >"$T/counts")
read -r PASSED FAILED <"$T/counts"
admin POST config '{"sts_credential_lifetime": null}' >/dev/null

# ---- a skewed clock: corrected from the Date header, as the SDKs do ----
admin POST clock '{"offset": 900}' >/dev/null
expect_rc "rotate while the server's clock is 15 min ahead" 0 rk rotate cred/db
check "  after correcting the clock from the Date header" contains "$T/err" "provider.clock_skew"
admin POST clock '{"offset": 0}' >/dev/null

# ---- delegated RotateSecret: the secret's own rotation function ----
seed '{"Name": "del/db", "SecretString": "{\"password\":\"lambda-old\"}", "RotationLambdaARN": "arn:aws:lambda:us-east-1:123456789012:function:rot"}'
d0=$(sm del/db "cur['id']")
expect_rc "a delegated rotation" 0 rk rotate del/db
check "  AWSCURRENT moved" [ "$(sm del/db "cur['id']")" != "$d0" ]
check "  to the function's new value" [ "$(sm del/db "cur['value']")" != '{"password":"lambda-old"}' ]
check "  rekey records the new version" [ "$(rk status del/db --output json | jq_ "d['current_version']")" = "$(sm del/db "cur['id']")" ]
admin POST config '{"rotation_mode": "stall"}' >/dev/null
expect_rc "a rotation function that never finishes is bounded" 1 rk rotate del/db
check "  and says where to look" contains "$T/err" "did not make version"
admin POST config '{"rotation_mode": "ok"}' >/dev/null

# ---- bad answers and final errors: nothing marked rotated ----
before=$(sm bad/db "len(s['versions'])")
admin POST inject '{"target": "GetSecretValue", "action": "status", "status": 200, "body": "{not json", "count": 1}' >/dev/null
expect_rc "a malformed JSON answer fails" 1 rk rotate bad/db
check "  naming the call" contains "$T/err" "GetSecretValue"
admin POST inject '{"target": "GetSecretValue", "action": "status", "status": 400, "body": {"__type": "com.amazon.coral#WeirdNewException", "message": "what"}, "count": 1}' >/dev/null
expect_rc "an unknown __type fails" 1 rk rotate bad/db
check "  naming it without its namespace" contains "$T/err" "WeirdNewException: what"
admin POST inject '{"target": "PutSecretValue", "action": "status", "status": 400, "body": {"__type": "AccessDeniedException", "Message": "User: arn:aws:iam::123456789012:user/x is not authorized to perform: secretsmanager:PutSecretValue"}, "count": 1}' >/dev/null
expect_rc "AccessDenied is final" 1 rk rotate bad/db
check "  with the IAM advice" contains "$T/err" "IAM permissions"
admin POST inject '{"target": "PutSecretValue", "action": "status", "status": 400, "body": {"__type": "LimitExceededException", "Message": "too many versions"}, "count": 1}' >/dev/null
expect_rc "LimitExceeded is final" 1 rk rotate bad/db
check "  with the fix" contains "$T/err" "rotate it less often"
admin POST inject '{"target": "GetSecretValue", "action": "status", "status": 400, "body": {"__type": "InvalidRequestException", "Message": "You can'"'"'t perform this operation on the secret because it was marked for deletion."}, "count": 1}' >/dev/null
expect_rc "a secret marked for deletion is a final error" 1 rk rotate bad/db
check "  with AWS's words" contains "$T/err" "marked for deletion"
check "nothing was written by any of them" [ "$(sm bad/db "len(s['versions'])")" = "$before" ]
check "  nor marked rotated" [ "$(rk status bad/db --output json | jq_ "d['last_rotated']")" = 0 ]
admin DELETE inject >/dev/null

# ---- a secret that does not exist yet is created ----
expect_rc "rotate a secret AWS does not have yet" 0 rk rotate new/db
check "  CreateSecret made it with AWSCURRENT" [ "$(sm new/db "cur['stages']")" = "['AWSCURRENT']" ]

# ---- doctor ----
expect_rc "doctor" 0 rk doctor
check "  names the credential source" contains "$T/out" "credentials found (environment"
check "  describes each secret" contains "$T/out" "DescribeSecret prod/db: AWSCURRENT on"

# ---- no value anywhere ----
# Every value AWS holds now or held (all versions of every secret), against
# everything rekey printed in this test and its state directory.
admin GET state | python3 -c "
import json,sys
for s in json.load(sys.stdin)['secrets'].values():
    for v in s['versions'].values():
        if v['kind'] == 'string' and v['value'] and len(v['value']) >= 8:
            print(v['value'])" >"$T/values"
check "the leak check has values to look for ($(wc -l <"$T/values"))" [ "$(wc -l <"$T/values")" -gt 50 ]
# ---- housekeeping after the urgent work: AWSPENDING removed once every label moved ----
for s in hk/1 hk/2 hk/3; do seed "{\"Name\": \"$s\", \"SecretString\": \"initial-$s\"}"; done
printf 'secrets:\n' >"$T/hk.yaml"
for s in hk/1 hk/2 hk/3; do
	printf '  - {name: %s, provider: aws, locator: {secret_id: %s}, policy: quick}\n' "$s" "$s" >>"$T/hk.yaml"
done
rk apply -f "$T/hk.yaml" >/dev/null 2>&1
seqh=$(last_seq)
expect_rc "three rotations in one run" 0 rk rotate hk/1 hk/2 hk/3 --parallel 3
order=$(reqs_since "$seqh" | jq_ "' '.join(('cur' if r['body'].get('VersionStage')=='AWSCURRENT' else 'tidy') for r in d['requests'] if r['target']=='UpdateSecretVersionStage')")
check "  every AWSCURRENT move comes before the first AWSPENDING tidy" [ "$order" = "cur cur cur tidy tidy tidy" ]
check "  and each new current ends with AWSCURRENT alone" [ "$(sm hk/1 "cur['stages']") $(sm hk/2 "cur['stages']") $(sm hk/3 "cur['stages']")" = "['AWSCURRENT'] ['AWSCURRENT'] ['AWSCURRENT']" ]
leak=0
while IFS= read -r v; do
	if grep -rqF -- "$v" "$T/all.out" "$T/var" 2>/dev/null; then leak=1; echo "      leaked: a value of length ${#v}"; fi
done <"$T/values"
check "no value of any version in any output of this test or in the state directory" [ $leak = 0 ]
finish
