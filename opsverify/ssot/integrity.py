"""Referential rules across SSOT files: every reference resolves, nothing points at the past."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from opsverify.redact import SECRET_NAME

from . import waivers
from .loader import Problem, json_path
from .model import Ssot

Rule = Callable[[Ssot], Iterator[Problem]]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    """Register a referential rule; the ssot gate family runs one test per rule."""
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn
    return register


def _at(ssot: Ssot, stem: str, path: tuple, message: str) -> Problem:
    name, line = ssot.where(stem, *path)
    return Problem(name, line, json_path(path), message)


def _host_ref(ssot: Ssot, stem: str, path: tuple, host: str, what: str) -> Iterator[Problem]:
    """An inactive host where an active one is needed (an unknown one: rule host_refs)."""
    h = ssot.hosts.get(host)
    if h is not None and not h.active:
        yield _at(ssot, stem, path, f"{what} points at {host!r}, which is {h.state}")


HOST_KEYS = ("host", "nfs_server")  # keys whose string value names a host of hosts.yaml


@rule("host_refs")
def host_refs_resolve(ssot: Ssot) -> Iterator[Problem]:
    """Every host reference in every SSOT file names a host of hosts.yaml."""
    for stem, src in sorted(ssot.files.items()):
        for path, value in _host_values(src.data, ()):
            if value not in ssot.hosts:
                yield _at(ssot, stem, path, f"names host {value!r}, which hosts.yaml does "
                                            "not define")


def _host_values(node: Any, path: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in HOST_KEYS and isinstance(v, str):  # ports' `host:` is a number, not a name
                yield path + (k,), v
            else:
                yield from _host_values(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _host_values(v, path + (i,))


def _container_ref(ssot: Ssot, stem: str, path: tuple, ref: str, what: str) -> Iterator[Problem]:
    if ssot.container(ref) is None:
        yield _at(ssot, stem, path, f"{what} names container {ref!r}, which stacks.yaml does not define")


def _host_ports(ssot: Ssot, host: str) -> set[int]:
    return {p.host for c in ssot.containers if c.host == host for p in c.ports}


@rule("stacks")
def stacks_on_active_hosts(ssot: Ssot) -> Iterator[Problem]:
    """Every stack, and so every container, lives on an active host."""
    for name, s in ssot.stacks.items():
        yield from _host_ref(ssot, "stacks", ("stacks", name, "host"), s.host, f"stack {name!r}")


@rule("ports")
def no_port_twice(ssot: Ssot) -> Iterator[Problem]:
    """No published port is used twice on one host."""
    seen: dict[tuple[str, int], str] = {}
    for c in ssot.containers:
        for i, p in enumerate(c.ports):
            key = (c.host, p.host)
            if key in seen:
                yield _at(ssot, "stacks", ("stacks", c.stack, "containers", c.name, "ports", i),
                          f"port {p.host} on {c.host} is already published by {seen[key]}")
            else:
                seen[key] = c.ref


@rule("hosts")
def host_addresses(ssot: Ssot) -> Iterator[Problem]:
    """Addresses are unique, SSH targets are the host's own, hostnames are unique."""
    owner: dict[str, str] = {}
    names: dict[str, str] = {}
    for name, h in ssot.hosts.items():
        for key in ("tailscale_ip", "lan_ip"):
            addr = getattr(h, key)
            if addr and addr in owner:
                yield _at(ssot, "hosts", ("hosts", name, key),
                          f"{addr} is also the address of {owner[addr]}")
            elif addr:
                owner[addr] = name
        if h.hostname in names:
            yield _at(ssot, "hosts", ("hosts", name, "hostname"),
                      f"hostname {h.hostname!r} is also {names[h.hostname]}'s")
        names[h.hostname] = name
        if h.ssh_address and h.ssh_address not in h.addresses:
            yield _at(ssot, "hosts", ("hosts", name, "ssh", "address"),
                      f"SSH target {h.ssh_address} is none of {name}'s addresses")
        if h.active and h.role == "vm" and not h.ssh_address:
            yield _at(ssot, "hosts", ("hosts", name), "an active VM needs an ssh target")


