#!/usr/bin/env python3
"""A fake HashiCorp Vault / OpenBao HTTP server for rekey's integration tests.

It follows shared/docs/provider-contracts.md, section 1 (and sections 4-6): the
success envelope, the `{"errors":[...]}` bodies, the two shapes of a KV v2 404,
the exact CAS text, transit rotate 200/204, quota 429s with and without
headers, health status codes, token TTLs, AppRole and Kubernetes login.

Python 3 standard library only (CI has Debian's python3 and nothing from pip).

    python3 tests/fakes/vault_fake.py --port 0 --port-file PATH [--root-token root]
                                      [--state-file PATH] [--flavor intersection]

It binds 127.0.0.1 only.  With --port 0 the kernel picks a free port; the port
number is written to --port-file (atomically) once the socket is listening,
and the file is removed again on a clean exit.  SIGTERM/SIGINT stop it
promptly, even while connections are being held open by a "hang" injection.

Test control lives under /__fake/ (no auth, never logged, never throttled or
injected): see tests/fakes/README.md for the exact JSON shapes.
"""

import argparse
import base64
import copy
import json
import os
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# Vault's listener default (DefaultMaxRequestSize in internal/http/handler.go).
DEFAULT_MAX_REQUEST_SIZE = 32 * 1024 * 1024
# Bounds that keep the fake itself from becoming the thing that misbehaves.
MAX_LOG_ENTRIES = 10000
MAX_LOGGED_BODY = 1024 * 1024
MAX_INJECT_MS = 3600 * 1000
MAX_BIG_BYTES = 1024 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT = 120
# Vault's system max lease TTL default (768h) caps every token.
SYSTEM_MAX_TTL = 768 * 3600
DEFAULT_KV_MAX_VERSIONS = 10
# What a token configured without an explicit capability map may do.
UNRESTRICTED_CAPS = ["create", "delete", "list", "patch", "read", "update"]
# Paths a rate-limit quota never applies to (Vault's default exempt list).
QUOTA_EXEMPT = ("sys/health", "sys/seal-status", "sys/unseal", "sys/generate-recovery-token/attempt")

FLAVORS = ("intersection", "vault", "openbao")
FORBIDDEN_STYLES = ("auto", "classic", "multierror", "vault117")
DEFAULT_VERSION = {"intersection": "1.20.0", "vault": "1.20.0", "openbao": "2.3.1"}

