#!/usr/bin/env python3
"""A fake Kubernetes API server for rekey's integration tests.

It follows shared/docs/provider-contracts.md, section 3 (its "3.0 Corrections"
first) and sections 4-6: Status bodies, Secrets with resourceVersion CAS and the
three patch types, apps/v1 workloads with a simulated rollout that
`kubectl rollout restart` / `kubectl rollout status` work against, Leases,
SelfSubjectAccessReview / SelfSubjectReview, bearer-token and client
certificate authentication, API Priority and Fairness 429s.

Python 3 standard library only, plus the `openssl` command line (a CA, a
server certificate and a client certificate are generated at start).

    python3 tests/fakes/k8s_fake.py --port 0 --port-file PATH --cert-dir DIR
                                    [--plain-http] [--state-file PATH] [--verbose]

It binds 127.0.0.1 only.  DIR receives ca.crt, client-ca.crt, client.crt,
client.key and a ready-to-use kubeconfig.  Test control lives under /__fake/
(no auth, never logged, never throttled or injected): see tests/fakes/README.md.
"""

import argparse
import base64
import binascii
import copy
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

MAX_LOG_ENTRIES = 10000
MAX_BODY = 3 * 1024 * 1024          # the API server's default request body limit
MAX_INJECT_MS = 3600 * 1000
MAX_BIG_BYTES = 1024 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT = 120
TICK = 0.05
DEFAULT_TOKEN = "rekey-token"
DEFAULT_USER = "system:serviceaccount:rekey:rekey"
CLIENT_CN = "rekey-client"
SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.4", "gitCommit": "fake",
                  "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                  "goVersion": "go1.23.6", "compiler": "gc", "platform": "linux/amd64"}
FLOW_SCHEMA_UID = "2a5c6f0e-6d1b-4c7e-9a51-0c1f8a0f5e01"
PRIORITY_LEVEL_UID = "7b1e9d3c-48a2-4f0b-b6de-5e2a7c1d9f02"

# resource plural -> description.  "group" "" is the core group.
RESOURCES = {
    "secrets": {"group": "", "version": "v1", "kind": "Secret", "singular": "secret", "short": [],
                "namespaced": True},
    "deployments": {"group": "apps", "version": "v1", "kind": "Deployment", "singular": "deployment",
                    "short": ["deploy"], "namespaced": True},
    "statefulsets": {"group": "apps", "version": "v1", "kind": "StatefulSet", "singular": "statefulset",
                     "short": ["sts"], "namespaced": True},
    "daemonsets": {"group": "apps", "version": "v1", "kind": "DaemonSet", "singular": "daemonset",
                   "short": ["ds"], "namespaced": True},
    "leases": {"group": "coordination.k8s.io", "version": "v1", "kind": "Lease", "singular": "lease",
               "short": [], "namespaced": True},
}
WORKLOADS = ("deployments", "statefulsets", "daemonsets")
OBJ_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
ALL_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def api_version(res):
    r = RESOURCES[res]
    return r["version"] if not r["group"] else "%s/%s" % (r["group"], r["version"])


def qualified(res):
    """`secrets`, `deployments.apps`, `leases.coordination.k8s.io` (errors.go's qualifiedResource)."""
    g = RESOURCES[res]["group"] if res in RESOURCES else ""
    return res if not g else "%s.%s" % (res, g)


def now_rfc3339(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def micro_time(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def go_json(v):
    s = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (s + "\n").encode("utf-8", "surrogatepass")


def q(s):
    return json.dumps(s, ensure_ascii=False)


# --------------------------------------------------------------------------
# Status objects (apimachinery pkg/api/errors)
# --------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details
        self.headers = headers or {}

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason}
        if self.details:
            st["details"] = self.details
        st["code"] = self.code
        return st


def _details(res, name):
    d = {}
    if name:
        d["name"] = name
    g = RESOURCES.get(res, {}).get("group", "")
    if g:
        d["group"] = g
    d["kind"] = res
    return d


def not_found(res, name):
    return ApiError(404, "NotFound", "%s %s not found" % (qualified(res), q(name)), _details(res, name))


def already_exists(res, name):
    return ApiError(409, "AlreadyExists", "%s %s already exists" % (qualified(res), q(name)), _details(res, name))


def conflict(res, name):
    return ApiError(409, "Conflict", "Operation cannot be fulfilled on %s %s: the object has been modified; "
                    "please apply your changes to the latest version and try again" % (qualified(res), q(name)),
                    _details(res, name))


def invalid(res, name, causes):
    """causes: [(field, message-after-field, reason)]"""
    kind = RESOURCES[res]["kind"]
    g = RESOURCES[res]["group"]
    gk = kind if not g else "%s.%s" % (kind, g)
    # errors.NewInvalid: `Kind "name" is invalid: field: msg` (one cause) or `[a, b]`.
    texts = ["%s: %s" % (f, m) for f, m, _ in causes]
    msg = "%s %s is invalid: %s" % (gk, q(name), texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]")
    det = _details(res, name)
    det["kind"] = kind
    det["causes"] = [{"reason": r, "message": m, "field": f} for f, m, r in causes]
    return ApiError(422, "Invalid", msg, det)


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def forbidden(res, name, user, verb, ns, group=None):
    g = RESOURCES[res]["group"] if group is None and res in RESOURCES else (group or "")
    qr = res if not g else "%s.%s" % (res, g)
    who = "%s %s" % (qr, q(name)) if name else qr
    where = "in the namespace %s" % q(ns) if ns else "at the cluster scope"
    msg = "%s is forbidden: User %s cannot %s resource %s in API group %s %s" % (
        who, q(user), verb, q(res), q(g), where)
    det = {}
    if name:
        det["name"] = name
    if g:
        det["group"] = g
    det["kind"] = res
    return ApiError(403, "Forbidden", msg, det)


UNAUTHORIZED = ApiError(401, "Unauthorized", "Unauthorized")
NOT_FOUND_PATH = ApiError(404, "NotFound", "the server could not find the requested resource")


def method_not_allowed(method):
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


# --------------------------------------------------------------------------
# Minimal protobuf reader: kubectl sends some bodies as
# application/vnd.kubernetes.protobuf ("k8s\0" + runtime.Unknown).
# --------------------------------------------------------------------------

def _varint(b, i):
    shift = r = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << shift
        if c < 0x80:
            return r, i
        shift += 7


def pb_fields(b):
    """[(field number, wire type, value)] for one message."""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        fn, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v = bytes(b[i:i + n])
            i += n
        elif wt == 1:
            v = b[i:i + 8]
            i += 8
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        else:
            raise ValueError("unsupported protobuf wire type %d" % wt)
        out.append((fn, wt, v))
    return out


def _pb_map(entries, bytes_values):
    m = {}
    for e in entries:
        k = v = b""
        for fn, _, val in pb_fields(e):
            if fn == 1:
                k = val
            elif fn == 2:
                v = val
        m[k.decode()] = base64.b64encode(v).decode() if bytes_values else v.decode()
    return m


def _pb_meta(b):
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta, labels, ann = {}, [], []
    for fn, wt, v in pb_fields(b):
        if fn in names and wt == 2 and v:
            meta[names[fn]] = v.decode()
        elif fn == 11:
            labels.append(v)
        elif fn == 12:
            ann.append(v)
    if labels:
        meta["labels"] = _pb_map(labels, False)
    if ann:
        meta["annotations"] = _pb_map(ann, False)
    return meta


def _pb_strings(b, names):
    d = {}
    for fn, wt, v in pb_fields(b):
        if fn in names and wt == 2 and v:
            d[names[fn]] = v.decode()
    return d


def decode_protobuf(body):
    if body[:4] != b"k8s\x00":
        raise ValueError("missing protobuf magic")
    api, kind, raw = "", "", b""
    for fn, _, v in pb_fields(body[4:]):
        if fn == 1:
            tm = _pb_strings(v, {1: "apiVersion", 2: "kind"})
            api, kind = tm.get("apiVersion", ""), tm.get("kind", "")
        elif fn == 2:
            raw = v
    obj = {"apiVersion": api, "kind": kind}
    f = pb_fields(raw)
    if kind == "Secret":
        data, sdata = [], []
        for fn, wt, v in f:
            if fn == 1:
                obj["metadata"] = _pb_meta(v)
            elif fn == 2:
                data.append(v)
            elif fn == 3 and v:
                obj["type"] = v.decode()
            elif fn == 4:
                sdata.append(v)
            elif fn == 5:
                obj["immutable"] = bool(v)
        if data:
            obj["data"] = _pb_map(data, True)
        if sdata:
            obj["stringData"] = _pb_map(sdata, False)
    elif kind == "SelfSubjectAccessReview":
        spec = {}
        for fn, wt, v in f:
            if fn == 2:
                for fn2, _, v2 in pb_fields(v):
                    if fn2 == 1:
                        spec["resourceAttributes"] = _pb_strings(v2, {1: "namespace", 2: "verb", 3: "group",
                                                                      4: "version", 5: "resource",
                                                                      6: "subresource", 7: "name"})
                    elif fn2 == 2:
                        spec["nonResourceAttributes"] = _pb_strings(v2, {1: "path", 2: "verb"})
        obj["spec"] = spec
    else:
        for fn, wt, v in f:
            if fn == 1 and wt == 2:
                obj["metadata"] = _pb_meta(v)
    return obj


# --------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------

def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# Patch merge keys of the built-in types that appear in these objects (k8s.io/api tags).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name",
              "env": "name", "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort",
              "imagePullSecrets": "name", "conditions": "type", "hostAliases": "ip",
              "volumeDevices": "devicePath", "ownerReferences": "uid"}
