"""Helpers for tests that run `ops` against the lab twin, as a person would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

OPS = [sys.executable, "-m", "opsverify.cli"]
REPO = Path(__file__).resolve().parents[2]


def ops(*args: str, timeout: float = 300, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
    """Run `ops ARGS…` as a person would, capturing its output."""
    proc = subprocess.run([*OPS, *args], check=False, capture_output=True, text=True, timeout=timeout,
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


def failing(results: dict[str, Any]) -> dict[str, list[str]]:
    """family -> ids of the tests that did not pass (a SKIP, with its reason, is not failing)."""
    out: dict[str, list[str]] = {}
    for t in results["tests"]:
        if t["outcome"] not in ("pass", "skip"):
            out.setdefault(t["family"], []).append(f"{t['id']}: {t['outcome']}: {t['message']}")
    return out
