"""The lab tests' twin: brought up once per session (reused, reset to clean, when one is up).

It has its own name (`labtest`, namespace opsverify-labtest), so these tests never touch a
twin someone else is using; a session holds a lock on it, and a second session running at the
same time gets a private twin instead. `test_lab_down.py` removes it last;
OPSVERIFY_LAB_KEEP=1 keeps it.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsverify.lab import prereq
from opsverify.lab.layout import Layout

LOCKS = Path("/run/lock")


def _claim(name: str) -> tuple[str, Any]:
    """`name` if no other session uses it, else a private twin name; and the lock held."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    for candidate in (name, f"lt{os.getpid()}"):
        fh = open(LOCKS / f"opsverify-lab-{candidate}.lock", "w")  # noqa: SIM115 (held)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return candidate, fh
        except BlockingIOError:
            fh.close()
    raise RuntimeError("cannot lock a lab twin name")


NAME, _LOCK = _claim(os.environ.get("OPSVERIFY_LAB_TEST_NAME", "labtest"))
REPO = Path(__file__).resolve().parents[2]
KEEP = os.environ.get("OPSVERIFY_LAB_KEEP") == "1"


def ops(*args: str, timeout: float = 300, check: bool = True, input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`ops ARGS` for the test twin, as a person would run it (`env`: variables to change)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPSVERIFY_LAB_DIR", "OPSVERIFY_LAB_NAME")} | (env or {})
    proc = subprocess.run([sys.executable, "-m", "opsverify.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, input=input,
                          check=False)
    if check and proc.returncode:
        raise AssertionError(f"ops {' '.join(args)}: exit {proc.returncode}\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


@dataclass(repr=False)  # the status holds the canaries: a failure report must not show them
class Lab:
    layout: Layout
    status: dict[str, Any]
    clean: dict[str, Any]

    def __repr__(self) -> str:
        return f"Lab({self.layout.name!r} at {self.layout.root})"

    def ops(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        return ops(*args[:2], "--name", NAME, *args[2:], **kw)

    def inside(self, *args: str) -> Any:
        """Run tests/lab/inside.py in the twin's network; its JSON output."""
        proc = self.ops("lab", "exec", "--", sys.executable, str(REPO / "tests/lab/inside.py"),
                        *args, timeout=120)
        return json.loads(proc.stdout)

    @property
    def state(self) -> dict[str, Any]:
        return self.layout.read_state()

    def holder(self, host: str) -> int:
        return self.state["hosts"][host]["pid"]

    def sqlite_rows(self, host: str, path: str, table: str) -> list[dict[str, Any]]:
        """Rows of a SQLite table in a host file (read from a copy: SQLite resolves
        /proc/PID/root to the machine's own /)."""
        data = (Path(f"/proc/{self.holder(host)}/root") / path.lstrip("/")).read_bytes()
        with tempfile.NamedTemporaryFile(suffix=".db") as tmp:
            tmp.write(data)
            tmp.flush()
            con = sqlite3.connect(tmp.name)
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute(f'SELECT * FROM "{table}"')]
            con.close()
        return rows


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The twin is removed by the tests marked lab_teardown: they run after every other test.
    items.sort(key=lambda item: item.get_closest_marker("lab_teardown") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab_teardown: removes the lab twin; runs last")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The test twin, up and clean; `clean` is its snapshot every reset must reproduce."""
    missing = prereq.missing()
    if missing:
        pytest.skip("lab twin prerequisites: " + "; ".join(missing))
    from opsverify.lab.snapshot import snapshot
    layout = Layout.of(NAME)
    ops("lab", "up", "--name", NAME, timeout=300)
    status = json.loads(ops("lab", "status", "--name", NAME, "--json").stdout)
    yield Lab(layout, status, snapshot(layout))
    if not KEEP and (layout.root.exists() or layout.netns_path.exists()):
        ops("lab", "down", "--name", NAME, check=False)
