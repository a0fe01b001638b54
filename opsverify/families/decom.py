"""decom: a decommissioned VM stays stopped and off at boot through its hold, and is destroyed,
with its datasets, once the hold is over, not before."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsverify.findings import Findings
from opsverify.ssot import Ssot
from opsverify.ssot.model import Decommission
from opsverify.verdict import Unreachable

from . import Case, Family


def when(value: str | datetime) -> datetime:
    """An ISO time (`2026-02-12T14:38:00Z`) as an aware UTC datetime."""
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def now(setting: str | None) -> datetime:
    """The gate's "now": OPSVERIFY_NOW when set (tests, replays), else the clock."""
    if not setting:
        return datetime.now(UTC)
    try:
        return when(setting)
    except ValueError:
        raise ValueError(f"OPSVERIFY_NOW={setting!r} is not an ISO 8601 time "
                         "(e.g. 2026-02-12T14:38:00Z)") from None


def datasets(source: str, facts: dict[str, Any]) -> list[str]:
    """The Proxmox host's ZFS datasets; Unreachable when `zfs list` could not be run."""
    zfs = facts.get("zfs") or {}
    if not zfs.get("ok"):
        raise Unreachable(source, f"zfs list: {zfs.get('error') or 'no answer'}")
    return list(zfs.get("datasets") or [])


def check(d: Decommission, at: datetime, proxmox: dict[str, Any],
          zfs: list[str] | None) -> Findings:
    """Stopped with onboot 0 while it exists; gone after hold_until if destroy; intact before."""
    c = Findings(f"Decommission {d.host} (VM {d.vmid} on {d.node})")
    vm = (proxmox.get("vms") or {}).get(str(d.vmid)) or {"exists": False}
    # zfs None: no Proxmox host to ask, so the datasets are not judged.
    kept = {ds: ds in zfs for ds in d.datasets} if zfs is not None else {}
    hold = when(d.hold_until)
    c.saw("decommission", {"now": at.isoformat(), "hold_until": d.hold_until,
                           "after_hold": d.after_hold, "vm": vm, "datasets": kept})
    exists = bool(vm.get("exists"))
    if exists:
        c.expect("status", "stopped", vm.get("status"))
        # PVE omits onboot from a VM's config unless it was set; its default is 0.
        c.expect("onboot", d.onboot, int(vm.get("onboot") or 0))
    if at >= hold and d.after_hold == "destroy":
        left = ([f"VM {d.vmid} still exists"] if exists else []) + [
            f"dataset {ds} still exists" for ds, there in kept.items() if there]
        c.require(not left, f"destroy overdue since {d.hold_until}: {', '.join(left)}")
    elif at < hold:
        gone = ([f"VM {d.vmid}"] if not exists else []) + [
            f"dataset {ds}" for ds, there in kept.items() if not there]
        c.require(not gone, f"destroyed before hold_until {d.hold_until} (rollback window "
                            f"broken): {', '.join(gone)} gone")
    return c


def _proxmox_host(ssot: Ssot) -> tuple[str, ...]:
    # `zfs list` runs on the Proxmox host
    return (f"host:{ssot.proxmox_host.name}",) if ssot.proxmox_host else ()


FAMILY = Family(
    "decom", per="decommission record",
    checks=("VM 201 stopped, onboot 0; destroyed with its dataset once the hold is over (overdue "
           "otherwise); not before"),
    subjects={"decommission": lambda s: (Case(d.host, d.host, d) for d in s.decommissions)},
    apis=("proxmox",), more_sources=_proxmox_host,
    covers=lambda s, d: [s.hosts[d.host]] if d.host in s.hosts else [])  # the VM's host entry
