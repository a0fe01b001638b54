"""ops verify --wait on the twin: a drift that is put right while it waits ends green, and the
summary says how long the gate took."""

from __future__ import annotations

import re
import subprocess
from typing import Any

from twinrun import OPS, REPO, ops


def test_wait_until_a_drift_is_reset(twin: Any) -> None:
    ops("lab", "drift", "media-rw-vm210", timeout=180)
    # `ops lab drift X && (sleep 8; ops lab reset) & ops verify --wait 90s`
    reset = subprocess.Popen(["sh", "-c", "sleep 8 && exec \"$@\" lab reset", "sh", *OPS],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        p = ops("lab", "exec", "--", *OPS, "verify", "--wait", "90s", "--interval", "2",
                check=False, timeout=240)
    finally:
        reset.wait(timeout=300)
    assert reset.returncode == 0
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    m = re.search(r"green after ([\d.]+) s: mounts::test_mount\[vm210:/mnt/media\]", p.stdout)
    assert m and 6 <= float(m.group(1)) <= 90, out
    assert "not green yet (mounts::test_mount[vm210:/mnt/media]: FAIL)" in out
    assert re.search(r"^ops verify: \d+/\d+ PASS, 3 SKIP", p.stdout, re.MULTILINE), out
