"""coverage: every SSOT entity is the subject of at least one gate (`ops ssot coverage` lists
which). It reads no facts: the gates are derived from the registry, as the run itself derives
them."""

from __future__ import annotations

from opsverify import coverage
from opsverify.findings import Findings
from opsverify.ssot import Ssot

from . import Case, Family


def check(ssot: Ssot) -> Findings:
    """Each entity no gate checks is a finding, named with its file:line."""
    c = Findings("SSOT coverage")
    rows = coverage.coverage(ssot)
    c.saw("coverage", {"summary": coverage.summary(rows), "kinds": coverage.counts(rows)})
    for e in coverage.unchecked(rows):
        c.require(False, coverage.problem(e), "checked by", "a gate", None)
    return c


FAMILY = Family(
    "coverage", per="SSOT",
    checks=("every SSOT entity (host, stack, container, mount, route, probe, Infisical path and "
            "key, generated `.env`, wiring check, retired address, decommission record, scrape "
            "target, PromQL rule, planned item, VM, waiver) is the subject of at least one gate; "
            "one that none checks fails with its file:line (`ops ssot coverage` lists them all)"),
    subjects={"ssot_coverage": lambda s: [Case("ssot", "", "ssot")]})
