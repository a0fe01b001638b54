"""The twin as it should be, computed from the SSOT and the secrets of one `up`.

Pure: no process is started and nothing is written here. `up` and `reset` both converge the
running twin to a `World`, so a reset twin is the same as a fresh one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets as rnd
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from opsverify.ssot import Ssot
from opsverify.ssot.model import Container, Host, Mount

from . import apps
from .formats import El, Json, Sqlite, Xml, Yaml, put, render

HEALTH = {"interval": 5_000_000_000, "timeout": 3_000_000_000, "retries": 2, "start_period": 0}
STOP_TIMEOUT = 3
MEDIA_DIRS = ("movies", "tv", "music", "downloads/complete", "downloads/incomplete")
API_ADDR = "127.0.1.1"   # api.cloudflare.com
EDGE_ADDR = "127.0.1.2"  # the Cloudflare edge for every routed public hostname
INFISICAL_ADDR = "127.0.1.3"
CLOUDFLARE_API = "https://api.cloudflare.com/client/v4"


@dataclass(frozen=True)
class ContainerSpec:
    """One container as `docker create` makes it (and compose would)."""

    name: str
    stack: str
    host: str
    image: str
    command: tuple[str, ...]
    env: dict[str, str] = field(hash=False)          # resolved values, as the engine holds them
    compose_env: dict[str, str] = field(hash=False)  # as written in compose: ${VAR} for secrets
    labels: dict[str, str] = field(hash=False)
    binds: dict[str, str] = field(hash=False)        # host path -> container path
    healthcheck: dict[str, Any] | None = field(hash=False)
    running: bool
    # published ports as the SSOT lists them: (host, container, protocol). The twin's containers
    # share the host's network, where Docker maps nothing; the engine keeps the mapping in
    # HostConfig.PortBindings all the same, which is what the gate compares on such a container.
    ports: tuple[tuple[int, int, str], ...] = ()


@dataclass
class HostSpec:
    """One twin host: names, addresses, mounts, files and containers."""

    host: Host
    mounts: list[Mount]
    tmpfs_dirs: list[str]            # stack directories: a fresh tmpfs each
    containers: list[ContainerSpec]
    files: dict[str, bytes]          # absolute path inside the host -> content
    dirs: list[str]                  # directories that must exist (app /config, media)
    fstab: str
    tailscale: dict[str, Any] | None = None  # tailscale stand-in state
    zfs: dict[str, Any] | None = None        # zfs stand-in state (Proxmox host)
    modes: dict[str, int] = field(default_factory=dict)  # files not 0644 (a generated .env)
    shared_engine: bool = False  # containers on the twin's shared dockerd (scale.py)

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def docker(self) -> bool:
        return bool(self.containers)

    @property
    def roots(self) -> list[str]:
        """Directories whose whole content the twin owns (reset removes anything else there)."""
        return sorted({m.path for m in self.mounts} | set(self.tmpfs_dirs))


@dataclass
class Endpoint:
    """Where one stand-in listens and the names it answers to."""

    address: str
    port: int
    names: tuple[str, ...]
    host: str | None = None  # the twin host whose namespaces it runs in


@dataclass
class World:
    ssot: Ssot
    secrets: dict[str, str]
    hosts: dict[str, HostSpec]
    addresses: list[str]
    endpoints: dict[str, Endpoint]
    etc_hosts: str
    prometheus_yml: str
    now: dt.datetime

    @property
    def canaries(self) -> list[str]:
        """Every secret value of the twin: grep any output for these to find a leak."""
        return sorted({v for k, v in self.secrets.items() if k != "seed"})


# ---- secrets ---------------------------------------------------------------------------------

def new_secrets(ssot: Ssot) -> dict[str, str]:
    """Random values for every secret of one `up`: SSOT keys, app keys, stand-in credentials."""
    out = {"seed": rnd.token_hex(16)}
    for key in ssot.secret_keys:
        if key.endswith("_USER"):
            out[key] = f"user-{rnd.token_hex(6)}"
        elif "PASSWORD" in key or "SECRET" in key:
            out[key] = rnd.token_urlsafe(18)
        else:
            out[key] = rnd.token_hex(16)
    for name in apps.twin_secret_names(ssot):
        out[name] = rnd.token_hex(16)
    out["cloudflare.read_token"] = rnd.token_urlsafe(30)
    out["cloudflare.edit_token"] = rnd.token_urlsafe(30)
    out["infisical.reader_secret"] = rnd.token_hex(32)
    out["infisical.admin_secret"] = rnd.token_hex(32)
    out["proxmox.auditor_secret"] = _uuid4()
    out["proxmox.admin_secret"] = _uuid4()
    from .scale import secret_aliases  # a generated SSOT's synthetic VMs (none otherwise)
    out.update(secret_aliases(ssot.root, out))
    return out


def _uuid4() -> str:
    import uuid
    return str(uuid.uuid4())


# ---- the world -------------------------------------------------------------------------------

def build(ssot: Ssot, secrets: dict[str, str], now: dt.datetime | None = None) -> World:
    """The whole twin for this SSOT and these secrets (deterministic: same inputs, same world)."""
    now = now or dt.datetime.now(dt.UTC)
    ctx = apps.Ctx(ssot, secrets, secrets["seed"])
    hosts = {}
    for name, host in ssot.active_hosts.items():
        hosts[name] = _host(ssot, ctx, host, now)
    endpoints = _endpoints(ssot)
    addresses = sorted({a for h in ssot.active_hosts.values() for a in h.addresses}
                       | {e.address for e in endpoints.values()
                          if not e.address.startswith("127.")}, key=ipaddress.ip_address)
    world = World(ssot, secrets, hosts, addresses, endpoints, _etc_hosts(ssot, endpoints),
                  _prometheus_yml(ssot), now)
    from .scale import apply  # a generated SSOT's hints (lab-twin.json); none: no change
    apply(world)
    return world


def _host(ssot: Ssot, ctx: apps.Ctx, host: Host, now: dt.datetime) -> HostSpec:
    mounts = [m for m in ssot.mounts if m.host == host.name]
    stacks = ssot.stacks_on(host.name)
    containers = [c for c in ssot.containers if c.host == host.name]
    specs = [_container(ssot, ctx, host, c) for c in containers]
    files: dict[str, bytes] = {}
    dirs: list[str] = []
    for m in mounts:
        if m.path.rstrip("/").endswith("/media"):
            dirs += [f"{m.path}/{d}" for d in MEDIA_DIRS]
    docs: dict[str, Any] = {}
    for c in containers:
        dirs.append(f"{apps.CONFIG_ROOT}/{c.name}")
        make = apps.profile(c).files
        if make:
            for rel, doc in make(ctx, c).items():
                docs[f"{apps.CONFIG_ROOT}/{c.name}/{rel}"] = doc
    for check in ssot.config_checks:
        if check.host != host.name or check.when:
            continue  # `when: configured`: the app is as the scope found it, not configured
        doc = docs.get(check.file) or docs.setdefault(check.file, _empty_doc(check))
        for path, value in check.keys.items():
            put(doc, path, value, row=check.row, table=check.table)
    files.update({path: render(doc) for path, doc in docs.items()})
    for st in stacks:
        files[st.compose_path] = _compose(st.name, [s for s in specs if s.stack == st.name])
    modes = {}
    for g in ssot.generated_env:
        if g.host == host.name:  # what the unit's ExecStartPre writes from Infisical
            files.update(_generated_env(ssot, ctx, g))
            modes[g.path] = int(g.mode, 8)
    pve = ssot.proxmox_host
    zfs = _zfs_state(ssot, now) if pve and pve.name == host.name else None
    tailscale = _tailscale_state(ssot, host) if host.tailscale_ip else None
    return HostSpec(host, mounts, sorted({st.directory for st in stacks}), specs, files,
                    sorted(set(dirs)), _fstab(ctx, mounts), tailscale, zfs, modes)


UNIT_DIR = "/run/systemd/system"  # a unit path of systemd's; in the twin on the host's own /run


def _generated_env(ssot: Ssot, ctx: apps.Ctx, g: Any) -> dict[str, bytes]:
    """The .env as `infisical export --format=dotenv` writes it, and the unit that writes it."""
    keys = [k for sp in ssot.secret_paths if sp.stack == g.stack for k in sp.keys]
    path = next((sp.path for sp in ssot.secret_paths if sp.stack == g.stack), "/")
    env = "".join(f"{k}='{ctx.secrets[k]}'\n" for k in keys)
    st = ssot.stacks[g.stack]
    unit = (f"[Unit]\nDescription={g.stack} (docker compose, secrets from Infisical)\n"
            "Requires=docker.service\nAfter=docker.service\n\n[Service]\nType=oneshot\n"
            f"RemainAfterExit=yes\nWorkingDirectory={st.directory}\n"
            f"ExecStartPre=/bin/sh -c 'umask 077; infisical export --env="
            f"{ssot.infisical['environment']} --path={path} --format=dotenv > {g.path}'\n"
            "ExecStart=/usr/bin/docker compose up -d\nExecStop=/usr/bin/docker compose down\n\n"
            "[Install]\nWantedBy=multi-user.target\n")
    return {g.path: env.encode(), f"{UNIT_DIR}/{g.unit}": unit.encode()}


def _empty_doc(check: Any) -> Any:
    """A document for a file the SSOT names but no app profile writes: only the SSOT's keys."""
    if check.format == "json":
        return Json({}, indent=2)
    if check.format == "yaml":
        return Yaml({})
    if check.format == "xml":
        return Xml(El(next(iter(check.keys)).split(".")[0]))
    cols = sorted(set(check.row) | {k.split(".")[0] for k in check.keys})
    ddl = f'CREATE TABLE "{check.table}" (' + ", ".join(f'"{c}" TEXT' for c in cols) + ");"
    return Sqlite(ddl, {check.table: []})


