"""observability: Prometheus scrapes the SSOT's targets and the SSOT's PromQL rules hold."""

from __future__ import annotations

import pytest

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import observability
from opsverify.findings import conclude
from opsverify.ssot.model import Planned, Rule, ScrapeTarget, Ssot


def test_scrape_target(scrape_target: ScrapeTarget, facts: FactStore, evidence: Evidence) -> None:
    """An active target with the SSOT's job and instance exists and is up."""
    conclude(observability.check_target(scrape_target, facts.get("prometheus")), evidence)


def test_no_retired_target(ssot: Ssot, facts: FactStore, evidence: Evidence) -> None:
    """No active target points at a retired address."""
    conclude(observability.check_retired(ssot.retired_addresses, facts.get("prometheus")),
             evidence)


def test_promql_rule(promql_rule: Rule, facts: FactStore, evidence: Evidence) -> None:
    """The query returns values and every value satisfies the SSOT's op and threshold."""
    conclude(observability.check_rule(promql_rule, facts.get("prometheus")), evidence)


def test_planned(planned: Planned, evidence: Evidence) -> None:
    """A scope item not built yet: SKIP with its reason, so it is never silently absent."""
    evidence.add("planned", {"phase": planned.phase, "item": planned.item})
    pytest.skip(f"planned ({planned.phase}): {planned.item}: {planned.reason}")
