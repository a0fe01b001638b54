"""The twin as it should be, computed from the SSOT and the secrets of one `up`.

Pure: no process is started and nothing is written here. `up` and `reset` both converge the
running twin to a `World`, so a reset twin is the same as a fresh one.

This module computes the world and each host's part of it: mounts, files, containers (the
records are in world.py, each stack's compose file in compose.py). Where the stand-ins listen
is endpoints.py; the secrets and the stand-ins' clean state are seeds.py.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from opsverify.ssot import Ssot
from opsverify.ssot.model import Container, Host, Mount

from . import app_http, apps
from .compose import compose_file
from .endpoints import endpoints, etc_hosts
from .formats import El, Json, Sqlite, Xml, Yaml, put, render
from .seeds import prometheus_yml, tailscale_state, zfs_state
from .world import ContainerSpec, HostSpec, World

HEALTH = {"interval": 5_000_000_000, "timeout": 3_000_000_000, "retries": 2, "start_period": 0}
STOP_TIMEOUT = 3
MEDIA_DIRS = ("movies", "tv", "music", "downloads/complete", "downloads/incomplete")


# ---- the world -------------------------------------------------------------------------------

def build(ssot: Ssot, secrets: dict[str, str], now: dt.datetime | None = None) -> World:
    """The whole twin for this SSOT and these secrets (deterministic: same inputs, same world)."""
    now = now or dt.datetime.now(dt.UTC)
    ctx = apps.Ctx(ssot, secrets, secrets["seed"])
    hosts = {}
    for name, host in ssot.active_hosts.items():
        hosts[name] = _host(ssot, ctx, host, now)
    eps = endpoints(ssot)
    addresses = sorted({a for h in ssot.active_hosts.values() for a in h.addresses}
                       | {e.address for e in eps.values()
                          if not e.address.startswith("127.")}, key=ipaddress.ip_address)
    world = World(ssot, secrets, hosts, addresses, eps, etc_hosts(ssot, eps),
                  prometheus_yml(ssot), now)
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
        files[st.compose_path] = compose_file(st.name, [s for s in specs if s.stack == st.name])
    modes = {}
    for g in ssot.generated_env:
        if g.host == host.name:  # what the unit's ExecStartPre writes from Infisical
            files.update(_generated_env(ssot, ctx, g))
            modes[g.path] = int(g.mode, 8)
    pve = ssot.proxmox_host
    zfs = zfs_state(ssot, now) if pve and pve.name == host.name else None
    tailscale = tailscale_state(ssot, host) if host.tailscale_ip else None
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
            for rule in app_http.rules(ctx, c):
                command += rule.argv()
            route_redirect = app_http.root_rule(ctx, c).spec.split()[1].startswith("3")
            if route_redirect:
                command += app_http.login_rule(c).argv()
    health = None
    if c.healthcheck:
        health = {"test": app_http.health_cmd(c, health_addr, health_port, p), **HEALTH}
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
