"""reachability: the host answered, is the host the SSOT means, and has joined the tailnet."""

from __future__ import annotations

from typing import Any

from opsverify.findings import Findings
from opsverify.ssot.model import Host

from . import Case, Family
from .values import require_sections


def check(host: Host, facts: dict[str, Any]) -> Findings:
    """Hostname as the SSOT says; Tailscale Running with the SSOT's address, if it has one."""
    require_sections(host.name, facts, "hostname", "tailscale")
    c = Findings(f"Host {host.name}")
    ts = facts.get("tailscale") or {}
    c.saw("host", {"hostname": facts.get("hostname"), "tailscale": ts,
                   "collected_in_s": facts.get("duration_s")})
    c.expect("hostname", host.hostname, facts.get("hostname"))
    if not host.tailscale_ip:
        return c
    if not ts.get("ok"):
        c.require(False, f"tailscale: not joined ({ts.get('error') or 'no tailscale status'})")
        return c
    c.expect("tailscale backend state", "Running", ts.get("backend_state"))
    ips = ts.get("ips") or []
    c.require(host.tailscale_ip in ips,
              f"tailscale IP: expected {host.tailscale_ip} among the host's, got "
              f"{', '.join(ips) or 'none'}")
    return c


FAMILY = Family(
    "reachability", per="active host",
    checks=("SSH login within the timeout, pinned host key; hostname; Tailscale Running with the "
           "SSOT IP (a logged-out node's `BackendState` is kept from `tailscale status --json`)"),
    subjects={"host": lambda s: (Case(n, n, h) for n, h in s.active_hosts.items())},
    host_facts=True)