MERGED_PRIMITIVE_LISTS = {"finalizers"}


def strategic_merge(target, patch):
    """Two-way strategic merge patch for built-in types (maps as merge patch,
    keyed lists merged by patch key, directives $patch, $retainKeys,
    $setElementOrder/, $deleteFromPrimitiveList/)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        p = {k: v for k, v in patch.items() if k != "$patch"}
        return copy.deepcopy(p)
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(out.get(name), list):
                out[name] = [x for x in out[name] if x not in (v or [])]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            r = strategic_merge(out.get(k), v)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
        elif isinstance(v, list) and k in MERGE_KEYS and isinstance(out.get(k), list):
            key = MERGE_KEYS[k]
            cur = copy.deepcopy(out[k])
            for el in v:
                if not isinstance(el, dict):
                    continue
                idx = next((i for i, c in enumerate(cur) if isinstance(c, dict) and c.get(key) == el.get(key)), None)
                if el.get("$patch") == "delete":
                    if idx is not None:
                        cur.pop(idx)
                elif idx is None:
                    cur.append({a: b for a, b in el.items() if a != "$patch"})
                else:
                    cur[idx] = strategic_merge(cur[idx], el)
            out[k] = cur
        elif isinstance(v, list) and k in MERGED_PRIMITIVE_LISTS and isinstance(out.get(k), list):
            out[k] = out[k] + [x for x in v if x not in out[k]]
        else:
            out[k] = copy.deepcopy(v)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


class JsonPatchError(Exception):
    pass


def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise JsonPatchError("invalid JSON pointer %s" % q(path))
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise JsonPatchError("missing value")
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise JsonPatchError("missing value")
        else:
            raise JsonPatchError("missing value")
    return cur


def json_patch(doc, ops):
    """RFC 6902 (the subset evanphx/json-patch implements)."""
    if not isinstance(ops, list):
        raise JsonPatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict):
            raise JsonPatchError("invalid operation")
        kind = op.get("op")
        parts = _ptr(op.get("path", ""))
        if kind == "test":
            try:
                got = _walk(doc, parts)
            except JsonPatchError:
                got = None
            if got != op.get("value"):
                raise JsonPatchError("testing value %s failed: test failed" % op.get("path"))
            continue
        if kind in ("move", "copy"):
            val = copy.deepcopy(_walk(doc, _ptr(op.get("from", ""))))
            if kind == "move":
                fparts = _ptr(op.get("from", ""))
                par = _walk(doc, fparts[:-1])
                if isinstance(par, list):
                    par.pop(int(fparts[-1]))
                else:
                    del par[fparts[-1]]
            kind, op = "add", {"value": val}
        if not parts:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op.get("value"))
                continue
            raise JsonPatchError("unable to remove the document root")
        par = _walk(doc, parts[:-1])
        last = parts[-1]
        if kind == "add":
            if isinstance(par, list):
                if last == "-":
                    par.append(copy.deepcopy(op.get("value")))
                else:
                    i = int(last)
                    if i > len(par):
                        raise JsonPatchError("add operation does not apply: doc is missing path: %s" % op.get("path"))
                    par.insert(i, copy.deepcopy(op.get("value")))
            elif isinstance(par, dict):
                par[last] = copy.deepcopy(op.get("value"))
            else:
                raise JsonPatchError("add operation does not apply: doc is missing path: %s" % op.get("path"))
        elif kind in ("remove", "replace"):
            try:
                if isinstance(par, list):
                    i = int(last)
                    par[i]
                elif isinstance(par, dict):
                    par[last]
                else:
                    raise KeyError
            except (KeyError, ValueError, IndexError):
                raise JsonPatchError("%s operation does not apply: doc is missing key: %s" % (kind, op.get("path")))
            if kind == "remove":
                if isinstance(par, list):
                    par.pop(i)
                else:
                    del par[last]
            else:
                if isinstance(par, list):
                    par[i] = copy.deepcopy(op.get("value"))
                else:
                    par[last] = copy.deepcopy(op.get("value"))
        else:
            raise JsonPatchError("Unexpected kind: %s" % kind)
    return doc


PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


# --------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------

def _match_labels(sel, labels):
    for term in [t.strip() for t in sel.split(",") if t.strip()]:
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.strip().rstrip("=")) != v.strip().lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _match_fields(sel, obj):
    md = obj.get("metadata", {})
    for term in [t.strip() for t in sel.split(",") if t.strip()]:
        neg = "!=" in term
        k, v = re.split(r"!=|==|=", term, maxsplit=1)
        val = {"metadata.name": md.get("name"), "metadata.namespace": md.get("namespace")}.get(k.strip())
        if val is None and k.strip() not in ("metadata.name", "metadata.namespace"):
            if obj.get("kind") == "Secret" and k.strip() == "type":
                val = obj.get("type", "")
            else:
                raise bad_request("field label not supported: %s" % k.strip())
        if (val == v.strip()) == neg:
            return False
    return True


# --------------------------------------------------------------------------
# The fake cluster
# --------------------------------------------------------------------------

DEFAULT_CONFIG = {
    "rollout_seconds": 2.0,          # whole rollout of one object
    "rollout_mode": "normal",        # normal | stuck | crashloop
    "observe_delay": 0.1,            # controller sees a new generation after this
    "daemonset_nodes": 2,            # desiredNumberScheduled of every DaemonSet
    "objects": {},                   # "deployments/ns/name": {"rollout_seconds", "rollout_mode"}
    "base64_error": "auto",          # auto (create/update 400, patch 422) | invalid (always 422)
    "apf_headers": True,             # X-Kubernetes-PF-* on every answer that passes APF
}


class FakeK8s:
    def __init__(self, verbose=False):
        self.verbose = verbose
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.shutdown_event = threading.Event()
        self.port = 0
        self.reset_all()

    def reset_all(self):
        with self.lock:
            self.config = copy.deepcopy(DEFAULT_CONFIG)
            self.tokens = {DEFAULT_TOKEN: {"user": DEFAULT_USER, "groups": [
                "system:serviceaccounts", "system:serviceaccounts:rekey", "system:authenticated"],
                "rules": None, "uid": "0d4c6a2e-1b7f-4e55-9c0a-5f2d3e4b6a71"}}
            self.client_certs = {CLIENT_CN: {"rules": None}}
            self.rv = 1000
            self.objects = {}       # (res, ns, name) -> object
            self.rollouts = {}      # (res, ns, name) -> {"start", "gen", "template_hash", "old_hash"}
            self.injections = []
            self.next_injection_id = 1
            self.quota = None
            self.log = []
            self.log_seq = 0
            self.log_dropped = 0
            self.changed.notify_all()

    # ------------------------------------------------------------ state
    def export_state(self):
        with self.lock:
            return {"config": copy.deepcopy(self.config), "tokens": copy.deepcopy(self.tokens),
                    "client_certs": copy.deepcopy(self.client_certs), "resourceVersion": self.rv,
                    "objects": [copy.deepcopy(o) for _, o in sorted(self.objects.items())],
                    "rollouts": [{"resource": k[0], "namespace": k[1], "name": k[2], **v}
                                 for k, v in sorted(self.rollouts.items())],
                    "injections": copy.deepcopy(self.injections),
                    "quota": copy.deepcopy(self.quota), "now": time.time()}

    def import_state(self, st):
        with self.lock:
            self.config.update(st.get("config", {}))
            self.tokens = st.get("tokens", self.tokens)
            self.client_certs = st.get("client_certs", self.client_certs)
            self.rv = int(st.get("resourceVersion", self.rv))
            self.objects = {}
            for o in st.get("objects", []):
                res = self._res_of(o)
                self.objects[(res, o["metadata"].get("namespace", ""), o["metadata"]["name"])] = o
            self.rollouts = {}
            for r in st.get("rollouts", []):
                r = dict(r)
                key = (r.pop("resource"), r.pop("namespace"), r.pop("name"))
                self.rollouts[key] = r

    @staticmethod
    def _res_of(o):
        for res, d in RESOURCES.items():
            if d["kind"] == o.get("kind"):
                return res
        raise ValueError("unknown kind %r" % o.get("kind"))

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    # ------------------------------------------------------------ auth
    def authenticate(self, headers, peer_cert):
        auth = headers.get("Authorization", "")
        if auth:
            m = re.match(r"(?i)bearer\s+(\S+)\s*$", auth)
            if not m or m.group(1) not in self.tokens:
                return None
            t = self.tokens[m.group(1)]
            return {"user": t["user"], "groups": list(t.get("groups") or ["system:authenticated"]),
                    "rules": t.get("rules"), "uid": t.get("uid", ""), "via": "token"}
        if peer_cert:
            cn, orgs = "", []
            for rdn in peer_cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
                    elif k == "organizationName":
                        orgs.append(v)
            entry = self.client_certs.get(cn, {"rules": []})
            return {"user": cn, "groups": orgs + ["system:authenticated"], "rules": entry.get("rules"),
                    "uid": "", "via": "certificate"}
        return None

    @staticmethod
    def allowed(user, verb, res, ns, name, group=None):
        rules = user["rules"]
        if rules is None:
            return True
        for r in rules:
            verbs = r.get("verbs", ["*"])
            rs = r.get("resources", ["*"])
            nss = r.get("namespaces", ["*"])
            names = r.get("names", ["*"])
            if ("*" in verbs or verb in verbs) and ("*" in rs or res in rs) and \
                    ("*" in nss or ns in nss) and ("*" in names or (name and name in names)):
                return True
        return False

    # ------------------------------------------------------------ injections
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
        obj = rule.get("object")
        if action == "write_before":
            if not isinstance(obj, dict) or obj.get("resource") not in RESOURCES or not obj.get("name") \
                    or not isinstance(obj.get("patch"), dict):
                raise ValueError("write_before needs object: {resource, namespace, name, patch}")
        count = int(rule.get("count", 1))
        if count == 0 or count < -1:
            raise ValueError("count must be positive, or -1 for unlimited")
        with self.lock:
            r = {"id": self.next_injection_id, "path_regex": regex, "method": sorted(methods), "action": action,
                 "status": rule.get("status"), "body": rule.get("body"),
                 "headers": dict(rule.get("headers") or {}), "count": count, "skip": int(rule.get("skip", 0)),
                 "ms": ms, "bytes": nbytes, "matched": 0, "object": copy.deepcopy(obj)}
            self.next_injection_id += 1
            self.injections.append(r)
            return copy.deepcopy(r)

    def take_injection(self, method, path):
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

    def write_before(self, spec):
        with self.lock:
            key = (spec["resource"], spec.get("namespace", "default"), spec["name"])
            cur = self.objects.get(key)
            if cur is None:
                return
            new = merge_patch(cur, spec["patch"])
            new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            self._store(spec["resource"], key[1], key[2], new, cur, "patch")

    # ------------------------------------------------------------ quota (APF)
    def set_quota(self, body):
        with self.lock:
            if not body or (body.get("rps") is None and body.get("max_requests") is None):
                self.quota = None
                return None
            extra = set(body) - {"rps", "max_requests", "interval", "retry_after", "path_regex", "style"}
            if extra:
                raise ValueError("unknown quota keys: %s" % ", ".join(sorted(extra)))
            if body.get("rps") is not None:
                mx, interval = int(body["rps"]), 1.0
            else:
                mx, interval = int(body["max_requests"]), float(body.get("interval") or 0)
            style = body.get("style", "apf")
            if style not in ("apf", "status"):
                raise ValueError("style must be apf or status")
            re.compile(body.get("path_regex", ".*"))
            self.quota = {"max_requests": mx, "interval": interval,
                          "retry_after": int(body.get("retry_after", 1)), "path_regex": body.get("path_regex", ".*"),
                          "style": style, "window_start": time.time(), "count": 0, "rejected": 0}
            return copy.deepcopy(self.quota)

    def check_quota(self, path):
        with self.lock:
            qu = self.quota
            if qu is None or not re.search(qu["path_regex"], path):
                return None
            now = time.time()
            if qu["interval"] and now - qu["window_start"] >= qu["interval"]:
                qu["window_start"], qu["count"] = now, 0
            qu["count"] += 1
            if qu["count"] <= qu["max_requests"]:
                return None
            qu["rejected"] += 1
            return qu["style"], qu["retry_after"]

    # ------------------------------------------------------------ log
    def log_begin(self, entry):
        with self.lock:
            self.log_seq += 1
            entry["seq"] = self.log_seq
            self.log.append(entry)
            if len(self.log) > MAX_LOG_ENTRIES:
                self.log.pop(0)
                self.log_dropped += 1
            return entry

    def log_finish(self, entry, status, outcome=None, applied_status=None):
        with self.lock:
            entry["status"] = status
            entry["duration_ms"] = int((time.time() - entry["time"]) * 1000)
            if outcome:
                entry["outcome"] = outcome
            if applied_status is not None:
                entry["applied_status"] = applied_status

    # ------------------------------------------------------------ objects
    def _rollout_conf(self, res, ns, name):
        o = self.config["objects"].get("%s/%s/%s" % (res, ns, name), {})
        return (float(o.get("rollout_seconds", self.config["rollout_seconds"])),
                o.get("rollout_mode", self.config["rollout_mode"]))

    def _defaults(self, res, obj):
        spec = obj.setdefault("spec", {}) if res in WORKLOADS or res == "leases" else None
        if res in WORKLOADS:
            spec.setdefault("selector", {"matchLabels": (spec.get("template", {}).get("metadata", {})
                                                         .get("labels", {}))})
            spec.setdefault("template", {}).setdefault("metadata", {})
            spec["template"].setdefault("spec", {}).setdefault("containers", [])
            spec.setdefault("revisionHistoryLimit", 10)
        if res == "deployments":
            spec.setdefault("replicas", 1)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        elif res == "statefulsets":
            spec.setdefault("replicas", 1)
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("serviceName", "")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        elif res == "daemonsets":
            spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                               "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        elif res == "secrets":
            obj.setdefault("type", "Opaque")

    def _validate(self, res, name, obj, old, in_patch):
        causes = []
        if res == "secrets":
            data = obj.get("data") or {}
            if not isinstance(data, dict):
                raise bad_request("Secret in version \"v1\" cannot be handled as a Secret: json: cannot "
                                  "unmarshal %s into Go struct field Secret.data of type map[string][]uint8"
                                  % type(data).__name__)
            for k, v in sorted(data.items()):
                try:
                    if not isinstance(v, str):
                        raise binascii.Error("not a string")
                    base64.b64decode(v, validate=True)
                    ok = True
                except (binascii.Error, ValueError):
                    ok = False
                if not ok:
                    pos = _first_bad_b64(v) if isinstance(v, str) else 0
                    text = "illegal base64 data at input byte %d" % pos
                    if in_patch or self.config["base64_error"] == "invalid":
                        causes.append(("data[%s]" % k, "Invalid value: %s: %s" % (
                            q(v if isinstance(v, str) else str(v)), text), "FieldValueInvalid"))
                    else:
                        raise bad_request("Secret in version \"v1\" cannot be handled as a Secret: %s" % text)
            for k in sorted(list(data) + list((obj.get("stringData") or {}))):
                if not re.fullmatch(r"[-._a-zA-Z0-9]+", k):
                    causes.append(("data[%s]" % k, "Invalid value: %s: a valid config key must consist of "
                                   "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
                                   "or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')" % q(k),
                                   "FieldValueInvalid"))
            if old is not None and old.get("immutable") and (
                    obj.get("data") != old.get("data") or obj.get("stringData")):
                causes.append(("data", "Forbidden: field is immutable when `immutable` is set", "FieldValueForbidden"))
            if old is not None and obj.get("type", "Opaque") != old.get("type", "Opaque"):
                causes.append(("type", "Invalid value: %s: field is immutable" % q(obj.get("type")),
                               "FieldValueInvalid"))
        if res == "leases":
            lds = obj.get("spec", {}).get("leaseDurationSeconds")
            if lds is not None and (not isinstance(lds, int) or lds <= 0):
                causes.append(("spec.leaseDurationSeconds", "Invalid value: %s: must be greater than 0" % lds,
                               "FieldValueInvalid"))
            for f in ("acquireTime", "renewTime"):
                v = obj.get("spec", {}).get(f)
                if v is not None and not (isinstance(v, str) and re.fullmatch(
                        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", v)):
                    raise bad_request("Lease in version \"v1\" cannot be handled as a Lease: parsing time %s as "
                                      "\"2006-01-02T15:04:05.000000Z07:00\": cannot parse" % q(str(v)))
        if res in WORKLOADS:
            if not isinstance(obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers"), list) or \
                    not obj["spec"]["template"]["spec"]["containers"]:
                causes.append(("spec.template.spec.containers", "Required value", "FieldValueRequired"))
            r = obj.get("spec", {}).get("replicas")
            if r is not None and (not isinstance(r, int) or r < 0):
                causes.append(("spec.replicas", "Invalid value: %s: must be greater than or equal to 0" % r,
                               "FieldValueInvalid"))
        if causes:
            raise invalid(res, name, causes)

    def _store(self, res, ns, name, obj, old, verb):
        """Write obj (already validated) as the new version.  Caller holds the lock."""
        md = obj.setdefault("metadata", {})
        md["name"], md["namespace"] = name, ns
        md.pop("managedFields", None)
        md.pop("selfLink", None)
        obj["kind"], obj["apiVersion"] = RESOURCES[res]["kind"], api_version(res)
        if res == "secrets":
            sd = obj.pop("stringData", None) or {}
            if sd:
                data = obj.setdefault("data", {}) or {}
                for k, v in sd.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
                obj["data"] = data
            if obj.get("data") == {}:
                del obj["data"]
        if old is None:
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_rfc3339()
            if res in WORKLOADS:
                md["generation"] = 1
                obj["status"] = {}
        else:
            md["uid"] = old["metadata"]["uid"]
            md["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            if res in WORKLOADS:
                # The main resource ignores status writes (status is a subresource).
                obj["status"] = copy.deepcopy(old.get("status", {}))
                md["generation"] = old["metadata"].get("generation", 1)
                if obj.get("spec") != old.get("spec"):
                    md["generation"] += 1
        self._defaults(res, obj)
        if res in WORKLOADS:
            th = _template_hash(obj)
            ro = self.rollouts.get((res, ns, name))
            if old is None or ro is None or ro.get("template_hash") != th:
                old_hash = ro.get("template_hash") if ro else None
                if res == "deployments" and ro is not None:
                    ann = md.setdefault("annotations", {})
                if res == "deployments":
                    ann = md.setdefault("annotations", {})
                    prev = int((old or {}).get("metadata", {}).get("annotations", {}).get(
                        "deployment.kubernetes.io/revision", "0") or 0)
                    ann["deployment.kubernetes.io/revision"] = str(prev + 1)
                self.rollouts[(res, ns, name)] = {"start": time.time(), "gen": md["generation"],
                                                  "template_hash": th, "old_hash": old_hash,
                                                  "deadline_from": time.time()}
            elif res == "deployments" and old is not None:
                # keep the revision annotation the controller owns
                ann = md.setdefault("annotations", {})
                ann.setdefault("deployment.kubernetes.io/revision", old["metadata"].get("annotations", {}).get(
                    "deployment.kubernetes.io/revision", "1"))
            self._advance(res, ns, name, obj, time.time())
        md["resourceVersion"] = self.next_rv()
        self.objects[(res, ns, name)] = obj
        self.changed.notify_all()
        return obj

    # -------------------------------------------------------------- rollouts
    def _advance(self, res, ns, name, obj, now):
        """Recompute obj's status from its rollout; True if it changed."""
        ro = self.rollouts.get((res, ns, name))
        if ro is None:
            return False
        seconds, mode = self._rollout_conf(res, ns, name)
        spec, md = obj.get("spec", {}), obj["metadata"]
        old = copy.deepcopy(obj.get("status", {}))
        elapsed = now - ro["start"]
        observed = elapsed >= self.config["observe_delay"] or ro.get("settled")
        if not observed:
            return False
        st = obj.setdefault("status", {})
        st["observedGeneration"] = md.get("generation", 1)
        first = ro.get("old_hash") is None and not ro.get("settled_initial")
        paused = res == "deployments" and spec.get("paused")
        if ro.get("settled"):
            frac = 1.0
        elif mode in ("stuck", "crashloop"):
            frac = -1.0
        elif paused:
            frac = ro.get("frozen", 0.0)
        else:
            frac = 1.0 if seconds <= 0 else min(1.0, max(0.0, (elapsed - self.config["observe_delay"]) / seconds))
        ro["frozen"] = max(frac, 0.0)
        if res == "daemonsets":
            n = int(self.config["daemonset_nodes"])
        else:
            n = int(spec.get("replicas", 1))
        done = frac >= 1.0
        k = n if done else (0 if frac < 0 else min(n - 1, int(frac * n)))
        crash = mode == "crashloop" and not done
        rev_new = "%s-%s" % (md["name"], ro["template_hash"][:10])
        rev_old = "%s-%s" % (md["name"], (ro.get("old_hash") or ro["template_hash"])[:10])
        if res == "deployments":
            if done or n == 0:
                counts = {"replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n}
            elif first:
                counts = {"replicas": k + 1, "updatedReplicas": k + 1, "readyReplicas": k, "availableReplicas": k,
                          "unavailableReplicas": n - k}
            else:
                # one surge pod of the new ReplicaSet not yet ready; the old ones still serve
                counts = {"replicas": n + 1, "updatedReplicas": k + 1, "readyReplicas": n, "availableReplicas": n,
                          "unavailableReplicas": 1}
            for f in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
                st.pop(f, None)
                if counts.get(f):
                    st[f] = counts[f]       # omitempty: zero counters are absent
            t = now_rfc3339(now)
            conds = {c["type"]: c for c in st.get("conditions", [])}
            avail_ok = counts["availableReplicas"] >= max(0, n - max(1, n // 4)) if n else True

            def cond(typ, status, reason, message):
                c = conds.get(typ)
                if c and c["status"] == status and c["reason"] == reason:
                    return c
                return {"type": typ, "status": status, "lastUpdateTime": t,
                        "lastTransitionTime": t if not c or c["status"] != status else c["lastTransitionTime"],
                        "reason": reason, "message": message}
            rs = rev_new
            ca = cond("Available", "True" if avail_ok else "False",
                      "MinimumReplicasAvailable" if avail_ok else "MinimumReplicasUnavailable",
                      "Deployment has minimum availability." if avail_ok else
                      "Deployment does not have minimum availability.")
            deadline = spec.get("progressDeadlineSeconds", 600)
            if done:
                cp = cond("Progressing", "True", "NewReplicaSetAvailable",
                          "ReplicaSet %s has successfully progressed." % q(rs))
            elif paused:
                cp = cond("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
            elif frac < 0 and now - ro["deadline_from"] > deadline:
                cp = cond("Progressing", "False", "ProgressDeadlineExceeded",
                          "ReplicaSet %s has timed out progressing." % q(rs))
            else:
                cp = cond("Progressing", "True", "ReplicaSetUpdated", "ReplicaSet %s is progressing." % q(rs))
            cl = [ca, cp]
            if crash:
                cl.append(cond("ReplicaFailure", "True", "CrashLoopBackOff",
                               "back-off restarting failed container in pod %s" % q(rs + "-x7k2p")))
            st["conditions"] = cl
        elif res == "statefulsets":
            if done:
                ready, updated, current = n, n, n
            else:
                updated = k
                ready = k if first else n - 1
                current = 0 if first else n - k - 1
            st["replicas"] = n
            st["availableReplicas"] = ready
            for f, v in (("readyReplicas", ready), ("currentReplicas", current), ("updatedReplicas", updated)):
                st.pop(f, None)
                if v:
                    st[f] = v
            st["updateRevision"] = rev_new
            st["currentRevision"] = rev_new if done else rev_old
            st.setdefault("collisionCount", 0)
            if crash:
                st["conditions"] = [{"type": "CrashLoopBackOff", "status": "True", "lastTransitionTime": now_rfc3339(now),
                                     "reason": "CrashLoopBackOff",
                                     "message": "pod %s: back-off restarting failed container" % q("%s-%d" % (md["name"], n - 1))}]
            else:
                st.pop("conditions", None)
        else:
            avail = n if done else (k if first else n - 1)
            st["currentNumberScheduled"] = n
            st["numberMisscheduled"] = 0
            st["desiredNumberScheduled"] = n
            st["numberReady"] = avail
            for f, v in (("updatedNumberScheduled", n if done else k), ("numberAvailable", avail),
                         ("numberUnavailable", n - avail)):
                st.pop(f, None)
                if v:
                    st[f] = v
            if crash:
                st["conditions"] = [{"type": "CrashLoopBackOff", "status": "True", "lastTransitionTime": now_rfc3339(now),
                                     "reason": "CrashLoopBackOff",
                                     "message": "pod %s: back-off restarting failed container" % q(md["name"] + "-x7k2p")}]
            else:
                st.pop("conditions", None)
        if done and not ro.get("settled"):
            ro["settled"] = True
            ro["old_hash"] = ro["template_hash"]
        return st != old

    def tick(self):
        now = time.time()
        with self.lock:
            for key, obj in list(self.objects.items()):
                if key[0] in WORKLOADS and key in self.rollouts and not self.rollouts[key].get("settled_rv") == \
                        obj["metadata"]["resourceVersion"]:
                    if self._advance(key[0], key[1], key[2], obj, now):
                        obj["metadata"]["resourceVersion"] = self.next_rv()
                        self.changed.notify_all()
                    if self.rollouts[key].get("settled"):
                        self.rollouts[key]["settled_rv"] = obj["metadata"]["resourceVersion"]

    def seed(self, body):
        objs = body.get("objects") if isinstance(body, dict) and "objects" in body else [body]
        out = []
        with self.lock:
            for o in objs:
                o = copy.deepcopy(o)
                res = self._res_of(o)
                md = o.setdefault("metadata", {})
                ns, name = md.get("namespace") or "default", md.get("name")
                if not name:
                    raise ValueError("metadata.name is required")
                key = (res, ns, name)
                old = self.objects.get(key)
                status = o.pop("status", None)
                rollout = o.pop("rollout", False) if res in WORKLOADS else False
                md.pop("resourceVersion", None)
                self._store(res, ns, name, o, old, "seed")
                if res in WORKLOADS:
                    ro = self.rollouts[key]
                    if not rollout:
                        ro.update(settled=True, old_hash=ro["template_hash"])
                        self._advance(res, ns, name, o, time.time())
                    if status is not None:
                        o["status"] = status
                        ro["settled"] = True
                        ro["settled_rv"] = o["metadata"]["resourceVersion"]
                out.append(copy.deepcopy(o))
        return {"objects": out}

    def apply_config(self, body):
        with self.lock:
            for k, v in body.items():
                if k == "tokens":
                    for t in v:
                        if not t.get("token"):
                            raise ValueError("a token needs \"token\"")
                        if t.get("delete"):
                            self.tokens.pop(t["token"], None)
                            continue
                        self.tokens[t["token"]] = {"user": t.get("user", "system:serviceaccount:default:" + t["token"]),
                                                   "groups": t.get("groups") or ["system:authenticated"],
                                                   "rules": t.get("rules"), "uid": t.get("uid", "")}
                elif k == "client_certs":
                    for cn, e in v.items():
                        self.client_certs[cn] = {"rules": (e or {}).get("rules")}
                elif k == "objects":
                    for name, e in v.items():
                        if name.split("/")[0] not in WORKLOADS or len(name.split("/")) != 3:
                            raise ValueError("objects keys are \"<deployments|statefulsets|daemonsets>/<ns>/<name>\"")
                        if e.get("rollout_mode", "normal") not in ("normal", "stuck", "crashloop"):
                            raise ValueError("rollout_mode must be normal, stuck or crashloop")
                        self.config["objects"][name] = dict(e)
                elif k in DEFAULT_CONFIG:
                    if k == "rollout_mode" and v not in ("normal", "stuck", "crashloop"):
                        raise ValueError("rollout_mode must be normal, stuck or crashloop")
                    if k == "base64_error" and v not in ("auto", "invalid"):
                        raise ValueError("base64_error must be auto or invalid")
                    self.config[k] = v
                else:
                    raise ValueError("unknown config key %r" % k)
            return self.config_view()

    def config_view(self):
        return {"config": copy.deepcopy(self.config), "tokens": copy.deepcopy(self.tokens),
                "client_certs": copy.deepcopy(self.client_certs)}

    # -------------------------------------------------------------- API
    def process(self, ctx):
        """-> (status, obj or bytes, extra headers).  Raises ApiError."""
        p = ctx.path.rstrip("/") if ctx.path != "/" else "/"
        m = ctx.method
        if p == "/version":
            return 200, dict(SERVER_VERSION)
        if p == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:%d" % self.port}]}
        if p == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                _group(g) for g in ("apps", "coordination.k8s.io", "authentication.k8s.io", "authorization.k8s.io")]}
        if p == "/openapi/v3":
            return 200, {"paths": {k.lstrip("/"): {"serverRelativeURL": "/openapi/v3%s?hash=%s" % (
                k, hashlib.sha256(k.encode()).hexdigest()[:16].upper())} for k in _DISCOVERY}}
        if p.startswith("/openapi/v3/") and p[len("/openapi/v3"):] in _DISCOVERY:
            return 200, openapi_v3(p[len("/openapi/v3"):])
        gv = _DISCOVERY.get(p)
        if gv is not None:
            return 200, gv
        if p in ("/apis/apps", "/apis/coordination.k8s.io", "/apis/authorization.k8s.io", "/apis/authentication.k8s.io"):
            g = _group(p[len("/apis/"):])
            g.update(kind="APIGroup", apiVersion="v1")
            return 200, g
        if p == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            if m != "POST":
                raise method_not_allowed(m)
            return self.ssar(ctx)
        if p == "/apis/authentication.k8s.io/v1/selfsubjectreviews":
            if m != "POST":
                raise method_not_allowed(m)
            u = ctx.user
            ui = {"username": u["user"], "groups": u["groups"]}
            if u.get("uid"):
                ui["uid"] = u["uid"]
            return 201, {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                         "metadata": {"creationTimestamp": None}, "status": {"userInfo": ui}}
        mt = re.fullmatch(r"/api/v1(?:/namespaces/([^/]+))?/(secrets)(?:/([^/]+))?", p) or \
            re.fullmatch(r"/apis/apps/v1(?:/namespaces/([^/]+))?/(deployments|statefulsets|daemonsets)(?:/([^/]+))?", p) or \
            re.fullmatch(r"/apis/coordination\.k8s\.io/v1(?:/namespaces/([^/]+))?/(leases)(?:/([^/]+))?", p)
        if not mt:
            raise NOT_FOUND_PATH
        ns, res, name = mt.group(1), mt.group(2), mt.group(3)
        ns = unquote(ns) if ns else None
        name = unquote(name) if name else None
        if name is None:
            if m == "GET":
                verb = "watch" if ctx.query.get("watch") in ("1", "true") else "list"
            elif m == "POST":
                verb = "create"
            elif m == "DELETE":
                verb = "deletecollection"
            else:
                raise method_not_allowed(m)
        else:
            if ns is None:
                raise NOT_FOUND_PATH
            verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(m)
            if verb is None:
                raise method_not_allowed(m)
        if not self.allowed(ctx.user, verb, res, ns or "", name):
            raise forbidden(res, name, ctx.user["user"], verb, ns)
        ctx.res, ctx.ns, ctx.name, ctx.verb = res, ns, name, verb
        dry = ctx.query.get("dryRun") == "All"
        with self.lock:
            if verb == "get":
                o = self.objects.get((res, ns, name))
                if o is None:
                    raise not_found(res, name)
                return 200, copy.deepcopy(o)
            if verb in ("list", "watch"):
                items = self._list(res, ns, ctx.query)
                if verb == "watch":
                    return "watch", items
                return 200, {"kind": RESOURCES[res]["kind"] + "List", "apiVersion": api_version(res),
                             "metadata": {"resourceVersion": str(self.rv)}, "items": items}
            if verb == "create":
                return self.create(ctx, res, ns, dry)
            if verb == "update":
                return self.update(ctx, res, ns, name, dry)
            if verb == "patch":
                return self.patch(ctx, res, ns, name, dry)
            if verb == "delete":
                o = self.objects.get((res, ns, name))
                if o is None:
                    raise not_found(res, name)
                pre = (ctx.json_body() or {}).get("preconditions") or {} if ctx.body else {}
                if pre.get("resourceVersion") and pre["resourceVersion"] != o["metadata"]["resourceVersion"]:
                    raise conflict(res, name)
                if not dry:
                    del self.objects[(res, ns, name)]
                    self.rollouts.pop((res, ns, name), None)
                    self.rv += 1
                    self.changed.notify_all()
                det = _details(res, name)
                det["uid"] = o["metadata"]["uid"]
                return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                             "details": det}
            if verb == "deletecollection":
                items = self._list(res, ns, ctx.query)
                if not dry:
                    for o in items:
                        self.objects.pop((res, o["metadata"]["namespace"], o["metadata"]["name"]), None)
                    self.rv += 1
                    self.changed.notify_all()
                return 200, {"kind": RESOURCES[res]["kind"] + "List", "apiVersion": api_version(res),
                             "metadata": {"resourceVersion": str(self.rv)}, "items": items}
        raise NOT_FOUND_PATH

    def _list(self, res, ns, query):
        items = []
        for (r, ons, _), o in sorted(self.objects.items()):
            if r != res or (ns is not None and ons != ns):
                continue
            if query.get("labelSelector") and not _match_labels(query["labelSelector"],
                                                                o["metadata"].get("labels") or {}):
                continue
            if query.get("fieldSelector") and not _match_fields(query["fieldSelector"], o):
                continue
            it = copy.deepcopy(o)
            items.append(it)
        return items

    def _body_obj(self, ctx, res):
        o = ctx.json_body()
        if not isinstance(o, dict):
            raise bad_request("%s in version \"%s\" cannot be handled as a %s: json: cannot unmarshal into "
                              "Go value of type %s" % (RESOURCES[res]["kind"], RESOURCES[res]["version"],
                                                      RESOURCES[res]["kind"], RESOURCES[res]["kind"]))
        kind = o.get("kind")
        if kind and kind != RESOURCES[res]["kind"]:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (o.get("apiVersion"), api_version(res)) if o.get("apiVersion") != api_version(res)
                              else "%s in version %s cannot be handled as a %s: no kind %s is registered" %
                              (RESOURCES[res]["kind"], q(RESOURCES[res]["version"]), RESOURCES[res]["kind"], q(kind)))
        return o

    def create(self, ctx, res, ns, dry):
        o = self._body_obj(ctx, res)
        md = o.setdefault("metadata", {}) or {}
        o["metadata"] = md
        if md.get("namespace") and md["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        name = md.get("name")
        if not name and md.get("generateName"):
            name = md["generateName"] + uuid.uuid4().hex[:5]
        if not name:
            raise invalid(res, "", [("metadata.name", "Required value: name or generateName is required",
                                     "FieldValueRequired")])
        if (res, ns, name) in self.objects:
            raise already_exists(res, name)
        md.pop("resourceVersion", None)
        self._validate(res, name, o, None, False)
        if dry:
            o = copy.deepcopy(o)
            self._store_dry(res, ns, name, o, None)
            return 201, o
        return 201, copy.deepcopy(self._store(res, ns, name, o, None, "create"))

    def _store_dry(self, res, ns, name, o, old):
        saved = (self.rv, copy.deepcopy(self.objects), copy.deepcopy(self.rollouts))
        try:
            r = self._store(res, ns, name, o, old, "dry")
            if old is not None:
                r["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            else:
                r["metadata"].pop("resourceVersion", None)
        finally:
            self.rv, self.objects, self.rollouts = saved

    def update(self, ctx, res, ns, name, dry):
        o = self._body_obj(ctx, res)
        md = o.setdefault("metadata", {}) or {}
        o["metadata"] = md
        if md.get("name") and md["name"] != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (md["name"], name))
        if md.get("namespace") and md["namespace"] != ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        cur = self.objects.get((res, ns, name))
        rv = md.get("resourceVersion")
        if cur is None:
            if rv:
                raise not_found(res, name)
            # Secrets/apps allow create-on-update; leases too (AllowCreateOnUpdate) but need no rv then.
            if res in ("secrets", "leases") or res in WORKLOADS:
                raise not_found(res, name)
        if not rv and res == "leases":
            raise invalid(res, name, [("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update",
                                       "FieldValueInvalid")])
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise conflict(res, name)
        self._validate(res, name, o, cur, False)
        if dry:
            o = copy.deepcopy(o)
            self._store_dry(res, ns, name, o, cur)
            return 200, o
        return 200, copy.deepcopy(self._store(res, ns, name, o, cur, "update"))

    def patch(self, ctx, res, ns, name, dry):
        ct = (ctx.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ct not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json-patch+json, application/merge-patch+json, "
                           "application/apply-patch+yaml, application/strategic-merge-patch+json")
        if ct == "application/apply-patch+yaml":
            raise ApiError(415, "UnsupportedMediaType", "server-side apply is not implemented by k8s_fake")
        cur = self.objects.get((res, ns, name))
        if cur is None:
            raise not_found(res, name)
        try:
            patch = json.loads(ctx.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request("error decoding patch: %s" % e)
        base = copy.deepcopy(cur)
        try:
            if ct == "application/json-patch+json":
                new = json_patch(base, patch)
            elif ct == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise bad_request("json: cannot unmarshal %s into Go value of type map[string]interface {}"
                                      % type(patch).__name__)
                new = merge_patch(base, patch)
            else:
                if not isinstance(patch, dict):
                    raise bad_request("json: cannot unmarshal %s into Go value of type map[string]interface {}"
                                      % type(patch).__name__)
                new = strategic_merge(base, patch)
        except JsonPatchError as e:
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                           {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: %s: %s" % (
                               q(ctx.body.decode("utf-8", "replace")), e), "field": "patch"}]}) \
                if "test failed" not in str(e) else ApiError(
                    422, "Invalid", "the server rejected our request due to an error in our request",
                    {"causes": [{"reason": "FieldValueInvalid", "message": str(e), "field": "patch"}]})
        if not isinstance(new, dict):
            raise bad_request("patched object is not an object")
        new.setdefault("metadata", {})
        nmd = new["metadata"]
        if nmd.get("name", name) != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                              % (nmd.get("name"), name))
        rv = nmd.get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise conflict(res, name)
        nmd["uid"] = cur["metadata"]["uid"]
        self._validate(res, name, new, cur, True)
        if dry:
            self._store_dry(res, ns, name, new, cur)
            return 200, new
        return 200, copy.deepcopy(self._store(res, ns, name, new, cur, "patch"))

    def ssar(self, ctx):
        body = ctx.json_body() or {}
        spec = body.get("spec") or {}
        ra = spec.get("resourceAttributes")
        if ra:
            res = ra.get("resource", "")
            allowed = self.allowed(ctx.user, ra.get("verb", ""), res, ra.get("namespace", ""), ra.get("name"))
            group_ok = res not in RESOURCES or RESOURCES[res]["group"] == ra.get("group", "")
            allowed = allowed and (group_ok or ctx.user["rules"] is None)
        else:
            allowed = True       # discovery paths: system:discovery
        st = {"allowed": bool(allowed)}
        if allowed:
            st["reason"] = "allowed by k8s_fake rules" if ctx.user["rules"] is not None else \
                "RBAC: allowed by ClusterRoleBinding \"k8s-fake-admin\""
        out = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "metadata": {"creationTimestamp": None}, "spec": spec, "status": st}
        return 201, out


