"""coverage: every SSOT entity is checked by at least one gate of this registry."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.families import coverage
from opsverify.findings import conclude
from opsverify.ssot import Ssot


def test_every_entity_checked(ssot_coverage: str, ssot: Ssot, evidence: Evidence) -> None:
    """Each host, container, mount, ..., waiver of the SSOT is the subject of a gate."""
    conclude(coverage.check(ssot), evidence)
