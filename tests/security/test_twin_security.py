"""Issue 11 on the lab twin: a frozen host behind a ProxyCommand or a ProxyJump costs one
timeout and only that host is UNREACHABLE; the host script writes nothing on a read-only root.

The twin is the one named by $OPSVERIFY_LAB_NAME (brought up if it is not, and brought down
again then). Every command runs inside the twin's network namespace (`ops lab exec`).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsverify.facts import commands
from opsverify.facts.host_params import remote_params
from opsverify.lab.hosts import signal_sshd
from opsverify.ssot import load

REPO = Path(__file__).resolve().parents[2]
OPS = [sys.executable, "-m", "opsverify.cli"]
RELAY = Path(__file__).with_name("freeze_relay.py")
TIMEOUT = 5.0


def ops(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*OPS, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"ops {' '.join(args)}: exit {proc.returncode}\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


class Status(dict):
    def __repr__(self) -> str:  # the status holds credentials; pytest prints arguments
        return f"<twin {self.get('name')!r}>"


@pytest.fixture(scope="module")
def twin() -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("the lab twin needs root")
    was = ops("lab", "status", "--json", check=False, timeout=60)
    was_up = was.returncode == 0 and json.loads(was.stdout).get("up")
    if not was_up:
        ops("lab", "up", timeout=900)
    yield Status(json.loads(ops("lab", "status", "--json", timeout=60).stdout))
    if not was_up:
        ops("lab", "down", timeout=300)


def verify(tmp: Path, ssh_config: Path | None = None) -> tuple[float, int, dict, str]:
    """`ops verify --timeout 5` inside the twin: (seconds, exit code, results, output)."""
    out = tmp / f"r{time.monotonic_ns()}.json"
    extra = ["env", f"OPSVERIFY_SSH_CONFIG={ssh_config}"] if ssh_config else []
    start = time.monotonic()
    proc = ops("lab", "exec", "--", *extra, *OPS, "verify", "-q", "--timeout", str(TIMEOUT),
               "--json", str(out), check=False, timeout=300)
    elapsed = time.monotonic() - start
    assert out.exists(), proc.stdout + proc.stderr
    return elapsed, proc.returncode, json.loads(out.read_text()), proc.stdout + proc.stderr


def with_first(config: Path, tmp: Path, block: str) -> Path:
    """A copy of the twin's ssh_config with block first (its options win, as in OpenSSH)."""
    copy = tmp / "ssh_config"
    copy.write_text(block + "\n" + config.read_text())
    return copy


def only_vm209_unreachable(code: int, results: dict, text: str) -> None:
    bad = [t for t in results["tests"] if t["outcome"] not in ("pass", "skip")]
    assert bad and all(t["outcome"] == "unreachable" for t in bad), bad[:5]
    assert {t["host"] for t in bad} == {"vm209"}
    assert set(results["unreachable"]) == {"host:vm209"}, results["unreachable"]
    assert code == 4, text[-2000:]


def test_host_frozen_behind_a_proxy_command_costs_one_timeout(twin: dict, tmp_path: Path) -> None:
    baseline, code, _, text = verify(tmp_path)
    assert code == 0, text[-3000:]
    vm209 = twin["hosts"]["vm209"]
    holder = vm209["pid"]
    config = with_first(Path(twin["ssh_config"]), tmp_path,
                        f"Host {vm209['ssh']['address']}\n  ProxyCommand {sys.executable} "
                        f"{RELAY} %h %p --twin-host {holder}")
    try:
        elapsed, code, results, text = verify(tmp_path, config)
    finally:
        signal_sshd(holder, signal.SIGCONT)
    print(f"\ntwin, vm209 frozen behind a ProxyCommand as the command was sent: "
          f"run {elapsed:.1f} s (clean run {baseline:.1f} s, timeout {TIMEOUT:g} s)")
    only_vm209_unreachable(code, results, text)
    assert "did not finish within 5 s" in results["unreachable"]["host:vm209"]
    assert elapsed <= baseline + TIMEOUT + 3, f"cost {elapsed - baseline:.1f} s"
    left = subprocess.run(["pgrep", "-af", "--", str(RELAY)], capture_output=True, text=True,
                          check=False).stdout
    assert str(RELAY) not in left.replace("pgrep", ""), left


def test_host_frozen_behind_a_proxy_jump_costs_one_timeout(twin: dict, tmp_path: Path) -> None:
    vm209, pve = twin["hosts"]["vm209"], twin["hosts"]["pve"]
    config = with_first(Path(twin["ssh_config"]), tmp_path,
                        f"Host {vm209['ssh']['address']}\n  ProxyJump {pve['ssh']['address']}")
    baseline, code, _, text = verify(tmp_path, config)
    assert code == 0, text[-3000:]  # through pve, healthy
    ops("lab", "drift", "sshd-frozen-vm209", timeout=180)
    try:
        elapsed, code, results, text = verify(tmp_path, config)
    finally:
        ops("lab", "reset", timeout=300)
    print(f"\ntwin, vm209's sshd frozen behind a ProxyJump via pve: run {elapsed:.1f} s "
          f"(clean run {baseline:.1f} s, timeout {TIMEOUT:g} s)")
    only_vm209_unreachable(code, results, text)
    assert elapsed <= baseline + TIMEOUT + 3, f"cost {elapsed - baseline:.1f} s"


READ_ONLY = """
set -e
mount --make-rprivate /
awk '{print $5}' /proc/self/mountinfo | while read -r mp; do
  mount --options-source disable -o remount,bind,ro "$(printf '%b' "$mp")" 2>/dev/null || true
done
for d in / /tmp /var/tmp /root /opt /mnt/docker; do
  if [ -d "$d" ] && touch "$d/.opsverify-ro-probe" 2>/dev/null; then
    echo "$d is writable" >&2; exit 99
  fi
done
exec "$@"
"""


def test_the_host_script_writes_nothing_with_a_read_only_root(twin: dict, tmp_path: Path) -> None:
    """vm209's real fact command, as root on the host, once as is and once where every file
    system is read-only: the same facts, so it needed to write nothing."""
    params = {**remote_params(load(twin.get("ssot")), "vm209"), "budget_s": 15}
    command = commands.facts_command(commands.script_payload(), params, 20)
    script = tmp_path / "ro.sh"
    script.write_text(READ_ONLY)

    def facts(read_only: bool) -> dict:
        wrapped = f"unshare -m sh {shlex.quote(str(script))} {command}" if read_only \
            else command
        proc = ops("lab", "ssh", "vm209", "--", wrapped, timeout=120)
        out = proc.stdout
        got = json.loads(out[out.rindex(commands.SENTINEL) + len(commands.SENTINEL):])
        for volatile in ("remote_s", "mounts"):  # the second run sees its mounts read-only
            got.pop(volatile)
        # Docker's answer changes by itself (its clock, health checks): names and states only
        got["docker"] = {c["name"]: c["state"] for c in got["docker"]["containers"]}
        return got

    normal = facts(False)
    read_only = facts(True)
    assert normal["config"] and normal["docker"] and normal["stale_refs"] is not None
    assert read_only == normal
    assert not read_only["errors"], read_only["errors"]
