"""stale_refs: no retired address anywhere under a host's config roots."""

from __future__ import annotations

from typing import Any

from opsverify.findings import Findings
from opsverify.ssot.model import Ssot

from . import Case, Family
from .values import require_sections


def place(hit: dict[str, Any]) -> str:
    """Where a hit is, never what the line says: `FILE line 3`, `FILE (Applications id 1)`."""
    where = str(hit.get("file"))
    if hit.get("table"):
        row = f" id {hit['row']}" if hit.get("row") is not None else ""
        column = f", column {hit['column']}" if hit.get("column") else ""
        return f"{where} ({hit['table']}{row}{column})"
    return f"{where} line {hit['line']}" if hit.get("line") is not None else where


def check(ssot: Ssot, host: str, address: str, facts: dict[str, Any]) -> Findings:
    """No hit for the address, and a scan that covered every SSOT config root of the host."""
    require_sections(host, facts, "stale_refs")
    hits = [h for h in facts.get("stale_refs") or [] if h.get("address") == address]
    scan = facts.get("scan") or {}
    if hits:
        c = Findings(f"Stale address {address} on {host} in", sep=" ")
        for h in hits:
            c.require(False, place(h), attribute="where", expected="absent", actual=place(h))
    else:
        c = Findings(f"Stale address {address} on {host}")
        gaps = unscanned(ssot, host, scan)  # a scan that never looked would pass for clean
        c.require(not gaps, f"not fully scanned, so not known clean: {'; '.join(gaps)}")
    c.saw("stale_refs", {"address": address, "was": ssot.retired_addresses.get(address),
                         "hits": [place(h) for h in hits], "scan": scan})
    return c


def unscanned(ssot: Ssot, host: str, scan: dict[str, Any]) -> list[str]:
    """What of the host's SSOT config roots the scan did not cover, and why."""
    roots = sorted({r.rstrip("/") for st in ssot.stacks_on(host) for r in st.config_roots})
    listed = {str(r).rstrip("/") for r in scan.get("roots") or []}
    skipped = {str(s.get("path", "")).rstrip("/"): s.get("reason") for s in
               scan.get("skipped") or []}
    out = [f"{r} (not a scan root)" for r in roots if r not in listed]
    out += [f"{r} ({skipped[r]})" for r in roots if r in listed and r in skipped]
    if scan.get("complete") is False:
        out += [f"{s.get('path')} ({s.get('reason')})" for s in scan.get("skipped") or []
                if "budget" in str(s.get("reason"))] or ["scan incomplete"]
    return out


FAMILY = Family(
    "stale_refs", per="host × retired address",
    checks=("the address nowhere under the config roots, as a whole address, SQLite included; "
           "file and line, never content"),
    subjects={"stale_scan": lambda s: (Case(f"{h}:{addr}", h, (h, addr))
                                       for h in sorted({st.host for st in s.stacks.values()})
                                       for addr in s.retired_addresses)},
    host_facts=True)
