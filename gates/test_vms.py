"""vms: the VMs the SSOT runs exist on their node, run, and come back after a PVE reboot."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import vms
from opsverify.findings import conclude


def test_vm(vm: vms.Vm, facts: FactStore, evidence: Evidence) -> None:
    """Exists on the SSOT's node (proven by PVE), running, onboot 1."""
    conclude(vms.check(vm, facts.get("proxmox")), evidence)
