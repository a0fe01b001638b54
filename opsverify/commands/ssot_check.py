"""`ops ssot check`: validate the SSOT and say what is wrong, file, line and path."""

from __future__ import annotations

import argparse

from opsverify import families, options
from opsverify.commands import load_ssot, ssot_capture, ssot_coverage
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
    options.add(check, "ssot")
    check.set_defaults(func=run)
    ssot_coverage.add_parser(ssot_sub)
    ssot_capture.add_parser(ssot_sub)


def run(args: argparse.Namespace) -> int:
    s = load_ssot(args.ssot, "ops ssot check", strict=True)
    if s is None:
        return 2
    hosts = len(s.active_hosts)
    print(f"ops ssot check: OK ({len(s.files)} files, {len(RULES)} rules; {hosts} active hosts, "
          f"{len(s.containers)} containers, {len(s.mounts)} mounts, {len(s.routes)} routes, "
          f"{len(s.config_checks)} wiring checks)")
    gate_ids = [g.id for g in families.gates(s)]
    for w in waivers.unmatched(s, gate_ids):
        print(f"{w.where}: stale waiver {w.gate!r} ({w.owner}): matches no gate of this SSOT")
    return 0
