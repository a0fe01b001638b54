"""`ops ssot capture`: SSOT YAML from what hosts run (goss's `add`/`autoadd`, for our SSOT).

capture() reads each host's facts through the host collector (or saved facts: `--facts DIR`)
and writes the SSOT entries a host can show, in the shipped files' layout, key order and
comment style: its stacks' containers (state, healthcheck, image, published ports, pinned
env) into a stacks.yaml fragment, its NFS mounts (export, fstype, mode) into a mounts.yaml
fragment, its hostname and Tailscale address into a hosts.yaml fragment. Each fragment starts
`# captured <date> from <host>` (the date the facts were collected: the host's own clock) and
is checked against ssot/schemas/ with the SSOT loader before anyone sees it.

What a host cannot show is not invented: the SSOT's `may_restart`, a mount's `purpose`, a
host's description, role, vmid and state (the last three are copied from the SSOT, which the
schema requires), and every comment (why a container is stopped, what is assumed).

Never a secret value: the collector reads only the environment variables the SSOT pins, never
a secret-named one, and capture writes no value it read from a host: a pinned variable whose
live value equals the SSOT's keeps the SSOT's value; one that differs is named in a comment.
"""

from __future__ import annotations

import ipaddress
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opsverify.facts.contract import FactsContractError
from opsverify.facts.hosts import host_collectors
from opsverify.facts.store import FactStore
from opsverify.families.mounts import mode as mount_mode
from opsverify.families.mounts import server_of
from opsverify.settings import Settings
from opsverify.ssot.loader import Problem, load_schemas, parse_file, schema_problems
from opsverify.ssot.model import Ssot
from opsverify.verdict import Unreachable

FILES = ("hosts", "stacks", "mounts")  # the SSOT files a capture writes, in this order
NFS = ("nfs", "nfs4")
STOPPED = ("exited", "created")
COLUMN = {"stacks": 49, "mounts": 36, "hosts": 36}  # where the shipped files align comments


class CaptureError(Exception):
    """Capture cannot start: a host the SSOT does not name, a stack not on the hosts asked."""


class HostUnreachable(Exception):
    """A host's facts could not be read: {host: why}."""

    def __init__(self, reasons: dict[str, str]):
        self.reasons = reasons
        super().__init__("; ".join(f"{h}: {r}" for h, r in reasons.items()))


@dataclass
class Capture:
    """The fragments, by SSOT file stem: their text, and notes for the person (stderr)."""

    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- facts ------------------------------------------------------------------------------------

