"""Lab twin figures on this machine: `up` and `down` times, memory and idle CPU of the twin.

    sudo python bench/lab_bench.py [--name bench] [--runs 1]

Limits from the lab issue: up <= 90 s (packages installed), down <= 15 s, running twin
<= 2 GiB. Uses its own twin name, so it never touches a twin in use.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from opsverify.lab.layout import Layout
from opsverify.lab.proc import pids_in_netns

LIMITS = {"up_s": 90.0, "down_s": 15.0, "memory_mib": 2048.0}


def ops(*args: str) -> float:
    """Run `ops ARGS`; its wall time in seconds (fails loudly)."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "opsverify.cli", *args], capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        sys.exit(f"ops {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return time.monotonic() - t0


def memory_mib(layout: Layout) -> tuple[float, float, int]:
    """(PSS, RSS) in MiB summed over every process of the twin, and how many there are."""
    pss = rss = 0
    pids = pids_in_netns(layout.netns_path)
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Pss", "Rss"):
                    kib = int(value.split()[0])
                    pss += kib if key == "Pss" else 0
                    rss += kib if key == "Rss" else 0
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pss / 1024, rss / 1024, len(pids)


def twin_cpu(layout: Layout, seconds: float) -> float:
    """CPU the twin's processes used over `seconds`, in cores (reaped children included, so
    the short-lived health check runs count too)."""
    tick = os.sysconf("SC_CLK_TCK")

    def total() -> int:
        ticks = 0
        for pid in pids_in_netns(layout.netns_path):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        return ticks
    t0 = total()
    time.sleep(seconds)
    return (total() - t0) / tick / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="bench", help="twin name (default: bench)")
    parser.add_argument("--runs", type=int, default=1, help="up/down cycles (default 1)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("lab_bench: needs root, as the lab does")
    layout = Layout.of(args.name)
    ops("lab", "down", "--name", args.name)
    ups, downs, mems = [], [], []
    for run in range(args.runs):
        ups.append(ops("lab", "up", "--name", args.name, "--fresh"))
        time.sleep(5)  # let start-up work (first health checks, first scrapes) finish
        pss, rss, procs = memory_mib(layout)
        mems.append(pss)
        cores = twin_cpu(layout, 20)
        print(f"run {run + 1}: up {ups[-1]:.1f} s; twin memory {pss:.0f} MiB PSS "
              f"({rss:.0f} MiB RSS, {procs} processes); idle twin CPU {cores:.2f} cores "
              f"(health checks, scrapes; of {os.cpu_count()})")
        reset = ops("lab", "reset", "--name", args.name)
        print(f"run {run + 1}: reset of a clean twin {reset:.1f} s")
        downs.append(ops("lab", "down", "--name", args.name))
        print(f"run {run + 1}: down {downs[-1]:.1f} s")
    figures = {"up_s": statistics.median(ups), "down_s": statistics.median(downs),
               "memory_mib": statistics.median(mems)}
    for key, value in figures.items():
        verdict = "within" if value <= LIMITS[key] else "OVER"
        print(f"{key:<11} {value:8.1f}   limit {LIMITS[key]:.0f}   {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
