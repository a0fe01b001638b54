"""Typed, read-only views of a validated SSOT: what gates, the lab and the CLI iterate over."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from .loader import SourceFile


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    state: str
    hostname: str
    vmid: int | None = None
    lan_ip: str | None = None
    tailscale_ip: str | None = None
    ssh_address: str | None = None
    ssh_user: str = "root"
    ssh_port: int = 22
    proxmox_api: str | None = None
    proxmox_node: str | None = None

    @property
    def active(self) -> bool:
        return self.state == "active"

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a for a in (self.tailscale_ip, self.lan_ip) if a)

    @property
    def hostspec(self) -> str:
        """testinfra hostspec, e.g. ssh://root@100.123.207.64:22."""
        return f"ssh://{self.ssh_user}@{self.ssh_address}:{self.ssh_port}"

    @property
    def vantage_ip(self) -> str | None:
        """The address the verifier reaches this host's services on (Tailscale first)."""
        return self.tailscale_ip or self.lan_ip


@dataclass(frozen=True)
class Port:
    host: int
    container: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.host}->{self.container}/{self.protocol}"


@dataclass(frozen=True)
class Container:
    stack: str
    host: str
    name: str
    state: str  # running | stopped
    healthcheck: bool
    image: str
    ports: tuple[Port, ...] = ()
    env: dict[str, str] = field(default_factory=dict, hash=False)
    may_restart: bool = False

    @property
    def ref(self) -> str:
        return f"{self.stack}:{self.name}"


@dataclass(frozen=True)
class Stack:
    name: str
    host: str
    directory: str
    compose_file: str
    config_roots: tuple[str, ...]

    @property
    def compose_path(self) -> str:
        return f"{self.directory.rstrip('/')}/{self.compose_file}"


@dataclass(frozen=True)
class Mount:
    host: str
    path: str
    server: str
    export: str
    source: str  # LAN_IP:/export, exactly as /proc/mounts shows it
    fstype: str
    mode: str  # ro | rw


@dataclass(frozen=True)
class Route:
    hostname: str
    host: str
    port: int
    service: str  # the ingress service the tunnel must map the hostname to
    status: int
    location: str | None


@dataclass(frozen=True)
class Probe:
    name: str
    container: str  # stack:container
    host: str
    url: str
    path: str
    query: dict[str, Any] = field(default_factory=dict, hash=False)
    auth: dict[str, str] = field(default_factory=dict, hash=False)
    expect: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ConfigCheck:
    """Values that must hold in one app config file on one host (a wiring reference or setting)."""

    name: str
    host: str
    file: str
    format: str  # json | xml | yaml | sqlite
    keys: dict[str, Any] = field(hash=False)
    table: str | None = None
    row: dict[str, Any] = field(default_factory=dict, hash=False)
    source: str | None = None  # stack:container the reference is made from
    target: str | None = None  # stack:container it points at
    address: str | None = None
    when: str | None = None    # "configured": checked only once the app has the keys set


@dataclass(frozen=True)
class SecretPath:
    path: str
    stack: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class GeneratedEnv:
    """A .env a systemd unit's ExecStartPre writes from Infisical: the one plaintext allowed."""

    path: str
    stack: str
    host: str
    unit: str
    mode: str  # e.g. "0600"


@dataclass(frozen=True)
class Planned:
    """A scope item not built yet: reported as SKIP with its reason, never silently absent."""

    name: str
    family: str
    phase: str
    item: str
    reason: str


@dataclass(frozen=True)
class Decommission:
    host: str
    vmid: int
    node: str
    address: str | None
    onboot: int
    stopped_at: str
    hold_until: str
    after_hold: str
    datasets: tuple[str, ...]


