"""wiring: cross-service references and app settings in the apps' config files."""

from __future__ import annotations

import pytest

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import wiring
from opsverify.findings import conclude
from opsverify.ssot.model import ConfigCheck, Ssot


def test_config(config_check: ConfigCheck, ssot: Ssot, facts: FactStore, evidence: Evidence) -> None:
    """Every SSOT key holds its value; references use Docker DNS same-VM, Tailscale cross-VM."""
    host = facts.get(f"host:{config_check.host}")
    check = wiring.check(ssot, config_check, host)
    if check.skip_reason:  # `when: configured` and the app has not been configured yet
        evidence.add("config", check.seen.get("config"))
        pytest.skip(check.skip_reason)
    conclude(check, evidence)
