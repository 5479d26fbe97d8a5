#!/bin/sh
# rekey serve's HTTP API on the local provider: probes, bearer tokens (a named
# one added while running, the actor in the audit log), metadata without
# values, rotations and emergencies queued by POST and followed by GET,
# malformed and oversized bodies, the rate limit, methods and paths, /metrics
# through a strict text-format parser (and promtool) with values checked
# against what happened, a token file open to others, TLS.
. "$(dirname "$0")/lib.sh"
: "${RK_FP:?}"

setup_local
rk() { "$REKEY_BIN" "$@" 2>>"$T/log"; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
PROMPARSE="$SRC/tests/tools/promparse.py"
cat >>"$T/rekey.yaml" <<EOC
server: {listen: "127.0.0.1:0", max_body_bytes: 1024, rate_limit: {rps: 1000, burst: 1000}}
scheduler: {jitter: 0s}
EOC
cp "$T/rekey.yaml" "$T/rekey.base.yaml"
printf 'name: quiet\nrotate_every: 1h\ngenerator: {type: password, length: 24}\n' >"$T/policy/quiet.yaml"
local_inventory api/a:quiet api/b:quiet em/one:quiet:team-e em/two:quiet:team-e out/c:quiet:team-o
rk init >/dev/null
expect_rc "apply 5 secrets" 0 rk apply -f "$T/inv.yaml"
INV=5
mkdir "$T/http"
ON_EXIT='chattr -i "$T/var" 2>/dev/null; chmod 700 "$T/var" 2>/dev/null'

# api METHOD PATH [CURL ARGS...]: one request; CODE is the status, B the body's file,
# H the headers' file (every response kept in $T/http for the leak check).
N=0
api() {
	m=$1; p=$2; shift 2
	N=$((N + 1)); B="$T/http/$N.body"; H="$T/http/$N.hdr"
	CODE=$(curl -s -X "$m" -o "$B" -D "$H" -w '%{http_code}' "$@" "$U$p")
}
# authed METHOD PATH [ARGS]: api with the default token (the arguments shifted right)
authed() { m=$1; p=$2; shift 2; api "$m" "$p" -H "Authorization: Bearer $TOK" "$@"; }
code_is() { [ "$CODE" = "$1" ]; }
body_py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert $1, d" "$B"; }
# wait_run ID: polls GET /v1/runs/ID until its status is done (10 s at most); a
# 404 on the way fails (the run was accepted)
wait_run() {
	i=0
	while [ $i -lt 100 ]; do
		authed GET "/v1/runs/$1"
		[ "$CODE" = 404 ] && { echo "      | GET /v1/runs/$1: 404 $(cat "$B")"; return 1; }
		st=$(jq_ "d.get('status')" <"$B" 2>/dev/null)
		[ "$st" = done ] && return 0
		case $st in failed | partial | not_started) return 1 ;; esac
		sleep 0.1; i=$((i + 1))
	done
	return 1
}
versions() { rk --output json list | jq_ "' '.join('%s=%s' % (s['name'], s.get('current_version')) for s in d)"; }
version_of() { rk status "$1" --output json | jq_ "d['current_version']"; }
# values: every secret's current value, one a line, added to $T/values
values() { for s in api/a api/b em/one em/two out/c; do rk get "$s"; echo; done | grep -v '^$' >>"$T/values"; }

start_serve "$T/serve.err" || { fail "rekey serve starts"; finish; exit 1; }
TOK=$(head -1 "$T/var/api.token")
check "the token file was made with mode 0600" [ "$(stat -c %a "$T/var/api.token")" = 600 ]
i=0
while ! grep -q '"event":"serve.run"' "$T/serve.err" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "at start the daemon rotates the never-rotated secrets" sh -c "[ \"\$('$REKEY_BIN' --output json list | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s[\"current_version\"] == \"1\"))')\" = $INV ]"
ROTS=$INV
values