def _container(ssot: Ssot, ctx: apps.Ctx, host: Host, c: Container) -> ContainerSpec:
    p = apps.profile(c)
    stack = ssot.stacks[c.stack]
    keys = {k for sp in ssot.secret_paths if sp.stack == c.stack for k in sp.keys}
    wanted = [k for k in p.secrets if k in keys] + _unclaimed(ssot, c, keys)
    if p.kind in ("arr", "sabnzbd"):
        own = f"{c.name.upper().replace('-', '_')}_API_KEY"
        wanted = [own] + [k for k in wanted if k != own]
    compose_env = {"TZ": "Etc/UTC", **c.env, **(p.env(ctx, c) if p.env else {})}
    env = dict(compose_env)
    for key in dict.fromkeys(wanted):
        compose_env[key] = f"${{{key}}}"
        env[key] = ctx.secrets.get(key) or ctx.api_key(c.name)
    addrs = list(host.addresses)
    health_addr = host.lan_ip or host.vantage_ip or "127.0.0.1"
    health_port = c.ports[0].host if c.ports else 0
    if p.command == "node-exporter":
        command = ["/bin/node_exporter"] + [f"--web.listen-address={a}:{port.host}"
                                            for port in c.ports for a in addrs]
    else:
        command = ["/twin/httpd"]
        for port in c.ports:
            command += [x for a in addrs for x in ("-l", f"{a}:{port.host}")]
            if port.container != port.host:
                # Host networking has no port mapping: the published port faces the network
                # (what docker-proxy would expose) and the app's own port faces the container.
                command += ["-l", f"127.0.0.1:{port.container}"]
                health_addr, health_port = "127.0.0.1", port.container
        if c.ports:
            for rule in apps.rules(ctx, c):
                command += rule.argv()
            route_redirect = apps.root_rule(ctx, c).spec.split()[1].startswith("3")
            if route_redirect:
                command += apps.login_rule(c).argv()
    health = None
    if c.healthcheck:
        health = {"test": apps.health_cmd(c, health_addr, health_port, p), **HEALTH}
    labels = {"com.docker.compose.project": c.stack, "com.docker.compose.service": c.name,
              "com.docker.compose.project.working_dir": stack.directory,
              "com.docker.compose.project.config_files": stack.compose_path,
              "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False"}
    return ContainerSpec(c.name, c.stack, c.host, c.image, tuple(command), env, compose_env,
                         labels, {f"{apps.CONFIG_ROOT}/{c.name}": "/config"}, health,
                         c.state == "running",
                         tuple((p.host, p.container, p.protocol) for p in c.ports))


