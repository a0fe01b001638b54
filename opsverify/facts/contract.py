"""The facts contract: one JSON Schema (draft 2020-12) per kind of fact source.

A *source* is one host (`host:<name>`) or one API (`cloudflare`, `infisical`, `proxmox`,
`prometheus`, `http`); its facts are one JSON object, saved by `--save-facts DIR` as
DIR/<source>.json (":" -> "-") and replayed by `--facts DIR`. SCHEMAS below is the shape of
each kind, derived from what the collectors produce (the fact script in opsverify/facts/agent/
for hosts, api_*.py for the APIs) and what the gates read (opsverify/families/*.py).

Strict where it matters: every section a gate reads is required, with the types the gates
rely on. Open where collectors legitimately vary: extra keys are allowed everywhere (a newer
collector may add facts), maps are keyed by whatever the SSOT names, nulls stand where a real
API or a failed step leaves a value unknown, and a section that failed says so in `errors`.

Besides facts, a saved file may hold a *record* of a source that gave none:
    {"unreachable": "<reason>"}   could not be asked (every gate reading it is UNREACHABLE)
    {"error": "<reason>"}         answered, but its facts broke this contract (a collector
                                  bug: every gate reading it is an ERROR)

problem(source, doc) says where a document breaks the contract: the JSON path, what was
expected and the JSON type found, never the value (facts may hold what a secret looked like).
`python -m opsverify.facts.contract DIR` checks saved facts and prints what that cost;
opsverify/facts/saved.py reads saved files and directories against it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from opsverify import redact

DIALECT = "https://json-schema.org/draft/2020-12/schema"
API_SOURCES = ("cloudflare", "http", "infisical", "prometheus", "proxmox")
RECORDS = ("unreachable", "error")

# --- building blocks ------------------------------------------------------------------------

STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, \
    {"type": "boolean"}
ANY: dict[str, Any] = {}


def null(schema: dict[str, Any]) -> dict[str, Any]:
    """schema, or null (a value the collector could not learn)."""
    return {**schema, "type": [schema["type"], "null"]}


def arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None,
        doc: str = "") -> dict[str, Any]:
    """An object with these required and optional keys; any other key is allowed."""
    out: dict[str, Any] = {"type": "object", "required": sorted(required),
                           "properties": {**required, **(optional or {})}}
    return {**out, "description": doc} if doc else out


def mapping(values: dict[str, Any], doc: str = "") -> dict[str, Any]:
    """An object keyed by names the SSOT gives (mount points, stacks, checks, VM ids, ...)."""
    out = {"type": "object", "additionalProperties": values}
    return {**out, "description": doc} if doc else out


REASON = {"type": "string", "minLength": 1}
SKIPPED = arr(obj({"path": STR, "reason": STR}))
MOUNT = {"source": STR, "target": STR, "fstype": STR, "options": arr(STR)}
PORT = obj({"container_port": INT, "proto": STR, "host_ip": null(STR), "host_port": null(INT)})

# --- hosts: one remote command per host (remote.py), plus the SSH transport (hosts.py) -------

CONTAINER = obj({
    "name": STR, "id": null(STR), "image": null(STR), "state": null(STR),
    "restarting": BOOL, "restart_count": INT,
    "started_at": null(STR), "finished_at": null(STR),
    "has_healthcheck": BOOL,
    "health": {"enum": ["healthy", "unhealthy", "starting", None]},
    "env": mapping(null(STR), "only the names the SSOT pins, never a secret-named one"),
    "network_mode": null(STR), "restart_policy": null(STR),
    "ports_configured": arr(PORT), "ports_published": arr(PORT),
}, doc="GET /containers/{id}/json, parsed (parsers.parse_container); image = Config.Image")

STACK = obj({
    "directory": STR, "exists": BOOL,
    "plaintext_files": arr(obj({"path": STR, "keys": arr(STR)}, {"mode": null(STR)},
                               doc="keys: the SSOT secret key names found in it")),
    "scanned": arr(STR),  # the directories walked: the stack's and every config root
    "generated": arr(obj({
        "path": STR, "unit": STR, "exists": null(BOOL), "mode": null(STR),
        "world_readable": null(BOOL),
        "git": obj({"repo": null(STR), "tracked": null(BOOL), "error": null(STR)}),
        "generator": obj({"file": null(STR), "dropins": arr(ANY), "writes_file": BOOL,
                          "runs_infisical": BOOL, "error": null(STR)}),
    }, {"uid": null(INT), "regular": null(BOOL), "error": null(STR)})),
    "compose": obj({
        "path": STR, "exists": BOOL, "error": null(STR),
        "secrets": mapping(obj({"kind": {"enum": ["reference", "literal"]}, "line": INT}),
                           "only SSOT secret keys, never values: `- KEY` / `KEY:` "
                           "(pass-through), ${KEY}, $KEY and ${KEY:?msg} are references; "
                           "${KEY:-default} and \"\" are literals"),
    }),
}, {"complete": BOOL, "skipped": SKIPPED},
    doc="complete false: the time budget cut the walk")

HOST = obj({
    "hostname": null(STR),
    "tailscale": obj({"ok": BOOL, "error": null(STR), "backend_state": null(STR),
                      "ips": arr(STR)}, {"online": null(BOOL)},
                     doc="ok with an error: the state was printed before a non-zero exit"),
    "mounts": arr(obj(MOUNT, doc="/proc/mounts, unescaped, read again after a trigger")),
    "automounts": mapping(obj({"triggered": BOOL, "mounted": BOOL, "error": null(STR)}),
                          "an idle systemd automount found at an SSOT mount point"),
    "fstab": arr(obj({**MOUNT, "line": INT}, doc="the lines libmount takes")),
    "fstab_errors": arr(obj({"line": INT, "target": null(STR), "error": STR},
                            doc="lines mount(8) and systemd skip")),
    "docker": obj({"ok": BOOL, "error": null(STR), "containers": arr(CONTAINER)},
                  {"now": STR}, doc="now: the host's UTC clock (absent when the engine is down)"),
    "stacks": mapping(STACK),
    "stale_refs": arr(obj({"address": STR, "file": STR, "line": null(INT),
                           "table": null(STR), "row": null(INT), "column": null(STR)},
                          doc="where a retired address appears (a file line or a SQLite row)")),
    "scan": obj({"roots": arr(STR), "files": INT, "bytes": INT, "skipped": SKIPPED},
                {"media_skipped": INT, "complete": BOOL},
                doc="media_skipped: images/video/audio, by magic bytes; complete false: the "
                    "time budget cut the scan"),
    "config": mapping(obj({"file": STR, "ok": BOOL, "error": null(STR),
                           "values": mapping(arr(ANY), "key path -> every value found")},
                          {"via": mapping(arr(STR), "key path -> ['!env_var NAME'|'!secret KEY']"),
                           "unresolved": mapping(arr(STR), "key path -> why; never compared "
                                                           "as a literal")})),
    "errors": mapping(STR, "a section that failed or hung: why (hostname, mounts, ...)"),
}, {
    "zfs": obj({"ok": BOOL, "error": null(STR), "datasets": arr(STR)}),  # Proxmox host only
    "probes": mapping(arr(obj({"url": STR, "status": null(INT), "error": null(STR)})),
                      "probe -> its GETs from the host (its own address, then 127.0.0.1), no "
                      "credential, no timing; absent from an older agent"),
    "remote_s": NUM, "duration_s": NUM,
    "transport": obj({"backend": STR, "host_key": STR}, {"connect_s": NUM, "command_s": NUM}),
}, doc="host:<name>: one remote command per host (the fact script, opsverify/facts/agent/)")

# --- APIs ---------------------------------------------------------------------------------

CLOUDFLARE = obj({
    "zone": obj({"id": STR, "name": STR}, {"account_id": null(STR)}),
    "tunnel": obj({"id": STR, "ingress": arr(obj({"hostname": null(STR), "service": STR},
                                                 {"path": null(STR)}))},
                  {"version": null(INT), "remote": BOOL, "source": null(STR)},
                  doc="remote false: config null, a locally managed tunnel"),
    "dns": arr(obj({"name": STR, "type": STR, "content": STR, "proxied": BOOL})),
}, doc="cloudflare (opsverify/facts/api_cloudflare.py)")

INFISICAL = obj({
    "paths": mapping(obj({"keys": arr(STR)}, {
        "imported": mapping(arr(STR), "keys only imports offer -> ['env:/path']"),
        "imports": arr(obj({"from": STR, "keys": arr(STR)})),
    }), "names only: viewSecretValue=false, include_imports=true"),
}, doc="infisical (opsverify/facts/api_infisical.py)")

PROXMOX = obj({
    "node": STR,
    "vms": mapping(obj({"exists": BOOL, "status": null(STR), "qmpstatus": null(STR),
                        "onboot": null(INT), "name": null(STR)},
                       {"node": STR},  # asked at another node than `node` above
                       doc="onboot unset in the VM config = 0 (PVE's default)"),
                   "by VM id as a string; exists false: all else null"),
}, doc="proxmox (opsverify/facts/api_proxmox.py)")

PROMETHEUS = obj({
    "targets": arr(obj({"job": null(STR), "instance": null(STR), "health": null(STR)},
                       {"scrape_url": null(STR), "last_error": null(STR)})),
    "rules": mapping(obj({"ok": BOOL, "error": null(STR),
                          # numbers, NaN and +-Inf included; a string as Prometheus sends it
                          "values": arr({"type": ["number", "string"]})})),
}, doc="prometheus (opsverify/facts/api_prometheus.py)")

HTTP = obj({
    "probes": mapping(obj({"url": STR, "status": null(INT), "error": null(STR)}, {
        "elapsed_s": NUM, "auth_error": null(STR), "unreachable": null(STR),
        "connected": null(BOOL), "body": null(STR),
        "json": mapping(ANY, "only the SSOT's expected keys"),
        "json_keys": mapping(BOOL)})),
    "routes": mapping(obj({"url": STR, "status": null(INT), "location": null(STR),
                           "error": null(STR)},
                          {"unreachable": null(STR), "elapsed_s": NUM},
                          doc="redirects never followed")),
}, doc="http (opsverify/facts/api_http.py): url shows SSOT query values, auth parameters by "
       "name only; auth_error (its secret could not be obtained) and unreachable (no path "
       "from the verifier) are UNREACHABLE, not drift; connected false: refused or connect "
       "timeout; body only when the SSOT expects one; json: only the SSOT's expected keys "
       "(an absent path left out, a `*` path a list of matches, an XML answer read as JSON)")

RECORD = {"type": "object", "minProperties": 1, "maxProperties": 1,
          "properties": {"unreachable": REASON, "error": REASON},
          "additionalProperties": False,
          "description": "a source that gave no facts: why"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "host": HOST, "cloudflare": CLOUDFLARE, "infisical": INFISICAL, "proxmox": PROXMOX,
    "prometheus": PROMETHEUS, "http": HTTP, "record": RECORD}


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema document of one kind ("host", an API name, or "record")."""
    return {"$schema": DIALECT, "$id": f"urn:opsverify:facts:{kind}", **SCHEMAS[kind]}


