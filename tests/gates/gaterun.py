"""Run `pytest gates/ --facts DIR` for many fact directories in one process: `gaterun.py JOB...`.

Each JOB is a directory holding facts/ (as --save-facts writes them) and env.json (environment
overrides); the run writes JOB/junit.xml and JOB/output.txt. One interpreter serves many runs,
so a drift matrix pays Python's and pytest's start-up once per worker, not once per drift.
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

ROOT = Path(__file__).resolve().parents[2]
# Only the installed plugins the gates' fixtures use: the others (hypothesis, anyio, benchmark,
# testinfra) cost more to load than the gates take to run. The unraisable-exception hook runs
# gc.collect() five times per session: 0.3 s in a long-lived process.
USED = ("pytest_metadata.plugin", "pytest_html.plugin", "no:unraisableexception")


def argv(job: Path) -> list[str]:
    """The pytest arguments of one job's gate run."""
    out = [str(ROOT / "gates"), "--facts", str(job / "facts"), "-q", "-p", "no:cacheprovider",
           f"--junitxml={job / 'junit.xml'}", "-o", "junit_family=xunit2"]
    for name in USED:
        out += ["-p", name]
    return out


def run(job: Path) -> int:
    """One gate run with the job's environment; output captured to job/output.txt."""
    env = json.loads((job / "env.json").read_text()) if (job / "env.json").exists() else {}
    saved = dict(os.environ)
    os.environ.update(env)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = int(pytest.main(argv(job)))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        (job / "output.txt").write_text(out.getvalue())
    return code


def main(jobs: list[str]) -> int:
    os.chdir(ROOT)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    codes = []
    for job in jobs:
        codes.append(run(Path(job)))
        gc.collect()
        gc.freeze()  # what one run leaves behind need not be scanned again by the next
    return max(codes, default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) and 0)
