"""Processes of the twin: run a command, start a daemon, find and stop what the twin started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .layout import LabError


def run(argv: Sequence[str], *, input: str | bytes | None = None, timeout: float = 120,
        env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to completion; raise LabError naming it and its stderr when it fails."""
    text = not isinstance(input, bytes)
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=text,
                              timeout=timeout, env=env, check=False)
    except FileNotFoundError:
        raise LabError(f"command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv[:4])}: no answer within {timeout:.0f} s") from None
    if check and proc.returncode:
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        tail = " | ".join(err.strip().splitlines()[-3:])
        raise LabError(f"{' '.join(argv[:6])}: exit {proc.returncode}: {tail}")
    return proc


def spawn(argv: Sequence[str], log: Path, pidfile: Path, env: dict[str, str] | None = None) -> int:
    """Start a daemon that outlives this process; its output goes to `log`; returns its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, close_fds=True, env=env)
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_for_line(log: Path, prefix: str, pid: int, timeout: float) -> str:
    """The first line of `log` starting with `prefix`; LabError if the daemon dies or is slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        if not alive(pid):
            raise LabError(f"process {pid} exited before it was ready; see {log}: "
                           + " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:]))
        time.sleep(0.05)
    raise LabError(f"process {pid} not ready within {timeout:.0f} s; see {log}")


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    return state(pid) not in (None, "Z")


def state(pid: int) -> str | None:
    """R, S, T (stopped), Z (zombie)... from /proc; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def ns_inode(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, PermissionError):
        return None
    return st.st_dev, st.st_ino


def pids_in_netns(netns: Path) -> list[int]:
    """Every process whose network namespace is `netns` (a /run/netns/NAME file)."""
    want = ns_inode(netns)
    if want is None:
        return []
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and ns_inode(f"/proc/{entry.name}/ns/net") == want:
            out.append(int(entry.name))
    return out


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line mentions `text` (the state directory): leftovers of a crash."""
    needle = text.encode()
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                if needle in fh.read():
                    out.append(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return out


def own_lineage() -> set[int]:
    """This process and its ancestors: never to be killed by `down`, even inside the twin."""
    out, pid = set(), os.getpid()
    while pid > 1:
        out.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ValueError, IndexError):
            break
    return out


def stop(pids: Iterable[int], grace: float, sig: int = signal.SIGTERM) -> None:
    """Send `sig`, wait up to `grace` seconds, then SIGKILL whatever is left, and wait for it."""
    pids = [p for p in set(pids) - own_lineage() if alive(p)]
    signal_each(pids, sig)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if alive(p)]
        time.sleep(0.05)
    signal_each(pids, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if alive(p)]
        time.sleep(0.02)


def signal_each(pids: Iterable[int], sig: int) -> None:
    """Signal each process; one that ended since it was found (in /proc) is no error."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def netns_argv(netns: Path) -> list[str]:
    """Prefix that runs a command in the twin's network namespace (keeps the machine's /sys)."""
    return ["nsenter", f"--net={netns}"]


def host_argv(pid: int) -> list[str]:
    """Prefix that runs a command inside a twin host: its mount, UTS and network namespaces."""
    return ["nsenter", "-t", str(pid), "-m", "-u", "-n"]
