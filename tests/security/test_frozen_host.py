"""Issue 11, hole 2: a frozen host behind a ProxyCommand or a ProxyJump costs one timeout.

Real sshd processes on 127.0.0.1; the host "freezes" (every sshd process of it SIGSTOPped)
just as the fact command is sent, which is when paramiko waits without a timeout. Each run is
a child process, so that the time until the interpreter exits is measured, not only the time
until the collector gives up: an abandoned worker thread used to keep it alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from facts.test_host_collect import SSHD, Sshd, params
from freeze_relay import descendants

from opsverify.facts import ssh_proxy

pytestmark = pytest.mark.skipif(not Path(SSHD).exists(), reason="needs openssh-server")
RELAY = Path(__file__).with_name("freeze_relay.py")
TIMEOUT = 3.0
SLACK = 1.5  # interpreter exit, the proxy group's kill grace, a loaded machine

CHILD = """
import json, sys, time
from pathlib import Path
from opsverify.facts.hosts import Target, collect
from opsverify.facts.store import FactStore
from opsverify.settings import Settings
a = json.loads(sys.argv[1])
settings = Settings(timeout=a["timeout"], ssh_config=Path(a["ssh_config"]))
target = Target("lab", a["address"], "root", a["port"])
store = FactStore({"host:lab": lambda: collect(target, a["params"], settings)},
                  deadline=a["timeout"])
t0 = time.monotonic()
store.prefetch(["host:lab"])
facts = None if store.unreachable() else store.get("host:lab")
print(json.dumps({"unreachable": store.unreachable(), "prefetch_s": time.monotonic() - t0,
                  "started": t0, "hostname": facts and facts["hostname"]}), flush=True)
"""


def run_child(ssh_config: Path, address: str, port: int, tmp: Path) -> tuple[float, dict]:
    """(seconds from the start of collection until the child process exited, what it printed).

    CLOCK_MONOTONIC is the machine's: the child's start and the parent's end compare."""
    arg = json.dumps({"timeout": TIMEOUT, "ssh_config": str(ssh_config), "address": address,
                      "port": port, "params": params(tmp)})
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True,
                              text=True, timeout=40, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("the run never ended: a frozen host behind a proxy hung it (killed at 40 s)")
    ended = time.monotonic()
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return ended - got["started"], got


def thaw(sshd: Sshd) -> None:
    assert sshd.proc is not None
    for pid in descendants(sshd.proc.pid):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


@pytest.fixture
def sshd(tmp_path: Path):
    d = Sshd(tmp_path).start()
    yield d
    thaw(d)
    d.stop()


def lingering(marker: str) -> list[str]:
    """Processes whose command line holds marker (a proxy left behind)."""
    out = subprocess.run(["pgrep", "-af", "--", marker], capture_output=True, text=True,
                         check=False).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


@pytest.mark.parametrize("wrapped", [False, True], ids=["proxy", "sh-wrapped-proxy"])
def test_host_frozen_behind_a_proxy_command_costs_one_timeout(sshd: Sshd, tmp_path: Path,
                                                              wrapped: bool) -> None:
    assert sshd.proc is not None
    relay = f"{sys.executable} {RELAY} %h %p --tree {sshd.proc.pid}"
    # `sh -c '...; true'`: the relay is the shell's child, which SIGTERM to the shell misses
    command = f"sh -c \"{relay}; true\"" if wrapped else relay
    sshd.ssh_config.write_text(sshd.ssh_config.read_text().replace(
        "Host 127.0.0.1\n", f"Host 127.0.0.1\n  ProxyCommand {command}\n"))
    elapsed, got = run_child(sshd.ssh_config, "127.0.0.1", sshd.port, tmp_path)
    print(f"\nhost frozen behind a {'sh-wrapped ' if wrapped else ''}ProxyCommand: "
          f"UNREACHABLE after {got['prefetch_s']:.2f} s, the process exited {elapsed:.2f} s "
          "after collection began "
          f"(timeout {TIMEOUT:g} s)")
    assert "did not finish within 3 s" in got["unreachable"]["host:lab"], got
    assert got["prefetch_s"] < TIMEOUT + 1.0
    assert elapsed < TIMEOUT + SLACK
    assert not lingering(str(RELAY)), "the proxy outlived the run"