SYMMETRIC_TYPES = ("aes128-gcm96", "aes256-gcm96", "chacha20-poly1305", "xchacha20-poly1305")
ASYMMETRIC_TYPES = ("ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "rsa-3072", "rsa-4096")
TRANSIT_TYPES = SYMMETRIC_TYPES + ASYMMETRIC_TYPES + ("hmac",)


# --------------------------------------------------------------------------
# Encoding helpers: make the bytes look like Go's encoding/json output.
# --------------------------------------------------------------------------

class GoStruct(dict):
    """A dict encoded in insertion order, like a Go struct.  Plain dicts are
    Go maps, which encoding/json writes with sorted keys."""


def _go_order(v):
    if isinstance(v, GoStruct):
        return {k: _go_order(x) for k, x in v.items()}
    if isinstance(v, dict):
        return {k: _go_order(v[k]) for k in sorted(v)}
    if isinstance(v, (list, tuple)):
        return [_go_order(x) for x in v]
    return v


def go_json(v, newline=True):
    """json.Encoder.Encode: compact, HTML-escaped, trailing newline."""
    s = json.dumps(_go_order(v), ensure_ascii=False, separators=(",", ":"))
    s = (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
         .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return (s + ("\n" if newline else "")).encode("utf-8", "surrogatepass")


def go_quote(s):
    """Go's %q for the plain strings that appear in error texts."""
    return json.dumps(s, ensure_ascii=False)


def multierror(*errs):
    """hashicorp/go-multierror's Error() text."""
    if len(errs) == 1:
        head = "1 error occurred:"
    else:
        head = "%d errors occurred:" % len(errs)
    return head + "".join("\n\t* " + e for e in errs) + "\n\n"


def rfc3339nano(ns):
    """Go time.RFC3339Nano in UTC (trailing zeros trimmed), "" when unset."""
    if ns is None:
        return ""
    secs, frac = divmod(int(ns), 1_000_000_000)
    out = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        out += "." + ("%09d" % frac).rstrip("0")
    return out + "Z"


def go_duration(seconds):
    """time.Duration.String() for whole seconds."""
    seconds = int(seconds)
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return "%s%dh%dm%ds" % (sign, h, m, s)
    if m:
        return "%s%dm%ds" % (sign, m, s)
    return "%s%ds" % (sign, s)


def human_duration(seconds):
    """framework.humanDuration: Go duration minus the zero minutes/seconds."""
    s = go_duration(seconds)
    if s.endswith("m0s"):
        s = s[:-2]
    idx = s.find("h0m")
    if idx > 0:
        s = s[:idx + 1] + s[idx + 3:]
    return s


_DUR_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h|d)")
_DUR_UNIT = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
             "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(v):
    """parseutil.ParseDurationSecond: int seconds, "3600", or "1h30m"."""
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        raise ValueError("invalid duration %r" % (v,))
    if isinstance(v, (int, float)):
        return int(v)
    s = str(v).strip()
    if re.fullmatch(r"[-+]?\d+", s):
        return int(s)
    neg = s.startswith("-")
    if s[:1] in "+-":
        s = s[1:]
    pos, total = 0, 0.0
    for m in _DUR_PART.finditer(s):
        if m.start() != pos:
            raise ValueError("invalid duration %r" % (v,))
        total += float(m.group(1)) * _DUR_UNIT[m.group(2)]
        pos = m.end()
    if pos == 0 or pos != len(s):
        raise ValueError("invalid duration %r" % (v,))
    return int(-total if neg else total)


def go_parse_bool(v):
    """strconv.ParseBool (plus real JSON booleans)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    s = str(v)
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError("invalid syntax")


def weak_int(v):
    """mapstructure.WeakDecode into an int."""
    if v is None:
        return 0
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v)
    if isinstance(v, str):
        if v == "":
            return 0
        return int(v, 0) if re.fullmatch(r"[-+]?(0[xX][0-9a-fA-F]+|\d+)", v) else int(float(v))
    raise ValueError("cannot convert %r to int" % (v,))


def weak_string(v):
    """mapstructure.WeakDecode into a string (for custom_metadata values)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    raise ValueError("'' expected type 'string', got unconvertible type '%s'" % (
        "map[string]interface {}" if isinstance(v, dict) else "[]interface {}"))


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (what framework.HandlePatchOperation applies)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def printable(s):
    return all(c.isprintable() for c in s)


def now_ns():
    return time.time_ns()


def new_uuid():
    return str(uuid.uuid4())


# --------------------------------------------------------------------------
# Replies and errors
# --------------------------------------------------------------------------

class ApiError(Exception):
    """Raised by handlers: becomes `{"errors":[...]}` with the given status."""

    def __init__(self, status, *errors, headers=None):
        super().__init__(status, errors)
        self.status = status
        self.errors = list(errors)
        self.headers = headers or {}


class BodyTooLarge(Exception):
    pass


class Reply:
    """What the HTTP layer sends.  `env` is an envelope still open for
    warnings; it is encoded by finalize()."""

    def __init__(self, status, body=None, content_type="application/json", headers=None, env=None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.env = env

    def finalize(self):
        if self.env is not None and self.body is None:
            self.body = go_json(self.env)
        return self


def error_reply(status, *errors, headers=None):
    return Reply(status, go_json(GoStruct(errors=list(errors))), headers=headers)


# --------------------------------------------------------------------------
# ACL pattern matching (Vault policy globs: trailing "*" and "+" segments)
# --------------------------------------------------------------------------

def _pattern_regex(pattern):
    out = []
    for i, ch in enumerate(pattern):
        if ch == "*" and i == len(pattern) - 1:
            out.append(".*")
        elif ch == "+":
            out.append("[^/]+")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def match_capabilities(cap_map, path):
    """Exact path first, then the most specific glob (longest literal prefix,
    fewest "+"): close to Vault's priority rules, good enough for tests."""
    if path in cap_map:
        return list(cap_map[path])
    best, best_key = None, None
    for pattern, caps in cap_map.items():
        if "*" not in pattern and "+" not in pattern:
            continue
        if not _pattern_regex(pattern).fullmatch(path):
            continue
        literal = re.split(r"[*+]", pattern, 1)[0]
        key = (len(literal), -pattern.count("+"), len(pattern))
        if best_key is None or key > best_key:
            best, best_key = caps, key
    return list(best) if best is not None else None


# --------------------------------------------------------------------------
# The fake server's state and logic
# --------------------------------------------------------------------------

CONFIG_DEFAULTS = {
    "flavor": "intersection",          # intersection | vault | openbao
    "mount_type": None,                # None: follow flavor (vault → on)
    "forbidden_style": "auto",         # auto | classic | multierror | vault117
    "transit_write_status": 200,       # 200 (Vault ≥1.14, OpenBao) or 204 (old Vault)
    "version": None,                   # sys/health "version"; None: by flavor
    "initialized": True,
    "sealed": False,
    "standby": False,
    "performance_standby": False,      # Vault Enterprise (473)
    "dr_secondary": False,             # Vault Enterprise (472)
    "ha_unhealthy": False,             # recent Vault (474)
    "removed": False,                  # recent Vault (530)
    "max_request_size": DEFAULT_MAX_REQUEST_SIZE,
    "ui_mounts_endpoint": True,        # False: sys/internal/ui/mounts → 404 (very old server)
    "cluster_name": "vault-cluster-f4ke0001",
    "cluster_id": "5f3c2a1e-0000-4000-8000-00000000fa4e",
}

TOKEN_SPEC_KEYS = {"token", "ttl", "max_ttl", "renewable", "policies", "capabilities",
                   "display_name", "meta", "num_uses"}
APPROLE_SPEC_KEYS = {"role_name", "role_id", "secret_id", "secret_ids", "bind_secret_id",
                     "policies", "token_policies", "token_ttl", "token_max_ttl", "renewable",
                     "capabilities", "mount"}
K8S_SPEC_KEYS = {"role", "jwt", "jwts", "policies", "token_policies", "ttl", "token_ttl",
                 "max_ttl", "token_max_ttl", "renewable", "service_account_name",
                 "service_account_namespace", "service_account_uid", "capabilities", "mount"}
MOUNT_SPEC_KEYS = {"path", "type", "namespace", "version", "max_versions", "cas_required",
                   "delete_version_after"}


class FakeVault:
    def __init__(self, root_token="root", flavor="intersection", verbose=False):
        self.lock = threading.RLock()
        self.shutdown_event = threading.Event()
        self.root_token = root_token
        self.start_flavor = flavor
        self.verbose = verbose
        self.reset_all()

    # ---------------------------------------------------------------- state

    def reset_all(self):
        with self.lock:
            self.config = dict(CONFIG_DEFAULTS)
            self.config["flavor"] = self.start_flavor
            self.namespaces = {}
            self.ensure_namespace("")
            self.tokens = {}
            self.auth_mounts = {"approle": {"type": "approle", "accessor": self._accessor("auth_approle"), "roles": {}},
                                "kubernetes": {"type": "kubernetes", "accessor": self._accessor("auth_kubernetes"), "roles": {}}}
            self.injections = []
            self.next_injection_id = 1
            self.quotas = {}
            self.quota_headers_enabled = False
            self.log = []
            self.log_seq = 0
            self.log_dropped = 0
            t = now_ns()
            self.tokens[self.root_token] = {
                "id": self.root_token, "accessor": new_uuid(), "policies": ["root"],
                "capabilities": None, "path": "auth/token/root", "meta": None,
                "display_name": "root", "creation_time": t, "creation_ttl": 0, "ttl": 0,
                "expire_time": None, "issue_time": t, "renewable": False, "max_ttl": 0,
                "orphan": True, "type": "service", "entity_id": "", "num_uses": 0,
                "last_renewal_time": None,
            }

    @staticmethod
    def _accessor(prefix):
        return "%s_%s" % (prefix, secrets.token_hex(4))

    def ensure_namespace(self, ns):
        if ns not in self.namespaces:
            self.namespaces[ns] = {"mounts": {
                "secret": self._new_mount("kv"),
                "transit": self._new_mount("transit"),
            }}
        return self.namespaces[ns]

    def _new_mount(self, mtype):
        if mtype == "kv":
            return {"type": "kv", "options": {"version": "2"}, "accessor": self._accessor("kv"),
                    "uuid": new_uuid(),
                    "config": {"max_versions": 0, "cas_required": False, "delete_version_after": 0,
                               "metadata_cas_required": False},
                    "keys": {}}
        if mtype == "transit":
            return {"type": "transit", "options": None, "accessor": self._accessor("transit"),
                    "uuid": new_uuid(), "keys": {}}
        raise ValueError("unsupported mount type %r (kv or transit)" % mtype)

    def export_state(self):
        with self.lock:
            return copy.deepcopy({
                "config": self.config,
                "namespaces": self.namespaces,
                "tokens": self.tokens,
                "auth_mounts": self.auth_mounts,
                "injections": self.injections,
                "quotas": {n: self._quota_view(q) for n, q in self.quotas.items()},
                "quota_headers_enabled": self.quota_headers_enabled,
                "request_log_size": len(self.log),
                "now_ns": now_ns(),
            })

    def import_state(self, st):
        with self.lock:
            root = self.tokens.get(self.root_token)
            for key in ("config", "namespaces", "tokens", "auth_mounts"):
                if key in st:
                    setattr(self, key, copy.deepcopy(st[key]))
            self.ensure_namespace("")
            # --root-token always works, whatever the saved state says.
            self.tokens.setdefault(self.root_token, root)

    # ---------------------------------------------------------- flavor bits

    @property
    def flavor(self):
        return self.config["flavor"]

    def mount_type_on(self):
        if self.config["mount_type"] is not None:
            return bool(self.config["mount_type"])
        return self.flavor == "vault"

    def bad_token_text(self):
        style = self.config["forbidden_style"]
        if style == "classic":
            return "permission denied"
        if style == "multierror":
            return multierror("permission denied")
        if style == "vault117" or (style == "auto" and self.flavor == "vault"):
            return multierror("permission denied", "invalid token")
        return "permission denied"

    def acl_denied_text(self):
        # Section 1.0: an ACL denial is always the multierror form.
        if self.config["forbidden_style"] == "classic":
            return "permission denied"
        return multierror("permission denied")

    def json_error_prefix(self):
        return "failed to parse JSON input: " if self.flavor == "vault" else "failed to decode JSON input: "

    def envelope(self, data, warnings=None, auth=None, mount_type=""):
        env = GoStruct()
        env["request_id"] = new_uuid()
        env["lease_id"] = ""
        env["renewable"] = False
        env["lease_duration"] = 0
        env["data"] = data
        env["wrap_info"] = None
        env["warnings"] = list(warnings) if warnings else None
        env["auth"] = auth
        if self.mount_type_on():
            env["mount_type"] = mount_type
        return env

    def ok(self, data, warnings=None, auth=None, mount_type=""):
        return Reply(200, env=self.envelope(data, warnings, auth, mount_type))

    # --------------------------------------------------------------- tokens

    def new_token_id(self):
        body = secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")
        return ("hvs." if self.flavor == "vault" else "s.") + body

    def issue_token(self, policies, ttl, max_ttl=0, renewable=True, path="auth/token/create",
                    meta=None, display_name="token", capabilities=None, token_id=None, num_uses=0):
        t = now_ns()
        pols = sorted(set(policies or []) | ({"default"} if "root" not in (policies or []) else set()))
        tok = {
            "id": token_id or self.new_token_id(), "accessor": new_uuid(), "policies": pols,
            "capabilities": copy.deepcopy(capabilities), "path": path, "meta": meta,
            "display_name": display_name, "creation_time": t, "creation_ttl": int(ttl),
            "ttl": int(ttl), "expire_time": (t + int(ttl) * 1_000_000_000) if ttl else None,
            "issue_time": t, "renewable": bool(renewable) and bool(ttl), "max_ttl": int(max_ttl or 0),
            "orphan": True, "type": "service", "entity_id": new_uuid() if path.endswith("/login") else "",
            "num_uses": int(num_uses or 0), "last_renewal_time": None,
        }
        self.tokens[tok["id"]] = tok
        return tok

    def token_valid(self, tok):
        return tok is not None and (tok["expire_time"] is None or now_ns() < tok["expire_time"])

    def token_from_headers(self, headers):
        raw = headers.get("X-Vault-Token")
        if not raw:
            authz = headers.get("Authorization", "")
            if authz[:7].lower() == "bearer ":
                raw = authz[7:].strip()
        return raw or None

    def auth_envelope(self, tok, lease_duration=None):
        a = GoStruct()
        a["client_token"] = tok["id"]
        a["accessor"] = tok["accessor"]
        a["policies"] = list(tok["policies"])
        a["token_policies"] = list(tok["policies"])
        a["metadata"] = tok["meta"]
        if lease_duration is None:
            lease_duration = self.token_ttl_left(tok)
        a["lease_duration"] = lease_duration
        a["renewable"] = tok["renewable"]
        a["entity_id"] = tok["entity_id"]
        a["token_type"] = tok["type"]
        a["orphan"] = tok["orphan"]
        a["mfa_requirement"] = None
        a["num_uses"] = tok["num_uses"]
        return a

    @staticmethod
    def token_ttl_left(tok):
        if tok["expire_time"] is None:
            return 0
        return max(0, int((tok["expire_time"] - now_ns()) // 1_000_000_000))

    def capabilities_for(self, tok, path):
        if "root" in tok["policies"]:
            return ["root"]
        if tok["capabilities"] is None:
            return list(UNRESTRICTED_CAPS)
        caps = match_capabilities(tok["capabilities"], path)
        if not caps or "deny" in caps:
            return ["deny"]
        return sorted(set(caps))

    def require(self, tok, path, cap):
        caps = self.capabilities_for(tok, path)
        if "root" in caps or cap in caps:
            return
        raise ApiError(403, self.acl_denied_text())

    # ----------------------------------------------------------- admin: cfg

    def apply_config(self, body):
        """POST /__fake/config.  Returns what was created (generated ids)."""
        created = {"tokens": [], "approle_roles": [], "kubernetes_roles": [], "mounts": []}
        unknown = set(body) - set(CONFIG_DEFAULTS) - {"tokens", "approle_roles", "kubernetes_roles",
                                                      "mounts", "namespaces"}
        if unknown:
            raise ValueError("unknown config keys: %s" % ", ".join(sorted(unknown)))
        with self.lock:
            new_cfg = dict(self.config)
            for k in CONFIG_DEFAULTS:
                if k in body:
                    new_cfg[k] = body[k]
            if new_cfg["flavor"] not in FLAVORS:
                raise ValueError("flavor must be one of %s" % (FLAVORS,))
            if new_cfg["forbidden_style"] not in FORBIDDEN_STYLES:
                raise ValueError("forbidden_style must be one of %s" % (FORBIDDEN_STYLES,))
            if new_cfg["transit_write_status"] not in (200, 204):
                raise ValueError("transit_write_status must be 200 or 204")
            if not isinstance(new_cfg["max_request_size"], int) or new_cfg["max_request_size"] <= 0:
                raise ValueError("max_request_size must be a positive integer")
            for ns in body.get("namespaces", []):
                self.ensure_namespace(str(ns).strip("/"))
            for spec in body.get("mounts", []):
                created["mounts"].append(self._config_mount(spec))
            for spec in body.get("tokens", []):
                created["tokens"].append(self._config_token(spec))
            for spec in body.get("approle_roles", []):
                created["approle_roles"].append(self._config_approle(spec))
            for spec in body.get("kubernetes_roles", []):
                created["kubernetes_roles"].append(self._config_k8s(spec))
            self.config = new_cfg
            return {"config": copy.deepcopy(self.config), "created": created}

    @staticmethod
    def _check_keys(spec, allowed, what):
        if not isinstance(spec, dict):
            raise ValueError("%s entries must be objects" % what)
        extra = set(spec) - allowed
        if extra:
            raise ValueError("unknown %s keys: %s" % (what, ", ".join(sorted(extra))))

    def _config_mount(self, spec):
        self._check_keys(spec, MOUNT_SPEC_KEYS, "mount")
        path = str(spec.get("path", "")).strip("/")
        if not path:
            raise ValueError("mount needs a path")
        mtype = spec.get("type", "kv")
        if mtype == "kv" and str(spec.get("version", "2")) != "2":
            raise ValueError("only KV version 2 mounts are supported")
        ns = self.ensure_namespace(str(spec.get("namespace", "")).strip("/"))
        m = ns["mounts"].get(path)
        if m is None or m["type"] != mtype:
            m = ns["mounts"][path] = self._new_mount(mtype)
        if mtype == "kv":
            for k in ("max_versions", "cas_required", "delete_version_after"):
                if k in spec:
                    v = spec[k]
                    m["config"][k] = (parse_duration(v) if k == "delete_version_after"
                                      else go_parse_bool(v) if k == "cas_required" else int(v))
        return {"path": path + "/", "type": mtype}

    def _config_token(self, spec):
        self._check_keys(spec, TOKEN_SPEC_KEYS, "token")
        ttl = parse_duration(spec.get("ttl", 0))
        tok = self.issue_token(
            policies=spec.get("policies", ["default"]), ttl=ttl,
            max_ttl=parse_duration(spec.get("max_ttl", 0)),
            renewable=spec.get("renewable", True), path="auth/token/create",
            meta=spec.get("meta"), display_name=spec.get("display_name", "token"),
            capabilities=spec.get("capabilities"), token_id=spec.get("token"),
            num_uses=spec.get("num_uses", 0))
        return {"token": tok["id"], "accessor": tok["accessor"], "ttl": ttl}

    def _auth_mount(self, name, mtype):
        name = str(name).strip("/")
        m = self.auth_mounts.get(name)
        if m is None:
            m = self.auth_mounts[name] = {"type": mtype, "accessor": self._accessor("auth_" + mtype), "roles": {}}
        if m["type"] != mtype:
            raise ValueError("auth mount %r is of type %s" % (name, m["type"]))
        return m

    def _config_approle(self, spec):
        self._check_keys(spec, APPROLE_SPEC_KEYS, "approle role")
        name = spec.get("role_name") or "rekey"
        mount = self._auth_mount(spec.get("mount", "approle"), "approle")
        secret_ids = list(spec.get("secret_ids", []))
        if spec.get("secret_id"):
            secret_ids.append(spec["secret_id"])
        bind = spec.get("bind_secret_id", True)
        if bind and not secret_ids:
            secret_ids.append(new_uuid())
        role = {
            "role_name": name, "role_id": spec.get("role_id") or new_uuid(),
            "secret_ids": secret_ids, "bind_secret_id": bool(bind),
            "policies": list(spec.get("token_policies", spec.get("policies", ["default"]))),
            "token_ttl": parse_duration(spec.get("token_ttl", 3600)),
            "token_max_ttl": parse_duration(spec.get("token_max_ttl", 0)),
            "renewable": bool(spec.get("renewable", True)),
            "capabilities": spec.get("capabilities"),
        }
        mount["roles"][name] = role
        return {"role_name": name, "role_id": role["role_id"], "secret_ids": list(secret_ids)}

    def _config_k8s(self, spec):
        self._check_keys(spec, K8S_SPEC_KEYS, "kubernetes role")
        name = spec.get("role") or "rekey"
        mount = self._auth_mount(spec.get("mount", "kubernetes"), "kubernetes")
        jwts = list(spec.get("jwts", []))
        if spec.get("jwt"):
            jwts.append(spec["jwt"])
        role = {
            "role": name, "jwts": jwts,
            "policies": list(spec.get("token_policies", spec.get("policies", ["default"]))),
            "token_ttl": parse_duration(spec.get("token_ttl", spec.get("ttl", 3600))),
            "token_max_ttl": parse_duration(spec.get("token_max_ttl", spec.get("max_ttl", 0))),
            "renewable": bool(spec.get("renewable", True)),
            "service_account_name": spec.get("service_account_name", name),
            "service_account_namespace": spec.get("service_account_namespace", name),
            "service_account_uid": spec.get("service_account_uid", new_uuid()),
            "capabilities": spec.get("capabilities"),
        }
        mount["roles"][name] = role
        return {"role": name, "jwts": list(jwts)}

    # -------------------------------------------------------- admin: inject

    def add_injection(self, rule):
        if not isinstance(rule, dict):
            raise ValueError("rule must be an object")
        action = rule.get("action", "status")
        if action not in ("status", "latency", "hang", "reset", "reset_after_apply", "close",
                          "html", "truncated", "big", "status_after_apply", "write_before"):
            raise ValueError("unknown action %r" % action)
        regex = rule.get("path_regex", ".*")
        re.compile(regex)
        method = rule.get("method", "*")
        methods = method if isinstance(method, list) else str(method).split("|")
        methods = {m.strip().upper() for m in methods if m.strip()}
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
        kv = rule.get("kv")
        if action == "write_before":
            if not isinstance(kv, dict) or not isinstance(kv.get("data"), dict) or not kv.get("path"):
                raise ValueError("write_before needs kv: {mount, path, data}")
        count = int(rule.get("count", 1))
        if count == 0 or count < -1:
            raise ValueError("count must be positive, or -1 for unlimited")
        with self.lock:
            r = {"id": self.next_injection_id, "path_regex": regex, "method": sorted(methods),
                 "action": action, "status": rule.get("status"), "body": rule.get("body"),
                 "headers": dict(rule.get("headers") or {}), "count": count,
                 "skip": int(rule.get("skip", 0)), "ms": ms, "bytes": nbytes, "matched": 0,
                 "kv": copy.deepcopy(kv)}
            self.next_injection_id += 1
            self.injections.append(r)
            return copy.deepcopy(r)

    def take_injection(self, method, path):
        """The first active rule matching this request, consuming one use."""
        with self.lock:
            for r in list(self.injections):
                if "*" not in r["method"] and method.upper() not in r["method"]:
                    continue
                if not re.search(r["path_regex"], path):
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

    # --------------------------------------------------------------- quotas
    #
    # Two ways in, one mechanism: the admin API (/__fake/quota, name
    # "__fake") and Vault's own sys/quotas/rate-limit/<name> +
    # sys/quotas/config, so a test can set a quota up exactly as on a real
    # server.  A window counter stands in for go-limiter's token bucket.

    ADMIN_QUOTA = "__fake"

    def set_quota(self, body):
        """POST /__fake/quota: {"rps": N} | {"max_requests": N, "retry_after": S,
        "interval": S, "path": "secret/", "headers": bool}; {} clears it."""
        with self.lock:
            if not body or (body.get("rps") is None and body.get("max_requests") is None):
                self.quotas.pop(self.ADMIN_QUOTA, None)
                return None
            extra = set(body) - {"rps", "max_requests", "retry_after", "interval", "path", "headers", "block_interval"}
            if extra:
                raise ValueError("unknown quota keys: %s" % ", ".join(sorted(extra)))
            if body.get("rps") is not None:
                rate, interval = int(body["rps"]), 1.0
                if rate <= 0:
                    raise ValueError("rps must be positive")
            else:
                rate = int(body["max_requests"])
                if rate < 0:
                    raise ValueError("max_requests must be >= 0")
                interval = float(body["interval"]) if body.get("interval") else None
            retry_after = body.get("retry_after")
            # Real Vault sends the headers only with enable_rate_limit_response_headers;
            # a test that names retry_after obviously wants them.
            headers = bool(body.get("headers", retry_after is not None))
            q = self._new_quota(rate, interval, str(body.get("path", "")),
                                parse_duration(body.get("block_interval", 0)), headers,
                                None if retry_after is None else int(retry_after))
            self.quotas[self.ADMIN_QUOTA] = q
            return self._quota_view(q)

    @staticmethod
    def _new_quota(rate, interval, path, block_interval, headers, retry_after):
        return {"rate": rate, "interval": interval, "path": path, "block_interval": block_interval,
                "headers": headers, "retry_after": retry_after, "window_start": time.monotonic(),
                "count": 0, "blocked_until": None, "rejected": 0}

    @staticmethod
    def _quota_view(q):
        return {k: v for k, v in q.items() if k not in ("window_start", "blocked_until")}

    def quotas_view(self):
        with self.lock:
            return {name: self._quota_view(q) for name, q in self.quotas.items()}

    def check_quota(self, lpath):
        """(reply, headers): reply is the 429 when a quota rejects the request
        (body per internal/http/util.go); headers are the X-Ratelimit-* that
        Vault adds to every answer while response headers are enabled."""
        with self.lock:
            if lpath in QUOTA_EXEMPT:
                return None, {}
            now = time.monotonic()
            out_headers = {}
            for q in self.quotas.values():
                if not lpath.startswith(q["path"]):
                    continue
                send_headers = q["headers"] if q["headers"] is not None else self.quota_headers_enabled
                interval = q["interval"]
                if interval is not None and now - q["window_start"] >= interval:
                    q["window_start"], q["count"] = now, 0
                reset = int(max(0.0, q["window_start"] + interval - now)) if interval is not None else 0
                blocked = q["blocked_until"] is not None and now < q["blocked_until"]
                if not blocked:
                    q["count"] += 1
                allowed = not blocked and q["count"] <= q["rate"]
                if send_headers:
                    out_headers.update({"X-Ratelimit-Limit": str(q["rate"]),
                                        "X-Ratelimit-Remaining": str(max(0, q["rate"] - q["count"])),
                                        "X-Ratelimit-Reset": str(reset)})
                if allowed:
                    continue
                q["rejected"] += 1
                if not blocked and q["block_interval"]:
                    q["blocked_until"] = now + q["block_interval"]
                if q["retry_after"] is not None:
                    retry = q["retry_after"]
                elif q["blocked_until"] is not None and now < q["blocked_until"]:
                    retry = int(q["blocked_until"] - now)
                else:
                    retry = reset
                if send_headers:
                    out_headers["Retry-After"] = str(retry)
                    out_headers["X-Ratelimit-Remaining"] = "0"
                return error_reply(429, "request path %s: rate limit quota exceeded" % go_quote(lpath),
                                   headers=out_headers), {}
            return None, out_headers

    def sys_quotas(self, ctx, op, lpath):
        """sys/quotas/config and sys/quotas/rate-limit/<name> (root/sudo only)."""
        tok = ctx.token_entry
        if lpath == "sys/quotas/config":
            if op == "read":
                self.require(tok, lpath, "read")
                return self.ok({"enable_rate_limit_audit_logging": False,
                                "enable_rate_limit_response_headers": self.quota_headers_enabled,
                                "rate_limit_exempt_paths": list(QUOTA_EXEMPT)}, mount_type="system")
            if op != "update":
                raise ApiError(405, multierror("unsupported operation"))
            self.require(tok, lpath, "update")
            if "enable_rate_limit_response_headers" in ctx.data:
                try:
                    self.quota_headers_enabled = go_parse_bool(ctx.data["enable_rate_limit_response_headers"])
                except ValueError as e:
                    return error_reply(400, "Field validation failed: %s" % e)
            return Reply(204)
        if lpath in ("sys/quotas/rate-limit", "sys/quotas/rate-limit/"):
            if op != "list":
                raise ApiError(405, multierror("unsupported operation"))
            self.require(tok, "sys/quotas/rate-limit/", "list")
            names = sorted(n for n in self.quotas if n != self.ADMIN_QUOTA)
            if not names:
                raise ApiError(404)
            return self.ok({"keys": names}, mount_type="system")
        name = lpath[len("sys/quotas/rate-limit/"):]
        if not re.fullmatch(r"\w(([\w-]+)?\w)?", name):
            raise ApiError(404, multierror("unsupported path"))
        cap = {"read": "read", "update": "update", "delete": "delete"}.get(op)
        if cap is None:
            raise ApiError(405, multierror("unsupported operation"))
        self.require(tok, lpath, cap)
        if op == "delete":
            self.quotas.pop(name, None)
            return Reply(204)
        if op == "read":
            q = self.quotas.get(name)
            if q is None:
                raise ApiError(404)
            return self.ok({"name": name, "type": "rate-limit", "path": q["path"], "rate": float(q["rate"]),
                            "interval": int(q["interval"] or 0), "block_interval": q["block_interval"]},
                           mount_type="system")
        d = ctx.data
        try:
            rate = float(d.get("rate", 0))
            interval = parse_duration(d.get("interval", 1)) or 1
            block = parse_duration(d.get("block_interval", 0))
        except (ValueError, TypeError) as e:
            return error_reply(400, "Field validation failed: %s" % e)
        if rate <= 0:
            return error_reply(400, "'rate' is invalid")
        self.quotas[name] = self._new_quota(int(rate), float(interval), str(d.get("path", "")).lstrip("/"),
                                            block, None, None)
        return Reply(204)

    # ----------------------------------------------------------- admin: log

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

    # ------------------------------------------------------- /__fake/kv seed

    def seed_kv(self, body):
        with self.lock:
            ns = self.ensure_namespace(str(body.get("namespace", "")).strip("/"))
            mount = ns["mounts"].get(str(body.get("mount", "secret")).strip("/"))
            if mount is None or mount["type"] != "kv":
                raise ValueError("no KV mount %r" % body.get("mount", "secret"))
            path = str(body.get("path", "")).strip("/")
            if not path:
                raise ValueError("path is required")
            out = {}
            if "data" in body:
                if not isinstance(body["data"], dict):
                    raise ValueError("data must be an object")
                if "cas" in body and body["cas"] is not None:
                    m = mount["keys"].get(path)
                    if int(body["cas"]) != (m["current_version"] if m else 0):
                        raise ValueError("check-and-set parameter did not match the current version")
                vm, version = self.kv_add_version(mount, path, body["data"])
                out["version"] = version
                out["created_time"] = rfc3339nano(vm["created_time"])
            if "custom_metadata" in body:
                m = mount["keys"].get(path) or self.kv_new_meta(mount, path)
                cm = body["custom_metadata"]
                m["custom_metadata"] = None if cm is None else {k: weak_string(v) for k, v in cm.items()}
                m["updated_time"] = now_ns()
            if not out and "custom_metadata" not in body:
                raise ValueError("give data and/or custom_metadata")
            return out

    def write_before(self, kv):
        """Another writer: a new version of kv's entry with kv["data"] merged
        into the latest version's data (the other keys kept)."""
        with self.lock:
            ns = self.ensure_namespace(str(kv.get("namespace", "")).strip("/"))
            mount = ns["mounts"].get(str(kv.get("mount", "secret")).strip("/"))
            if mount is None or mount["type"] != "kv":
                return
            path = str(kv["path"]).strip("/")
            m = mount["keys"].get(path)
            data = {}
            if m is not None:
                vm = m["versions"].get(str(m["current_version"]))
                if vm is not None and vm["data"] is not None:
                    data = copy.deepcopy(vm["data"])
            data.update(kv["data"])
            self.kv_add_version(mount, path, data)

    # ====================================================================
    # The /v1/ API
    # ====================================================================

    def process(self, ctx):
        """Handle one /v1/ request (after injections and quotas).  All state
        changes happen under the lock, so concurrent writers are serialised
        like Vault's per-key locks would."""
        try:
            with self.lock:
                reply = self._process(ctx)
        except ApiError as e:
            reply = error_reply(e.status, *e.errors, headers=e.headers)
        if reply.env is not None and ctx.ignored:
            warnings = reply.env.get("warnings") or []
            warnings.append("Endpoint ignored these unrecognized parameters: [%s]" % " ".join(sorted(ctx.ignored)))
            reply.env["warnings"] = warnings
        return reply.finalize()

    def _process(self, ctx):
        lpath = ctx.lpath
        if lpath == "sys/health":
            return self.sys_health(ctx)
        if lpath == "sys/seal-status":
            return self.sys_seal_status(ctx)
        if self.config["sealed"] or not self.config["initialized"]:
            raise ApiError(503, "Vault is sealed")

        op = self.parse_operation(ctx)
        lpath = ctx.lpath  # LIST and ?list=true add a trailing "/"

        # Path-style namespaces: /v1/team-a/secret/... for namespaces we know.
        for ns_name in sorted(self.namespaces, key=len, reverse=True):
            if ns_name and lpath.startswith(ns_name + "/"):
                ctx.ns = (ctx.ns + "/" + ns_name).strip("/")
                lpath = ctx.lpath = lpath[len(ns_name) + 1:]
                break
        ns = self.ensure_namespace(ctx.ns)

        # Login endpoints need no token.
        m = re.fullmatch(r"auth/(.+)/login", lpath)
        if m and m.group(1) in self.auth_mounts and m.group(1) != "token":
            amount = self.auth_mounts[m.group(1)]
            if op != "update":
                raise ApiError(405, multierror("unsupported operation"))
            if amount["type"] == "approle":
                return self.approle_login(ctx, m.group(1), amount)
            return self.kubernetes_login(ctx, m.group(1), amount)

        if lpath.startswith("sys/internal/ui/mounts/"):
            return self.ui_mount(ctx, ns, lpath[len("sys/internal/ui/mounts/"):])

        tok = self.tokens.get(ctx.token) if ctx.token else None
        if not self.token_valid(tok):
            raise ApiError(403, self.bad_token_text())
        ctx.token_entry = tok

        if lpath == "auth/token/lookup-self":
            if op != "read":
                raise ApiError(405, multierror("unsupported operation"))
            ctx.known = set()
            return self.token_lookup_self(tok)
        if lpath == "auth/token/renew-self":
            if op != "update":
                raise ApiError(405, multierror("unsupported operation"))
            ctx.known = {"increment", "token"}
            return self.token_renew_self(ctx, tok)
        if lpath.startswith("sys/quotas/"):
            return self.sys_quotas(ctx, op, lpath)
        if lpath in ("sys/capabilities-self",):
            if op != "update":
                raise ApiError(405, multierror("unsupported operation"))
            ctx.known = {"paths", "path", "token"}
            return self.capabilities_self(ctx, tok)

        # Logical mounts: the longest mount path that prefixes the request.
        for mpath in sorted(ns["mounts"], key=len, reverse=True):
            if lpath == mpath or lpath.startswith(mpath + "/"):
                mount = ns["mounts"][mpath]
                sub = lpath[len(mpath) + 1:]
                if mount["type"] == "kv":
                    return self.kv_dispatch(ctx, op, mpath, mount, sub)
                return self.transit_dispatch(ctx, op, mpath, mount, sub)

        if lpath.startswith("sys/"):
            raise ApiError(404, multierror("unsupported path"))
        raise ApiError(404, "no handler for route %s. route entry not found." % go_quote(lpath))

    def parse_operation(self, ctx):
        """buildLogicalRequestNoAuth: method → operation, body/query → data."""
        method = ctx.method
        if method in ("GET", "HEAD"):
            q = dict(ctx.query)
            lst = q.pop("list", "")
            try:
                is_list = go_parse_bool(lst) if lst != "" else False
            except ValueError:
                raise ApiError(400)
            ctx.data = q
            if is_list:
                if not ctx.lpath.endswith("/"):
                    ctx.lpath += "/"
                return "list"
            return "read"
        if method == "LIST":
            ctx.data = dict(ctx.query)
            if not ctx.lpath.endswith("/"):
                ctx.lpath += "/"
            return "list"
        if method == "DELETE":
            ctx.data = dict(ctx.query)
            return "delete"
        if method in ("POST", "PUT"):
            ctx.data = self.parse_json_body(ctx)
            return "update"
        if method == "PATCH":
            ctype = ctx.headers.get("Content-Type", "")
            base = ctype.split(";")[0].strip().lower()
            if not base:
                raise ApiError(400, "mime: no media type")
            if base != "application/merge-patch+json":
                raise ApiError(415, "PATCH requires Content-Type of application/merge-patch+json, provided %s" % base)
            ctx.data = self.parse_json_body(ctx)
            return "patch"
        raise ApiError(405)

    def parse_json_body(self, ctx):
        if not ctx.body.strip():
            return {}
        try:
            v = json.loads(ctx.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, self.json_error_prefix() + str(e))
        if not isinstance(v, dict):
            raise ApiError(400, self.json_error_prefix() + "json: cannot unmarshal %s into Go value of type map[string]interface {}" % type(v).__name__)
        return v

    def note_ignored(self, ctx, known):
        ctx.ignored = sorted(k for k in ctx.data if k not in known)

    # ------------------------------------------------------------ sys/*

    def sys_health(self, ctx):
        cfg = self.config
        if ctx.method not in ("GET", "HEAD"):
            raise ApiError(405)
        q = ctx.query
        vault = self.flavor == "vault"

        def code(name, default):
            if name not in q:
                return default
            try:
                return int(q[name])
            except ValueError:
                raise ApiError(400)

        def flag(name):
            if name not in q:
                return False
            try:
                return go_parse_bool(q[name])
            except ValueError:
                raise ApiError(400)

        standby_ok, perf_ok = flag("standbyok"), flag("perfstandbyok")
        active = code("activecode", 200)
        status = active
        if not cfg["initialized"]:
            status = code("uninitcode", 501)
        elif cfg["sealed"]:
            status = code("sealedcode", 503)
        elif vault and cfg["removed"]:
            status = code("removedcode", 530)
        elif vault and cfg["dr_secondary"]:
            status = code("drsecondarycode", 472)
        elif vault and cfg["ha_unhealthy"]:
            status = code("haunhealthycode", 474)
        elif vault and cfg["performance_standby"]:
            status = active if perf_ok else code("performancestandbycode", 473)
        elif cfg["standby"] or (not vault and cfg["performance_standby"]):
            status = active if standby_ok else code("standbycode", 429)
        # Parse every code parameter so a bad one is a 400 as in Vault.
        for name in ("uninitcode", "sealedcode", "standbycode", "activecode"):
            code(name, 0)

        body = GoStruct()
        body["initialized"] = cfg["initialized"]
        body["sealed"] = cfg["sealed"]
        body["standby"] = bool(cfg["standby"] or cfg["performance_standby"])
        if vault:
            body["performance_standby"] = bool(cfg["performance_standby"])
        body["replication_performance_mode"] = "disabled"
        body["replication_dr_mode"] = "secondary" if (vault and cfg["dr_secondary"]) else "disabled"
        body["server_time_utc"] = int(time.time())
        body["version"] = cfg["version"] or DEFAULT_VERSION[self.flavor]
        if vault:
            body["enterprise"] = False
        if not cfg["sealed"]:
            body["cluster_name"] = cfg["cluster_name"]
            body["cluster_id"] = cfg["cluster_id"]
        return Reply(status, go_json(body))

    def sys_seal_status(self, ctx):
        cfg = self.config
        body = GoStruct()
        body["type"] = "shamir"
        body["initialized"] = cfg["initialized"]
        body["sealed"] = cfg["sealed"]
        body["t"] = 1
        body["n"] = 1
        body["progress"] = 0
        body["nonce"] = ""
        body["version"] = cfg["version"] or DEFAULT_VERSION[self.flavor]
        body["build_date"] = "2026-01-01T00:00:00Z"
        body["migration"] = False
        if not cfg["sealed"]:
            body["cluster_name"] = cfg["cluster_name"]
            body["cluster_id"] = cfg["cluster_id"]
        body["recovery_seal"] = False
        body["storage_type"] = "inmem"
        return Reply(200, go_json(body))

    def capabilities_self(self, ctx, tok):
        raw = ctx.data.get("paths") or ctx.data.get("path") or []
        if isinstance(raw, str):
            raw = [p.strip() for p in raw.split(",") if p.strip()]
        paths = [str(p) for p in raw]
        self.note_ignored(ctx, ctx.known)
        if not paths:
            return error_reply(400, "paths must be supplied")
        data = {}
        for p in paths:
            data[p] = self.capabilities_for(tok, p.lstrip("/"))
        if len(paths) == 1:
            data["capabilities"] = data[paths[0]]
        # HTTPSysInjector: data keys are repeated at the top level, first.
        env = self.envelope(data, mount_type="system")
        top = GoStruct()
        for k in sorted(data):
            top[k] = data[k]
        top.update(env)
        return Reply(200, env=top)

    def ui_mount(self, ctx, ns, path):
        if not self.config["ui_mounts_endpoint"]:
            raise ApiError(404)
        if ctx.method not in ("GET", "HEAD"):
            raise ApiError(405, multierror("unsupported operation"))
        path = path.strip("/") + "/"
        denied = ApiError(403, "preflight capability check returned 403, please ensure client's "
                               "policies grant access to path %s" % go_quote(path))
        tok = self.tokens.get(ctx.token) if ctx.token else None
        if not self.token_valid(tok):
            raise denied
        hit = None
        for mpath in sorted(ns["mounts"], key=len, reverse=True):
            if path.startswith(mpath + "/"):
                hit = mpath
                break
        if hit is None:
            raise denied
        if not self._has_mount_access(tok, hit + "/"):
            raise denied
        m = ns["mounts"][hit]
        data = {
            "type": m["type"], "description": "", "accessor": m["accessor"], "local": False,
            "seal_wrap": False, "external_entropy_access": False, "options": m["options"],
            "uuid": m["uuid"], "plugin_version": "", "running_plugin_version": "v0.0.0+builtin",
            "running_sha256": "", "path": hit + "/",
            "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False},
        }
        return self.ok(data, mount_type="system")

    def _has_mount_access(self, tok, mount_prefix):
        if "root" in tok["policies"] or tok["capabilities"] is None:
            return True
        for pattern, caps in tok["capabilities"].items():
            if "deny" in caps or not caps:
                continue
            literal = re.split(r"[*+]", pattern, 1)[0]
            if pattern.startswith(mount_prefix) or mount_prefix.startswith(literal):
                return True
        return False

    # ------------------------------------------------------------ auth/*

    def approle_login(self, ctx, mount_name, amount):
        d = ctx.data
        self.note_ignored(ctx, {"role_id", "secret_id"})
        role_id = d.get("role_id") or ""
        if not role_id:
            return error_reply(400, "missing role_id")
        role = next((r for r in amount["roles"].values() if r["role_id"] == role_id), None)
        if role is None:
            return error_reply(400, "invalid role or secret ID")
        secret_id = d.get("secret_id") or ""
        if role["bind_secret_id"]:
            if not secret_id:
                return error_reply(400, "missing secret_id")
            if secret_id not in role["secret_ids"]:
                return error_reply(400, "invalid role or secret ID")
        tok = self.issue_token(role["policies"], role["token_ttl"], role["token_max_ttl"],
                               role["renewable"], path="auth/%s/login" % mount_name,
                               meta={"role_name": role["role_name"]},
                               display_name=mount_name, capabilities=role["capabilities"])
        return self.ok(None, auth=self.auth_envelope(tok, tok["ttl"]), mount_type="approle")

    def kubernetes_login(self, ctx, mount_name, amount):
        d = ctx.data
        self.note_ignored(ctx, {"role", "jwt"})
        role_name = d.get("role") or ""
        if not role_name:
            return error_reply(400, "missing role")
        jwt = d.get("jwt") or ""
        if not jwt:
            return error_reply(400, "missing jwt")
        role = amount["roles"].get(role_name)
        if role is None:
            return error_reply(400, "invalid role name %s" % go_quote(role_name))
        if role["jwts"] and jwt not in role["jwts"]:
            raise ApiError(403, self.acl_denied_text())
        meta = {"role": role_name,
                "service_account_name": role["service_account_name"],
                "service_account_namespace": role["service_account_namespace"],
                "service_account_secret_name": "",
                "service_account_uid": role["service_account_uid"]}
        tok = self.issue_token(role["policies"], role["token_ttl"], role["token_max_ttl"],
                               role["renewable"], path="auth/%s/login" % mount_name, meta=meta,
                               display_name="%s-%s-%s" % (mount_name, role["service_account_namespace"],
                                                          role["service_account_name"]),
                               capabilities=role["capabilities"])
        return self.ok(None, auth=self.auth_envelope(tok, tok["ttl"]), mount_type="kubernetes")

    def token_lookup_self(self, tok):
        data = {
            "id": tok["id"], "accessor": tok["accessor"], "policies": list(tok["policies"]),
            "path": tok["path"], "meta": tok["meta"], "display_name": tok["display_name"],
            "num_uses": tok["num_uses"], "orphan": tok["orphan"],
            "creation_time": tok["creation_time"] // 1_000_000_000,
            "creation_ttl": tok["creation_ttl"], "expire_time": None, "ttl": 0,
            "explicit_max_ttl": 0, "entity_id": tok["entity_id"], "type": tok["type"],
        }
        # Root tokens have no lease: no renewable/issue_time/expire_time (section 1.0).
        if tok["expire_time"] is not None:
            data["expire_time"] = rfc3339nano(tok["expire_time"])
            data["ttl"] = self.token_ttl_left(tok)
            data["renewable"] = tok["renewable"]
            data["issue_time"] = rfc3339nano(tok["issue_time"])
            if tok["last_renewal_time"]:
                data["last_renewal_time"] = tok["last_renewal_time"] // 1_000_000_000
                data["last_renewal"] = rfc3339nano(tok["last_renewal_time"])
        return self.ok(data, mount_type="token")

    def token_renew_self(self, ctx, tok):
        self.note_ignored(ctx, ctx.known)
        if tok["expire_time"] is None:
            return error_reply(400, "invalid lease ID")
        if not tok["renewable"]:
            return error_reply(400, "lease is not renewable")
        try:
            increment = parse_duration(ctx.data.get("increment", 0))
        except ValueError as e:
            return error_reply(400, "Field validation failed: error converting input %s for field \"increment\": %s"
                               % (ctx.data.get("increment"), e))
        # framework.CalculateTTL
        max_ttl = SYSTEM_MAX_TTL
        if 0 < tok["max_ttl"] < max_ttl:
            max_ttl = tok["max_ttl"]
        ttl = increment if increment > 0 else (tok["ttl"] or SYSTEM_MAX_TTL)
        now = now_ns()
        issue_s = tok["issue_time"] // 1_000_000_000
        max_valid = issue_s + max_ttl - now // 1_000_000_000
        warnings = []
        if max_valid <= 0:
            # A plain error from CalculateTTL: no response object → 500.
            raise ApiError(500, "past the max TTL, cannot renew")
        if max_valid - ttl < 0:
            warnings.append("TTL of %s exceeded the effective max_ttl of %s; TTL value is capped accordingly"
                            % (go_quote(human_duration(ttl)), go_quote(human_duration(max_valid))))
            ttl = max_valid
        tok["expire_time"] = now + ttl * 1_000_000_000
        tok["last_renewal_time"] = now
        auth = self.auth_envelope(tok, ttl)
        return self.ok(None, warnings=warnings, auth=auth, mount_type="token")

    # ------------------------------------------------------------ KV v2

    KV_DATA_FIELDS = {"path", "version", "options", "data"}
    KV_META_FIELDS = {"path", "cas_required", "max_versions", "delete_version_after",
                      "custom_metadata", "after", "limit"}
    KV_META_FIELDS_BAO = {"metadata_cas_required", "metadata_cas"}
    KV_VERSIONS_FIELDS = {"path", "versions"}
    KV_CONFIG_FIELDS = {"max_versions", "cas_required", "delete_version_after"}

    def kv_dispatch(self, ctx, op, mpath, mount, sub):
        tok = ctx.token_entry
        acl_path = mpath + "/" + sub if sub else mpath + "/"
        if sub == "config" or sub == "config/":
            cap = {"read": "read", "update": "update"}.get(op)
            if cap is None:
                raise ApiError(405, multierror("unsupported operation"))
            self.require(tok, acl_path, cap)
            return self.kv_config(ctx, op, mount)
        m = re.fullmatch(r"(data|metadata|delete|undelete|destroy)(?:/(.*))?", sub, re.S)
        if not m:
            raise ApiError(404, multierror("unsupported path"))
        kind, key = m.group(1), m.group(2) or ""
        if kind == "data":
            handlers = {"read": self.kv_read, "update": self.kv_write, "patch": self.kv_patch,
                        "delete": self.kv_delete_latest}
        elif kind == "metadata":
            handlers = {"read": self.kv_meta_read, "update": self.kv_meta_write,
                        "patch": self.kv_meta_patch, "delete": self.kv_meta_delete,
                        "list": self.kv_meta_list}
        else:
            handlers = {"update": {"delete": self.kv_delete_versions, "undelete": self.kv_undelete,
                                   "destroy": self.kv_destroy}[kind]}
        handler = handlers.get(op)
        if handler is None:
            raise ApiError(405, multierror("unsupported operation"))
        if op == "update" and kind in ("data", "metadata"):
            cap = "update" if key in mount["keys"] else "create"
        else:
            cap = {"read": "read", "list": "list", "delete": "delete", "patch": "patch",
                   "update": "update"}[op]
        self.require(tok, acl_path, cap)
        if kind == "data":
            self.note_ignored(ctx, self.KV_DATA_FIELDS)
        elif kind == "metadata":
            known = self.KV_META_FIELDS | (self.KV_META_FIELDS_BAO if self.flavor == "openbao" else set())
            self.note_ignored(ctx, known)
        else:
            self.note_ignored(ctx, self.KV_VERSIONS_FIELDS)
        return handler(ctx, mount, key)

    def kv_config(self, ctx, op, mount):
        cfg = mount["config"]
        if op == "read":
            data = {"max_versions": cfg["max_versions"], "cas_required": cfg["cas_required"],
                    "delete_version_after": go_duration(cfg["delete_version_after"])}
            if self.flavor == "openbao":
                data["metadata_cas_required"] = cfg["metadata_cas_required"]
            return self.ok(data, mount_type="kv")
        d = ctx.data
        try:
            if "max_versions" in d:
                cfg["max_versions"] = weak_int(d["max_versions"])
            if "cas_required" in d:
                cfg["cas_required"] = go_parse_bool(d["cas_required"])
            if "metadata_cas_required" in d and self.flavor == "openbao":
                cfg["metadata_cas_required"] = go_parse_bool(d["metadata_cas_required"])
            if "delete_version_after" in d:
                dva = parse_duration(d["delete_version_after"])
                cfg["delete_version_after"] = -1 if dva < 0 else dva
        except ValueError as e:
            return error_reply(400, "Field validation failed: %s" % e)
        return Reply(204)

    def kv_new_meta(self, mount, key):
        t = now_ns()
        m = {"current_version": 0, "oldest_version": 0, "max_versions": 0, "cas_required": False,
             "delete_version_after": 0, "custom_metadata": None, "created_time": t,
             "updated_time": t, "current_metadata_version": 0, "metadata_cas_required": False,
             "versions": {}}
        mount["keys"][key] = m
        return m

    @staticmethod
    def kv_deletion_time(created_ns, mount_dva, meta_dva):
        """kv.deletionTime: the smaller non-zero delete_version_after."""
        if mount_dva < 0:
            return None
        if mount_dva == 0 and meta_dva == 0:
            return None
        smallest = meta_dva
        if (mount_dva != 0 and mount_dva < smallest) or smallest == 0:
            smallest = mount_dva
        return created_ns + smallest * 1_000_000_000

    def kv_add_version(self, mount, key, data):
        """KeyMetadata.AddVersion + the version write + max_versions trimming."""
        m = mount["keys"].get(key)
        if m is None:
            m = self.kv_new_meta(mount, key)
            m["created_time"] = None
        t = now_ns()
        vm = {"data": copy.deepcopy(data), "created_time": t,
              "deletion_time": self.kv_deletion_time(t, mount["config"]["delete_version_after"],
                                                     m["delete_version_after"]),
              "destroyed": False}
        m["current_version"] += 1
        m["versions"][str(m["current_version"])] = vm
        m["updated_time"] = t
        if m["created_time"] is None:
            m["created_time"] = t
        limit = max(m["max_versions"], mount["config"]["max_versions"]) or DEFAULT_KV_MAX_VERSIONS
        if m["current_version"] - m["oldest_version"] >= limit:
            to_delete = m["current_version"] - limit
            for i in range(m["oldest_version"], to_delete + 1):
                m["versions"].pop(str(i), None)
            m["oldest_version"] = to_delete + 1
        return vm, m["current_version"]

    @staticmethod
    def kv_is_deleted(vm):
        return vm["deletion_time"] is not None and vm["deletion_time"] < now_ns()

    def kv_version_meta(self, m, ver, vm):
        return {"version": ver, "created_time": rfc3339nano(vm["created_time"]),
                "deletion_time": rfc3339nano(vm["deletion_time"]), "destroyed": vm["destroyed"],
                "custom_metadata": copy.deepcopy(m["custom_metadata"])}

    def raw_404_envelope(self, data):
        """logical.RespondWithStatusCode(resp, req, 404): an envelope body
        marshalled by json.Marshal (no trailing newline), status 404."""
        env = self.envelope(data, mount_type="")
        return Reply(404, go_json(env, newline=False))

    def kv_validate_cas(self, ctx, mount, m):
        options = ctx.data.get("options")
        if options is not None and not isinstance(options, dict):
            raise ApiError(400, "Field validation failed: error converting input %s for field \"options\"" % options)
        if options and "cas" in options:
            try:
                cas = weak_int(options["cas"])
            except ValueError:
                raise ApiError(400, "error parsing check-and-set parameter")
            if cas != m["current_version"]:
                raise ApiError(400, "check-and-set parameter did not match the current version")
        elif mount["config"]["cas_required"] or m["cas_required"]:
            raise ApiError(400, "check-and-set parameter required for this call")

    def kv_read(self, ctx, mount, key):
        m = mount["keys"].get(key)
        if m is None:
            raise ApiError(404)
        ver = m["current_version"]
        try:
            v = weak_int(ctx.data.get("version", 0))
        except ValueError:
            raise ApiError(400, "Field validation failed: error converting input %s for field \"version\": "
                                "cannot parse '' as int" % ctx.data.get("version"))
        if v > 0:
            ver = v
        vm = m["versions"].get(str(ver))
        if vm is None:
            raise ApiError(404)
        data = {"data": None, "metadata": self.kv_version_meta(m, ver, vm)}
        if self.kv_is_deleted(vm) or vm["destroyed"]:
            return self.raw_404_envelope(data)
        data["data"] = copy.deepcopy(vm["data"])
        return self.ok(data, mount_type="kv")

    def kv_write(self, ctx, mount, key):
        if key == "":
            return error_reply(400, "missing path")
        d = ctx.data
        if d.get("data") is None:
            return error_reply(400, "no data provided")
        if not isinstance(d["data"], dict):
            return error_reply(400, "Field validation failed: error converting input %s for field \"data\"" % d["data"])
        m = mount["keys"].get(key) or {"current_version": 0, "cas_required": False}
        self.kv_validate_cas(ctx, mount, m)
        vm, ver = self.kv_add_version(mount, key, d["data"])
        return self.ok(self.kv_version_meta(mount["keys"][key], ver, vm), mount_type="kv")

    def kv_patch(self, ctx, mount, key):
        d = ctx.data
        if d.get("data") is None:
            return error_reply(400, "no data provided")
        if not isinstance(d["data"], dict):
            return error_reply(400, "Field validation failed: error converting input %s for field \"data\"" % d["data"])
        m = mount["keys"].get(key)
        if m is None:
            return Reply(404, b"")
        self.kv_validate_cas(ctx, mount, m)
        cur = m["current_version"]
        vm = m["versions"].get(str(cur))
        if vm is None:
            return Reply(404, b"")
        if self.kv_is_deleted(vm) or vm["destroyed"]:
            # pathDataPatch's notFoundResp: a flat metadata map, not data/metadata.
            return self.raw_404_envelope(self.kv_version_meta(m, cur, vm))
        patched = merge_patch(vm["data"], d["data"])
        new_vm, ver = self.kv_add_version(mount, key, patched)
        return self.ok(self.kv_version_meta(m, ver, new_vm), mount_type="kv")

    def kv_delete_latest(self, ctx, mount, key):
        m = mount["keys"].get(key)
        if m is not None:
            vm = m["versions"].get(str(m["current_version"]))
            if vm is not None and not vm["destroyed"] and not self.kv_is_deleted(vm):
                vm["deletion_time"] = now_ns()
        return Reply(204)

    def kv_versions_arg(self, ctx):
        raw = ctx.data.get("versions")
        if raw is None or raw == "":
            return []
        if isinstance(raw, str):
            raw = [x for x in raw.split(",") if x.strip()]
        if not isinstance(raw, list):
            raw = [raw]
        try:
            return [weak_int(x) for x in raw]
        except ValueError:
            raise ApiError(400, "Field validation failed: error converting input %s for field \"versions\"" % raw)

    def kv_delete_versions(self, ctx, mount, key):
        versions = self.kv_versions_arg(ctx)
        if not versions:
            return error_reply(400, "No version number provided")
        m = mount["keys"].get(key)
        if m is not None:
            for v in versions:
                vm = m["versions"].get(str(v))
                if vm is None or vm["destroyed"] or self.kv_is_deleted(vm):
                    continue
                vm["deletion_time"] = now_ns()
        return Reply(204)

    def kv_undelete(self, ctx, mount, key):
        versions = self.kv_versions_arg(ctx)
        if not versions:
            return error_reply(400, "No version number provided")
        m = mount["keys"].get(key)
        if m is not None:
            for v in versions:
                vm = m["versions"].get(str(v))
                if vm is None or vm["destroyed"]:
                    continue
                vm["deletion_time"] = self.kv_deletion_time(
                    now_ns(), mount["config"]["delete_version_after"], m["delete_version_after"])
        return Reply(204)

    def kv_destroy(self, ctx, mount, key):
        versions = self.kv_versions_arg(ctx)
        if not versions:
            return error_reply(400, "no version number provided")
        m = mount["keys"].get(key)
        if m is not None:
            for v in versions:
                vm = m["versions"].get(str(v))
                if vm is None or vm["destroyed"]:
                    continue
                vm["destroyed"] = True
                vm["data"] = None
        return Reply(204)

    def kv_meta_data(self, m):
        versions = {}
        for k, vm in m["versions"].items():
            versions[k] = {"created_time": rfc3339nano(vm["created_time"]),
                           "deletion_time": rfc3339nano(vm["deletion_time"]),
                           "destroyed": vm["destroyed"]}
        data = {"versions": versions, "current_version": m["current_version"],
                "oldest_version": m["oldest_version"], "created_time": rfc3339nano(m["created_time"]),
                "updated_time": rfc3339nano(m["updated_time"]), "max_versions": m["max_versions"],
                "cas_required": m["cas_required"],
                "delete_version_after": go_duration(m["delete_version_after"]),
                "custom_metadata": copy.deepcopy(m["custom_metadata"])}
        if self.flavor == "openbao":
            data["current_metadata_version"] = m["current_metadata_version"]
            data["metadata_cas_required"] = m["metadata_cas_required"]
        return data

    def kv_meta_read(self, ctx, mount, key):
        m = mount["keys"].get(key)
        if m is None:
            raise ApiError(404)
        return self.ok(self.kv_meta_data(m), mount_type="kv")

    def kv_meta_list(self, ctx, mount, key):
        prefix = key
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        names = set()
        for k in mount["keys"]:
            if not k.startswith(prefix):
                continue
            rest = k[len(prefix):]
            if not rest:
                continue
            names.add(rest.split("/", 1)[0] + "/" if "/" in rest else rest)
        keys = sorted(names)
        after = ctx.data.get("after")
        if after:
            keys = [k for k in keys if k > after]
        limit = ctx.data.get("limit")
        if limit not in (None, ""):
            try:
                n = weak_int(limit)
            except ValueError:
                n = 0
            if n > 0:
                keys = keys[:n]
        if not keys:
            raise ApiError(404)
        return self.ok({"keys": keys}, mount_type="kv")

    def kv_parse_custom_metadata(self, raw, filter_nils):
        if not isinstance(raw, dict):
            raise ApiError(400, "Field validation failed: error converting input %s for field \"custom_metadata\"" % raw)
        out = {}
        for k, v in raw.items():
            if filter_nils and v is None:
                continue
            try:
                out[k] = weak_string(v if v is not None else "")
            except ValueError as e:
                raise ApiError(400, "custom_metadata validation failed: %s" % e)
        errs = []
        if len(out) > 64:
            errs.append("custom_metadata validation failed: payload must contain at most 64 keys, provided %d" % len(out))
        else:
            for k, v in out.items():
                if not 0 < len(k.encode()) <= 128:
                    errs.append("custom_metadata validation failed: length of key %s is %d but must be 0 < len(key) <= 128"
                                % (go_quote(k), len(k.encode())))
                if not 0 < len(v.encode()) <= 512:
                    errs.append("custom_metadata validation failed: length of value for key %s is %d but must be 0 < len(value) <= 512"
                                % (go_quote(k), len(v.encode())))
                if not printable(k):
                    errs.append("custom_metadata validation failed: key %s (%s) contains unprintable characters"
                                % (go_quote(k), k))
                if not printable(v):
                    errs.append("custom_metadata validation failed: value for key %s contains unprintable characters"
                                % go_quote(k))
        if errs:
            raise ApiError(400, multierror(*errs))
        return out

    def _meta_fields(self, d):
        """Coerce the metadata fields present in a request (TypeInt/Bool/DurationSecond)."""
        out = {}
        try:
            if "max_versions" in d:
                out["max_versions"] = weak_int(d["max_versions"])
            if "cas_required" in d:
                out["cas_required"] = go_parse_bool(d["cas_required"])
            if "delete_version_after" in d:
                out["delete_version_after"] = parse_duration(d["delete_version_after"])
            if self.flavor == "openbao" and "metadata_cas_required" in d:
                out["metadata_cas_required"] = go_parse_bool(d["metadata_cas_required"])
        except ValueError as e:
            raise ApiError(400, "Field validation failed: %s" % e)
        return out

    def _check_metadata_cas(self, mount, m, d, creating):
        if self.flavor != "openbao":
            return
        required = (m is not None and m["metadata_cas_required"]) or mount["config"]["metadata_cas_required"]
        if required and "metadata_cas" not in d:
            raise ApiError(400, "metadata check-and-set parameter required for this call")
        if "metadata_cas" in d:
            val = weak_int(d["metadata_cas"])
            if creating and val != 0:
                raise ApiError(400, "metadata_cas must be 0 when creating new metadata")
            if not creating and val != m["current_metadata_version"]:
                raise ApiError(400, "metadata check-and-set parameter does not match the current version")

    def kv_meta_write(self, ctx, mount, key):
        if key == "":
            return error_reply(400, "missing path")
        d = ctx.data
        fields = self._meta_fields(d)
        if not fields and "custom_metadata" not in d:
            return Reply(204)  # the fast path: nothing to change
        cm = self.kv_parse_custom_metadata(d["custom_metadata"], False) if "custom_metadata" in d else None
        warnings = []
        if fields.get("cas_required") is False and mount["config"]["cas_required"]:
            warnings.append('"cas_required" set to false, but is mandated by backend config. This value will be ignored.')
        m = mount["keys"].get(key)
        self._check_metadata_cas(mount, m, d, m is None)
        if m is None:
            m = self.kv_new_meta(mount, key)
            m["current_metadata_version"] = 1
        else:
            m["current_metadata_version"] += 1
            m["updated_time"] = now_ns()
        m.update(fields)
        if "custom_metadata" in d:
            m["custom_metadata"] = cm
        if warnings:
            return self.ok(None, warnings=warnings, mount_type="kv")
        return Reply(204)

    def kv_meta_patch(self, ctx, mount, key):
        d = ctx.data
        patchable = {"max_versions", "cas_required", "delete_version_after", "custom_metadata"}
        if self.flavor == "openbao":
            patchable.add("metadata_cas_required")
        if not any(k in d for k in patchable):
            return Reply(204)
        if key == "":
            return error_reply(400, "missing path")
        if "custom_metadata" in d and d["custom_metadata"] is not None:
            self.kv_parse_custom_metadata(d["custom_metadata"], True)
        m = mount["keys"].get(key)
        if m is None:
            return Reply(404, b"")
        self._check_metadata_cas(mount, m, d, False)
        fields = self._meta_fields(d)
        warnings = []
        if fields.get("cas_required") is False and mount["config"]["cas_required"]:
            warnings.append('"cas_required" set to false, but is mandated by backend config. This value will be ignored.')
        m.update(fields)
        if "custom_metadata" in d:
            patched = merge_patch(m["custom_metadata"] or {}, d["custom_metadata"]) \
                if d["custom_metadata"] is not None else None
            m["custom_metadata"] = patched
        m["current_metadata_version"] += 1
        m["updated_time"] = now_ns()
        if warnings:
            return self.ok(None, warnings=warnings, mount_type="kv")
        return Reply(204)

    def kv_meta_delete(self, ctx, mount, key):
        mount["keys"].pop(key, None)
        return Reply(204)

    # ------------------------------------------------------------ transit

    TRANSIT_KEY_FIELDS = {"name", "type", "derived", "convergent_encryption", "exportable",
                          "allow_plaintext_backup", "context", "auto_rotate_period", "key_size",
                          "managed_key_name", "managed_key_id"}
    TRANSIT_CONFIG_FIELDS = {"name", "min_decryption_version", "min_encryption_version",
                             "deletion_allowed", "exportable", "allow_plaintext_backup",
                             "auto_rotate_period"}
    TRANSIT_ENC_FIELDS = {"name", "plaintext", "context", "nonce", "key_version", "type",
                          "convergent_encryption", "batch_input", "associated_data",
                          "partial_failure_response_code"}
    TRANSIT_DEC_FIELDS = {"name", "ciphertext", "context", "nonce", "batch_input",
                          "associated_data", "partial_failure_response_code", "key_version"}

    def transit_dispatch(self, ctx, op, mpath, mount, sub):
        tok = ctx.token_entry
        acl_path = mpath + "/" + sub if sub else mpath + "/"
        keys = mount["keys"]
        if sub in ("keys", "keys/"):
            if op != "list":
                raise ApiError(405, multierror("unsupported operation"))
            self.require(tok, acl_path, "list")
            if not keys:
                raise ApiError(404)
            return self.ok({"keys": sorted(keys)}, mount_type="transit")
        m = re.fullmatch(r"keys/([^/]+)", sub)
        if m:
            name = m.group(1)
            if op == "read":
                self.require(tok, acl_path, "read")
                if name not in keys:
                    raise ApiError(404)
                return self.ok(self.transit_format(keys[name]), mount_type="transit")
            if op == "update":
                self.require(tok, acl_path, "update" if name in keys else "create")
                self.note_ignored(ctx, self.TRANSIT_KEY_FIELDS)
                return self.transit_create(ctx, mount, name)
            if op == "delete":
                self.require(tok, acl_path, "delete")
                k = keys.get(name)
                if k is None:
                    return error_reply(400, "error deleting policy %s: could not delete key; not found" % name)
                if not k["deletion_allowed"]:
                    return error_reply(400, "error deleting policy %s: deletion is not allowed for this key" % name)
                del keys[name]
                return Reply(204)
            raise ApiError(405, multierror("unsupported operation"))
        m = re.fullmatch(r"keys/([^/]+)/(rotate|config)", sub)
        if m:
            name, what = m.group(1), m.group(2)
            if op != "update":
                raise ApiError(405, multierror("unsupported operation"))
            self.require(tok, acl_path, "update")
            if what == "rotate":
                self.note_ignored(ctx, {"name", "managed_key_name", "managed_key_id"})
                return self.transit_rotate(ctx, mount, name)
            self.note_ignored(ctx, self.TRANSIT_CONFIG_FIELDS)
            return self.transit_config(ctx, mount, name)
        m = re.fullmatch(r"(encrypt|decrypt|rewrap)/([^/]+)", sub)
        if m:
            what, name = m.group(1), m.group(2)
            if op != "update":
                raise ApiError(405, multierror("unsupported operation"))
            self.require(tok, acl_path, "update" if what != "encrypt" or name in keys else "create")
            self.note_ignored(ctx, self.TRANSIT_ENC_FIELDS if what == "encrypt" else self.TRANSIT_DEC_FIELDS)
            return {"encrypt": self.transit_encrypt, "decrypt": self.transit_decrypt,
                    "rewrap": self.transit_rewrap}[what](ctx, mount, name)
        raise ApiError(404, multierror("unsupported path"))

    def transit_format(self, k):
        """formatKeyPolicy."""
        t = k["type"]
        data = {
            "name": k["name"], "type": t, "derived": k["derived"],
            "deletion_allowed": k["deletion_allowed"], "min_available_version": k["min_available_version"],
            "min_decryption_version": k["min_decryption_version"],
            "min_encryption_version": k["min_encryption_version"], "latest_version": k["latest_version"],
            "exportable": k["exportable"], "allow_plaintext_backup": k["allow_plaintext_backup"],
            "supports_encryption": t in SYMMETRIC_TYPES or t.startswith("rsa-"),
            "supports_decryption": t in SYMMETRIC_TYPES or t.startswith("rsa-"),
            "supports_signing": t in ASYMMETRIC_TYPES,
            "supports_derivation": t in SYMMETRIC_TYPES or t == "ed25519",
            "auto_rotate_period": k["auto_rotate_period"], "imported_key": False,
        }
        if self.flavor == "openbao":
            data["soft_deleted"] = False
        if k["derived"]:
            data["kdf"] = "hkdf_sha256"
            data["convergent_encryption"] = k["convergent_encryption"]
        if t in ASYMMETRIC_TYPES:
            data["keys"] = {v: {"name": t, "public_key": "-----BEGIN PUBLIC KEY-----\nFAKE-%s-v%s\n-----END PUBLIC KEY-----\n" % (k["name"], v),
                                "certificate_chain": "", "creation_time": rfc3339nano(ts * 1_000_000_000)}
                            for v, ts in k["keys"].items()}
        else:
            data["keys"] = dict(k["keys"])
        return data

    def transit_write_reply(self, k, warnings=None):
        if self.config["transit_write_status"] == 204:
            return Reply(204)
        return self.ok(self.transit_format(k), warnings=warnings, mount_type="transit")

    def _auto_rotate(self, raw):
        try:
            period = parse_duration(raw)
        except ValueError as e:
            raise ApiError(400, "Field validation failed: %s" % e)
        if period != 0 and period < 3600:
            raise ApiError(400, "auto rotate period must be 0 to disable or at least an hour")
        return period

    def transit_create(self, ctx, mount, name):
        d = ctx.data
        keys = mount["keys"]
        if name in keys:
            warnings = None if self.flavor == "vault" else ["key %s already existed" % name]
            return self.transit_write_reply(keys[name], warnings)
        ktype = d.get("type") or "aes256-gcm96"
        period = self._auto_rotate(d.get("auto_rotate_period", 0))
        try:
            derived = go_parse_bool(d.get("derived", False))
            convergent = go_parse_bool(d.get("convergent_encryption", False))
        except ValueError as e:
            raise ApiError(400, "Field validation failed: %s" % e)
        if convergent and not derived:
            return error_reply(400, "convergent encryption requires derivation to be enabled")
        if ktype not in TRANSIT_TYPES:
            return error_reply(400, "unknown key type %s" % ktype)
        k = self.transit_new_key(name, ktype)
        k.update({"derived": derived, "convergent_encryption": convergent, "auto_rotate_period": period,
                  "exportable": bool(d.get("exportable", False)),
                  "allow_plaintext_backup": bool(d.get("allow_plaintext_backup", False))})
        keys[name] = k
        return self.transit_write_reply(k)

    @staticmethod
    def transit_new_key(name, ktype):
        return {"name": name, "type": ktype, "keys": {"1": int(time.time())}, "latest_version": 1,
                "min_decryption_version": 1, "min_encryption_version": 0, "min_available_version": 0,
                "deletion_allowed": False, "exportable": False, "allow_plaintext_backup": False,
                "derived": False, "convergent_encryption": False, "auto_rotate_period": 0}

    def transit_rotate(self, ctx, mount, name):
        k = mount["keys"].get(name)
        if k is None:
            return error_reply(400, "key not found")
        k["latest_version"] += 1
        k["keys"][str(k["latest_version"])] = int(time.time())
        return self.transit_write_reply(k)

    def transit_config(self, ctx, mount, name):
        k = mount["keys"].get(name)
        if k is None:
            return error_reply(400, "no existing key named %s could be found" % name)
        d = ctx.data
        new = dict(k)
        warning = None
        try:
            if "min_decryption_version" in d:
                v = weak_int(d["min_decryption_version"])
                if v < 0:
                    return error_reply(400, "min decryption version cannot be negative")
                if v == 0:
                    v = 1
                    warning = ("since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1"
                               if self.flavor == "vault" else
                               "since Vault 0.3 (prior to the OpenBao fork), transit key numbering starts at 1; forcing minimum to 1")
                if v != k["min_decryption_version"] and v > k["latest_version"]:
                    return error_reply(400, "cannot set min decryption version of %d, latest key version is %d"
                                       % (v, k["latest_version"]))
                new["min_decryption_version"] = v
            if "min_encryption_version" in d:
                v = weak_int(d["min_encryption_version"])
                if v < 0:
                    return error_reply(400, "min encryption version cannot be negative")
                if v != k["min_encryption_version"] and v > k["latest_version"]:
                    return error_reply(400, "cannot set min encryption version of %d, latest key version is %d"
                                       % (v, k["latest_version"]))
                new["min_encryption_version"] = v
            if 0 < new["min_encryption_version"] < new["min_decryption_version"]:
                return error_reply(400, "cannot set min encryption/decryption values; min encryption version of %d "
                                   "must be greater than or equal to min decryption version of %d"
                                   % (new["min_encryption_version"], new["min_decryption_version"]))
            if "deletion_allowed" in d:
                new["deletion_allowed"] = go_parse_bool(d["deletion_allowed"])
            if "exportable" in d and go_parse_bool(d["exportable"]):
                new["exportable"] = True
            if "allow_plaintext_backup" in d and go_parse_bool(d["allow_plaintext_backup"]):
                new["allow_plaintext_backup"] = True
        except ValueError as e:
            return error_reply(400, "Field validation failed: %s" % e)
        if "auto_rotate_period" in d:
            new["auto_rotate_period"] = self._auto_rotate(d["auto_rotate_period"])
        k.update(new)
        return self.transit_write_reply(k, [warning] if warning else None)

    @staticmethod
    def _fake_seal(name, ver, plaintext):
        # Not cryptography: it only binds key name and version so that the
        # version semantics (min_decryption_version, rewrap) can be tested.
        blob = b"fakevault\x00" + name.encode() + b"\x00" + str(ver).encode() + b"\x00" + plaintext
        return "vault:v%d:%s" % (ver, base64.b64encode(blob).decode())

    def _fake_open(self, k, ciphertext):
        if not isinstance(ciphertext, str) or not ciphertext.startswith("vault:"):
            raise ApiError(400, "invalid ciphertext: no prefix")
        parts = ciphertext.split(":", 2)
        if len(parts) != 3:
            raise ApiError(400, "invalid ciphertext: wrong number of fields")
        if not re.fullmatch(r"v\d+", parts[1]):
            raise ApiError(400, "invalid ciphertext: version number could not be decoded")
        ver = int(parts[1][1:])
        if ver > k["latest_version"]:
            raise ApiError(400, "invalid ciphertext: version is too new")
        if ver < k["min_decryption_version"]:
            raise ApiError(400, "ciphertext or signature version is disallowed by policy (too old)")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise ApiError(400, "invalid ciphertext: could not decode base64")
        prefix = b"fakevault\x00" + k["name"].encode() + b"\x00" + str(ver).encode() + b"\x00"
        if not blob.startswith(prefix):
            raise ApiError(400, "cipher: message authentication failed")
        return blob[len(prefix):], ver

    def _encrypt_version(self, k, d):
        ver = k["latest_version"]
        if d.get("key_version") not in (None, "", 0):
            ver = weak_int(d["key_version"])
            if ver < 0:
                raise ApiError(400, "requested version for encryption is negative")
            if ver > k["latest_version"]:
                raise ApiError(400, "requested version for encryption is higher than the latest key version")
            if ver < k["min_encryption_version"]:
                raise ApiError(400, "requested version for encryption is less than the minimum encryption key version")
        elif k["min_encryption_version"] > ver:
            ver = k["min_encryption_version"]
        return ver

    def transit_encrypt(self, ctx, mount, name):
        d = ctx.data
        if "plaintext" not in d:
            return error_reply(400, "missing plaintext to encrypt")
        try:
            plaintext = base64.b64decode(d["plaintext"] or "", validate=True)
        except (ValueError, TypeError):
            return error_reply(400, "failed to base64-decode plaintext")
        k = mount["keys"].get(name)
        if k is None:
            k = mount["keys"][name] = self.transit_new_key(name, d.get("type") or "aes256-gcm96")
        if not (k["type"] in SYMMETRIC_TYPES or k["type"].startswith("rsa-")):
            return error_reply(400, "key type %s not supported for this operation" % k["type"])
        ver = self._encrypt_version(k, d)
        return self.ok({"ciphertext": self._fake_seal(name, ver, plaintext), "key_version": ver},
                       mount_type="transit")

    def transit_decrypt(self, ctx, mount, name):
        d = ctx.data
        if not d.get("ciphertext"):
            return error_reply(400, "missing ciphertext to decrypt")
        k = mount["keys"].get(name)
        if k is None:
            return error_reply(400, "encryption key not found")
        plaintext, _ = self._fake_open(k, d["ciphertext"])
        return self.ok({"plaintext": base64.b64encode(plaintext).decode()}, mount_type="transit")

    def transit_rewrap(self, ctx, mount, name):
        d = ctx.data
        if not d.get("ciphertext"):
            return error_reply(400, "missing ciphertext to decrypt")
        k = mount["keys"].get(name)
        if k is None:
            return error_reply(400, "encryption key not found")
        plaintext, _ = self._fake_open(k, d["ciphertext"])
        ver = self._encrypt_version(k, d)
        return self.ok({"ciphertext": self._fake_seal(name, ver, plaintext), "key_version": ver},
                       mount_type="transit")


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------

class Ctx:
    """One /v1/ request as the logic sees it."""

    def __init__(self, method, raw_path, query, headers, body):
        self.method = method
        self.raw_path = raw_path
        self.lpath = unquote(raw_path[len("/v1/"):])
        self.query = query
        self.headers = headers
        self.body = body
        self.data = {}
        self.ignored = []
        self.known = set()
        self.token = None
        self.token_entry = None
        ns = headers.get("X-Vault-Namespace", "") or ""
        self.ns = ns.strip().strip("/")


HTML_PAGE = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")

DEFAULT_INJECT_ERRORS = {
    500: ["1 error occurred:\n\t* internal error\n\n"],
    502: ["1 error occurred:\n\t* upstream rate limited\n\n"],
    503: ["Vault is sealed"],
    412: ["required index state not present"],
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # As Go's net/http (real Vault): TCP_NODELAY, so a reply's headers and body,
    # sent in two writes, do not wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    # Bounds the life of an idle keep-alive connection's thread.
    timeout = IDLE_CONNECTION_TIMEOUT

    @property
    def fake(self):
        return self.server.fake

    def __getattr__(self, name):
        # Every method (GET, LIST, PATCH, FOO...) goes through one dispatcher;
        # Vault answers unknown methods itself (405) rather than 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, fmt, *args):
        if self.fake.verbose:
            sys.stderr.write("vault_fake: %s %s\n" % (self.address_string(), fmt % args))

    def handle_expect_100(self):
        # Refuse an oversized body before the client sends it.
        if self._content_length() > self.fake.config["max_request_size"]:
            self._send(error_reply(413, "http: request body too large"), close=True)
            return False
        return super().handle_expect_100()

    def _content_length(self):
        try:
            return int(self.headers.get("Content-Length", "0") or 0)
        except ValueError:
            return 0

    def _read_body(self, limit):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > limit:
                    raise BodyTooLarge()
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        n = self._content_length()
        if n > limit:
            raise BodyTooLarge()
        return self.rfile.read(n) if n > 0 else b""

    # -- sending

    def _send(self, reply, close=False, head_only=False):
        self.send_response_only(reply.status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Cache-Control", "no-store")
        no_body = reply.status in (204, 304) or 100 <= reply.status < 200
        if reply.body is not None or reply.status == 204:
            self.send_header("Content-Type", reply.content_type)
        for k, v in reply.headers.items():
            self.send_header(k, str(v))
        body = reply.body or b""
        if not no_body:
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and not no_body and not head_only:
            self.wfile.write(body)
        self.wfile.flush()

    def _abort(self, rst):
        """Drop the connection without an answer; SO_LINGER 0 turns close into a RST."""
        self.close_connection = True
        try:
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
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
        """Sleep that ends early at server shutdown.  True if shutting down."""
        return self.fake.shutdown_event.wait(ms / 1000.0)

    # -- dispatch

    def _dispatch(self):
        url = urlsplit(self.path)
        path = url.path
        try:
            body = self._read_body(self.fake.config["max_request_size"])
        except BodyTooLarge:
            self._send(error_reply(413, "http: request body too large"), close=True)
            return
        except (ValueError, OSError):
            self._send(error_reply(400, "error reading data"), close=True)
            return
        if path == "/__fake" or path.startswith("/__fake/"):
            self._admin(path, url.query, body)
            return
        if not path.startswith("/v1/"):
            self._send(Reply(404, b"404 page not found\n", content_type="text/plain; charset=utf-8"))
            return
        self._v1(path, url.query, body)

    def _v1(self, path, raw_query, body):
        fake = self.fake
        method = self.command.upper()
        query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        ctx = Ctx(method, path, query, self.headers, body)
        ctx.token = fake.token_from_headers(self.headers)
        tok = fake.tokens.get(ctx.token) if ctx.token else None
        entry = fake.log_begin({
            "time": time.time(), "method": method, "path": path, "query": raw_query,
            "query_params": query, "namespace": ctx.ns,
            "headers": {k: ("<redacted>" if k.lower() in ("x-vault-token", "authorization") else v)
                        for k, v in self.headers.items()},
            "token_accessor": tok["accessor"] if tok else None,
            "body": _loggable_body(body), "status": None,
        })

        rule = fake.take_injection(method, path)
        if rule is not None:
            entry["injection"] = rule["id"]
            action = rule["action"]
            if action == "hang":
                # Hold the socket without answering, then drop it (or stop at shutdown).
                self._wait(rule["ms"] or MAX_INJECT_MS)
                fake.log_finish(entry, None, "hang")
                self._abort(rst=False)
                return
            if rule["ms"] and self._wait(rule["ms"]):
                fake.log_finish(entry, None, "shutdown")
                self._abort(rst=False)
                return
            if action == "reset":
                fake.log_finish(entry, None, "reset")
                self._abort(rst=True)
                return
            if action == "close":
                fake.log_finish(entry, None, "close")
                self._abort(rst=False)
                return
            if action == "status":
                status = int(rule["status"] or 500)
                reply = _injected_reply(status, rule["body"], rule["headers"], ctx.lpath)
                fake.log_finish(entry, status, "injected")
                self._send(reply, head_only=method == "HEAD")
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
                fake.write_before(rule["kv"])
            # latency, reset_after_apply, truncated, status_after_apply,
            # write_before: fall through to real handling.

        reply, quota_headers = fake.check_quota(ctx.lpath)
        if reply is None:
            reply = fake.process(ctx)
            reply.headers.update(quota_headers)
        for k, v in (rule["headers"] if rule is not None else {}).items():
            reply.headers[k] = v

        if rule is not None and rule["action"] == "reset_after_apply":
            fake.log_finish(entry, None, "reset_after_apply", applied_status=reply.status)
            self._abort(rst=True)
            return
        if rule is not None and rule["action"] == "status_after_apply":
            status = int(rule["status"] or 502)
            applied = reply.status
            reply = _injected_reply(status, rule["body"], rule["headers"], ctx.lpath)
            fake.log_finish(entry, status, "status_after_apply", applied_status=applied)
            self._send(reply, head_only=method == "HEAD")
            return
        if rule is not None and rule["action"] == "truncated":
            fake.log_finish(entry, None, "truncated", applied_status=reply.status)
            self._send_truncated(reply, rule)
            return
        fake.log_finish(entry, reply.status, "latency" if rule is not None else None)
        self._send(reply, head_only=method == "HEAD")

    def _send_truncated(self, reply, rule):
        body = reply.body or b"{}"
        # Send "bytes" bytes of the body (default: half of it), then hang up.
        cut = rule["bytes"] if rule["bytes"] is not None else len(body) // 2
        cut = max(0, min(cut, len(body) - 1))
        self.send_response_only(reply.status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Type", reply.content_type)
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
        head, tail = b'{"data":{"padding":"', b'"}}'
        pad = max(0, n - len(head) - len(tail))
        total = len(head) + pad + len(tail)
        self.send_response_only(int(rule["status"] or 200))
        self.send_header("Date", self.date_time_string())
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Type", "application/json")
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
        self._send(Reply(status, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()))

    def _admin(self, path, raw_query, body):
        fake = self.fake
        method = self.command.upper()
        try:
            payload = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            self._admin_reply(400, {"error": "bad JSON: %s" % e})
            return
        try:
            route = path[len("/__fake"):].rstrip("/") or "/"
            if route == "/ping" and method == "GET":
                self._admin_reply(200, {"ok": True, "pid": os.getpid()})
            elif route == "/inject" and method == "POST":
                rules = payload.get("rules") if isinstance(payload, dict) and "rules" in payload else [payload]
                added = [fake.add_injection(r) for r in rules]
                self._admin_reply(200, {"injections": added})
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
                self._admin_reply(200, {"quotas": fake.quotas_view()})
            elif route == "/requests" and method == "GET":
                params = {k: v[0] for k, v in parse_qs(raw_query).items()}
                since = int(params.get("since", 0))
                with fake.lock:
                    entries = [copy.deepcopy(e) for e in fake.log if e["seq"] > since]
                    dropped = fake.log_dropped
                self._admin_reply(200, {"requests": entries, "dropped": dropped})
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
                    self._admin_reply(200, {"config": copy.deepcopy(fake.config)})
            elif route == "/kv" and method in ("POST", "PUT"):
                self._admin_reply(200, fake.seed_kv(payload))
            else:
                self._admin_reply(404, {"error": "no admin route %s %s" % (method, path)})
        except (ValueError, TypeError, KeyError, re.error) as e:
            self._admin_reply(400, {"error": str(e)})


def _loggable_body(body):
    if not body:
        return None
    if len(body) > MAX_LOGGED_BODY:
        return {"_omitted_bytes": len(body)}
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {"_raw": body[:4096].decode("utf-8", "replace")}


def _injected_reply(status, body, headers, lpath):
    if isinstance(body, str):
        return Reply(status, body.encode(), headers=headers)
    if body is not None:
        return Reply(status, go_json(body), headers=headers)
    if status == 429:
        return error_reply(429, "request path %s: rate limit quota exceeded" % go_quote(lpath), headers=headers)
    if status == 204:
        return Reply(204, headers=headers)
    return error_reply(status, *DEFAULT_INJECT_ERRORS.get(status, []), headers=headers)


class Server(ThreadingHTTPServer):
    daemon_threads = True          # a hanging handler must not keep the process alive
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, fake):
        self.fake = fake
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address):
        # Client resets and broken pipes are expected in fault-injection tests.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


def _write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Vault/OpenBao HTTP API for tests (loopback only).")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick a free one)")
    ap.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    ap.add_argument("--root-token", default="root", help="the root token (default: root)")
    ap.add_argument("--state-file", help="load state from here at start if present; save it here on exit")
    ap.add_argument("--flavor", default="intersection", choices=FLAVORS,
                    help="which server's version-specific extras to emit (default: intersection)")
    ap.add_argument("--verbose", action="store_true", help="access log on stderr")
    args = ap.parse_args(argv)

    fake = FakeVault(root_token=args.root_token, flavor=args.flavor, verbose=args.verbose)
    if args.state_file and os.path.exists(args.state_file) and os.path.getsize(args.state_file) > 0:
        with open(args.state_file) as f:
            fake.import_state(json.load(f))

    # Loopback only, always: nothing here is meant to be reachable from elsewhere.
    server = Server(("127.0.0.1", args.port), fake)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1", host

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    if args.port_file:
        _write_atomic(args.port_file, "%d\n" % port)
    sys.stderr.write("vault_fake: listening on http://127.0.0.1:%d (flavor %s)\n" % (port, args.flavor))
    sys.stderr.flush()

    while not stop.wait(0.5):
        pass

    # Wake every hanging/latency handler first so shutdown is prompt.
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
