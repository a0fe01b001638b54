"""`ops verify --propose-patch FILE`: a unified diff against ssot/*.yaml that makes the SSOT
say what the run found, from the results model (each FAIL's findings in parts, the evidence the
gate saw) and the SSOT directory: `diff, refused = render(res, ssot_dir)`.

Each file is read with ruamel.yaml in round-trip mode and its values changed in place
(comments, key order, quoting and layout kept); each hunk's heading (after `@@ … @@`, which
`git apply` ignores) names its gates. Each gate's changes must leave the SSOT with no new
problem (schemas, cross-file rules). Never proposed, however true: a retired address, a
plaintext secret, a secret-named env value (set it in Infisical), rw where the SSOT says ro,
an overdue decommission; nor what the SSOT has no field for. Those are "not patchable", with
why: printed after the run's closing lines and heading the file as comments.
"""

from __future__ import annotations

import difflib
import io
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opsverify.redact import MASK, SECRET_NAME
from opsverify.verdict import FAIL

MARK = "ops verify --propose-patch"
DELETE = object()  # an Edit's value: remove the key
Path_ = tuple[Any, ...]

NEVER = {
    "stale_refs": "a retired address in a config must be removed on the host, never accepted",
    "secrets": "a secret belongs in Infisical: fix the host (plaintext files, literal values) "
               "or Infisical (missing keys), never the SSOT",
    "decom": "a decommission is done on Proxmox, never accepted in the SSOT",
    "wiring": "a reference is judged by rule (Docker DNS on the same VM, Tailscale IP across "
              "VMs, never loopback or a retired address): fix the app's config",
    "observability": "a target down or a rule violated is fixed on the host or in Prometheus",
    "ssot": "the SSOT's own problem: fix the SSOT by hand",
    "coverage": "an unchecked SSOT entity: give it a gate, or remove it by hand",
}
NO_FIELD = "no SSOT field for it"


@dataclass(frozen=True)
class Edit:
    path: Path_            # JSON path from a top-level key: ("stacks", "x", "containers", ...)
    value: Any             # the new value, or DELETE
    after: str = ""        # where a missing key goes: after this sibling


class Refused(Exception):
    """A finding that is not patchable; the message says why."""


@dataclass
class Context:
    """What the mapping of a finding may look at: the typed SSOT and its round-trip documents."""

    ssot: Any
    docs: dict[str, Any]  # stem -> ruamel document

    def stem(self, path: Path_) -> str:
        """The file holding the top-level key path[0]."""
        return next(s for s, d in self.docs.items() if isinstance(d, dict) and path[0] in d)

    def node(self, path: Path_) -> Any:
        value = self.docs[self.stem(path)]
        for part in path:
            value = value[part]
        return value


# --- the findings of each family, as SSOT edits ---------------------------------------------

def _containers(t: dict[str, Any], f: dict[str, Any], ctx: Context) -> list[Edit]:
    if not t["name"].startswith("test_container["):
        raise Refused("an unlisted running container: list it in its stack by hand (image, "
                      "ports, state) or remove it from the host")
    stack, _, name = t["param"].partition(":")
    base: Path_ = ("stacks", stack, "containers", name)
    engine = ((t.get("evidence") or {}).get("container") or {}).get("engine") or {}
    attr, actual, text = f["attribute"], f["actual"], f["message"]
    if attr == "image":
        return [Edit((*base, "image"), _plain_text(actual))]
    if attr.startswith("env "):
        key = attr[4:]
        if SECRET_NAME.search(key):
            raise Refused(f"env {key} is secret-named: set it in Infisical, never in the SSOT")
        if actual is None:
            env = ctx.node((*base, "env"))
            return [Edit((*base, "env"), DELETE) if len(env) == 1 else
                    Edit((*base, "env", key), DELETE)]
        return [Edit((*base, "env", key), _plain_text(actual))]
    if attr == "state" or text.startswith("state: expected stopped"):
        state = engine.get("state")
        if state in ("exited", "created"):
            return [Edit((*base, "state"), "stopped")]
        if state == "running" and not engine.get("restarting"):
            return [Edit((*base, "state"), "running")]
        raise Refused(f"state {state} has no SSOT value (running | stopped)")
    if text.startswith("healthcheck: the SSOT says it has one"):
        return [Edit((*base, "healthcheck"), False)]
    if text.startswith("published ports:"):
        return [_ports(base, engine, ctx)]
    if text.startswith(("restarting", "restarted")):
        raise Refused("a restart loop is fixed on the host (may_restart is set by hand for a "
                      "container that restarts by design)")
    if text.startswith("not present"):
        raise Refused("a missing container: start it, or remove it from the SSOT by hand")
    raise Refused(NO_FIELD)


