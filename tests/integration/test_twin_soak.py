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

    def outcome(run: dict, test: str) -> str:
        return run["tests"][test][2]

    mount_failed = [r["k"] for r in done if outcome(r, MOUNT_TEST) == "fail"]
    assert mount_failed, "the drift never showed"
    # The mount failed only between the drift and the reset.
    assert before < min(mount_failed) and max(mount_failed) <= reset_after + 1
    assert drifted_from - 1 <= max(mount_failed)
    # Besides it, only radarr failed (its health is "starting" right after the restart), and
    # only after the restart; runs overlapping the reset may find a host UNREACHABLE (the
    # reset restarts sshd), which is not a failure.
    other_fails = {(r["k"], t) for r in done for t, v in r["tests"].items()
                   if v[2] == "fail" and t != MOUNT_TEST}
    assert all(k > before and "download-stack:radarr" in t for k, t in other_fails), other_fails
    assert all(v[2] in ("pass", "fail", "unreachable", "skip") for r in done
               for v in r["tests"].values())  # skip: the SSOT's planned items

    html = tmp_path / "soak.html"
    report = ops("soak", "report", "twin", "--dir", str(soak_dir), "--html", str(html),
                 timeout=120, check=False)
    assert report.returncode == 1, report.stdout + report.stderr  # the verdict: FAIL
    text = html.read_text()
    assert '<span class="verdict FAIL">FAIL</span>' in text
    assert "radarr restarted 1x" in text, "the restart is not named in the verdict"
    assert "vm210:/mnt/media" in text
    dom, console = chromium(html)
    assert console == [], console
    assert "<svg" in dom
