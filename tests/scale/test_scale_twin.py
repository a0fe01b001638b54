"""A twin of a generated 10-host SSOT: synthetic hosts on one shared engine, each seeing only its
own containers through its own socket; verify finds exactly the planted drift; a frozen host
costs only itself; reset restores the engine's containers; down leaves nothing.

Its own twin (`$OPSVERIFY_LAB_TEST_NAME-n10`, default `scaletest-n10`), up once per module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsverify.lab import engine, prereq, shared_engine
from opsverify.lab import hosts as lab_hosts
from opsverify.lab import proc as lab_proc
from opsverify.lab.generate import generate
from opsverify.lab.layout import Layout
from opsverify.lab.snapshot import diff, snapshot
from opsverify.ssot import load

REPO = Path(__file__).resolve().parents[2]
NAME = os.environ.get("OPSVERIFY_LAB_TEST_NAME", "scaletest")[:12] + "-n10"


def ops(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPSVERIFY_LAB_DIR", "OPSVERIFY_LAB_NAME")}
    p = subprocess.run([sys.executable, "-m", "opsverify.cli", *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=timeout, check=False)
    if check and p.returncode:
        raise AssertionError(f"ops {' '.join(args)}: exit {p.returncode}\n{p.stderr[-2000:]}")
    return p


def verify(tmp: Path, *flags: str) -> dict[str, Any]:
    out = tmp / "r.json"
    out.unlink(missing_ok=True)
    ops("lab", "exec", "--name", NAME, "--", sys.executable, "-m", "opsverify.cli", "verify",
        "-q", "--json", str(out), *flags, check=False)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    missing = prereq.missing()
    if missing:
        pytest.skip("lab twin prerequisites: " + "; ".join(missing))
    root = tmp_path_factory.mktemp("scale")
    hints = generate(10, root / "ssot")
    ops("lab", "up", "--name", NAME, "--ssot", str(root / "ssot"), "--fresh")
    layout = Layout.of(NAME)
    yield {"layout": layout, "hints": hints, "ssot": load(root / "ssot"), "tmp": root}
    if layout.root.exists() or layout.netns_path.exists():
        ops("lab", "down", "--name", NAME, check=False)


def test_synthetic_hosts_share_one_engine_behind_their_own_sockets(twin) -> None:
    layout, ssot = twin["layout"], twin["ssot"]
    state = layout.read_state()
    assert lab_proc.alive(state["engine"]["dockerd_pid"])
    assert lab_proc.alive(state["engine"]["proxy_pid"])
    status = json.loads(ops("lab", "status", "--name", NAME, "--json").stdout)
    for name in twin["hints"]["shared_engine"]:
        assert "dockerd_pid" not in state["hosts"][name]  # no engine of its own
        sock = Path(status["hosts"][name]["docker_socket"])
        assert sock == layout.docker_socket(name) and sock.is_socket()
        seen = {c.name: c.status for c in engine.client(layout, name).containers.list(all=True)}
        want = {c.name: "running" if c.state == "running" else "exited"
                for c in ssot.containers if c.host == name}
        assert seen == want
    # the VMs of the base keep their own engines
    assert all(lab_proc.alive(state["hosts"][h]["dockerd_pid"]) for h in ("vm209", "vm210"))


def test_verify_finds_the_planted_drift_and_nothing_else_on_synthetic_hosts(twin) -> None:
    layout, hints = twin["layout"], twin["hints"]
    synthetic = set(hints["shared_engine"])
    before = {h: (layout.logs / f"{h}-sshd.log").read_text().count("Accepted publickey")
              for h in synthetic}
    res = verify(twin["tmp"])
    after = {h: (layout.logs / f"{h}-sshd.log").read_text().count("Accepted publickey")
             for h in synthetic}
    assert {h: after[h] - before[h] for h in synthetic} == {h: 1 for h in synthetic}
    assert res["unreachable"] == {}
    bad = {(t["family"], t["host"]) for t in res["tests"]
           if t["host"] in synthetic and t["outcome"] != "pass"}
    planted = hints["plant"][0]
    assert bad == {("stale_refs", planted["host"])}
    families = {t["family"] for t in res["tests"] if t["host"] in synthetic}
    assert families >= {"reachability", "mounts", "containers", "services", "routes", "secrets",
                        "stale_refs", "wiring", "observability"}


def test_a_frozen_host_is_its_only_unreachable(twin) -> None:
    layout = twin["layout"]
    victim = twin["hints"]["shared_engine"][3]
    holder = layout.read_state()["hosts"][victim]["pid"]
    lab_hosts.signal_sshd(holder, signal.SIGSTOP)
    try:
        res = verify(twin["tmp"])  # the default timeout: a busy machine answers within it
    finally:
        lab_hosts.signal_sshd(holder, signal.SIGCONT)
    assert list(res["unreachable"]) == [f"host:{victim}"], res["unreachable"]
    hit = {t["host"] for t in res["tests"] if t["outcome"] == "unreachable"}
    assert hit == {victim}


def test_reset_brings_back_the_shared_engines_containers(twin) -> None:
    layout, hints = twin["layout"], twin["hints"]
    clean = snapshot(layout)
    cl = shared_engine.client(layout)
    first, second = hints["shared_engine"][:2]
    cl.containers.get(f"{first}.radarr").remove(force=True)
    cl.containers.get(f"{second}.jellyfin").stop(timeout=1)
    assert diff(clean, snapshot(layout))
    ops("lab", "reset", "--name", NAME)
    assert diff(clean, snapshot(layout)) == []


def test_the_socket_refuses_writes(twin) -> None:
    import docker.errors
    name = twin["hints"]["shared_engine"][0]
    with pytest.raises(docker.errors.APIError) as err:
        engine.client(twin["layout"], name).containers.get("radarr").stop()
    assert err.value.response.status_code == 403


def test_down_removes_the_shared_engine_too(twin) -> None:
    layout = twin["layout"]
    pids = set(lab_proc.pids_in_netns(layout.netns_path))
    ops("lab", "down", "--name", NAME)
    assert not [p for p in pids if lab_proc.alive(p)]
    assert not layout.root.exists() and not layout.netns_path.exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{layout.cgroup_parent}-shared*"))
    assert not list(Path("/sys/fs/cgroup").glob(f"{layout.cgroup_parent}-shared*"))
