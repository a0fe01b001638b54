"""`ops ssot check`: validate the SSOT and say what is wrong, file, line and path."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opsverify import families
from opsverify import ssot as ssot_pkg
from opsverify.commands import ssot_coverage
from opsverify.ssot import waivers
from opsverify.ssot.integrity import RULES


def register(sub: argparse._SubParsersAction) -> None:
    ssot = sub.add_parser("ssot", help="work with the SSOT (single source of truth)",
                          description="Work with the SSOT directory (ssot/*.yaml).")
    ssot_sub = ssot.add_subparsers(dest="ssot_command", metavar="SUBCOMMAND", required=True)
    check = ssot_sub.add_parser(
        "check", help="validate every SSOT file and reference",
        description="Validate every SSOT file against its JSON Schema, then check that every "
                    "reference resolves. Prints one line per problem as FILE:LINE PATH: MESSAGE.",
        epilog="A waiver whose pattern matches no gate of the SSOT is reported as stale (a "
               "warning: the SSOT stays valid).\n\nexit codes: 0 valid, 2 invalid")
    check.add_argument("--ssot", metavar="DIR", type=Path, default=None,
                       help="SSOT directory (default: $OPSVERIFY_SSOT or the shipped ssot/)")
    check.set_defaults(func=run)
    ssot_coverage.add_parser(ssot_sub)


def run(args: argparse.Namespace) -> int:
    try:
        s = ssot_pkg.load(args.ssot)
    except ssot_pkg.SsotInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        n = len(exc.problems)
        print(f"ops ssot check: {n} problem{'s' if n != 1 else ''}", file=sys.stderr)
        return 2
    hosts = len(s.active_hosts)
    print(f"ops ssot check: OK ({len(s.files)} files, {len(RULES)} rules; {hosts} active hosts, "
          f"{len(s.containers)} containers, {len(s.mounts)} mounts, {len(s.routes)} routes, "
          f"{len(s.config_checks)} wiring checks)")
    gate_ids = [g.id for g in families.gates(s)]
    for w in waivers.unmatched(s, gate_ids):
        print(f"{w.where}: stale waiver {w.gate!r} ({w.owner}): matches no gate of this SSOT")
    return 0
