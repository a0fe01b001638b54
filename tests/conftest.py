"""The project's own tests: a network guard first, so no test can reach the real homelab."""

from __future__ import annotations

import subprocess

import pytest

from opsverify import netguard
from opsverify.ssot import load


def _ssot_addresses() -> set[str]:
    s = load(strict=False)
    found = {a for h in s.hosts.values() for a in h.addresses} | set(s.retired_addresses)
    return found | {t.address for t in s.scrape_targets}


def pytest_configure(config: pytest.Config) -> None:
    # Guard this process and, through the environment, every `ops` process a test starts.
    netguard.install()
    if netguard.in_private_namespace():
        return
    # The machine's own namespace must never hold an SSOT address: if the lab twin ever
    # leaked one here, traffic meant for the twin could leave the machine.
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True,
                         check=True).stdout
    leaked = sorted(a for a in _ssot_addresses() if f" {a}/" in out)
    if leaked:
        raise pytest.UsageError(
            f"network guard: SSOT addresses {leaked} are configured in the machine's own network "
            "namespace; run `ops lab down` (or remove them) before testing")

