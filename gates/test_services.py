"""services: each application answers its own API from the verifier's vantage point; one that
does not is asked again from its own host: service down, or path broken."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import services
from opsverify.findings import conclude
from opsverify.ssot.model import Probe


def test_probe(probe: Probe, facts: FactStore, evidence: Evidence) -> None:
    """Answered; status, body, JSON values and keys as the SSOT expects; a probe the verifier
    got no answer to is compared with the same GET from its host (its SSH facts, collected only
    then): no answer there either is "service down", an answer there "path broken"."""
    conclude(services.check(probe, facts.get("http"),
                            host_answers=lambda: facts.get(f"host:{probe.host}")), evidence)
