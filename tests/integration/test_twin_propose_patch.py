"""`ops verify --propose-patch` on the twin: after a drift the SSOT may accept (homarr's image),
the patch applies with `git apply` to a copy of ssot/, the copy passes `ops ssot check`, and
the drifted twin passes against it; a drift never to be accepted (vm210's media mount rw) is
listed as not patchable and makes no hunk."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from twinrun import REPO, ops

HOMARR = "containers::test_container[streaming-stack:homarr]"
MEDIA = "mounts::test_mount[vm210:/mnt/media]"


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=60)


def test_accepted_drift_patches_the_ssot_and_the_twin_passes_it(
        tmp_path: Path, verify: Any, drifted: Any) -> None:
    drifted("homarr-image")
    diff = tmp_path / "p.diff"
    code, res, out = verify("--propose-patch", str(diff))
    assert code == 1 and [t["id"] for t in res["tests"] if t["outcome"] == "fail"] == [
        "gates/test_containers.py::test_container[streaming-stack:homarr]"], out
    text = diff.read_text()
    assert f"@@ {HOMARR}\n" in text, text  # the hunk's heading names its gate
    assert "+        image: ghcr.io/homarr-labs/homarr:latest" in text and "not patchable" not in out
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "ssot", repo / "ssot")
    assert git(repo, "init", "-q").returncode == 0
    applied = git(repo, "apply", str(diff))
    assert applied.returncode == 0, applied.stderr
    check = ops("ssot", "check", "--ssot", str(repo / "ssot"), check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    code, res, out = verify("--ssot", str(repo / "ssot"))
    assert code == 0 and res["counts"]["fail"] == 0, out


def test_media_rw_on_vm210_is_not_patchable(tmp_path: Path, verify: Any, drifted: Any) -> None:
    drifted("media-rw-vm210")
    diff = tmp_path / "p.diff"
    code, _, out = verify("--family", "mounts", "--propose-patch", str(diff))
    assert code == 1, out
    line = (f"  not patchable  {MEDIA}: mode rw on the streaming VM's media mount must be fixed "
            "on the host")
    assert line in out.splitlines(), out
    text = diff.read_text()
    assert "diff --git" not in text and "\n@@" not in text, text
    assert f"#{line}" in text.splitlines(), text
