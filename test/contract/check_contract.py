#!/usr/bin/python3
"""check_contract.py: hold a run of the test suites to the vendor's API.

Reads the exchanges the simulator logged (--contract-log, one JSON line
each; the TAP suites write them when INVICTI_CONTRACT_DIR is set) and checks
them against the vendor's Swagger 2.0 file, acunetix-api.yaml beside this
script:

  every request the worker sent
    - matches an operation of the spec (method and path, path parameters of
      their declared format);
    - sends only query parameters the operation declares, within their type
      and limits (l at most 100, q at most 1024 characters);
    - carries X-Auth when the operation is secured, and a body, as
      application/json, that validates against the operation's body schema;
  every answer the simulator gave (unless a fault rule changed it on
  purpose, or it is one of the simulator's documented departures from the
  spec, which are counted and listed by reason)
    - has a status the operation declares (or its "default"), and a body
      that validates against that status's schema (none for a 204).

A request outside the spec is a failure, not a warning.  Exits 0 when every
exchange conforms, 1 otherwise (listing each violation once with a count),
2 on bad usage.  Needs Debian's python3-yaml and python3-jsonschema.

It must never pass a run it did not read: no exchange at all is a failure.
"""

import glob
import json
import os
import re
import sys
from collections import Counter
from urllib.parse import parse_qsl

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    ops = []
    for template, item in spec["paths"].items():
        shared = item.get("parameters", [])
        regex = re.compile("^" + spec["basePath"] + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)",
                                                           re.escape(template)) + "$")
        for method, op in item.items():
            if method == "parameters":
                continue
            params = [resolve(spec, p) for p in shared + op.get("parameters", [])]
            ops.append((regex, method.upper(), template, op, params))
    return spec, ops


def resolve(spec, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = spec
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


class Checker:
    def __init__(self, spec_path):
        self.spec, self.ops = load_spec(spec_path)
        self.resolver = jsonschema.RefResolver.from_schema(self.spec)
        self.formats = jsonschema.FormatChecker(formats=())
        self.formats.checks("uuid")(lambda v: not isinstance(v, str) or bool(UUID_RE.match(v)))
        self.violations = Counter()
        self.off_spec = Counter()
        self.exchanges = 0
        self.answers = 0

    def fail(self, where, what):
        self.violations[f"{where}: {what}"] += 1

    def validate(self, where, schema, value):
        validator = jsonschema.Draft4Validator(schema, resolver=self.resolver,
                                               format_checker=self.formats)
        for error in validator.iter_errors(value):
            path = "/".join(str(p) for p in error.absolute_path) or "(root)"
            self.fail(where, f"{path}: {error.message[:200]}")

    def find(self, method, path):
        for regex, m, template, op, params in self.ops:
            match = regex.match(path)
            if match and m == method:
                return template, op, params, match.groupdict()
        return None

    def check(self, e):
        self.exchanges += 1
        found = self.find(e["method"], e["path"])
        if found is None:
            self.fail(f"{e['method']} {e['path']}", "no operation of the spec")
            return
        template, op, params, path_args = found
        where = f"{e['method']} {template}"
        self.check_request(where, e, op, params, path_args)
        if e.get("off_spec"):
            self.off_spec[f"{where}: {e['off_spec']}"] += 1
        elif e.get("fault") is None and "response" in e:
            self.check_response(where, e, op)

    def check_request(self, where, e, op, params, path_args):
        by_in = {}
        for p in params:
            by_in.setdefault(p["in"], {})[p["name"]] = p
        for name, value in path_args.items():
            p = by_in.get("path", {}).get(name)
            if p is not None and p.get("format") == "uuid" and not UUID_RE.match(value):
                self.fail(where, f"path parameter {name} is not a uuid: {value[:60]!r}")
        for name, value in parse_qsl(e.get("query") or "", keep_blank_values=True):
            p = by_in.get("query", {}).get(name)
            if p is None:
                self.fail(where, f"query parameter {name!r} is not declared")
                continue
            if p.get("type") == "integer":
                if not re.fullmatch(r"-?\d+", value):
                    self.fail(where, f"query parameter {name} is not an integer: {value!r}")
                    continue
                n = int(value)
                if "maximum" in p and n > p["maximum"] or "minimum" in p and n < p["minimum"]:
                    self.fail(where, f"query parameter {name}={n} is outside "
                                     f"[{p.get('minimum')}, {p.get('maximum')}]")
            if "maxLength" in p and len(value) > p["maxLength"]:
                self.fail(where, f"query parameter {name} is longer than {p['maxLength']}")
        if op.get("security") and not e.get("x_auth"):
            self.fail(where, "no X-Auth header on a secured operation")
        body_param = next(iter(by_in.get("body", {}).values()), None)
        if body_param is None:
            if e.get("body"):
                self.fail(where, "a body on an operation that takes none")
            return
        if e.get("body") is None:
            if body_param.get("required"):
                self.fail(where, "no body, but the operation requires one")
            return
        if not e.get("content_type", "").startswith("application/json"):
            self.fail(where, f"body sent as {e.get('content_type')!r}, not application/json")
        try:
            body = json.loads(e["body"])
        except ValueError:
            self.fail(where, "request body is not JSON")
            return
        self.validate(where + " request body", body_param["schema"], body)

    def check_response(self, where, e, op):
        self.answers += 1
        responses = {str(k): v for k, v in op["responses"].items()}
        status = str(e["status"])
        declared = responses.get(status) or responses.get("default")
        if declared is None:
            self.fail(where, f"answered {status}, which the operation does not declare")
            return
        schema = declared.get("schema")
        text = e.get("response") or ""
        if schema is None:
            if text:
                self.fail(where, f"answered {status} with a body, where the spec has none")
            return
        if schema.get("type") == "file":
            return
        try:
            body = json.loads(text)
        except ValueError:
            self.fail(where, f"answer {status} is not JSON")
            return
        self.validate(f"{where} answer {status}", schema, body)


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[0])
        print("usage: check_contract.py LOG.jsonl|DIR ...")
        return 2
    files = []
    for arg in argv[1:]:
        files += sorted(glob.glob(os.path.join(arg, "*.jsonl"))) if os.path.isdir(arg) else [arg]
    checker = Checker(os.path.join(HERE, "acunetix-api.yaml"))
    for name in files:
        with open(name, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    checker.check(json.loads(line))
    print(f"contract: {checker.exchanges} requests from {len(files)} simulator runs, "
          f"{checker.answers} unfaulted answers checked against "
          f"{os.path.basename(HERE)}/acunetix-api.yaml")
    for what, n in sorted(checker.off_spec.items()):
        print(f"contract: not checked, knowingly off the spec: {n:6d} x {what}")
    if checker.exchanges == 0:
        print("contract: FAILED: no exchange was logged")
        return 1
    if checker.violations:
        print(f"contract: FAILED: {sum(checker.violations.values())} violations, "
              f"{len(checker.violations)} distinct:")
        for what, n in sorted(checker.violations.items()):
            print(f"  {n:6d} x {what}")
        return 1
    print("contract: every request and answer conforms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