def read_facts(ssot: Ssot, hosts: list[str], settings: Settings,
               facts_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Each host's facts, live (one SSH command each, in parallel) or from saved facts."""
    unknown = [h for h in hosts if h not in ssot.hosts]
    if unknown:
        raise CaptureError(f"{', '.join(unknown)}: not in {ssot.where('hosts')[0]}; capture "
                           "reaches a host the SSOT names (its ssh address), and writes the rest")
    collectors = host_collectors(ssot, settings)
    if facts_dir is None:
        cannot = [h for h in hosts if f"host:{h}" not in collectors]
        if cannot:
            raise CaptureError(f"{', '.join(cannot)}: not an active host with an ssh target in "
                               "hosts.yaml, so it cannot be reached")
    store = FactStore(collectors, deadline=settings.timeout, replay_dir=facts_dir, contract=True)
    store.prefetch(f"host:{h}" for h in hosts)
    out, failed = {}, {}
    for h in hosts:
        try:
            out[h] = store.get(f"host:{h}")
        except (Unreachable, FactsContractError) as exc:
            failed[h] = exc.reason
    if failed:
        raise HostUnreachable(failed)
    return out


def date_of(facts: dict[str, Any]) -> str:
    """The day the facts were collected, by the host's clock (docker.now), else today (UTC)."""
    now = str((facts.get("docker") or {}).get("now") or "")
    return now[:10] if len(now) >= 10 and now[4] == "-" else time.strftime("%Y-%m-%d",
                                                                           time.gmtime())


# --- the entries ------------------------------------------------------------------------------

def capture(ssot: Ssot, facts: dict[str, dict[str, Any]], stack: str | None = None) -> Capture:
    """The fragments for these hosts' facts (in the order given); only `stack` when named."""
    hosts = list(facts)
    if stack is not None and (stack not in ssot.stacks or ssot.stacks[stack].host not in hosts):
        on = sorted(s.name for h in hosts for s in ssot.stacks_on(h))
        raise CaptureError(f"--stack {stack}: not a stack of {', '.join(hosts)} in the SSOT "
                           f"(theirs: {', '.join(on) or 'none'})")
    out = Capture()
    dates: dict[str, list[str]] = {}
    for h in hosts:
        dates.setdefault(date_of(facts[h]), []).append(h)
    header = "# captured " + "; ".join(f"{d} from {', '.join(hs)}" for d, hs in dates.items())
    stacks = {}
    for h in hosts:
        stacks.update(_stacks(ssot, h, facts[h], out.notes))
    if stack is not None:
        stacks = {stack: stacks[stack]}
    else:
        out.files["hosts"] = render("hosts", header, HOSTS_NOTE,
                                    {"hosts": {h: _host(ssot, h, facts[h]) for h in hosts}})
    out.files["stacks"] = render("stacks", header, STACKS_NOTE, {"stacks": stacks})
    if stack is None:
        mounts = [m for h in hosts for m in _mounts(ssot, h, facts[h], out.notes)]
        servers = sorted({m.pop("_server") for m in mounts}) or [ssot.doc["nfs_server"]]
        if len(servers) > 1:
            out.notes.append(f"mounts from {len(servers)} NFS servers ({', '.join(servers)}): "
                             "mounts.yaml names one (nfs_server); the first is written")
        out.files["mounts"] = render("mounts", header, MOUNTS_NOTE,
                                     {"nfs_server": servers[0], "mounts": mounts})
    return out


HOSTS_NOTE = "# hostname and tailscale_ip captured; role, vmid, state: the SSOT's (not on a host)."
STACKS_NOTE = ("# Not captured: may_restart, why a container is stopped, what is assumed.\n"
               "# env: only names the SSOT pins, with the SSOT's value; never one read from a host.")
MOUNTS_NOTE = "# Not captured: purpose. fstype and mode as mounted (fstab where not mounted)."


def _host(ssot: Ssot, name: str, facts: dict[str, Any]) -> dict[str, Any]:
    known = ssot.doc["hosts"][name]
    entry: dict[str, Any] = {"role": known["role"]}
    if "vmid" in known:
        entry["vmid"] = known["vmid"]
    entry["hostname"] = facts.get("hostname") or known["hostname"]
    if not facts.get("hostname"):
        entry["hostname"] = Commented(entry["hostname"], "not read from the host: the SSOT's")
    entry["state"] = known["state"]
    ts = facts.get("tailscale") or {}
    v4 = [ip for ip in ts.get("ips") or [] if _is_v4(ip)]
    if ts.get("ok") and v4:
        entry["tailscale_ip"] = v4[0]
    return entry


def _is_v4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def _stacks(ssot: Ssot, host: str, facts: dict[str, Any],
            notes: list[str]) -> dict[str, dict[str, Any]]:
    """The host's stacks with the containers its engine runs, SSOT order first, then new ones."""
    docker = facts.get("docker") or {}
    if not docker.get("ok"):
        notes.append(f"{host}: docker engine not read ({docker.get('error') or 'no answer'}): "
                     "no containers captured")
    live = {str(c.get("name", "")).lstrip("/"): c for c in docker.get("containers") or []}
    known = ssot.stacks_on(host)
    seen = facts.get("stacks") or {}
    out: dict[str, dict[str, Any]] = {}
    for st in known:
        f = seen.get(st.name) or {}
        compose = str((f.get("compose") or {}).get("path") or st.compose_path)
        entry: dict[str, Any] = {"host": host, "directory": f.get("directory") or st.directory,
                                 "compose_file": compose.rsplit("/", 1)[-1],
                                 "config_roots": Flow(list(st.config_roots)), "containers": {}}
        if f and not f.get("exists", True):
            entry["directory"] = Commented(entry["directory"], "not found on the host")
        out[st.name] = entry
    if not out:
        name = str(facts.get("hostname") or host)
        directory = f"/opt/stacks/{name}"
        out[name] = {"host": host,
                     "directory": Commented(directory, "assumed: the SSOT names no stack here"),
                     "compose_file": Commented("docker-compose.yml", "assumed"),
                     "config_roots": Flow([directory]), "containers": {}}
    first = next(iter(out))
    placed = {c.name: c.stack for c in ssot.containers if c.host == host}
    for name in [c.name for c in ssot.containers if c.host == host] + sorted(live):
        if name not in live or name in out[placed.get(name, first)]["containers"]:
            continue
        if name not in placed and len(out) > 1:
            notes.append(f"{host}: {name} is not in the SSOT; put in {first} (the facts do not "
                         "name compose projects)")
        entry = _container(ssot, f"{placed.get(name, first)}:{name}", live[name], notes)
        if entry is not None:
            if name not in placed:
                entry["state"] = note(entry["state"], "new: not in the SSOT")
            out[placed.get(name, first)]["containers"][name] = entry
    for c in ssot.containers:
        if c.host == host and c.name not in live:
            notes.append(f"{host}: {c.ref} is in the SSOT but not on the engine: left out")
    return out


def _container(ssot: Ssot, ref: str, c: dict[str, Any], notes: list[str]) -> dict[str, Any] | None:
    image = c.get("image")
    if not image:
        notes.append(f"{ref}: the engine gives no image: left out")
        return None
    state = c.get("state")
    entry: dict[str, Any] = {"state": "running" if state in ("running", "restarting")
                             else "stopped"}
    if state not in ("running", *STOPPED):
        entry["state"] = Commented(entry["state"], f"{state} when captured")
    entry["healthcheck"] = bool(c.get("has_healthcheck"))
    entry["image"] = image
    ports = _ports(c.get("ports_configured") or c.get("ports_published") or [], ref, notes)
    if ports:
        entry["ports"] = Flow(ports)
    known = ssot.container(ref)
    pinned = known.env if known else {}
    env, differs = {}, []
    for name, value in sorted((c.get("env") or {}).items()):
        if name in pinned and value == pinned[name]:
            env[name] = Quoted(pinned[name])
        else:
            differs.append(name)
    if env:
        entry["env"] = env
    if differs:
        entry["image"] = Commented(image, f"env {', '.join(differs)}: live value differs from "
                                          "the SSOT's (values are never captured)")
    return entry


def _ports(raw: list[dict[str, Any]], ref: str, notes: list[str]) -> list[Any]:
    """Published ports in the SSOT's notation: 8096, or {host: 7667, container: 7889}."""
    out: list[Any] = []
    for p in sorted({(p.get("host_port"), p.get("container_port"), p.get("proto") or "tcp")
                     for p in raw}, key=lambda t: (t[0] or 0, t[1], t[2])):
        host, container, proto = p
        if host is None:
            notes.append(f"{ref}: port {container}/{proto} on a random host port: left out")
            continue
        if host == container and proto == "tcp":
            out.append(host)
        else:
            item = {"host": host, "container": container}
            out.append(item if proto == "tcp" else {**item, "protocol": proto})
    return out


def _mounts(ssot: Ssot, host: str, facts: dict[str, Any], notes: list[str]) -> list[dict]:
    """The host's NFS mounts: mounted now, or in /etc/fstab (fstab line order, then path)."""
    def last(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {str(e.get("target", "")).rstrip("/") or "/": e for e in entries}
    live, fstab = last(facts.get("mounts") or []), last(facts.get("fstab") or [])
    paths = [t for t, e in fstab.items() if e.get("fstype") in NFS or
             live.get(t, {}).get("fstype") in NFS]
    paths += sorted(t for t, e in live.items() if e.get("fstype") in NFS and t not in paths)
    by_ip = {a: n for n, h in ssot.hosts.items() for a in h.addresses}
    out = []
    for path in paths:
        now, conf = live.get(path), fstab.get(path)
        mounted = now if now and now.get("fstype") in NFS else None
        use = mounted or conf or now
        source = str(use.get("source") or "")
        if ":/" not in source:
            notes.append(f"{host}:{path}: source {source!r} is not SERVER:/EXPORT: left out")
            continue
        server, export = server_of(source), "/" + source.split(":/", 1)[1]
        entry: dict[str, Any] = {"host": host, "path": path, "export": export,
                                 "fstype": use.get("fstype") if use.get("fstype") in NFS
                                 else (conf or {}).get("fstype"),
                                 "mode": mount_mode([str(o) for o in (now or conf or {})
                                                     .get("options") or []])}
        if now is not None and mounted is None:
            entry["fstype"] = Commented(entry["fstype"], f"fstab's; mounted as {now.get('fstype')}")
        elif now is None:
            entry["mode"] = Commented(entry["mode"], "fstab's: not mounted when captured")
        entry["_server"] = by_ip.get(server, server)
        out.append(entry)
    return out


# --- YAML in the shipped style ------------------------------------------------------------------

@dataclass(frozen=True)
class Commented:
    """A scalar with an end-of-line comment."""

    value: Any
    comment: str


def note(value: Any, comment: str) -> Commented:
    """value with comment added to the one it may already carry."""
    if isinstance(value, Commented):
        return Commented(value.value, f"{comment}; {value.comment}")
    return Commented(value, comment)


@dataclass(frozen=True)
class Flow:
    """A list written on one line: `[8080]`, `[{host: 7667, container: 7889}]`."""

    items: list[Any]


@dataclass(frozen=True)
class Quoted:
    """A string always written in double quotes (an env value: "1.45")."""

    text: str


def scalar(value: Any) -> str:
    if isinstance(value, Quoted):
        return json.dumps(value.text)
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    plain = text and text.strip() == text and not any(s in text for s in (": ", " #", "\n")) \
        and text[0] not in "!&*[]{}|>'\"%@`#,?:-" and yaml.safe_load(text) == text
    return text if plain else json.dumps(text)


def flow(value: Any) -> str:
    if isinstance(value, Flow):
        return "[" + ", ".join(flow(v) for v in value.items) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    return scalar(value)


def _lines(value: Any, indent: int, column: int) -> list[str]:
    out = []
    pad = " " * indent
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    for key, v in items:
        lead = f"{pad}{key}:" if key is not None else f"{pad}-"
        comment = v.comment if isinstance(v, Commented) else None
        v = v.value if isinstance(v, Commented) else v
        if isinstance(v, dict) and key is None:  # a list of mappings: `- host: vm209`
            inner = _lines(v, indent + 2, column)
            out.append(f"{pad}- {inner[0].lstrip()}")
            out.extend(inner[1:])
            continue
        if isinstance(v, dict | list) and v:
            out.append(lead)
            out.extend(_lines(v, indent + 2, column))
            continue
        line = f"{lead} {flow(v) if v or not isinstance(v, dict | list) else str(v)}"
        if comment:
            line = f"{line.ljust(column - 1)} # {comment}"
        out.append(line)
    return out


def render(stem: str, header: str, note: str, doc: dict[str, Any]) -> str:
    """One SSOT file's fragment: the capture line, a note, then the document."""
    body: list[str] = []
    for key, value in doc.items():
        if isinstance(value, dict | list) and value:
            body.append(f"{key}:")
            body.extend(_lines(value, 2, COLUMN[stem]))
        else:
            body.extend(_lines({key: value}, 0, COLUMN[stem]))
    return "\n".join([header, note, *body]) + "\n"


# --- checking and writing ---------------------------------------------------------------------

def problems(files: dict[str, str], schema_dir: Path) -> list[Problem]:
    """Every schema problem of the fragments, read back with the SSOT's own loader."""
    schemas = load_schemas(schema_dir)
    out: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="ops-capture-") as tmp:
        for stem, text in files.items():
            path = Path(tmp) / f"{stem}.yaml"
            path.write_text(text)
            out.extend(schema_problems(parse_file(path, f"{stem}.yaml"), schemas[stem]))
    return out


def write(files: dict[str, str], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, text in files.items():
        path = directory / f"{stem}.yaml"
        path.write_text(text)
        paths.append(path)
    return paths
