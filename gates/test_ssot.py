"""ssot: every SSOT file matches its schema and every referential rule holds."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.families import ssot as family
from opsverify.findings import conclude
from opsverify.ssot import Ssot


def test_schema(ssot: Ssot, ssot_file: str, evidence: Evidence) -> None:
    """The file validates against ssot/schemas/<file>.schema.json."""
    conclude(family.check_file(ssot, ssot_file), evidence)


def test_rule(ssot: Ssot, ssot_rule: str, evidence: Evidence) -> None:
    """One referential rule: references resolve, nothing active points at the past."""
    conclude(family.check_rule(ssot, ssot_rule), evidence)