def _ports(base: Path_, engine: dict[str, Any], ctx: Context) -> Edit:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from opsverify.families.containers import HOST_NETWORK

    live = engine.get("ports_published") or []
    use = live if engine.get("state") == "running" and live and \
        engine.get("network_mode") != HOST_NETWORK else engine.get("ports_configured") or []
    got = sorted({(p.get("host_port"), p.get("container_port"), p.get("proto") or "tcp")
                  for p in use}, key=lambda p: (p[0] or 0, p[1] or 0, p[2]))
    if any(h is None or c is None for h, c, _ in got):
        raise Refused("a random host port has no SSOT value")
    if not got:
        return Edit((*base, "ports"), DELETE)
    seq = CommentedSeq()
    seq.fa.set_flow_style()
    for host, cont, proto in got:
        if host == cont and proto == "tcp":
            seq.append(host)
        else:
            m = CommentedMap([("host", host), ("container", cont),
                              *([("protocol", proto)] if proto != "tcp" else [])])
            m.fa.set_flow_style()
            seq.append(m)
    return Edit((*base, "ports"), seq, after="image")


def _mounts(t: dict[str, Any], f: dict[str, Any], ctx: Context) -> list[Edit]:
    from opsverify.families.mounts import mode, server_of

    host, _, path = t["param"].partition(":")
    index = next((i for i, m in enumerate(ctx.node(("mounts",)))
                  if m["host"] == host and m["path"] == path), None)
    if index is None:
        raise Refused("the mount is not in the SSOT")
    seen = (t.get("evidence") or {}).get("mount") or {}
    live, fstab = seen.get("proc_mounts") or {}, seen.get("fstab") or {}
    attr, text = f["attribute"].removeprefix("fstab "), f["message"]
    if "over Tailscale" in text or "Tailscale" in str(f["actual"] or ""):
        raise Refused("NFS over Tailscale deadlocked in D state: mount from the LAN on the host")
    if attr in ("mode", "source") or text.startswith(("fstype:", "fstab fstype:")):
        field = attr or "fstype"
        if field == "mode" and f["expected"] == "ro" and f["actual"] == "rw":
            who = "the streaming VM's" if any("streaming" in s.name for s in
                                              ctx.ssot.stacks_on(host)) else f"{host}'s"
            what = "media" if path.rstrip("/").endswith("/media") else path
            raise Refused(f"mode rw on {who} {what} mount must be fixed on the host")
        read = {"mode": lambda e: mode([str(o) for o in e.get("options") or []]),
                "source": lambda e: str(e.get("source")), "fstype": lambda e: e.get("fstype")}
        values = {where: read[field](e) for where, e in (("live", live), ("fstab", fstab)) if e}
        if len(values) != 2 or len(set(values.values())) != 1:
            raise Refused(f"the live mount and /etc/fstab disagree on {field} "
                          f"({', '.join(f'{k} {v}' for k, v in values.items())}): fix the host")
        actual = values["live"]
        if field == "source":
            mount = next(m for m in ctx.ssot.mounts if m.host == host and m.path == path)
            if server_of(actual) != server_of(mount.source) or ":/" not in actual:
                raise Refused("the NFS server (nfs_server) is shared by every mount: fix the host")
            return [Edit(("mounts", index, "export"), "/" + actual.split(":/", 1)[1])]
        return [Edit(("mounts", index, field), actual)]
    raise Refused("fix the host (" + text.split(":")[0] + ")")


