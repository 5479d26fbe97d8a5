#!/usr/bin/env bash
# Self-test of tests/fakes/aws_fake.py.
#
# (a) curl and hand-signed Python requests against the fake: every Secrets
#     Manager operation and error path of shared/docs/provider-contracts.md
#     section 2, idempotency, the staging-label table of 2.6, pagination,
#     every injection action, quotas, STS / IMDSv2 / container credentials,
#     SIGTERM during a hang, --state-file, and the SigV4 verifier on the
#     official vectors (shared/testdata/sigv4);
# (b) the real AWS SDK for JavaScript v3 (installed from npm into a temporary
#     directory): operations, paginators, rotation, signature errors, clock
#     skew correction and the web identity / IMDS / container providers;
# (c) the AWS CLI (Debian's /usr/bin/aws preferred, installed with apt-get when
#     running as root; else any aws on PATH), with a web identity profile.
#
# Prints PASS/FAIL per check and a closing "aws_fake: N passed, N failed".
# Exit 0: all passed; 1: a check failed; 77: (a) passed but npm/the registry
# was unreachable so (b) was skipped.  A missing AWS CLI is a SKIP line only.
#
# Env: PYTHON (default /usr/bin/python3, else python3), AWS_SDK_PREFIX (an npm --prefix that
# already holds the three @aws-sdk packages: skips the install), AWS_FAKE_SKIP_NODE=1,
# AWS_FAKE_SKIP_CLI=1, SIGV4_VECTORS (default: shared/testdata/sigv4 next to the repository).

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FAKE="$HERE/aws_fake.py"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; elif [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
t_start=$(date +%s)

tmp="$(mktemp -d "${TMPDIR:-/tmp}/aws_fake_check.XXXXXX")"
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
count_output() { # file: add its PASS/FAIL lines to the totals
    pass=$((pass + $(grep -c '^PASS ' "$1")))
    fail=$((fail + $(grep -c '^FAIL ' "$1")))
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

start_fake() {
    rm -f "$tmp/port"
    "$PY" "$FAKE" --port 0 --port-file "$tmp/port" "$@" 2>"$tmp/fake.stderr" &
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
    BASE="http://127.0.0.1:$PORT"
}
stop_fake() {
    kill -TERM "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null; fake_pid=""
}

# A hand-written SigV4 signer (independent of the fake's verifier).  Usage:
#   sm OP JSON [--key K --secret S --token T --region R --service S --date-offset SEC
#               --no-auth --sign-body OTHER --host H --scope-date D]
# Sets STATUS ("200", "400", … or "reset"/"closed"/"truncated"); body in $tmp/body, headers in $tmp/hdr.
cat >"$tmp/sm.py" <<'EOF'
import argparse, hashlib, hmac, http.client, json, sys, time
ap = argparse.ArgumentParser()
ap.add_argument("base"); ap.add_argument("op"); ap.add_argument("body")
ap.add_argument("--key", default="AKIDEXAMPLE")
ap.add_argument("--secret", default="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
ap.add_argument("--token"); ap.add_argument("--region", default="us-east-1")
ap.add_argument("--service", default="secretsmanager"); ap.add_argument("--date-offset", type=float, default=0)
ap.add_argument("--no-auth", action="store_true"); ap.add_argument("--sign-body")
ap.add_argument("--host"); ap.add_argument("--sign-host"); ap.add_argument("--scope-date"); ap.add_argument("--authz")
ap.add_argument("--out", required=True); ap.add_argument("--hdr", required=True)
a = ap.parse_args()
hostport = a.base.split("//", 1)[1]
body = a.body.encode()
t = time.gmtime(time.time() + a.date_offset)
amzdate = time.strftime("%Y%m%dT%H%M%SZ", t)
headers = {"Content-Type": "application/x-amz-json-1.1", "Host": a.host or hostport,
           "X-Amz-Date": amzdate, "X-Amz-Target": "secretsmanager." + a.op}
if a.token:
    headers["X-Amz-Security-Token"] = a.token
if not a.no_auth:
    names = sorted(k.lower() for k in headers)
    sh = dict(headers, Host=a.sign_host) if a.sign_host else headers
    canon = "".join("%s:%s\n" % (n, [v for k, v in sh.items() if k.lower() == n][0].strip()) for n in names)
    signed = ";".join(names)
    sbody = a.sign_body.encode() if a.sign_body is not None else body
    creq = "POST\n/\n\n%s\n%s\n%s" % (canon, signed, hashlib.sha256(sbody).hexdigest())
    date = a.scope_date or amzdate[:8]
    scope = "%s/%s/%s/aws4_request" % (date, a.region, a.service)
    sts = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (amzdate, scope, hashlib.sha256(creq.encode()).hexdigest())
    k = ("AWS4" + a.secret).encode()
    for part in (date, a.region, a.service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = a.authz or ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                                           % (a.key, scope, signed, sig))
conn = http.client.HTTPConnection(hostport, timeout=20)
try:
    conn.request("POST", "/", body=body, headers=headers)
    r = conn.getresponse()
    with open(a.hdr, "w") as f:
        for k, v in r.getheaders():
            f.write("%s: %s\n" % (k, v))
    data = r.read()
    open(a.out, "wb").write(data)
    print(r.status)
except http.client.RemoteDisconnected:  # (a ConnectionResetError subclass)
    print("closed")
except ConnectionResetError:
    print("reset")
except http.client.IncompleteRead:
    print("truncated")
EOF
sm() { # OP JSON [options]
    local op="$1" body="$2"; shift 2
    : >"$tmp/body"; : >"$tmp/hdr"
    STATUS="$("$PY" "$tmp/sm.py" "$BASE" "$op" "$body" --out "$tmp/body" --hdr "$tmp/hdr" "$@")"
}
# j EXPR: evaluate a Python expression over the JSON body `d`, print it as JSON.
# (booleans print as Python's True/False)
j() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(v if isinstance(v, bool) else json.dumps(v, sort_keys=True))' "$tmp/body" "$1" 2>/dev/null || echo "<no-json>"; }
jr() { j "$1" | tr -d '"'; }
body() { "$PY" -c 'import sys; sys.stdout.write(open(sys.argv[1],"rb").read().decode())' "$tmp/body"; }
hdr() { grep -i "^$1:" "$tmp/hdr" | head -1 | cut -d: -f2- | sed 's/^ *//' | tr -d '\r'; }
admin() { # METHOD PATH [JSON]
    curl -sS --max-time 10 -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$BASE$2" >"$tmp/admin" 2>&1
}
adminj() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/admin" "$1"; }
# curl for the unsigned services: sets STATUS, RC; body in $tmp/body, headers in $tmp/hdr.
req() {
    local method="$1" path="$2"; shift 2
    STATUS="$(curl -sS --max-time 20 -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' -X "$method" "$@" "$BASE$path" 2>"$tmp/curl.err")"
    RC=$?
}
xml() { # XPATH-ish tag: the text of the first <tag>
    "$PY" -c 'import re,sys; m=re.search(r"<%s>(.*?)</%s>" % (sys.argv[2], sys.argv[2]), open(sys.argv[1]).read(), re.S); print(m.group(1) if m else "<none>")' "$tmp/body" "$1"
}
T1=11111111-1111-4111-8111-111111111111
T2=22222222-2222-4222-8222-222222222222
T3=33333333-3333-4333-8333-333333333333
T4=44444444-4444-4444-8444-444444444444
T5=55555555-5555-4555-8555-555555555555

# ---------------------------------------------------------------- SigV4 vectors
VECTORS="${SIGV4_VECTORS:-}"
if [ -z "$VECTORS" ]; then
    for d in "$HERE/../../../shared/testdata/sigv4" "$HERE/../../shared/testdata/sigv4" /work/shared/testdata/sigv4; do
        [ -d "$d" ] && { VECTORS="$d"; break; }
    done
fi
if [ -n "$VECTORS" ] && [ -d "$VECTORS" ]; then
    "$PY" "$FAKE" --selftest-sigv4 "$VECTORS" >"$tmp/sigv4.out" 2>&1
    grep -v '^PASS ' "$tmp/sigv4.out"
    count_output "$tmp/sigv4.out"
    check "sigv4 self-test ran the 38 v4 cases (3 checks each) + 3 contract vectors + 1" 118 "$(grep -c '^PASS ' "$tmp/sigv4.out")"
else
    check "sigv4 vectors found (set SIGV4_VECTORS)" found missing
fi

start_fake
echo "# fake at $BASE"

# ---------------------------------------------------------------- admin, headers
admin GET /__fake/ping
check "admin ping" True "$(adminj 'd["ok"]')"
STATUS="$(curl -sS -D "$tmp/hdr" -o /dev/null -w '%{http_code}' "$BASE/__fake/ping")"
check "admin answers carry Date" yes "$([ -n "$(hdr Date)" ] && echo yes || echo no)"

# ---------------------------------------------------------------- CreateSecret
sm CreateSecret "{\"Name\":\"prod/db\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"{\\\"username\\\":\\\"app\\\",\\\"password\\\":\\\"s1-pw\\\"}\",\"Description\":\"managed by rekey\",\"Tags\":[{\"Key\":\"rekey:managed\",\"Value\":\"true\"}]}"
check "CreateSecret 200 + VersionId = token" "200 $T1" "$STATUS $(jr 'd["VersionId"]')"
check "ARN ends in -6 chars" True "$(j 'bool(__import__("re").fullmatch(r"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-[A-Za-z0-9]{6}", d["ARN"]))')"
check "content type json 1.1" "application/x-amz-json-1.1" "$(hdr Content-Type)"
check "x-amzn-RequestId is a uuid" True "$("$PY" -c 'import uuid,sys; print(str(uuid.UUID(sys.argv[1]))==sys.argv[1])' "$(hdr x-amzn-RequestId)" 2>&1)"
check "Date header present on API answers" yes "$([ -n "$(hdr Date)" ] && echo yes || echo no)"
ARN1="$(jr 'd["ARN"]')"
sm CreateSecret "{\"Name\":\"prod/db\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"{\\\"username\\\":\\\"app\\\",\\\"password\\\":\\\"s1-pw\\\"}\"}"
check "CreateSecret replay same token+value → 200 same version" "200 $T1 $ARN1" "$STATUS $(jr 'd["VersionId"]') $(jr 'd["ARN"]')"
sm CreateSecret "{\"Name\":\"prod/db\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"x\"}"
check "CreateSecret existing name → 400 ResourceExistsException with capital Message" \
    '400 {"__type":"ResourceExistsException","Message":"The operation failed because the secret prod/db already exists."}' \
    "$STATUS $(body)"
sm CreateSecret '{"Name":"no/token","SecretString":"x"}'
check "CreateSecret with value but no token → InvalidRequestException" \
    '400 InvalidRequestException You must provide a ClientRequestToken value. We recommend a UUID-type value.' \
    "$STATUS $(jr 'd["__type"]') $(jr 'd["Message"]')"
sm CreateSecret '{"Name":"bad name!?"}'
check "CreateSecret invalid name → ValidationException" "400 ValidationException" "$STATUS $(jr 'd["__type"]')"
sm CreateSecret '{"Name":"empty/one"}'
check "CreateSecret without value: no VersionId, no token needed" "200 False" "$STATUS $(j '"VersionId" in d')"
sm GetSecretValue '{"SecretId":"empty/one"}'
check "Get of a secret with no versions → ResourceNotFound staging label" \
    "400 Secrets Manager can't find the specified secret value for staging label: AWSCURRENT" "$STATUS $(jr 'd["Message"]')"
sm CreateSecret "{\"Name\":\"x/short-token\",\"ClientRequestToken\":\"abc\",\"SecretString\":\"x\"}"
check "ClientRequestToken shorter than 32 → ValidationException" "400 ValidationException" "$STATUS $(jr 'd["__type"]')"

# ---------------------------------------------------------------- GetSecretValue
sm GetSecretValue '{"SecretId":"prod/db"}'
check "GetSecretValue default AWSCURRENT" "200 $T1 [\"AWSCURRENT\"]" "$STATUS $(jr 'd["VersionId"]') $(j 'd["VersionStages"]')"
check "SecretString returned as stored" '"{\"username\":\"app\",\"password\":\"s1-pw\"}"' "$(j 'd["SecretString"]')"
check "CreatedDate is an epoch number" True "$(j 'isinstance(d["CreatedDate"], (int, float)) and d["CreatedDate"] > 1.7e9')"
check "no SecretBinary for a string secret" False "$(j '"SecretBinary" in d')"
sm GetSecretValue "{\"SecretId\":\"$ARN1\"}"
check "GetSecretValue by full ARN" "200 prod/db" "$STATUS $(jr 'd["Name"]')"
sm GetSecretValue '{"SecretId":"nope/nothing"}'
check "missing secret → 400 exact body" \
    '400 {"__type":"ResourceNotFoundException","Message":"Secrets Manager can'"'"'t find the specified secret."}' "$STATUS $(body)"
sm GetSecretValue '{}'
check "missing SecretId → ValidationException" "400 ValidationException" "$STATUS $(jr 'd["__type"]')"

# ---------------------------------------------------------------- PutSecretValue, idempotency
sm PutSecretValue '{"SecretId":"prod/db","SecretString":"v2"}'
check "PutSecretValue without token → exact InvalidRequestException" \
    '400 {"__type":"InvalidRequestException","Message":"You must provide a ClientRequestToken value. We recommend a UUID-type value."}' \
    "$STATUS $(body)"
sm PutSecretValue "{\"SecretId\":\"prod/db\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"S2\",\"VersionStages\":[\"AWSPENDING\"]}"
check "Put staged AWSPENDING → 200" "200 $T2 [\"AWSPENDING\"]" "$STATUS $(jr 'd["VersionId"]') $(j 'd["VersionStages"]')"
sm PutSecretValue "{\"SecretId\":\"prod/db\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"S2\",\"VersionStages\":[\"AWSPENDING\"]}"
check "Put replay same token + same value → 200 same version" "200 $T2" "$STATUS $(jr 'd["VersionId"]')"
sm PutSecretValue "{\"SecretId\":\"prod/db\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"OTHER\",\"VersionStages\":[\"AWSPENDING\"]}"
check "Put same token + other value → ResourceExistsException" "400 ResourceExistsException" "$STATUS $(jr 'd["__type"]')"
sm PutSecretValue "{\"SecretId\":\"prod/db\",\"ClientRequestToken\":\"$T5\"}"
check "Put without a value → InvalidRequestException" "400 InvalidRequestException" "$STATUS $(jr 'd["__type"]')"
sm PutSecretValue "{\"SecretId\":\"prod/db\",\"ClientRequestToken\":\"$T5\",\"SecretString\":\"a\",\"SecretBinary\":\"YQ==\"}"
check "Put with both values → InvalidParameterException" "400 InvalidParameterException" "$STATUS $(jr 'd["__type"]')"
sm PutSecretValue "{\"SecretId\":\"nope/x\",\"ClientRequestToken\":\"$T5\",\"SecretString\":\"a\"}"
check "Put to a missing secret → ResourceNotFoundException" "400 ResourceNotFoundException" "$STATUS $(jr 'd["__type"]')"
sm GetSecretValue '{"SecretId":"prod/db","VersionStage":"AWSPENDING"}'
check "Get by stage AWSPENDING" "200 \"S2\"" "$STATUS $(j 'd["SecretString"]')"
sm GetSecretValue "{\"SecretId\":\"prod/db\",\"VersionId\":\"$T2\",\"VersionStage\":\"AWSCURRENT\"}"
check "VersionId + other VersionStage → InvalidRequestException" \
    "400 You provided a VersionStage that is not associated to the provided VersionId." "$STATUS $(jr 'd["Message"]')"
sm GetSecretValue "{\"SecretId\":\"prod/db\",\"VersionId\":\"$T5\"}"
check "unknown VersionId → ResourceNotFound for VersionId" \
    "400 Secrets Manager can't find the specified secret value for VersionId: $T5" "$STATUS $(jr 'd["Message"]')"
sm GetSecretValue '{"SecretId":"prod/db","VersionStage":"NOPE"}'
check "unattached label → ResourceNotFound for staging label" \
    "400 Secrets Manager can't find the specified secret value for staging label: NOPE" "$STATUS $(jr 'd["Message"]')"

# ---------------------------------------------------------------- 2.6 label table
stages() { sm DescribeSecret "{\"SecretId\":\"$1\"}"; j "{k[:2]: sorted(v) for k, v in d['VersionIdsToStages'].items()}"; }
check "row 2: v1 AWSCURRENT, v2 AWSPENDING" '{"11": ["AWSCURRENT"], "22": ["AWSPENDING"]}' "$(stages prod/db)"
sm UpdateSecretVersionStage "{\"SecretId\":\"prod/db\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"$T2\"}"
check "move AWSCURRENT without RemoveFromVersionId → exact InvalidParameterException" \
    "400 InvalidParameterException The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version $T1, so you must explicitly reference that version in RemoveFromVersionId." \
    "$STATUS $(jr 'd["__type"]') $(jr 'd["Message"]')"
sm UpdateSecretVersionStage "{\"SecretId\":\"prod/db\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"$T2\",\"RemoveFromVersionId\":\"$T2\"}"
check "RemoveFromVersionId naming the wrong version → InvalidParameterException" "400 InvalidParameterException" "$STATUS $(jr 'd["__type"]')"
sm UpdateSecretVersionStage "{\"SecretId\":\"prod/db\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"$T5\",\"RemoveFromVersionId\":\"$T1\"}"
check "MoveToVersionId unknown → InvalidParameterException" "400 InvalidParameterException" "$STATUS $(jr 'd["__type"]')"
sm UpdateSecretVersionStage "{\"SecretId\":\"prod/db\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"$T2\",\"RemoveFromVersionId\":\"$T1\"}"
check "UpdateSecretVersionStage answer" "200 prod/db $ARN1" "$STATUS $(jr 'd["Name"]') $(jr 'd["ARN"]')"
check "row 3: v1 AWSPREVIOUS, v2 AWSCURRENT+AWSPENDING" '{"11": ["AWSPREVIOUS"], "22": ["AWSCURRENT", "AWSPENDING"]}' "$(stages prod/db)"
sm PutSecretValue "{\"SecretId\":\"prod/db\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"S3\"}"
check "plain Put → AWSCURRENT on the new version" "200 [\"AWSCURRENT\"]" "$STATUS $(j 'd["VersionStages"]')"
check "row 4 (either): v1 deprecated, v2 only AWSPREVIOUS (lost AWSPENDING), v3 AWSCURRENT" \
    '{"22": ["AWSPREVIOUS"], "33": ["AWSCURRENT"]}' "$(stages prod/db)"
sm ListSecretVersionIds '{"SecretId":"prod/db"}'
check "ListSecretVersionIds hides deprecated" "[\"$T2\", \"$T3\"]" "$(j 'sorted(v["VersionId"] for v in d["Versions"])')"
sm ListSecretVersionIds '{"SecretId":"prod/db","IncludeDeprecated":true}'
check "IncludeDeprecated shows v1 without VersionStages" "3 False [\"DefaultEncryptionKey\"]" \
    "$(j 'len(d["Versions"])') $(j '"VersionStages" in [v for v in d["Versions"] if v["VersionId"].startswith("1111")][0]') $(j 'd["Versions"][0]["KmsKeyIds"]')"
# The "or" branch on a second secret.
sm CreateSecret "{\"Name\":\"prod/or\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"S1\"}"
sm PutSecretValue "{\"SecretId\":\"prod/or\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"S2\",\"VersionStages\":[\"AWSPENDING\"]}"
sm UpdateSecretVersionStage "{\"SecretId\":\"prod/or\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"$T2\",\"RemoveFromVersionId\":\"$T1\"}"
sm PutSecretValue "{\"SecretId\":\"prod/or\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"S3\",\"VersionStages\":[\"AWSPENDING\"]}"
check "row 4 (or): v1 AWSPREVIOUS, v2 AWSCURRENT, v3 AWSPENDING" '{"11": ["AWSPREVIOUS"], "22": ["AWSCURRENT"], "33": ["AWSPENDING"]}' "$(stages prod/or)"
sm UpdateSecretVersionStage "{\"SecretId\":\"prod/or\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"$T3\",\"RemoveFromVersionId\":\"$T2\"}"
check "row 5: v1 deprecated, v2 AWSPREVIOUS, v3 AWSCURRENT+AWSPENDING" '{"22": ["AWSPREVIOUS"], "33": ["AWSCURRENT", "AWSPENDING"]}' "$(stages prod/or)"
sm UpdateSecretVersionStage "{\"SecretId\":\"prod/or\",\"VersionStage\":\"AWSPENDING\",\"RemoveFromVersionId\":\"$T3\"}"
check "remove-only (tidy AWSPENDING)" '{"22": ["AWSPREVIOUS"], "33": ["AWSCURRENT"]}' "$(stages prod/or)"
sm UpdateSecretVersionStage "{\"SecretId\":\"prod/or\",\"VersionStage\":\"AWSCURRENT\",\"RemoveFromVersionId\":\"$T3\"}"
check "removing AWSCURRENT without a move → InvalidParameterException" "400 InvalidParameterException" "$STATUS $(jr 'd["__type"]')"
sm UpdateSecretVersionStage "{\"SecretId\":\"prod/or\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"$T2\",\"RemoveFromVersionId\":\"$T3\"}"
check "rollback: AWSPREVIOUS lands on the version AWSCURRENT left" '{"22": ["AWSCURRENT"], "33": ["AWSPREVIOUS"]}' "$(stages prod/or)"
# Custom labels (rule 1): a version keeps PUT1 when it loses AWSCURRENT.
sm CreateSecret "{\"Name\":\"prod/custom\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"S1\"}"
sm PutSecretValue "{\"SecretId\":\"prod/custom\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"S2\",\"VersionStages\":[\"AWSCURRENT\",\"PUT1\"]}"
sm PutSecretValue "{\"SecretId\":\"prod/custom\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"S3\"}"
check "custom label kept, AWSPREVIOUS added" '{"22": ["AWSPREVIOUS", "PUT1"], "33": ["AWSCURRENT"]}' "$(stages prod/custom)"
sm PutSecretValue "{\"SecretId\":\"prod/custom\",\"ClientRequestToken\":\"$T4\",\"SecretString\":\"S4\",\"VersionStages\":[\"PUT1\"]}"
check "a label moves (rule 1); AWSCURRENT untouched unless listed (rule 3)" '{"22": ["AWSPREVIOUS"], "33": ["AWSCURRENT"], "44": ["PUT1"]}' "$(stages prod/custom)"

# ---------------------------------------------------------------- binary, describe
sm CreateSecret "{\"Name\":\"bin/key\",\"ClientRequestToken\":\"$T1\",\"SecretBinary\":\"AAECAwQ=\"}"
sm GetSecretValue '{"SecretId":"bin/key"}'
check "SecretBinary round trip (base64), no SecretString" '200 "AAECAwQ=" False' "$STATUS $(j 'd["SecretBinary"]') $(j '"SecretString" in d')"
sm PutSecretValue "{\"SecretId\":\"bin/key\",\"ClientRequestToken\":\"$T2\",\"SecretBinary\":\"not base64!!\"}"
check "SecretBinary not base64 → SerializationException" "400 SerializationException" "$STATUS $(jr 'd["__type"]')"
sm DescribeSecret '{"SecretId":"prod/db"}'
check "DescribeSecret fields" '200 "managed by rekey" False [{"Key": "rekey:managed", "Value": "true"}] True' \
    "$STATUS $(j 'd["Description"]') $(j '"RotationEnabled" in d') $(j 'd["Tags"]') $(j 'all(isinstance(d[k], float) or isinstance(d[k], int) for k in ("CreatedDate", "LastChangedDate", "LastAccessedDate"))')"
check "LastAccessedDate has date resolution" True "$(j 'd["LastAccessedDate"] % 86400 == 0')"
check "DescribeSecret of a missing secret" "400 ResourceNotFoundException" "$(sm DescribeSecret '{"SecretId":"nope/x"}'; echo "$STATUS") $(jr 'd["__type"]')"

# ---------------------------------------------------------------- ListSecrets pagination / filters
for i in 1 2 3 4 5; do sm CreateSecret "{\"Name\":\"page/s$i\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"p$i\"}"; done
"$PY" - "$tmp/sm.py" "$BASE" "$tmp" >"$tmp/pages.out" <<'EOF'
import json, subprocess, sys
smpy, base, tmp = sys.argv[1:4]
def call(op, body):
    st = subprocess.run([sys.executable, smpy, base, op, json.dumps(body), "--out", tmp + "/pb", "--hdr", tmp + "/ph"],
                        capture_output=True, text=True).stdout.strip()
    return st, json.load(open(tmp + "/pb"))
sizes, names, tok = [], [], None
while True:
    b = {"MaxResults": 2, "Filters": [{"Key": "name", "Values": ["page/"]}]}
    if tok: b["NextToken"] = tok
    st, d = call("ListSecrets", b)
    sizes.append(len(d["SecretList"])); names += [s["Name"] for s in d["SecretList"]]
    tok = d.get("NextToken")
    if not tok or len(sizes) > 10: break
print(" ".join(map(str, sizes)), ",".join(names))
st, d = call("ListSecrets", {"Filters": [{"Key": "name", "Values": ["!page/"]}]})
print(sorted(s["Name"] for s in d["SecretList"]))
st, d = call("ListSecrets", {"Filters": [{"Key": "name", "Values": ["page/"]}], "SortOrder": "desc", "MaxResults": 1})
print(d["SecretList"][0]["Name"], sorted(d["SecretList"][0]["SecretVersionsToStages"].values()))
sizes, tok = [], None
while True:
    b = {"SecretId": "prod/custom", "MaxResults": 1, "IncludeDeprecated": True}
    if tok: b["NextToken"] = tok
    st, d = call("ListSecretVersionIds", b)
    sizes.append(len(d["Versions"])); tok = d.get("NextToken")
    if not tok or len(sizes) > 10: break
print(sizes)
EOF
check "ListSecrets MaxResults=2 pages 2/2/1 in CreatedDate order" "2 2 1 page/s1,page/s2,page/s3,page/s4,page/s5" "$(sed -n 1p "$tmp/pages.out")"
check "name filter negation (!page/)" "['bin/key', 'empty/one', 'prod/custom', 'prod/db', 'prod/or']" "$(sed -n 2p "$tmp/pages.out")"
check "SortOrder desc, SecretVersionsToStages in list entries" "page/s5 [['AWSCURRENT']]" "$(sed -n 3p "$tmp/pages.out")"
check "ListSecretVersionIds pages of 1 (4 versions)" "[1, 1, 1, 1]" "$(sed -n 4p "$tmp/pages.out")"
sm ListSecrets '{"NextToken":"garbage"}'
check "bad NextToken → InvalidNextTokenException" "400 InvalidNextTokenException" "$STATUS $(jr 'd["__type"]')"
sm ListSecrets '{"MaxResults":0}'
check "MaxResults 0 → ValidationException" "400 ValidationException" "$STATUS $(jr 'd["__type"]')"
sm ListSecrets '{"Filters":[{"Key":"colour","Values":["x"]}]}'
check "unknown filter key → ValidationException" "400 ValidationException" "$STATUS $(jr 'd["__type"]')"
sm ListSecrets '{"Filters":[{"Key":"tag-key","Values":["rekey:"]}]}'
check "tag-key prefix filter" '["prod/db"]' "$(j '[s["Name"] for s in d["SecretList"]]')"
admin POST /__fake/config '{"list_empty_first_page":true}'
sm ListSecrets '{}'
check "list_empty_first_page: empty page with a NextToken" "200 0 True" "$STATUS $(j 'len(d["SecretList"])') $(j '"NextToken" in d')"
sm ListSecrets "{\"NextToken\":\"$(jr 'd["NextToken"]')\"}"
check "…and the next page has everything" 10 "$(j 'len(d["SecretList"])')"
admin POST /__fake/config '{"list_empty_first_page":false}'

# ---------------------------------------------------------------- version quota
admin POST /__fake/config '{"version_quota":3}'
sm CreateSecret "{\"Name\":\"quota/v\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"1\"}"
sm PutSecretValue "{\"SecretId\":\"quota/v\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"2\"}"
sm PutSecretValue "{\"SecretId\":\"quota/v\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"3\"}"
sm PutSecretValue "{\"SecretId\":\"quota/v\",\"ClientRequestToken\":\"$T4\",\"SecretString\":\"4\"}"
check "version quota → LimitExceededException (young deprecated versions kept)" "400 LimitExceededException" "$STATUS $(jr 'd["__type"]')"
sm PutSecretValue "{\"SecretId\":\"quota/v\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"3\"}"
check "…an idempotent replay is not a new version" 200 "$STATUS"
admin POST /__fake/config '{"deprecated_version_min_age":0}'
sm PutSecretValue "{\"SecretId\":\"quota/v\",\"ClientRequestToken\":\"$T4\",\"SecretString\":\"4\"}"
sm ListSecretVersionIds '{"SecretId":"quota/v","IncludeDeprecated":true}'
check "old deprecated versions purged when allowed" "200 [\"$T2\", \"$T3\", \"$T4\"]" "$STATUS $(j 'sorted(v["VersionId"] for v in d["Versions"])')"
admin POST /__fake/config '{"version_quota":100,"deprecated_version_min_age":86400}'
# The default quota: 100 versions (98 seeded by "another writer" + the first + one Put).
sm CreateSecret "{\"Name\":\"quota/100\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"0\"}"
for i in $(seq 98); do admin POST /__fake/seed "{\"Name\":\"quota/100\",\"SecretString\":\"seed-$i\"}"; done
sm PutSecretValue "{\"SecretId\":\"quota/100\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"100th\"}"
s100=$STATUS
sm PutSecretValue "{\"SecretId\":\"quota/100\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"101st\"}"
check "default version quota: the 100th version is accepted, the 101st is LimitExceededException" "200 400 LimitExceededException" "$s100 $STATUS $(jr 'd["__type"]')"

# ---------------------------------------------------------------- RotateSecret
sm CreateSecret "{\"Name\":\"rot/json\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"{\\\"username\\\":\\\"app\\\",\\\"password\\\":\\\"r1\\\"}\"}"
sm RotateSecret '{"SecretId":"rot/json"}'
check "RotateSecret without token → InvalidParameterException (2.0)" "400 InvalidParameterException" "$STATUS $(jr 'd["__type"]')"
sm RotateSecret "{\"SecretId\":\"rot/json\",\"ClientRequestToken\":\"$T2\"}"
check "RotateSecret without a Lambda → InvalidRequestException" \
    "400 No Lambda rotation function ARN is associated with this secret." "$STATUS $(jr 'd["Message"]')"
admin POST /__fake/config '{"rotation_create_delay_ms":1000,"rotation_finish_delay_ms":800}'
sm RotateSecret "{\"SecretId\":\"rot/json\",\"ClientRequestToken\":\"$T2\",\"RotationLambdaARN\":\"arn:aws:lambda:us-east-1:123456789012:function:rot\",\"RotationRules\":{\"AutomaticallyAfterDays\":30}}"
check "RotateSecret → VersionId = token" "200 $T2" "$STATUS $(jr 'd["VersionId"]')"
check "…AWSPENDING stub exists at once" '{"11": ["AWSCURRENT"], "22": ["AWSPENDING"]}' "$(stages rot/json)"
sm GetSecretValue "{\"SecretId\":\"rot/json\",\"VersionId\":\"$T2\"}"
check "…the stub has no value yet (ResourceNotFound)" "400 ResourceNotFoundException" "$STATUS $(jr 'd["__type"]')"
sm RotateSecret "{\"SecretId\":\"rot/json\",\"ClientRequestToken\":\"$T3\"}"
check "second rotation while one is pending → InvalidRequestException" "400 InvalidRequestException" "$STATUS $(jr 'd["__type"]')"
sleep 1
sm GetSecretValue '{"SecretId":"rot/json","VersionStage":"AWSPENDING"}'
check "createSecret filled AWSPENDING (JSON kept, new 32-char password)" "200 app True" \
    "$STATUS $(j 'json.loads(d["SecretString"])["username"]' | tr -d '"') $(j 'len(json.loads(d["SecretString"])["password"]) == 32')"
sleep 1
check "finishSecret moved AWSCURRENT, AWSPREVIOUS followed" '{"11": ["AWSPREVIOUS"], "22": ["AWSCURRENT", "AWSPENDING"]}' "$(stages rot/json)"
check "RotationEnabled true, LastRotatedDate, RotationRules" 'True True {"AutomaticallyAfterDays": 30}' \
    "$(j 'd["RotationEnabled"]') $(j '"LastRotatedDate" in d') $(j 'd["RotationRules"]')"
admin GET /__fake/state
check "rotation log: all four steps ok" "['createSecret', 'setSecret', 'testSecret', 'finishSecret']" \
    "$(adminj '[e["step"] for e in d["rotation_log"] if e["token"]=="'$T2'" and e["result"]=="ok"]')"
admin POST /__fake/config '{"rotation_mode":"fail_create","rotation_create_delay_ms":10}'
sm RotateSecret "{\"SecretId\":\"rot/json\",\"ClientRequestToken\":\"$T3\"}"
check "a new rotation is allowed once AWSPENDING sits on AWSCURRENT; stored Lambda reused" 200 "$STATUS"
sleep 0.3
sm GetSecretValue "{\"SecretId\":\"rot/json\",\"VersionId\":\"$T3\"}"
check "fail_create: AWSPENDING version stays empty" "400 ResourceNotFoundException" "$STATUS $(jr 'd["__type"]')"
# The rotation function's own PutSecretValue with that token fills the stub (2.0).
sm PutSecretValue "{\"SecretId\":\"rot/json\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"by-lambda\",\"VersionStages\":[\"AWSPENDING\"]}"
check "Put with the rotation token fills the stub (not a token reuse)" "200 [\"AWSPENDING\"]" "$STATUS $(j 'd["VersionStages"]')"
sm GetSecretValue "{\"SecretId\":\"rot/json\",\"VersionId\":\"$T3\"}"
check "…readable now" '200 "by-lambda"' "$STATUS $(j 'd["SecretString"]')"
sm CreateSecret "{\"Name\":\"rot/plain\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"plain-text\"}"
admin POST /__fake/config '{"rotation_mode":"fail_finish","rotation_finish_delay_ms":10}'
sm RotateSecret "{\"SecretId\":\"rot/plain\",\"ClientRequestToken\":\"$T2\",\"RotationLambdaARN\":\"arn:aws:lambda:us-east-1:123456789012:function:rot\"}"
sleep 0.3
check "fail_finish: filled but not promoted" '{"11": ["AWSCURRENT"], "22": ["AWSPENDING"]}' "$(stages rot/plain)"
sm GetSecretValue '{"SecretId":"rot/plain","VersionStage":"AWSPENDING"}'
check "non-JSON secret gets a fresh random string" "True" "$(j 'd["SecretString"] != "plain-text" and len(d["SecretString"]) == 32')"
admin POST /__fake/config '{"rotation_mode":"stall","rotation_create_delay_ms":10,"rotation_finish_delay_ms":10}'
sm CreateSecret "{\"Name\":\"rot/stall\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"st\"}"
sm RotateSecret "{\"SecretId\":\"rot/stall\",\"ClientRequestToken\":\"$T2\",\"RotationLambdaARN\":\"arn:aws:lambda:us-east-1:123456789012:function:rot\"}"
sleep 0.3
check "stall: the Lambda never finishes" '{"11": ["AWSCURRENT"], "22": ["AWSPENDING"]}' "$(stages rot/stall)"
sm RotateSecret "{\"SecretId\":\"rot/plain\",\"ClientRequestToken\":\"$T4\",\"RotateImmediately\":false}"
check "RotateImmediately false with a rotation pending elsewhere → InvalidRequestException" "400 InvalidRequestException" "$STATUS $(jr 'd["__type"]')"
sm CreateSecret "{\"Name\":\"rot/later\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"l\"}"
sm RotateSecret "{\"SecretId\":\"rot/later\",\"ClientRequestToken\":\"$T2\",\"RotationLambdaARN\":\"arn:aws:lambda:us-east-1:123456789012:function:rot\",\"RotateImmediately\":false}"
check "RotateImmediately false: rotation configured, no new version" '200 {"11": ["AWSCURRENT"]} True' "$STATUS $(stages rot/later) $(j 'd["RotationEnabled"]')"
admin POST /__fake/config '{"rotation_mode":"ok","rotation_create_delay_ms":50,"rotation_finish_delay_ms":300}'

# ---------------------------------------------------------------- Delete / Restore
sm DeleteSecret '{"SecretId":"page/s5","RecoveryWindowInDays":7}'
check "DeleteSecret with a window → DeletionDate" "200 True" "$STATUS $(j 'd["DeletionDate"] > 1.7e9')"
sm GetSecretValue '{"SecretId":"page/s5"}'
check "Get on a secret marked for deletion → InvalidRequestException" "400 InvalidRequestException" "$STATUS $(jr 'd["__type"]')"
sm DescribeSecret '{"SecretId":"page/s5"}'
check "Describe still works and shows DeletedDate" "200 True" "$STATUS $(j '"DeletedDate" in d')"
sm ListSecrets '{"Filters":[{"Key":"name","Values":["page/"]}]}'
check "ListSecrets hides it" 4 "$(j 'len(d["SecretList"])')"
sm ListSecrets '{"Filters":[{"Key":"name","Values":["page/"]}],"IncludePlannedDeletion":true}'
check "…unless IncludePlannedDeletion" 5 "$(j 'len(d["SecretList"])')"
sm CreateSecret "{\"Name\":\"page/s5\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"x\"}"
check "CreateSecret over a pending deletion → InvalidRequestException" "400 InvalidRequestException" "$STATUS $(jr 'd["__type"]')"
sm RestoreSecret '{"SecretId":"page/s5"}'
sm GetSecretValue '{"SecretId":"page/s5"}'
check "RestoreSecret brings it back" '200 "p5"' "$STATUS $(j 'd["SecretString"]')"
sm DeleteSecret '{"SecretId":"page/s4","ForceDeleteWithoutRecovery":true}'
sm DescribeSecret '{"SecretId":"page/s4"}'
check "ForceDeleteWithoutRecovery removes at once" "400 ResourceNotFoundException" "$STATUS $(jr 'd["__type"]')"

# ---------------------------------------------------------------- unknown operation, serialization
sm FrobnicateSecret '{}'
check "unknown operation → 400 UnknownOperationException" "400 UnknownOperationException" "$STATUS $(jr 'd["__type"]')"
admin POST /__fake/config '{"unknown_operation_status":404}'
sm FrobnicateSecret '{}'
check "unknown_operation_status 404" 404 "$STATUS"
admin POST /__fake/config '{"unknown_operation_status":400}'
sm GetSecretValue '{not json'
check "bad JSON → SerializationException" "400 SerializationException" "$STATUS $(jr 'd["__type"]')"
admin POST /__fake/config '{"error_type_prefix":"com.amazonaws.secretsmanager#"}'
sm GetSecretValue '{"SecretId":"nope/x"}'
check "error_type_prefix namespaces __type (trap 6)" "com.amazonaws.secretsmanager#ResourceNotFoundException" "$(jr 'd["__type"]')"
admin POST /__fake/config '{"error_type_prefix":""}'

# ---------------------------------------------------------------- SigV4 errors
sm GetSecretValue '{"SecretId":"prod/db"}' --no-auth
check "no Authorization → 403 MissingAuthenticationToken (lowercase message)" \
    '403 {"__type":"MissingAuthenticationToken","message":"Missing Authentication Token"}' "$STATUS $(body)"
sm GetSecretValue '{"SecretId":"prod/db"}' --secret wrong-secret
check "wrong secret key → InvalidSignatureException" "400 InvalidSignatureException True" \
    "$STATUS $(jr 'd["__type"]') $(j 'd["message"].startswith("The request signature we calculated does not match") and "The Canonical String for this request should have been" in d["message"]')"
admin POST /__fake/config '{"signature_debug":false}'
sm GetSecretValue '{"SecretId":"prod/db"}' --secret wrong-secret
check "signature_debug false → the bare message" \
    '400 {"__type":"InvalidSignatureException","message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}' \
    "$STATUS $(body)"
admin POST /__fake/config '{"signature_debug":true}'
sm GetSecretValue '{"SecretId":"prod/db"}' --sign-body '{"SecretId":"other"}'
check "body changed after signing → InvalidSignatureException" "400 InvalidSignatureException" "$STATUS $(jr 'd["__type"]')"
sm GetSecretValue '{"SecretId":"prod/db"}' --sign-host "localhost:$PORT"
check "Host differs from the signed one → InvalidSignatureException" "400 InvalidSignatureException" "$STATUS $(jr 'd["__type"]')"
sm GetSecretValue '{"SecretId":"prod/db"}' --key AKIDUNKNOWN
check "unknown access key → UnrecognizedClientException" \
    '400 {"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}' "$STATUS $(body)"
sm GetSecretValue '{"SecretId":"prod/db"}' --date-offset -400
check "X-Amz-Date 400 s old → Signature expired (5 min)" "400 InvalidSignatureException True" \
    "$STATUS $(jr 'd["__type"]') $(j '__import__("re").fullmatch(r"Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)", d["message"]) is not None')"
sm GetSecretValue '{"SecretId":"prod/db"}' --date-offset 400
check "X-Amz-Date 400 s ahead → Signature not yet current" "400 True" "$STATUS $(j 'd["message"].startswith("Signature not yet current:")')"
sm GetSecretValue '{"SecretId":"prod/db"}' --date-offset -240
check "X-Amz-Date 4 min old is within the window" 200 "$STATUS"
sm GetSecretValue '{"SecretId":"prod/db"}' --region eu-west-1
check "wrong region in scope → InvalidSignatureException valid region" "400 InvalidSignatureException True" \
    "$STATUS $(jr 'd["__type"]') $(j 'd["message"].startswith("Credential should be scoped to a valid region")')"
sm GetSecretValue '{"SecretId":"prod/db"}' --service sts
check "wrong service in scope → InvalidSignatureException" "400 InvalidSignatureException" "$STATUS $(jr 'd["__type"]')"
sm GetSecretValue '{"SecretId":"prod/db"}' --scope-date 20200101
check "scope date ≠ X-Amz-Date → InvalidSignatureException" "400 InvalidSignatureException" "$STATUS $(jr 'd["__type"]')"
sm GetSecretValue '{"SecretId":"prod/db"}' --authz 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20200101/us-east-1/secretsmanager/aws4_request'
check "Authorization without SignedHeaders/Signature → IncompleteSignature" "400 IncompleteSignature" "$STATUS $(jr 'd["__type"]')"
now="$("$PY" -c 'import time; print(time.time())')"
admin POST /__fake/config "{\"credentials\":[{\"access_key_id\":\"ASIATEMP000000000001\",\"secret_access_key\":\"tempsecret\",\"session_token\":\"tok-1\",\"expires_at\":$(echo "$now + 3600" | bc)},{\"access_key_id\":\"ASIAGONE000000000001\",\"secret_access_key\":\"gonesecret\",\"session_token\":\"tok-2\",\"expires_at\":$(echo "$now - 10" | bc)},{\"access_key_id\":\"AKIASECOND000000001\",\"secret_access_key\":\"second\"}]}"
sm GetSecretValue '{"SecretId":"prod/db"}' --key ASIATEMP000000000001 --secret tempsecret --token tok-1
check "admin session credentials with their token → 200" 200 "$STATUS"
sm GetSecretValue '{"SecretId":"prod/db"}' --key ASIATEMP000000000001 --secret tempsecret
check "temporary key without X-Amz-Security-Token → UnrecognizedClientException" "400 UnrecognizedClientException" "$STATUS $(jr 'd["__type"]')"
sm GetSecretValue '{"SecretId":"prod/db"}' --key ASIATEMP000000000001 --secret tempsecret --token tok-other
check "temporary key with the wrong token → UnrecognizedClientException" "400 UnrecognizedClientException" "$STATUS $(jr 'd["__type"]')"
sm GetSecretValue '{"SecretId":"prod/db"}' --key ASIAGONE000000000001 --secret gonesecret --token tok-2
check "expired session credentials → ExpiredTokenException" \
    '400 {"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}' "$STATUS $(body)"
sm GetSecretValue '{"SecretId":"prod/db"}' --key AKIASECOND000000001 --secret second
check "a second configured key pair works" 200 "$STATUS"
sm GetSecretValue '{"SecretId":"prod/db"}' --token stray-token
check "a long-term key sent with a session token → UnrecognizedClientException" "400 UnrecognizedClientException" "$STATUS $(jr 'd["__type"]')"
# Server clock ahead by 10 minutes: the Date header shows it, a client must correct.
admin POST /__fake/clock '{"offset":600}'
check "clock offset set" 600.0 "$(adminj 'd["offset"]')"
sm GetSecretValue '{"SecretId":"prod/db"}'
check "server 10 min ahead: an unskewed request is expired" "400 True" "$STATUS $(j 'd["message"].startswith("Signature expired")')"
check "…and its Date header is 10 min ahead" True "$("$PY" -c 'import email.utils,sys,time; print(abs(email.utils.parsedate_to_datetime(sys.argv[1]).timestamp() - time.time() - 600) < 5)' "$(hdr Date)")"
sm GetSecretValue '{"SecretId":"prod/db"}' --date-offset 600
check "…a request corrected by the Date header succeeds" 200 "$STATUS"
admin POST /__fake/clock '{"offset":0}'

# ---------------------------------------------------------------- STS AssumeRoleWithWebIdentity
ROLE=arn:aws:iam::123456789012:role/rekey
sts() { req POST / -H 'Content-Type: application/x-www-form-urlencoded; charset=utf-8' --data "$1"; }
admin POST /__fake/config "{\"web_identity_tokens\":[\"good-jwt-token\"],\"expired_web_identity_tokens\":[\"old-jwt-token\"],\"role_arns\":[\"$ROLE\"]}"
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Frekey&RoleSessionName=rekey-1&WebIdentityToken=good-jwt-token&DurationSeconds=900"
check "STS 200 text/xml" "200 text/xml" "$STATUS $(hdr Content-Type)"
check "STS issues an ASIA key + assumed-role ARN" "True arn:aws:sts::123456789012:assumed-role/rekey/rekey-1" \
    "$(xml AccessKeyId | grep -qE '^ASIA[A-Z0-9]{16}$' && echo True) $(xml Arn)"
check "STS Expiration = now + DurationSeconds" True "$("$PY" -c 'import calendar,sys,time; print(abs(calendar.timegm(time.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%SZ")) - time.time() - 900) < 5)' "$(xml Expiration)")"
check "STS envelope: Result + ResponseMetadata/RequestId" "True True" \
    "$(grep -q '<AssumeRoleWithWebIdentityResult>' "$tmp/body" && echo True) $(grep -q '<ResponseMetadata>' "$tmp/body" && echo True)"
SK="$(xml AccessKeyId)"; SS="$(xml SecretAccessKey)"; ST="$(xml SessionToken)"
sm GetSecretValue '{"SecretId":"prod/db"}' --key "$SK" --secret "$SS" --token "$ST"
check "STS credentials sign a GetSecretValue" 200 "$STATUS"
sm GetSecretValue '{"SecretId":"prod/db"}' --key "$SK" --secret "$SS"
check "…not without their session token" "400 UnrecognizedClientException" "$STATUS $(jr 'd["__type"]')"
stserr() { echo "$STATUS $(xml Code)"; }
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=bad%20name&WebIdentityToken=good-jwt-token"
check "RoleSessionName charset → ValidationError (XML ErrorResponse)" "400 ValidationError True" \
    "$(stserr) $(grep -q '<ErrorResponse' "$tmp/body" && grep -q '<Type>Sender</Type>' "$tmp/body" && echo True)"
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=x&WebIdentityToken=good-jwt-token"
check "RoleSessionName too short → ValidationError" "400 ValidationError" "$(stserr)"
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=rekey&WebIdentityToken=good-jwt-token&DurationSeconds=899"
check "DurationSeconds 899 → ValidationError" "400 ValidationError" "$(stserr)"
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=rekey&WebIdentityToken=good-jwt-token&DurationSeconds=7200"
check "DurationSeconds over the role's MaxSessionDuration → ValidationError" "400 ValidationError" "$(stserr)"
admin POST /__fake/config '{"sts_max_session_duration":43200}'
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=rekey&WebIdentityToken=good-jwt-token&DurationSeconds=7200"
check "…allowed once the role's maximum is raised" 200 "$STATUS"
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=rekey&WebIdentityToken=good-jwt-token&DurationSeconds=43201"
check "DurationSeconds 43201 → ValidationError" "400 ValidationError" "$(stserr)"
admin POST /__fake/config '{"sts_max_session_duration":3600}'
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=rekey&WebIdentityToken=forged-token"
check "unknown token → InvalidIdentityToken" "400 InvalidIdentityToken" "$(stserr)"
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=rekey&WebIdentityToken=old-jwt-token"
check "expired token → ExpiredTokenException" "400 ExpiredTokenException" "$(stserr)"
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn:aws:iam::123456789012:role/other&RoleSessionName=rekey&WebIdentityToken=good-jwt-token"
check "role not accepted → 403 AccessDenied" "403 AccessDenied" "$(stserr)"
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=not-an-arn-at-all-really&RoleSessionName=rekey&WebIdentityToken=good-jwt-token"
check "malformed RoleArn → ValidationError" "400 ValidationError" "$(stserr)"
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleSessionName=rekey&WebIdentityToken=good-jwt-token"
check "missing RoleArn → ValidationError" "400 ValidationError" "$(stserr)"
sts "Action=GetSessionToken&Version=2011-06-15"
check "other STS actions → InvalidAction" "400 InvalidAction" "$(stserr)"
admin POST /__fake/config '{"sts_credential_lifetime":1}'
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=rekey&WebIdentityToken=good-jwt-token"
SK="$(xml AccessKeyId)"; SS="$(xml SecretAccessKey)"; ST="$(xml SessionToken)"
sm GetSecretValue '{"SecretId":"prod/db"}' --key "$SK" --secret "$SS" --token "$ST"
check "short-lived STS credentials work at first" 200 "$STATUS"
sleep 1.2
sm GetSecretValue '{"SecretId":"prod/db"}' --key "$SK" --secret "$SS" --token "$ST"
check "…and expire (ExpiredTokenException)" "400 ExpiredTokenException" "$STATUS $(jr 'd["__type"]')"
admin POST /__fake/config '{"sts_credential_lifetime":null}'

# ---------------------------------------------------------------- IMDSv2
req PUT /latest/api/token
check "IMDS token PUT without TTL → 400" 400 "$STATUS"
req PUT /latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 0'
check "IMDS TTL 0 → 400" 400 "$STATUS"
req PUT /latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 21601'
check "IMDS TTL 21601 → 400" 400 "$STATUS"
req PUT /latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600'
check "IMDS token PUT 200 + TTL header" "200 21600" "$STATUS $(hdr X-aws-ec2-metadata-token-ttl-seconds)"
IT="$(body)"
req GET /latest/meta-data/iam/security-credentials/
check "IMDS GET without token (v1 off) → 401" 401 "$STATUS"
req GET /latest/meta-data/iam/security-credentials/ -H 'X-aws-ec2-metadata-token: wrong'
check "IMDS wrong token → 401" 401 "$STATUS"
req GET /latest/meta-data/iam/security-credentials/ -H "X-aws-ec2-metadata-token: $IT"
check "IMDS role name" "200 rekey-instance-role" "$STATUS $(body)"
req GET /latest/meta-data/iam/security-credentials/rekey-instance-role -H "X-aws-ec2-metadata-token: $IT"
check "IMDS credentials JSON" '200 "Success" "AWS-HMAC" True' "$STATUS $(j 'd["Code"]') $(j 'd["Type"]') $(j 'all(k in d for k in ("AccessKeyId","SecretAccessKey","Token","Expiration","LastUpdated"))')"
IK="$(jr 'd["AccessKeyId"]')"; IS="$(jr 'd["SecretAccessKey"]')"; IX="$(jr 'd["Token"]')"
sm GetSecretValue '{"SecretId":"prod/db"}' --key "$IK" --secret "$IS" --token "$IX"
check "IMDS credentials sign a GetSecretValue" 200 "$STATUS"
req GET /latest/meta-data/iam/security-credentials/other-role -H "X-aws-ec2-metadata-token: $IT"
check "IMDS unknown role → 404" 404 "$STATUS"
req PUT /latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 1'
IT1="$(body)"
sleep 1.2
req GET /latest/meta-data/iam/security-credentials/ -H "X-aws-ec2-metadata-token: $IT1"
check "IMDS token past its TTL → 401" 401 "$STATUS"
admin POST /__fake/config '{"imds_v1_allowed":true,"imds_token_put_status":405}'
req PUT /latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'
check "imds_token_put_status 405" 405 "$STATUS"
req GET /latest/meta-data/iam/security-credentials/
check "imds_v1_allowed: token-less GET → 200" "200 rekey-instance-role" "$STATUS $(body)"
admin POST /__fake/config '{"imds_v1_allowed":false,"imds_token_put_status":200}'

# ---------------------------------------------------------------- container credentials
req GET /ecs/credentials
check "container credentials without a configured token" '200 True "arn:aws:iam::123456789012:role/rekey-task"' \
    "$STATUS $(j 'd["AccessKeyId"].startswith("ASIA") and all(k in d for k in ("SecretAccessKey","Token","Expiration"))') $(j 'd["RoleArn"]')"
admin POST /__fake/config '{"container_auth_token":"ctr-secret","container_path":"/v2/credentials/abc"}'
req GET /v2/credentials/abc
check "container: missing Authorization → 401" 401 "$STATUS"
req GET /v2/credentials/abc -H 'Authorization: wrong'
check "container: wrong Authorization → 403" 403 "$STATUS"
req GET /v2/credentials/abc -H 'Authorization: ctr-secret'
check "container: right Authorization → 200" 200 "$STATUS"
CK="$(jr 'd["AccessKeyId"]')"; CS="$(jr 'd["SecretAccessKey"]')"; CX="$(jr 'd["Token"]')"
sm GetSecretValue '{"SecretId":"prod/db"}' --key "$CK" --secret "$CS" --token "$CX"
check "container credentials sign a GetSecretValue" 200 "$STATUS"
admin POST /__fake/config '{"container_auth_token":null,"container_path":"/ecs/credentials"}'

# ---------------------------------------------------------------- injections
admin POST /__fake/inject '{"target":"GetSecretValue","action":"status","status":503,"headers":{"Retry-After":"1"}}'
sm DescribeSecret '{"SecretId":"prod/db"}'
check "target-scoped rule leaves other operations alone" 200 "$STATUS"
sm GetSecretValue '{"SecretId":"prod/db"}'
check "inject 503 on GetSecretValue (default body)" "503 ServiceUnavailable 1" "$STATUS $(jr 'd["__type"]') $(hdr Retry-After)"
sm GetSecretValue '{"SecretId":"prod/db"}'
check "inject expires after count" 200 "$STATUS"
admin POST /__fake/inject '{"target":"PutSecretValue","action":"status","status":500,"body":{"__type":"InternalServiceError","message":"custom"},"skip":1}'
sm PutSecretValue "{\"SecretId\":\"page/s1\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"i1\"}"
check "inject skip lets the first through" 200 "$STATUS"
sm PutSecretValue "{\"SecretId\":\"page/s1\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"i2\"}"
check "inject 500 custom body" '500 {"__type":"InternalServiceError","message":"custom"}' "$STATUS $(body)"
admin POST /__fake/inject '{"target":"PutSecretValue","action":"reset_after_apply"}'
sm PutSecretValue "{\"SecretId\":\"page/s1\",\"ClientRequestToken\":\"$T4\",\"SecretString\":\"landed\"}"
check "reset_after_apply: client sees a reset" reset "$STATUS"
sm GetSecretValue "{\"SecretId\":\"page/s1\"}"
check "…the write landed" "\"landed\" $T4" "$(j 'd["SecretString"]') $(jr 'd["VersionId"]')"
sm PutSecretValue "{\"SecretId\":\"page/s1\",\"ClientRequestToken\":\"$T4\",\"SecretString\":\"landed\"}"
check "…the retry with the same token is idempotent" "200 $T4" "$STATUS $(jr 'd["VersionId"]')"
admin POST /__fake/inject '{"target":"PutSecretValue","action":"status_after_apply","status":502}'
sm PutSecretValue "{\"SecretId\":\"page/s1\",\"ClientRequestToken\":\"$T5\",\"SecretString\":\"landed-2\"}"
check "status_after_apply: client sees 502" 502 "$STATUS"
sm GetSecretValue "{\"SecretId\":\"page/s1\",\"VersionId\":\"$T5\"}"
check "…the write landed" '200 "landed-2"' "$STATUS $(j 'd["SecretString"]')"
admin POST /__fake/inject "{\"target\":\"UpdateSecretVersionStage\",\"action\":\"write_before\",\"seed\":{\"Name\":\"page/s1\",\"SecretString\":\"theirs\"}}"
sm UpdateSecretVersionStage "{\"SecretId\":\"page/s1\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"$T2\",\"RemoveFromVersionId\":\"$T5\"}"
check "write_before: a concurrent writer moved AWSCURRENT, our promote fails" "400 InvalidParameterException" "$STATUS $(jr 'd["__type"]')"
sm GetSecretValue '{"SecretId":"page/s1"}'
check "…their value is current" '"theirs"' "$(j 'd["SecretString"]')"
admin POST /__fake/inject '{"path_regex":"^/$","target":"GetSecretValue","action":"reset"}'
sm GetSecretValue '{"SecretId":"prod/db"}'
check "reset → connection reset" reset "$STATUS"
admin POST /__fake/inject '{"target":"GetSecretValue","action":"close"}'
sm GetSecretValue '{"SecretId":"prod/db"}'
check "close → no answer" closed "$STATUS"
admin POST /__fake/inject '{"target":"GetSecretValue","action":"hang","ms":400}'
t0=$(date +%s%N)
sm GetSecretValue '{"SecretId":"prod/db"}'
check "hang then close" closed "$STATUS"
check_true "hang lasted ≥ 0.4 s" [ "$(ms_since "$t0")" -ge 380 ]
admin POST /__fake/inject '{"target":"GetSecretValue","action":"latency","ms":300}'
t0=$(date +%s%N)
sm GetSecretValue '{"SecretId":"prod/db"}'
check "latency still answers" 200 "$STATUS"
check_true "latency ≥ 0.3 s" [ "$(ms_since "$t0")" -ge 280 ]
admin POST /__fake/inject '{"target":"GetSecretValue","action":"html"}'
sm GetSecretValue '{"SecretId":"prod/db"}'
check "html 502 page" "502 text/html" "$STATUS $(hdr Content-Type)"
admin POST /__fake/inject '{"target":"GetSecretValue","action":"truncated"}'
sm GetSecretValue '{"SecretId":"prod/db"}'
check "truncated body" truncated "$STATUS"
admin POST /__fake/inject '{"target":"GetSecretValue","action":"big","bytes":200000}'
sm GetSecretValue '{"SecretId":"prod/db"}'
check "big body: exact size, valid JSON" "200 200000 True" "$STATUS $(wc -c <"$tmp/body" | tr -d ' ') $(j 'len(d["Padding"]) > 0')"
admin POST /__fake/inject '{"path_regex":"^/latest/api/token$","action":"status","status":500}'
req PUT /latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'
check "injection applies to IMDS paths too" 500 "$STATUS"
admin POST /__fake/inject '{"target":"AssumeRoleWithWebIdentity","action":"status","status":503}'
sts "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=$ROLE&RoleSessionName=rekey&WebIdentityToken=good-jwt-token"
check "target matches the STS Action" 503 "$STATUS"
admin POST /__fake/inject '{"target":"GetSecretValue","action":"status","status":500,"count":-1}'
admin GET /__fake/inject
check "GET /__fake/inject lists rules" 1 "$(adminj 'len(d["injections"])')"
admin DELETE /__fake/inject
sm GetSecretValue '{"SecretId":"prod/db"}'
check "DELETE /__fake/inject clears" 200 "$STATUS"
# A hang must not block other requests.
admin POST /__fake/inject '{"target":"GetSecretValue","action":"hang","ms":3000}'
sm GetSecretValue '{"SecretId":"prod/db"}' &
hang_client=$!
sleep 0.3
t0=$(date +%s%N)
sm DescribeSecret '{"SecretId":"prod/db"}'
check "other requests served during a hang" 200 "$STATUS"
check_true "…promptly" [ "$(ms_since "$t0")" -lt 1000 ]
wait "$hang_client" 2>/dev/null

# ---------------------------------------------------------------- quotas
admin POST /__fake/quota '{"rps":{"PutSecretValue+UpdateSecretVersionStage":2}}'
sm PutSecretValue "{\"SecretId\":\"page/s2\",\"ClientRequestToken\":\"$T2\",\"SecretString\":\"q1\"}"; s1=$STATUS
sm UpdateSecretVersionStage "{\"SecretId\":\"page/s2\",\"VersionStage\":\"X1\",\"MoveToVersionId\":\"$T2\"}"; s2=$STATUS
sm PutSecretValue "{\"SecretId\":\"page/s2\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"q2\"}"
check "shared write bucket: third write throttled" \
    '200 200 400 {"__type":"ThrottlingException","message":"Rate exceeded"}' "$s1 $s2 $STATUS $(body)"
check "no Retry-After by default" "" "$(hdr Retry-After)"
sm GetSecretValue '{"SecretId":"page/s2"}'
check "reads are not in the write bucket" 200 "$STATUS"
sleep 0.6
sm PutSecretValue "{\"SecretId\":\"page/s2\",\"ClientRequestToken\":\"$T3\",\"SecretString\":\"q2\"}"
check "the bucket refills" 200 "$STATUS"
admin POST /__fake/quota '{"rps":{"GetSecretValue":1},"retry_after":2}'
sm GetSecretValue '{"SecretId":"page/s2"}'
sm GetSecretValue '{"SecretId":"page/s2"}'
check "retry_after adds a Retry-After header" "400 2" "$STATUS $(hdr Retry-After)"
admin GET /__fake/quota
check "quota view counts rejections" 1 "$(adminj 'd["quota"]["GetSecretValue"]["rejected"]')"
for _ in 1 2 3; do admin GET /__fake/ping; done
check "admin API never throttled" True "$(adminj 'd["ok"]')"
admin DELETE /__fake/quota
sm GetSecretValue '{"SecretId":"page/s2"}'
check "quota cleared" 200 "$STATUS"

# ---------------------------------------------------------------- request log, state, seed, reset
curl -sS "$BASE/__fake/requests" >"$tmp/log.json"
check "request log: Authorization and X-Amz-Security-Token redacted" True "$("$PY" -c '
import json,sys; d=json.load(open(sys.argv[1]))["requests"]
hs=[e["headers"] for e in d]
print(all(h.get("Authorization","<redacted>")=="<redacted>" and h.get("X-Amz-Security-Token","<redacted>")=="<redacted>" for h in hs) and any("X-Amz-Security-Token" in h for h in hs))' "$tmp/log.json")"
check "request log: secret values never appear" "0 0" "$(grep -c 's1-pw' "$tmp/log.json") $(grep -c 'landed-2' "$tmp/log.json")"
check "request log: SecretString shown as <redacted>; target and error_type recorded" True "$("$PY" -c '
import json,sys; d=json.load(open(sys.argv[1]))["requests"]
print(any(e["target"]=="PutSecretValue" and isinstance(e["body"],dict) and e["body"].get("SecretString")=="<redacted>" for e in d)
      and any(e["error_type"]=="ThrottlingException" and e["status"]==400 for e in d)
      and any(e["outcome"]=="reset_after_apply" and e["applied_status"]==200 for e in d if "outcome" in e))' "$tmp/log.json")"
check "request log: no web identity token" 0 "$(grep -c 'good-jwt-token' "$tmp/log.json")"
check "request log: no /__fake entries" 0 "$("$PY" -c 'import json,sys; print(sum(e["path"].startswith("/__fake") for e in json.load(open(sys.argv[1]))["requests"]))' "$tmp/log.json")"
curl -sS "$BASE/__fake/requests?values=1" >"$tmp/logv.json"
check "?values=1 shows the values" True "$([ "$(grep -c 'landed-2' "$tmp/logv.json")" -gt 0 ] && echo True)"
admin DELETE /__fake/requests
admin GET /__fake/requests
check "request log cleared" 0 "$(adminj 'len(d["requests"])')"
admin POST /__fake/seed '{"Name":"seeded/new","SecretString":"from-seed","Description":"other writer"}'
SV="$(adminj 'd["VersionId"]')"
sm GetSecretValue '{"SecretId":"seeded/new"}'
check "seed creates a secret + AWSCURRENT version" "200 \"from-seed\" $SV" "$STATUS $(j 'd["SecretString"]') $(jr 'd["VersionId"]')"
admin POST /__fake/seed "{\"Name\":\"seeded/new\",\"SecretString\":\"staged\",\"VersionId\":\"$T2\",\"VersionStages\":[\"AWSPENDING\"]}"
admin POST /__fake/seed "{\"Name\":\"seeded/new\",\"VersionStage\":\"AWSCURRENT\",\"MoveToVersionId\":\"$T2\",\"RemoveFromVersionId\":\"$SV\"}"
check "seed moves labels like UpdateSecretVersionStage" "['AWSCURRENT', 'AWSPENDING'] ['AWSPREVIOUS']" \
    "$(adminj 'sorted(d["VersionIdsToStages"]["'$T2'"])') $(adminj 'd["VersionIdsToStages"]["'$SV'"]')"
admin GET /__fake/state
check "state: secrets, versions, stages, issued credentials" "True True True" \
    "$(adminj '"seeded/new" in d["secrets"]') $(adminj 'd["secrets"]["rot/json"]["versions"]["'$T3'"]["stages"] == ["AWSPENDING"]') $(adminj 'any(c["source"]=="sts" for c in d["credentials"].values())')"
admin POST /__fake/reset
sm GetSecretValue '{"SecretId":"prod/db"}'
check "reset clears secrets" "400 ResourceNotFoundException" "$STATUS $(jr 'd["__type"]')"
sm GetSecretValue '{"SecretId":"prod/db"}' --key AKIASECOND000000001 --secret second
check "reset drops configured keys (default pair stays)" "400 UnrecognizedClientException" "$STATUS $(jr 'd["__type"]')"

# ---------------------------------------------------------------- SIGTERM during a hang
admin POST /__fake/inject '{"path_regex":".*","action":"hang"}'
curl -sS --max-time 30 -o /dev/null -X PUT "$BASE/latest/api/token" 2>/dev/null &
hang_curl=$!
sleep 0.3
t0=$(date +%s%N)
kill -TERM "$fake_pid"
for _ in $(seq 100); do kill -0 "$fake_pid" 2>/dev/null || break; sleep 0.02; done
stop_ms="$(ms_since "$t0")"
if kill -0 "$fake_pid" 2>/dev/null; then alive=yes; else alive=no; fi
wait "$fake_pid"; frc=$?
check "SIGTERM stops the fake despite a hang, exit 0" "no 0" "$alive $frc"
check_true "…within 0.5 s (took ${stop_ms} ms)" [ "$stop_ms" -le 500 ]
check "port file removed on exit" no "$([ -e "$tmp/port" ] && echo yes || echo no)"
wait "$hang_curl" 2>/dev/null
fake_pid=""

# ---------------------------------------------------------------- --state-file survives a restart
start_fake --state-file "$tmp/state.json" --region eu-west-1
sm CreateSecret "{\"Name\":\"persist/me\",\"ClientRequestToken\":\"$T1\",\"SecretString\":\"kept\"}" --region eu-west-1
check "--region eu-west-1 accepted for signing" 200 "$STATUS"
check "…ARNs carry the region" True "$(j '":eu-west-1:" in d["ARN"]')"
admin POST /__fake/config '{"credentials":[{"access_key_id":"AKIAPERSIST00000001","secret_access_key":"persist"}]}'
stop_fake
check "state file written on exit" yes "$([ -s "$tmp/state.json" ] && echo yes || echo no)"
start_fake --state-file "$tmp/state.json" --region eu-west-1
sm GetSecretValue '{"SecretId":"persist/me"}' --region eu-west-1 --key AKIAPERSIST00000001 --secret persist
check "state file reloaded: secret and configured key" '200 "kept" ["AWSCURRENT"]' "$STATUS $(j 'd["SecretString"]') $(j 'd["VersionStages"]')"
stop_fake
t_a=$(( $(date +%s) - t_start ))
echo "# part (a) took ${t_a} s"

# ---------------------------------------------------------------- (b) AWS SDK for JavaScript v3
node_status=ok
t_b0=$(date +%s)
if [ "${AWS_FAKE_SKIP_NODE:-}" = 1 ]; then
    node_status=skip
elif ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    node_status=skip
else
    prefix="${AWS_SDK_PREFIX:-$tmp/node}"
    if [ ! -d "$prefix/node_modules/@aws-sdk/client-secrets-manager" ] || [ ! -d "$prefix/node_modules/@aws-sdk/client-sts" ] \
            || [ ! -d "$prefix/node_modules/@aws-sdk/credential-providers" ]; then
        mkdir -p "$prefix"
        echo "# npm install @aws-sdk/client-secrets-manager @aws-sdk/client-sts @aws-sdk/credential-providers into $prefix"
        if ! timeout 300 npm install --prefix "$prefix" --no-audit --no-fund --fetch-retries=1 --loglevel=error \
                @aws-sdk/client-secrets-manager @aws-sdk/client-sts @aws-sdk/credential-providers >"$tmp/npm.log" 2>&1; then
            sed 's/^/# npm: /' "$tmp/npm.log" | tail -5
            node_status=skip
        fi
    fi
fi

if [ "$node_status" = ok ]; then
    start_fake
    echo "# AWS SDK for JavaScript v3 ($(cd "$prefix" && node -p 'require("@aws-sdk/client-secrets-manager/package.json").version' 2>/dev/null)) against $BASE"
    admin POST /__fake/config '{"web_identity_tokens":["sdk-web-token"],"role_arns":["arn:aws:iam::123456789012:role/rekey"],"container_auth_token":"sdk-ctr-token","rotation_create_delay_ms":50,"rotation_finish_delay_ms":200}'
    printf 'sdk-web-token' >"$tmp/web-token"
    cat >"$tmp/sdk.js" <<'SDKJS'
'use strict';
const path = require('path');
const fs = require('fs');
const P = (m) => require(path.join(process.env.AWS_SDK_PREFIX, 'node_modules', m));
const SM = P('@aws-sdk/client-secrets-manager');
const CP = P('@aws-sdk/credential-providers');
const endpoint = process.env.FAKE_BASE;
const region = 'us-east-1';
const good = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
let pass = 0, fail = 0;
function check(name, ok, detail) {
    if (ok) { pass++; console.log(`PASS sdk: ${name}`); }
    else { fail++; console.log(`FAIL sdk: ${name}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`); }
}
async function rejects(name, promise, errName) {
    try { const v = await promise; check(name, false, { resolved: v }); }
    catch (e) { check(name, e.name === errName && e.$metadata && e.$metadata.httpStatusCode === 400, { name: e.name, message: e.message }); }
}
async function admin(method, p, body) {
    const r = await fetch(endpoint + p, { method, headers: { 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
    return r.json();
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
setTimeout(() => { console.log('FAIL sdk: timed out'); process.exit(1); }, 100000).unref();
const mk = (extra) => new SM.SecretsManagerClient({ endpoint, region, credentials: good, maxAttempts: 3, ...extra });

(async () => {
    const c = mk();
    const T1 = 'aaaaaaaa-1111-4111-8111-111111111111', T2 = 'aaaaaaaa-2222-4222-8222-222222222222';
    const cr = await c.send(new SM.CreateSecretCommand({ Name: 'sdk/db', SecretString: '{"username":"app","password":"sdk-1"}', ClientRequestToken: T1 }));
    check('CreateSecret', cr.VersionId === T1 && /secret:sdk\/db-[A-Za-z0-9]{6}$/.test(cr.ARN), cr);
    await rejects('CreateSecret existing name → ResourceExistsException', c.send(new SM.CreateSecretCommand({ Name: 'sdk/db', SecretString: 'x' })), 'ResourceExistsException');
    const g1 = await c.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' }));
    check('GetSecretValue (CreatedDate parsed to a Date)', g1.SecretString.includes('sdk-1') && g1.CreatedDate instanceof Date
          && Math.abs(g1.CreatedDate.getTime() - Date.now()) < 60000 && g1.VersionStages.join() === 'AWSCURRENT', g1);
    const p1 = await c.send(new SM.PutSecretValueCommand({ SecretId: 'sdk/db', ClientRequestToken: T2, SecretString: 'sdk-2', VersionStages: ['AWSPENDING'] }));
    check('PutSecretValue with ClientRequestToken', p1.VersionId === T2 && p1.VersionStages.join() === 'AWSPENDING', p1);
    const p2 = await c.send(new SM.PutSecretValueCommand({ SecretId: 'sdk/db', ClientRequestToken: T2, SecretString: 'sdk-2', VersionStages: ['AWSPENDING'] }));
    check('retry: same token, same value → success', p2.VersionId === T2, p2);
    await rejects('same token, other value → ResourceExistsException', c.send(new SM.PutSecretValueCommand({ SecretId: 'sdk/db', ClientRequestToken: T2, SecretString: 'other', VersionStages: ['AWSPENDING'] })), 'ResourceExistsException');
    const auto = await c.send(new SM.PutSecretValueCommand({ SecretId: 'sdk/db', SecretString: 'sdk-auto', VersionStages: ['SDKAUTO'] }));
    check('SDK fills ClientRequestToken itself (uuid)', /^[0-9a-f-]{36}$/.test(auto.VersionId), auto);
    await rejects('missing RemoveFromVersionId → InvalidParameterException', c.send(new SM.UpdateSecretVersionStageCommand({ SecretId: 'sdk/db', VersionStage: 'AWSCURRENT', MoveToVersionId: T2 })), 'InvalidParameterException');
    await c.send(new SM.UpdateSecretVersionStageCommand({ SecretId: 'sdk/db', VersionStage: 'AWSCURRENT', MoveToVersionId: T2, RemoveFromVersionId: T1 }));
    const d1 = await c.send(new SM.DescribeSecretCommand({ SecretId: 'sdk/db' }));
    check('UpdateSecretVersionStage + DescribeSecret', JSON.stringify(d1.VersionIdsToStages[T2].sort()) === '["AWSCURRENT","AWSPENDING"]'
          && d1.VersionIdsToStages[T1].join() === 'AWSPREVIOUS' && d1.LastChangedDate instanceof Date && d1.RotationEnabled === undefined, d1);
    const g2 = await c.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' }));
    check('AWSCURRENT now on the new version', g2.SecretString === 'sdk-2' && g2.VersionId === T2, g2);
    await rejects('GetSecretValue missing → ResourceNotFoundException', c.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/none' })), 'ResourceNotFoundException');
    const bin = await c.send(new SM.CreateSecretCommand({ Name: 'sdk/bin', SecretBinary: Buffer.from([0, 1, 2, 250]) }));
    const gb = await c.send(new SM.GetSecretValueCommand({ SecretId: bin.ARN }));
    check('SecretBinary round trip', gb.SecretBinary && Buffer.from(gb.SecretBinary).equals(Buffer.from([0, 1, 2, 250])) && gb.SecretString === undefined, gb);

    for (let i = 0; i < 7; i++) await c.send(new SM.CreateSecretCommand({ Name: `sdk/page/${i}`, SecretString: `v${i}` }));
    let names = [], pages = 0;
    for await (const page of SM.paginateListSecrets({ client: c, pageSize: 3 }, { Filters: [{ Key: 'name', Values: ['sdk/page/'] }] })) {
        pages++; names.push(...page.SecretList.map((s) => s.Name));
    }
    check('paginateListSecrets (pageSize 3 → 3 pages, 7 secrets)', pages === 3 && names.length === 7 && names[0] === 'sdk/page/0', { pages, names });
    await admin('POST', '/__fake/config', { list_empty_first_page: true });
    names = []; pages = 0;
    for await (const page of SM.paginateListSecrets({ client: c, pageSize: 100 }, { Filters: [{ Key: 'name', Values: ['sdk/page/'] }] })) {
        pages++; names.push(...page.SecretList.map((s) => s.Name));
    }
    check('paginator keeps going past an empty page with a NextToken', pages === 2 && names.length === 7, { pages, names });
    await admin('POST', '/__fake/config', { list_empty_first_page: false });
    for (let i = 0; i < 4; i++) await c.send(new SM.PutSecretValueCommand({ SecretId: 'sdk/page/0', SecretString: `w${i}` }));
    let vers = [], vpages = 0;
    for await (const page of SM.paginateListSecretVersionIds({ client: c, pageSize: 1 }, { SecretId: 'sdk/page/0', IncludeDeprecated: true })) {
        vpages++; vers.push(...page.Versions);
    }
    check('paginateListSecretVersionIds (IncludeDeprecated, 5 versions)', vpages === 5 && vers.length === 5
          && vers.filter((v) => !v.VersionStages).length === 3, { vpages, vers: vers.map((v) => v.VersionStages) });
    const vers2 = await c.send(new SM.ListSecretVersionIdsCommand({ SecretId: 'sdk/page/0' }));
    check('ListSecretVersionIds hides deprecated', vers2.Versions.length === 2, vers2.Versions);

    const rot = await c.send(new SM.RotateSecretCommand({ SecretId: 'sdk/db', RotationLambdaARN: 'arn:aws:lambda:us-east-1:123456789012:function:rot',
                                                          RotationRules: { AutomaticallyAfterDays: 7 } }));
    let done = false, desc;
    for (let i = 0; i < 50 && !done; i++) {
        desc = await c.send(new SM.DescribeSecretCommand({ SecretId: 'sdk/db' }));
        const st = desc.VersionIdsToStages[rot.VersionId] || [];
        done = st.includes('AWSCURRENT');
        if (!done) await sleep(100);
    }
    const gr = await c.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' }));
    check('RotateSecret + waiting: new version becomes AWSCURRENT', done && gr.VersionId === rot.VersionId && gr.SecretString !== 'sdk-2'
          && desc.RotationEnabled === true && desc.LastRotatedDate instanceof Date && desc.VersionIdsToStages[T2].join() === 'AWSPREVIOUS', desc);

    await rejects('wrong secret key → InvalidSignatureException',
                  mk({ credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wrong' }, maxAttempts: 1 }).send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' })),
                  'InvalidSignatureException');
    await rejects('unknown key → UnrecognizedClientException',
                  mk({ credentials: { accessKeyId: 'AKIDNOBODY', secretAccessKey: 'x' }, maxAttempts: 1 }).send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' })),
                  'UnrecognizedClientException');
    await rejects('wrong region → InvalidSignatureException',
                  mk({ region: 'eu-west-1', maxAttempts: 1 }).send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' })), 'InvalidSignatureException');

    // Clock skew: the fake's clock runs 10 minutes ahead; the SDK must correct
    // systemClockOffset from the Date header and retry.
    await admin('POST', '/__fake/clock', { offset: 600 });
    await admin('DELETE', '/__fake/requests');
    const skewed = mk();
    const gs = await skewed.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' }));
    const log = (await admin('GET', '/__fake/requests')).requests.filter((e) => e.target === 'GetSecretValue');
    check('clock skew: corrected from Date header and retried', gs.SecretString !== undefined
          && Math.abs(skewed.config.systemClockOffset - 600000) < 10000 && log.length === 2
          && log[0].error_type === 'InvalidSignatureException' && log[1].status === 200, { offset: skewed.config.systemClockOffset, log: log.map((e) => [e.status, e.error_type]) });
    await admin('POST', '/__fake/clock', { offset: 0 });
    const preset = mk({ systemClockOffset: -20 * 60 * 1000 });
    const gp = await preset.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' }));
    check('a client whose systemClockOffset is 20 min off recovers', gp.SecretString !== undefined && Math.abs(preset.config.systemClockOffset) < 10000,
          preset.config.systemClockOffset);

    // Credential providers.
    const stsCfg = { endpoint, region };
    const viaFile = mk({ credentials: CP.fromTokenFile({ webIdentityTokenFile: process.env.WEB_TOKEN_FILE, roleArn: 'arn:aws:iam::123456789012:role/rekey',
                                                         roleSessionName: 'rekey-sdk', clientConfig: stsCfg }) });
    const gf = await viaFile.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' }));
    const cf = await viaFile.config.credentials();
    check('fromTokenFile → STS → signed GetSecretValue', gf.SecretString !== undefined && /^ASIA/.test(cf.accessKeyId) && cf.sessionToken && cf.expiration instanceof Date, cf.accessKeyId);
    const viaWeb = mk({ credentials: CP.fromWebToken({ webIdentityToken: 'sdk-web-token', roleArn: 'arn:aws:iam::123456789012:role/rekey',
                                                       roleSessionName: 'rekey-web', durationSeconds: 900, clientConfig: stsCfg }) });
    const gw = await viaWeb.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' }));
    const cw = await viaWeb.config.credentials();
    check('fromWebToken → STS → signed GetSecretValue (Expiration ≈ 900 s)', gw.SecretString !== undefined
          && Math.abs(cw.expiration.getTime() - Date.now() - 900000) < 10000, cw.expiration);
    let webErr;
    try { await CP.fromWebToken({ webIdentityToken: 'not-accepted', roleArn: 'arn:aws:iam::123456789012:role/rekey', clientConfig: stsCfg })(); }
    catch (e) { webErr = e; }
    // The SDK maps the wire code InvalidIdentityToken to its modelled exception class.
    check('fromWebToken with a rejected token → InvalidIdentityTokenException (wire code InvalidIdentityToken)',
          webErr && webErr.name === 'InvalidIdentityTokenException' && webErr.$metadata.httpStatusCode === 400, webErr && [webErr.name, webErr.message]);

    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = endpoint;
    delete process.env.AWS_EC2_METADATA_DISABLED;
    const viaImds = mk({ credentials: CP.fromInstanceMetadata({ timeout: 2000, maxRetries: 0 }) });
    const gi = await viaImds.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' }));
    const imdsLog = (await admin('GET', '/__fake/requests')).requests.filter((e) => e.service === 'imds');
    check('fromInstanceMetadata (IMDSv2 token) → signed GetSecretValue', gi.SecretString !== undefined
          && imdsLog.some((e) => e.method === 'PUT' && e.status === 200) && imdsLog.some((e) => e.headers['x-aws-ec2-metadata-token'] === '<redacted>' && e.status === 200),
          imdsLog.map((e) => [e.method, e.path, e.status]));

    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = endpoint + '/ecs/credentials';
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN = 'sdk-ctr-token';
    const viaCtr = mk({ credentials: CP.fromContainerMetadata({ timeout: 2000, maxRetries: 0 }) });
    const gc = await viaCtr.send(new SM.GetSecretValueCommand({ SecretId: 'sdk/db' }));
    check('fromContainerMetadata (FULL_URI + AUTHORIZATION_TOKEN) → signed GetSecretValue', gc.SecretString !== undefined);
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN = 'wrong-token';
    let ctrErr;
    try { await CP.fromContainerMetadata({ timeout: 2000, maxRetries: 0 })(); } catch (e) { ctrErr = e; }
    check('fromContainerMetadata with a wrong token fails', ctrErr !== undefined, ctrErr && ctrErr.message);

    // The fake's own view: every SDK request it accepted was signed by a known credential.
    const all = (await admin('GET', '/__fake/requests')).requests.filter((e) => e.service === 'secretsmanager' && e.status === 200);
    check('the fake saw STS-, IMDS- and container-issued keys', ['sts', 'imds', 'container'].every((s) => all.some((e) => e.credential_source === s)),
          [...new Set(all.map((e) => e.credential_source))]);

    console.log(`# sdk: ${pass} passed, ${fail} failed`);
    process.exit(fail ? 1 : 0);
})().catch((e) => { console.log(`FAIL sdk: unexpected error: ${e && e.stack ? e.stack : e}`); process.exit(1); });
SDKJS
    NODE_NO_WARNINGS=1 AWS_SDK_PREFIX="$prefix" FAKE_BASE="$BASE" WEB_TOKEN_FILE="$tmp/web-token" timeout 120 node "$tmp/sdk.js" >"$tmp/node.out" 2>&1
    cat "$tmp/node.out"
    count_output "$tmp/node.out"
    grep -q '^# sdk: ' "$tmp/node.out" || check "SDK script finished" yes no
    stop_fake
fi
echo "# part (b) took $(( $(date +%s) - t_b0 )) s"

# ---------------------------------------------------------------- (c) AWS CLI
t_c0=$(date +%s)
cli_status=ok
AWSCLI=""
if [ "${AWS_FAKE_SKIP_CLI:-}" = 1 ]; then
    cli_status=skip
else
    if [ ! -x /usr/bin/aws ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "# apt-get install -y awscli"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq awscli) >"$tmp/apt.log" 2>&1 \
            || sed 's/^/# apt: /' "$tmp/apt.log" | tail -3
    fi
    if [ -x /usr/bin/aws ]; then AWSCLI=/usr/bin/aws; elif command -v aws >/dev/null 2>&1; then AWSCLI="$(command -v aws)"; fi
    [ -n "$AWSCLI" ] && "$AWSCLI" --version >/dev/null 2>&1 || cli_status=skip
fi
if [ "$cli_status" = ok ]; then
    start_fake
    cli_ver="$("$AWSCLI" --version 2>&1 | head -1)"
    echo "# AWS CLI $AWSCLI: $cli_ver"
    # Each CLI run gets a fresh HOME: the CLI caches web identity credentials
    # under ~/.aws/cli/cache, which would hide the second (rejected-token) flow.
    cli() { # args...: stdout in $tmp/body, stderr in $tmp/cli.err; sets RC
        env -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY \
            AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
            HOME="$tmp/cli-home-$RANDOM" AWS_PAGER= AWS_EC2_METADATA_DISABLED=true \
            timeout 60 "$AWSCLI" --endpoint-url "$BASE" --output json "$@" >"$tmp/body" 2>"$tmp/cli.err"
        RC=$?
    }
    cli secretsmanager create-secret --name cli/db --secret-string '{"password":"cli-1"}'
    check "cli create-secret" "0 cli/db" "$RC $(jr 'd["Name"]')"
    cli secretsmanager get-secret-value --secret-id cli/db
    check "cli get-secret-value" '0 "{\"password\":\"cli-1\"}" ["AWSCURRENT"]' "$RC $(j 'd["SecretString"]') $(j 'd["VersionStages"]')"
    V1="$(jr 'd["VersionId"]')"
    cli secretsmanager put-secret-value --secret-id cli/db --secret-string '{"password":"cli-2"}' --version-stages AWSPENDING \
        --client-request-token "$T2"
    check "cli put-secret-value staged with a token" "0 $T2 [\"AWSPENDING\"]" "$RC $(jr 'd["VersionId"]') $(j 'd["VersionStages"]')"
    cli secretsmanager put-secret-value --secret-id cli/db --secret-string '{"password":"other"}' --version-stages AWSPENDING \
        --client-request-token "$T2"
    check "cli: same token, other value → ResourceExistsException" "254 True" "$RC $(grep -q 'ResourceExistsException' "$tmp/cli.err" && echo True)"
    cli secretsmanager update-secret-version-stage --secret-id cli/db --version-stage AWSCURRENT --move-to-version-id "$T2" \
        --remove-from-version-id "$V1"
    check "cli update-secret-version-stage" 0 "$RC"
    cli secretsmanager describe-secret --secret-id cli/db
    check "cli: AWSPREVIOUS followed AWSCURRENT" "[\"AWSCURRENT\", \"AWSPENDING\"] [\"AWSPREVIOUS\"]" \
        "$(j 'sorted(d["VersionIdsToStages"]["'$T2'"])') $(j 'd["VersionIdsToStages"]["'$V1'"]')"
    cli secretsmanager update-secret-version-stage --secret-id cli/db --version-stage AWSCURRENT --move-to-version-id "$V1"
    check "cli: missing RemoveFromVersionId → InvalidParameterException" "254 True" "$RC $(grep -q 'InvalidParameterException' "$tmp/cli.err" && echo True)"
    for i in 1 2 3 4 5; do cli secretsmanager create-secret --name "cli/list-$i" --secret-string "l$i"; done
    cli secretsmanager list-secrets --filters Key=name,Values=cli/list- --page-size 2
    check "cli list-secrets follows NextToken (page size 2)" 5 "$(j 'len(d["SecretList"])')"
    admin GET /__fake/requests
    check "…in 3 ListSecrets calls" 3 "$(adminj 'sum(1 for e in d["requests"] if e["target"]=="ListSecrets")')"
    cli secretsmanager get-secret-value --secret-id cli/db --version-stage AWSPENDING
    check "cli get-secret-value --version-stage" '0 "{\"password\":\"cli-2\"}"' "$RC $(j 'd["SecretString"]')"
    cli secretsmanager get-secret-value --secret-id nope/x
    check "cli: missing secret → ResourceNotFoundException, exit 254" "254 True" "$RC $(grep -q 'ResourceNotFoundException' "$tmp/cli.err" && echo True)"
    # Web identity via a profile.  AWS_ENDPOINT_URL_STS needs CLI v2 ≥ 2.13 or v1 ≥ 1.29.
    wi_cli=""
    for c in "$AWSCLI" $(type -ap aws 2>/dev/null); do
        v="$("$c" --version 2>&1 | sed -n 's#^aws-cli/\([0-9]*\)\.\([0-9]*\)\..*#\1 \2#p')"
        set -- $v
        if [ -n "$v" ] && { { [ "$1" = 2 ] && [ "$2" -ge 13 ]; } || { [ "$1" = 1 ] && [ "$2" -ge 29 ]; }; }; then wi_cli="$c"; break; fi
    done
    if [ -z "$wi_cli" ]; then
        echo "SKIP cli web identity: no aws CLI here reads AWS_ENDPOINT_URL_STS (needs v2 >= 2.13 or v1 >= 1.29; $cli_ver)"
    else
        [ "$wi_cli" != "$AWSCLI" ] && echo "# web identity flow with $wi_cli ($("$wi_cli" --version 2>&1 | head -1)): $cli_ver predates AWS_ENDPOINT_URL_STS"
        admin POST /__fake/config '{"web_identity_tokens":["cli-web-token"],"role_arns":["arn:aws:iam::123456789012:role/rekey"]}'
        printf 'cli-web-token' >"$tmp/cli-token"
        cat >"$tmp/cli-config" <<EOF
[profile ci]
region = us-east-1
role_arn = arn:aws:iam::123456789012:role/rekey
role_session_name = rekey-cli
web_identity_token_file = $tmp/cli-token
EOF
        admin DELETE /__fake/requests
        env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN AWS_CONFIG_FILE="$tmp/cli-config" \
            AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PROFILE=ci AWS_ENDPOINT_URL_STS="$BASE" HOME="$tmp/cli-home-$RANDOM" AWS_PAGER= AWS_EC2_METADATA_DISABLED=true \
            timeout 60 "$wi_cli" --endpoint-url "$BASE" --output json secretsmanager get-secret-value --secret-id cli/db >"$tmp/body" 2>"$tmp/cli.err"
        RC=$?
        check "cli web identity profile → get-secret-value" '0 "{\"password\":\"cli-2\"}"' "$RC $(j 'd["SecretString"]')"
        [ "$RC" = 0 ] || sed 's/^/# cli: /' "$tmp/cli.err" | tail -5
        admin GET /__fake/requests
        check "…signed with STS-issued credentials" "True True" \
            "$(adminj 'any(e["target"]=="AssumeRoleWithWebIdentity" and e["status"]==200 for e in d["requests"])') $(adminj 'any(e["target"]=="GetSecretValue" and e.get("credential_source")=="sts" and e["status"]==200 for e in d["requests"])')"
        printf 'cli-bad-token' >"$tmp/cli-token"
        env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_CONFIG_FILE="$tmp/cli-config" AWS_SHARED_CREDENTIALS_FILE=/dev/null \
            AWS_PROFILE=ci AWS_ENDPOINT_URL_STS="$BASE" HOME="$tmp/cli-home-$RANDOM" AWS_PAGER= AWS_EC2_METADATA_DISABLED=true \
            timeout 60 "$wi_cli" --endpoint-url "$BASE" secretsmanager get-secret-value --secret-id cli/db >"$tmp/body" 2>"$tmp/cli.err"
        RC=$?
        check "cli: rejected web identity token → InvalidIdentityToken" "True" "$([ "$RC" != 0 ] && grep -q 'InvalidIdentityToken' "$tmp/cli.err" && echo True)"
        [ "$RC" != 0 ] || sed 's/^/# cli: /' "$tmp/cli.err" | tail -5
    fi
    stop_fake
else
    echo "SKIP AWS CLI checks: AWS_FAKE_SKIP_CLI=1, or no aws CLI (and apt-get could not install awscli)"
fi
echo "# part (c) took $(( $(date +%s) - t_c0 )) s; total $(( $(date +%s) - t_start )) s"

echo "aws_fake: $pass passed, $fail failed"
if [ "$fail" -ne 0 ]; then
    exit 1
fi
if [ "$node_status" = skip ]; then
    echo "SKIP AWS SDK checks: AWS_FAKE_SKIP_NODE=1, or node/npm or the npm registry is unavailable"
    exit 77
fi
exit 0
