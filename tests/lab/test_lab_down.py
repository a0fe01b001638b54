"""`ops lab up` after a crash rebuilds; `ops lab down` leaves nothing of the twin behind."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from opsverify.lab import proc as lab_proc
from opsverify.lab.layout import Layout


@pytest.mark.lab_teardown
def test_up_after_a_crash_cleans_and_converges(lab: Any) -> None:
    state = lab.state
    dockerd = state["hosts"]["vm210"]["dockerd_pid"]
    os.kill(dockerd, signal.SIGKILL)  # as if the machine lost the engine mid-run
    os.kill(state["services"]["cloudflare"], signal.SIGKILL)
    lab_proc.stop([dockerd], grace=0)
    out = lab.ops("lab", "up", timeout=300).stdout
    assert "cleaning up the previous twin" in out and "ready" in out
    assert lab.layout.read_state()["secrets"] != state["secrets"]  # fresh canaries


@pytest.mark.lab_teardown
def test_down_leaves_no_process_mount_namespace_address_or_file(lab: Any) -> None:
    layout: Layout = lab.layout
    state = layout.read_state()
    netns = layout.netns_path
    pids = set(lab_proc.pids_in_netns(netns))
    assert len(pids) > 30  # holders, sshd, engines, shims, containers, stand-ins, prometheus
    cgroups = sorted(Path("/sys/fs/cgroup").glob(f"*/{layout.cgroup_parent}-*"))
    out = lab.ops("lab", "down", timeout=60)
    assert "removed" in out.stdout and not out.stderr.strip()
    assert not [p for p in pids if lab_proc.alive(p)]
    assert not netns.exists()
    assert layout.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                              text=True, check=True).stdout
    assert not layout.root.exists()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(layout.root) not in mounts and layout.netns not in mounts
    assert not [c for c in cgroups if c.exists()]
    for h in state["hosts"].values():
        assert not lab_proc.alive(h["pid"])
    leftovers = [p for p in lab_proc.pids_mentioning(str(layout.root)) if lab_proc.alive(p)]
    assert leftovers == [] or all(
        p in lab_proc.own_lineage() for p in leftovers)
    again = lab.ops("lab", "down", timeout=60)  # idempotent
    assert again.returncode == 0
    status = lab.ops("lab", "status", "--json", check=False)
    assert status.returncode == 3