def _routes(t: dict[str, Any], f: dict[str, Any], ctx: Context) -> list[Edit]:
    attr, actual, text = f["attribute"], f["actual"], f["message"]
    if t["name"].startswith("test_ingress_no_retired_target"):
        raise Refused(NEVER["stale_refs"])
    if t["name"].startswith("test_ingress_catch_all"):
        if attr == "catch-all service" and isinstance(actual, str):
            return [Edit(("cloudflare", "catch_all"), _plain_text(actual))]
        raise Refused("fix the tunnel's ingress: its last rule must be the catch-all")
    base: Path_ = ("routes", t["param"])
    if attr == "ingress service" and isinstance(actual, str):
        return _ingress(base, actual, ctx)
    if attr == "public status" and isinstance(actual, int):
        return [Edit((*base, "expect", "status"), _status(actual))]
    if attr == "public redirect location":
        return [Edit((*base, "expect", "location"),
                     DELETE if actual is None else _plain_text(actual))]
    if attr.startswith("DNS") or text.startswith("DNS"):
        raise Refused("the DNS record is fixed in Cloudflare (a proxied CNAME to the tunnel)")
    if text.startswith("ingress service"):
        raise Refused("no ingress rule for the hostname: add it to the tunnel")
    raise Refused(NO_FIELD)


def _ingress(base: Path_, actual: str, ctx: Context) -> list[Edit]:
    parts = urlsplit(actual)
    try:
        address, port = parts.hostname, parts.port
    except ValueError:
        address, port = None, None
    if address in ctx.ssot.retired_addresses:
        raise Refused(f"the ingress targets retired address {address} "
                      f"({ctx.ssot.retired_addresses[address]}): fix the tunnel")
    host = next((n for n, h in ctx.ssot.hosts.items() if h.vantage_ip == address), None)
    if parts.scheme != "http" or host is None or port is None or parts.path not in ("", "/"):
        raise Refused(f"{actual} is not http://<an SSOT host's address>:<port>: {NO_FIELD}")
    route = ctx.node(base)
    edits = [Edit((*base, "port"), port)] if route["port"] != port else []
    return edits + ([Edit((*base, "host"), host)] if route["host"] != host else [])


def _services(t: dict[str, Any], f: dict[str, Any], ctx: Context) -> list[Edit]:
    probes = [p for p in ctx.ssot.probes if p.container == t["param"]]
    if len(probes) != 1:
        raise Refused(f"{len(probes)} probes of {t['param']}: which one is not known")
    base: Path_ = ("probes", probes[0].name, "expect")
    attr, actual = f["attribute"], f["actual"]
    if attr == "status" and isinstance(actual, int):
        return [Edit((*base, "status"), _status(actual))]
    if attr.startswith("json ") and actual is not None and "*" not in attr:
        key = attr[5:]
        if SECRET_NAME.search(key):
            raise Refused(f"json {key} is secret-named: never in the SSOT")
        return [Edit((*base, "json", key), _plain_text(actual) if isinstance(actual, str)
                     else actual)]
    if attr == "body" and isinstance(actual, str):
        return [Edit((*base, "body"), _plain_text(actual))]
    raise Refused(NO_FIELD)


def _vms(t: dict[str, Any], f: dict[str, Any], ctx: Context) -> list[Edit]:
    if f["attribute"] in ("node", "status", "onboot") and f["actual"] is not None:
        return [Edit(("vms", t["param"], f["attribute"]), f["actual"])]
    raise Refused("the VM does not exist: recreate it, or remove it from the SSOT by hand"
                  if f["attribute"] == "exists" else NO_FIELD)


def _reachability(t: dict[str, Any], f: dict[str, Any], ctx: Context) -> list[Edit]:
    if f["attribute"] == "hostname" and isinstance(f["actual"], str) and f["actual"]:
        return [Edit(("hosts", t["param"], "hostname"), _plain_text(f["actual"]))]
    raise Refused("a host's Tailscale state is fixed on the host" if "tailscale" in f["message"]
                  else NO_FIELD)


