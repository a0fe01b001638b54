"""The fact script against a real, private dockerd: containers read through GETs on its socket."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import docker
import pytest

from opsverify.facts.agent import docker as agent_docker
from opsverify.facts.agent import primitives
from opsverify.families import containers
from opsverify.redact import SECRET_NAME
from opsverify.ssot.model import Container, Port

BUSYBOX = "/bin/busybox"
pytestmark = pytest.mark.skipif(
    not (shutil.which("dockerd") and os.path.exists(BUSYBOX) and os.geteuid() == 0),
    reason="needs root, dockerd (docker.io) and /bin/busybox (busybox-static)")


def busybox_image() -> bytes:
    """A root filesystem tar holding busybox and the applets the containers use."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(BUSYBOX, "bin/busybox")
        for applet in ("sh", "sleep", "true", "false"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return buf.getvalue()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    """A dockerd of our own (own socket, data and exec roots, no bridge) with five containers."""
    root = tmp_path_factory.mktemp("dockerd")
    sock = root / "docker.sock"
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 -- dockerd writes it while it runs
    proc = subprocess.Popen(
        ["dockerd", "--host", f"unix://{sock}", "--data-root", str(root / "data"),
         "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
         "--bridge", "none", "--iptables=false", "--ip6tables=false", "--storage-driver", "vfs"],
        stdout=log, stderr=log)
    log.close()
    # an explicit API version: the client then does not ask the engine before it listens
    client = None
    try:
        client = docker.DockerClient(base_url=f"unix://{sock}", version="1.41", timeout=30)
        for _ in range(300):
            try:
                client.ping()
                break
            except Exception:  # noqa: BLE001 -- not listening yet
                time.sleep(0.1)
        client.api.import_image_from_data(busybox_image(), repository="opsverify/busybox",
                                          tag="test")
        image = "opsverify/busybox:test"
        check = {"interval": 500_000_000, "timeout": 1_000_000_000, "retries": 1}
        run = {"image": image, "detach": True, "network_mode": "none"}
        client.containers.run(**run, name="watchtower", command=["sleep", "3600"],
                              environment={"DOCKER_API_VERSION": "1.45", "WATCH_TOKEN": "x"},
                              healthcheck={**check, "test": ["CMD", "true"]})
        client.containers.run(**run, name="sick", command=["sleep", "3600"],
                              healthcheck={**check, "test": ["CMD", "false"]})
        client.containers.run(**run, name="plain", command=["sleep", "3600"])
        client.containers.run(**run, name="flappy", command=["sh", "-c", "exit 3"],
                              restart_policy={"Name": "always"})
        client.containers.create(image, name="stopped", command=["true"],
                                 network_mode="none").start()
        # a restart loop of a container without healthcheck: up 3 s, exits 1, restarted
        client.containers.run(**run, name="looping", command=["sh", "-c", "sleep 3; exit 1"],
                              restart_policy={"Name": "unless-stopped"})
        # whose environment a Recyclarr `!env_var` reads; one secret beside the URL
        client.containers.run(**run, name="recyclarr", command=["sleep", "3600"],
                              environment={"RADARR_URL": "http://radarr:7878",
                                           "SONARR_API_KEY": "0123456789abcdef"})
        # trailarr's P3 fix: UI on the host's 7667, the app's own port 7889; host networking
        # (as the lab twin runs it) keeps the mapping in HostConfig only
        # (the SDK refuses that pair client-side; dockerd keeps it with a warning)
        made = client.api.create_container(
            image, ["sleep", "3600"], name="trailarr", ports=[7889],
            host_config={"NetworkMode": "host",
                         "PortBindings": {"7889/tcp": [{"HostIp": "", "HostPort": "7667"}]}})
        client.api.start(made["Id"])
        for _ in range(150):
            states = {c.name: (c.attrs["State"].get("Health") or {}).get("Status")
                      for c in client.containers.list(all=True)}
            flappy = client.api.inspect_container("flappy")["RestartCount"]
            looping = client.api.inspect_container("looping")
            if states["watchtower"] == "healthy" and states["sick"] == "unhealthy" and flappy \
                    and looping["RestartCount"] and looping["State"]["Running"]:
                break
            time.sleep(0.2)
        yield sock
    finally:
        if client is not None:
            client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        unmount_below(root)


def unmount_below(root: Path) -> None:
    """Unmount what a dockerd left below root (its netns nsfs, a data-root bind), deepest first."""
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1].replace("\\040", " ") for line in f]
    for target in sorted((t for t in targets if t.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False)


def test_containers_through_the_engine_api(engine: Path) -> None:
    ctx = primitives.Context({"budget_s": 20, "files": {"docker_socket": str(engine)},
                           "secret_name": SECRET_NAME.pattern,
                           "pinned_env": {"watchtower": ["DOCKER_API_VERSION", "WATCH_TOKEN"]}},
                          time.monotonic() + 20)
    facts = agent_docker.docker_facts(ctx)["docker"]
    assert facts["ok"] is True and facts["error"] is None
    by_name = {c["name"]: c for c in facts["containers"]}
    assert sorted(by_name) == ["flappy", "looping", "plain", "recyclarr", "sick", "stopped",
                               "trailarr", "watchtower"]
    wt = by_name["watchtower"]
    assert (wt["state"], wt["health"], wt["has_healthcheck"], wt["image"]) == \
        ("running", "healthy", True, "opsverify/busybox:test")
    assert wt["env"] == {"DOCKER_API_VERSION": "1.45"}  # WATCH_TOKEN names a secret: not read
    assert len(wt["id"]) == 64 and wt["started_at"] and wt["restart_count"] == 0
    assert (by_name["sick"]["health"], by_name["sick"]["has_healthcheck"]) == ("unhealthy", True)
    assert (by_name["plain"]["health"], by_name["plain"]["has_healthcheck"]) == (None, False)
    assert by_name["stopped"]["state"] == "exited"
    assert by_name["flappy"]["restart_count"] >= 1
    assert by_name["flappy"]["state"] in ("restarting", "running", "exited")


def test_a_dead_socket_is_a_reason(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()  # the socket file stays, nobody listens: connection refused
    ctx = primitives.Context({"budget_s": 5, "files": {"docker_socket": str(path)}},
                          time.monotonic() + 5)
    facts = agent_docker.docker_facts(ctx)["docker"]
    assert facts == {"ok": False, "containers": [],
                     "error": f"Docker socket {path} refused the connection (dockerd down?)"}


def test_a_silent_socket_times_out(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()  # accepts, never answers
    try:
        ctx = primitives.Context({"budget_s": 1, "files": {"docker_socket": str(path)}},
                              time.monotonic() + 1)
        facts = agent_docker.docker_facts(ctx)["docker"]
    finally:
        listener.close()
    assert facts["ok"] is False and facts["error"] == f"Docker API on {path}: no answer in time"


def docker_facts(sock: Path) -> dict:
    ctx = primitives.Context({"budget_s": 20, "files": {"docker_socket": str(sock)}},
                          time.monotonic() + 20)
    return agent_docker.docker_facts(ctx)["docker"]


def ssot_container(name: str, ports: tuple = (), may_restart: bool = False) -> Container:
    return Container("download-stack", "vm209", name, "running", False,
                     "opsverify/busybox:test", ports, may_restart=may_restart)


def test_restart_loop_caught_while_running_fails(engine: Path) -> None:
    """A container without healthcheck, up between two restarts: only its count tells."""
    for _ in range(100):
        facts = docker_facts(engine)
        looping = next(c for c in facts["containers"] if c["name"] == "looping")
        if looping["state"] == "running" and looping["restart_count"] >= 1:
            break
        time.sleep(0.2)
    assert (looping["state"], looping["has_healthcheck"]) == ("running", False)
    assert looping["restart_policy"] == "unless-stopped" and facts["now"].endswith("Z")
    found = containers.check(ssot_container("looping"), {"docker": facts}).problems
    assert len(found) == 1 and found[0].startswith("restarted: up ")
    assert "a restart loop caught between restarts" in found[0]
    assert containers.check(ssot_container("looping", may_restart=True),
                            {"docker": facts}).problems == []
    assert containers.check(ssot_container("plain"), {"docker": facts}).problems == []
    # the count grew since a saved run, even long after the last start
    before = {"docker": {"ok": True, "containers": [{**looping, "restart_count": 0}]}}
    later = {"docker": {**facts, "now": "2099-01-01T00:00:00Z"}}
    assert containers.check(ssot_container("looping"), later, before).problems == [
        (f"restarted: restart count 0 at the previous saved run, {looping['restart_count']} "
         "now (the SSOT does not say may_restart)")]


def test_published_ports_under_host_networking(engine: Path) -> None:
    trailarr = next(c for c in docker_facts(engine)["containers"] if c["name"] == "trailarr")
    assert trailarr["network_mode"] == "host" and trailarr["ports_published"] == []
    assert trailarr["ports_configured"] == [{"container_port": 7889, "proto": "tcp",
                                             "host_ip": "", "host_port": 7667}]
    facts = {"docker": {"ok": True, "containers": [trailarr]}}
    assert containers.check(ssot_container("trailarr", (Port(7667, 7889),)),
                            facts).problems == []
    assert containers.check(ssot_container("trailarr", (Port(7667, 7667),)), facts).problems == [
        "published ports: expected 7667->7667/tcp, got 7667->7889/tcp (configured)"]


def test_one_variable_of_a_container_environment(engine: Path) -> None:
    ctx = primitives.Context({"budget_s": 20, "files": {"docker_socket": str(engine)}},
                          time.monotonic() + 20)
    lookup = agent_docker.container_env(ctx)
    assert lookup("recyclarr", "RADARR_URL") == (None, "http://radarr:7878")
    assert lookup("recyclarr", "NOT_SET") == (None, None)
    error, value = lookup("no-such-container", "RADARR_URL")
    assert value is None and error == "container no-such-container: HTTP 404 from Docker"
