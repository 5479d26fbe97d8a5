#!/usr/bin/env python3
"""A strict parser of the Prometheus text exposition format 0.0.4.

    promparse.py [--json] [FILE]     parse FILE (default stdin); exit 1 with
                                     "promparse: line N: ..." on the first violation;
                                     --json prints {"name{l=\"v\",...}": value, ...}
    promparse.py --self-test         run the built-in good and bad inputs

Checked: HELP and TYPE lines (at most one of each per family, TYPE before the
family's samples, a known type), metric and label names against the
grammar (no reserved __ labels, no label given twice), label values with
only the escapes \\\\ \\" \\n, values as floats (+Inf, -Inf, NaN too), an
optional integer timestamp, a family's lines in one group, no duplicate
series, and histograms: every series has _bucket lines with ascending le,
cumulative counts that never go down, a +Inf bucket equal to _count, and a
_sum. Summaries: quantile in [0, 1], _sum and _count present.
"""
import json
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class Error(Exception):
    def __init__(self, line, msg):
        super().__init__("line %d: %s" % (line, msg))


def parse_value(s, line, what="value"):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not FLOAT.match(s):
        raise Error(line, "bad %s %r" % (what, s))
    return float(s)


def parse_labels(text, i, line):
    """text[i] is '{'; returns (list of (name, value)), index after '}'."""
    labels = []
    i += 1
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "}":
            return labels, i + 1
        m = LABEL.match(text, i)
        if not m:
            raise Error(line, "bad label name at column %d" % (i + 1))
        name = m.group(0)
        if name.startswith("__"):
            raise Error(line, "label name %r is reserved (starts with __)" % name)
        if any(n == name for n, _ in labels):
            raise Error(line, "label %r given twice" % name)
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if text[i:i + 1] != "=":
            raise Error(line, "expected '=' after label %r" % name)
        i += 1
        while i < len(text) and text[i] in " \t":
            i += 1
        if text[i:i + 1] != '"':
            raise Error(line, "label %r: value must be in double quotes" % name)
        i += 1
        val = []
        while True:
            if i >= len(text):
                raise Error(line, "label %r: unterminated value" % name)
            c = text[i]
            if c == "\\":
                e = text[i + 1:i + 2]
                if e == "\\":
                    val.append("\\")
                elif e == '"':
                    val.append('"')
                elif e == "n":
                    val.append("\n")
                else:
                    raise Error(line, "label %r: bad escape \\%s" % (name, e))
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise Error(line, "label %r: raw newline in value" % name)
            else:
                val.append(c)
                i += 1
        labels.append((name, "".join(val)))
        while i < len(text) and text[i] in " \t":
            i += 1
        if text[i:i + 1] == ",":
            i += 1
        elif text[i:i + 1] != "}":
            raise Error(line, "expected ',' or '}' after label %r" % name)


def series_key(name, labels):
    return name + ("{" + ",".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"')
                                               .replace("\n", "\\n"))
                                  for k, v in sorted(labels)) + "}" if labels else "")