FAMILIES: dict[str, Callable[[dict[str, Any], dict[str, Any], Context], list[Edit]]] = {
    "containers": _containers, "mounts": _mounts, "routes": _routes, "services": _services,
    "vms": _vms, "reachability": _reachability}


def _plain_text(value: Any) -> str:
    text = str(value)
    if MASK in text:
        raise Refused("the value is masked in the results (it holds a secret): never in the SSOT")
    return text


def _status(status: int) -> int:
    if status >= 400:
        raise Refused(f"status {status} is an error: fix the service")
    return status


def proposals(t: dict[str, Any], ctx: Context) -> tuple[list[Edit], list[str]]:
    """(edits, why each other finding is not patchable) of one FAIL."""
    if t["family"] in NEVER:
        return [], [NEVER[t["family"]]]
    mapper = FAMILIES.get(t["family"])
    if mapper is None or not t.get("findings"):
        return [], [NO_FIELD if mapper is None else "no finding in parts: " + t["message"]]
    edits: list[Edit] = []
    refused: list[str] = []
    for f in t["findings"]:
        try:
            edits += [e for e in mapper(t, f, ctx) if e not in edits]
        except Refused as exc:
            why = str(exc) if str(exc) != NO_FIELD else f"{f['message']}: {NO_FIELD}"
            if why not in refused:
                refused.append(why)
        except (KeyError, IndexError, TypeError, StopIteration):
            refused.append(f"{f['message']}: not found in the SSOT as the run saw it")
    return edits, refused


# --- the SSOT files: round trip, edit, check, diff -----------------------------------------

def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _dump(doc: Any) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def apply(doc: Any, edit: Edit) -> None:
    """One edit, in place; a replaced string keeps its quoting style."""
    from ruamel.yaml.scalarstring import ScalarString

    parent = doc
    for part in edit.path[:-1]:
        parent = parent[part]
    key = edit.path[-1]
    if edit.value is DELETE:
        del parent[key]
        return
    value = edit.value
    old = parent.get(key) if isinstance(parent, dict) else parent[key]
    if isinstance(old, ScalarString) and isinstance(value, str):
        value = type(old)(value)
    if isinstance(parent, dict) and key not in parent and edit.after in parent:
        parent.insert(list(parent).index(edit.after) + 1, key, value)
    else:
        parent[key] = value


def _problems(root: Path, texts: dict[str, str]) -> set[tuple[str, str, str]]:
    """The SSOT's problems with these file texts (schemas and rules), line numbers aside."""
    from opsverify import ssot as ssot_pkg

    for stem, text in texts.items():
        _file(root, stem).write_text(text, encoding="utf-8")
    try:
        found = ssot_pkg.load(root, strict=False).problems
    except ssot_pkg.SsotInvalid as exc:
        found = exc.problems
    return {(Path(p.file).name, p.path, p.message) for p in found}


def render(res: dict[str, Any] | None, ssot_dir: Path | str) -> tuple[str, list[str]]:
    """(the patch file's text, a terminal line per finding that is not patchable)."""
    from opsverify import ssot as ssot_pkg

    root = Path(ssot_dir)
    tests = [t for t in (res or {}).get("tests") or [] if t.get("outcome") == FAIL]
    refused: list[tuple[str, str]] = []
    changed: dict[str, list[tuple[Edit, str]]] = {}
    originals: dict[str, str] = {}
    if tests:
        ssot = ssot_pkg.load(root, strict=False)
        originals = {stem: _file(root, stem).read_text(encoding="utf-8") for stem in ssot.files}
        ctx = Context(ssot, {stem: _yaml().load(text) for stem, text in originals.items()})
        with tempfile.TemporaryDirectory(prefix="opsverify-patch-") as tmp:
            check_root = Path(tmp) / root.name
            shutil.copytree(root, check_root)
            baseline = _problems(check_root, {})
            for t in tests:
                gate = f"{t['family']}::{t['name']}"
                edits, why = proposals(t, ctx)
                refused += [(gate, w) for w in why]
                if edits:
                    problem = _try(ctx, edits, originals, check_root, baseline)
                    if problem:
                        refused.append((gate, problem))
                    else:
                        for e in edits:
                            changed.setdefault(ctx.stem(e.path), []).append((e, gate))
    lines = [f"  not patchable  {gate}: {why}" for gate, why in refused]
    diffs = [_diff(root, stem, originals[stem], _dump(ctx.docs[stem]),
                   [(ctx.ssot.where(stem, *e.path)[1] - 1, gate) for e, gate in edits])
             for stem, edits in sorted(changed.items())]
    return _header(res, root, changed, lines) + "".join(diffs), lines


