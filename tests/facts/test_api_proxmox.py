"""Proxmox facts: VMs of the SSOT, normalised across PVE versions; against the lab's stand-in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import wire
from api_servers import Answer, json_values, loopback_client, sample, scripted, standin
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from opsverify.facts import api_proxmox as px
from opsverify.facts.api_client import decode_json
from opsverify.lab.standins.proxmox import ProxmoxApi, seed
from opsverify.settings import Settings
from opsverify.ssot import Ssot, load
from opsverify.verdict import Unreachable

TOKEN_ID, SECRET = "opsverify@pve!audit", "5f0c8e1a-7b2d-4c3e-9f6a-0d1e2c3b4a59"
ORIGIN = "https://192.168.1.184:8006"
VMS = [{"vmid": 201, "name": "media-stack", "status": "stopped", "onboot": 0},
       {"vmid": 209, "name": "download-stack", "status": "running", "onboot": 1},
       {"vmid": 210, "name": "streaming-stack", "status": "running", "onboot": 1}]


@pytest.fixture(scope="module")
def ssot() -> Ssot:
    return load()


def _state(vms: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return seed(vms=vms, auditor_token_id=TOKEN_ID, auditor_secret=SECRET,
                admin_token_id="root@pam!admin", admin_secret="admin-secret-0000", **kw)


def _collect(ssot: Ssot, url: str, token: str | None = f"{TOKEN_ID}={SECRET}"
             ) -> dict[str, Any]:
    settings = Settings(timeout=2, proxmox_token=token)
    with loopback_client(settings, {ORIGIN: url}) as client:
        return px.collect(ssot, settings, client)


def test_every_ssot_vm(ssot: Ssot, tmp_path: Path) -> None:
    with standin(ProxmoxApi, _state(VMS), tmp_path) as url:
        facts = _collect(ssot, url)
    assert facts == {"node": "pve", "vms": {
        "201": {"exists": True, "status": "stopped", "qmpstatus": "stopped", "onboot": 0,
                "name": "media-stack"},
        "209": {"exists": True, "status": "running", "qmpstatus": "running", "onboot": 1,
                "name": "download-stack"},
        "210": {"exists": True, "status": "running", "qmpstatus": "running", "onboot": 1,
                "name": "streaming-stack"}}}
    assert SECRET not in json.dumps(facts)


def test_string_ids_and_unset_onboot(ssot: Ssot, tmp_path: Path) -> None:
    vms = [{k: v for k, v in vm.items() if k != "onboot"} for vm in VMS]
    with standin(ProxmoxApi, _state(vms, string_ids=True), tmp_path) as url:
        facts = _collect(ssot, url)
    assert {vmid: vm["onboot"] for vmid, vm in facts["vms"].items()} == {
        "201": 0, "209": 0, "210": 0}  # unset is PVE's default, 0
    assert all(vm["exists"] for vm in facts["vms"].values())


def test_destroyed_vm_is_absent_not_unreachable(ssot: Ssot, tmp_path: Path) -> None:
    with standin(ProxmoxApi, _state(VMS[1:]), tmp_path) as url:
        facts = _collect(ssot, url)
    assert facts["vms"]["201"] == {"exists": False, "status": None, "qmpstatus": None,
                                   "onboot": None, "name": None}
    assert facts["vms"]["210"]["exists"] is True


def _real(name: str, vmid: int) -> Any:
    """A real PVE answer sample, about this VM on node pve."""
    return wire.answer(name, {"nodes/cp/qemu-server/101.conf": f"nodes/pve/qemu-server/{vmid}.conf"}
                       if "500" in name else {"/vms/149,": f"/vms/{vmid},"})


def test_500_does_not_exist_is_absent(ssot: Ssot) -> None:
    """PVE's own answer for a missing VM, at the VM's own endpoint, proves it is gone."""
    def script(seen: Any) -> Answer:
        if "/201/" in seen.path:
            return _real("proxmox_qemu_config_missing_500.http", 201)
        if seen.path.endswith("/status/current"):
            return Answer(200, sample("proxmox_qemu_status_current_running.json"))
        return Answer(200, sample("proxmox_qemu_config.json"))

    with scripted(script) as srv:
        facts = _collect(ssot, srv.url)
    assert facts["vms"]["201"]["exists"] is False
    assert facts["vms"]["209"] == {"exists": True, "status": "running", "qmpstatus": "running",
                                   "onboot": 1, "name": "test-qemu"}
    assert not any(s.path.endswith("/qemu") for s in srv.seen)  # the list proves nothing


def test_another_vms_missing_config_proves_nothing(ssot: Ssot) -> None:
    def script(seen: Any) -> Answer:  # the verbatim sample names VM 101 on node cp
        return wire.answer("proxmox_qemu_config_missing_500.http")

    with scripted(script) as srv, pytest.raises(Unreachable) as info:
        _collect(ssot, srv.url)
    assert "HTTP 500" in info.value.reason and "101.conf" in info.value.reason


def test_empty_list_of_a_privilege_separated_token_is_not_absence(ssot: Ssot) -> None:
    """The issue: the list answered 200 [] and VM 201 read as destroyed. Now: UNREACHABLE."""
    def script(seen: Any) -> Answer:
        if seen.path.endswith("/qemu"):
            return Answer(200, sample("proxmox_qemu_list_privsep_empty.json"))
        vmid = int(seen.path.split("/qemu/")[1].split("/")[0])
        return _real("proxmox_permission_check_failed_403.http", vmid)

    with scripted(script) as srv, pytest.raises(Unreachable) as info:
        _collect(ssot, srv.url)
    assert info.value.reason.startswith(px.NO_AUDIT + ": GET https://192.168.1.184:8006/api2/"
                                        "json/nodes/pve/qemu/201/status/current: HTTP 403 "
                                        "Forbidden (Permission check failed (/vms/201, "
                                        "VM.Audit))")
    assert info.value.reason.endswith("(and 2 more)")


def test_privilege_separated_token_on_the_standin(ssot: Ssot, tmp_path: Path) -> None:
    state = _state(VMS)
    state["acl"] = [e for e in state["acl"] if e["type"] != "token"]  # as made in the web UI
    with standin(ProxmoxApi, state, tmp_path) as url, pytest.raises(Unreachable) as info:
        _collect(ssot, url)
    assert px.NO_AUDIT in info.value.reason and "(/vms/201, VM.Audit)" in info.value.reason


def test_one_vm_denied_is_unreachable_not_absent(ssot: Ssot, tmp_path: Path) -> None:
    state = _state(VMS[1:])  # 201 destroyed, but the token may only audit 209 and 210
    state["acl"] = [{"path": f"/vms/{v}", "type": t, "ugid": u, "roleid": "PVEAuditor",
                     "propagate": 1} for v in (209, 210)
                    for t, u in (("user", TOKEN_ID.split("!")[0]), ("token", TOKEN_ID))]
    with standin(ProxmoxApi, state, tmp_path) as url, pytest.raises(Unreachable) as info:
        _collect(ssot, url)
    assert "(/vms/201, VM.Audit)" in info.value.reason and "more" not in info.value.reason


def test_privsep_off_with_the_users_role(ssot: Ssot, tmp_path: Path) -> None:
    with standin(ProxmoxApi, _state(VMS[1:], auditor_privsep=False), tmp_path) as url:
        facts = _collect(ssot, url)
    assert facts["vms"]["201"]["exists"] is False and facts["vms"]["210"]["exists"] is True


def test_other_500_is_unreachable(ssot: Ssot) -> None:
    body = {"data": None, "message": "hostname lookup 'pve' failed - Name or service not known"}
    with scripted(lambda seen: Answer(500, body)) as srv, pytest.raises(Unreachable) as info:
        _collect(ssot, srv.url)
    assert "GET https://192.168.1.184:8006/api2/json/nodes/pve/qemu/201/status/current: " \
        "HTTP 500" in info.value.reason
    assert "hostname lookup 'pve' failed" in info.value.reason


def test_missing_token(ssot: Ssot) -> None:
    with pytest.raises(Unreachable, match="PROXMOX_API_TOKEN is not set"):
        _collect(ssot, "http://127.0.0.1:9", token=None)


def test_wrong_token_is_unreachable_with_the_status(ssot: Ssot, tmp_path: Path) -> None:
    wrong = f"{TOKEN_ID}=00000000-dead-beef-0000-000000000000"
    with standin(ProxmoxApi, _state(VMS), tmp_path) as url, pytest.raises(Unreachable) as info:
        _collect(ssot, url, token=wrong)
    assert "HTTP 401" in info.value.reason and "invalid token value!" in info.value.reason
    assert "dead-beef" not in str(info.value)


# --- samples and hostile input ----------------------------------------------------------------


def test_samples_across_versions() -> None:
    assert px.parse_vm_status(sample("proxmox_qemu_status_current_running.json"))["status"] \
        == "running"
    assert px.parse_vm_status(sample("proxmox_qemu_status_current_stopped.json")) == {
        "status": "stopped", "qmpstatus": "stopped", "name": "test-qemu"}
    assert px.parse_vm_config(sample("proxmox_qemu_config.json")) == {"onboot": 1,
                                                                      "name": "test-qemu"}


@pytest.mark.parametrize(("onboot", "want"), [(0, 0), ("0", 0), (1, 1), ("1", 1), ("x", None)])
def test_onboot_number_or_string(onboot: Any, want: int | None) -> None:
    assert px.parse_vm_config({"data": {"onboot": onboot}})["onboot"] == want


JSON = json_values(("data", "vmid", "status", "qmpstatus", "name", "onboot"))
FIELD = st.sampled_from(["vmid", "status", "qmpstatus", "name", "onboot"])
SHAPED = st.fixed_dictionaries({"data": st.lists(st.dictionaries(FIELD, JSON), max_size=4)
                                | st.dictionaries(FIELD, JSON) | JSON})


@hsettings(max_examples=200)
@given(SHAPED | JSON)
def test_parsers_raise_only_value_error(payload: Any) -> None:
    for parse in (px.parse_vm_status, px.parse_vm_config):
        try:
            parse(payload)
        except ValueError:
            pass


@given(st.sampled_from(["proxmox_qemu_list.json", "proxmox_qemu_config.json",
                        "proxmox_qemu_status_current_running.json"]), st.data())
def test_truncated_samples_raise_only_value_error(name: str, data: st.DataObject) -> None:
    raw = json.dumps(sample(name)).encode()
    try:
        payload = decode_json(raw[: data.draw(st.integers(0, len(raw)))])
        for parse in (px.parse_vm_status, px.parse_vm_config):
            try:
                parse(payload)
            except ValueError:
                pass
    except ValueError:
        pass