def family_of(name, types):
    """The family a sample name belongs to (a TYPE'd one when its suffix says so)."""
    for suf, kinds in (("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                       ("_count", ("histogram", "summary"))):
        if name.endswith(suf) and types.get(name[:-len(suf)]) in kinds:
            return name[:-len(suf)]
    return name


def parse(text):
    """Returns {series key: value}; raises Error."""
    if text and not text.endswith("\n"):
        raise Error(text.count("\n") + 1, "the last line does not end with a newline")
    types, helps, done, sampled, series = {}, {}, set(), set(), {}
    hist = {}	# (family, labels without le) -> {"buckets": [(le, v, line)], "sum", "count"}
    current = None
    for n, raw in enumerate(text.split("\n")[:-1] if text else [], 1):
        if raw.strip() == "":
            continue
        if raw.startswith("#"):
            parts = raw[1:].lstrip(" \t").split(None, 2)
            if not parts or parts[0] not in ("HELP", "TYPE"):
                continue	# a comment
            if len(parts) < 2 or not NAME.fullmatch(parts[1]):
                raise Error(n, "%s without a valid metric name" % parts[0])
            fam = parts[1]
            if fam in done or fam in sampled:
                raise Error(n, "%s for %s after its samples" % (parts[0], fam))
            if parts[0] == "HELP":
                if fam in helps:
                    raise Error(n, "a second HELP for %s" % fam)
                h = parts[2] if len(parts) > 2 else ""
                if re.search(r"\\[^\\n]|\\$", h):
                    raise Error(n, "HELP for %s: bad escape (only \\\\ and \\n)" % fam)
                helps[fam] = h
            else:
                if fam in types:
                    raise Error(n, "a second TYPE for %s" % fam)
                if len(parts) < 3 or parts[2].strip() not in TYPES:
                    raise Error(n, "TYPE for %s: unknown type %r" % (fam, parts[2:]))
                types[fam] = parts[2].strip()
            if current is not None and current != fam:
                done.add(current)
            current = fam
            continue
        m = NAME.match(raw)
        if not m:
            raise Error(n, "bad metric name")
        name, i = m.group(0), m.end()
        labels = []
        if raw[i:i + 1] == "{":
            labels, i = parse_labels(raw, i, n)
        rest = raw[i:]
        if rest[:1] not in (" ", "\t"):
            raise Error(n, "expected a space before the value")
        fields = rest.split()
        if len(fields) not in (1, 2):
            raise Error(n, "expected a value and an optional timestamp, got %r" % rest.strip())
        value = parse_value(fields[0], n)
        if len(fields) == 2 and not re.fullmatch(r"-?[0-9]+", fields[1]):
            raise Error(n, "bad timestamp %r" % fields[1])
        fam = family_of(name, types)
        if fam in done:
            raise Error(n, "sample of %s after another family's lines (one group per family)"
                        % fam)
        if current is not None and current != fam:
            done.add(current)
        current = fam
        sampled.add(fam)
        key = series_key(name, labels)
        if key in series:
            raise Error(n, "duplicate series %s" % key)
        series[key] = value
        t = types.get(fam, "untyped")
        if t == "counter" and not math.isnan(value) and value < 0:
            raise Error(n, "counter %s is negative" % key)
        if t in ("histogram", "summary"):
            rest_l = tuple(sorted((k, v) for k, v in labels if k not in ("le", "quantile")))
            h = hist.setdefault((fam, t, rest_l), {"buckets": [], "sum": None, "count": None,
                                                   "line": n})
            if name == fam + "_bucket":
                le = dict(labels).get("le")
                if le is None:
                    raise Error(n, "%s has no le label" % key)
                h["buckets"].append((parse_value(le, n, "le"), value, n))
            elif name == fam + "_sum":
                h["sum"] = value
            elif name == fam + "_count":
                h["count"] = value
            elif t == "summary" and name == fam:
                q = dict(labels).get("quantile")
                if q is None or not 0 <= parse_value(q, n, "quantile") <= 1:
                    raise Error(n, "%s: a summary quantile must be from 0 to 1" % key)
            else:
                raise Error(n, "%s does not belong in %s %s" % (name, t, fam))
    for (fam, t, labels), h in hist.items():
        where = series_key(fam, list(labels))
        if h["sum"] is None:
            raise Error(h["line"], "%s %s has no _sum" % (t, where))
        if h["count"] is None:
            raise Error(h["line"], "%s %s has no _count" % (t, where))
        if t != "histogram":
            continue
        b = h["buckets"]
        if not b:
            raise Error(h["line"], "histogram %s has no _bucket" % where)
        for (le0, v0, _), (le1, v1, ln) in zip(b, b[1:]):
            if not le1 > le0:
                raise Error(ln, "histogram %s: le %s after %s (not ascending)" % (where, le1, le0))
            if v1 < v0:
                raise Error(ln, "histogram %s: bucket le=%s holds %s, less than the %s before "
                            "(not cumulative)" % (where, le1, v1, v0))
        if b[-1][0] != math.inf:
            raise Error(b[-1][2], "histogram %s has no le=\"+Inf\" bucket" % where)
        if b[-1][1] != h["count"]:
            raise Error(b[-1][2], "histogram %s: the +Inf bucket (%s) is not _count (%s)"
                        % (where, b[-1][1], h["count"]))
    return series


GOOD = [
    "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n",
    '# TYPE g gauge\ng{x="a\\\\b\\"c\\nd",y="é"} -1.5e3\ng{x="2"} +Inf\ng{x="3"} NaN 1700000000000\n',
    "# TYPE h histogram\n"
    'h_bucket{p="l",le="0.1"} 1\nh_bucket{p="l",le="1"} 1\nh_bucket{p="l",le="+Inf"} 2\n'
    'h_sum{p="l"} 3.5\nh_count{p="l"} 2\n',
    "# TYPE empty counter\n# HELP empty No samples yet.\n# TYPE next gauge\nnext 0\n",
    "untyped_thing 1\n# a free comment\n\nother:rule 2\n",
    '# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 2\ns_count 3\n',
]
BAD = [
    ("a 1", "newline"),
    ("# TYPE a counter\n# TYPE a counter\na 1\n", "second TYPE"),
    ("a 1\n# TYPE a gauge\n", "after its samples"),
    ("# TYPE a weird\na 1\n", "unknown type"),
    ("1a 1\n", "bad metric name"),
    ('a{1x="1"} 1\n', "bad label name"),
    ('a{__x="1"} 1\n', "reserved"),
    ('a{x="1",x="2"} 1\n', "given twice"),
    ('a{x="\\t"} 1\n', "bad escape"),
    ('a{x="1} 1\n', "unterminated"),
    ("a one\n", "bad value"),
    ("a 1 2 3\n", "optional timestamp"),
    ("a 1 1.5\n", "bad timestamp"),
    ("a 1\na 2\n", "duplicate series"),
    ("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n", "one group"),
    ("# TYPE c counter\nc -1\n", "negative"),
    ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"0.5\"} 2\n"
     "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n", "not ascending"),
    ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
     "not cumulative"),
    ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "+Inf"),
    ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", "is not _count"),
    ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n", "no _sum"),
    ("# TYPE h histogram\nh_bucket 2\nh_sum 1\nh_count 2\n", "no le"),
    ("# TYPE h histogram\nh_bucket{le=\"x\"} 2\nh_sum 1\nh_count 2\n", "bad le"),
    ("# TYPE s summary\ns{quantile=\"2\"} 1\ns_sum 1\ns_count 1\n", "quantile"),
    ("# HELP a x\n# HELP a y\na 1\n", "second HELP"),
    ("a{x=\"1\"}1\n", "space before the value"),
]


def self_test():
    bad = 0
    for i, t in enumerate(GOOD):
        try:
            parse(t)
        except Error as e:
            bad += 1
            print("self-test: good input %d refused: %s" % (i, e))
    for t, want in BAD:
        try:
            parse(t)
            bad += 1
            print("self-test: bad input accepted (wanted %r): %r" % (want, t))
        except Error as e:
            if want not in str(e) or not str(e).startswith("line "):
                bad += 1
                print("self-test: %r: message %r does not say %r" % (t, str(e), want))
    print("promparse self-test: %d good, %d bad inputs, %d wrong" % (len(GOOD), len(BAD), bad))
    return 1 if bad else 0


def main(argv):
    if "--self-test" in argv:
        return self_test()
    args = [a for a in argv if a != "--json"]
    text = open(args[0], encoding="utf-8").read() if args else sys.stdin.read()
    try:
        series = parse(text)
    except Error as e:
        print("promparse: %s" % e, file=sys.stderr)
        return 1
    if "--json" in argv:
        print(json.dumps({k: (v if math.isfinite(v) else str(v)) for k, v in series.items()},
                         indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