def _unclaimed(ssot: Ssot, c: Container, keys: set[str]) -> list[str]:
    """Stack secret keys no container's profile consumes go to the container named like them."""
    claimed = {k for o in ssot.containers if o.stack == c.stack for k in apps.profile(o).secrets}
    claimed |= {f"{o.name.upper().replace('-', '_')}_API_KEY" for o in ssot.containers
                if o.stack == c.stack and apps.profile(o).kind in ("arr", "sabnzbd")}
    out = []
    names = sorted((o.name for o in ssot.containers if o.stack == c.stack), key=len, reverse=True)
    first = min(o.name for o in ssot.containers if o.stack == c.stack)
    for key in sorted(keys - claimed):
        owner = next((n for n in names if key.lower().startswith(n.replace("-", "_") + "_")),
                     first)
        if owner == c.name:
            out.append(key)
    return out


def _compose(stack: str, specs: list[ContainerSpec]) -> bytes:
    services = {}
    for s in specs:
        svc: dict[str, Any] = {"image": s.image, "container_name": s.name,
                               "network_mode": "host", "restart": "unless-stopped",
                               "command": list(s.command[1:]) or None,
                               "environment": s.compose_env,
                               "volumes": [f"{src}:{dst}" for src, dst in s.binds.items()]}
        if s.healthcheck:
            h = s.healthcheck
            svc["healthcheck"] = {"test": h["test"], "interval": f"{h['interval'] // 10**9}s",
                                  "timeout": f"{h['timeout'] // 10**9}s", "retries": h["retries"]}
        services[s.name] = {k: v for k, v in svc.items() if v is not None}
    head = (f"# {stack}: secrets come from Infisical at deploy time\n"
            "# (`infisical run -- docker compose up -d`); never write them into this directory.\n")
    body = yaml.safe_dump({"name": stack, "services": services}, sort_keys=False, width=1000)
    return (head + body).encode()


