"""decom: decommissioned VMs stay down through their hold and are destroyed after it."""

from __future__ import annotations

from datetime import UTC, datetime

from opsverify.checks import conclude, decom
from opsverify.facts.store import FactStore
from opsverify.settings import Settings
from opsverify.ssot.model import Decommission, Ssot


def test_decommission(decommission: Decommission, ssot: Ssot, facts: FactStore,
                      settings: Settings, evidence) -> None:
    """Stopped, onboot 0; destroyed with its datasets once the hold is over, not before."""
    now = decom.when(settings.now) if settings.now else datetime.now(UTC)
    proxmox = facts.get("proxmox")
    pve = ssot.proxmox_host
    zfs = facts.get(f"host:{pve.name}").get("zfs") if pve and decommission.datasets else None
    conclude(decom.check(decommission, now, proxmox, zfs), evidence)