# ---- probes ----
api GET /healthz
check "healthz: 200 ok without a token" sh -c "[ '$CODE' = 200 ] && [ \"\$(cat '$B')\" = ok ]"
api GET /readyz
check "readyz: 200 {ready: true, state_db: writable}" sh -c "[ '$CODE' = 200 ] && python3 -c \"import json; d=json.load(open('$B')); assert d['ready'] is True and d['state_db'] == 'writable' and d['leader'] is True, d\""
# As root access(2) W_OK ignores the mode bits: the immutable attribute is what root obeys.
if [ "$(id -u)" = 0 ]; then how="chattr +i"; chattr +i "$T/var" 2>"$T/chattr.err" || how=""; else how="chmod 500"; chmod 500 "$T/var"; fi
if [ -n "$how" ]; then
	api GET /readyz
	check "readyz: 503 {ready: false} once the state dir is not writable ($how)" sh -c "[ '$CODE' = 503 ] && python3 -c \"import json; d=json.load(open('$B')); assert d['ready'] is False and 'not writable' in d['state_db'], d\""
	chattr -i "$T/var" 2>/dev/null; chmod 700 "$T/var"
	api GET /readyz
	check "readyz: 200 again once it is writable" code_is 200
else
	echo "  SKIP readyz 503: running as root and chattr +i failed: $(cat "$T/chattr.err")"
fi

# ---- tokens ----
NU=0
unauth() { # unauth LABEL CURL-ARGS...: GET /v1/status gets 401 {"error":"unauthorized"} only
	label=$1; shift
	api GET /v1/status "$@"
	NU=$((NU + 1))
	check "401 $label" sh -c "[ '$CODE' = 401 ] && python3 -c \"import json; assert json.load(open('$B')) == {'error': 'unauthorized'}\""
}
unauth "without a token"
unauth "with a wrong token" -H "Authorization: Bearer wrong-token-wrong-token-0000"
last=$(printf %s "$TOK" | tail -c 1)
if [ "$last" = A ]; then other=B; else other=A; fi
unauth "with the token's last character changed" -H "Authorization: Bearer $(printf %s "$TOK" | sed 's/.$//')$other"
unauth "with the token under the Basic scheme" -H "Authorization: Basic $TOK"
unauth "with the token plus a character" -H "Authorization: Bearer ${TOK}x"
authed GET /v1/status
check "200 /v1/status with the token" sh -c "[ '$CODE' = 200 ] && python3 -c \"import json; d=json.load(open('$B')); assert len(d['secrets']) == $INV and d['daemon']['leader'] is True, d\""

TOK2=ci-bot-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'ci-bot:%s\n' "$TOK2" >>"$T/var/api.token"
api GET /v1/status -H "Authorization: Bearer $TOK2"
check "a named token added while running works without a restart" code_is 200
api POST /v1/rotate/api/b -H "Authorization: Bearer $TOK2"
run_b=$(jq_ "d['run_id']" <"$B" 2>/dev/null)
check "POST /v1/rotate with the named token: 202" code_is 202
check "  its run finishes" wait_run "$run_b"
ROTS=$((ROTS + 1))
rk audit --output json >"$T/audit.json"
check "  the api.rotate audit row's actor is api:ci-bot@127.0.0.1" python3 -c "
import json; rows = json.load(open('$T/audit.json'))
r = [x for x in rows if x['event'] == 'api.rotate' and '$run_b' in x['detail']]
assert len(r) == 1 and r[0]['actor'] == 'api:ci-bot@127.0.0.1' and r[0]['subject'] == 'api/b', r"
check "  the run's own audit rows carry that actor" python3 -c "
import json; rows = json.load(open('$T/audit.json'))
r = [x for x in rows if x['subject'] == '$run_b' or '$run_b' in x['detail']]
assert {x['event'] for x in r} >= {'api.rotate', 'run.started', 'secret.rotated', 'run.finished'}, r
assert all(x['actor'] == 'api:ci-bot@127.0.0.1' for x in r), [(x['event'], x['actor']) for x in r]"

# ---- metadata, never a value ----
authed GET /v1/secrets/api/a
check "GET /v1/secrets/api/a: 200 with its metadata" sh -c "[ '$CODE' = 200 ] && python3 -c \"import json; d=json.load(open('$B')); assert d['name'] == 'api/a' and d['provider'] == 'local' and d['current_version'] == '1' and d['state'] == 'ok' and len(d['current_fp']) == 64, d\""
authed GET /v1/secrets/api/nope
check "404 for an unknown secret" code_is 404
authed GET /v1/runs/r20200101T000000Z-00000000
check "404 for an unknown run" code_is 404
authed POST /v1/rotate/api/nope
check "404 for POST /v1/rotate of an unknown secret" code_is 404

