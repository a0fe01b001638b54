"""`ops`: the command line. Each command lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define `register(subparsers)`; each adds one command with `func=run(args) -> int`.
COMMANDS = [
    "opsverify.commands.ssot_check",
]

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
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
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