def kind_of(source: str) -> str | None:
    """The contract kind of a source name; None for a source the contract does not know."""
    if source.startswith("host:"):
        return "host"
    return source if source in API_SOURCES else None


def source_of(file_name: str) -> str | None:
    """The source a saved file holds (`host-vm209.json` -> `host:vm209`), or None."""
    stem = file_name.removesuffix(".json")
    if stem.startswith("host-") and stem != "host-" and stem != file_name:
        return "host:" + stem.removeprefix("host-")
    return stem if stem in API_SOURCES and stem != file_name else None


# --- validation -----------------------------------------------------------------------------

# Facts in memory are built by Python code: a tuple is as good a JSON array as a list.
_TYPES = Draft202012Validator.TYPE_CHECKER.redefine(
    "array", lambda _checker, value: isinstance(value, list | tuple))
_Validator = validators.extend(Draft202012Validator, type_checker=_TYPES)


@cache
def validator(kind: str) -> Any:
    """The compiled validator of one kind (checked against the metaschema once)."""
    doc = schema(kind)
    Draft202012Validator.check_schema(doc)
    return _Validator(doc)


_IS = {"string": lambda v: isinstance(v, str),
       "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
       or isinstance(v, float) and v.is_integer(),
       "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
       "boolean": lambda v: isinstance(v, bool), "null": lambda v: v is None,
       "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list | tuple)}


def _compile(s: dict[str, Any]) -> Any:
    """A yes/no check of the subset of JSON Schema the contract uses, as closures: ~5x faster
    than jsonschema, which is asked only for where a document that fails this breaks."""
    checks = []
    if "type" in s:
        kinds = [_IS[t] for t in (s["type"] if isinstance(s["type"], list) else [s["type"]])]
        checks.append(lambda v: any(k(v) for k in kinds))
    if "enum" in s:
        allowed = s["enum"]
        checks.append(lambda v: any(v == a and type(v) is type(a) for a in allowed))
    if "minLength" in s:
        checks.append(lambda v: not isinstance(v, str) or len(v) >= s["minLength"])
    if "required" in s or "minProperties" in s or "maxProperties" in s:
        req, lo, hi = s.get("required", ()), s.get("minProperties", 0), \
            s.get("maxProperties", math.inf)
        checks.append(lambda v: not isinstance(v, dict) or lo <= len(v) <= hi
                      and all(k in v for k in req))
    props = {k: _compile(v) for k, v in s.get("properties", {}).items()}
    extra = s.get("additionalProperties", True)
    rest = extra if isinstance(extra, bool) else _compile(extra)
    if props or rest is not True:
        checks.append(lambda v: not isinstance(v, dict) or all(
            (c := props.get(k, rest)) is True or c is not False and c(x) for k, x in v.items()))
    if "items" in s:
        item = _compile(s["items"])
        checks.append(lambda v: not isinstance(v, list | tuple) or all(item(x) for x in v))
    if unknown := set(s) - {"type", "enum", "minLength", "required", "minProperties", "items",
                            "maxProperties", "properties", "additionalProperties",
                            "description", "$schema", "$id"}:
        raise ValueError(f"the contract's fast check does not know {sorted(unknown)}")
    return lambda v: all(c(v) for c in checks)


@cache
def fast_check(kind: str) -> Any:
    return _compile(schema(kind))


def problem(source: str, doc: Any) -> str | None:
    """Where doc breaks the contract of source's kind: `$.path: expected X, got Y`; or None.

    A record ({"unreachable": ...} or {"error": ...}) is checked as one. A source the contract
    does not know only has to be a JSON object."""
    if not isinstance(doc, dict):
        return f"$: expected object, got {type_name(doc)}"
    kind = "record" if doc and not doc.keys() - set(RECORDS) else kind_of(source)
    if kind is None or fast_check(kind)(doc):
        return None
    errors = sorted(validator(kind).iter_errors(doc), key=_order)
    if not errors:
        return None
    first = errors[0]
    # jsonschema reports each missing key apart; describe() names them all at once
    rest = [e for e in errors[1:] if not (e.validator == first.validator == "required"
                                          and e.absolute_path == first.absolute_path)]
    more = f" (and {len(rest)} more)" if rest else ""
    return redact.safe(describe(first) + more)


def _order(e: ValidationError) -> tuple:
    # the shallowest first, in document order: a missing section before its consequences
    return len(e.absolute_path), [str(p) for p in e.absolute_path]


def json_path(parts: Any) -> str:
    """`$.docker.containers[0].restart_count`; keys that are not identifiers quoted."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p.isidentifier():
            out += f".{p}"
        else:
            out += "[" + json.dumps(p) + "]"
    return out


def type_name(value: Any) -> str:
    """The JSON type of a value, as the schema names types."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    for t, name in ((str, "string"), (dict, "object"), (list | tuple, "array")):
        if isinstance(value, t):
            return name
    return type(value).__name__


def describe(e: ValidationError) -> str:
    """One validation error: path, what the schema expects, the JSON type found -- never the
    value itself (jsonschema's own message quotes it)."""
    path, got, want = json_path(e.absolute_path), type_name(e.instance), e.validator_value
    if e.validator == "required":
        missing = [k for k in want if isinstance(e.instance, dict) and k not in e.instance]
        return "; ".join(f"{json_path([*e.absolute_path, k])}: required, missing"
                         for k in missing) or f"{path}: required key missing"
    if e.validator == "type":
        kinds = want if isinstance(want, list) else [want]
        return f"{path}: expected {' or '.join(kinds)}, got {got}"
    if e.validator == "enum":
        allowed = ", ".join("null" if v is None else json.dumps(v) for v in want)
        return f"{path}: expected one of {allowed}; got " + \
            ("another string" if got == "string" else got)
    if e.validator in ("minProperties", "maxProperties", "additionalProperties"):
        return (f"{path}: expected a record with one key ({' or '.join(RECORDS)}) "
                f"and a reason, got an object with {len(e.instance)} keys")
    if e.validator == "minLength":
        return f"{path}: expected a non-empty string, got an empty one"
    return f"{path}: does not satisfy {e.validator} (got {got})"


# --- saved files ------------------------------------------------------------------------------

class FactsContractError(Exception):
    """A source's facts break the contract (a collector bug, or a saved file of the wrong
    shape): every gate reading the source is an ERROR, not UNREACHABLE and not drift."""

    def __init__(self, target: str, reason: str):
        self.target, self.reason = target, reason
        super().__init__(f"{target}: {reason}")


def main(argv: list[str]) -> int:
    """`python -m opsverify.facts.contract DIR...`: check saved facts; print what it cost."""
    for kind in SCHEMAS:
        validator(kind), fast_check(kind)  # compiled once, not counted below
    bad = 0
    for directory in argv:
        docs = {s: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))
                if (s := source_of(p.name))}
        start = time.perf_counter()
        problems = {s: found for s, d in docs.items() if (found := problem(s, d))}
        cost, bad = time.perf_counter() - start, bad + len(problems)
        print("".join(f"{directory}: {s}: {p}\n" for s, p in problems.items()), end="")
        print(f"{directory}: {len(docs)} sources ({len(json.dumps(docs)) // 1024} KiB) validated "
              f"in {cost * 1000:.1f} ms; {len(problems)} problem(s)")
    return 1 if bad else 0 if argv else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
