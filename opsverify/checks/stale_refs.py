"""stale_refs: no retired address anywhere under a host's config roots."""

from __future__ import annotations

from typing import Any

from opsverify.ssot.model import Ssot

from . import Check


def place(hit: dict[str, Any]) -> str:
    """Where a hit is, never what the line says: `FILE line 3`, `FILE (Applications id 1)`."""
    where = str(hit.get("file"))
    if hit.get("table"):
        row = f" id {hit['row']}" if hit.get("row") is not None else ""
        column = f", column {hit['column']}" if hit.get("column") else ""
        return f"{where} ({hit['table']}{row}{column})"
    return f"{where} line {hit['line']}" if hit.get("line") is not None else where


def check(ssot: Ssot, host: str, address: str, facts: dict[str, Any]) -> Check:
    """No hit for the address; every SSOT config root of the host was scanned."""
    hits = [h for h in facts.get("stale_refs") or [] if h.get("address") == address]
    scan = facts.get("scan") or {}
    scanned = {str(r).rstrip("/") for r in scan.get("roots") or []}
    roots = sorted({r for st in ssot.stacks_on(host) for r in st.config_roots})
    unscanned = [r for r in roots if r.rstrip("/") not in scanned]
    if hits:
        c = Check(f"Stale address {address} on {host} in", sep=" ")
        c.problems.extend(place(h) for h in hits)
    else:
        c = Check(f"Stale address {address} on {host}")
        # A scan that never looked would pass for clean.
        c.require(not unscanned, f"config roots not scanned: {', '.join(unscanned)}")
    c.saw("stale_refs", {"address": address, "was": ssot.retired_addresses.get(address),
                         "hits": [place(h) for h in hits], "scan": scan})
    return c