def _first_bad_b64(s):
    """Index Go's base64.StdEncoding reports for the first bad byte (approximately)."""
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for i, c in enumerate(s):
        if c == "=":
            rest = s[i:]
            if len(s) % 4 or set(rest) != {"="} or len(rest) > 2:
                return i
            return i
        if c not in alphabet:
            return i
    return len(s) - len(s) % 4 if len(s) % 4 else len(s)


def _template_hash(obj):
    t = json.dumps(obj.get("spec", {}).get("template", {}), sort_keys=True).encode()
    h = hashlib.sha256(t).hexdigest()
    # pod-template-hash alphabet (rand.SafeEncodeString)
    alpha = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alpha[int(h[i:i + 2], 16) % len(alpha)] for i in range(0, 40, 2))


def _group(name):
    v = {"groupVersion": "%s/v1" % name, "version": "v1"}
    return {"name": name, "versions": [v], "preferredVersion": v}


def _resource_list(gv, entries):
    out = []
    for e in entries:
        out.append(e)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


def _res_entry(res):
    d = RESOURCES[res]
    e = {"name": res, "singularName": d["singular"], "namespaced": d["namespaced"], "kind": d["kind"],
         "verbs": OBJ_VERBS}
    if d["short"]:
        e["shortNames"] = d["short"]
    if res in WORKLOADS:
        e["categories"] = ["all"]
    e["storageVersionHash"] = base64.b64encode(hashlib.sha256(res.encode()).digest()[:8]).decode()
    return e


