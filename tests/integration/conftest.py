"""The twin, once per session, for tests that run the real gates against real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

OPS = [sys.executable, "-m", "opsverify.cli"]
REPO = Path(__file__).resolve().parents[2]


def ops(*args: str, timeout: float = 300, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
    """Run `ops ARGS…` as a person would, capturing its output."""
    proc = subprocess.run([*OPS, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"ops {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def lab_status() -> dict[str, Any] | None:
    proc = ops("lab", "status", "--json", check=False, timeout=60)
    if proc.returncode != 0:
        return None
    status = json.loads(proc.stdout)
    return status if status.get("up") else None


@pytest.fixture(scope="session")
def twin() -> Iterator[dict[str, Any]]:
    """The lab twin's status; brought up (or reused when already up and healthy)."""
    if os.geteuid() != 0:
        pytest.skip("the lab twin needs root")
    ops("lab", "up", timeout=600)
    status = lab_status()
    assert status, "ops lab up succeeded but ops lab status says it is not up"
    yield status


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


def failing(results: dict[str, Any]) -> dict[str, list[str]]:
    """family -> ids of the tests that did not pass."""
    out: dict[str, list[str]] = {}
    for t in results["tests"]:
        if t["outcome"] != "pass":
            out.setdefault(t["family"], []).append(f"{t['id']}: {t['outcome']}: {t['message']}")
    return out
