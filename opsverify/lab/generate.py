"""A synthetic SSOT of N active hosts: the shipped one plus VMs shaped like 209 and 210.

    python -m opsverify.lab.generate --hosts 30 --out /tmp/ssot30    (or `ops lab generate`)

The base SSOT's hosts stay as they are; each added VM copies the entries of one of the two
stack VMs of the base (alternately the download VM and the streaming VM): its host record with
fresh addresses, its mounts, a stack holding a few of its containers, their Infisical path,
probes, public routes, wiring checks and a node-exporter scrape target. Entries are copied
from the base rather than written here, so a generated SSOT follows the base's schemas as
they change. The result is validated with the SSOT loader before it is kept.

A synthetic VM carries 3 containers, not 24 or 10 (see SHAPES): enough that every host gate
family has real work on every host (a healthy container, an intentionally stopped one where
209 has them, a probe, a route, config files in four formats, a cross-VM reference, a scrape
target), few enough that 100 hosts fit on one machine. One in ten carries a stale address in
a config backup file, so a scale run has real drift to find and report.

Addresses are fresh and private: Tailscale 100.96.0.0/16, LAN 192.168.2.0/23. They exist only
inside a twin's network namespace (`ops lab up --ssot OUT`).

Beside the YAML, OUT/lab-twin.json holds hints for `ops lab up` (not part of the truth; the
SSOT loader reads only *.yaml): which hosts share one Docker engine, their health check
interval and node-exporter collectors, the planted stale addresses. See opsverify/lab/scale.py.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HINTS_FILE = "lab-twin.json"
HINTS_FORMAT = "opsverify-lab-hints/1"
FIRST_VMID = 301
TAILSCALE_NET = ipaddress.ip_network("100.96.0.0/16")
LAN_NET = ipaddress.ip_network("192.168.2.0/23")
SCRAPE_JOB = "node-synthetic"
STALE_EVERY = 10   # one synthetic VM in ten gets a stale address planted
STALE_AT = 4       # ... the fifth, fifteenth, ...
SECRET_FIELDS = ("secret", "subsonic_user", "subsonic_password")  # probe auth naming a key


@dataclass(frozen=True)
class Shape:
    """A kind of synthetic VM: the base container it is copied from and what it runs."""

    kind: str                 # the hostname prefix: download-301, streaming-302
    marker: str               # a container only this template VM's stack has
    containers: tuple[str, ...]
    stale_in: str             # the container whose config directory gets the stale backup


# Why these: radarr (an arr app: API key from Infisical, XML config, probe with X-Api-Key),
# slskd (intentionally stopped, as in 209's P6 soak; an exited container costs no process),
# node-exporter (the scrape target); jellyfin (probe, public route, library XML, a cross-VM
# plugin reference to radarr), jellyseerr (JSON settings with a same-VM and a cross-VM
# reference, a 307 route). Each process is a containerd shim (~4.5 MB) plus the app.
SHAPES = (Shape("download", "radarr", ("radarr", "slskd", "node-exporter"), "radarr"),
          Shape("streaming", "jellyfin", ("jellyfin", "jellyseerr", "node-exporter"),
                "jellyseerr"))


class GenerateError(Exception):
    """The base SSOT cannot be extended (a message for a person)."""


class _Dumper(yaml.SafeDumper):
    """No anchors: the SSOT loader refuses YAML aliases, and copies may share objects."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class _Loader(yaml.SafeLoader):
    """Scalars as written: a timestamp stays the RFC 3339 string the schema asks for."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _read(base: Path) -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(base.glob("*.yaml")):
        docs[path.stem] = yaml.load(path.read_text(), Loader=_Loader) or {}  # _Loader is a SafeLoader
    return docs


def _sub(node: Any, old: dict[str, str]) -> Any:
    """A deep copy of node with every string in which an old value appears rewritten."""
    if isinstance(node, dict):
        return {k: _sub(v, old) for k, v in node.items()}
    if isinstance(node, list):
        return [_sub(v, old) for v in node]
    if isinstance(node, str):
        for a, b in old.items():
            node = node.replace(a, b)
    return node


def _template(docs: dict[str, Any], shape: Shape) -> tuple[str, str]:
    """(host, stack) of the base VM whose stack runs shape.marker."""
    for name, st in docs["stacks"]["stacks"].items():
        if shape.marker in (st.get("containers") or {}):
            return st["host"], name
    raise GenerateError(f"the base SSOT has no stack running {shape.marker!r} to copy")


def _free(net: ipaddress.IPv4Network, taken: set[str], skip: int = 10):
    for i, addr in enumerate(net.hosts()):
        if i >= skip and str(addr) not in taken:
            yield str(addr)


def generate(hosts: int, out: Path, base: Path | None = None) -> dict[str, Any]:
    """Write an SSOT of `hosts` active hosts to `out` (replaced); returns its hints."""
    from opsverify import ssot as ssot_pkg

    base = Path(base or ssot_pkg.default_dir())
    try:
        ref = ssot_pkg.load(base)
    except ssot_pkg.SsotInvalid as exc:
        raise GenerateError(f"the base SSOT {base} is invalid:\n{exc}") from None
    have = len(ref.active_hosts)
    if hosts < have:
        raise GenerateError(f"--hosts {hosts}: the base SSOT already has {have} active hosts")
    docs = _read(base)
    orig = copy.deepcopy(docs)  # what each VM copies from: the base entries only
    taken = {a for h in ref.hosts.values() for a in h.addresses} | set(ref.retired_addresses)
    tailscale, lan = _free(TAILSCALE_NET, taken), _free(LAN_NET, taken)
    templates = [_template(docs, s) for s in SHAPES]
    hints: dict[str, Any] = {
        "format": HINTS_FORMAT,
        "generated": {"by": "opsverify.lab.generate", "hosts": hosts, "base": str(base),
                      "synthetic": hosts - have},
        "shared_engine": [], "health_interval_s": 30,
        "node_exporter_collectors": ["loadavg", "meminfo", "pressure"],
        "scrape_jobs": {SCRAPE_JOB: 10}, "plant": [], "secret_aliases": {}}
    made: list[dict[str, str]] = []  # per synthetic VM: name, stack, shape, template host
    for i in range(hosts - have):
        shape, (thost, tstack) = SHAPES[i % 2], templates[i % 2]
        vmid = FIRST_VMID + i
        name = f"vm{vmid}"
        if name in docs["hosts"]["hosts"]:
            raise GenerateError(f"the base SSOT already has a host named {name}")
        t = docs["hosts"]["hosts"][thost]
        h = copy.deepcopy(t)
        h.update(description=f"synthetic {tstack} VM (generated by opsverify.lab.generate)",
                 vmid=vmid, hostname=f"{shape.kind}-{vmid}", tailscale_ip=next(tailscale),
                 lan_ip=next(lan))
        if "ssh" in h:
            h["ssh"]["address"] = h["tailscale_ip"] if t["ssh"]["address"] == t.get(
                "tailscale_ip") else h["lan_ip"]
        docs["hosts"]["hosts"][name] = h
        made.append({"name": name, "stack": f"{tstack}-{vmid}", "kind": shape.kind,
                     "thost": thost, "tstack": tstack})
        hints["shared_engine"].append(name)
        if i % STALE_EVERY == STALE_AT:
            retired = min(ref.retired_addresses)
            hints["plant"].append({
                "host": name, "address": retired,
                "file": f"/mnt/docker/{shape.stale_in}/backup/settings-before-split.json",
                "content": json.dumps({"note": "pre-split backup",
                                       "url": f"http://{retired}:8096"}, indent=2) + "\n"})
    ips = {m["name"]: docs["hosts"]["hosts"][m["name"]] for m in made}
    for k, m in enumerate(made):
        shape = SHAPES[k % 2]
        t = docs["hosts"]["hosts"][m["thost"]]
        new = ips[m["name"]]
        # the VM of the other shape this one is wired to: its neighbour in the list
        peer = made[k - 1] if k % 2 else (made[k + 1] if k + 1 < len(made) else None)
        old = {t["tailscale_ip"]: new["tailscale_ip"], t["lan_ip"]: new["lan_ip"]}
        stacks = {m["tstack"]: m["stack"]}
        if peer is not None:
            pt = docs["hosts"]["hosts"][peer["thost"]]
            old[pt["tailscale_ip"]] = ips[peer["name"]]["tailscale_ip"]
            stacks[peer["tstack"]] = peer["stack"]
        _add_vm(docs, orig, m, shape, old, stacks, peer, hints["secret_aliases"])
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "schemas").mkdir(parents=True)
    for schema in sorted((base / "schemas").glob("*.json")):
        shutil.copy(schema, out / "schemas" / schema.name)
    head = (f"# GENERATED by opsverify.lab.generate: {hosts} active hosts, the base SSOT {base}\n"
            "# plus synthetic VMs for scale runs on the lab twin. Do not edit; regenerate.\n")
    for stem, doc in docs.items():
        (out / f"{stem}.yaml").write_text(
            head + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000))
    (out / HINTS_FILE).write_text(json.dumps(hints, indent=1) + "\n")
    try:
        got = ssot_pkg.load(out)
    except ssot_pkg.SsotInvalid as exc:
        raise GenerateError(f"the generated SSOT is invalid (a bug):\n{exc}") from None
    if len(got.active_hosts) != hosts:
        raise GenerateError(f"generated {len(got.active_hosts)} active hosts, not {hosts}")
    return hints


def _add_vm(docs: dict[str, Any], orig: dict[str, Any], m: dict[str, str], shape: Shape,
            old: dict[str, str], stacks: dict[str, str], peer: dict[str, str] | None,
            aliases: dict[str, str]) -> None:
    """Copy the template VM's entries of the base (orig) into docs for the synthetic VM m."""
    name, stack, tstack, thost = m["name"], m["stack"], m["tstack"], m["thost"]
    keep = {(tstack, c) for c in shape.containers}
    if peer is not None:
        other = next(s for s in SHAPES if s is not shape)
        keep |= {(peer["tstack"], c) for c in other.containers}

    def ref(value: str) -> str | None:
        """A base container reference rewritten for this VM, or None if it is not copied."""
        st, _, c = value.partition(":")
        return f"{stacks[st]}:{c}" if (st, c) in keep and st in stacks else None

    def renamed(key: str) -> str:
        aliases[f"{key}_{name.upper()}"] = key
        return f"{key}_{name.upper()}"

    st = copy.deepcopy(orig["stacks"]["stacks"][tstack])
    st["host"] = name
    st["directory"] = st["directory"].replace(tstack, stack)
    st["config_roots"] = [r.replace(tstack, stack) for r in st.get("config_roots", [])]
    st["containers"] = {c: v for c, v in st["containers"].items() if c in shape.containers}
    docs["stacks"]["stacks"][stack] = st
    hostname = docs["hosts"]["hosts"][name]["hostname"]
    for mount in [x for x in orig["mounts"]["mounts"] if x["host"] == thost]:
        new = dict(mount, host=name)
        new["export"] = mount["export"].replace(tstack, hostname)
        docs["mounts"]["mounts"].append(new)
    prefixes = tuple(c.upper().replace("-", "_") + "_" for c in shape.containers)
    for path, sp in orig["secrets"]["secret_paths"].items():
        if sp.get("stack") == tstack:
            keys = [k for k in sp["keys"] if k.startswith(prefixes)]
            if keys:
                # A key name lives at one Infisical path only: the VM's own name for it.
                docs["secrets"]["secret_paths"][f"{path}-{name}"] = {
                    **copy.deepcopy(sp), "stack": stack, "keys": [renamed(k) for k in keys]}
    for pname, probe in orig["services"]["probes"].items():
        target = ref(probe["container"]) if probe["container"].startswith(tstack + ":") else None
        if target:
            auth = {k: renamed(v) if k in SECRET_FIELDS else v
                    for k, v in (probe.get("auth") or {}).items()}
            docs["services"]["probes"][f"{pname}-{name}"] = {
                **_sub(probe, old), "container": target, **({"auth": auth} if auth else {})}
    ports = {p if isinstance(p, int) else p["host"]
             for c in st["containers"].values() for p in c.get("ports", [])}
    for hostname_, route in orig["routes"]["routes"].items():
        if route["host"] == thost and route["port"] in ports:
            first, _, rest = hostname_.partition(".")
            docs["routes"]["routes"][f"{first}-{name}.{rest}"] = {**copy.deepcopy(route),
                                                                  "host": name}
    for rname, r in orig["wiring"].get("references", {}).items():
        src, dst = ref(r["from"]), ref(r["to"])
        if src and dst and src.startswith(stack + ":"):
            docs["wiring"]["references"][f"{rname}.{name}"] = {**_sub(r, old), "from": src,
                                                               "to": dst}
    for sname, s in orig["wiring"].get("app_settings", {}).items():
        if s["host"] == thost and any(s["file"].startswith(f"/mnt/docker/{c}/")
                                      for c in shape.containers):
            docs["wiring"]["app_settings"][f"{sname}.{name}"] = {**_sub(s, old), "host": name}
    for target in orig["observability"].get("scrape_targets", {}).values():
        if target["host"] == thost:
            docs["observability"]["scrape_targets"][f"node-{name}"] = {
                **_sub(target, old), "host": name, "job": SCRAPE_JOB}
            break


def main(argv: list[str] | None = None, prog: str = "python -m opsverify.lab.generate") -> int:
    p = argparse.ArgumentParser(prog=prog,
                                description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, required=True, help="active hosts in all (>= the base's)")
    p.add_argument("--out", type=Path, required=True, help="directory to write (replaced)")
    p.add_argument("--base", type=Path, default=None,
                   help="SSOT to extend (default: $OPSVERIFY_SSOT or the shipped ssot/)")
    args = p.parse_args(argv)
    try:
        hints = generate(args.hosts, args.out, args.base)
    except GenerateError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    g = hints["generated"]
    print(f"{args.out}: {g['hosts']} active hosts ({g['synthetic']} synthetic), "
          f"{len(hints['plant'])} with a planted stale address; "
          f"`ops lab up --ssot {args.out}` builds its twin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
