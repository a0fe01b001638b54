"""What the families' checks share: reading config values as a person would, addresses,
and the rule that a fact section that did not finish is UNREACHABLE, not drift."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any
from urllib.parse import urlsplit

from opsverify.verdict import Unreachable

TAILSCALE_NET = ipaddress.ip_network("100.64.0.0/10")
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def require_sections(host: str, facts: dict[str, Any], *sections: str) -> None:
    """UNREACHABLE when a fact section the gate needs did not finish on the host.

    The remote script reports a section that hung (a hung mount under a config root) or never
    ran because of one; that part of the host could not be asked, which is not drift.
    """
    errors = {k: str(v) for k, v in (facts.get("errors") or {}).items()}
    hung = [f"{k}: {v}" for k, v in errors.items() if v.startswith("did not finish")]
    for section in sections:
        if errors.get(section, "").startswith(("did not finish", "not run")):
            raise Unreachable(f"host:{host}", hung[0] if hung else f"{section}: {errors[section]}")


def canonical(value: Any) -> str:
    """A config value as text for comparison: True/"True"/"true" -> "true", 8096.0 -> "8096"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return str(int(value))
        return str(value)
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        return canonical(float(text)) if re.fullmatch(r"[+-]?\d+(\.\d+)?", text) else text
    except ValueError:
        return text


def same(expected: Any, actual: Any) -> bool:
    """Values equal as a person reading a config file would say they are."""
    return expected == actual or (actual is not None and canonical(expected) == canonical(actual))


def ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address text names, or None for a name or garbage."""
    try:
        return ipaddress.ip_address((text or "").strip("[]"))
    except ValueError:
        return None


def is_tailscale(address: str | None) -> bool:
    """Whether an address is in Tailscale's CGNAT range 100.64.0.0/10."""
    a = ip(address)
    return a is not None and a.version == 4 and a in TAILSCALE_NET


def is_loopback(host: str | None) -> bool:
    a = ip(host)
    return (a is not None and a.is_loopback) or (host or "").lower() in LOOPBACK_NAMES


def host_of(value: Any) -> str | None:
    """The host a config value points at: URL host, `host:port`, or a bare name; None if not one.

    "http://radarr:7878" -> radarr, "100.107.36.76" -> 100.107.36.76, 8096 -> None,
    "/media/movies" -> None.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "://" in text:
        try:
            return urlsplit(text).hostname
        except ValueError:
            return None
    if not text or "/" in text or " " in text or re.fullmatch(r"[\d.]+", text) and not ip(text):
        return None
    if ip(text):
        return text.strip("[]")
    name = text.rsplit(":", 1)[0] if re.fullmatch(r"[^:]+:\d+", text) else text
    return name if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", name) else None


def mentions(text: str, address: str) -> bool:
    """Whether text holds the address as a whole (100.117.1.53, not 100.117.1.530 or 1100.117…)."""
    pattern = rf"(?<![\d.]){re.escape(address)}(?!\d|\.\d)"
    return re.search(pattern, text) is not None


def names(items: list[str] | tuple[str, ...] | set[str]) -> str:
    return ", ".join(sorted(items)) or "none"
