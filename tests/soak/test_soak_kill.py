"""`ops soak` killed with SIGKILL ten times at random moments: no completed run lost or torn."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from opsrun import ROOT, env

from opsverify.soak import ledger

EXPECTED = 20  # --every 0.3s --for 6s


def start(d: Path, first: bool) -> subprocess.Popen:
    args = (["--name", "kill", "--every", "0.3s", "--for", "6s", "--family", "ssot"] if first
            else ["--resume", "kill"])
    return subprocess.Popen([sys.executable, "-m", "opsverify.cli", "soak", "--dir", str(d),
                             *args], cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def completed(path: Path) -> list[int]:
    """The run numbers in the ledger, after checking every complete line is whole JSON."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines[:-1])
    return [r["k"] for r in ledger.read(path)[1]]


def orphans(workdir: Path) -> list[int]:
    """Processes still running a soak iteration in workdir (a verify child outliving the soak)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(workdir).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_sigkill_at_random_moments_loses_no_completed_run(tmp_path: Path) -> None:
    seed = int(os.environ.get("OPSVERIFY_KILL_SEED") or time.time())
    rng = random.Random(seed)
    path = tmp_path / "kill.jsonl"
    workdir = tmp_path / ".kill.work"
    done, torn = 0, 0
    for i in range(10):
        proc = start(tmp_path, first=not path.exists())
        time.sleep(rng.uniform(0.5, 5.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not path.exists():
            continue  # killed before it created its ledger: nothing to lose yet
        torn += not path.read_bytes().endswith(b"\n")
        ks = completed(path)
        assert ks == list(range(1, len(ks) + 1)), (seed, i, ks)
        assert len(ks) >= done, (seed, i)
        done = len(ks)
        deadline = time.time() + 5
        while orphans(workdir) and time.time() < deadline:
            time.sleep(0.1)
        assert not orphans(workdir), f"a verify child outlived its soak (seed {seed})"
    finish = start(tmp_path, first=not path.exists())
    assert finish.wait(timeout=300) == 0, f"seed {seed}"
    assert completed(path) == list(range(1, EXPECTED + 1)), f"seed {seed}"
    print(f"seed {seed}: {done} runs done across 10 kills, {torn} torn tails repaired")
