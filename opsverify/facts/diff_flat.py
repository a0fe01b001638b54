"""Saved facts flattened for `ops facts diff` (diff.py): {(family, subject, attribute): value}.

Each source's facts are named as the gates name them (`mount vm210:/mnt/media`, `VM vm210
(210)`, `container download-stack:radarr`, from the SSOT when it is at hand), each value under
the family that reads it: an API source's families are those whose `apis` name it; a host's
sections map to the family reading them (SECTIONS; tests/facts checks each against the family
registry). A value under a secret-named key (redact.SECRET_NAME) is a Secret: compared, never
shown. What changes every run is left out (see diff.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opsverify import redact
from opsverify.facts import contract

# host facts section -> the family whose gates read it
SECTIONS = {
    "hostname": "reachability", "tailscale": "reachability", "transport": "reachability",
    "mounts": "mounts", "fstab": "mounts", "fstab_errors": "mounts", "automounts": "mounts",
    "docker": "containers", "stacks": "secrets", "stale_refs": "stale_refs",
    "scan": "stale_refs", "config": "wiring", "zfs": "decom",
    "probes": "services",  # the same GETs from the service's own host
}
# API source -> section -> family (each one of the families whose `apis` name the source)
API_SECTIONS = {
    "cloudflare": {"": "routes"},
    "http": {"routes": "routes", "probes": "services"},
    "infisical": {"": "secrets"},
    "prometheus": {"": "observability"},
    "proxmox": {"": "vms"},  # a decommissioned VM's facts: decom (by the SSOT)
}
NOISE = {"remote_s", "duration_s"}  # host sections that change every run


@dataclass(frozen=True)
class Secret:
    """A value under a secret-named key: compared, never shown."""

    value: str

    def __repr__(self) -> str:
        return "Secret(********)"


class Items(frozenset):
    """A set-valued attribute: a change lists what was added and removed."""


# ---- naming, from the SSOT when it is at hand ------------------------------------------------

@dataclass
class Names:
    """How the gates name what the facts hold: container refs, VM names, wiring kinds."""

    containers: dict[tuple[str, str], str]   # (host, container name) -> stack:name
    vms: dict[str, str]                      # vmid -> SSOT name (vms.yaml)
    decom: dict[str, str]                    # vmid -> decommissioned host
    config_kinds: dict[str, str]             # wiring check name -> Wiring | Setting
    routes: set[str]
    host_families: tuple[str, ...]           # families reading every host's facts
    api_families: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, ssot: Any | None) -> Names:
        from opsverify import families

        reg = families.registry()
        hosts = tuple(n for n, f in reg.items() if f.host_facts)
        apis = {s: tuple(n for n, f in reg.items() if s in f.apis) for s in contract.API_SOURCES}
        if ssot is None:
            return cls({}, {}, {}, {}, set(), hosts, apis)
        from opsverify.families.vms import declared

        return cls({(c.host, c.name): c.ref for c in ssot.containers},
                   {str(v.vmid): v.name for v in declared(ssot)},
                   {str(d.vmid): d.host for d in ssot.decommissions},
                   {c.name: "Wiring" if c.source else "Setting" for c in ssot.config_checks},
                   {r.hostname for r in ssot.routes}, hosts, apis)

    def source_families(self, source: str) -> str:
        if source.startswith("host:"):
            return ", ".join(self.host_families)
        return ", ".join(self.api_families.get(source) or ()) or source


# ---- flattening: (family, subject, attribute) -> value ---------------------------------------

Flat = dict[tuple[str, str, str], Any]


class _Out:
    def __init__(self) -> None:
        self.flat: Flat = {}

    def put(self, family: str, subject: str, attribute: str, value: Any) -> None:
        self.flat[(family, subject, attribute)] = value

    def entity(self, family: str, subject: str, summary: Any) -> None:
        """subject exists (what it is, in a few words): its appearing or going is one change."""
        self.flat[(family, subject, "")] = summary


def _secret_or(name: str, value: Any) -> Any:
    if value is not None and redact.SECRET_NAME.search(str(name)):
        return Secret(json.dumps(value, sort_keys=True, default=str))
    return value


def _mode(options: Iterable[str]) -> str | None:
    opts = list(options or [])
    return "ro" if "ro" in opts else "rw" if "rw" in opts else None


def _mount_parts(o: _Out, subject: str, m: dict[str, Any], prefix: str) -> None:
    """What a mount (prefix "") or its fstab line (prefix "fstab ") says, attribute by attribute."""
    o.put("mounts", subject, prefix + "source", m.get("source"))
    o.put("mounts", subject, prefix + "fstype", m.get("fstype"))
    o.put("mounts", subject, prefix + "mode", _mode(m.get("options")))
    o.put("mounts", subject, prefix + "options", Items(x for x in m.get("options") or []
                                                       if x not in ("ro", "rw")))


def _dockers_own(m: dict[str, Any]) -> bool:
    """A mount Docker makes for a container (its root file system, network namespace, /dev/shm):
    one comes and goes with every recreate, and no gate reads them."""
    target = str(m.get("target"))
    return (m.get("fstype") == "overlay" and target.endswith("/merged")) or \
        m.get("fstype") == "nsfs" and "docker" in target or \
        "/containers/" in target and target.endswith("/mounts/shm")


def _port(p: dict[str, Any]) -> str:
    host = f"{p.get('host_ip') or ''}:{p.get('host_port')}" if p.get("host_port") else ""
    return f"{host + '->' if host else ''}{p.get('container_port')}/{p.get('proto')}"


def _host(host: str, doc: dict[str, Any], names: Names, o: _Out) -> None:
    from opsverify.families.stale_refs import place

    subj = f"host {host}"
    o.put("reachability", subj, "hostname", doc.get("hostname"))
    ts = doc.get("tailscale") or {}
    o.put("reachability", subj, "tailscale state", ts.get("backend_state"))
    o.put("reachability", subj, "tailscale IPs", Items(ts.get("ips") or []))
    o.put("reachability", subj, "tailscale online", ts.get("online"))
    o.put("reachability", subj, "tailscale error", ts.get("error"))
    o.put("reachability", subj, "host key", (doc.get("transport") or {}).get("host_key"))
    for section, why in sorted((doc.get("errors") or {}).items()):
        o.put(SECTIONS.get(section, "reachability"), subj, f"error reading {section}", why)

    # mounts: what is mounted, what fstab says, automounts
    for m in doc.get("mounts") or []:
        if _dockers_own(m):
            continue
        s = f"mount {host}:{m.get('target')}"
        o.entity("mounts", s, f"{m.get('source')} {m.get('fstype')} {_mode(m.get('options'))}")
        _mount_parts(o, s, m, "")
    for f in doc.get("fstab") or []:
        s = f"mount {host}:{f.get('target')}"
        o.flat.setdefault(("mounts", s, ""), f"in fstab: {f.get('source')} {f.get('fstype')}")
        _mount_parts(o, s, f, "fstab ")
    for e in doc.get("fstab_errors") or []:
        s = f"mount {host}:{e.get('target')}" if e.get("target") else f"fstab on {host}"
        o.put("mounts", s, f"fstab line {e.get('line')}", e.get("error"))
    for target, a in sorted((doc.get("automounts") or {}).items()):
        s = f"mount {host}:{target}"
        o.put("mounts", s, "automount mounted", a.get("mounted"))
        o.put("mounts", s, "automount error", a.get("error"))

    # containers
    docker = doc.get("docker") or {}
    o.put("containers", f"docker on {host}", "engine",
          "ok" if docker.get("ok") else f"error: {docker.get('error')}")
    for c in docker.get("containers") or []:
        name = str(c.get("name", "")).lstrip("/")
        ref = names.containers.get((host, name))
        s = f"container {ref}" if ref else f"container {name} on {host}"
        o.entity("containers", s, f"{c.get('state')}, {c.get('image')}")
        o.put("containers", s, "id", str(c.get("id"))[:12] if c.get("id") else None)
        for key, attr in (("image", "image"), ("state", "state"),
                          ("restarting", "restarting"), ("restart_count", "restart count"),
                          ("started_at", "started at"), ("health", "health"),
                          ("has_healthcheck", "healthcheck"), ("network_mode", "network mode"),
                          ("restart_policy", "restart policy")):
            o.put("containers", s, attr, c.get(key))
        o.put("containers", s, "published ports",
              Items(_port(p) for p in c.get("ports_published") or []))
        o.put("containers", s, "configured ports",
              Items(_port(p) for p in c.get("ports_configured") or []))
        for var, value in sorted((c.get("env") or {}).items()):
            o.put("containers", s, f"env {var}", _secret_or(var, value))

    # secrets: stacks on the host
    for name, st in sorted((doc.get("stacks") or {}).items()):
        s = f"stack {host}:{name}"
        o.entity("secrets", s, st.get("directory"))
        o.put("secrets", s, "directory exists", st.get("exists"))
        o.put("secrets", s, "plaintext files", Items(
            f"{p.get('path')} (keys: {', '.join(p.get('keys') or []) or 'none'})"
            for p in st.get("plaintext_files") or []))
        o.put("secrets", s, "scan complete", st.get("complete", True))
        for g in st.get("generated") or []:
            where = f"generated {g.get('path')}"
            for key in ("exists", "mode", "world_readable", "uid", "regular", "unit", "error"):
                o.put("secrets", s, f"{where} {key.replace('_', ' ')}", g.get(key))
            o.put("secrets", s, f"{where} tracked by git", (g.get("git") or {}).get("tracked"))
            gen = g.get("generator") or {}
            o.put("secrets", s, f"{where} written by its unit", gen.get("writes_file"))
            o.put("secrets", s, f"{where} unit runs infisical", gen.get("runs_infisical"))
        compose = st.get("compose") or {}
        o.put("secrets", s, "compose file exists", compose.get("exists"))
        o.put("secrets", s, "compose error", compose.get("error"))
        # names only, never values (the contract): reference | literal is safe to show
        for key, ref in sorted((compose.get("secrets") or {}).items()):
            o.put("secrets", s, f"compose {key}", (ref or {}).get("kind"))

    # stale_refs: where each retired address was found, and what the scan covered
    found: dict[str, set[str]] = {}
    for hit in doc.get("stale_refs") or []:
        found.setdefault(str(hit.get("address")), set()).add(place(hit))
    for address, places in found.items():
        o.put("stale_refs", f"stale address {address} on {host}", "found in", Items(places))
    scan = doc.get("scan") or {}
    o.put("stale_refs", f"scan on {host}", "roots", Items(scan.get("roots") or []))
    o.put("stale_refs", f"scan on {host}", "complete", scan.get("complete", True))
    o.put("stale_refs", f"scan on {host}", "skipped",
          Items(str(x.get("path")) for x in scan.get("skipped") or []))

    # wiring: app configs
    for name, cfg in sorted((doc.get("config") or {}).items()):
        s = f"{names.config_kinds.get(name, 'config').lower()} {name} on {host}"
        o.entity("wiring", s, cfg.get("file"))
        o.put("wiring", s, "file", cfg.get("file"))
        o.put("wiring", s, "read", "ok" if cfg.get("ok") else f"error: {cfg.get('error')}")
        for path, values in sorted((cfg.get("values") or {}).items()):
            o.put("wiring", s, path, _secret_or(path, list(values or [])))
        for path, via in sorted((cfg.get("via") or {}).items()):
            o.put("wiring", s, f"{path} via", list(via or []))
        for path, why in sorted((cfg.get("unresolved") or {}).items()):
            o.put("wiring", s, f"{path} unresolved", list(why or []))

    # decom: the Proxmox host's datasets
    if "zfs" in doc:
        z = doc.get("zfs") or {}
        o.put("decom", f"ZFS on {host}", "datasets", Items(z.get("datasets") or []))
        o.put("decom", f"ZFS on {host}", "error", z.get("error"))

    # a section a newer collector added: compared whole
    known = set(SECTIONS) | NOISE | {"errors"}
    for section in sorted(set(doc) - known):
        o.put(SECTIONS.get(section, "other"), subj, section,
              _secret_or(section, json.dumps(doc[section], sort_keys=True, default=str)))


def _cloudflare(doc: dict[str, Any], names: Names, o: _Out) -> None:
    fam = API_SECTIONS["cloudflare"][""]
    zone, tunnel = doc.get("zone") or {}, doc.get("tunnel") or {}
    o.put(fam, "Cloudflare zone", "name", zone.get("name"))
    o.put(fam, "Cloudflare zone", "id", zone.get("id"))
    o.put(fam, "tunnel ingress", "tunnel id", tunnel.get("id"))
    o.put(fam, "tunnel ingress", "remotely managed", tunnel.get("remote"))
    rules = tunnel.get("ingress") or []
    for i, rule in enumerate(rules):
        if not rule.get("hostname"):
            last = "" if i == len(rules) - 1 else f" (rule {i + 1} of {len(rules)}, not last)"
            o.put(fam, "tunnel ingress", "catch-all", f"{rule.get('service')}{last}")
            continue
        s = f"route {rule['hostname']}"
        path = f" (path {rule['path']})" if rule.get("path") else ""
        o.put(fam, s, "ingress service", f"{rule.get('service')}{path}")
    records: dict[str, set[str]] = {}
    for r in doc.get("dns") or []:
        name = str(r.get("name", "")).lower().rstrip(".")
        records.setdefault(name, set()).add(
            f"{r.get('type')} {r.get('content')} ({'' if r.get('proxied') else 'not '}proxied)")
    for name, recs in records.items():
        s = f"route {name}" if name in names.routes or not names.routes else f"DNS {name}"
        o.put(fam, s, "DNS", Items(recs))


def _http(doc: dict[str, Any], names: Names, o: _Out) -> None:
    fam = API_SECTIONS["http"]
    for host, r in sorted((doc.get("routes") or {}).items()):
        s = f"route {host}"
        for key in ("status", "location", "error", "unreachable"):
            o.put(fam["routes"], s, f"public {key}", r.get(key))
    for name, p in sorted((doc.get("probes") or {}).items()):
        s = f"service {name}"
        o.entity(fam["probes"], s, p.get("url"))
        for key in ("url", "status", "error", "auth_error", "unreachable", "connected"):
            o.put(fam["probes"], s, key.replace("_", " "), p.get(key))
        o.put(fam["probes"], s, "body", p.get("body"))
        for key, value in sorted((p.get("json") or {}).items()):
            o.put(fam["probes"], s, f"JSON {key}", _secret_or(key, value))
        for key, present in sorted((p.get("json_keys") or {}).items()):
            o.put(fam["probes"], s, f"JSON key {key} present", present)


def _infisical(doc: dict[str, Any], names: Names, o: _Out) -> None:
    fam = API_SECTIONS["infisical"][""]
    for path, p in sorted((doc.get("paths") or {}).items()):
        s = f"Infisical {path}"
        o.entity(fam, s, "found")
        # key names only: the collector never reads a value (viewSecretValue=false)
        o.put(fam, s, "keys", Items(p.get("keys") or []))
        for key, sources in sorted((p.get("imported") or {}).items()):
            o.put(fam, s, f"{key} imported from", Items(sources or []))
        for imp in p.get("imports") or []:
            o.put(fam, s, f"import {imp.get('from')} keys", Items(imp.get("keys") or []))


def _prometheus(doc: dict[str, Any], names: Names, o: _Out) -> None:
    fam = API_SECTIONS["prometheus"][""]
    for t in doc.get("targets") or []:
        s = f"scrape target {t.get('instance')} (job {t.get('job')})"
        o.entity(fam, s, t.get("health"))
        o.put(fam, s, "health", t.get("health"))
        o.put(fam, s, "last error", t.get("last_error") or None)
        o.put(fam, s, "scrape URL", t.get("scrape_url"))
    for name, r in sorted((doc.get("rules") or {}).items()):
        # the rule's values move every run: whether it could be evaluated is what stays
        o.put(fam, f"rule {name}", "query", "ok" if r.get("ok") else f"error: {r.get('error')}")


def _proxmox(doc: dict[str, Any], names: Names, o: _Out) -> None:
    o.put(API_SECTIONS["proxmox"][""], "Proxmox", "node", doc.get("node"))
    for vmid, vm in sorted((doc.get("vms") or {}).items()):
        if vmid in names.decom:
            fam, s = "decom", f"decommission {names.decom[vmid]} (VM {vmid})"
        else:
            fam = API_SECTIONS["proxmox"][""]
            s = f"VM {names.vms[vmid]} ({vmid})" if vmid in names.vms else f"VM {vmid}"
        for key in ("exists", "node", "status", "qmpstatus", "onboot", "name"):
            if key in vm:
                o.put(fam, s, key, vm[key])


APIS = {"cloudflare": _cloudflare, "http": _http, "infisical": _infisical,
        "prometheus": _prometheus, "proxmox": _proxmox}


def flatten(source: str, doc: dict[str, Any], names: Names) -> Flat:
    o = _Out()
    if source.startswith("host:"):
        _host(source.removeprefix("host:"), doc, names, o)
    else:
        APIS[source](doc, names, o)
    return o.flat
