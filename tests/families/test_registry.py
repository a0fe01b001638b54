"""The family registry is the one declaration every list of families derives from."""

from __future__ import annotations

import re
from pathlib import Path

from opsverify import families
from opsverify.commands import verify
from opsverify.lab import drift
from opsverify.ssot import load

REPO = Path(__file__).resolve().parents[2]


def test_every_family_has_its_gate_file_and_every_gate_file_a_family() -> None:
    gate_files = {p.stem.removeprefix("test_") for p in (REPO / "gates").glob("test_*.py")}
    assert gate_files == set(families.names())


def test_readme_family_table_is_the_registry() -> None:
    text = (REPO / "README.md").read_text()
    table = text.split("### What is checked", 1)[1].split("\n\n", 2)[1]
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in table.splitlines()[2:]]
    want = [[f.name, f.per, f.checks] for f in families.registry().values()]
    assert rows == want, "README's family table differs from the registry:\n" + "\n".join(
        f"| {' | '.join(r)} |" for r in want)


def test_derived_lists() -> None:
    assert verify.families() == families.names()
    assert set(drift.HOST_FAMILIES) == {n for n, f in families.registry().items() if f.host_facts}


def test_each_subject_has_cases_with_unique_ids_on_the_shipped_ssot() -> None:
    ssot = load()
    for arg, cases in families.subjects().items():
        ids = [c.id for c in cases(ssot)]
        assert ids and len(ids) == len(set(ids)), arg
        assert all(re.fullmatch(r"\S+", i) for i in ids), arg


def test_gate_ids_without_pytest_are_the_ones_pytest_collects() -> None:
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "pytest", "gates", "--collect-only", "-q",
                        "-p", "no:cacheprovider"], cwd=REPO, capture_output=True, text=True,
                       check=True)
    collected = {line.removeprefix("gates/test_").replace(".py::", "::", 1)
                 for line in p.stdout.splitlines() if line.startswith("gates/")}
    assert {g.id for g in families.gates(load())} == collected
