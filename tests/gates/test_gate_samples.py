"""Gate logic on facts built from real wire and file samples through the real parsers."""

from __future__ import annotations

import json
from typing import Any

import samples
import yaml

from opsverify.facts import api_cloudflare, api_prometheus, api_proxmox
from opsverify.facts.agent import docker, fstab, programs
from opsverify.families import containers, decom, mounts, observability, reachability, routes
from opsverify.redact import SECRET_NAME
from opsverify.ssot.model import Container, Decommission, Host, Mount, Route, Rule, ScrapeTarget


def sample(name: str) -> str:
    return samples.text(name)


def sample_json(name: str) -> Any:
    return json.loads(sample(name))


def mount_facts() -> dict[str, Any]:
    entries, errors = fstab.parse_fstab(sample("fstab_homelab_RECONSTRUCTED.txt"))
    return {"mounts": fstab.parse_proc_mounts(sample("proc_mounts_homelab_RECONSTRUCTED.txt")),
            "fstab": entries, "fstab_errors": errors}


def nfs(path: str, source: str, mode: str, fstype: str = "nfs4") -> Mount:
    export = source.partition(":")[2]
    return Mount("client", path, "nas", export, source, fstype, mode)


def problems(check: Any) -> list[str]:
    return [str(f) for f in check.items]


def test_read_only_nfs_line_and_its_fstab_entry_pass() -> None:
    assert problems(mounts.check(nfs("/mnt/media", "192.168.20.9:/mnt/media", "ro"),
                                 mount_facts())) == []


def test_read_write_nfs_line_is_not_read_only() -> None:
    found = problems(mounts.check(nfs("/mnt/central", "192.168.20.9:/mnt/local", "ro"),
                                  mount_facts()))
    assert found == ["mode: expected ro, got rw", "fstab mode: expected ro, got rw"]


def test_errors_remount_ro_is_not_read_only() -> None:
    root = Mount("client", "/", "disk", "", "/dev/sda1", "ext4", "ro")
    found = problems(mounts.check(root, mount_facts()))
    assert "mode: expected ro, got rw" in found
    assert "fstab mode: expected ro, got rw" in found  # fstab says only errors=remount-ro


def test_escaped_space_in_mount_point_is_found() -> None:
    spaced = Mount("client", "/mnt/My Media", "disk", "", "/dev/sdb1", "ext4", "rw")
    found = problems(mounts.check(spaced, mount_facts()))
    assert found == ["fstab source: expected /dev/sdb1, got LABEL=media"]


def test_nfs3_mount_is_not_nfs4() -> None:
    found = problems(mounts.check(nfs("/mnt/nfs/test", "192.168.1.1:/srv/test", "rw"),
                                  mount_facts()))
    assert found == ["fstype: expected nfs4, got nfs", ("fstab: no entry, so the mount does not "
                                                        "survive a reboot")]


def test_tmpfs_twin_accepted_and_said_so() -> None:
    facts = mount_facts()
    facts["mounts"][4]["fstype"] = "tmpfs"
    check = mounts.check(nfs("/mnt/media", "192.168.20.9:/mnt/media", "ro"), facts, "tmpfs")
    assert problems(check) == []
    assert "tmpfs accepted in place of nfs4" in check.seen["fstype_accepted"]


def gluetun(**change: Any) -> dict[str, Any]:
    doc = sample_json("docker_inspect_container_healthcheck.json")
    for key, value in change.items():
        section, _, field = key.partition("__")
        if value is None:
            doc[section].pop(field, None)
        else:
            doc[section][field] = value
    return {"docker": {"ok": True, "error": None, "containers": [
        docker.parse_container(doc, {"wt-contnet-producer-1": ["TZ", "OPENVPN_PASSWORD"]},
                                SECRET_NAME)]}}


def vpn(healthcheck: bool = True, image: str = "qmcgaw/gluetun:latest",
        env: dict[str, str] | None = None) -> Container:
    return Container("vpn", "client", "wt-contnet-producer-1", "running", healthcheck, image,
                     env=env or {})


def test_healthy_container_from_the_engine_passes() -> None:
    assert problems(containers.check(vpn(), gluetun())) == []


def test_image_reference_with_implied_registry_and_tag_is_the_same() -> None:
    assert problems(containers.check(vpn(image="docker.io/qmcgaw/gluetun:latest"),
                                     gluetun())) == []
    assert problems(containers.check(vpn(image="qmcgaw/gluetun:v3"), gluetun())) == [
        "image: expected qmcgaw/gluetun:v3, got qmcgaw/gluetun"]


def test_container_without_healthcheck() -> None:
    facts = gluetun(State__Health=None, Config__Healthcheck=None)
    assert facts["docker"]["containers"][0]["has_healthcheck"] is False
    assert problems(containers.check(vpn(healthcheck=False), facts)) == []
    assert problems(containers.check(vpn(healthcheck=True), facts)) == [
        "healthcheck: the SSOT says it has one, the container defines none"]


def test_unhealthy_container() -> None:
    facts = gluetun(State__Health=sample_json("docker_state_health_unhealthy.json"))
    assert problems(containers.check(vpn(), facts)) == ["health: expected healthy, got unhealthy"]


def test_secret_env_never_reaches_the_facts() -> None:
    facts = gluetun()
    check = containers.check(vpn(env={"TZ": "Europe/Berlin"}), facts)
    assert set(facts["docker"]["containers"][0]["env"]) == {"TZ"}
    assert "OPENVPN_PASSWORD" not in json.dumps(check.seen)


