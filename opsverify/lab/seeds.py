"""The secrets one `up` invents and the clean state of every stand-in built from them.

`new_secrets` draws the random values once per `up` (they are kept in the state file, so a
reset twin has the same ones). The seeds are the state each stand-in starts from (the HTTP
APIs, the zfs and tailscale CLIs, Prometheus's scrape config); `credentials` is how
`ops lab status --json` hands the stand-ins' URLs and tokens to other tools. Pure, like spec.py.
"""

from __future__ import annotations

import datetime as dt
import secrets as rnd
import uuid
from typing import Any

import yaml

from opsverify.ssot import Ssot
from opsverify.ssot.model import Host

from . import apps
from .endpoints import CLOUDFLARE_API
from .world import World


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
    out["proxmox.auditor_secret"] = str(uuid.uuid4())
    out["proxmox.admin_secret"] = str(uuid.uuid4())
    from .scale import secret_aliases  # a generated SSOT's synthetic VMs (none otherwise)
    out.update(secret_aliases(ssot.root, out))
    return out


def destroyed(d: Any, now: dt.datetime) -> bool:
    """A decommissioned VM is gone once its hold has passed and the record says destroy."""
    hold = dt.datetime.fromisoformat(str(d.hold_until))
    if hold.tzinfo is None:
        hold = hold.replace(tzinfo=dt.UTC)
    return d.after_hold == "destroy" and now >= hold


# ---- the stand-in CLIs of one host (their state lives in the host's files) -------------------

def zfs_state(ssot: Ssot, now: dt.datetime) -> dict[str, Any]:
    """The Proxmox host's pools: every exported dataset and those of VMs still in their hold."""
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


def tailscale_state(ssot: Ssot, host: Host) -> dict[str, Any]:
    """A host's tailnet: itself and every other active host with a Tailscale IP, all online."""
    from .standins import tailscale_cli
    peers = [{"hostname": h.hostname, "ipv4": h.tailscale_ip, "online": True, "os": "linux"}
             for h in ssot.active_hosts.values() if h.tailscale_ip and h.name != host.name]
    return tailscale_cli.seed(hostname=host.hostname, ipv4=host.tailscale_ip or "", peers=peers)


def prometheus_yml(ssot: Ssot) -> str:
    """Prometheus's config: one job per SSOT scrape job, scraped every 2 s (the twin is fast)."""
    jobs: dict[str, list[str]] = {}
    for t in ssot.scrape_targets:
        jobs.setdefault(t.job, []).append(t.instance)
    config = {"global": {"scrape_interval": "2s", "scrape_timeout": "1s",
                         "evaluation_interval": "2s"},
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                                 for job, targets in jobs.items()]}
    return "# opsverify lab twin: the SSOT's scrape targets\n" + yaml.safe_dump(config,
                                                                                sort_keys=False)


# ---- the HTTP stand-ins ------------------------------------------------------------------------

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