def _file(root: Path, stem: str) -> Path:
    yaml_path = root / f"{stem}.yaml"
    return yaml_path if yaml_path.exists() else root / f"{stem}.yml"


def _try(ctx: Context, edits: list[Edit], originals: dict[str, str], check_root: Path,
         baseline: set[tuple[str, str, str]]) -> str | None:
    """Apply one gate's edits; undo them and say why when the SSOT would refuse them."""
    stems = {ctx.stem(e.path) for e in edits}
    before = {s: _dump(ctx.docs[s]) for s in stems}
    bad = [s for s in sorted(stems) if _dump(_yaml().load(originals[s])) != originals[s]]
    problem = (f"{bad[0]}.yaml does not survive a YAML round trip unchanged (its layout): edit "
               "it by hand") if bad else None
    if problem is None:
        try:
            for e in edits:
                apply(ctx.docs[ctx.stem(e.path)], e)
        except (KeyError, IndexError, TypeError) as exc:
            problem = f"not found in the SSOT: {exc}"
    if problem is None:
        new = _problems(check_root, {s: _dump(ctx.docs[s]) for s in stems}) - baseline
        if new:
            file, where, message = min(new)
            problem = f"the SSOT would refuse it: {file} {where}: {message}"
    if problem is not None:
        for s in stems:
            ctx.docs[s] = _yaml().load(before[s])
        _problems(check_root, before)
    return problem


def _header(res: dict[str, Any] | None, root: Path, changed: dict[str, list[Any]],
            lines: list[str]) -> str:
    n = sum(len({g for _, g in v}) for v in changed.values())
    out = [(f"# {MARK}: the SSOT ({root.name}/) as the run of "
            f"{(res or {}).get('started', '?')} found reality: {n} change{'s' if n != 1 else ''}"),
           ("# Each hunk's heading names the gates it comes from. Review, then from the "
            f"directory holding {root.name}/: git apply FILE")]
    if lines:
        out += ["#", f"# not patchable ({len(lines)}):"] + [f"#{ln}" for ln in lines]
    return "\n".join(out) + "\n\n"


def _diff(root: Path, stem: str, old: str, new: str, anchors: list[tuple[int, str]]) -> str:
    """A git-style unified diff of one file; each hunk headed by the gates of its changes
    (anchors: the 0-based line of each change's node, or of its parent for a new key)."""
    name = f"{root.name}/{_file(root, stem).name}"
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out = [f"diff --git a/{name} b/{name}\n", f"--- a/{name}\n", f"+++ b/{name}\n"]
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(3):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        touched = [(c1, max(c2, c1 + 1)) for tag, c1, c2, _, _ in group if tag != "equal"]
        gates = [g for line, g in anchors if any(lo - 1 <= line < hi for lo, hi in touched)] or \
            [g for line, g in anchors if i1 <= line < i2]
        heading = ", ".join(dict.fromkeys(gates))
        out.append(f"@@ -{_range(i1, i2)} +{_range(j1, j2)} @@ {heading}\n")
        for tag, c1, c2, d1, d2 in group:
            if tag == "equal":
                out += [" " + ln for ln in _ended(a[c1:c2])]
                continue
            out += ["-" + ln for ln in _ended(a[c1:c2])]
            out += ["+" + ln for ln in _ended(b[d1:d2])]
    return "".join(out)


def _ended(lines: list[str]) -> list[str]:
    return [ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines]


def _range(start: int, end: int) -> str:
    length = end - start
    return f"{start + 1 if length else start},{length}" if length != 1 else f"{start + 1}"