@rule("mounts")
def mounts_resolve(ssot: Ssot) -> Iterator[Problem]:
    """Every mount is on an active host, served by a host with a LAN address, once per path."""
    server = ssot.hosts.get(ssot.doc["nfs_server"])
    if server is None or not server.lan_ip:
        yield _at(ssot, "mounts", ("nfs_server",),
                  f"NFS server {ssot.doc['nfs_server']!r} is not a host with a lan_ip")
    seen = set()
    for i, m in enumerate(ssot.mounts):
        yield from _host_ref(ssot, "mounts", ("mounts", i, "host"), m.host, f"mount {m.path}")
        if (m.host, m.path) in seen:
            yield _at(ssot, "mounts", ("mounts", i, "path"), f"{m.host}:{m.path} is listed twice")
        seen.add((m.host, m.path))


@rule("routes")
def routes_resolve(ssot: Ssot) -> Iterator[Problem]:
    """Every route targets a port published on an active host, inside the tunnel's zone."""
    zone = ssot.cloudflare["zone"]
    for r in ssot.routes:
        path = ("routes", r.hostname)
        yield from _host_ref(ssot, "routes", path + ("host",), r.host, f"route {r.hostname}")
        if r.host in ssot.hosts and r.port not in _host_ports(ssot, r.host):
            yield _at(ssot, "routes", path + ("port",),
                      f"no container publishes port {r.port} on {r.host}")
        if not r.hostname.endswith("." + zone):
            yield _at(ssot, "routes", path, f"{r.hostname} is not in zone {zone}")
        if r.status in (301, 302, 303, 307, 308) and not r.location:
            yield _at(ssot, "routes", path + ("expect",), "a redirect needs an expected location")


@rule("probes")
def probes_resolve(ssot: Ssot) -> Iterator[Problem]:
    """Every probe names a container that publishes a port and runs, and a known secret."""
    for p in ssot.probes:
        path = ("probes", p.name, "container")
        yield from _container_ref(ssot, "services", path, p.container, f"probe {p.name!r}")
        c = ssot.container(p.container)
        if c and not c.ports:
            yield _at(ssot, "services", path, f"{p.container} publishes no port to probe")
        if c and c.state != "running":
            yield _at(ssot, "services", path, f"{p.container} is intentionally {c.state}")
        for key in ("secret", "subsonic_user", "subsonic_password"):
            if key in p.auth and p.auth[key] not in ssot.secret_keys:
                yield _at(ssot, "services", ("probes", p.name, "auth", key),
                          f"secret {p.auth[key]!r} is in no Infisical path of secrets.yaml")


@rule("wiring")
def wiring_resolves(ssot: Ssot) -> Iterator[Problem]:
    """Same VM by Docker DNS name and container port, across VMs by Tailscale IP and host port."""
    for chk in ssot.config_checks:
        stem_path = (("references", chk.name) if chk.source else ("app_settings", chk.name))
        if chk.source is None:
            yield from _host_ref(ssot, "wiring", stem_path + ("host",), chk.host, chk.name)
        else:
            yield from _container_ref(ssot, "wiring", stem_path + ("from",), chk.source, chk.name)
            yield from _container_ref(ssot, "wiring", stem_path + ("to",), chk.target, chk.name)
            src, dst = ssot.container(chk.source), ssot.container(chk.target)
            if src and dst:
                yield from _address_form(ssot, stem_path, chk, src, dst)
        for key in chk.keys:
            if SECRET_NAME.search(key):
                yield _at(ssot, "wiring", stem_path + ("keys", key),
                          "names a secret; wiring reads addresses and settings, never secrets")
        if chk.format == "sqlite" and not (chk.table and chk.row):
            yield _at(ssot, "wiring", stem_path, "a sqlite check needs `table` and `row`")
        if chk.host in ssot.hosts and not any(
                _under(chk.file, root) for s in ssot.stacks_on(chk.host) for root in s.config_roots):
            yield _at(ssot, "wiring", stem_path + ("file",),
                      f"{chk.file} is under none of {chk.host}'s config roots")


