"""ssot: every SSOT file matches its schema and every referential rule holds."""

from __future__ import annotations

from opsverify.findings import Findings
from opsverify.ssot import RULES, Ssot
from opsverify.ssot.integrity import run_rule
from opsverify.ssot.loader import load_schemas, schema_problems

from . import Case, Family


def check_file(ssot: Ssot, stem: str) -> Findings:
    """The file validates against ssot/schemas/<file>.schema.json."""
    c = Findings(f"SSOT file {stem}")
    c.saw("file", ssot.files[stem].name)
    for problem in schema_problems(ssot.files[stem], load_schemas(ssot.root / "schemas")[stem]):
        c.require(False, str(problem))
    return c


def check_rule(ssot: Ssot, rule: str) -> Findings:
    """One referential rule: references resolve, nothing active points at the past."""
    c = Findings(f"SSOT rule {rule}")
    c.saw("rule", RULES[rule].__doc__)
    for problem in run_rule(ssot, rule):
        c.require(False, str(problem))
    return c


FAMILY = Family(
    "ssot", per="SSOT file / rule",
    checks=("schema valid; every reference resolves (every `host:` of every file names a host of "
           "hosts.yaml); retired addresses only where they belong"),
    subjects={"ssot_file": lambda s: (Case(stem, "", stem) for stem in sorted(s.files)),
              "ssot_rule": lambda s: (Case(name, "", name) for name in sorted(RULES))})
