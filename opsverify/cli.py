"""`ops`: the command line. Each command lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from opsverify import commands, netguard

# Commands people reach for first are listed first in --help.
ORDER = ["verify", "demo", "lab", "soak", "serve", "ssot_check"]

EXIT_CODES = """exit codes:
  0  every gate passed
  1  at least one gate FAILED (drift)
  2  invalid SSOT or usage
  4  no FAIL, but at least one host or API was UNREACHABLE"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ops",
        description="opsverify: drift gates for the media stack, checked against the SSOT.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # A module in opsverify/commands defines `register(subparsers)`, adding one command whose
    # `func(args) -> int` is its exit code; one without it is a subcommand its parent adds
    # (ssot_capture and ssot_coverage: `ops ssot capture|coverage`, from ssot_check).
    names = [m.name for m in pkgutil.iter_modules(commands.__path__)]
    for name in sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        module = importlib.import_module(f"opsverify.commands.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if os.environ.get(netguard.ENV) == "1":
        netguard.install()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("ops: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
