"""Run `pytest gates/ --facts DIR` for many fact directories in one process: `gaterun.py JOB...`.

Each JOB is a directory holding facts/ (as --save-facts writes them), env.json (environment
overrides) and optionally args.json (more pytest arguments); the run writes JOB/junit.xml and
JOB/output.txt. One interpreter serves many runs, so a drift matrix pays Python's and pytest's
start-up, and the SSOT's validation, once per worker, not once per drift.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import sys
from pathlib import Path

import pytest

from opsverify import netguard
from opsverify import ssot as ssot_pkg

ROOT = Path(__file__).resolve().parents[2]
# Only the installed plugins the gates' fixtures use: the others (hypothesis, anyio, benchmark,
# testinfra) cost more to load than the gates take to run. The unraisable-exception hook runs
# gc.collect() five times per session: 0.3 s in a long-lived process.
USED = ("no:unraisableexception",)


def argv(job: Path) -> list[str]:
    """The pytest arguments of one job's gate run."""
    out = [str(ROOT / "gates"), "--facts", str(job / "facts"), "-q", "-p", "no:cacheprovider",
           f"--junitxml={job / 'junit.xml'}", "-o", "junit_family=xunit2"]
    if (job / "args.json").exists():
        out += json.loads((job / "args.json").read_text())
    for name in USED:
        out += ["-p", name]
    return out


def run(job: Path) -> None:
    """One gate run with the job's environment; output captured to job/output.txt."""
    env = json.loads((job / "env.json").read_text()) if (job / "env.json").exists() else {}
    saved = dict(os.environ)
    os.environ.update(env)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            pytest.main(argv(job))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        (job / "output.txt").write_text(out.getvalue())


def load_ssot_once() -> None:
    """Every job of a worker verifies the same SSOT: parse and validate it once, not per job."""
    original, cache = ssot_pkg.load, {}

    def load(root: Path | str | None = None, *, strict: bool = True) -> ssot_pkg.Ssot:
        key = (str(root), strict)
        if key not in cache:
            cache[key] = original(root, strict=strict)
        return cache[key]
    ssot_pkg.load = load


def main(jobs: list[str]) -> None:
    if os.environ.get(netguard.ENV) == "1":
        netguard.install()  # replayed facts never need the network; make sure of it
    os.chdir(ROOT)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    load_ssot_once()
    for job in jobs:
        run(Path(job))
        gc.collect()
        gc.freeze()  # what one run leaves behind need not be scanned again by the next


if __name__ == "__main__":
    main(sys.argv[1:])  # exits 0: failing gates are what a drift run is for; junit.xml tells