# ---- a rotation by POST ----
authed POST /v1/rotate/api/a -d '{"reason": "api test"}'
run_a=$(jq_ "d['run_id']" <"$B" 2>/dev/null)
check "POST /v1/rotate/api/a: 202 with a run id" sh -c "[ '$CODE' = 202 ] && [ -n '$run_a' ]"
check "  GET /v1/runs/ID reaches done" wait_run "$run_a"
ROTS=$((ROTS + 1))
check "  the run has its steps" body_py "d['id'] == '$run_a' and 'promoted' in [s['step'] for s in d['steps']] and d['reason'] == 'api test'"
rk --output json history api/a >"$T/h.json"
check "  rekey history shows the new version from that run" python3 -c "
import json; h = json.load(open('$T/h.json'))
assert h[0]['run_id'] == '$run_a' and h[0]['new_version'] == '2' and h[0]['state'] == 'done', h[0]"
expect_rc "  rekey audit verify" 0 rk audit verify
values

# ---- emergencies ----
authed POST /v1/emergency -d '{"reason": "drill", "scope": ["owner=team-e"], "dry_run": true}'
check "emergency dry_run: 200 with the plan's waves" sh -c "[ '$CODE' = 200 ] && python3 -c \"import json; d=json.load(open('$B')); assert d['dry_run'] is True and d['secrets'] == 2 and sorted(n for w in d['waves'] for n in w['secrets']) == ['em/one', 'em/two'], d\""
check "  a dry run rotates nothing" [ "$(version_of em/one)" = 1 ]
authed POST /v1/emergency -d '{"reason": "drill", "dry_run": true}'
check "emergency dry_run without a scope: every secret" sh -c "[ '$CODE' = 200 ] && python3 -c \"import json; d=json.load(open('$B')); assert d['secrets'] == $INV and d['scope'] == [], d\""
before=$(versions)
authed POST /v1/emergency -d '{"reason": "leak", "scope": ["owner=team-e"]}'
run_e=$(jq_ "d['run_id']" <"$B" 2>/dev/null)
check "emergency: 202 with a run id" sh -c "[ '$CODE' = 202 ] && [ -n '$run_e' ]"
check "  GET /v1/runs/ID reaches done" wait_run "$run_e"
ROTS=$((ROTS + 2))
after=$(versions)
check "  every in-scope secret rotated once, the others untouched" sh -c "[ '$before' = 'api/a=2 api/b=2 em/one=1 em/two=1 out/c=1' ] && [ '$after' = 'api/a=2 api/b=2 em/one=2 em/two=2 out/c=1' ]"
rk audit --output json >"$T/audit.json"
check "  an api.emergency audit row by api:default@127.0.0.1" python3 -c "
import json; rows = json.load(open('$T/audit.json'))
assert [x['actor'] for x in rows if x['event'] == 'api.emergency'] == ['api:default@127.0.0.1'], rows"
values

# ---- bodies ----
runs_before=$(rk --output json runs | jq_ "len(d)")
audit_before=$(rk audit --output json | jq_ "len(d)")
authed POST /v1/rotate/api/a -d '{"reason": '
check "bad JSON to /v1/rotate: 400" code_is 400
authed POST /v1/emergency -d 'not json'
check "bad JSON to /v1/emergency: 400" code_is 400
authed POST /v1/emergency -d '{"scope": ["owner=team-e"]}'
check "emergency without a reason: 400" sh -c "[ '$CODE' = 400 ] && grep -q reason '$B'"
big=$(python3 -c "import json; print(json.dumps({'reason': 'x' * 2007, 'scope': ['owner=team-e']}))")
check "  (the oversized body is 2048 bytes)" [ "$(printf %s "$big" | wc -c)" = 2048 ]
authed POST /v1/emergency -d "$big"
check "a 2048-byte body over max_body_bytes 1024: 413" code_is 413
authed POST /v1/rotate/api/a -d "$big"
check "  and on /v1/rotate" code_is 413
sleep 0.3
authed GET /v1/status
check "  nothing queued" body_py "d['daemon']['queued'] == 0 and 'running' not in d['daemon']"
check "  no run and no audit row came of the refused requests" sh -c "[ \"\$('$REKEY_BIN' --output json runs | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')\" = '$runs_before' ] && [ \"\$('$REKEY_BIN' audit --output json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')\" = '$audit_before' ]"

# ---- methods and paths ----
authed DELETE /v1/rotate/api/a
check "DELETE /v1/rotate/NAME: 405" code_is 405
authed GET /v1/rotate/api/a
check "GET /v1/rotate/NAME: 405" code_is 405
api POST /healthz
check "POST /healthz: 405" code_is 405
authed GET /v1/emergency
check "GET /v1/emergency: 405" code_is 405
api GET /nope
check "an unknown path: 404" code_is 404
authed GET /v1/nope
check "an unknown /v1/ path: 404" code_is 404

