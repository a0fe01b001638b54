"""wiring: each cross-service reference and app setting in a config file is what the SSOT says;
same-VM references by Docker DNS name, cross-VM ones by Tailscale IP, never loopback."""

from __future__ import annotations

from typing import Any

from opsverify.findings import Findings
from opsverify.ssot.model import ConfigCheck, Ssot

from . import Case, Family
from .values import canonical, host_of, ip, is_loopback, require_sections, same


def check(ssot: Ssot, cfg: ConfigCheck, facts: dict[str, Any]) -> Findings:
    """The file was read and every SSOT key holds its expected value, and only that value.

    A value behind an indirection (Recyclarr's `!env_var`, `!secret`) is compared as the app
    resolves it; one that could not be resolved fails as such, never as a literal. A reference
    `when: configured` is not checked (skip_reason says why) while the app leaves it unset.
    """
    require_sections(cfg.host, facts, "config")
    kind = "Wiring" if cfg.source else "Setting"
    c = Findings(f"{kind} {cfg.name} ({cfg.host}:{cfg.file})")
    c.skip_reason = None
    got = (facts.get("config") or {}).get(cfg.name)
    c.saw("config", {"expected": cfg.keys, "found": got})
    if got is None:
        c.require(False, "not read (no result in the host facts)")
        return c
    values = got.get("values") or {}
    unresolved = got.get("unresolved") or {}
    if cfg.when == "configured" and not _configured(got, values, unresolved):
        c.skip_reason = (f"{cfg.name}: not configured yet ({_why_unset(got)}); once it is, "
                         f"{', '.join(cfg.keys)} must be {', '.join(map(canonical, cfg.keys.values()))}")
        return c
    if not got.get("ok"):
        c.require(False, f"cannot read: {got.get('error') or 'unknown error'}")
        return c
    for key, want in cfg.keys.items():
        found = values.get(key) or []
        for why in unresolved.get(key) or []:
            c.require(False, f"{key}: unresolved indirection: {why}; not compared as a literal")
        if not found and not unresolved.get(key):
            c.require(False, f"{key}: expected {canonical(want)}, not found")
        bad = dict.fromkeys(canonical(v) for v in found if not same(want, v))
        for value in bad:
            why = reason(ssot, cfg, value)
            c.require(False, f"{key}: expected {canonical(want)}, got {value}"
                             + (f" ({why})" if why else ""))
    return c


def _configured(got: dict[str, Any], values: dict[str, Any], unresolved: dict[str, Any]) -> bool:
    """The app has set at least one of the keys (a file that does not exist sets none)."""
    if not got.get("ok"):
        return not str(got.get("error") or "").startswith("file not found")
    return bool(unresolved) or any(v not in (None, "") for found in values.values()
                                   for v in found or [])


def _why_unset(got: dict[str, Any]) -> str:
    return "no config file" if not got.get("ok") else "its keys are empty or absent"


def reason(ssot: Ssot, cfg: ConfigCheck, value: str) -> str | None:
    """Why a reference value cannot reach its target, or None if it is the right kind of name."""
    host = host_of(value)
    if cfg.source is None or cfg.target is None or host is None:
        return None
    target = ssot.container(cfg.target)
    source = ssot.container(cfg.source)
    name = cfg.target.split(":")[-1]
    if is_loopback(host):
        return f"{host} is the container itself, not {name}"
    if host in ssot.retired_addresses:
        return f"{host} is retired: {ssot.retired_addresses[host]}"
    if target is None or source is None or host == cfg.address:
        return None
    if source.host != target.host:
        ts = ssot.hosts[target.host].tailscale_ip
        if ip(host) is None:
            return (f"the Docker DNS name {host} does not resolve across VMs; use {name}'s "
                    f"Tailscale IP {ts}")
        return f"a cross-VM reference uses {name}'s Tailscale IP {ts}"
    if ip(host) is not None:
        return f"a same-VM reference uses the Docker DNS name {cfg.address}"
    return f"{host} is not {name}"


FAMILY = Family(
    "wiring", per="reference",
    checks=("the audit's cross-service URLs: Docker DNS on the same VM, Tailscale IP across VMs "
           "(Posterizarr, autopulse, and CrossWatch once it is configured), never 127.0.0.1; "
           "Recyclarr's `!env_var`/`!secret` resolved as Recyclarr does (only to a URL; an "
           "unresolved one fails as such); library paths; startup wizard"),
    subjects={"config_check": lambda s: (Case(c.name, c.host, c) for c in s.config_checks)},
    host_facts=True)