def _fstab(ctx: apps.Ctx, mounts: list[Mount]) -> str:
    """As people write it: each NFS line ends in a comment after the pass field, which mount(8)
    and systemd ignore (issue 10: such a comment must not cost the whole file)."""
    purpose = {(m["host"], m["path"]): m.get("purpose", "") for m in ctx.ssot.doc["mounts"]}
    lines = ["# /etc/fstab: static file system information.", "#",
             "# <file system> <mount point>   <type>  <options>       <dump>  <pass>",
             f"UUID={ctx.uuid('rootfs')} /               ext4    errors=remount-ro 0       1"]
    for m in mounts:
        why = purpose.get((m.host, m.path)) or "NFS from pve"
        lines.append(f"{m.source} {m.path} {m.fstype} {m.mode},vers=4.2,_netdev,nofail 0 0"
                     f"  # {why}; LAN only, never Tailscale (P3)")
    return "\n".join(lines) + "\n"


def mount_argv(m: Mount, source: str | None = None, mode: str | None = None) -> list[list[str]]:
    """Commands (run inside the host) that mount `m` as a tmpfs whose source reads like NFS."""
    size = "16m" if m.path.rstrip("/").endswith("/media") else "64m"
    cmds = [["mount", "-t", "tmpfs", "-o", f"rw,size={size},mode=755", source or m.source,
             m.path]]
    if m.path.rstrip("/").endswith("/media"):
        cmds.append(["mkdir", "-p"] + [f"{m.path}/{d}" for d in MEDIA_DIRS])
    if (mode or m.mode) == "ro":
        cmds.append(remount_argv(m.path, source or m.source, "ro"))
    return cmds


def remount_argv(path: str, source: str, mode: str) -> list[str]:
    """Remount ro/rw. Source and type are explicit: a bare `mount -o remount` would merge in the
    fstab entry, which says nfs4 as in production, and fail on the twin's tmpfs."""
    return ["mount", "-t", "tmpfs", "-o", f"remount,{mode}", source, path]


