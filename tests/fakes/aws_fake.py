#!/usr/bin/env python3
"""A fake AWS Secrets Manager (plus STS web identity, EC2 IMDSv2 and ECS
container credentials) for rekey's integration tests.

It follows shared/docs/provider-contracts.md, section 2 (its "2.0 Corrections"
win) and sections 4-6: AWS JSON 1.1 on `POST /` dispatched on X-Amz-Target,
SigV4 verification of every Secrets Manager request, ClientRequestToken
idempotency, the staging-label moves AWS recorded, HTTP 400 client errors
with `__type` and `Message`/`message`, a rotation "Lambda", throttling, and
the three temporary-credential sources rekey supports.

Python 3 standard library only (CI has Debian's python3 and nothing from pip).

    python3 tests/fakes/aws_fake.py --port 0 --port-file PATH [--region us-east-1]
                                    [--state-file PATH] [--verbose]
    python3 tests/fakes/aws_fake.py --selftest-sigv4 DIR   # known-answer vectors

It binds 127.0.0.1 only.  With --port 0 the kernel picks a free port; the port
number is written to --port-file (atomically) once the socket is listening,
and the file is removed again on a clean exit.  SIGTERM/SIGINT stop it
promptly, even while connections are being held open by a "hang" injection.

Test control lives under /__fake/ (no auth, never logged, never throttled or
injected): see tests/fakes/README.md for the exact JSON shapes.
"""

import argparse
import base64
import calendar
import copy
import email.utils
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import socket
import string
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

MAX_REQUEST_SIZE = 10 * 1024 * 1024
MAX_LOG_ENTRIES = 10000
MAX_LOGGED_BODY = 1024 * 1024
MAX_INJECT_MS = 3600 * 1000
MAX_BIG_BYTES = 1024 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT = 120

DEFAULT_ACCESS_KEY = "AKIDEXAMPLE"
DEFAULT_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

CURRENT, PREVIOUS, PENDING = "AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"

SM_OPERATIONS = ("CreateSecret", "GetSecretValue", "PutSecretValue", "UpdateSecretVersionStage",
                 "DescribeSecret", "ListSecrets", "ListSecretVersionIds", "RotateSecret",
                 "DeleteSecret", "RestoreSecret")
ROTATION_MODES = ("ok", "fail_create", "fail_set", "fail_test", "fail_finish", "stall")

# Messages.  Section 2.0: service exceptions carry "Message", auth and
# throttling errors "message".
MSG_NOT_FOUND = "Secrets Manager can't find the specified secret."
MSG_TOKEN_REQUIRED = "You must provide a ClientRequestToken value. We recommend a UUID-type value."
MSG_MARKED_FOR_DELETION = ("You can't perform this operation on the secret because it was marked "
                           "for deletion.")
MSG_BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. "
                     "Check your AWS Secret Access Key and signing method. Consult the service "
                     "documentation for details.")
MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN = "The security token included in the request is expired"
AUTH_ERRORS = {"InvalidSignatureException", "IncompleteSignature", "UnrecognizedClientException",
               "ExpiredTokenException", "MissingAuthenticationToken", "ThrottlingException",
               "InvalidClientTokenId", "AccessDeniedException", "UnknownOperationException",
               "SerializationException", "InternalServiceError", "ServiceUnavailable",
               "InternalFailure"}


def new_uuid():
    return str(uuid.uuid4())