def _address_form(ssot: Ssot, path: tuple, chk: Any, src: Any, dst: Any) -> Iterator[Problem]:
    if src.host == dst.host:
        want, ports, how = dst.name, {p.container for p in dst.ports}, "Docker DNS name"
    else:
        want = getattr(ssot.hosts.get(dst.host), "tailscale_ip", None)
        ports, how = {p.host for p in dst.ports}, f"Tailscale IP of {dst.host}"
    if chk.address != want:
        yield _at(ssot, "wiring", path + ("address",),
                  f"{chk.source} -> {chk.target} must use the {how} {want!r}, not {chk.address!r}")
    for key, value in chk.keys.items():
        port = _port_in(value)
        if port is not None and ports and port not in ports and str(value).startswith("http"):
            yield _at(ssot, "wiring", path + ("keys", key),
                      f"{value!r}: {chk.target} listens on {sorted(ports)} there, not {port}")
    if not any(chk.address in str(v) for v in chk.keys.values()):
        yield _at(ssot, "wiring", path + ("keys",), f"no key holds the address {chk.address!r}")


def _port_in(value: Any) -> int | None:
    m = re.search(r":(\d+)(/|$)", str(value))
    return int(m.group(1)) if m else None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@rule("secrets")
def secrets_resolve(ssot: Ssot) -> Iterator[Problem]:
    """Every Infisical path belongs to a stack on an active host; no key is kept twice; a
    generated .env belongs to a stack, lies where its secrets gate scans, is not world-readable
    and is named like a plaintext secrets file."""
    seen: dict[str, str] = {}
    for sp in ssot.secret_paths:
        path = ("secret_paths", sp.path)
        if sp.stack not in ssot.stacks:
            yield _at(ssot, "secrets", path + ("stack",), f"stack {sp.stack!r} is not defined")
        for i, key in enumerate(sp.keys):
            if key in seen:
                yield _at(ssot, "secrets", path + ("keys", i), f"{key} is also kept at {seen[key]}")
            seen[key] = sp.path
    for g in ssot.generated_env:
        path = ("generated_env", g.path)
        st = ssot.stacks.get(g.stack)
        if st is None:
            yield _at(ssot, "secrets", path + ("stack",), f"stack {g.stack!r} is not defined")
        elif not any(_under(g.path, d) for d in (st.directory, *st.config_roots)):
            yield _at(ssot, "secrets", path, f"{g.path} is under neither {g.stack}'s directory "
                                             "nor its config roots, where the gate scans")
        if int(g.mode, 8) & 0o077:
            yield _at(ssot, "secrets", path + ("mode",),
                      f"mode {g.mode} lets others than the owner read the secrets; use 0600")
        name = g.path.rsplit("/", 1)[-1]
        if not any(fnmatch.fnmatchcase(name, p) for p in ssot.plaintext_files):
            yield _at(ssot, "secrets", path, f"{name} matches none of plaintext_files, so "
                                             "declaring it allows nothing")


@rule("observability")
def targets_resolve(ssot: Ssot) -> Iterator[Problem]:
    """Every scrape target is an address and published port of an active host."""
    for t in ssot.scrape_targets:
        path = ("scrape_targets", t.name)
        yield from _host_ref(ssot, "observability", path + ("host",), t.host, f"target {t.name}")
        h = ssot.hosts.get(t.host)
        if h and t.address not in h.addresses:
            yield _at(ssot, "observability", path + ("address",),
                      f"{t.address} is none of {t.host}'s addresses")
        if h and t.port not in _host_ports(ssot, t.host):
            yield _at(ssot, "observability", path + ("port",),
                      f"no container publishes port {t.port} on {t.host}")