def _sub(name, kind, verbs, namespaced=True, group=None, version=None):
    e = {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs}
    if group:
        e["group"], e["version"] = group, version
    return e


_DISCOVERY = {
    "/api/v1": _resource_list("v1", [_res_entry("secrets")]),
    "/apis/apps/v1": _resource_list("apps/v1", [
        _res_entry("daemonsets"), _sub("daemonsets/status", "DaemonSet", ["get", "patch", "update"]),
        _res_entry("deployments"), _sub("deployments/status", "Deployment", ["get", "patch", "update"]),
        _res_entry("statefulsets"), _sub("statefulsets/status", "StatefulSet", ["get", "patch", "update"])]),
    "/apis/coordination.k8s.io/v1": _resource_list("coordination.k8s.io/v1", [_res_entry("leases")]),
    "/apis/authorization.k8s.io/v1": _resource_list("authorization.k8s.io/v1", [
        _sub("selfsubjectaccessreviews", "SelfSubjectAccessReview", ["create"], namespaced=False)]),
    "/apis/authentication.k8s.io/v1": _resource_list("authentication.k8s.io/v1", [
        _sub("selfsubjectreviews", "SelfSubjectReview", ["create"], namespaced=False)]),
}
for _k in ("/apis/authorization.k8s.io/v1", "/apis/authentication.k8s.io/v1"):
    for _e in _DISCOVERY[_k]["resources"]:
        _e["singularName"] = _e["name"][:-1]


