"""vms (issue 12): VMs 209 and 210 exist on the SSOT's node, run, and start with it (onboot 1).

The Proxmox facts are made by the real collector (opsverify.facts.api_proxmox) from PVE's real
answers (tests/samples/proxmox_*, SOURCES.md), served by an in-process transport that plays a
PVE cluster: no socket is opened. The drift is in PVE's answer; the check is run directly, then
through the real gates (`pytest gates/ --facts DIR`), where exactly the drifted VM's test may
fail and every other test passes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import samples
import wire
from factsgen import Facts, Run, clean_facts, run_many

from opsverify.facts import api_proxmox
from opsverify.facts.api_client import make_client
from opsverify.families import registry, vms
from opsverify.settings import Settings
from opsverify.ssot import Ssot, load
from opsverify.verdict import Drift as Drift_
from opsverify.verdict import Unreachable

SSOT = load()
CLEAN = clean_facts(SSOT)
TOKEN = "opsverify@pve!audit=5f0c8e1a-7b2d-4c3e-9f6a-0d1e2c3b4a59"
GATE = "test_vms::test_vm"
DEC = "test_decom::test_decommission[vm201]"
DECLARED = {vm.name: vm for vm in vms.declared(SSOT)}


def test_the_ssot_declares_209_and_210_running_with_onboot_on_pves_node() -> None:
    pve = SSOT.proxmox_host
    assert pve is not None
    assert {n: (v.host, v.vmid, v.node, v.status, v.onboot) for n, v in DECLARED.items()} == {
        "vm209": ("vm209", 209, pve.proxmox_node, "running", 1),
        "vm210": ("vm210", 210, pve.proxmox_node, "running", 1)}
    for vm in DECLARED.values():  # the hosts.yaml VMs they are
        assert SSOT.hosts[vm.host].vmid == vm.vmid and SSOT.hosts[vm.host].active
    family = registry()["vms"]
    assert family.per == "VM" and family.apis == ("proxmox",) and not family.host_facts
    cases = list(family.subjects["vm"](SSOT))
    assert [(c.id, c.host) for c in cases] == [("vm209", "vm209"), ("vm210", "vm210")]


# --- a PVE cluster made of real answers -------------------------------------------------------


def _json(name: str, **data: Any) -> dict[str, Any]:
    """A real JSON answer sample with some `data` fields changed (None: left out)."""
    doc = samples.load_json(name)
    for key, value in data.items():
        if value is None:
            doc["data"].pop(key, None)
        else:
            doc["data"][key] = value
    return doc


def _wire(name: str, subst: dict[str, str]) -> httpx.Response:
    """A real `.http` answer (status line with PVE's reason phrase, headers, body)."""
    w = wire.load(name, subst)
    return httpx.Response(w.status, headers=w.headers, content=w.body,
                          extensions={"reason_phrase": w.reason.encode()})


@dataclass
class Pve:
    """A PVE cluster: which node holds each VM, its state and config, who may audit it."""

    where: dict[int, str] = field(default_factory=lambda: {201: "pve", 209: "pve", 210: "pve"})
    running: dict[int, bool] = field(default_factory=lambda: {201: False, 209: True, 210: True})
    # VM 201 as its decommission left it: onboot set to 0 (PVE then shows it as 0)
    config: dict[int, dict[str, Any]] = field(default_factory=lambda: {201: {"onboot": 0}})
    status: dict[int, dict[str, Any]] = field(default_factory=dict)
    denied: set[int] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api2/json")
        self.seen.append(path)
        assert request.headers["Authorization"] == f"PVEAPIToken={TOKEN}"
        _, nodes, node, qemu, vmid_text, endpoint = path.split("/", 5)
        assert (nodes, qemu) == ("nodes", "qemu"), path
        vmid = int(vmid_text)
        if vmid in self.denied:  # PVE checks VM.Audit before it looks the VM up
            return _wire("proxmox_permission_check_failed_403.http",
                         {"/vms/149,": f"/vms/{vmid},"})
        if self.where.get(vmid) != node:
            return _wire("proxmox_qemu_config_missing_500.http",
                         {"nodes/cp/qemu-server/101.conf": f"nodes/{node}/qemu-server/{vmid}.conf"})
        if endpoint == "status/current":
            name = ("proxmox_qemu_status_current_running.json" if self.running.get(vmid)
                    else "proxmox_qemu_status_current_stopped.json")
            return httpx.Response(200, json=_json(name, vmid=vmid, **self.status.get(vmid, {})))
        assert endpoint == "config", path
        return httpx.Response(200, json=_json("proxmox_qemu_config.json",
                                              **self.config.get(vmid, {})))


def collect(pve: Pve, ssot: Ssot = SSOT) -> dict[str, Any]:
    """The `proxmox` facts the real collector makes from this cluster's answers."""
    settings = Settings(timeout=5, proxmox_token=TOKEN)
    with make_client(settings, transport=httpx.MockTransport(pve.handle)) as client:
        return api_proxmox.collect(ssot, settings, client)


def problems(name: str, proxmox: dict[str, Any]) -> list[str]:
    return vms.check(DECLARED[name], proxmox).problems


def test_clean_cluster_passes_and_every_vm_is_asked_at_its_own_endpoints() -> None:
    pve = Pve()
    facts = collect(pve)
    assert facts["node"] == "pve"
    assert facts["vms"]["209"] == {"exists": True, "status": "running", "qmpstatus": "running",
                                   "onboot": 1, "name": "test-qemu"}
    assert problems("vm209", facts) == [] and problems("vm210", facts) == []
    for vmid in (209, 210):
        assert {f"/nodes/pve/qemu/{vmid}/status/current", f"/nodes/pve/qemu/{vmid}/config"} \
            <= set(pve.seen)
    assert not any(p.endswith("/qemu") for p in pve.seen)  # the VM list proves nothing


@dataclass(frozen=True)
class Drift:
    """One change to the cluster; the VM it concerns and what its gate must say."""

    name: str
    vm: str
    change: Callable[[Pve], Any]
    found: list[str]


MISSING_210 = ("exists: expected a VM 210 on node pve, got none (PVE: Configuration file "
               "'nodes/pve/qemu-server/210.conf' does not exist)")
DRIFTS = [
    Drift("missing", "vm210", lambda p: p.where.pop(210), [MISSING_210]),
    Drift("stopped", "vm209", lambda p: p.running.update({209: False}),
          ["status: expected running, got stopped"]),
    Drift("onboot-0", "vm210", lambda p: p.config.update({210: {"onboot": 0}}),
          ["onboot: expected 1, got 0"]),
    Drift("onboot-0-as-string", "vm210", lambda p: p.config.update({210: {"onboot": "0"}}),
          ["onboot: expected 1, got 0"]),
    # PVE leaves onboot out of a VM's config unless it was set: its default, 0
    Drift("onboot-absent", "vm210", lambda p: p.config.update({210: {"onboot": None}}),
          ["onboot: expected 1, got 0"]),
    # migrated to another node of the cluster: PVE has no config for it on the SSOT's node
    Drift("on-another-node", "vm210", lambda p: p.where.update({210: "pve2"}), [MISSING_210]),
    Drift("stopped-and-onboot-0", "vm209", lambda p: (p.running.update({209: False}),
                                                      p.config.update({209: {"onboot": 0}})),
          ["status: expected running, got stopped", "onboot: expected 1, got 0"]),
]


def drifted(drift: Drift) -> dict[str, Any]:
    pve = Pve()
    drift.change(pve)
    return collect(pve)


@pytest.mark.parametrize("drift", DRIFTS, ids=[d.name for d in DRIFTS])
def test_drift_fails_its_vm_and_the_other_passes(drift: Drift) -> None:
    facts = drifted(drift)
    assert problems(drift.vm, facts) == drift.found
    other = next(n for n in DECLARED if n != drift.vm)
    assert problems(other, facts) == []
    check = vms.check(DECLARED[drift.vm], facts)
    with pytest.raises(Drift_) as info:
        check.raise_if_any()
    vmid = DECLARED[drift.vm].vmid
    assert str(info.value).startswith(f"VM {drift.vm} ({vmid}): {drift.found[0]}")
    assert check.seen["vm"]["ssot"]["onboot"] == 1  # the evidence shows both sides


def test_the_issues_message_reads_like_goss() -> None:
    facts = drifted(DRIFTS[2])
    check = vms.check(DECLARED["vm210"], facts)
    assert check.message == "VM vm210 (210): onboot: expected 1, got 0"
    assert check.items[0].as_dict() == {"attribute": "onboot", "expected": 1, "actual": 0,
                                        "message": "onboot: expected 1, got 0"}


def test_403_is_unreachable_never_absence() -> None:
    pve = Pve(denied={210})
    with pytest.raises(Unreachable) as info:
        collect(pve)
    assert info.value.target == "proxmox"
    assert api_proxmox.NO_AUDIT in info.value.reason
    assert "Permission check failed (/vms/210, VM.Audit)" in info.value.reason


def test_a_vm_the_facts_never_asked_about_is_unreachable_not_missing() -> None:
    facts = collect(Pve())
    del facts["vms"]["210"]  # facts saved for another SSOT
    with pytest.raises(Unreachable, match="VM 210 was not asked"):
        vms.check(DECLARED["vm210"], facts)
    assert problems("vm209", facts) == []


def test_paused_is_not_running() -> None:
    pve = Pve(status={209: {"qmpstatus": "paused"}})
    facts = collect(pve)
    assert problems("vm209", facts) == ["qmpstatus: expected running, got paused"]
    assert problems("vm210", facts) == []


def _ssot_with(**nodes: str) -> Ssot:
    """The shipped SSOT with some VMs of vms.yaml on another node."""
    doc = copy.deepcopy(SSOT.doc)
    for name, node in nodes.items():
        doc["vms"][name]["node"] = node
    return dataclasses.replace(SSOT, doc=doc)


def test_a_vm_on_another_node_is_asked_there_and_says_so() -> None:
    ssot = _ssot_with(vm210="pve2")
    moved = Pve()
    moved.where[210] = "pve2"
    facts = collect(moved, ssot)
    assert "/nodes/pve2/qemu/210/config" in moved.seen
    assert facts["vms"]["210"]["node"] == "pve2" and "node" not in facts["vms"]["209"]
    vm210 = next(v for v in vms.declared(ssot) if v.name == "vm210")
    assert vms.check(vm210, facts).problems == []
    # the SSOT says pve2, the VM is still on pve: PVE proves it absent on pve2
    facts = collect(Pve(), ssot)
    assert vms.check(vm210, facts).problems == [(
        "exists: expected a VM 210 on node pve2, got none (PVE: Configuration file "
        "'nodes/pve2/qemu-server/210.conf' does not exist)")]


def test_facts_of_another_node_fail_node() -> None:
    facts = collect(Pve())
    facts["vms"]["210"]["node"] = "pve2"  # asked, and found, on pve2 (replayed facts)
    assert problems("vm210", facts) == ["node: expected pve, got pve2"]
    assert problems("vm209", facts) == []


# --- through the real gates -------------------------------------------------------------------


def _facts(proxmox: dict[str, Any]) -> Facts:
    out = copy.deepcopy(CLEAN)
    out["proxmox"] = proxmox
    return out


def _unreachable_facts() -> Facts:
    try:
        collect(Pve(denied={210}))
    except Unreachable as exc:
        return _facts({"unreachable": exc.reason})
    raise AssertionError("a 403 did not make the source UNREACHABLE")


GATE_DRIFTS = {d.name: d for d in DRIFTS if d.name in
               ("missing", "stopped", "onboot-0", "onboot-absent", "on-another-node")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    jobs = {"clean": (_facts(collect(Pve())), {}), "403": (_unreachable_facts(), {})}
    jobs |= {name: (_facts(drifted(d)), {}) for name, d in GATE_DRIFTS.items()}
    return run_many(jobs, tmp_path_factory.mktemp("vms-gates"))


def _table(run: Run) -> str:
    return json.dumps({k: f"{o.status}: {o.message[:200]}" for k, o in run.outcomes.items()
                       if o.status != "passed"}, indent=1) or run.output[-3000:]


def test_collected_clean_facts_pass_every_gate(runs: dict[str, Run]) -> None:
    run = runs["clean"]
    assert {f"{GATE}[vm209]", f"{GATE}[vm210]"} <= set(run.outcomes), run.output[-3000:]
    assert run.failing() == {}, _table(run)


@pytest.mark.parametrize("name", list(GATE_DRIFTS))
def test_gate_fails_exactly_the_drifted_vm(name: str, runs: dict[str, Run]) -> None:
    drift, run = GATE_DRIFTS[name], runs[name]
    assert set(run.outcomes) == set(runs["clean"].outcomes), "a drift changed the test ids"
    failing = run.failing()
    assert set(failing) == {f"{GATE}[{drift.vm}]"}, _table(run)
    message = failing[f"{GATE}[{drift.vm}]"]
    vmid = DECLARED[drift.vm].vmid
    assert message.startswith(("FAIL ", "opsverify.verdict.Drift:")), message
    assert f"VM {drift.vm} ({vmid}): {drift.found[0]}" in message, message


def test_403_makes_the_proxmox_gates_unreachable_not_failed(runs: dict[str, Run]) -> None:
    run = runs["403"]
    failing = run.failing()
    assert set(failing) == {DEC, f"{GATE}[vm209]", f"{GATE}[vm210]"}, _table(run)
    for message in failing.values():
        assert message.startswith(("UNREACHABLE ", "opsverify.verdict.Unreachable:")), message
        assert "Permission check failed (/vms/210, VM.Audit)" in message, message