@rule("decommission")
def decommissions_resolve(ssot: Ssot) -> Iterator[Problem]:
    """A decommission record describes a decommissioned VM on an active Proxmox node."""
    for d in ssot.decommissions:
        path = ("decommissions", d.host)
        h = ssot.hosts.get(d.host)
        if h is None:
            yield _at(ssot, "decommission", path, f"{d.host!r} is not defined in hosts.yaml")
            continue
        if h.state != "decommissioned":
            yield _at(ssot, "decommission", path, f"{d.host} has a decommission record but is {h.state}")
        if h.vmid != d.vmid:
            yield _at(ssot, "decommission", path + ("vmid",), f"vmid {d.vmid} != hosts.yaml's {h.vmid}")
        if not any(x.proxmox_node == d.node and x.active for x in ssot.hosts.values()):
            yield _at(ssot, "decommission", path + ("node",), f"no active host is Proxmox node {d.node!r}")
        if d.hold_until <= d.stopped_at:
            yield _at(ssot, "decommission", path + ("hold_until",), "hold_until is not after stopped_at")
    for name, h in ssot.hosts.items():
        if h.state == "decommissioned" and name not in ssot.doc["decommissions"]:
            yield _at(ssot, "hosts", ("hosts", name, "state"), f"{name} has no decommission record")
        if h.state == "decommissioned" and h.addresses:
            yield _at(ssot, "hosts", ("hosts", name),
                      "a decommissioned host keeps its addresses in retired.yaml, not here")


# Files whose job is to hold retired addresses.
_RETIRED_HOMES = {"retired", "decommission"}


@rule("retired")
def retired_only_in_records(ssot: Ssot) -> Iterator[Problem]:
    """A retired address appears only in the retired list and decommission records."""
    if not ssot.retired_addresses:
        return
    pattern = re.compile(r"(?<![\d.])(" + "|".join(map(re.escape, ssot.retired_addresses))
                         + r")(?![\d])")
    for stem, src in ssot.files.items():
        if stem in _RETIRED_HOMES:
            continue
        for path, value in _scalars(src.data, ()):
            for m in pattern.finditer(str(value)):
                yield _at(ssot, stem, path, f"retired address {m.group(1)} "
                          f"({ssot.retired_addresses[m.group(1)]}) in an active record")
    for d in ssot.decommissions:
        if d.address and d.address not in ssot.retired_addresses:
            yield _at(ssot, "decommission", ("decommissions", d.host, "address"),
                      f"{d.address} is not in retired.yaml")
    for i, r in enumerate(ssot.doc["retired_addresses"]):
        h = ssot.hosts.get(r.get("host") or "")
        if h is not None and h.active:
            yield _at(ssot, "retired", ("retired_addresses", i, "host"),
                      f"{r['address']} is retired, but {h.name} is {h.state}")


def _scalars(node: Any, path: tuple) -> Iterator[tuple[tuple, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield path + (k,), k
            yield from _scalars(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _scalars(v, path + (i,))
    else:
        yield path, node


@rule("waivers")
def waiver_terms(ssot: Ssot) -> Iterator[Problem]:
    """A waiver starts before it ends and runs no longer than max_days."""
    yield from waivers.problems(ssot)


def run_rule(ssot: Ssot, name: str) -> list[Problem]:
    """One rule's problems; a rule tripped by a gap in another keeps the others running."""
    try:
        return sorted(set(RULES[name](ssot)))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        src = next(iter(ssot.files.values()))
        return [Problem(str(Path(src.name).parent), 0, "",
                        f"rule {name!r} could not run: {exc.__class__.__name__}: {exc}")]


def all_problems(ssot: Ssot) -> list[Problem]:
    """Every referential problem, all rules."""
    return sorted({p for name in RULES for p in run_rule(ssot, name)})

