#!/bin/sh
# rekey serve's status page (GET /) for a prepared state, read from the DOM
# headless Chromium built (curl's HTML when Chromium is missing): the counts,
# the "Needs attention" list, a row per secret with its state and last run
# (as `rekey status` says), state text HTML-escaped, a running emergency
# with its progress (another process's, then the daemon's own); and who may
# see the page (status_page loopback, token, off).
#
# The clock is fixed (the fault build honours REKEY_TEST_NOW): the secrets
# are rotated at NOW0, the daemon runs two hours later, on a Wednesday when
# the rotate_every-1s policies' Saturday window is shut, so that they stay
# overdue (grace 1d) and expired (grace 1h) instead of being rotated.
. "$(dirname "$0")/lib.sh"
: "${REKEY_FAULT_BIN:?}"

NOW0=1796212800	# Wed 2026-12-02 12:00:00 UTC
NOW1=$((NOW0 + 7200))
setup_local
rk() { REKEY_TEST_NOW=$NOW0 "$REKEY_FAULT_BIN" "$@" 2>>"$T/log"; }
rk1() { REKEY_TEST_NOW=$NOW1 "$REKEY_FAULT_BIN" "$@" 2>>"$T/log"; }
SERVE_BIN=$T/serve-at-now1
printf '#!/bin/sh\nREKEY_TEST_NOW=%s exec "%s" "$@"\n' "$NOW1" "$REKEY_FAULT_BIN" >"$SERVE_BIN"
chmod +x "$SERVE_BIN"
cat >>"$T/rekey.yaml" <<EOC
server: {listen: "127.0.0.1:0"}
scheduler: {jitter: 0s}
EOC
cp "$T/rekey.yaml" "$T/rekey.base.yaml"
P=$T/policy
printf 'name: daily\nrotate_every: 1d\ngenerator: {type: password, length: 24}\n' >"$P/daily.yaml"
printf 'name: shut\nrotate_every: 1s\ngrace: 1d\nwindow: "Sat 02:00-03:00 UTC"\ngenerator: {type: password, length: 24}\n' >"$P/shut.yaml"
printf 'name: shut-short\nrotate_every: 1s\ngrace: 1h\nwindow: "Sat 02:00-03:00 UTC"\ngenerator: {type: password, length: 24}\n' >"$P/shut-short.yaml"
cat >"$P/failing.yaml" <<'EOP'
name: failing
rotate_every: 1d
max_attempts: 2
generator: {type: password, length: 24}
verify: {exec: [sh, -c, "cat >/dev/null; echo '<b>x</b> & \"q\" refused' >&2; exit 1"]}
EOP
cat >"$P/slow.yaml" <<EOP
name: slow
rotate_every: 1d
generator: {type: password, length: 24}
set: {exec: [sh, -c, "cat >/dev/null; while [ ! -e $T/go ]; do sleep 0.05; done"], timeout: 60s}
EOP
local_inventory ok/one:daily ok/two:daily late/over:shut late/expired:shut-short bad/verify:failing \
	slow/one:slow:team-s slow/two:slow:team-s slow/three:slow:team-s
rk init >/dev/null
expect_rc "apply 8 secrets" 0 rk apply -f "$T/inv.yaml"
touch "$T/go"
expect_rc "rotate the healthy ones at NOW0" 0 rk rotate ok/one ok/two late/over late/expired slow/one slow/two slow/three
expect_rc "bad/verify: a verify hook that refuses (rotate --due, 1)" 1 rk rotate --due
expect_rc "bad/verify: a verify hook that refuses (rotate --due, 2)" 1 rk rotate --due
rm -f "$T/go"
rk1 status --output json >"$T/status.json"
check "prepared: rekey status at NOW1 says overdue, expired, needs attention, 5 ok" python3 -c "
import json; s = {e['name']: e for e in json.load(open('$T/status.json'))}
assert s['late/over']['overdue'] and not s['late/over']['expired'] and not s['late/over']['window_open'], s['late/over']
assert s['late/expired']['expired'], s['late/expired']
assert s['bad/verify']['needs_attention'] and '<b>x</b>' in s['bad/verify']['last_error'], s['bad/verify']
assert all(not s[n]['due'] and not s[n]['needs_attention'] for n in ('ok/one', 'ok/two', 'slow/one', 'slow/two', 'slow/three')), s"