def _jump_config(tmp: Path, jump: Sshd, target: Sshd, extra: str = "") -> Path:
    """An ssh_config with the jump host and the target behind it (ProxyJump), both pinned."""
    known = tmp / "known_hosts"
    known.write_text(jump.known_hosts.read_text() + target.known_hosts.read_text())
    config = tmp / "ssh_config"
    blocks = []
    for name, d in (("jump", jump), ("target", target)):
        blocks.append(f"Host {name}\n  HostName 127.0.0.1\n  Port {d.port}\n  User root\n"
                      f"  IdentityFile {d.root / 'user_key'}\n  UserKnownHostsFile {known}\n"
                      + ("  ProxyJump jump\n" + extra if name == "target" else ""))
    config.write_text("".join(blocks))
    return config


@pytest.fixture
def jump(tmp_path: Path):
    (tmp_path / "jump").mkdir()
    d = Sshd(tmp_path / "jump", "AllowTcpForwarding local\n").start()
    yield d
    d.stop()


def test_proxy_jump_is_used(sshd: Sshd, tmp_path: Path) -> None:
    (tmp_path / "closed").mkdir()
    closed = Sshd(tmp_path / "closed", "AllowTcpForwarding no\n").start()
    try:
        config = _jump_config(tmp_path, closed, sshd)
        _, got = run_child(config, "target", sshd.port, tmp_path)
    finally:
        closed.stop()
    # The jump refuses to forward: the host cannot be reached, though it is up and direct
    # access would work. Before, paramiko ignored ProxyJump and connected directly.
    assert "proxy command" in got["unreachable"].get("host:lab", ""), got


def test_host_frozen_behind_a_proxy_jump_costs_one_timeout(sshd: Sshd, jump: Sshd,
                                                           tmp_path: Path) -> None:
    config = _jump_config(tmp_path, jump, sshd)
    _, got = run_child(config, "target", sshd.port, tmp_path)
    assert got["unreachable"] == {} and got["hostname"], got  # through the jump, healthy
    sshd.signal(signal.SIGSTOP)  # the target's sshd: the jump connects, no banner comes
    elapsed, got = run_child(config, "target", sshd.port, tmp_path)
    print(f"\nhost frozen behind a ProxyJump: UNREACHABLE after {got['prefetch_s']:.2f} s, "
          f"the process exited {elapsed:.2f} s after collection began (timeout {TIMEOUT:g} s)")
    assert "within 3 s" in got["unreachable"]["host:lab"], got
    assert elapsed < TIMEOUT + SLACK
    assert not lingering(f"-W [127.0.0.1]:{sshd.port}"), "ssh -W outlived the run"


def test_proxy_close_ends_the_whole_process_group() -> None:
    """sh starts a child that ignores SIGTERM: close() still ends both, and recv() says EOF."""
    proxy = ssh_proxy.Proxy(["sh", "-c", "trap '' TERM; sleep 299.123 & wait"])
    time.sleep(0.2)
    start = time.monotonic()
    proxy.close()
    cost = time.monotonic() - start
    assert proxy.recv(10) == b""
    assert proxy.process.poll() is not None
    assert not lingering("sleep 299.123"), "a proxy's child outlived close()"
    assert cost < ssh_proxy.GRACE + 0.5
    proxy.release()


def test_proxy_jump_argv() -> None:
    assert ssh_proxy.proxy_argv({"proxyjump": "admin@bastion:2222"}, "10.0.0.5", 22, "/c") == [
        "ssh", "-F", "/c", "-o", "BatchMode=yes", "-W", "[10.0.0.5]:22", "-l", "admin",
        "-p", "2222", "--", "bastion"]
    assert ssh_proxy.proxy_argv({"proxyjump": "a,b@[fd00::1]:22"}, "h", 2, None) == [
        "ssh", "-o", "BatchMode=yes", "-W", "[h]:2", "-J", "a", "-l", "b", "-p", "22", "--",
        "fd00::1"]
    assert ssh_proxy.proxy_argv({"proxycommand": "nc %h 22", "proxyjump": "x"}, "h", 22,
                                None) == ["nc", "%h", "22"]
    assert ssh_proxy.proxy_argv({"proxyjump": "none"}, "h", 22, None) is None
