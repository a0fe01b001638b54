"""decom: decommissioned VMs stay down through their hold and are destroyed after it."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import decom
from opsverify.findings import conclude
from opsverify.settings import Settings
from opsverify.ssot.model import Decommission, Ssot


def test_decommission(decommission: Decommission, ssot: Ssot, facts: FactStore,
                      settings: Settings, evidence: Evidence) -> None:
    """Stopped, onboot 0; destroyed with its datasets once the hold is over, not before."""
    pve = ssot.proxmox_host
    source = f"host:{pve.name}" if pve else ""
    zfs = decom.datasets(source, facts.get(source)) if pve and decommission.datasets else None
    check = decom.check(decommission, decom.now(settings.now), facts.get("proxmox"), zfs)
    conclude(check, evidence)
