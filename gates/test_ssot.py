"""SSOT gates: every file matches its schema and every referential rule holds."""

from __future__ import annotations

from opsverify.ssot import RULES, Ssot
from opsverify.ssot.integrity import run_rule
from opsverify.ssot.loader import load_schemas, schema_problems
from opsverify.verdict import Drift


def test_schema(ssot: Ssot, ssot_file: str, evidence) -> None:
    """The file validates against ssot/schemas/<file>.schema.json."""
    schema = load_schemas(ssot.root / "schemas")[ssot_file]
    problems = schema_problems(ssot.files[ssot_file], schema)
    evidence.add("file", ssot.files[ssot_file].name)
    if problems:
        raise Drift("; ".join(map(str, problems)))


def test_rule(ssot: Ssot, ssot_rule: str, evidence) -> None:
    """One referential rule: references resolve, nothing active points at the past."""
    evidence.add("rule", RULES[ssot_rule].__doc__)
    problems = run_rule(ssot, ssot_rule)
    if problems:
        raise Drift(f"SSOT rule {ssot_rule}: " + "; ".join(map(str, problems)))
