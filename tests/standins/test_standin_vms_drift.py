"""The vms drifts (issue 12) on the Proxmox stand-in, seeded as the twin seeds it: made through
PVE's API with the admin token, read back by the real collector, judged by the vms family."""

from __future__ import annotations

import secrets
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from opsverify.facts import api_proxmox
from opsverify.facts.api_client import make_client
from opsverify.families import decom, vms
from opsverify.lab import drift, drift_api
from opsverify.lab.standins import _http, proxmox
from opsverify.settings import Settings
from opsverify.ssot import load

SSOT = load()
AUDITOR, ADMIN = "auditor@pve!opsverify", "root@pam!lab-admin"  # as the twin names them
DURING_HOLD = decom.when("2026-02-11T12:00:00Z")


class Loopback(httpx.HTTPTransport):
    """Sends the SSOT's Proxmox API origin to the stand-in on 127.0.0.1, and nothing else."""

    def __init__(self, origin: str, target: str):
        super().__init__()
        self.origin, self.target = httpx.URL(origin), httpx.URL(target)
        assert self.target.host == "127.0.0.1"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        assert (url.scheme, url.host, url.port) == (self.origin.scheme, self.origin.host,
                                                    self.origin.port), url
        request.url = url.copy_with(scheme=self.target.scheme, host=self.target.host,
                                    port=self.target.port)
        return super().handle_request(request)


@pytest.fixture
def twin_pve(serve, tmp_path) -> SimpleNamespace:
    """The stand-in with the VMs the twin seeds (spec.standin_seeds), on loopback."""
    keys = {"auditor": secrets.token_hex(18), "admin": secrets.token_hex(18)}
    vms_ = [{"vmid": 201, "name": "media-stack", "status": "stopped", "onboot": 0}]
    vms_ += [{"vmid": h.vmid, "name": h.hostname, "status": "running", "onboot": 1}
             for h in SSOT.hosts.values() if h.vmid is not None and h.active]
    path = tmp_path / "proxmox.json"
    _http.write_state(path, proxmox.seed(vms=vms_, auditor_token_id=AUDITOR,
                                         auditor_secret=keys["auditor"], admin_token_id=ADMIN,
                                         admin_secret=keys["admin"]))
    url = serve(proxmox.ProxmoxApi(_http.State(path)))
    return SimpleNamespace(url=url, keys=keys)


class Drifter:
    """What the scenarios use of drift.Drifter: the SSOT and the Proxmox API (admin token)."""

    def __init__(self, pve: SimpleNamespace):
        self.ssot, self.pve = SSOT, pve

    def proxmox(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        r = httpx.request(method, f"{self.pve.url}/api2/json{path}", data=data,
                          headers={"Authorization": f"PVEAPIToken={ADMIN}={self.pve.keys['admin']}"})
        assert r.status_code == 200, r.text
        return r.json()["data"]


def collect(pve: SimpleNamespace) -> dict[str, Any]:
    settings = Settings(timeout=5, proxmox_token=f"{AUDITOR}={pve.keys['auditor']}")
    assert SSOT.proxmox_host and SSOT.proxmox_host.proxmox_api
    transport = Loopback(SSOT.proxmox_host.proxmox_api, pve.url)
    with make_client(settings, transport=transport) as client:
        return api_proxmox.collect(SSOT, settings, client)


def findings(facts: dict[str, Any]) -> dict[str, list[str]]:
    out = {vm.name: vms.check(vm, facts).problems for vm in vms.declared(SSOT)}
    out |= {d.host: decom.check(d, DURING_HOLD, facts, None).problems for d in SSOT.decommissions}
    return out


def test_the_clean_standin_passes(twin_pve) -> None:
    assert findings(collect(twin_pve)) == {"vm209": [], "vm210": [], "vm201": []}


@pytest.mark.parametrize(("name", "found"), [
    ("vm210-onboot-0", {"vm210": ["onboot: expected 1, got 0"]}),
    ("vm209-stopped", {"vm209": ["status: expected running, got stopped"]})])
def test_drift_fails_its_vm_only(twin_pve, name: str, found: dict[str, list[str]]) -> None:
    scenario = drift.get(name)
    assert scenario.families == ("vms",) and scenario.undo == ("*:standins",)
    assert scenario.outcome == "fail"
    scenario.apply(Drifter(twin_pve))
    assert findings(collect(twin_pve)) == {"vm209": [], "vm210": [], "vm201": []} | found


def test_onboot_0_leaves_the_vm_running(twin_pve) -> None:
    drift_api.vm210_onboot_0(Drifter(twin_pve))
    facts = collect(twin_pve)["vms"]["210"]
    assert (facts["status"], facts["onboot"]) == ("running", 0)
