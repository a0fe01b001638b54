"""stale_refs: no retired address anywhere under a stack host's config roots."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import stale_refs
from opsverify.findings import conclude
from opsverify.ssot.model import Ssot


def test_stale_address(stale_scan: tuple[str, str], ssot: Ssot, facts: FactStore,
                       evidence: Evidence) -> None:
    """The retired address appears in no file, line or database row of the host's config."""
    host, address = stale_scan
    conclude(stale_refs.check(ssot, host, address, facts.get(f"host:{host}")), evidence)