@dataclass(frozen=True)
class ScrapeTarget:
    name: str
    job: str
    host: str
    address: str
    port: int

    @property
    def instance(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Rule:
    name: str
    query: str
    op: str
    threshold: float
    description: str = ""


def _ports(raw: list) -> tuple[Port, ...]:
    return tuple(Port(p, p) if isinstance(p, int) else
                 Port(p["host"], p["container"], p.get("protocol", "tcp")) for p in raw)


@dataclass
class Ssot:
    """The validated SSOT. `doc` holds every file's top-level keys; the properties are views."""

    root: Path
    files: dict[str, SourceFile]  # by stem: hosts, stacks, ...
    doc: dict[str, Any]
    problems: list = field(default_factory=list)  # referential problems (load(strict=False))

    def where(self, stem: str, *path: Any) -> tuple[str, int]:
        """(file shown to people, line) of a node, for messages that point into the SSOT."""
        src = self.files[stem]
        return src.name, src.line_of(path)

    @cached_property
    def hosts(self) -> dict[str, Host]:
        out = {}
        for name, h in self.doc["hosts"].items():
            ssh = h.get("ssh") or {}
            px = h.get("proxmox") or {}
            out[name] = Host(
                name=name, role=h["role"], state=h["state"], hostname=h["hostname"],
                vmid=h.get("vmid"), lan_ip=h.get("lan_ip"), tailscale_ip=h.get("tailscale_ip"),
                ssh_address=ssh.get("address"), ssh_user=ssh.get("user", "root"),
                ssh_port=ssh.get("port", 22), proxmox_api=px.get("api_url"),
                proxmox_node=px.get("node"))
        return out

    @property
    def active_hosts(self) -> dict[str, Host]:
        """Hosts the verifier logs in to: active and with an SSH target."""
        return {n: h for n, h in self.hosts.items() if h.active and h.ssh_address}

    @cached_property
    def stacks(self) -> dict[str, Stack]:
        return {name: Stack(name, s["host"], s["directory"], s["compose_file"],
                            tuple(s["config_roots"]))
                for name, s in self.doc["stacks"].items()}

    @cached_property
    def containers(self) -> list[Container]:
        out = []
        for stack_name, s in self.doc["stacks"].items():
            for name, c in s["containers"].items():
                out.append(Container(
                    stack=stack_name, host=s["host"], name=name, state=c["state"],
                    healthcheck=c["healthcheck"], image=c["image"],
                    ports=_ports(c.get("ports", [])), env=dict(c.get("env", {})),
                    may_restart=c.get("may_restart", False)))
        return out

    def container(self, ref: str) -> Container | None:
        return self._by_ref.get(ref)

    @cached_property
    def _by_ref(self) -> dict[str, Container]:
        # container() is asked per reference and per gate: a scan would be quadratic in hosts
        return {c.ref: c for c in reversed(self.containers)}  # the first of a ref wins, as before

    def stacks_on(self, host: str) -> list[Stack]:
        return [s for s in self.stacks.values() if s.host == host]

    @cached_property
    def mounts(self) -> list[Mount]:
        server = self.doc["nfs_server"]
        server_ip = (self.hosts.get(server) and self.hosts[server].lan_ip) or server
        return [Mount(m["host"], m["path"], server, m["export"], f"{server_ip}:{m['export']}",
                      m["fstype"], m["mode"]) for m in self.doc["mounts"]]

    @cached_property
    def routes(self) -> list[Route]:
        out = []
        for hostname, r in self.doc["routes"].items():
            host = self.hosts.get(r["host"])
            ip = host.vantage_ip if host else r["host"]
            out.append(Route(hostname, r["host"], r["port"], f"http://{ip}:{r['port']}",
                             r["expect"]["status"], r["expect"].get("location")))
        return out

    @property
    def cloudflare(self) -> dict[str, Any]:
        return self.doc["cloudflare"]

    @cached_property
    def probes(self) -> list[Probe]:
        out = []
        for name, p in self.doc["probes"].items():
            c = self.container(p["container"])
            host = self.hosts.get(c.host) if c else None
            port = c.ports[0].host if c and c.ports else 0
            url = f"http://{host.vantage_ip}:{port}{p['path']}" if host else ""
            out.append(Probe(name, p["container"], c.host if c else "", url, p["path"],
                             dict(p.get("query", {})), dict(p.get("auth", {})), dict(p["expect"])))
        return out

    @cached_property
    def config_checks(self) -> list[ConfigCheck]:
        """Wiring references, then app settings: every value the wiring family reads."""
        out = []
        for name, r in self.doc["references"].items():
            c = self.container(r["from"])
            out.append(ConfigCheck(name, c.host if c else "", r["file"], r["format"],
                                   dict(r["keys"]), r.get("table"), dict(r.get("row", {})),
                                   r["from"], r["to"], r["address"], r.get("when")))
        for name, s in self.doc.get("app_settings", {}).items():
            out.append(ConfigCheck(name, s["host"], s["file"], s["format"], dict(s["keys"]),
                                   s.get("table"), dict(s.get("row", {}))))
        return out

    @property
    def infisical(self) -> dict[str, Any]:
        return self.doc["infisical"]

    @cached_property
    def secret_paths(self) -> list[SecretPath]:
        return [SecretPath(path, p["stack"], tuple(p["keys"]))
                for path, p in self.doc["secret_paths"].items()]

    @property
    def secret_keys(self) -> tuple[str, ...]:
        return tuple(k for p in self.secret_paths for k in p.keys)

    @property
    def plaintext_files(self) -> tuple[str, ...]:
        return tuple(self.doc["plaintext_files"])

    @cached_property
    def generated_env(self) -> list[GeneratedEnv]:
        out = []
        for path, g in self.doc.get("generated_env", {}).items():
            st = self.stacks.get(g["stack"])
            out.append(GeneratedEnv(path, g["stack"], st.host if st else "", g["unit"], g["mode"]))
        return out

    @property
    def retired_addresses(self) -> dict[str, str]:
        return {r["address"]: r["was"] for r in self.doc["retired_addresses"]}

    @cached_property
    def decommissions(self) -> list[Decommission]:
        return [Decommission(host, d["vmid"], d["node"], d.get("address"), d["onboot"],
                             d["stopped_at"], d["hold_until"], d["after_hold"],
                             tuple(d.get("datasets", [])))
                for host, d in self.doc["decommissions"].items()]

    @property
    def prometheus_url(self) -> str:
        return self.doc["prometheus"]["url"]

    @cached_property
    def scrape_targets(self) -> list[ScrapeTarget]:
        return [ScrapeTarget(n, t["job"], t["host"], t["address"], t["port"])
                for n, t in self.doc["scrape_targets"].items()]

    @cached_property
    def rules(self) -> list[Rule]:
        return [Rule(n, r["query"], r["op"], float(r["threshold"]), r.get("description", ""))
                for n, r in self.doc.get("rules", {}).items()]

    @cached_property
    def planned(self) -> list[Planned]:
        return [Planned(n, p["family"], p["phase"], p["item"], p["reason"])
                for n, p in self.doc.get("planned", {}).items()]

    @property
    def proxmox_host(self) -> Host | None:
        return next((h for h in self.hosts.values() if h.proxmox_api and h.active), None)
