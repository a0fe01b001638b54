"""Run `ops` in a child process as a person would, on facts built for the test (never a host)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "gates"))

from factsgen import BEFORE_HOLD, Facts, clean_facts, mutated, write_facts

from opsverify.ssot import load

SSOT = load()
CLEAN = clean_facts(SSOT)
CREDENTIALS = ("CLOUDFLARE_API_TOKEN", "INFISICAL_CLIENT_ID", "INFISICAL_CLIENT_SECRET",
               "INFISICAL_TOKEN", "PROXMOX_API_TOKEN")
__all__ = ["BEFORE_HOLD", "CLEAN", "SSOT", "Facts", "env", "facts_dir", "mount", "mutated", "ops"]


def env(**extra: str) -> dict[str, str]:
    """The environment of a child `ops`: no inherited settings or credentials, network guarded."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("OPSVERIFY_") and k not in CREDENTIALS}
    return {**base, "OPSVERIFY_NETGUARD": "1", "OPSVERIFY_NOW": BEFORE_HOLD, **extra}


def ops(*args: str | Path, environ: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`ops ARGS` in a child process; stdout and stderr kept apart."""
    return subprocess.run([sys.executable, "-m", "opsverify.cli", *map(str, args)],
                          capture_output=True, text=True, env=environ or env(), cwd=cwd or ROOT,
                          timeout=timeout, check=False)


def facts_dir(path: Path, change: Callable[[Facts], Any] | None = None) -> Path:
    """Clean facts, with one change applied, saved as --save-facts writes them."""
    return write_facts(mutated(CLEAN, change) if change else CLEAN, path)


def mount(f: Facts, host: str, target: str) -> dict[str, Any]:
    return next(m for m in f[f"host:{host}"]["mounts"] if m["target"] == target)


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def chromium(page: Path, fragment: str = "") -> tuple[str, list[str]]:
    """(rendered DOM, console messages) of a local page in headless Chromium, offline.

    Skips the calling test when Chromium is not installed (apt-get install chromium).
    """
    import re
    import shutil
    import tempfile

    import pytest

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        p = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=3000", "--dump-dom",
             page.resolve().as_uri() + (f"#{fragment}" if fragment else "")],
            capture_output=True, text=True, timeout=120, check=False)
    console = [ln for ln in p.stderr.splitlines() if re.search(r":CONSOLE[:(]", ln)]
    return p.stdout, console
