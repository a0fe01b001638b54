"""Where the twin's stand-ins listen and how names resolve inside the twin.

The public services the verifier talks to (Cloudflare's API and edge, Infisical, the Proxmox
API, Prometheus) get an address in the twin's network namespace; the twin's /etc/hosts sends
their real names there, and each SSOT host's names to its SSH address. Pure, like spec.py.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from opsverify.ssot import Ssot

# Loopback addresses of the namespace: nothing on the real network ever sees them.
API_ADDR = "127.0.1.1"   # api.cloudflare.com
EDGE_ADDR = "127.0.1.2"  # the Cloudflare edge for every routed public hostname
INFISICAL_ADDR = "127.0.1.3"
CLOUDFLARE_API = "https://api.cloudflare.com/client/v4"


@dataclass
class Endpoint:
    """Where one stand-in listens and the names it answers to."""

    address: str
    port: int
    names: tuple[str, ...]
    host: str | None = None  # the twin host whose namespaces it runs in


def endpoints(ssot: Ssot) -> dict[str, Endpoint]:
    """Every stand-in's endpoint: the fixed public ones, and those the SSOT's URLs name."""
    edge_names = tuple(r.hostname for r in ssot.routes)
    inf = urlsplit(ssot.infisical["url"])
    out = {"cloudflare": Endpoint(API_ADDR, 443, ("api.cloudflare.com",)),
           "edge": Endpoint(EDGE_ADDR, 443, edge_names),
           "infisical": Endpoint(INFISICAL_ADDR, inf.port or 443, (inf.hostname or "",))}
    pve = ssot.proxmox_host
    if pve and pve.proxmox_api:
        u = urlsplit(pve.proxmox_api)
        out["proxmox"] = Endpoint(address(ssot, u.hostname or ""), u.port or 8006,
                                  (pve.hostname,), pve.name)
    p = urlsplit(ssot.prometheus_url)
    owner = next((h.name for h in ssot.active_hosts.values()
                  if address(ssot, p.hostname or "") in h.addresses), None)
    out["prometheus"] = Endpoint(address(ssot, p.hostname or ""), p.port or 9090, (), owner)
    return out


def address(ssot: Ssot, name: str) -> str:
    """An IP for a URL host: itself, or the address of the SSOT host of that name."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        for h in ssot.active_hosts.values():
            if name in (h.name, h.hostname):
                return h.ssh_address or h.vantage_ip or "127.0.0.1"
        return "127.0.1.9"


def etc_hosts(ssot: Ssot, eps: dict[str, Endpoint]) -> str:
    """The twin's /etc/hosts: public names to their stand-ins, host names to the twin hosts."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "# opsverify lab twin: public names resolve to the stand-ins, hosts to the twin"]
    for key in ("cloudflare", "edge", "infisical"):
        e = eps[key]
        lines.append(f"{e.address}\t{' '.join(e.names)}")
    for h in ssot.active_hosts.values():
        names = dict.fromkeys([h.hostname, h.name])
        lines.append(f"{h.ssh_address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"