# dom FILE: the page's facts as JSON (ids' text, the attention list, the table rows).
cat >"$T/dom.py" <<'EOP'
import json, sys
from html.parser import HTMLParser
VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "embed", "source", "wbr"}
class P(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.ids, self.rows, self.att, self.tags = [], {}, [], [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        el = {"tag": tag, "a": a, "text": "", "cells": []}
        self.tags.append((tag, a))
        if tag in VOID:
            return
        self.stack.append(el)
    def handle_endtag(self, tag):
        while self.stack:
            el = self.stack.pop()
            for p in self.stack:
                p["text"] += el["text"]
            if el["tag"] == "td" and self.stack:
                for p in reversed(self.stack):
                    if p["tag"] == "tr":
                        p["cells"].append((el["a"].get("class", ""), el["text"]))
                        break
            if "id" in el["a"]:
                self.ids[el["a"]["id"]] = el["text"].strip()
            if el["tag"] == "tr" and "data-state" in el["a"]:
                self.rows.append({"name": el["a"].get("data-name"), "state": el["a"]["data-state"],
                                  "cls": el["a"].get("class", ""),
                                  "cells": {c: t for c, t in el["cells"] if c}})
            if el["tag"] == "li" and any(p["a"].get("id") == "attention" for p in self.stack):
                self.att.append({"name": el["a"].get("data-name"), "text": el["text"]})
            if el["tag"] == tag:
                break
    def handle_data(self, data):
        if self.stack:
            self.stack[-1]["text"] += data
p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
json.dump({"ids": p.ids, "rows": p.rows, "attention": p.att,
           "b_tags": [t for t, a in p.tags if t == "b"],
           "progress": [a for t, a in p.tags if t == "progress"]}, sys.stdout, indent=1)
EOP
# page OUT URL: the DOM Chromium built, or curl's HTML without Chromium
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
	echo "  SKIP chromium not available: no chromium or chromium-browser on PATH (apt-get install -y chromium); the checks read curl's HTML"
elif ! "$CHROMIUM" --headless --no-sandbox --disable-gpu --dump-dom "data:text/html,<p>x</p>" >"$T/probe.html" 2>"$T/chromium.err" ||
	! grep -q '<p>x</p>' "$T/probe.html"; then
	echo "  SKIP chromium not available: it does not run headless here: $(tail -1 "$T/chromium.err"); the checks read curl's HTML"
	CHROMIUM=
fi
page() {
	if [ -n "$CHROMIUM" ]; then
		HOME=$T "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
			--user-data-dir="$T/chromium-profile" --dump-dom "$2" >"$1" 2>>"$T/chromium.err"
	else
		curl -s -o "$1" "$2"
	fi
	python3 "$T/dom.py" "$1" >"$1.json"
}

start_serve "$T/serve.err" || { fail "rekey serve starts"; finish; exit 1; }
TOK=$(head -1 "$T/var/api.token")
code=$(curl -s -o "$T/page.curl" -D "$T/page.hdr" -w '%{http_code}' "$U/")
check "GET / from loopback without a token: 200 text/html" sh -c "[ '$code' = 200 ] && grep -qi '^content-type: text/html' '$T/page.hdr'"
check "  the raw HTML escapes the verify hook's '<b>x</b> & \"q\"'" sh -c "grep -qF '&lt;b&gt;x&lt;/b&gt; &amp; &quot;q&quot; refused' '$T/page.curl' && ! grep -qF '<b>x</b>' '$T/page.curl'"
page "$T/page.html" "$U/"
check "the page loads (the secrets table is in the DOM)" grep -q 'id="secrets"' "$T/page.html"
pj() { python3 -c "import json; d=json.load(open('$T/page.html.json')); s=json.load(open('$T/status.json')); $1"; }
check "#count-overdue 1, #count-expired 1, #count-needs_attention 1, #count-due 0, #count-ok 5" pj "
c = {k: d['ids'].get('count-' + k) for k in ('overdue', 'expired', 'needs_attention', 'due', 'ok')}
assert c == {'overdue': '1', 'expired': '1', 'needs_attention': '1', 'due': '0', 'ok': '5'}, c"
check "Needs attention lists exactly the overdue, expired and failing secrets" pj "
assert sorted(a['name'] for a in d['attention']) == ['bad/verify', 'late/expired', 'late/over'], d['attention']"
check "  each with its state and why" pj "
a = {x['name']: x['text'] for x in d['attention']}
assert 'late/over: overdue' in a['late/over'] and 'waits for window' in a['late/over'], a
assert 'late/expired: expired' in a['late/expired'] and 'past grace' in a['late/expired'], a
assert 'bad/verify: needs_attention' in a['bad/verify'] and '<b>x</b> & \"q\" refused' in a['bad/verify'], a"
check "one table row per secret, data-state as rekey status says" pj "
def word(e):
    return ('needs_attention' if e['needs_attention'] else 'expired' if e['expired'] else
            'overdue' if e['overdue'] else 'due' if e['due'] else 'ok')
got = {r['name']: r['state'] for r in d['rows']}
want = {e['name']: word(e) for e in s}
assert got == want and len(d['rows']) == 8, (got, want)"
check "  .last-run of each row is its last run in rekey status" pj "
got = {r['name']: r['cells'].get('last-run') for r in d['rows']}
want = {e['name']: e['last_run'] for e in s}
assert got == want and all(want.values()), (got, want)"
check "  .last-result of each row is its last result" pj "
got = {r['name']: r['cells'].get('last-result') for r in d['rows']}
assert got == {e['name']: e['last_result'] for e in s}, got"
check "  the failing secret's note is its error as text, not markup" pj "
r = [x for x in d['rows'] if x['name'] == 'bad/verify'][0]
assert '<b>x</b> & \"q\" refused' in r['cells']['note'], r"
check "  no <b> element came from the state (only the list's own)" pj "
assert len(d['b_tags']) == len(d['attention']), d['b_tags']"
check "leader yes, audit chain ok, no emergency banner" pj "
assert d['ids']['leader'] == 'yes' and d['ids']['audit'] == 'ok' and 'emergency' not in d['ids'], d['ids']"

# ---- an emergency in flight: another process's, then the daemon's own ----
REKEY_TEST_NOW=$NOW1 "$REKEY_FAULT_BIN" emergency --yes --reason "page test" --scope owner=team-s \
	--parallel 1 >"$T/em.out" 2>"$T/em.err" &
EM=$!
i=0
while ! curl -s "$U/" | grep -q 'id="emergency"' && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
page "$T/page.html" "$U/"
check "a running rekey emergency: the page shows #emergency" pj "assert 'emergency' in d['ids'], d['ids']"
check "  with its progress (0 of 3, the first set hook holds)" pj "
assert d['ids'].get('emergency-progress') == '0 of 3', d['ids']
assert 'scheduler paused' in d['ids']['emergency'], d['ids']['emergency']"
# The API meanwhile: a secret in that run is in flight (409); another waits for the lock.
code=$(curl -s -o "$T/r409.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOK" "$U/v1/rotate/slow/one")
check "  POST /v1/rotate of a secret in the running emergency: 409" [ "$code" = 409 ]
code=$(curl -s -o "$T/r202.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOK" "$U/v1/rotate/ok/one")
qrun=$(python3 -c "import json; print(json.load(open('$T/r202.json')).get('run_id', ''))")
sleep 0.3
curl -s -o "$T/q.json" -H "Authorization: Bearer $TOK" "$U/v1/runs/$qrun"
check "  POST /v1/rotate of another: 202, and GET /v1/runs/ID says queued (the lock is taken)" sh -c "[ '$code' = 202 ] && python3 -c \"import json; d=json.load(open('$T/q.json')); assert d['status'] == 'queued' and d['run_id'] == '$qrun', d\""
touch "$T/go"
wait $EM
check "  the emergency finishes (exit 0)" [ $? = 0 ]
rm -f "$T/go"
i=0
while curl -s "$U/" | grep -q 'id="emergency"' && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
page "$T/page.html" "$U/"
check "  then the banner is gone" pj "assert 'emergency' not in d['ids'], d['ids']"
i=0
while ! curl -s -H "Authorization: Bearer $TOK" "$U/v1/runs/$qrun" | grep -q '"status": "done"' && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "  and the queued rotation then ran" sh -c "curl -s -H 'Authorization: Bearer $TOK' '$U/v1/runs/$qrun' | grep -q '\"status\": \"done\"'"

curl -s -o "$T/post.json" -H "Authorization: Bearer $TOK" -d '{"reason": "own", "scope": ["owner=team-s"], "parallel": 1}' "$U/v1/emergency"
i=0
while ! curl -s "$U/" | grep -q '<progress' && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
page "$T/page.html" "$U/"
run=$(python3 -c "import json; print(json.load(open('$T/post.json'))['run_id'])")
check "the daemon's own emergency: #emergency names its run, a progress bar of 3" pj "
assert '$run' in d['ids'].get('emergency', ''), d['ids']
assert d['ids'].get('emergency-progress') == '0 of 3' and d['progress'] == [{'max': '3', 'value': '0'}], (d['ids'], d['progress'])"
touch "$T/go"
i=0
while curl -s "$U/" | grep -q 'id="emergency"' && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "  it ends and the page says so" sh -c "! curl -s '$U/' | grep -q 'id=\"emergency\"'"
stop_serve
check "SIGTERM: the daemon exits 0" [ $? = 0 ]

# ---- who may see the page ----
# with_page MODE: the daemon again with server.status_page MODE
with_page() {
	sed "s/server: {listen: \"127.0.0.1:0\"}/server: {listen: \"127.0.0.1:0\", status_page: $1}/" \
		"$T/rekey.base.yaml" >"$T/rekey.yaml"
	start_serve "$T/serve-$1.err" || { fail "rekey serve starts (status_page: $1)"; finish; exit 1; }
}
code_of() { curl -s -o "$T/resp" -w '%{http_code}' "$@"; }	# code_of [CURL ARGS] URL
with_page token
check "status_page: token: without a token 401, even from loopback" [ "$(code_of "$U/")" = 401 ]
check "  with a wrong token 401" [ "$(code_of -H "Authorization: Bearer wrong-wrong-wrong-wrong" "$U/")" = 401 ]
check "  with the token 200 and the page" sh -c "[ '$(code_of -H "Authorization: Bearer $TOK" "$U/")' = 200 ] && grep -q 'id=\"count-ok\"' '$T/resp'"
stop_serve
# The default (loopback) from another address of this machine: the token is needed.
ext=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9.]+$' | grep -v '^127\.' | head -1)
if [ -n "$ext" ]; then
	sed 's/listen: "127.0.0.1:0"/listen: "0.0.0.0:0"/' "$T/rekey.base.yaml" >"$T/rekey.yaml"
	start_serve "$T/serve-any.err" || { fail "rekey serve starts (0.0.0.0)"; finish; exit 1; }
	check "status_page loopback: from $ext (not loopback) without a token 401" [ "$(code_of "http://$ext:$PORT/")" = 401 ]
	check "  from $ext with the token 200" [ "$(code_of -H "Authorization: Bearer $TOK" "http://$ext:$PORT/")" = 200 ]
	check "  from 127.0.0.1 on the same daemon without a token 200" [ "$(code_of "$U/")" = 200 ]
	stop_serve
else
	echo "  SKIP status page from a non-loopback address: this machine has no other IPv4 address"
fi
with_page off
check "status_page: off: 404" [ "$(code_of "$U/")" = 404 ]
check "  404 with the token too" [ "$(code_of -H "Authorization: Bearer $TOK" "$U/")" = 404 ]
check "  the API still answers" [ "$(code_of -H "Authorization: Bearer $TOK" "$U/v1/status")" = 200 ]
stop_serve

finish