def proxmox_facts(*, config: Any, status: str = "proxmox_qemu_status_current_stopped.json"
                  ) -> dict[str, Any]:
    st = api_proxmox.parse_vm_status(sample_json(status))
    cfg = api_proxmox.parse_vm_config(config)
    return {"node": "testnode", "vms": {"101": {"exists": True, "status": st["status"],
                                                "qmpstatus": st["qmpstatus"],
                                                "onboot": cfg["onboot"], "name": cfg["name"]}}}


def record(vmid: int = 101) -> Decommission:
    return Decommission("old", vmid, "testnode", None, 0, "2026-02-10T14:38:00Z",
                        "2026-02-12T14:38:00Z", "destroy", ())


def test_proxmox_onboot_one_from_the_api_fails() -> None:
    facts = proxmox_facts(config=sample_json("proxmox_qemu_config.json"))
    found = problems(decom.check(record(), decom.when("2026-02-11T00:00:00Z"), facts, None))
    assert found == ["onboot: expected 0, got 1"]


def test_proxmox_onboot_unset_and_as_string() -> None:
    doc = sample_json("proxmox_qemu_config.json")
    doc["data"].pop("onboot")
    unset = proxmox_facts(config=doc)
    assert problems(decom.check(record(), decom.when("2026-02-11T00:00:00Z"), unset, None)) == []
    doc["data"]["onboot"] = "1"
    as_string = proxmox_facts(config=doc)
    assert problems(decom.check(record(), decom.when("2026-02-11T00:00:00Z"), as_string,
                                None)) == ["onboot: expected 0, got 1"]


def test_proxmox_running_vm_overdue() -> None:
    doc = sample_json("proxmox_qemu_config.json")
    doc["data"]["onboot"] = 0
    facts = proxmox_facts(config=doc, status="proxmox_qemu_status_current_running.json")
    found = problems(decom.check(record(), decom.when("2026-03-01T00:00:00Z"), facts, None))
    assert found == ["status: expected stopped, got running",
                     "destroy overdue since 2026-02-12T14:38:00Z: VM 101 still exists"]


def test_prometheus_string_values() -> None:
    facts = {"targets": [], "rules": {"up": api_prometheus.parse_query(
        sample_json("prometheus_api_v1_query_vector.json"))}}
    assert facts["rules"]["up"]["values"] == [1.0, 0.0]
    assert problems(observability.check_rule(Rule("up", "up", "<", 0.5), facts)) == [
        "value 1 violates < 0.5"]
    assert problems(observability.check_rule(Rule("up", "up", "<=", 1), facts)) == []


def test_prometheus_targets_active_and_dropped() -> None:
    facts = {"targets": api_prometheus.parse_targets(
        sample_json("prometheus_api_v1_targets.json")), "rules": {}}
    up = ScrapeTarget("self", "prometheus", "client", "127.0.0.1", 9090)
    dropped = ScrapeTarget("node", "node", "client", "127.0.0.1", 9100)
    assert problems(observability.check_target(up, facts)) == []
    assert problems(observability.check_target(dropped, facts)) == [
        "not an active target of Prometheus"]


def cloudflare_facts() -> dict[str, Any]:
    tunnel = api_cloudflare.parse_tunnel_config(
        sample_json("cloudflare_tunnel_configurations_get.json"))
    records, _, _ = api_cloudflare.parse_dns_page(
        sample_json("cloudflare_dns_records_tunnel_cname_real.json"))
    return {"tunnel": tunnel, "dns": records}


def test_cloudflare_ingress_catch_all_and_cname() -> None:
    facts = cloudflare_facts()
    assert problems(routes.check_catch_all("http_status:404", facts)) == []
    ingress = Route("test.example.com", "client", 8000, "https://localhost:8000", 200, None)
    http = {"routes": {"test.example.com": {"status": 200, "location": None, "error": None}}}
    found = problems(routes.check(ingress, "05819d54-4201-4c60-acc4-562920b9c7e6", facts, http))
    assert found == [("DNS: expected a proxied CNAME to 05819d54-4201-4c60-acc4-562920b9c7e6."
                     "cfargotunnel.com, got no record")]
    cname = Route("tunnel.jnishant.com", "client", 80, "http://10.0.0.1:80", 200, None)
    found = problems(routes.check(cname, "05819d54-4201-4c60-acc4-562920b9c7e6", facts,
                                  {"routes": {"tunnel.jnishant.com": http["routes"][
                                      "test.example.com"]}}))
    assert found == [("ingress service: expected http://10.0.0.1:80, no rule for the hostname "
                     "(falls to the catch-all http_status:404)")]


def test_cloudflare_parser_fixture_without_catch_all() -> None:
    rules = yaml.safe_load(sample("cloudflared_config_parser_test.yml"))["ingress"]
    facts = {"tunnel": {"ingress": [{"hostname": r.get("hostname"), "service": r["service"],
                                     "path": r.get("path")} for r in rules]}}
    found = problems(routes.check_catch_all("http_status:404", facts))
    assert len(found) == 1 and found[0].startswith("catch-all: expected a last rule without")


def test_tailscale_status_from_the_cli() -> None:
    ts = programs.parse_tailscale_status(sample("tailscale_status_json_RECONSTRUCTED.json"))
    facts = {"hostname": "blaptop04", "tailscale": {"ok": True, "error": None, **ts}}
    laptop = Host("laptop", "vm", "active", "blaptop04", tailscale_ip="100.107.222.96")
    assert problems(reachability.check(laptop, facts)) == []
    other = Host("laptop", "vm", "active", "blaptop04", tailscale_ip="100.64.0.2")
    assert problems(reachability.check(other, facts)) == [
        ("tailscale IP: expected 100.64.0.2 among the host's, got 100.107.222.96, "
        "fd7a:115c:a1e0::6e39:de61")]