# ---- a run accepted is never "not found" while it starts ----
check "20 POSTs, each followed at once by GET /v1/runs/ID until done: never a 404" python3 - "$U" "$TOK" <<'EOP'
import http.client, json, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
h = {"Authorization": "Bearer " + sys.argv[2]}
for i in range(20):
    c.request("POST", "/v1/rotate/out/c", headers=h)
    r = c.getresponse(); b = json.loads(r.read())
    assert r.status == 202, (r.status, b)
    for n in range(2000):
        c.request("GET", "/v1/runs/" + b["run_id"], headers=h)
        r = c.getresponse(); g = json.loads(r.read())
        assert r.status == 200 and g["status"] in ("queued", "running", "done"), (i, n, r.status, g)
        if g["status"] == "done":
            break
        if n >= 5:
            time.sleep(0.002)	# under the rate limit on a slow (sanitizer) build
    else:
        raise AssertionError("not done: %r" % g)
EOP
ROTS=$((ROTS + 20))

# ---- /metrics ----
api GET /metrics
cp "$B" "$T/metrics.txt"
check "/metrics: 200 text/plain version=0.0.4" sh -c "[ '$CODE' = 200 ] && grep -qi '^content-type: text/plain; version=0.0.4' '$H'"
expect_rc "promparse --self-test" 0 python3 "$PROMPARSE" --self-test
expect_rc "/metrics parses (strict text format 0.0.4)" 0 python3 "$PROMPARSE" --json "$T/metrics.txt"
cp "$T/out" "$T/metrics.json"
if [ -x /usr/bin/promtool ]; then
	# Naming-convention lints accepted: none (the scrape is expected to be clean).
	expect_rc "promtool check metrics" 0 sh -c "/usr/bin/promtool check metrics <'$T/metrics.txt'"
	check "  without a warning" sh -c "! grep -q . '$T/out' && ! grep -q . '$T/err'"
else
	echo "  SKIP promtool: /usr/bin/promtool is not installed"
fi
rk audit --output json >"$T/audit.json"
m() { python3 -c "import json,sys; d=json.load(open('$T/metrics.json')); print(d.get(sys.argv[1], 'absent'))" "$1"; }
n_rot=$(python3 -c "import json; print(sum(1 for x in json.load(open('$T/audit.json')) if x['event'] == 'secret.rotated'))")
check "rekey_rotations_total{local,rotated} is the $ROTS rotations the daemon ran" sh -c "[ '$(m 'rekey_rotations_total{provider="local",result="rotated"}')' = '$ROTS.0' ] && [ '$n_rot' = '$ROTS' ]"
check "rekey_rotation_duration_seconds_count{local} is $ROTS too" [ "$(m 'rekey_rotation_duration_seconds_count{provider="local"}')" = "$ROTS.0" ]
check "rekey_secrets by state sums to the inventory ($INV)" python3 -c "
import json; d = json.load(open('$T/metrics.json'))
s = {k: v for k, v in d.items() if k.startswith('rekey_secrets{')}
assert len(s) == 5 and sum(s.values()) == $INV and s['rekey_secrets{state=\"ok\"}'] == $INV, s"
check "rekey_api_unauthorized_total is the $NU 401s caused" [ "$(m rekey_api_unauthorized_total)" = "$NU.0" ]
check "rekey_api_rate_limited_total 0 (none caused yet)" [ "$(m rekey_api_rate_limited_total)" = 0.0 ]
check "rekey_api_requests_total{code=401} is $NU" [ "$(m 'rekey_api_requests_total{code="401"}')" = "$NU.0" ]
check "rekey_leader 1" [ "$(m rekey_leader)" = 1.0 ]
check "rekey_audit_chain_ok 1" [ "$(m rekey_audit_chain_ok)" = 1.0 ]
check "process_* present and sane" python3 -c "
import json, time; d = json.load(open('$T/metrics.json'))
assert d['process_resident_memory_bytes'] > 1e6, d['process_resident_memory_bytes']
assert abs(d['process_start_time_seconds'] - time.time()) < 60, d['process_start_time_seconds']
assert d['process_open_fds'] > 3 and d['process_max_fds'] >= d['process_open_fds'], d
assert d['process_virtual_memory_bytes'] >= d['process_resident_memory_bytes'] and d['process_cpu_seconds_total'] >= 0, d"
check "per-secret series for each of the $INV secrets" python3 -c "
import json; d = json.load(open('$T/metrics.json'))
assert len([k for k in d if k.startswith('rekey_secret_age_seconds{')]) == $INV, d"

