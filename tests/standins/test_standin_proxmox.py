"""The Proxmox VE stand-in: tokens and privileges, VM list/status/config, lifecycle, PVE quirks."""

from __future__ import annotations

import io
import secrets

import httpx
import pytest

from opsverify.lab.standins import _http, proxmox

AUDITOR, ADMIN = "opsverify@pve!audit", "root@pam!lab"
NODE = "/api2/json/nodes/pve"


@pytest.fixture
def secrets_() -> dict[str, str]:
    return {"auditor": secrets.token_hex(18), "admin": secrets.token_hex(18)}


def _state(tmp_path, secrets_, **quirks) -> _http.State:
    data = proxmox.seed(
        vms=[
            {"vmid": 201, "name": "media-stack", "status": "stopped", "onboot": 0, "cores": 4,
             "memory": 16384},
            {"vmid": 209, "name": "download-stack", "status": "running", "onboot": 1,
             "cores": 4, "memory": 8192, "agent": "1", "vga": "qxl",
             "ide2": "none,media=cdrom"},
            {"vmid": 210, "name": "streaming-stack", "status": "running", "cores": 4,
             "memory": 8192},
        ],
        auditor_token_id=AUDITOR, auditor_secret=secrets_["auditor"],
        admin_token_id=ADMIN, admin_secret=secrets_["admin"], **quirks,
    )
    path = tmp_path / "proxmox.json"
    _http.write_state(path, data)
    return _http.State(path)


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def pve(serve, tmp_path, secrets_, log, new_client):
    base = serve(proxmox.ProxmoxApi(_state(tmp_path, secrets_)), log=log)

    def client(who: str | None = "auditor") -> httpx.Client:
        tid = {"auditor": AUDITOR, "admin": ADMIN}.get(who or "")
        headers = {"Authorization": f"PVEAPIToken={tid}={secrets_[who]}"} if who else {}
        return new_client(base, headers=headers)

    return client


def test_version(pve):
    data = pve().get("/api2/json/version").json()["data"]
    assert data == {"version": "8.3.2", "release": "8.3", "repoid": "3e76eec21c4a14a7"}


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "No ticket"),
        (f"PVEAPIToken={AUDITOR}=wrong-secret", "invalid token value!"),
        ("PVEAPIToken=ghost@pve!nope=x", "no such token 'nope' for user 'ghost@pve'"),
    ],
)
def test_unauthenticated(pve, header, reason):
    response = pve(None).get("/api2/json/version",
                             headers={"Authorization": header} if header else {})
    assert (response.status_code, response.reason_phrase) == (401, reason)
    assert response.json()["data"] is None


def test_auditor_reads_but_cannot_write(pve):
    auditor = pve("auditor")
    assert auditor.get(f"{NODE}/qemu").status_code == 200
    for method, url in [("POST", f"{NODE}/qemu/201/status/start"),
                        ("PUT", f"{NODE}/qemu/201/config"),
                        ("POST", f"{NODE}/qemu"),
                        ("DELETE", f"{NODE}/qemu/201")]:
        response = auditor.request(method, url, data={"onboot": "1", "vmid": "300"})
        assert response.status_code == 403, (method, url)
        assert response.reason_phrase.startswith("Permission check failed (/vms/")


def test_list_matches_the_real_shape(pve, sample, gaps):
    data = pve().get(f"{NODE}/qemu").json()["data"]
    assert [(v["vmid"], v["name"], v["status"]) for v in data] == [
        (201, "media-stack", "stopped"), (209, "download-stack", "running"),
        (210, "streaming-stack", "running")]
    running = {"data": [v for v in data if v["status"] == "running"]}
    assert gaps(sample("proxmox_qemu_list.json"), running) == []
    assert "pid" not in data[0] and isinstance(data[1]["pid"], int)


def test_status_current_matches_the_real_shapes(pve, sample, gaps):
    client = pve()
    running = client.get(f"{NODE}/qemu/209/status/current").json()
    stopped = client.get(f"{NODE}/qemu/201/status/current").json()
    keyed = ("$.data.blockstat", "$.data.nics")
    assert gaps(sample("proxmox_qemu_status_current_running.json"), running, keyed=keyed) == []
    assert gaps(sample("proxmox_qemu_status_current_stopped.json"), stopped) == []
    assert (running["data"]["status"], running["data"]["qmpstatus"]) == ("running", "running")
    assert running["data"]["uptime"] > 0 and running["data"]["vmid"] == 209
    assert (stopped["data"]["status"], stopped["data"]["qmpstatus"]) == ("stopped", "stopped")
    assert stopped["data"]["uptime"] == 0 and "pid" not in stopped["data"]


