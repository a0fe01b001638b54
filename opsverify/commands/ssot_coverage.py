"""`ops ssot coverage`: every SSOT entity with the gates that check it; none may go unchecked.

A subcommand of `ops ssot`: ssot_check registers it there with `add_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from opsverify import coverage
from opsverify import ssot as ssot_pkg


def register(sub: argparse._SubParsersAction) -> None:
    """No command of its own: `ops ssot` (ssot_check) adds `coverage` with add_parser()."""


def add_parser(ssot_sub: argparse._SubParsersAction) -> None:
    p = ssot_sub.add_parser(
        "coverage", help="list every SSOT entity with the gates that check it",
        description="List every SSOT entity (host, stack, container, mount, route, probe, "
                    "Infisical path and key, generated .env, wiring check, retired address, "
                    "decommission record, scrape target, PromQL rule, planned item, VM, waiver) "
                    "as KIND NAME FILE:LINE GATE-IDS, from the family registry (no gate is "
                    "run). An entity no gate checks is named as FILE:LINE: KIND NAME.",
        epilog="exit codes: 0 every entity checked, 1 an entity no gate checks, 2 invalid SSOT")
    p.add_argument("--ssot", metavar="DIR", type=Path, default=None,
                   help="SSOT directory (default: $OPSVERIFY_SSOT or the shipped ssot/)")
    p.add_argument("--json", action="store_true",
                   help="print {entities: [{kind, name, file, line, gates}], total, checked, "
                        "unchecked, kinds} instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        s = ssot_pkg.load(args.ssot)
    except ssot_pkg.SsotInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        n = len(exc.problems)
        print(f"ops ssot coverage: invalid SSOT, {n} problem{'s' if n != 1 else ''} "
              "(ops ssot check)", file=sys.stderr)
        return 2
    rows = coverage.coverage(s)
    missing = coverage.unchecked(rows)
    if args.json:
        print(json.dumps(coverage.as_json(rows), indent=2))
    else:
        print_table(rows)
        for e in missing:
            print(coverage.problem(e), file=sys.stderr)
        print(f"ops ssot coverage: {coverage.summary(rows)}")
    return 1 if missing else 0


def print_table(rows: list[coverage.Row]) -> None:
    """KIND NAME FILE:LINE GATE-IDS, one line per entity; columns aligned within each kind."""
    kind = max((len(r.entity.kind) for r in rows), default=0)
    for k in coverage.KINDS:
        mine = [r.entity for r in rows if r.entity.kind == k]
        name = max((len(e.name) for e in mine), default=0)
        where = max((len(e.where) for e in mine), default=0)
        for r in (r for r in rows if r.entity.kind == k):
            e = r.entity
            gates = " ".join(r.gates) or "UNCHECKED"
            print(f"{e.kind:<{kind}}  {e.name:<{name}}  {e.where:<{where}}  {gates}")