def iso8601(t):
    """STS / IMDS timestamps: 2026-08-22T18:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def amz_date(t):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def epoch_ms(t):
    return round(t, 3)


def day_of(t):
    """LastAccessedDate has date resolution: midnight UTC of that day."""
    return int(t // 86400 * 86400)


def rand_chars(n, alphabet=string.ascii_letters + string.digits):
    return "".join(secrets.choice(alphabet) for _ in range(n))


# --------------------------------------------------------------------------
# SigV4 (header signing) — verifier, also used by the self-test
# --------------------------------------------------------------------------

def _sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def _uri_encode(s, safe):
    return quote(s, safe=safe)


def normalize_path(path):
    """RFC 3986 dot-segment removal plus collapsing of repeated slashes
    (aws-c-auth's normalization, used for every service but S3)."""
    if not path:
        return "/"
    out = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    norm = "/" + "/".join(out)
    if path.endswith("/") and out:
        norm += "/"
    return norm


def canonical_uri(path, normalize=True):
    if normalize:
        path = normalize_path(path)
    # The path as received is encoded once more (non-S3 services "double
    # encode"); the official vectors give unencoded paths, encoded here once.
    return _uri_encode(path or "/", "/-_.~")


def canonical_query(raw_query):
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        if part == "":
            continue
        k, _, v = part.partition("=")
        pairs.append((_uri_encode(unquote(k), "-_.~"), _uri_encode(unquote(v), "-_.~")))
    pairs.sort()
    return "&".join("%s=%s" % kv for kv in pairs)


def _canon_value(v):
    return re.sub(r"\s+", " ", v.strip())


def canonical_request(method, path, raw_query, header_pairs, signed_headers, payload_hash, normalize=True):
    lines = []
    for name in signed_headers:
        vals = [_canon_value(v) for (n, v) in header_pairs if n.lower() == name]
        lines.append("%s:%s\n" % (name, ",".join(vals)))
    return "%s\n%s\n%s\n%s\n%s\n%s" % (method, canonical_uri(path, normalize), canonical_query(raw_query),
                                       "".join(lines), ";".join(signed_headers), payload_hash)


def signing_key(secret_key, date, region, service):
    k = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def string_to_sign(amzdate, scope, creq):
    return "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (amzdate, scope, _sha256_hex(creq.encode("utf-8")))


def sign(secret_key, amzdate, region, service, creq):
    scope = "%s/%s/%s/aws4_request" % (amzdate[:8], region, service)
    sts = string_to_sign(amzdate, scope, creq)
    return hmac.new(signing_key(secret_key, amzdate[:8], region, service), sts.encode(),
                    hashlib.sha256).hexdigest(), sts


class AwsError(Exception):
    """A JSON 1.1 error: `{"__type": code, "Message"|"message": text}`."""

    def __init__(self, code, message, status=400, lower=None, headers=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.status = status
        self.lower = (code in AUTH_ERRORS) if lower is None else lower
        self.headers = headers or {}


def parse_authorization(value):
    """AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=… → dict."""
    if not value.startswith("AWS4-HMAC-SHA256 "):
        raise AwsError("IncompleteSignature",
                       "Authorization header requires 'Credential' parameter. Authorization header "
                       "requires 'Signature' parameter. Authorization header requires 'SignedHeaders' "
                       "parameter. Authorization=%s" % value.split(" ")[0])
    params = {}
    for part in value[len("AWS4-HMAC-SHA256 "):].split(","):
        k, eq, v = part.strip().partition("=")
        if eq:
            params[k] = v
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if not params.get(p)]
    if missing:
        raise AwsError("IncompleteSignature", " ".join(
            "Authorization header requires '%s' parameter." % p for p in missing))
    cred = params["Credential"].split("/")
    if len(cred) != 5:
        raise AwsError("IncompleteSignature",
                       "Credential should have 5 parts (key/date/region/service/aws4_request): '%s'."
                       % params["Credential"])
    return {"access_key_id": cred[0], "date": cred[1], "region": cred[2], "service": cred[3],
            "terminator": cred[4], "signed_headers": params["SignedHeaders"].split(";"),
            "signature": params["Signature"]}


def verify_sigv4(method, path, raw_query, header_pairs, body, lookup, now, region, service,
                 skew=300, normalize=True, debug_message=True):
    """Verify one header-signed request.  `lookup(access_key_id)` returns a
    credential dict (`secret_access_key`, `session_token`, `expires_at`) or
    None.  Returns (credential, info); raises AwsError.  `info` has the
    canonical request, string to sign and the expected signature."""
    hdr = {}
    for n, v in header_pairs:
        hdr.setdefault(n.lower(), v)
    authz = hdr.get("authorization")
    if not authz:
        raise AwsError("MissingAuthenticationToken", "Missing Authentication Token", status=403)
    a = parse_authorization(authz.strip())
    amzdate = hdr.get("x-amz-date", "").strip()
    if not amzdate:
        raise AwsError("IncompleteSignature",
                       "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                       "header. Authorization=%s" % authz.split(",")[0])
    try:
        req_t = calendar.timegm(time.strptime(amzdate, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise AwsError("IncompleteSignature", "Date must be in ISO-8601 'basic format'. Got '%s'." % amzdate)
    cred = lookup(a["access_key_id"])
    if cred is None:
        raise AwsError("UnrecognizedClientException", MSG_BAD_TOKEN)
    token_hdr = hdr.get("x-amz-security-token")
    want_token = cred.get("session_token")
    if (want_token or None) != (token_hdr.strip() if token_hdr is not None else None):
        raise AwsError("UnrecognizedClientException", MSG_BAD_TOKEN)
    if cred.get("expires_at") is not None and now >= cred["expires_at"]:
        raise AwsError("ExpiredTokenException", MSG_EXPIRED_TOKEN)
    if a["terminator"] != "aws4_request":
        raise AwsError("InvalidSignatureException",
                       "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'."
                       % a["terminator"])
    if a["service"] != service:
        raise AwsError("InvalidSignatureException",
                       "Credential should be scoped to correct service: '%s'. " % service)
    if a["region"] != region:
        raise AwsError("InvalidSignatureException",
                       "Credential should be scoped to a valid region. ")
    if a["date"] != amzdate[:8]:
        raise AwsError("InvalidSignatureException",
                       "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                       "from HTTP: '%s' != '%s', from '%s'." % (a["date"], amzdate[:8], amzdate))
    if req_t < now - skew:
        raise AwsError("InvalidSignatureException",
                       "Signature expired: %s is now earlier than %s (%s - %d min.)"
                       % (amzdate, amz_date(now - skew), amz_date(now), skew // 60))
    if req_t > now + skew:
        raise AwsError("InvalidSignatureException",
                       "Signature not yet current: %s is still later than %s (%s + %d min.)"
                       % (amzdate, amz_date(now + skew), amz_date(now), skew // 60))
    signed = a["signed_headers"]
    if "host" not in signed:
        raise AwsError("InvalidSignatureException",
                       "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    creq = canonical_request(method, path, raw_query, header_pairs, signed, _sha256_hex(body), normalize)
    expected, sts = sign(cred["secret_access_key"], amzdate, a["region"], a["service"], creq)
    info = {"canonical_request": creq, "string_to_sign": sts, "signature": expected,
            "access_key_id": a["access_key_id"]}
    if not hmac.compare_digest(expected, a["signature"]):
        msg = MSG_BAD_SIGNATURE
        if debug_message:
            msg += ("\n\nThe Canonical String for this request should have been\n'%s'\n\n"
                    "The String-to-Sign should have been\n'%s'\n" % (creq, sts))
        raise AwsError("InvalidSignatureException", msg)
    return cred, info


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------

CONFIG_DEFAULTS = {
    "region": "us-east-1",
    "account_id": "123456789012",
    "skew_seconds": 300,                # section 2.0: 5 minutes for Secrets Manager
    "signature_debug": True,            # InvalidSignatureException carries canonical request + STS
    "error_type_prefix": "",            # e.g. "com.amazonaws.secretsmanager#" (trap 6)
    "unknown_operation_status": 400,    # 400 or 404 (section 6)
    "version_quota": 100,
    "deprecated_version_min_age": 86400,  # deprecated versions younger than this are never purged
    "list_empty_first_page": False,     # ListSecrets: a first page with no entries but a NextToken
    "web_identity_tokens": [],          # accepted tokens; [] accepts any (4..20000 chars)
    "expired_web_identity_tokens": [],  # → ExpiredTokenException
    "role_arns": [],                    # accepted RoleArns; [] accepts any role ARN
    "web_identity_subject": "system:serviceaccount:rekey:rekey",
    "web_identity_audience": "sts.amazonaws.com",
    "sts_max_session_duration": 3600,   # the role's MaxSessionDuration
    "sts_credential_lifetime": None,    # None: DurationSeconds; N: credentials live N s
    "imds_v1_allowed": False,
    "imds_token_put_status": 200,       # 200, or 403/404/405 (v1 fallback), 400...
    "imds_role_name": "rekey-instance-role",
    "imds_credential_lifetime": 21600,
    "container_path": "/ecs/credentials",
    "container_auth_token": None,       # Authorization must equal this when set
    "container_credential_lifetime": 3600,
    "container_role_arn": "arn:aws:iam::123456789012:role/rekey-task",
    "rotation_mode": "ok",              # ok | fail_create | fail_set | fail_test | fail_finish | stall
    "rotation_create_delay_ms": 50,     # RotateSecret → createSecret fills the AWSPENDING version
    "rotation_finish_delay_ms": 300,    # createSecret → finishSecret moves AWSCURRENT
    "rotation_value_key": "password",   # JSON SecretString: the key that gets a new value
    "rotation_value_length": 32,
    "log_secret_values": False,         # request log shows SecretString/SecretBinary values
}
CREDENTIAL_KEYS = {"access_key_id", "secret_access_key", "session_token", "expires_at"}


class FakeAws:
    def __init__(self, region="us-east-1", verbose=False):
        self.lock = threading.RLock()
        self.shutdown_event = threading.Event()
        self.start_region = region
        self.verbose = verbose
        self.generation = 0
        self.reset_all()

    def reset_all(self):
        with self.lock:
            self.generation += 1
            self.config = copy.deepcopy(CONFIG_DEFAULTS)
            self.config["region"] = self.start_region
            self.clock_offset = 0.0
            self.credentials = {DEFAULT_ACCESS_KEY: {
                "access_key_id": DEFAULT_ACCESS_KEY, "secret_access_key": DEFAULT_SECRET_KEY,
                "session_token": None, "expires_at": None, "source": "config"}}
            self.secrets = {}
            self.imds_tokens = {}
            self.imds_cached = None
            self.injections = []
            self.next_injection_id = 1
            self.quotas = {}
            self.quota_retry_after = None
            self.log = []
            self.log_seq = 0
            self.log_dropped = 0
            self.rotation_log = []

    def now(self):
        return time.time() + self.clock_offset

    def export_state(self):
        with self.lock:
            return copy.deepcopy({
                "config": self.config, "clock_offset": self.clock_offset,
                "credentials": self.credentials, "secrets": self.secrets,
                "imds_tokens": self.imds_tokens, "injections": self.injections,
                "quotas": self.quotas_view(), "rotation_log": self.rotation_log,
                "request_log_size": len(self.log), "now": self.now(),
            })

    def import_state(self, st):
        with self.lock:
            for key in ("config", "credentials", "secrets", "imds_tokens", "rotation_log"):
                if key in st:
                    setattr(self, key, copy.deepcopy(st[key]))
            self.clock_offset = float(st.get("clock_offset", 0.0))
            for k, v in CONFIG_DEFAULTS.items():
                self.config.setdefault(k, v)

    # ------------------------------------------------------------ config

    def apply_config(self, body):
        if not isinstance(body, dict):
            raise ValueError("config must be an object")
        unknown = set(body) - set(CONFIG_DEFAULTS) - {"credentials", "replace_credentials"}
        if unknown:
            raise ValueError("unknown config keys: %s" % ", ".join(sorted(unknown)))
        with self.lock:
            cfg = dict(self.config)
            for k in CONFIG_DEFAULTS:
                if k in body:
                    cfg[k] = body[k]
            if cfg["rotation_mode"] not in ROTATION_MODES:
                raise ValueError("rotation_mode must be one of %s" % (ROTATION_MODES,))
            if cfg["unknown_operation_status"] not in (400, 404):
                raise ValueError("unknown_operation_status must be 400 or 404")
            if not isinstance(cfg["version_quota"], int) or cfg["version_quota"] < 1:
                raise ValueError("version_quota must be a positive integer")
            for k in ("web_identity_tokens", "expired_web_identity_tokens", "role_arns"):
                if not isinstance(cfg[k], list):
                    raise ValueError("%s must be a list" % k)
            if not str(cfg["container_path"]).startswith("/"):
                raise ValueError("container_path must start with /")
            creds = {} if body.get("replace_credentials") else dict(self.credentials)
            for c in body.get("credentials", []):
                if not isinstance(c, dict) or set(c) - CREDENTIAL_KEYS:
                    raise ValueError("credentials entries: {%s}" % ", ".join(sorted(CREDENTIAL_KEYS)))
                if not c.get("access_key_id") or not c.get("secret_access_key"):
                    raise ValueError("credentials need access_key_id and secret_access_key")
                exp = c.get("expires_at")
                creds[c["access_key_id"]] = {
                    "access_key_id": c["access_key_id"], "secret_access_key": c["secret_access_key"],
                    "session_token": c.get("session_token") or None,
                    "expires_at": None if exp is None else float(exp), "source": "config"}
            self.config = cfg
            self.credentials = creds
            return {"config": copy.deepcopy(cfg), "credentials": self.credentials_view()}

    def credentials_view(self):
        return [{k: c[k] for k in ("access_key_id", "secret_access_key", "session_token", "expires_at", "source")}
                for c in self.credentials.values()]

    def issue_credentials(self, lifetime, source):
        with self.lock:
            key = "ASIA" + rand_chars(16, string.ascii_uppercase + string.digits)
            c = {"access_key_id": key, "secret_access_key": rand_chars(40, string.ascii_letters + string.digits + "+/"),
                 "session_token": "FwoGZXIvYXdzE" + base64.b64encode(secrets.token_bytes(96)).decode(),
                 "expires_at": self.now() + lifetime, "source": source}
            self.credentials[key] = c
            return dict(c)

    def lookup_credential(self, key_id):
        with self.lock:
            c = self.credentials.get(key_id)
            return dict(c) if c else None

    # ------------------------------------------------------------ inject

    def add_injection(self, rule):
        if not isinstance(rule, dict):
            raise ValueError("rule must be an object")
        action = rule.get("action", "status")
        if action not in ("status", "latency", "hang", "reset", "reset_after_apply", "close", "html",
                          "truncated", "big", "status_after_apply", "write_before"):
            raise ValueError("unknown action %r" % action)
        regex = rule.get("path_regex", ".*")
        re.compile(regex)
        method = rule.get("method", "*")
        methods = method if isinstance(method, list) else str(method).split("|")
        methods = {m.strip().upper() for m in methods if m.strip()}
        target = rule.get("target")
        targets = None
        if target is not None:
            targets = sorted(t.strip() for t in (target if isinstance(target, list) else str(target).split("|"))
                             if t.strip())
        ms = int(rule.get("ms", 0))
        if ms < 0 or ms > MAX_INJECT_MS:
            raise ValueError("ms must be within 0..%d" % MAX_INJECT_MS)
        nbytes = rule.get("bytes")
        if nbytes is not None:
            nbytes = int(nbytes)
        elif action == "big":
            nbytes = 1024 * 1024
        if nbytes is not None and not 0 < nbytes <= MAX_BIG_BYTES:
            raise ValueError("bytes must be within 1..%d" % MAX_BIG_BYTES)
        if action == "write_before" and not isinstance(rule.get("seed"), dict):
            raise ValueError("write_before needs seed: {...} (the /__fake/seed body)")
        count = int(rule.get("count", 1))
        if count == 0 or count < -1:
            raise ValueError("count must be positive, or -1 for unlimited")
        with self.lock:
            r = {"id": self.next_injection_id, "path_regex": regex, "method": sorted(methods),
                 "target": targets, "action": action, "status": rule.get("status"),
                 "body": rule.get("body"), "headers": dict(rule.get("headers") or {}),
                 "count": count, "skip": int(rule.get("skip", 0)), "ms": ms, "bytes": nbytes,
                 "matched": 0, "seed": copy.deepcopy(rule.get("seed"))}
            self.next_injection_id += 1
            self.injections.append(r)
            return copy.deepcopy(r)

    def take_injection(self, method, path, target):
        with self.lock:
            for r in list(self.injections):
                if "*" not in r["method"] and method.upper() not in r["method"]:
                    continue
                if not re.search(r["path_regex"], path):
                    continue
                if r["target"] is not None and target not in r["target"]:
                    continue
                if r["skip"] > 0:
                    r["skip"] -= 1
                    continue
                r["matched"] += 1
                if r["count"] > 0:
                    r["count"] -= 1
                    if r["count"] == 0:
                        self.injections.remove(r)
                return copy.deepcopy(r)
        return None

    # ------------------------------------------------------------ quota
    # Token buckets, one per key of "rps"; a key may join operations with
    # "+" to share one bucket (the 50/s Put+UpdateSecretVersionStage quota).

    def set_quota(self, body):
        with self.lock:
            if not body or not body.get("rps"):
                self.quotas = {}
                self.quota_retry_after = None
                return None
            extra = set(body) - {"rps", "retry_after", "burst"}
            if extra:
                raise ValueError("unknown quota keys: %s" % ", ".join(sorted(extra)))
            rps = body["rps"]
            if isinstance(rps, (int, float)):
                rps = {"*": rps}
            if not isinstance(rps, dict):
                raise ValueError("rps must be a number or {operation: number}")
            burst = body.get("burst")
            self.quotas = {}
            for key, rate in rps.items():
                rate = float(rate)
                if rate <= 0:
                    raise ValueError("rates must be positive")
                cap = float(burst) if burst is not None else max(1.0, rate)
                self.quotas[key] = {"ops": key.split("+"), "rate": rate, "capacity": cap,
                                    "tokens": cap, "stamp": time.monotonic(), "rejected": 0}
            ra = body.get("retry_after")
            self.quota_retry_after = None if ra is None else int(ra)
            return self.quotas_view()

    def quotas_view(self):
        with self.lock:
            return {k: {"rate": q["rate"], "capacity": q["capacity"], "rejected": q["rejected"]}
                    for k, q in self.quotas.items()} if self.quotas else {}

    def check_quota(self, op):
        with self.lock:
            now = time.monotonic()
            for key, q in self.quotas.items():
                if op not in q["ops"] and "*" not in q["ops"]:
                    continue
                q["tokens"] = min(q["capacity"], q["tokens"] + (now - q["stamp"]) * q["rate"])
                q["stamp"] = now
                if q["tokens"] >= 1.0:
                    q["tokens"] -= 1.0
                    continue
                q["rejected"] += 1
                headers = {}
                if self.quota_retry_after is not None:
                    headers["Retry-After"] = str(self.quota_retry_after)
                raise AwsError("ThrottlingException", "Rate exceeded", headers=headers)

    # ------------------------------------------------------------ log

    def log_begin(self, entry):
        with self.lock:
            self.log_seq += 1
            entry["seq"] = self.log_seq
            self.log.append(entry)
            if len(self.log) > MAX_LOG_ENTRIES:
                drop = len(self.log) - MAX_LOG_ENTRIES
                del self.log[:drop]
                self.log_dropped += drop
            return entry

    def log_finish(self, entry, status, outcome=None, **extra):
        with self.lock:
            entry["status"] = status
            if outcome:
                entry["outcome"] = outcome
            entry.update(extra)
            entry["duration_ms"] = round((time.time() - entry["time"]) * 1000, 3)

    def log_view(self, since, values):
        with self.lock:
            out = []
            for e in self.log:
                if e["seq"] <= since:
                    continue
                e2 = {k: copy.deepcopy(v) for k, v in e.items() if k != "_raw_body"}
                if values or self.config["log_secret_values"]:
                    e2["body"] = copy.deepcopy(e.get("_raw_body", e2.get("body")))
                out.append(e2)
            return {"requests": out, "dropped": self.log_dropped}

    # ============================================================ Secrets Manager

    def arn_for(self, name):
        return "arn:aws:secretsmanager:%s:%s:secret:%s-%s" % (
            self.config["region"], self.config["account_id"], name, rand_chars(6))

    def purge_expired(self):
        now = self.now()
        for name in [n for n, s in self.secrets.items()
                     if s.get("deletion_date") is not None and s["deletion_date"] <= now]:
            del self.secrets[name]

    def find_secret(self, secret_id, allow_deleted=True):
        self.purge_expired()
        s = self.secrets.get(secret_id)
        if s is None:
            for cand in self.secrets.values():
                if cand["arn"] == secret_id:
                    s = cand
                    break
        if s is None:
            raise AwsError("ResourceNotFoundException", MSG_NOT_FOUND)
        if not allow_deleted and s.get("deleted_date") is not None:
            raise AwsError("InvalidRequestException", MSG_MARKED_FOR_DELETION)
        return s

    @staticmethod
    def holder(sec, label):
        for vid, v in sec["versions"].items():
            if label in v["stages"]:
                return vid
        return None

    def attach(self, sec, label, vid):
        """Rule 1 and rule 4 of section 2.6: the label leaves wherever it is;
        moving AWSCURRENT puts AWSPREVIOUS on the version it left."""
        old = self.holder(sec, label)
        if old == vid:
            return
        if old is not None:
            sec["versions"][old]["stages"].remove(label)
        if vid is not None:
            sec["versions"][vid]["stages"].append(label)
        if label == CURRENT and old is not None and old != vid:
            prev = self.holder(sec, PREVIOUS)
            if prev is not None:
                sec["versions"][prev]["stages"].remove(PREVIOUS)
            if PREVIOUS not in sec["versions"][old]["stages"]:
                sec["versions"][old]["stages"].append(PREVIOUS)

    def touch(self, sec):
        sec["last_changed"] = epoch_ms(self.now())

    def check_quota_versions(self, sec):
        quota = self.config["version_quota"]
        if len(sec["versions"]) < quota:
            return
        now = self.now()
        min_age = self.config["deprecated_version_min_age"]
        for vid in [vid for vid, v in sec["versions"].items()
                    if not v["stages"] and now - v["created"] >= min_age]:
            del sec["versions"][vid]
            if len(sec["versions"]) < quota:
                return
        raise AwsError("LimitExceededException",
                       "You have exceeded the maximum number of versions (%d) for secret %s. "
                       "Deprecated versions younger than 24 hours are not removed." % (quota, sec["name"]))

    @staticmethod
    def value_of(body):
        """(kind, value) from SecretString / SecretBinary, or (None, None)."""
        has_s = body.get("SecretString") is not None
        has_b = body.get("SecretBinary") is not None
        if has_s and has_b:
            raise AwsError("InvalidParameterException",
                           "You can't specify both a binary secret value and a string secret value in "
                           "the same secret.")
        if has_s:
            v = body["SecretString"]
            if not isinstance(v, str):
                raise AwsError("SerializationException", "STRING_VALUE can not be converted to a String")
            if not 1 <= len(v.encode("utf-8")) <= 65536:
                raise validation("secretString", "length less than or equal to 65536" if v else
                                 "length greater than or equal to 1")
            return "string", v
        if has_b:
            v = body["SecretBinary"]
            try:
                raw = base64.b64decode(v, validate=True)
            except (ValueError, TypeError):
                raise AwsError("SerializationException", "Base64 encoded binary value expected for SecretBinary")
            if not 1 <= len(raw) <= 65536:
                raise validation("secretBinary", "length less than or equal to 65536")
            return "binary", base64.b64encode(raw).decode()
        return None, None

    def new_version(self, sec, vid, kind, value):
        v = {"id": vid, "kind": kind, "value": value, "stages": [], "created": epoch_ms(self.now()),
             "last_accessed": None}
        sec["versions"][vid] = v
        return v

    def put_value(self, sec, token, kind, value, stages, bypass_quota=False):
        """PutSecretValue's core (also the rotation Lambda's and /__fake/seed's)."""
        existing = sec["versions"].get(token)
        if existing is not None:
            if existing["kind"] is None:
                # RotateSecret's stub: the rotation function fills it (section 2.0).
                existing["kind"], existing["value"] = kind, value
            elif existing["kind"] == kind and existing["value"] == value:
                return existing, True
            else:
                raise AwsError("ResourceExistsException",
                               "You can't use ClientRequestToken %s because that value is already in use "
                               "for a version of secret %s." % (token, sec["arn"]))
            v = existing
        else:
            if not bypass_quota:
                self.check_quota_versions(sec)
            v = self.new_version(sec, token, kind, value)
        if stages is None:
            old = self.holder(sec, CURRENT)
            self.attach(sec, CURRENT, token)
            # AWS-recorded (2.6, "either" row): the old current loses AWSPENDING too.
            if old is not None and old != token and PENDING in sec["versions"][old]["stages"]:
                sec["versions"][old]["stages"].remove(PENDING)
        else:
            for label in stages:
                self.attach(sec, label, token)
        self.touch(sec)
        return v, False

    def resolve_version(self, sec, version_id, stage):
        if version_id is not None:
            v = sec["versions"].get(version_id)
            if v is None:
                raise AwsError("ResourceNotFoundException",
                               "Secrets Manager can't find the specified secret value for VersionId: %s" % version_id)
            if stage is not None and stage not in v["stages"]:
                raise AwsError("InvalidRequestException",
                               "You provided a VersionStage that is not associated to the provided VersionId.")
            if v["kind"] is None:
                raise AwsError("ResourceNotFoundException",
                               "Secrets Manager can't find the specified secret value for VersionId: %s" % version_id)
            return v
        stage = stage or CURRENT
        vid = self.holder(sec, stage)
        if vid is None or sec["versions"][vid]["kind"] is None:
            raise AwsError("ResourceNotFoundException",
                           "Secrets Manager can't find the specified secret value for staging label: %s" % stage)
        return sec["versions"][vid]

    # ---- operations

    def sm_call(self, op, body):
        with self.lock:
            handler = getattr(self, "op_" + op)
            return handler(body)

    def op_CreateSecret(self, b):
        name = req_str(b, "Name", 1, 512)
        if not re.fullmatch(r"[A-Za-z0-9/_+=.@!-]+", name):
            raise AwsError("ValidationException",
                           "Invalid name. Must be a valid name containing alphanumeric characters, or any "
                           "of the following: -/_+=.@!")
        kind, value = self.value_of(b)
        token = opt_str(b, "ClientRequestToken", 32, 64)
        if kind is not None and token is None:
            raise AwsError("InvalidRequestException", MSG_TOKEN_REQUIRED)
        self.purge_expired()
        sec = self.secrets.get(name)
        if sec is not None:
            if sec.get("deleted_date") is not None:
                raise AwsError("InvalidRequestException",
                               "You can't create this secret because a secret with this name is already "
                               "scheduled for deletion.")
            v = sec["versions"].get(token) if token else None
            if v is not None and v["kind"] == kind and v["value"] == value:
                return {"ARN": sec["arn"], "Name": name, "VersionId": token}
            if v is not None:
                raise AwsError("ResourceExistsException",
                               "You can't use ClientRequestToken %s because that value is already in use for "
                               "a version of secret %s." % (token, sec["arn"]))
            raise AwsError("ResourceExistsException",
                           "The operation failed because the secret %s already exists." % name)
        t = epoch_ms(self.now())
        sec = {"name": name, "arn": self.arn_for(name), "description": b.get("Description"),
               "kms_key_id": b.get("KmsKeyId"), "tags": list(b.get("Tags") or []),
               "created": t, "last_changed": t, "last_accessed": None, "last_rotated": None,
               "rotation_enabled": None, "rotation_lambda_arn": None, "rotation_rules": None,
               "deleted_date": None, "deletion_date": None, "versions": {}}
        self.secrets[name] = sec
        out = {"ARN": sec["arn"], "Name": name}
        if kind is not None:
            self.put_value(sec, token, kind, value, None)
            out["VersionId"] = token
        return out

    def op_GetSecretValue(self, b):
        sec = self.find_secret(req_str(b, "SecretId", 1, 2048), allow_deleted=False)
        v = self.resolve_version(sec, opt_str(b, "VersionId", 32, 64), opt_str(b, "VersionStage", 1, 256))
        now = self.now()
        v["last_accessed"] = day_of(now)
        sec["last_accessed"] = day_of(now)
        out = {"ARN": sec["arn"], "Name": sec["name"], "VersionId": v["id"]}
        out["SecretString" if v["kind"] == "string" else "SecretBinary"] = v["value"]
        out["VersionStages"] = list(v["stages"])
        out["CreatedDate"] = v["created"]
        return out

    def op_PutSecretValue(self, b):
        secret_id = req_str(b, "SecretId", 1, 2048)
        token = opt_str(b, "ClientRequestToken", 32, 64)
        if token is None:
            raise AwsError("InvalidRequestException", MSG_TOKEN_REQUIRED)
        stages = b.get("VersionStages")
        if stages is not None:
            if not isinstance(stages, list) or not 1 <= len(stages) <= 20 or \
                    not all(isinstance(s, str) and 1 <= len(s) <= 256 for s in stages):
                raise validation("versionStages", "length less than or equal to 20")
        sec = self.find_secret(secret_id, allow_deleted=False)
        kind, value = self.value_of(b)
        if kind is None:
            raise AwsError("InvalidRequestException",
                           "You must provide either SecretString or SecretBinary.")
        v, _replay = self.put_value(sec, token, kind, value, stages)
        return {"ARN": sec["arn"], "Name": sec["name"], "VersionId": v["id"], "VersionStages": list(v["stages"])}

    def op_UpdateSecretVersionStage(self, b):
        sec = self.find_secret(req_str(b, "SecretId", 1, 2048), allow_deleted=False)
        label = req_str(b, "VersionStage", 1, 256)
        move = opt_str(b, "MoveToVersionId", 32, 64)
        remove = opt_str(b, "RemoveFromVersionId", 32, 64)
        for vid in (move, remove):
            if vid is not None and vid not in sec["versions"]:
                raise AwsError("InvalidParameterException", "Not a valid version: %s" % vid)
        holder = self.holder(sec, label)
        if move is None and remove is None:
            raise AwsError("InvalidParameterException",
                           "You must specify at least one of MoveToVersionId and RemoveFromVersionId.")
        if holder is not None and holder != move:
            if remove is None:
                raise AwsError("InvalidParameterException",
                               "The parameter RemoveFromVersionId can't be empty. Staging label %s is currently "
                               "attached to version %s, so you must explicitly reference that version in "
                               "RemoveFromVersionId." % (label, holder))
            if remove != holder:
                raise AwsError("InvalidParameterException",
                               "When you move staging label %s, if you specify RemoveFromVersionId, it must be "
                               "set to the version that currently has the staging label %s." % (label, label))
        elif holder is None and remove is not None:
            raise AwsError("InvalidParameterException",
                           "Version stage %s not found in version %s" % (label, remove))
        if move is None and label == CURRENT:
            raise AwsError("InvalidParameterException",
                           "You can't remove the staging label AWSCURRENT without moving it to another version.")
        if move is None:
            sec["versions"][remove]["stages"].remove(label)
        else:
            self.attach(sec, label, move)
        self.touch(sec)
        return {"ARN": sec["arn"], "Name": sec["name"]}

    def describe(self, sec, list_entry=False):
        out = {"ARN": sec["arn"], "Name": sec["name"]}
        if sec.get("description") is not None:
            out["Description"] = sec["description"]
        if sec.get("kms_key_id"):
            out["KmsKeyId"] = sec["kms_key_id"]
        if sec.get("rotation_enabled") is not None:
            out["RotationEnabled"] = sec["rotation_enabled"]
        if sec.get("rotation_lambda_arn"):
            out["RotationLambdaARN"] = sec["rotation_lambda_arn"]
        if sec.get("rotation_rules"):
            out["RotationRules"] = copy.deepcopy(sec["rotation_rules"])
        if sec.get("last_rotated") is not None:
            out["LastRotatedDate"] = sec["last_rotated"]
        out["LastChangedDate"] = sec["last_changed"]
        if sec.get("last_accessed") is not None:
            out["LastAccessedDate"] = sec["last_accessed"]
        if sec.get("deleted_date") is not None:
            out["DeletedDate"] = sec["deleted_date"]
        if sec.get("tags"):
            out["Tags"] = copy.deepcopy(sec["tags"])
        stages = {vid: list(v["stages"]) for vid, v in sec["versions"].items() if v["stages"]}
        if stages or not list_entry:
            out["SecretVersionsToStages" if list_entry else "VersionIdsToStages"] = stages
        out["CreatedDate"] = sec["created"]
        return out

    def op_DescribeSecret(self, b):
        return self.describe(self.find_secret(req_str(b, "SecretId", 1, 2048)))

    @staticmethod
    def _page_token(offset, kind):
        return base64.b64encode(json.dumps({"o": offset, "k": kind}).encode()).decode()

    @staticmethod
    def _page_offset(token, kind):
        if token is None:
            return 0
        try:
            d = json.loads(base64.b64decode(token, validate=True))
            if d.get("k") != kind or not isinstance(d.get("o"), int) or d["o"] < 0:
                raise ValueError
            return d["o"]
        except (ValueError, TypeError, AttributeError):
            raise AwsError("InvalidNextTokenException", "The nextToken provided is invalid")

    @staticmethod
    def _max_results(b):
        mr = b.get("MaxResults")
        if mr is None:
            return 100
        if not isinstance(mr, int) or isinstance(mr, bool) or not 1 <= mr <= 100:
            raise validation("maxResults", "value less than or equal to 100", value=mr)
        return mr

    def _filter_match(self, sec, key, values):
        for raw in values:
            neg = raw.startswith("!")
            val = raw[1:] if neg else raw
            if key == "name":
                hit = sec["name"].startswith(val)
            elif key == "description":
                hit = (sec.get("description") or "").lower().startswith(val.lower())
            elif key == "tag-key":
                hit = any(t.get("Key", "").startswith(val) for t in sec.get("tags") or [])
            elif key == "tag-value":
                hit = any(t.get("Value", "").startswith(val) for t in sec.get("tags") or [])
            elif key == "primary-region":
                hit = self.config["region"].startswith(val)
            elif key == "owning-service":
                hit = False
            else:  # all
                lv = val.lower()
                hit = (sec["name"].lower().startswith(lv) or (sec.get("description") or "").lower().startswith(lv)
                       or any(t.get("Key", "").lower().startswith(lv) or t.get("Value", "").lower().startswith(lv)
                              for t in sec.get("tags") or []))
            if hit != neg:
                return True
        return False

    def op_ListSecrets(self, b):
        mr = self._max_results(b)
        filters = b.get("Filters") or []
        if not isinstance(filters, list) or len(filters) > 10:
            raise validation("filters", "length less than or equal to 10")
        for f in filters:
            if not isinstance(f, dict) or f.get("Key") not in ("description", "name", "tag-key", "tag-value",
                                                                "primary-region", "owning-service", "all"):
                raise validation("filters.member.key",
                                 "enum value set: [all, description, name, tag-key, tag-value, primary-region, "
                                 "owning-service]", value=f.get("Key") if isinstance(f, dict) else f)
        self.purge_expired()
        items = [s for s in self.secrets.values()
                 if (s.get("deleted_date") is None or b.get("IncludePlannedDeletion"))
                 and all(self._filter_match(s, f["Key"], f.get("Values") or []) for f in filters)]
        items.sort(key=lambda s: (s["created"], s["name"]), reverse=b.get("SortOrder") == "desc")
        token = b.get("NextToken")
        if token is None and self.config["list_empty_first_page"]:
            return {"SecretList": [], "NextToken": self._page_token(0, "ls")}
        off = self._page_offset(token, "ls")
        page = items[off:off + mr]
        out = {"SecretList": [self.describe(s, list_entry=True) for s in page]}
        if off + mr < len(items):
            out["NextToken"] = self._page_token(off + mr, "ls")
        return out

    def op_ListSecretVersionIds(self, b):
        sec = self.find_secret(req_str(b, "SecretId", 1, 2048))
        mr = self._max_results(b)
        vers = [v for v in sec["versions"].values() if v["stages"] or b.get("IncludeDeprecated")]
        off = self._page_offset(b.get("NextToken"), "lv:" + sec["name"])
        out_v = []
        for v in vers[off:off + mr]:
            e = {"VersionId": v["id"]}
            if v["stages"]:
                e["VersionStages"] = list(v["stages"])
            if v.get("last_accessed") is not None:
                e["LastAccessedDate"] = v["last_accessed"]
            e["CreatedDate"] = v["created"]
            e["KmsKeyIds"] = ["DefaultEncryptionKey"]
            out_v.append(e)
        out = {"Versions": out_v}
        if off + mr < len(vers):
            out["NextToken"] = self._page_token(off + mr, "lv:" + sec["name"])
        out["ARN"], out["Name"] = sec["arn"], sec["name"]
        return out

    def op_RotateSecret(self, b):
        secret_id = req_str(b, "SecretId", 1, 2048)
        token = opt_str(b, "ClientRequestToken", 32, 64)
        if token is None:
            # Section 2.0: RotateSecret differs from PutSecretValue here.
            raise AwsError("InvalidParameterException", MSG_TOKEN_REQUIRED)
        sec = self.find_secret(secret_id, allow_deleted=False)
        lam = b.get("RotationLambdaARN") or sec.get("rotation_lambda_arn")
        if not lam:
            raise AwsError("InvalidRequestException", "No Lambda rotation function ARN is associated with this secret.")
        if token in sec["versions"]:
            return {"ARN": sec["arn"], "Name": sec["name"], "VersionId": token}
        pend, cur = self.holder(sec, PENDING), self.holder(sec, CURRENT)
        if pend is not None and pend != cur:
            raise AwsError("InvalidRequestException", "Previous rotation request is still in progress.")
        if cur is None:
            raise AwsError("InvalidRequestException",
                           "Secrets Manager can't rotate a secret that has no AWSCURRENT version.")
        sec["rotation_lambda_arn"] = lam
        if b.get("RotationRules"):
            sec["rotation_rules"] = copy.deepcopy(b["RotationRules"])
        sec["rotation_enabled"] = True
        self.touch(sec)
        if b.get("RotateImmediately", True) is False:
            self.rotation_event(sec["name"], token, "testSecret", "ok")
            return {"ARN": sec["arn"], "Name": sec["name"], "VersionId": token}
        self.check_quota_versions(sec)
        self.new_version(sec, token, None, None)
        self.attach(sec, PENDING, token)
        gen = self.generation
        threading.Thread(target=self.rotation_lambda, args=(sec["name"], token, gen), daemon=True).start()
        return {"ARN": sec["arn"], "Name": sec["name"], "VersionId": token}

    def op_DeleteSecret(self, b):
        sec = self.find_secret(req_str(b, "SecretId", 1, 2048))
        force = bool(b.get("ForceDeleteWithoutRecovery"))
        window = b.get("RecoveryWindowInDays")
        if force and window is not None:
            raise AwsError("InvalidParameterException",
                           "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
        now = self.now()
        if force:
            del self.secrets[sec["name"]]
            return {"ARN": sec["arn"], "Name": sec["name"], "DeletionDate": epoch_ms(now)}
        window = 30 if window is None else window
        if not isinstance(window, int) or not 7 <= window <= 30:
            raise AwsError("InvalidParameterException",
                           "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
        if sec.get("deleted_date") is None:
            sec["deleted_date"] = epoch_ms(now)
            sec["deletion_date"] = epoch_ms(now + window * 86400)
        self.touch(sec)
        return {"ARN": sec["arn"], "Name": sec["name"], "DeletionDate": sec["deletion_date"]}

    def op_RestoreSecret(self, b):
        sec = self.find_secret(req_str(b, "SecretId", 1, 2048))
        sec["deleted_date"] = sec["deletion_date"] = None
        self.touch(sec)
        return {"ARN": sec["arn"], "Name": sec["name"]}

    # ---- the rotation "Lambda"

    def rotation_event(self, name, token, step, result):
        self.rotation_log.append({"time": self.now(), "secret": name, "token": token, "step": step,
                                  "result": result})

    def _new_rotated_value(self, sec):
        cur = sec["versions"][self.holder(sec, CURRENT)]
        n = int(self.config["rotation_value_length"])
        fresh = rand_chars(n)
        if cur["kind"] == "binary":
            return "binary", base64.b64encode(secrets.token_bytes(n)).decode()
        try:
            obj = json.loads(cur["value"])
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            obj[self.config["rotation_value_key"]] = fresh
            return "string", json.dumps(obj, separators=(",", ":"))
        return "string", fresh

    def rotation_lambda(self, name, token, gen):
        def alive():
            return not self.shutdown_event.is_set() and self.generation == gen

        def sec_or_none():
            s = self.secrets.get(name)
            return s if s is not None and token in s["versions"] else None

        if self.shutdown_event.wait(self.config["rotation_create_delay_ms"] / 1000.0) or not alive():
            return
        mode = self.config["rotation_mode"]
        with self.lock:
            sec = sec_or_none()
            if sec is None or not alive():
                return
            if mode == "stall":
                self.rotation_event(name, token, "createSecret", "stalled")
            elif mode == "fail_create":
                self.rotation_event(name, token, "createSecret", "failed")
                return
            else:
                if sec["versions"][token]["kind"] is None:
                    kind, value = self._new_rotated_value(sec)
                    self.put_value(sec, token, kind, value, [PENDING], bypass_quota=True)
                self.rotation_event(name, token, "createSecret", "ok")
                for step, fail in (("setSecret", "fail_set"), ("testSecret", "fail_test")):
                    if mode == fail:
                        self.rotation_event(name, token, step, "failed")
                        return
                    self.rotation_event(name, token, step, "ok")
        if mode == "stall":
            self.shutdown_event.wait(MAX_INJECT_MS / 1000.0)
            return
        if self.shutdown_event.wait(self.config["rotation_finish_delay_ms"] / 1000.0) or not alive():
            return
        with self.lock:
            sec = sec_or_none()
            if sec is None or not alive():
                return
            if mode == "fail_finish":
                self.rotation_event(name, token, "finishSecret", "failed")
                return
            if self.holder(sec, CURRENT) != token:
                self.attach(sec, CURRENT, token)
            sec["last_rotated"] = epoch_ms(self.now())
            self.touch(sec)
            self.rotation_event(name, token, "finishSecret", "ok")

    # ---- /__fake/seed: a concurrent writer, bypassing auth/quotas/injections

    def seed(self, b):
        if not isinstance(b, dict) or not b.get("Name"):
            raise ValueError("seed needs Name")
        with self.lock:
            self.purge_expired()
            name = b["Name"]
            sec = self.secrets.get(name)
            if sec is None:
                t = epoch_ms(self.now())
                sec = {"name": name, "arn": self.arn_for(name), "description": b.get("Description"),
                       "kms_key_id": None, "tags": list(b.get("Tags") or []), "created": t,
                       "last_changed": t, "last_accessed": None, "last_rotated": None,
                       "rotation_enabled": None, "rotation_lambda_arn": None, "rotation_rules": None,
                       "deleted_date": None, "deletion_date": None, "versions": {}}
                self.secrets[name] = sec
            for k, f in (("Description", "description"), ("Tags", "tags"), ("RotationLambdaARN", "rotation_lambda_arn")):
                if k in b:
                    sec[f] = copy.deepcopy(b[k])
            out = {"ARN": sec["arn"], "Name": name}
            try:
                kind, value = self.value_of(b)
                if kind is not None:
                    vid = b.get("VersionId") or new_uuid()
                    v, _ = self.put_value(sec, vid, kind, value, b.get("VersionStages"), bypass_quota=True)
                    out["VersionId"], out["VersionStages"] = vid, list(v["stages"])
                if "VersionStage" in b:
                    self.op_UpdateSecretVersionStage({"SecretId": name, "VersionStage": b["VersionStage"],
                                                      "MoveToVersionId": b.get("MoveToVersionId"),
                                                      "RemoveFromVersionId": b.get("RemoveFromVersionId")})
            except AwsError as e:
                raise ValueError("%s: %s" % (e.code, e.message))
            out["VersionIdsToStages"] = {vid: list(v["stages"]) for vid, v in sec["versions"].items() if v["stages"]}
            return out

    # ============================================================ STS

    def sts_call(self, params):
        action = params.get("Action")
        if action != "AssumeRoleWithWebIdentity":
            raise StsError("InvalidAction", "Could not find operation %s for version %s"
                           % (action, params.get("Version", "NO_VERSION_SPECIFIED")))
        role = params.get("RoleArn")
        sess = params.get("RoleSessionName")
        tok = params.get("WebIdentityToken")
        for field, v in (("roleArn", role), ("roleSessionName", sess), ("webIdentityToken", tok)):
            if v is None:
                raise StsError("ValidationError", "1 validation error detected: Value null at '%s' failed to "
                               "satisfy constraint: Member must not be null" % field)
        if not 20 <= len(role) <= 2048:
            raise StsError("ValidationError", "1 validation error detected: Value '%s' at 'roleArn' failed to "
                           "satisfy constraint: Member must have length greater than or equal to 20" % role)
        m = re.fullmatch(r"arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})", role)
        if not m:
            raise StsError("ValidationError", "Request ARN is invalid")
        if not 2 <= len(sess) <= 64:
            raise StsError("ValidationError", "1 validation error detected: Value '%s' at 'roleSessionName' failed "
                           "to satisfy constraint: Member must have length %s" % (
                               sess, "greater than or equal to 2" if len(sess) < 2 else "less than or equal to 64"))
        if not re.fullmatch(r"[\w+=,.@-]*", sess):
            raise StsError("ValidationError", "1 validation error detected: Value '%s' at 'roleSessionName' failed "
                           "to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*" % sess)
        if not 4 <= len(tok) <= 20000:
            raise StsError("ValidationError", "1 validation error detected: Value at 'webIdentityToken' failed to "
                           "satisfy constraint: Member must have length greater than or equal to 4")
        dur_raw = params.get("DurationSeconds", "3600")
        try:
            dur = int(dur_raw)
        except ValueError:
            raise StsError("ValidationError", "Value '%s' at 'durationSeconds' failed to satisfy constraint: "
                           "Member must be a number" % dur_raw)
        if dur < 900:
            raise StsError("ValidationError", "1 validation error detected: Value '%d' at 'durationSeconds' failed "
                           "to satisfy constraint: Member must have value greater than or equal to 900" % dur)
        if dur > 43200:
            raise StsError("ValidationError", "1 validation error detected: Value '%d' at 'durationSeconds' failed "
                           "to satisfy constraint: Member must have value less than or equal to 43200" % dur)
        with self.lock:
            cfg = self.config
            if dur > cfg["sts_max_session_duration"]:
                raise StsError("ValidationError",
                               "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
            if tok in cfg["expired_web_identity_tokens"]:
                raise StsError("ExpiredTokenException", "Token expired: current date/time %d must be before the "
                               "expiration date/time %d" % (int(self.now()), int(self.now()) - 60))
            if cfg["web_identity_tokens"] and tok not in cfg["web_identity_tokens"]:
                raise StsError("InvalidIdentityToken", "The ID Token provided is not a valid JWT. "
                               "(You may see this error if you sent an Access Token)")
            if cfg["role_arns"] and role not in cfg["role_arns"]:
                raise StsError("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
            lifetime = cfg["sts_credential_lifetime"] if cfg["sts_credential_lifetime"] is not None else dur
            c = self.issue_credentials(float(lifetime), "sts")
        return {"role_arn": role, "account": m.group(1), "role_name": m.group(2), "session": sess, "cred": c}

    # ============================================================ IMDS / container

    def imds_credentials(self):
        with self.lock:
            life = float(self.config["imds_credential_lifetime"])
            c = self.imds_cached
            if c is None or c["expires_at"] - self.now() < life / 2 or c["access_key_id"] not in self.credentials:
                c = self.imds_cached = self.issue_credentials(life, "imds")
            return c


class StsError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(code, message)
        self.code, self.message, self.status = code, message, status


def validation(field, constraint, value=None):
    v = "" if value is None else " '%s'" % value
    return AwsError("ValidationException", "1 validation error detected: Value%s at '%s' failed to satisfy "
                    "constraint: Member must have %s" % (v, field, constraint), lower=False)


def req_str(b, key, lo, hi):
    v = b.get(key)
    if v is None:
        field = key[0].lower() + key[1:]
        raise AwsError("ValidationException", "1 validation error detected: Value null at '%s' failed to satisfy "
                       "constraint: Member must not be null" % field, lower=False)
    return opt_str(b, key, lo, hi)


def opt_str(b, key, lo, hi):
    v = b.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise AwsError("SerializationException", "STRING_VALUE can not be converted to a String")
    field = key[0].lower() + key[1:]
    if len(v) < lo:
        raise validation(field, "length greater than or equal to %d" % lo, v)
    if len(v) > hi:
        raise validation(field, "length less than or equal to %d" % hi, v)
    return v


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

class Reply:
    def __init__(self, status, body=b"", content_type="application/x-amz-json-1.1", headers=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})


def json_reply(obj, status=200, headers=None):
    h = {"x-amzn-RequestId": new_uuid()}
    h.update(headers or {})
    return Reply(status, json.dumps(obj, separators=(",", ":")).encode(), headers=h)


def aws_error_reply(e, prefix=""):
    key = "message" if e.lower else "Message"
    body = {"__type": prefix + e.code, key: e.message}
    return json_reply(body, e.status, e.headers)


def sts_error_reply(e):
    rid = new_uuid()
    body = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
            '  <Error>\n    <Type>Sender</Type>\n    <Code>%s</Code>\n    <Message>%s</Message>\n  </Error>\n'
            '  <RequestId>%s</RequestId>\n</ErrorResponse>\n' % (e.code, xml_escape(e.message), rid))
    return Reply(e.status, body.encode(), content_type="text/xml", headers={"x-amzn-RequestId": rid})


def sts_success_reply(r, cfg):
    c, rid = r["cred"], new_uuid()
    body = """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>%s</SubjectFromWebIdentityToken>
    <Audience>%s</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::%s:assumed-role/%s/%s</Arn>
      <AssumedRoleId>AROA%s:%s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <Provider>arn:aws:iam::%s:oidc-provider/oidc.eks.%s.amazonaws.com/id/EXAMPLE</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>%s</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
""" % (xml_escape(cfg["web_identity_subject"]), xml_escape(cfg["web_identity_audience"]), r["account"],
       xml_escape(r["role_name"]), xml_escape(r["session"]), "CLKWSDQRAOEXAMPLE", xml_escape(r["session"]),
       c["access_key_id"], xml_escape(c["secret_access_key"]), xml_escape(c["session_token"]),
       iso8601(c["expires_at"]), r["account"], cfg["region"], rid)
    return Reply(200, body.encode(), content_type="text/xml", headers={"x-amzn-RequestId": rid})


HTML_PAGE = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")

DEFAULT_INJECT_ERRORS = {
    500: ("InternalServiceError", "An error occurred on the server side."),
    503: ("ServiceUnavailable", "Service Unavailable"),
    400: ("ThrottlingException", "Rate exceeded"),
    429: ("ThrottlingException", "Rate exceeded"),
    403: ("AccessDeniedException", "User is not authorized to perform this operation"),
}


def injected_reply(status, body, headers, prefix=""):
    if isinstance(body, str):
        return Reply(status, body.encode(), headers=dict(headers, **{"x-amzn-RequestId": new_uuid()}))
    if body is not None:
        return json_reply(body, status, headers)
    code, msg = DEFAULT_INJECT_ERRORS.get(status, ("InternalFailure", "The request processing has failed "
                                                                      "because of an unknown error."))
    return aws_error_reply(AwsError(code, msg, status=status, headers=headers), prefix)


def redact_body(body, values):
    """Parsed request body for the log; secret values and web identity tokens
    become "<redacted>" unless `values`."""
    if not body:
        return None
    if len(body) > MAX_LOGGED_BODY:
        return {"_omitted_bytes": len(body)}
    try:
        d = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        try:
            d = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
            if not d:
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return {"_raw": body[:4096].decode("utf-8", "replace")}
    if not values and isinstance(d, dict):
        for k in ("SecretString", "SecretBinary", "WebIdentityToken"):
            if k in d:
                d[k] = "<redacted>"
    return d


REDACT_HEADERS = {"authorization", "x-amz-security-token", "x-aws-ec2-metadata-token"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_CONNECTION_TIMEOUT
    server_version = "Server"
    sys_version = ""

    @property
    def fake(self):
        return self.server.fake

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, fmt, *args):
        if self.fake.verbose:
            sys.stderr.write("aws_fake: %s %s\n" % (self.address_string(), fmt % args))

    def date_time_string(self, timestamp=None):
        # The fake's clock (with /__fake/clock's offset): clients correct skew from it.
        return email.utils.formatdate(self.fake.now() if timestamp is None else timestamp, usegmt=True)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
                if sum(map(len, chunks)) > MAX_REQUEST_SIZE:
                    raise ValueError("too large")
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n > MAX_REQUEST_SIZE:
            raise ValueError("too large")
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, reply, close=False):
        self.send_response_only(reply.status)
        self.send_header("Date", self.date_time_string())
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for k, v in reply.headers.items():
            self.send_header(k, str(v))
        body = reply.body or b""
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _abort(self, rst):
        self.close_connection = True
        try:
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                # FIN first, then drain what the client still sends, so that
                # close() does not turn into a RST (unread data).
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(0.2)
                try:
                    while self.connection.recv(65536):
                        pass
                except OSError:
                    pass
        except OSError:
            pass
        for f in (self.rfile, self.wfile):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.connection.close()
        except OSError:
            pass

    def _wait(self, ms):
        return self.fake.shutdown_event.wait(ms / 1000.0)

    # -- dispatch

    def _dispatch(self):
        url = urlsplit(self.path)
        path = url.path
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self._send(Reply(413, b"", content_type=None), close=True)
            return
        if path == "/__fake" or path.startswith("/__fake/"):
            self._admin(path, url.query, body)
            return
        fake = self.fake
        method = self.command.upper()
        target = self.headers.get("X-Amz-Target", "")
        ctype = self.headers.get("Content-Type", "")
        if path.startswith("/latest/"):
            service, op = "imds", path
        elif path == fake.config["container_path"]:
            service, op = "container", path
        elif target:
            service, op = "secretsmanager", target.split(".", 1)[1] if "." in target else target
        elif method == "POST" and ctype.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            service = "sts"
            op = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}.get("Action", "")
        else:
            self._send(Reply(404, b'{"message":"Not Found"}', content_type="application/json",
                             headers={"x-amzn-RequestId": new_uuid()}))
            return
        cred_key = None
        m = re.search(r"Credential=([^/,\s]+)/", self.headers.get("Authorization", "") or "")
        if m:
            cred_key = m.group(1)
        raw_body = redact_body(body, True)
        entry = fake.log_begin({
            "time": time.time(), "method": method, "path": path, "query": url.query, "service": service,
            "target": op if service in ("secretsmanager", "sts") else None, "access_key_id": cred_key,
            "headers": {k: ("<redacted>" if k.lower() in REDACT_HEADERS else v) for k, v in self.headers.items()},
            "body": redact_body(body, False), "_raw_body": raw_body, "status": None, "error_type": None,
        })
        prefix = fake.config["error_type_prefix"]

        rule = fake.take_injection(method, path, op)
        if rule is not None:
            entry["injection"] = rule["id"]
            action = rule["action"]
            if action == "hang":
                self._wait(rule["ms"] or MAX_INJECT_MS)
                fake.log_finish(entry, None, "hang")
                self._abort(rst=False)
                return
            if rule["ms"] and self._wait(rule["ms"]):
                fake.log_finish(entry, None, "shutdown")
                self._abort(rst=False)
                return
            if action in ("reset", "close"):
                fake.log_finish(entry, None, action)
                self._abort(rst=action == "reset")
                return
            if action == "status":
                status = int(rule["status"] or 500)
                fake.log_finish(entry, status, "injected")
                self._send(injected_reply(status, rule["body"], rule["headers"], prefix))
                return
            if action == "html":
                status = int(rule["status"] or 502)
                html = rule["body"].encode() if isinstance(rule["body"], str) else HTML_PAGE
                fake.log_finish(entry, status, "html")
                self._send(Reply(status, html, content_type="text/html", headers=rule["headers"]))
                return
            if action == "big":
                fake.log_finish(entry, int(rule["status"] or 200), "big")
                self._send_big(rule)
                return
            if action == "write_before":
                try:
                    fake.seed(rule["seed"])
                except ValueError:
                    pass

        if service == "secretsmanager":
            reply = self._secretsmanager(method, url, op, body, entry)
        elif service == "sts":
            reply = self._sts(body)
        elif service == "imds":
            reply = self._imds(method, path)
        else:
            reply = self._container()
        for k, v in (rule["headers"] if rule is not None else {}).items():
            reply.headers[k] = v
        if reply.status >= 400 and reply.content_type == "application/x-amz-json-1.1":
            try:
                entry["error_type"] = json.loads(reply.body).get("__type")
            except ValueError:
                pass

        if rule is not None and rule["action"] == "reset_after_apply":
            fake.log_finish(entry, None, "reset_after_apply", applied_status=reply.status)
            self._abort(rst=True)
            return
        if rule is not None and rule["action"] == "status_after_apply":
            status = int(rule["status"] or 502)
            applied = reply.status
            fake.log_finish(entry, status, "status_after_apply", applied_status=applied)
            self._send(injected_reply(status, rule["body"], rule["headers"], prefix))
            return
        if rule is not None and rule["action"] == "truncated":
            fake.log_finish(entry, None, "truncated", applied_status=reply.status)
            self._send_truncated(reply, rule)
            return
        fake.log_finish(entry, reply.status, "latency" if rule is not None else None)
        self._send(reply)

    def _secretsmanager(self, method, url, op, body, entry):
        fake = self.fake
        prefix = fake.config["error_type_prefix"]
        try:
            if method != "POST" or url.path != "/":
                raise AwsError("UnknownOperationException", "", status=fake.config["unknown_operation_status"])
            target = self.headers.get("X-Amz-Target", "")
            cfg = fake.config
            cred, _info = verify_sigv4(method, url.path, url.query, list(self.headers.items()), body,
                                       fake.lookup_credential, fake.now(), cfg["region"], "secretsmanager",
                                       skew=int(cfg["skew_seconds"]), debug_message=cfg["signature_debug"])
            entry["credential_source"] = cred.get("source")
            if not target.startswith("secretsmanager.") or op not in SM_OPERATIONS:
                raise AwsError("UnknownOperationException", "", status=cfg["unknown_operation_status"])
            fake.check_quota(op)
            try:
                payload = json.loads(body.decode("utf-8")) if body.strip() else {}
            except (ValueError, UnicodeDecodeError):
                raise AwsError("SerializationException", "Start of structure or map found where not expected.")
            if not isinstance(payload, dict):
                raise AwsError("SerializationException", "Start of structure or map found where not expected.")
            return json_reply(fake.sm_call(op, payload))
        except AwsError as e:
            return aws_error_reply(e, prefix)

    def _sts(self, body):
        fake = self.fake
        try:
            params = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
            return sts_success_reply(fake.sts_call(params), fake.config)
        except StsError as e:
            return sts_error_reply(e)
        except UnicodeDecodeError:
            return sts_error_reply(StsError("MalformedInput", "The request body is not valid UTF-8"))

    def _imds(self, method, path):
        fake = self.fake
        text = "text/plain"
        with fake.lock:
            cfg = fake.config
            if path == "/latest/api/token":
                if method != "PUT":
                    return Reply(405, b"", content_type=text)
                if cfg["imds_token_put_status"] != 200:
                    return Reply(int(cfg["imds_token_put_status"]), b"", content_type=text)
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                try:
                    ttl = int(ttl)
                except (TypeError, ValueError):
                    return Reply(400, b"", content_type=text)
                if not 1 <= ttl <= 21600:
                    return Reply(400, b"", content_type=text)
                tok = base64.urlsafe_b64encode(secrets.token_bytes(42)).decode()
                fake.imds_tokens[tok] = fake.now() + ttl
                return Reply(200, tok.encode(), content_type=text,
                             headers={"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
            if method not in ("GET", "HEAD"):
                return Reply(405, b"", content_type=text)
            tok = self.headers.get("X-aws-ec2-metadata-token")
            if tok is None:
                if not cfg["imds_v1_allowed"]:
                    return Reply(401, b"", content_type=text)
            else:
                exp = fake.imds_tokens.get(tok)
                if exp is None or exp <= fake.now():
                    return Reply(401, b"", content_type=text)
            base = "/latest/meta-data/iam/security-credentials/"
            role = cfg["imds_role_name"]
            if path in (base, base.rstrip("/")):
                return Reply(200, role.encode(), content_type=text)
            if path.startswith(base):
                if path[len(base):].rstrip("/") != role:
                    return Reply(404, b"", content_type=text)
                c = fake.imds_credentials()
                doc = {"Code": "Success", "LastUpdated": iso8601(fake.now()), "Type": "AWS-HMAC",
                       "AccessKeyId": c["access_key_id"], "SecretAccessKey": c["secret_access_key"],
                       "Token": c["session_token"], "Expiration": iso8601(c["expires_at"])}
                return Reply(200, json.dumps(doc, indent=2).encode(), content_type=text)
            if path == "/latest/meta-data/placement/region":
                return Reply(200, cfg["region"].encode(), content_type=text)
            if path == "/latest/meta-data/instance-id":
                return Reply(200, b"i-0fa4e000000000001", content_type=text)
            return Reply(404, b"", content_type=text)

    def _container(self):
        fake = self.fake
        with fake.lock:
            cfg = fake.config
            want = cfg["container_auth_token"]
            if self.command not in ("GET", "HEAD"):
                return Reply(405, b"", content_type=None)
            if want is not None and self.headers.get("Authorization") != want:
                return Reply(401 if self.headers.get("Authorization") is None else 403,
                             json.dumps({"code": "AccessDeniedException",
                                         "message": "Authorization token is missing or invalid"}).encode(),
                             content_type="application/json")
            c = fake.issue_credentials(float(cfg["container_credential_lifetime"]), "container")
            doc = {"AccessKeyId": c["access_key_id"], "SecretAccessKey": c["secret_access_key"],
                   "Token": c["session_token"], "Expiration": iso8601(c["expires_at"]),
                   "RoleArn": cfg["container_role_arn"], "AccountId": cfg["account_id"]}
            return Reply(200, json.dumps(doc).encode(), content_type="application/json")

    def _send_truncated(self, reply, rule):
        body = reply.body or b"{}"
        cut = rule["bytes"] if rule["bytes"] is not None else len(body) // 2
        cut = max(0, min(cut, len(body) - 1))
        self.send_response_only(reply.status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", reply.content_type or "application/octet-stream")
        for k, v in reply.headers.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body[:cut])
            self.wfile.flush()
        except OSError:
            pass
        self._abort(rst=False)

    def _send_big(self, rule):
        n = rule["bytes"]
        head, tail = b'{"Padding":"', b'"}'
        pad = max(0, n - len(head) - len(tail))
        total = len(head) + pad + len(tail)
        self.send_response_only(int(rule["status"] or 200))
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", new_uuid())
        for k, v in rule["headers"].items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(total))
        self.end_headers()
        try:
            self.wfile.write(head)
            chunk = b"x" * 65536
            left = pad
            while left > 0 and not self.fake.shutdown_event.is_set():
                piece = chunk if left >= len(chunk) else chunk[:left]
                self.wfile.write(piece)
                left -= len(piece)
            if left > 0:
                self._abort(rst=False)
                return
            self.wfile.write(tail)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    # -- admin API

    def _admin_reply(self, status, obj):
        self._send(Reply(status, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode(),
                         content_type="application/json"))

    def _admin(self, path, raw_query, body):
        fake = self.fake
        method = self.command.upper()
        try:
            payload = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            self._admin_reply(400, {"error": "bad JSON: %s" % e})
            return
        params = {k: v[0] for k, v in parse_qs(raw_query).items()}
        try:
            route = path[len("/__fake"):].rstrip("/") or "/"
            if route == "/ping" and method == "GET":
                self._admin_reply(200, {"ok": True, "pid": os.getpid()})
            elif route == "/inject" and method == "POST":
                rules = payload.get("rules") if isinstance(payload, dict) and "rules" in payload else [payload]
                self._admin_reply(200, {"injections": [fake.add_injection(r) for r in rules]})
            elif route == "/inject" and method == "GET":
                with fake.lock:
                    self._admin_reply(200, {"injections": copy.deepcopy(fake.injections)})
            elif route == "/inject" and method == "DELETE":
                with fake.lock:
                    fake.injections = []
                self._admin_reply(200, {"ok": True})
            elif route == "/quota" and method == "POST":
                self._admin_reply(200, {"quota": fake.set_quota(payload)})
            elif route == "/quota" and method == "DELETE":
                self._admin_reply(200, {"quota": fake.set_quota({})})
            elif route == "/quota" and method == "GET":
                self._admin_reply(200, {"quota": fake.quotas_view(), "retry_after": fake.quota_retry_after})
            elif route == "/requests" and method == "GET":
                self._admin_reply(200, fake.log_view(int(params.get("since", 0)),
                                                     params.get("values") in ("1", "true")))
            elif route == "/requests" and method == "DELETE":
                with fake.lock:
                    fake.log = []
                    fake.log_dropped = 0
                self._admin_reply(200, {"ok": True})
            elif route == "/state" and method == "GET":
                self._admin_reply(200, fake.export_state())
            elif route == "/reset" and method == "POST":
                fake.reset_all()
                self._admin_reply(200, {"ok": True})
            elif route == "/config" and method == "POST":
                self._admin_reply(200, fake.apply_config(payload))
            elif route == "/config" and method == "GET":
                with fake.lock:
                    self._admin_reply(200, {"config": copy.deepcopy(fake.config),
                                            "credentials": fake.credentials_view()})
            elif route == "/seed" and method in ("POST", "PUT"):
                self._admin_reply(200, fake.seed(payload))
            elif route == "/clock" and method == "POST":
                with fake.lock:
                    fake.clock_offset = float(payload.get("offset", 0))
                self._admin_reply(200, {"offset": fake.clock_offset, "now": fake.now()})
            elif route == "/clock" and method == "GET":
                self._admin_reply(200, {"offset": fake.clock_offset, "now": fake.now()})
            else:
                self._admin_reply(404, {"error": "no admin route %s %s" % (method, path)})
        except (ValueError, TypeError, KeyError, re.error) as e:
            self._admin_reply(400, {"error": str(e)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, fake):
        self.fake = fake
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError, ValueError)):
            return
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------
# --selftest-sigv4: the verifier against AWS's published vectors
# --------------------------------------------------------------------------

def _parse_raw_request(text):
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, rest = lines[0].split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    pairs = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and pairs:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + "\n" + line)
        elif line:
            n, _, v = line.partition(":")
            pairs.append((n, v))
    path, _, query = target.partition("?")
    return method, path, query, pairs, body.encode("utf-8")


def selftest_sigv4(root):
    """Runs the verifier over aws-c-auth's v4 header-signing cases plus the
    contract doc's Secrets Manager vectors.  Prints PASS/FAIL lines."""
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print("PASS sigv4 %s" % name)
        else:
            failed += 1
            print("FAIL sigv4 %s%s" % (name, ": " + detail if detail else ""))

    v4 = os.path.join(root, "aws-c-auth-aws-signing-test-suite", "v4")
    cases = sorted(os.listdir(v4)) if os.path.isdir(v4) else []
    check("found the aws-c-auth v4 cases", len(cases) >= 30, "%d cases in %s" % (len(cases), v4))
    for case in cases:
        d = os.path.join(v4, case)

        def rd(name):
            with open(os.path.join(d, name), encoding="utf-8") as f:
                return f.read()
        ctx = json.loads(rd("context.json"))
        c = ctx["credentials"]
        t = calendar.timegm(time.strptime(ctx["timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
        cred = {"secret_access_key": c["secret_access_key"], "session_token": c.get("token"), "expires_at": None}

        def lookup(k, cred=cred, key=c["access_key_id"]):
            return cred if k == key else None
        method, path, query, pairs, body = _parse_raw_request(rd("header-signed-request.txt"))
        norm = ctx.get("normalize", True)
        try:
            _, info = verify_sigv4(method, path, query, pairs, body, lookup, t, ctx["region"], ctx["service"],
                                   normalize=norm)
            ok = (info["canonical_request"] == rd("header-canonical-request.txt")
                  and info["string_to_sign"] == rd("header-string-to-sign.txt")
                  and info["signature"] == rd("header-signature.txt").strip())
            check("%s accepted, canonical request/string to sign/signature match" % case, ok,
                  "" if ok else repr(info))
        except AwsError as e:
            check("%s accepted" % case, False, "%s %s" % (e.code, e.message[:300]))
        # Negative: a flipped signature digit, and a changed signed header.
        bad = [(n, re.sub(r"Signature=(.)", lambda m: "Signature=" + ("0" if m.group(1) != "0" else "1"), v))
               if n.lower() == "authorization" else (n, v) for n, v in pairs]
        try:
            verify_sigv4(method, path, query, bad, body, lookup, t, ctx["region"], ctx["service"], normalize=norm)
            check("%s flipped signature rejected" % case, False, "accepted")
        except AwsError as e:
            check("%s flipped signature rejected" % case, e.code == "InvalidSignatureException", e.code)
        tweaked = [(n, v) if n.lower() != "host" else (n, v + ".evil") for n, v in pairs]
        try:
            verify_sigv4(method, path, query, tweaked, body + b"!", lookup, t, ctx["region"], ctx["service"],
                         normalize=norm)
            check("%s changed host+body rejected" % case, False, "accepted")
        except AwsError as e:
            check("%s changed host+body rejected" % case, e.code == "InvalidSignatureException", e.code)

    # Section 2.2 of the contract doc: exactly rekey's request shape.
    body = b'{"SecretId":"prod/db","VersionStage":"AWSCURRENT"}'
    t = calendar.timegm(time.strptime("20150830T123600Z", "%Y%m%dT%H%M%SZ"))
    for host, token, want in (
            ("secretsmanager.us-east-1.amazonaws.com", None,
             "c5bed2178bc6198a11b940ad7bcac122d5a3b382e7b7c48caf559013ed8d02da"),
            ("secretsmanager.us-east-1.amazonaws.com", "EXAMPLESESSIONTOKEN",
             "bf031b1077810976035a8bd2c8d443868079aca754c89e3b7b8680afbc3e37a4"),
            ("127.0.0.1:4566", None, "d3a165d478219641bcdb9545bee3696520697f469e8b32c37629f0293117cd3e")):
        signed = ["content-type", "host", "x-amz-date"] + (["x-amz-security-token"] if token else []) + ["x-amz-target"]
        pairs = [("Content-Type", "application/x-amz-json-1.1"), ("Host", host),
                 ("X-Amz-Date", "20150830T123600Z"), ("X-Amz-Target", "secretsmanager.GetSecretValue")]
        if token:
            pairs.append(("X-Amz-Security-Token", token))
        pairs.append(("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/"
                      "aws4_request, SignedHeaders=%s, Signature=%s" % (";".join(signed), want)))
        cred = {"secret_access_key": DEFAULT_SECRET_KEY, "session_token": token, "expires_at": None}
        try:
            verify_sigv4("POST", "/", "", pairs, body, lambda k, cred=cred: cred if k == "AKIDEXAMPLE" else None,
                         t, "us-east-1", "secretsmanager")
            check("contract 2.2 vector host=%s token=%s" % (host, token), True)
        except AwsError as e:
            check("contract 2.2 vector host=%s token=%s" % (host, token), False, e.code)
    print("sigv4 selftest: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def _write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake AWS Secrets Manager + STS/IMDS/container credentials "
                                             "for tests (loopback only).")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick a free one)")
    ap.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    ap.add_argument("--region", default="us-east-1", help="the region requests must be signed for")
    ap.add_argument("--state-file", help="load state from here at start if present; save it here on exit")
    ap.add_argument("--verbose", action="store_true", help="access log on stderr")
    ap.add_argument("--selftest-sigv4", metavar="DIR",
                    help="check the SigV4 verifier against the vectors in DIR (shared/testdata/sigv4) and exit")
    args = ap.parse_args(argv)
    if args.selftest_sigv4:
        return selftest_sigv4(args.selftest_sigv4)

    fake = FakeAws(region=args.region, verbose=args.verbose)
    if args.state_file and os.path.exists(args.state_file) and os.path.getsize(args.state_file) > 0:
        with open(args.state_file) as f:
            fake.import_state(json.load(f))

    server = Server(("127.0.0.1", args.port), fake)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1", host

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    if args.port_file:
        _write_atomic(args.port_file, "%d\n" % port)
    sys.stderr.write("aws_fake: listening on http://127.0.0.1:%d (region %s)\n" % (port, fake.config["region"]))
    sys.stderr.flush()

    while not stop.wait(0.5):
        pass

    fake.shutdown_event.set()
    server.shutdown()
    server.server_close()
    if args.state_file:
        _write_atomic(args.state_file, json.dumps(fake.export_state(), indent=1, sort_keys=True))
    if args.port_file:
        try:
            os.unlink(args.port_file)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
