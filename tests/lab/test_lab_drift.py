"""Every drift scenario changes what it says, and `reset` brings back the very clean twin."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import docker
import pytest

from opsverify.lab import drift, drift_api, drift_host, hosts
from opsverify.lab import proc as lab_proc
from opsverify.lab.snapshot import diff, snapshot
from opsverify.ssot import load

SSOT = load()
RETIRED = next(d.address for d in SSOT.decommissions if d.host == "vm201")


def engine(lab: Any, host: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix://{lab.status['hosts'][host]['docker_socket']}",
                               version="1.41")


def container(lab: Any, host: str, name: str) -> dict[str, Any]:
    return engine(lab, host).containers.get(name).attrs


def health(lab: Any, host: str, name: str) -> str | None:
    return (container(lab, host, name)["State"].get("Health") or {}).get("Status")


def read(lab: Any, host: str, path: str) -> bytes:
    return (hosts.host_root(lab.holder(host)) / path.lstrip("/")).read_bytes()


def mount(lab: Any, host: str, path: str) -> dict[str, Any]:
    return hosts.mounts_of(lab.holder(host))[path]


def standin(lab: Any, name: str) -> dict[str, Any]:
    return json.loads((lab.layout.standins / f"{name}.json").read_text())


def prowlarr_rows(lab: Any) -> dict[str, dict[str, Any]]:
    rows = lab.sqlite_rows("vm209", "/mnt/docker/prowlarr/prowlarr.db", "Applications")
    return {r["Name"]: json.loads(r["Settings"]) for r in rows}


def plugin(lab: Any) -> ET.Element:
    return ET.fromstring(read(lab, "vm210", "/mnt/docker/jellyfin/plugins/configurations/"
                                            "Jellyfin.Plugin.HomeScreenSections.xml"))


def ssh_result(lab: Any, host: str) -> dict[str, Any]:
    return lab.inside("ssh", host)


def _vm201(lab: Any) -> dict[str, Any] | None:
    return standin(lab, "proxmox")["vms"].get("201")


# What each scenario must have changed, checked directly on the thing (not through gates).
CHANGED: dict[str, Callable[[Any], None]] = {
    "media-rw-vm210": lambda lab: _assert("rw" in mount(lab, "vm210", "/mnt/media")["options"]),
    "nfs-over-tailscale-vm209": lambda lab: _assert(
        mount(lab, "vm209", "/mnt/media")["source"] == f"{drift.TAILSCALE_NFS}:/media"
        and f"{drift.TAILSCALE_NFS}:/media /mnt/media nfs4".encode() in read(lab, "vm209",
                                                                              "/etc/fstab")),
    "stale-ip-prowlarr": lambda lab: _assert(
        prowlarr_rows(lab)["Radarr (media-stack)"]["baseUrl"] == f"http://{RETIRED}:7878"
        and prowlarr_rows(lab)["Radarr"]["baseUrl"] == "http://radarr:7878"),
    "stale-ip-jellyfin-plugin": lambda lab: _assert(
        plugin(lab).findtext("RadarrUrl") == f"http://{RETIRED}:7878"
        and plugin(lab).findtext("SonarrUrl") == f"http://{RETIRED}:8989"),
    "container-unhealthy": lambda lab: _assert(
        health(lab, "vm210", "bazarr") == "unhealthy"
        and container(lab, "vm210", "bazarr")["State"]["Status"] == "running"),
    "container-stopped": lambda lab: _assert(
        container(lab, "vm209", "flaresolverr")["State"]["Status"] == "exited"),
    "stopped-container-running": lambda lab: _assert(
        container(lab, "vm209", "tdarr")["State"]["Status"] == "running"),
    "unexpected-container-vm210": lambda lab: _assert(
        container(lab, "vm210", "qbittorrent")["State"]["Status"] == "running"),
    "homarr-image": lambda lab: _assert(
        container(lab, "vm210", "homarr")["Config"]["Image"] == "ghcr.io/homarr-labs/homarr:latest"
        and health(lab, "vm210", "homarr") == "healthy"),
    "watchtower-api-version": lambda lab: _assert(not any(
        e.startswith("DOCKER_API_VERSION=")
        for e in container(lab, "vm210", "watchtower")["Config"]["Env"])),
    "plaintext-env": lambda lab: _assert(
        read(lab, "vm209", "/opt/stacks/download-stack/.env").startswith(b"RADARR_API_KEY=")),
    "compose-literal-secret": lambda lab: _assert(
        b"${LASTFM_API_KEY}" not in read(lab, "vm210", "/opt/stacks/streaming-stack/"
                                                       "docker-compose.yml")
        and lab.state["secrets"]["LASTFM_API_KEY"].encode() in read(
            lab, "vm210", "/opt/stacks/streaming-stack/docker-compose.yml")),
    "route-to-retired": lambda lab: _assert(any(
        rule.get("hostname") == "jellyfin.ronny.works"
        and rule["service"] == f"http://{RETIRED}:8096"
        for t in standin(lab, "cloudflare")["tunnels"].values()
        for rule in t["config"]["ingress"])),
    "requests-200": lambda lab: _assert(
        lab.inside("http")["routes"]["requests.ronny.works"]["status"] == 200),
    "vm201-onboot": lambda lab: _assert(
        _vm201(lab) is not None and not _vm201(lab)["running"]
        and _vm201(lab)["config"]["onboot"] == 1),
    "vm201-running": lambda lab: _assert(_vm201(lab) is not None and _vm201(lab)["running"]),
    "infisical-key-missing": lambda lab: _assert(
        "LASTFM_SECRET" not in json.dumps(standin(lab, "infisical")["secrets"])),
    "posterizarr-docker-dns": lambda lab: _assert(json.loads(read(
        lab, "vm209", "/mnt/docker/posterizarr/config.json"))["JellyfinPart"]["JellyfinUrl"]
        == "http://jellyfin:8096"),
    "jellyseerr-localhost": lambda lab: _assert(json.loads(read(
        lab, "vm210", "/mnt/docker/jellyseerr/settings.json"))["jellyfin"]["ip"] == "127.0.0.1"),
    "node-exporter-down-vm210": lambda lab: _assert(
        lab.inside("prometheus")["192.168.1.210:9100"] == "down"
        and health(lab, "vm210", "node-exporter") == "healthy"),
    "host-key-rotated-vm209": lambda lab: _assert(
        ssh_result(lab, "vm209")["error"] == "host key changed"),
    "sshd-stopped-vm209": lambda lab: _assert(
        ssh_result(lab, "vm209")["error"] == "refused"
        and ssh_result(lab, "vm210")["rc"] == 0),
    "sshd-frozen-vm209": lambda lab: _assert(
        {lab_proc.state(p) for p in hosts.sshd_pids(lab.holder("vm209"))} == {"T"}
        and ssh_result(lab, "vm209")["error"] == "timeout"),
    "fstab-broken-line-vm210": lambda lab: _assert(
        b"/mnt/media nfs4 ro,vers=4.2,_netdev,nofail  # " in read(lab, "vm210", "/etc/fstab")
        and b"/mnt/docker nfs4 rw,vers=4.2,_netdev,nofail 0 0  # " in read(lab, "vm210",
                                                                        "/etc/fstab")
        and "ro" in mount(lab, "vm210", "/mnt/media")["options"]),
    "restart-loop-vm209": lambda lab: _assert(
        container(lab, "vm209", "unpackerr")["RestartCount"] >= 1
        and container(lab, "vm209", "unpackerr")["Config"]["Cmd"] == drift_host.LOOP_COMMAND
        and container(lab, "vm209", "unpackerr")["HostConfig"]["RestartPolicy"]["Name"]
        == "unless-stopped" and not container(lab, "vm209", "unpackerr")["Config"].get(
            "Healthcheck")),
    "hung-nfs-vm209": lambda lab: _assert("rc=124" in lab.ops(
        "lab", "ssh", "vm209", "--", "timeout -k 1 2 ls /mnt/docker/prowlarr; echo rc=$?",
        check=False).stdout),
    "proxmox-privsep-token": lambda lab: _assert(not any(
        e["type"] == "token" for e in standin(lab, "proxmox")["acl"])),
    "service-loopback-vm209": lambda lab: _assert(
        "127.0.0.1:8686" in container(lab, "vm209", "lidarr")["Config"]["Cmd"]
        and not any(a.startswith("100.") for a in container(lab, "vm209", "lidarr")["Config"]["Cmd"])
        and health(lab, "vm209", "lidarr") == "healthy"),
    "service-stopped-vm209": lambda lab: _assert(
        not container(lab, "vm209", "lidarr")["State"]["Running"]),
    "vm210-onboot-0": lambda lab: _assert(
        standin(lab, "proxmox")["vms"]["210"]["config"]["onboot"] == 0
        and standin(lab, "proxmox")["vms"]["210"]["running"]),
    "vm209-stopped": lambda lab: _assert(not standin(lab, "proxmox")["vms"]["209"]["running"]),
    "infisical-keys-imported": lambda lab: _imported(lab, gone=()),
    "infisical-import-key-missing": lambda lab: _imported(lab, gone=("LASTFM_SECRET",)),
}


def _imported(lab: Any, gone: tuple[str, ...]) -> None:
    """The moved keys live at download's path only, which streaming's path imports."""
    state = standin(lab, "infisical")
    pid, env = SSOT.infisical["project_id"], SSOT.infisical["environment"]
    by_stack = {sp.stack: sp.path for sp in SSOT.secret_paths}
    source, into = by_stack["download-stack"], by_stack["streaming-stack"]
    folders = state["secrets"][pid][env]
    moved = set(drift_api.IMPORTED) - set(gone)
    assert moved <= set(folders[source]) and not set(drift_api.IMPORTED) & set(folders[into])
    assert not set(gone) & set(folders[source])
    assert [(i["importEnv"], i["importPath"]) for i in state["imports"][pid][env][into]] == [
        (env, source)]


def _assert(ok: bool) -> None:
    assert ok


def test_every_scenario_has_a_check() -> None:
    assert {s.name for s in drift.SCENARIOS} == set(CHANGED)


def test_list_names_every_scenario_and_its_families(lab: Any) -> None:
    listed = json.loads(lab.ops("lab", "drift", "--list", "--json").stdout)
    assert [s["name"] for s in listed] == [s.name for s in drift.SCENARIOS]
    assert all((s["families"] or s["outcome"] == "pass") and s["description"] for s in listed)
    text = lab.ops("lab", "drift", "--list").stdout
    assert "media-rw-vm210" in text and "FAIL mounts" in text and "UNREACHABLE" in text


def test_unknown_scenario_is_a_clear_error(lab: Any) -> None:
    proc = lab.ops("lab", "drift", "no-such-drift", check=False)
    assert proc.returncode == 1 and "no drift scenario 'no-such-drift'" in proc.stderr


@pytest.mark.parametrize("scenario", drift.SCENARIOS, ids=[s.name for s in drift.SCENARIOS])
def test_drift_changes_what_it_says_and_reset_restores_the_clean_twin(lab: Any,
                                                                       scenario: Any) -> None:
    proc = lab.ops("lab", "drift", scenario.name, timeout=180)
    for canary in lab.status["canaries"]:
        assert canary not in proc.stdout + proc.stderr
    try:
        CHANGED[scenario.name](lab)
        # A snapshot reads every file: under a hung mount that read would block (the point
        # of that scenario), so the check above is its evidence.
        if scenario.name != "hung-nfs-vm209":
            assert diff(lab.clean, snapshot(lab.layout)) or scenario.name == "sshd-frozen-vm209"
    finally:
        lab.ops("lab", "reset", timeout=180)
    assert diff(lab.clean, snapshot(lab.layout)) == []
