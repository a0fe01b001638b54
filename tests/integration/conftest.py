"""The twin, once per session, for tests that run the real gates against real processes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twinrun import OPS, lab_status, ops


@pytest.fixture(scope="session")
def twin() -> Iterator[dict[str, Any]]:
    """The lab twin's status; brought up (or reused when already up and healthy)."""
    if os.geteuid() != 0:
        pytest.skip("the lab twin needs root")
    was_up = lab_status() is not None
    ops("lab", "up", timeout=600)
    status = lab_status()
    assert status, "ops lab up succeeded but ops lab status says it is not up"
    yield Status(status)
    if not was_up:  # leave the machine as we found it (an idle twin still costs CPU)
        ops("lab", "down", timeout=300)


class Status(dict):
    """`ops lab status --json`; its repr hides the credentials and canaries it holds, because
    pytest prints a failing test's arguments."""

    def __repr__(self) -> str:
        return f"<twin {self.get('name')!r} status: {len(self.get('canaries', []))} secrets hidden>"


@pytest.fixture
def verify(tmp_path: Path, twin: dict[str, Any]):
    """Run `ops verify` inside the twin; return (exit code, results JSON, stdout+stderr)."""
    def run(*args: str, timeout: float = 300) -> tuple[int, dict[str, Any], str]:
        out = tmp_path / f"results-{len(list(tmp_path.iterdir()))}.json"
        proc = ops("lab", "exec", "--", *OPS, "verify", "--json", str(out), *args,
                   check=False, timeout=timeout)
        text = proc.stdout + proc.stderr
        assert out.exists(), f"no results written (exit {proc.returncode}):\n{text}"
        return proc.returncode, json.loads(out.read_text()), text
    return run




@pytest.fixture
def drifted(twin: dict[str, Any]) -> Iterator[Any]:
    """Apply lab drifts for one test; the twin is reset after it whatever happened."""
    def apply(*scenarios: str) -> None:
        for s in scenarios:
            ops("lab", "drift", s, timeout=180)
    try:
        yield apply
    finally:
        ops("lab", "reset", timeout=300)
