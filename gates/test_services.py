"""services: each application answers its own API from the verifier's vantage point."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import services
from opsverify.findings import conclude
from opsverify.ssot.model import Probe


def test_probe(probe: Probe, facts: FactStore, evidence: Evidence) -> None:
    """Answered; status, body, JSON values and keys as the SSOT expects; a probe that made no
    connection is drift only if its host answers (its SSH facts, collected only then)."""
    conclude(services.check(probe, facts.get("http"),
                            host_answers=lambda: facts.get(f"host:{probe.host}")), evidence)
