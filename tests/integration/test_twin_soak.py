"""A short soak on the twin: a restart and a drift mid-way, and a report that tells exactly that."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from twinrun import OPS, REPO, ops

sys.path.insert(0, str(REPO / "tests" / "verify"))
from opsrun import chromium

MOUNT_TEST = "gates/test_mounts.py::test_mount[vm210:/mnt/media]"


def runs(ledger: Path) -> list[dict]:
    if not ledger.exists():
        return []
    lines = [ln for ln in ledger.read_text().splitlines() if ln.endswith("}")]
    return [r for r in map(json.loads, lines) if r.get("type") == "run"]


def wait_runs(ledger: Path, n: int, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = runs(ledger)
        if len(done) >= n:
            return done
        time.sleep(0.3)
    raise AssertionError(f"fewer than {n} soak runs after {timeout} s")


def test_short_soak_reports_the_restart_and_the_drift(twin, tmp_path) -> None:
    soak_dir = tmp_path / "soak"
    ledger = soak_dir / "twin.jsonl"
    soak = subprocess.Popen([*OPS, "lab", "exec", "--", *OPS, "soak", "--every", "2s", "--for",
                             "20s", "--name", "twin", "--dir", str(soak_dir)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sock = twin["hosts"]["vm209"]["docker_socket"]
    try:
        before = len(wait_runs(ledger, 2))
        subprocess.run(["docker", "-H", f"unix://{sock}", "restart", "-t", "1", "radarr"],
                       check=True, capture_output=True, timeout=60)
        ops("lab", "drift", "media-rw-vm210", timeout=120)
        drifted_from = len(wait_runs(ledger, before + 2)) + 1
        ops("lab", "reset", timeout=300)
        reset_after = len(runs(ledger))
        out, _ = soak.communicate(timeout=120)
    finally:
        if soak.poll() is None:
            soak.kill()
            ops("lab", "reset", timeout=300)
    assert soak.returncode == 1, out  # the soak saw drift
    done = runs(ledger)
    assert len(done) >= 5
    failed = [r["k"] for r in done if r["tests"][MOUNT_TEST][2] != "pass"]
    assert failed, "the drift never showed"
    # Every run that failed lies in the window between the drift and the reset.
    assert before < min(failed) and max(failed) <= reset_after + 1, (before, failed, reset_after)
    assert drifted_from - 1 <= max(failed)
    others = {t for r in done for t, v in r["tests"].items() if v[2] != "pass"} - {MOUNT_TEST}
    assert not others, others

    html = tmp_path / "soak.html"
    ops("soak", "report", "twin", "--dir", str(soak_dir), "--html", str(html), timeout=120)
    text = html.read_text()
    assert '<span class="verdict FAIL">FAIL</span>' in text
    assert "radarr restarted 1x" in text, "the restart is not named in the verdict"
    assert "vm210:/mnt/media" in text
    dom, console = chromium(html)
    assert console == [], console
    assert "<svg" in dom
