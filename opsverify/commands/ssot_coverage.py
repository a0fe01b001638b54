"""`ops ssot coverage`: every SSOT entity with the gates that check it; none may go unchecked.

A subcommand of `ops ssot`: ssot_check registers it there with `add_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys

from opsverify import coverage, options
from opsverify.commands import load_ssot

DESCRIPTION = """\
List every SSOT entity (host, stack, container, mount, route, probe, Infisical path and key,
generated .env, wiring check, retired address, decommission record, scrape target, PromQL rule,
planned item, VM, waiver) as KIND NAME FILE:LINE GATE-IDS, from the family registry (no gate
is run). An entity no gate checks is named as FILE:LINE: KIND NAME."""


def add_parser(ssot_sub: argparse._SubParsersAction) -> None:
    p = ssot_sub.add_parser("coverage", description=DESCRIPTION,
                            help="list every SSOT entity with the gates that check it",
                            epilog="exit codes: 0 every entity checked, 1 an entity no gate "
                                   "checks, 2 invalid SSOT")
    options.add(p, "ssot")
    p.add_argument("--json", action="store_true",
                   help="print {entities: [{kind, name, file, line, gates}], total, checked, "
                        "unchecked, kinds} instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    s = load_ssot(args.ssot, "ops ssot coverage", strict=True)
    if s is None:
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
