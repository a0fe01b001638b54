"""vms: each VM of ssot/vms.yaml exists on its node, runs, and starts with it (onboot 1).

The family reads its own SSOT file's document (`ssot.doc["vms"]`): the loader validates every
file that has a schema, so no typed view in opsverify.ssot.model is needed for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsverify.findings import Findings
from opsverify.ssot import Ssot
from opsverify.verdict import Unreachable

from . import Case, Family

SOURCE = "proxmox"


@dataclass(frozen=True)
class Vm:
    """One VM of ssot/vms.yaml: its id there, its host in hosts.yaml and what PVE must say."""

    name: str
    host: str
    vmid: int
    node: str
    status: str  # running | stopped
    onboot: int  # 0 | 1


def declared(ssot: Ssot) -> list[Vm]:
    """The VMs of ssot/vms.yaml (none for an SSOT without that file)."""
    return [Vm(name, v["host"], v["vmid"], v["node"], v["status"], v["onboot"])
            for name, v in (ssot.doc.get("vms") or {}).items()]


def check(vm: Vm, proxmox: dict[str, Any]) -> Findings:
    """Exists on the SSOT's node, in the SSOT's run state, with the SSOT's onboot."""
    c = Findings(f"VM {vm.name} ({vm.vmid})")
    fact = (proxmox.get("vms") or {}).get(str(vm.vmid))
    if fact is None:  # not asked: absence is proven by PVE, never inferred from silence
        raise Unreachable(SOURCE, f"VM {vm.vmid} was not asked (facts of another SSOT?)")
    # The collector asks each VM at the node the SSOT names; `node` per VM only when that is
    # not the Proxmox host's own node.
    node = fact.get("node") or proxmox.get("node")
    c.saw("vm", {"ssot": {"host": vm.host, "node": vm.node, "status": vm.status,
                          "onboot": vm.onboot}, "proxmox": {"node": node, **fact}})
    if not fact.get("exists"):
        c.require(False, f"exists: expected a VM {vm.vmid} on node {vm.node}, got none (PVE: "
                         f"Configuration file 'nodes/{node}/qemu-server/{vm.vmid}.conf' does "
                         "not exist)", "exists", True, False)
        return c
    c.expect("node", vm.node, node)
    if c.expect("status", vm.status, fact.get("status")) and vm.status == "running":
        # `running` with QEMU paused (or still starting) serves nothing either
        c.expect("qmpstatus", "running", fact.get("qmpstatus") or "running")
    # The collector reads onboot left unset in the VM's config as PVE's default, 0.
    c.expect("onboot", vm.onboot, fact.get("onboot"))
    return c


FAMILY = Family(
    "vms", per="VM",
    checks=("VMs 209 and 210 exist on the SSOT's node (PVE's 500 \"does not exist\" proves "
            "absence, a 403 is UNREACHABLE), running, onboot 1 (back after a PVE reboot)"),
    subjects={"vm": lambda s: (Case(v.name, v.host, v) for v in declared(s))},
    apis=(SOURCE,))