def test_config_onboot_is_an_int_and_absent_unless_set(pve):
    client = pve()
    config = client.get(f"{NODE}/qemu/201/config").json()["data"]
    assert config["onboot"] == 0 and config["name"] == "media-stack" and config["cores"] == 4
    assert len(config["digest"]) == 40
    assert "onboot" not in client.get(f"{NODE}/qemu/210/config").json()["data"]


def test_unknown_vm_and_node(pve):
    client = pve()
    missing = client.get(f"{NODE}/qemu/999/status/current")
    assert missing.status_code == 500
    message = "Configuration file 'nodes/pve/qemu-server/999.conf' does not exist"
    assert missing.reason_phrase == message
    assert missing.json() == {"data": None, "message": message + "\n"}
    assert client.get("/api2/json/nodes/pve2/qemu").status_code == 500
    assert client.get(f"{NODE}/nosuch").status_code == 501


def test_config_post_is_async_put_is_sync_form_or_json(pve):
    admin = pve("admin")
    upid = admin.post(f"{NODE}/qemu/201/config", data={"onboot": "1"}).json()["data"]
    assert upid.startswith("UPID:pve:") and ":qmconfig:201:root@pam!lab:" in upid
    assert admin.get(f"{NODE}/qemu/201/config").json()["data"]["onboot"] == 1
    assert admin.put(f"{NODE}/qemu/201/config", json={"onboot": 0}).json() == {"data": None}
    assert admin.get(f"{NODE}/qemu/201/config").json()["data"]["onboot"] == 0
    admin.put(f"{NODE}/qemu/201/config", data={"delete": "onboot"})
    assert "onboot" not in admin.get(f"{NODE}/qemu/201/config").json()["data"]
    task = admin.get(f"/api2/json/nodes/pve/tasks/{upid}/status").json()["data"]
    assert (task["status"], task["exitstatus"]) == ("stopped", "OK")


def test_config_validation_and_digest(pve):
    admin = pve("admin")
    bad = admin.put(f"{NODE}/qemu/201/config", data={"onboot": "maybe", "bogus": "1"})
    assert (bad.status_code, bad.reason_phrase) == (400, "Parameter verification failed.")
    assert set(bad.json()["errors"]) == {"onboot", "bogus"}
    stale = admin.put(f"{NODE}/qemu/201/config", data={"onboot": "1", "digest": "0" * 40})
    assert stale.status_code == 500 and "modified configuration" in stale.reason_phrase


def test_vm_lifecycle(pve, sample):
    admin = pve("admin")
    real = sample("proxmox_qemu_config.json")["data"]
    config = {k: v for k, v in real.items() if k != "digest"}
    upid = admin.post(f"{NODE}/qemu", data={"vmid": "301", **config}).json()["data"]
    assert ":qmcreate:301:" in upid
    got = admin.get(f"{NODE}/qemu/301/config").json()["data"]
    assert {k: got[k] for k in config} == config  # values and types round-trip
    assert set(real) <= set(got)
    assert admin.post(f"{NODE}/qemu", data={"vmid": "301"}).status_code == 500

    assert admin.post(f"{NODE}/qemu/301/status/start").status_code == 200
    current = admin.get(f"{NODE}/qemu/301/status/current").json()["data"]
    assert (current["status"], current["qmpstatus"], current["name"]) == (
        "running", "running", "test-qemu")

    refused = admin.delete(f"{NODE}/qemu/301")
    assert (refused.status_code, refused.reason_phrase) == (500, "VM 301 is running - destroy failed")

    assert admin.post(f"{NODE}/qemu/301/status/shutdown").status_code == 200
    assert admin.get(f"{NODE}/qemu/301/status/current").json()["data"]["status"] == "stopped"
    admin.post(f"{NODE}/qemu/301/status/start")
    admin.post(f"{NODE}/qemu/301/status/stop")
    destroyed = admin.delete(f"{NODE}/qemu/301").json()["data"]
    assert ":qmdestroy:301:" in destroyed
    assert admin.get(f"{NODE}/qemu/301/config").status_code == 500
    assert 301 not in [v["vmid"] for v in admin.get(f"{NODE}/qemu").json()["data"]]


def test_start_of_a_running_vm_fails_in_the_task(pve):
    admin = pve("admin")
    upid = admin.post(f"{NODE}/qemu/209/status/start").json()["data"]
    task = admin.get(f"/api2/json/nodes/pve/tasks/{upid}/status").json()["data"]
    assert task["exitstatus"] == "VM 209 already running"


def test_string_ids_quirk(serve, tmp_path, secrets_, http):
    base = serve(proxmox.ProxmoxApi(_state(tmp_path, secrets_, string_ids=True)))
    headers = {"Authorization": f"PVEAPIToken={AUDITOR}={secrets_['auditor']}"}
    data = http.get(f"{base}{NODE}/qemu", headers=headers).json()["data"]
    assert data[1]["vmid"] == "209" and isinstance(data[1]["pid"], str)


