"""reachability: every active host answers, is the host the SSOT means, and is on the tailnet."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import reachability
from opsverify.findings import conclude
from opsverify.ssot.model import Host


def test_host(host: Host, facts: FactStore, evidence: Evidence) -> None:
    """Facts collected within the timeout; hostname; Tailscale Running with the SSOT's IP."""
    conclude(reachability.check(host, facts.get(f"host:{host.name}")), evidence)