# ---- no value anywhere ----
values
stop_serve
check "SIGTERM: the daemon exits 0" [ $? = 0 ]
rk audit --output json >"$T/audit.json"
check "values were collected (20, each of 24 characters)" sh -c "[ \"\$(awk 'length(\$0) == 24' '$T/values' | wc -l)\" = 20 ] && [ \"\$(wc -l <'$T/values')\" = 20 ]"
check "no secret value in any response body or header, the log or the audit log" sh -c "! grep -rF -f '$T/values' '$T/http' '$T/serve.err' '$T/audit.json' '$T/log'"

# ---- the rate limit ----
sed 's/rate_limit: {rps: 1000, burst: 1000}/rate_limit: {rps: 1, burst: 3}/' "$T/rekey.base.yaml" >"$T/rekey.yaml"
start_serve "$T/serve2.err" || { fail "rekey serve starts (rate limit)"; finish; exit 1; }
for i in 1 2 3; do authed GET /v1/status; echo "$CODE" >>"$T/rl.codes"; done
authed GET /v1/status
check "rate limit 1/s burst 3: three quick requests pass" [ "$(tr '\n' ' ' <"$T/rl.codes")" = "200 200 200 " ]
check "  the 4th gets 429" code_is 429
ra=$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$H")
check "  with Retry-After >= 1 ($ra)" [ "${ra:-0}" -ge 1 ]
ok=0
for i in 1 2 3 4 5 6; do api GET /healthz; [ "$CODE" = 200 ] && ok=$((ok + 1)); api GET /metrics; [ "$CODE" = 200 ] && ok=$((ok + 1)); done
check "  /healthz and /metrics are not limited (12 of 12)" [ "$ok" = 12 ]
api GET /readyz
check "  nor /readyz" code_is 200
check "  rekey_api_rate_limited_total is 1" sh -c "grep -qx 'rekey_api_rate_limited_total 1' '$B' || { curl -s '$U/metrics' | grep -qx 'rekey_api_rate_limited_total 1'; }"
sleep 1.1
authed GET /v1/status
check "  a second later a request passes again" code_is 200
stop_serve

# ---- a token file open to others ----
cp "$T/rekey.base.yaml" "$T/rekey.yaml"
chmod 644 "$T/var/api.token"
if start_serve "$T/serve3.err"; then fail "a token file at 0644: serve refuses to start"; stop_serve; else
	rc=$(cat "$T/serve.rc")
	check "a token file at 0644: serve refuses to start (exit $rc)" sh -c "[ '$rc' = 2 ] || [ '$rc' = 1 ]"
	check "  naming the file" contains "$T/serve3.err" "$T/var/api.token"
fi
chmod 600 "$T/var/api.token"

# ---- TLS ----
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-days 2 -keyout "$T/tls.key" -out "$T/tls.crt" >/dev/null 2>&1
chmod 600 "$T/tls.key"
sed "s|max_body_bytes: 1024|max_body_bytes: 1024, tls_cert_file: $T/tls.crt, tls_key_file: $T/tls.key|" \
	"$T/rekey.base.yaml" >"$T/rekey.yaml"
if start_serve "$T/serve4.err"; then
	check "TLS: the log gives an https URL" contains "$T/serve4.err" "\"url\":\"https://127.0.0.1:$PORT\""
	code=$(curl -s -o "$T/tls.body" -w '%{http_code}' --cacert "$T/tls.crt" "https://127.0.0.1:$PORT/healthz")
	check "TLS: curl --cacert gets 200 over https" [ "$code" = 200 ]
	code=$(curl -s -o "$T/tls.body" -w '%{http_code}' --cacert "$T/tls.crt" -H "Authorization: Bearer $TOK" "https://127.0.0.1:$PORT/v1/status")
	check "TLS: the API over https" [ "$code" = 200 ]
	code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$PORT/healthz")
	check "TLS: plain http gets no answer ($code)" [ "$code" = 000 ]
	code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "https://127.0.0.1:$PORT/healthz")
	check "TLS: https without the CA is refused ($code)" [ "$code" = 000 ]
	stop_serve
else
	check "TLS: this libmicrohttpd has no TLS, and serve says so" contains "$T/serve4.err" "built without TLS"
fi

finish