def test_cluster_resources(pve):
    data = pve().get("/api2/json/cluster/resources", params={"type": "vm"}).json()["data"]
    assert {(r["id"], r["node"], r["type"]) for r in data} == {
        ("qemu/201", "pve", "qemu"), ("qemu/209", "pve", "qemu"), ("qemu/210", "pve", "qemu")}


def test_log_never_holds_a_token(pve, secrets_, log):
    pve("admin").post(f"{NODE}/qemu/201/config", data={"onboot": "1"})
    pve("auditor").get(f"{NODE}/qemu")
    text = log.getvalue()
    assert f"POST {NODE}/qemu/201/config 200" in text
    assert secrets_["admin"] not in text and secrets_["auditor"] not in text


# --- privilege separation and ACLs (PVE lists only what a token may audit) -------------------


def _wire(name: str, vmid: int, node: str = "pve") -> tuple[int, str, dict]:
    """status, reason and JSON body of a real PVE answer sample, for this VM and node."""
    import json

    import wire
    subst = ({"nodes/cp/qemu-server/101.conf": f"nodes/{node}/qemu-server/{vmid}.conf"}
             if name.endswith("500.http") else {"/vms/149,": f"/vms/{vmid},"})
    w = wire.load(name, subst)
    return w.status, w.reason, json.loads(w.body)


def test_missing_vm_answers_what_pve_answers(pve):
    got = pve().get(f"{NODE}/qemu/201000/config")
    assert (got.status_code, got.reason_phrase, got.json()) == _wire(
        "proxmox_qemu_config_missing_500.http", 201000)


def _revoke_token_acl(pve) -> None:
    """What a token created in the web UI has: privilege separation on, no permission."""
    done = pve("admin").put("/api2/json/access/acl", data={
        "path": "/vms", "roles": "PVEAuditor", "tokens": AUDITOR, "delete": "1"})
    assert done.json() == {"data": None}


def test_privilege_separated_token_without_permission_sees_nothing(pve, sample):
    _revoke_token_acl(pve)
    auditor = pve("auditor")
    listing = auditor.get(f"{NODE}/qemu")
    assert (listing.status_code, listing.json()) == (200, sample(
        "proxmox_qemu_list_privsep_empty.json"))
    assert auditor.get("/api2/json/cluster/resources").json() == {"data": []}
    for vmid in (201, 209, 999):  # existing or not: the permission check comes first
        got = auditor.get(f"{NODE}/qemu/{vmid}/status/current")
        assert (got.status_code, got.reason_phrase, got.json()) == _wire(
            "proxmox_permission_check_failed_403.http", vmid)


def test_privsep_off_uses_the_users_role(pve):
    _revoke_token_acl(pve)
    admin = pve("admin")
    info = admin.put(f"/api2/json/access/users/{AUDITOR.replace('!', '/token/')}",
                     data={"privsep": "0"}).json()["data"]
    assert info["privsep"] == 0
    listing = pve("auditor").get(f"{NODE}/qemu").json()["data"]
    assert [v["vmid"] for v in listing] == [201, 209, 210]


def test_token_acl_is_within_the_users(pve):
    admin = pve("admin")
    admin.put("/api2/json/access/acl", data={"path": "/vms", "roles": "PVEAuditor",
                                            "users": AUDITOR.split("!")[0], "delete": "1"})
    assert pve("auditor").get(f"{NODE}/qemu").json() == {"data": []}
    admin.put("/api2/json/access/acl", data={"path": "/vms/209", "roles": "PVEAuditor",
                                            "users": AUDITOR.split("!")[0]})
    assert [v["vmid"] for v in pve("auditor").get(f"{NODE}/qemu").json()["data"]] == [209]
    entries = admin.get("/api2/json/access/acl").json()["data"]
    assert {"path": "/vms", "type": "token", "ugid": AUDITOR, "roleid": "PVEAuditor",
            "propagate": 1} in entries


def test_acl_changes_need_permissions_modify(pve):
    got = pve("auditor").put("/api2/json/access/acl", data={
        "path": "/vms", "roles": "PVEAuditor", "tokens": AUDITOR, "delete": "1"})
    assert (got.status_code, got.reason_phrase) == (
        403, "Permission check failed (/vms, Permissions.Modify)")
    admin = pve("admin")
    assert admin.put("/api2/json/access/acl", data={"path": "/vms", "roles": "NoSuchRole",
                                                   "tokens": AUDITOR}).status_code == 500
    assert admin.put("/api2/json/access/acl", data={"path": "/vms", "roles": "PVEAuditor",
                                                   "tokens": "x@pve!y"}).reason_phrase == \
        "no such token 'y' for user 'x@pve'"
    assert admin.put("/api2/json/access/acl", data={"path": "vms",
                                                   "roles": "PVEAuditor"}).status_code == 400