def openapi_v3(gvpath):
    """A minimal OpenAPI v3 document per group-version: the paths with their
    operations, GVK extensions and the query parameters kubectl's
    QueryParamVerifier looks for (fieldValidation, dryRun, fieldManager);
    no schemas (kubectl then uses its built-in types)."""
    gv = _DISCOVERY[gvpath]["groupVersion"]
    group, _, version = gv.rpartition("/")
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]
    paths = {}
    for e in _DISCOVERY[gvpath]["resources"]:
        if "/" in e["name"]:
            continue
        gvk = {"group": group, "version": version, "kind": e["kind"]}

        def op(action, oid):
            return {"operationId": oid, "parameters": params, "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}}
        base = "%s/namespaces/{namespace}/%s" % (gvpath, e["name"]) if e["namespaced"] else \
            "%s/%s" % (gvpath, e["name"])
        paths[base] = {"parameters": params, "post": op("post", "create" + e["kind"]),
                       "get": op("list", "list" + e["kind"])}
        if "get" in e["verbs"]:
            paths[base + "/{name}"] = {"parameters": params, "get": op("get", "read" + e["kind"]),
                                       "put": op("put", "replace" + e["kind"]),
                                       "patch": op("patch", "patch" + e["kind"]),
                                       "delete": op("delete", "delete" + e["kind"])}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


# --------------------------------------------------------------------------
# Table output (kubectl get asks for meta.k8s.io/v1 Table)
# --------------------------------------------------------------------------

def _age(ts):
    try:
        t = time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except (ValueError, TypeError):
        return "<unknown>"
    s = max(0, int(time.time() - t))
    if s < 120:
        return "%ds" % s
    if s < 3600 * 3:
        return "%dm" % (s // 60)
    return "%dh" % (s // 3600)


def _col(name, typ="string", fmt=""):
    return {"name": name, "type": typ, "format": fmt, "description": "", "priority": 0}


def to_table(res, objs, rv):
    cols = [_col("Name", fmt="name")]
    if res == "secrets":
        cols += [_col("Type"), _col("Data", "integer"), _col("Age")]
    elif res == "deployments":
        cols += [_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), _col("Age")]
    elif res == "statefulsets":
        cols += [_col("Ready"), _col("Age")]
    elif res == "daemonsets":
        cols += [_col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                 _col("Up-to-date", "integer"), _col("Available", "integer"), _col("Node Selector"), _col("Age")]
    elif res == "leases":
        cols += [_col("Holder"), _col("Age")]
    rows = []
    for o in objs:
        md, st, sp = o["metadata"], o.get("status", {}), o.get("spec", {})
        age = _age(md.get("creationTimestamp"))
        c = [md["name"]]
        if res == "secrets":
            c += [o.get("type", "Opaque"), len(o.get("data") or {}), age]
        elif res == "deployments":
            c += ["%d/%d" % (st.get("readyReplicas", 0), sp.get("replicas", 1)), st.get("updatedReplicas", 0),
                  st.get("availableReplicas", 0), age]
        elif res == "statefulsets":
            c += ["%d/%d" % (st.get("readyReplicas", 0), sp.get("replicas", 1)), age]
        elif res == "daemonsets":
            sel = sp.get("template", {}).get("spec", {}).get("nodeSelector") or {}
            c += [st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0), st.get("numberReady", 0),
                  st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
                  ",".join("%s=%s" % kv for kv in sorted(sel.items())) or "<none>", age]
        elif res == "leases":
            c += [sp.get("holderIdentity", ""), age]
        pm = {k: v for k, v in md.items() if k != "managedFields"}
        rows.append({"cells": c, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                            "metadata": pm}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": cols, "rows": rows}


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

class Ctx:
    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body
        self.user = None
        self.res = self.ns = self.name = self.verb = None
        self._json = None

    def json_body(self):
        if self._json is None:
            ct = (self.headers.get("Content-Type") or "").lower()
            if not self.body:
                self._json = {}
            elif "protobuf" in ct:
                try:
                    self._json = decode_protobuf(self.body)
                except (ValueError, IndexError, UnicodeDecodeError) as e:
                    raise bad_request("unable to decode protobuf body: %s" % e)
            else:
                try:
                    self._json = json.loads(self.body.decode("utf-8"))
                except (ValueError, UnicodeDecodeError) as e:
                    raise bad_request("Object 'Kind' is missing in '%s' (%s)" %
                                      (self.body[:200].decode("utf-8", "replace"), e))
        return self._json


HTML_PAGE = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")
DEFAULT_INJECT = {
    500: ("InternalError", "Internal error occurred: injected by k8s_fake"),
    502: ("InternalError", "Internal error occurred: upstream connect error"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "Timeout: request did not complete within requested timeout - context deadline exceeded"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    409: ("Conflict", "Operation cannot be fulfilled: injected conflict"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: injected by k8s_fake"),
    404: ("NotFound", "the server could not find the requested resource"),
}


def _redact_body(body, ct):
    if not body:
        return None
    if len(body) > 1024 * 1024:
        return {"_omitted_bytes": len(body)}
    if "protobuf" in (ct or ""):
        try:
            return _redact(decode_protobuf(body))
        except Exception:      # noqa: BLE001 - a log entry must never fail the request
            return {"_protobuf_bytes": len(body)}
    try:
        return _redact(json.loads(body.decode("utf-8")))
    except (ValueError, UnicodeDecodeError):
        return {"_raw": body[:4096].decode("utf-8", "replace")}


def _redact(v):
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k in ("data", "stringData") and isinstance(x, dict):
                out[k] = {kk: (None if xx is None else "<redacted>") for kk, xx in x.items()}
            elif k == "value" and isinstance(v.get("path"), str) and re.match(r"/(data|stringData)(/|$)", v["path"]):
                out[k] = "<redacted>"
            else:
                out[k] = _redact(x)
        return out
    if isinstance(v, list):
        return [_redact(x) for x in v]
    return v


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = IDLE_CONNECTION_TIMEOUT
    server_version = "k8s_fake"
    sys_version = ""

    @property
    def fake(self):
        return self.server.fake

    def setup(self):
        super().setup()
        self.peer_cert = None
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.settimeout(10)
                self.connection.do_handshake()
                self.connection.settimeout(self.timeout)
                self.peer_cert = self.connection.getpeercert() or None
            except (ssl.SSLError, OSError):
                self.close_connection = True
                self._handshake_failed = True

    def handle(self):
        if getattr(self, "_handshake_failed", False):
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, TimeoutError):
            pass

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, fmt, *args):
        if self.fake.verbose:
            sys.stderr.write("k8s_fake: %s %s\n" % (self.address_string(), fmt % args))

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n > MAX_BODY:
            raise ValueError("too large")
        return self.rfile.read(n) if n > 0 else b""

    def _send_raw(self, status, body, ctype="application/json", headers=None, close=False):
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        if body is not None:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body or b"")))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def _abort(self, rst):
        self.close_connection = True
        try:
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def _wait(self, ms):
        return self.fake.shutdown_event.wait(ms / 1000.0)

    def _dispatch(self):
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self._send_raw(413, go_json(ApiError(413, "RequestEntityTooLarge",
                                                 "Request entity too large: limit is 3145728").status()), close=True)
            return
        if url.path == "/__fake" or url.path.startswith("/__fake/"):
            self._admin(url.path, url.query, body)
            return
        self._api(url.path, url.query, body)

    def _api(self, path, raw_query, body):
        fake = self.fake
        method = self.command.upper()
        query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        ctx = Ctx(method, path, query, self.headers, body)
        entry = fake.log_begin({
            "time": time.time(), "method": method, "path": path, "query": raw_query, "query_params": query,
            "headers": {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in self.headers.items()},
            "content_type": self.headers.get("Content-Type"),
            "body": _redact_body(body, self.headers.get("Content-Type")),
            "user": None, "status": None})
        entry["_values_body"] = body
        rule = fake.take_injection(method, path)
        if rule is not None:
            entry["injection"] = rule["id"]
            a = rule["action"]
            if a == "hang":
                self._wait(rule["ms"] or MAX_INJECT_MS)
                fake.log_finish(entry, None, "hang")
                self._abort(rst=False)
                return
            if rule["ms"] and self._wait(rule["ms"]):
                fake.log_finish(entry, None, "shutdown")
                self._abort(rst=False)
                return
            if a in ("reset", "close"):
                fake.log_finish(entry, None, a)
                self._abort(rst=a == "reset")
                return
            if a == "status":
                st = int(rule["status"] or 500)
                fake.log_finish(entry, st, "injected")
                self._send_injected(st, rule)
                return
            if a == "html":
                st = int(rule["status"] or 502)
                fake.log_finish(entry, st, "html")
                self._send_raw(st, rule["body"].encode() if isinstance(rule["body"], str) else HTML_PAGE,
                               "text/html", rule["headers"])
                return
            if a == "big":
                fake.log_finish(entry, int(rule["status"] or 200), "big")
                self._send_big(rule)
                return
            if a == "write_before":
                fake.write_before(rule["object"])

        status, payload, headers, ctype = self._handle(ctx, entry)
        if status == "watch":
            fake.log_finish(entry, 200, "watch")
            self._watch(ctx, payload)
            return
        for k, v in (rule["headers"] if rule else {}).items():
            headers[k] = v
        data = payload if isinstance(payload, bytes) else go_json(payload)
        if rule is not None and rule["action"] == "reset_after_apply":
            fake.log_finish(entry, None, "reset_after_apply", applied_status=status)
            self._abort(rst=True)
            return
        if rule is not None and rule["action"] == "status_after_apply":
            st = int(rule["status"] or 502)
            fake.log_finish(entry, st, "status_after_apply", applied_status=status)
            self._send_injected(st, rule)
            return
        if rule is not None and rule["action"] == "truncated":
            fake.log_finish(entry, None, "truncated", applied_status=status)
            cut = rule["bytes"] if rule["bytes"] is not None else len(data) // 2
            cut = max(0, min(cut, len(data) - 1))
            self.send_response_only(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data[:cut])
                self.wfile.flush()
            except OSError:
                pass
            self._abort(rst=False)
            return
        fake.log_finish(entry, status, "latency" if rule is not None else None)
        self._send_raw(status, data, ctype, headers)

    def _handle(self, ctx, entry):
        """-> (status, payload, headers, content type)"""
        fake = self.fake
        headers = {}
        with fake.lock:
            user = fake.authenticate(self.headers, self.peer_cert)
        if user is None:
            return 401, UNAUTHORIZED.status(), headers, "application/json"
        ctx.user = user
        entry["user"] = user["user"]
        q_ = fake.check_quota(ctx.path)
        if fake.config.get("apf_headers", True):
            headers["X-Kubernetes-Pf-Flowschema-Uid"] = FLOW_SCHEMA_UID
            headers["X-Kubernetes-Pf-Prioritylevel-Uid"] = PRIORITY_LEVEL_UID
        if q_ is not None:
            style, ra = q_
            headers["Retry-After"] = str(ra)
            entry["outcome"] = "throttled"
            if style == "apf":
                headers["X-Content-Type-Options"] = "nosniff"
                return 429, b"Too many requests, please try again later.\n", headers, "text/plain; charset=utf-8"
            err = ApiError(429, "TooManyRequests", "the server has received too many requests and has asked us "
                           "to try again later", {"retryAfterSeconds": ra})
            return 429, err.status(), headers, "application/json"
        try:
            status, obj = fake.process(ctx)
        except ApiError as e:
            headers.update(e.headers)
            return e.code, e.status(), headers, "application/json"
        if status == "watch":
            return "watch", obj, headers, "application/json"
        accept = self.headers.get("Accept", "")
        if ctx.verb in ("list", "get") and "as=Table" in accept and ctx.res:
            with fake.lock:
                rv = str(fake.rv)
            obj = to_table(ctx.res, obj["items"] if ctx.verb == "list" else [obj], rv)
        return status, obj, headers, "application/json"

    def _watch(self, ctx, initial):
        fake = self.fake
        try:
            since = int(ctx.query.get("resourceVersion") or 0)
        except ValueError:
            since = 0
        timeout = float(ctx.query.get("timeoutSeconds") or 1800)
        end = time.time() + timeout
        self.send_response_only(200)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        seen = {}
        for o in initial:
            key = (o["metadata"]["namespace"], o["metadata"]["name"])
            rv = int(o["metadata"]["resourceVersion"])
            if since == 0 or rv > since:
                self._chunk({"type": "ADDED" if since == 0 else "MODIFIED", "object": o})
            seen[key] = rv
        try:
            while not fake.shutdown_event.is_set() and time.time() < end:
                with fake.lock:
                    fake.changed.wait(0.2)
                    items = fake._list(ctx.res, ctx.ns, ctx.query)
                cur = {}
                for o in items:
                    key = (o["metadata"]["namespace"], o["metadata"]["name"])
                    rv = int(o["metadata"]["resourceVersion"])
                    cur[key] = o
                    if key not in seen:
                        self._chunk({"type": "ADDED", "object": o})
                    elif rv != seen[key]:
                        self._chunk({"type": "MODIFIED", "object": o})
                    seen[key] = rv
                for key in [k for k in seen if k not in cur]:
                    del seen[key]
                    self._chunk({"type": "DELETED", "object": {
                        "kind": RESOURCES[ctx.res]["kind"], "apiVersion": api_version(ctx.res),
                        "metadata": {"name": key[1], "namespace": key[0], "resourceVersion": str(fake.rv)}}})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def _chunk(self, ev):
        data = go_json(ev)
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_injected(self, st, rule):
        b = rule["body"]
        if isinstance(b, str):
            data, ct = b.encode(), "text/plain; charset=utf-8"
        elif b is not None:
            data, ct = go_json(b), "application/json"
        else:
            reason, msg = DEFAULT_INJECT.get(st, ("InternalError", "injected status %d" % st))
            data, ct = go_json(ApiError(st, reason, msg).status()), "application/json"
        self._send_raw(st, data, ct, rule["headers"])

    def _send_big(self, rule):
        n = rule["bytes"]
        head, tail = b'{"kind":"Status","apiVersion":"v1","metadata":{},"message":"', b'"}'
        pad = max(0, n - len(head) - len(tail))
        self.send_response_only(int(rule["status"] or 200))
        self.send_header("Content-Type", "application/json")
        for k, v in rule["headers"].items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(head) + pad + len(tail)))
        self.end_headers()
        try:
            self.wfile.write(head)
            chunk, left = b"x" * 65536, pad
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

    # -- admin
    def _admin_reply(self, status, obj):
        self._send_raw(status, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())

    def _admin(self, path, raw_query, body):
        fake = self.fake
        method = self.command.upper()
        params = {k: v[0] for k, v in parse_qs(raw_query).items()}
        try:
            payload = json.loads(body.decode("utf-8")) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            self._admin_reply(400, {"error": "bad JSON: %s" % e})
            return
        try:
            route = path[len("/__fake"):].rstrip("/") or "/"
            if route == "/ping" and method == "GET":
                self._admin_reply(200, {"ok": True, "pid": os.getpid()})
            elif route == "/config" and method == "POST":
                self._admin_reply(200, fake.apply_config(payload))
            elif route == "/config" and method == "GET":
                with fake.lock:
                    self._admin_reply(200, fake.config_view())
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
                with fake.lock:
                    self._admin_reply(200, {"quota": copy.deepcopy(fake.quota)})
            elif route == "/requests" and method == "GET":
                since = int(params.get("since", 0))
                values = params.get("values") in ("1", "true")
                with fake.lock:
                    out = []
                    for e in fake.log:
                        if e["seq"] <= since:
                            continue
                        e2 = {k: copy.deepcopy(v) for k, v in e.items() if not k.startswith("_")}
                        if values and e.get("_values_body"):
                            raw = e["_values_body"]
                            try:
                                e2["body"] = decode_protobuf(raw) if "protobuf" in (e.get("content_type") or "") \
                                    else json.loads(raw.decode("utf-8"))
                            except Exception:      # noqa: BLE001
                                e2["body"] = {"_raw": raw[:4096].decode("utf-8", "replace")}
                        out.append(e2)
                    self._admin_reply(200, {"requests": out, "dropped": fake.log_dropped})
            elif route == "/requests" and method == "DELETE":
                with fake.lock:
                    fake.log, fake.log_dropped = [], 0
                self._admin_reply(200, {"ok": True})
            elif route == "/state" and method == "GET":
                self._admin_reply(200, fake.export_state())
            elif route == "/reset" and method == "POST":
                fake.reset_all()
                self._admin_reply(200, {"ok": True})
            elif route == "/seed" and method in ("POST", "PUT"):
                self._admin_reply(200, fake.seed(payload))
            else:
                self._admin_reply(404, {"error": "no admin route %s %s" % (method, path)})
        except (ValueError, TypeError, KeyError, re.error) as e:
            self._admin_reply(400, {"error": str(e)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, fake, ssl_ctx):
        self.fake = fake
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_ctx is not None:
            # The handshake runs in the connection's own thread (Handler.setup).
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


def _write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    j = lambda n: os.path.join(d, n)  # noqa: E731
    _openssl("req", "-x509", *ec, "-keyout", j("ca.key"), "-out", j("ca.crt"), "-subj", "/CN=k8s_fake-ca")
    _openssl("req", "-x509", *ec, "-keyout", j("server.key"), "-out", j("server.crt"),
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-addext", "extendedKeyUsage=serverAuth", "-CA", j("ca.crt"), "-CAkey", j("ca.key"))
    _openssl("req", "-x509", *ec, "-keyout", j("client-ca.key"), "-out", j("client-ca.crt"),
             "-subj", "/CN=k8s_fake-client-ca")
    _openssl("req", "-x509", *ec, "-keyout", j("client.key"), "-out", j("client.crt"),
             "-subj", "/O=rekey-testers/CN=%s" % CLIENT_CN, "-addext", "extendedKeyUsage=clientAuth",
             "-CA", j("client-ca.crt"), "-CAkey", j("client-ca.key"))
    for n in ("ca.key", "server.key", "client-ca.key", "client.key"):
        os.chmod(j(n), 0o600)


def write_kubeconfig(d, url, tls):
    ca = "    certificate-authority: %s\n" % os.path.join(d, "ca.crt") if tls else ""
    cert = ("    client-certificate: %s\n    client-key: %s\n" % (os.path.join(d, "client.crt"),
                                                                  os.path.join(d, "client.key"))) if tls else ""
    text = ("apiVersion: v1\nkind: Config\ncurrent-context: fake-token\n"
            "clusters:\n- name: fake\n  cluster:\n    server: %s\n%s"
            "users:\n- name: token-user\n  user:\n    token: %s\n- name: cert-user\n  user:\n%s"
            "contexts:\n- name: fake-token\n  context:\n    cluster: fake\n    user: token-user\n    namespace: default\n"
            "- name: fake-cert\n  context:\n    cluster: fake\n    user: cert-user\n    namespace: default\n"
            "preferences: {}\n") % (url, ca, DEFAULT_TOKEN, cert or "    {}\n")
    if not cert:
        text = text.replace("  user:\n    {}\n", "  user: {}\n")
    _write_atomic(os.path.join(d, "kubeconfig"), text)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Kubernetes API server for tests (loopback only).")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: pick a free one)")
    ap.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    ap.add_argument("--cert-dir", help="where ca.crt, client.crt/key and kubeconfig go (default: a temp dir)")
    ap.add_argument("--plain-http", action="store_true", help="serve plain HTTP (debugging)")
    ap.add_argument("--state-file", help="load state from here at start if present; save it here on exit")
    ap.add_argument("--verbose", action="store_true", help="access log on stderr")
    args = ap.parse_args(argv)

    fake = FakeK8s(verbose=args.verbose)
    if args.state_file and os.path.exists(args.state_file) and os.path.getsize(args.state_file) > 0:
        with open(args.state_file) as f:
            fake.import_state(json.load(f))
    cert_dir = os.path.abspath(args.cert_dir or tempfile.mkdtemp(prefix="k8s_fake."))
    os.makedirs(cert_dir, exist_ok=True)
    ctx = None
    if not args.plain_http:
        try:
            make_certs(cert_dir)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.stderr.write("k8s_fake: openssl failed: %s %s\n" % (e, getattr(e, "stderr", b"").decode()))
            return 1
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(cert_dir, "server.crt"), os.path.join(cert_dir, "server.key"))
        ctx.load_verify_locations(os.path.join(cert_dir, "client-ca.crt"))
        ctx.verify_mode = ssl.CERT_OPTIONAL       # ask for a client certificate, do not require one
        ctx.set_alpn_protocols(["http/1.1"])

    server = Server(("127.0.0.1", args.port), fake, ctx)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1", host
    fake.port = port
    url = "%s://127.0.0.1:%d" % ("http" if args.plain_http else "https", port)
    write_kubeconfig(cert_dir, url, not args.plain_http)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    signal.signal(signal.SIGINT, lambda s, f: stop.set())

    def ticker():
        while not fake.shutdown_event.wait(TICK):
            fake.tick()

    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    threading.Thread(target=ticker, daemon=True).start()
    if args.port_file:
        _write_atomic(args.port_file, "%d\n" % port)
    sys.stderr.write("k8s_fake: listening on %s (kubeconfig %s)\n" % (url, os.path.join(cert_dir, "kubeconfig")))
    sys.stderr.flush()
    while not stop.wait(0.5):
        pass
    fake.shutdown_event.set()
    with fake.lock:
        fake.changed.notify_all()
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
