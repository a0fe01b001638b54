"""Render the soak report of a 72-hour soak (864 runs at 5 min) and print how long and how much.

    python bench/soak_report_bench.py [--runs 864] [--tests 190] [--keep DIR] [--repeat N]
    python bench/soak_report_bench.py --ledger DIR/bench.jsonl [--repeat N]

The ledger is generated from the gate ids the shipped SSOT parametrizes (collected from
gates/), topped up with variants of them to --tests per run, with a few flapping gates, an
unreachable host for an hour, and two container restarts (--ledger: an existing ledger, not
generated: a 30-day one, 8,640 runs, takes half a minute to write). The render is timed
--repeat times (min and median: other processes share the CPU). Target: a 30-day ledger
(--runs 8640 --tests 110) renders in <= 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opsverify.outputs.files import write_atomic
from opsverify.soak import analysis, ledger, report
from opsverify.ssot import load


class _Ids:
    """A pytest plugin that keeps (nodeid, family, host) of every collected gate."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from fixtures.ssot import item_family, item_host

        self.items = [(i.nodeid, item_family(i), item_host(i)) for i in session.items]


def gate_ids(n: int) -> list[tuple[str, str, str]]:
    ids = _Ids()
    with contextlib.redirect_stdout(io.StringIO()):
        pytest.main([str(ROOT / "gates"), "--collect-only", "-qq", "-p", "no:cacheprovider",
                     "--rootdir", str(ROOT)], plugins=[ids])
    real = ids.items
    out = list(real)
    i = 0
    while len(out) < n:  # more gates than the SSOT has today: variants of the real ones
        nodeid, family, host = real[i % len(real)]
        out.append((f"{nodeid}-v{i // len(real) + 2}", family, host))
        i += 1
    print(f"gate ids: {len(real)} collected from gates/, {len(out)} per run")
    return out


def write_ledger(path: Path, runs: int, ids: list[tuple[str, str, str]]) -> None:
    rng = random.Random(72)
    ssot = load()
    boxes = [(c.host, c.name, c.state) for c in ssot.containers]
    flappers = {ids[i][0] for i in rng.sample(range(len(ids)), 5)}
    start = datetime(2026, 2, 8, 14, 0, tzinfo=UTC)
    restarts = {(boxes[3][0], boxes[3][1]): 300, (boxes[20][0], boxes[20][1]): 700}
    ledger.create(path, {"name": "bench", "created": start.isoformat(), "every_s": 300.0,
                         "for_s": 300.0 * runs, "expected_runs": runs,
                         "flags": [], "ssot": str(ssot.root), "host": "bench", "may_restart": []})
    with open(path, "a", encoding="utf-8") as f:
        for k in range(1, runs + 1):
            t = start + timedelta(seconds=300 * (k - 1))
            down = 400 <= k < 412  # vm209 unreachable for an hour
            tests = {}
            for nodeid, family, host in ids:
                outcome = "pass"
                if down and host == "vm209":
                    outcome = "unreachable"
                elif nodeid in flappers and rng.random() < 0.02:
                    outcome = "fail"
                msg = None if outcome == "pass" else f"{nodeid}: expected ro, got rw"
                tests[nodeid] = [family, host, outcome, round(rng.uniform(0.001, 0.05), 4), msg]
            containers: dict[str, dict] = {}
            for host, name, state in boxes:
                if down and host == "vm209":
                    continue
                restarted_at = restarts.get((host, name), runs + 1)
                again = k >= restarted_at
                containers.setdefault(host, {})[name] = {
                    "id": f"{hash((host, name)) & 0xFFFFFFFFFFFF:012x}",
                    "state": "running" if state == "running" else "exited",
                    "health": "healthy" if state == "running" else None,
                    "restart_count": 1 if again else 0,
                    "started_at": (start + timedelta(seconds=300 * restarted_at) if again
                                   else start).isoformat()}
            counts = {o: sum(v[2] == o for v in tests.values())
                      for o in ("pass", "fail", "unreachable", "error", "skip")}
            run = {"type": "run", "k": k, "started": t.isoformat(),
                   "finished": (t + timedelta(seconds=2)).isoformat(),
                   "duration_s": round(rng.uniform(1.8, 3.5), 3),
                   "exit_code": 1 if counts["fail"] else 4 if counts["unreachable"] else 0,
                   "error": None, "counts": counts, "relaxations": [],
                   "unreachable": {"host:vm209": "ssh: timeout"} if down else {},
                   "tests": tests, "containers": containers}
            f.write(json.dumps(run, separators=(",", ":")) + "\n")


def render_once(path: Path, out: Path) -> tuple[float, float, str, int, int]:
    """(read+analyse seconds, total seconds, verdict, runs, gates) of one render to out."""
    t0 = time.perf_counter()
    header, runs = ledger.read(path)
    soak = analysis.analyse(header, runs)
    t1 = time.perf_counter()
    write_atomic(out, report.render(soak))
    return t1 - t0, time.perf_counter() - t0, soak.verdict()[0], soak.done, len(soak.gates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=864)
    p.add_argument("--tests", type=int, default=190)
    p.add_argument("--keep", type=Path, default=None, help="keep ledger and report here")
    p.add_argument("--ledger", type=Path, default=None,
                   help="render this ledger (a --keep one) instead of generating one")
    p.add_argument("--repeat", type=int, default=1, help="time the render this many times")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = a.keep or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        if a.ledger:
            path = a.ledger
        else:
            path = d / "bench.jsonl"
            path.unlink(missing_ok=True)
            write_ledger(path, a.runs, gate_ids(a.tests))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = d / "bench.html"
        times = [render_once(path, out) for _ in range(max(1, a.repeat))]
        verdict, done, gates = times[0][2:]
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()  # a second render, traced: tracing slows it down
        report.render(analysis.analyse(*ledger.read(path)))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        total = sorted(t[1] for t in times)
        read = sorted(t[0] for t in times)
        print(f"ledger: {done} runs x {gates} gates, "
              f"{path.stat().st_size / 1e6:.1f} MB")
        print(f"render x{len(total)}: min {total[0]:.2f} s, median "
              f"{statistics.median(total):.2f} s, max {total[-1]:.2f} s (read+analyse min "
              f"{read[0]:.2f} s, median {statistics.median(read):.2f} s), target <= 2 s")
        print(f"report: {out.stat().st_size / 1e3:.0f} kB, verdict {verdict}")
        print(f"peak memory: {peak / 1e6:.1f} MB traced in the render, max RSS "
              f"{rss_before / 1e3:.0f} MB before the renders, {rss_after / 1e3:.0f} MB after")


if __name__ == "__main__":
    main()