# ---- stand-ins -------------------------------------------------------------------------------

def _endpoints(ssot: Ssot) -> dict[str, Endpoint]:
    edge_names = tuple(r.hostname for r in ssot.routes)
    inf = urlsplit(ssot.infisical["url"])
    out = {"cloudflare": Endpoint(API_ADDR, 443, ("api.cloudflare.com",)),
           "edge": Endpoint(EDGE_ADDR, 443, edge_names),
           "infisical": Endpoint(INFISICAL_ADDR, inf.port or 443, (inf.hostname or "",))}
    pve = ssot.proxmox_host
    if pve and pve.proxmox_api:
        u = urlsplit(pve.proxmox_api)
        out["proxmox"] = Endpoint(_address(ssot, u.hostname or ""), u.port or 8006,
                                  (pve.hostname,), pve.name)
    p = urlsplit(ssot.prometheus_url)
    owner = next((h.name for h in ssot.active_hosts.values()
                  if _address(ssot, p.hostname or "") in h.addresses), None)
    out["prometheus"] = Endpoint(_address(ssot, p.hostname or ""), p.port or 9090, (), owner)
    return out


def _address(ssot: Ssot, name: str) -> str:
    """An IP for a URL host: itself, or the address of the SSOT host of that name."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        for h in ssot.active_hosts.values():
            if name in (h.name, h.hostname):
                return h.ssh_address or h.vantage_ip or "127.0.0.1"
        return "127.0.1.9"


def _etc_hosts(ssot: Ssot, endpoints: dict[str, Endpoint]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "# opsverify lab twin: public names resolve to the stand-ins, hosts to the twin"]
    for key in ("cloudflare", "edge", "infisical"):
        e = endpoints[key]
        lines.append(f"{e.address}\t{' '.join(e.names)}")
    for h in ssot.active_hosts.values():
        names = dict.fromkeys([h.hostname, h.name])
        lines.append(f"{h.ssh_address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def _prometheus_yml(ssot: Ssot) -> str:
    jobs: dict[str, list[str]] = {}
    for t in ssot.scrape_targets:
        jobs.setdefault(t.job, []).append(t.instance)
    config = {"global": {"scrape_interval": "2s", "scrape_timeout": "1s",
                         "evaluation_interval": "2s"},
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                                 for job, targets in jobs.items()]}
    return "# opsverify lab twin: the SSOT's scrape targets\n" + yaml.safe_dump(config,
                                                                                sort_keys=False)


def destroyed(d: Any, now: dt.datetime) -> bool:
    """A decommissioned VM is gone once its hold has passed and the record says destroy."""
    hold = dt.datetime.fromisoformat(str(d.hold_until))
    if hold.tzinfo is None:
        hold = hold.replace(tzinfo=dt.UTC)
    return d.after_hold == "destroy" and now >= hold


def _zfs_state(ssot: Ssot, now: dt.datetime) -> dict[str, Any]:
    from .standins import zfs_cli
    names = {"tank", "tank/docker"}
    for m in ssot.mounts:
        if m.export.startswith("/tank/"):
            names.add(m.export.strip("/"))
    for d in ssot.decommissions:
        if not destroyed(d, now):
            names.update(d.datasets)
    for n in names:
        parts = n.split("/")
        names.update("/".join(parts[:i]) for i in range(1, len(parts)))
    sizes = {n: (96 << 30) if n.count("/") == 0 else (24 << 30) >> n.count("/") for n in names}
    return zfs_cli.seed(datasets=dict(sorted(sizes.items())))


def _tailscale_state(ssot: Ssot, host: Host) -> dict[str, Any]:
    from .standins import tailscale_cli
    peers = [{"hostname": h.hostname, "ipv4": h.tailscale_ip, "online": True, "os": "linux"}
             for h in ssot.active_hosts.values() if h.tailscale_ip and h.name != host.name]
    return tailscale_cli.seed(hostname=host.hostname, ipv4=host.tailscale_ip or "", peers=peers)


def standin_seeds(world: World) -> dict[str, dict[str, Any]]:
    """The clean state of every HTTP stand-in (saved once per `up`; reset restores it)."""
    from .standins import cloudflare, infisical, proxmox
    ssot, s = world.ssot, world.secrets
    ctx = apps.Ctx(ssot, s, s["seed"])
    cf = ssot.cloudflare
    ingress = [{"hostname": r.hostname, "service": r.service} for r in ssot.routes]
    ingress.append({"service": cf["catch_all"]})
    dns = [{"name": r.hostname, "type": "CNAME", "content": f"{cf['tunnel_id']}.cfargotunnel.com",
            "proxied": True} for r in ssot.routes]
    out = {"cloudflare": cloudflare.seed(
        account_id=ctx.ident("cf.account"), account_name="homelab", zone_id=ctx.ident("cf.zone"),
        zone_name=cf["zone"], tunnel_id=cf["tunnel_id"], ingress=ingress,
        read_token=s["cloudflare.read_token"], edit_token=s["cloudflare.edit_token"],
        dns_records=dns)}
    inf = ssot.infisical
    out["infisical"] = infisical.seed(
        project_id=inf["project_id"], environment=inf["environment"],
        secrets_by_path={sp.path: {k: s[k] for k in sp.keys} for sp in ssot.secret_paths},
        reader_client_id=ctx.uuid("infisical.reader"),
        reader_client_secret=s["infisical.reader_secret"],
        admin_client_id=ctx.uuid("infisical.admin"),
        admin_client_secret=s["infisical.admin_secret"],
        reader_paths=[sp.path for sp in ssot.secret_paths])
    pve = ssot.proxmox_host
    if pve:
        vms = []
        for h in ssot.hosts.values():
            if h.vmid is not None and h.active:
                vms.append({"vmid": h.vmid, "name": h.hostname, "status": "running", "onboot": 1,
                            "cores": 4, "memory": 16384})
        for d in ssot.decommissions:
            if d.node == (pve.proxmox_node or pve.hostname) and not destroyed(d, world.now):
                vms.append({"vmid": d.vmid, "name": ssot.hosts[d.host].hostname,
                            "status": "stopped", "onboot": d.onboot, "cores": 4,
                            "memory": 16384})
        out["proxmox"] = proxmox.seed(
            vms=sorted(vms, key=lambda v: v["vmid"]), node=pve.proxmox_node or pve.hostname,
            auditor_token_id="auditor@pve!opsverify", auditor_secret=s["proxmox.auditor_secret"],
            admin_token_id="root@pam!lab-admin", admin_secret=s["proxmox.admin_secret"])
    return out


def credentials(world: World) -> dict[str, Any]:
    """The stand-ins' URLs and credentials as `ops lab status --json` reports them."""
    s, e = world.secrets, world.endpoints
    ctx = apps.Ctx(world.ssot, s, s["seed"])
    inf = e["infisical"]
    out: dict[str, Any] = {
        "cloudflare": {"api_url": CLOUDFLARE_API,
                       "edge": f"https://{e['edge'].address}:{e['edge'].port}",
                       "read_token": s["cloudflare.read_token"],
                       "edit_token": s["cloudflare.edit_token"],
                       "account_id": ctx.ident("cf.account"), "zone_id": ctx.ident("cf.zone")},
        "infisical": {"url": world.ssot.infisical["url"].rstrip("/"),
                      "address": f"{inf.address}:{inf.port}",
                      "reader": {"client_id": ctx.uuid("infisical.reader"),
                                 "client_secret": s["infisical.reader_secret"]},
                      "admin": {"client_id": ctx.uuid("infisical.admin"),
                                "client_secret": s["infisical.admin_secret"]}},
        "prometheus": {"url": world.ssot.prometheus_url.rstrip("/")},
    }
    pve = world.ssot.proxmox_host
    if pve and "proxmox" in e:
        out["proxmox"] = {"url": pve.proxmox_api,
                          "auditor_token": f"auditor@pve!opsverify={s['proxmox.auditor_secret']}",
                          "admin_token": f"root@pam!lab-admin={s['proxmox.admin_secret']}"}
    return out

