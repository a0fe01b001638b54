"""`ops ssot capture HOST...`: SSOT YAML from what the hosts run (opsverify/ssot/capture.py).

A subcommand of `ops ssot`: ssot_check registers it there with `add_parser`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opsverify import options
from opsverify.commands import load_ssot
from opsverify.facts.saved import replay_problem
from opsverify.settings import Settings

DESCRIPTION = """\
Read the live facts of each HOST (the same single read-only SSH command
`ops verify` runs; the SSOT must name the host in hosts.yaml, which says
how to reach it) and write the SSOT entries it shows, in the shipped
files' layout and style, for review and merging into ssot/."""

EPILOG = """\
examples:
  ops lab exec -- ops ssot capture vm209 vm210 --out captured/
  ops ssot capture vm210 --stack streaming-stack --facts reports/facts

Written: a hosts.yaml fragment (hostname, tailscale_ip; role, vmid and state copied from the
SSOT), a stacks.yaml fragment (the host's stacks and every container its engine has: state,
healthcheck, image, published ports, the env the SSOT pins) and a mounts.yaml fragment (its
NFS mounts: export, fstype, mode), each starting `# captured DATE from HOST` and checked
against ssot/schemas/ before it is written. Not captured: may_restart, mount purposes, host
descriptions, comments. An env value is never written from a host: a pinned variable whose
value equals the SSOT's keeps the SSOT's value; one that differs is named in a comment.

exit codes: 0 written, 1 a fragment failed its schema (nothing written), 2 invalid SSOT or
usage (a host the SSOT does not name), 4 a host could not be read"""


def add_parser(ssot_sub: argparse._SubParsersAction) -> None:
    p = ssot_sub.add_parser("capture", description=DESCRIPTION, epilog=EPILOG,
                            help="write SSOT YAML from what the hosts run (like goss add)",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hosts", nargs="+", metavar="HOST", help="an SSOT host name (vm209)")
    p.add_argument("--stack", metavar="NAME",
                   help="only this stack: write just its stacks.yaml fragment")
    p.add_argument("--out", metavar="DIR", type=Path, default=None,
                   help="write DIR/hosts.yaml, DIR/stacks.yaml, DIR/mounts.yaml (default: print "
                        "them to stdout, each after a `# ==> FILE <==` line)")
    p.add_argument("--facts", metavar="DIR", type=Path, default=None,
                   help="read facts saved by `ops verify --save-facts DIR` instead of the hosts")
    options.add(p, "ssot")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from opsverify.ssot import capture  # its SSH stack loads only when a capture runs

    err = "ops ssot capture:"
    s = load_ssot(args.ssot, "ops ssot capture", strict=True)
    if s is None:
        return 2
    if args.facts is not None and (not args.facts.is_dir() or replay_problem(args.facts)):
        why = replay_problem(args.facts) if args.facts.is_dir() else f"--facts: {args.facts}: " \
                                                                     "not a directory"
        print(f"{err} {why}", file=sys.stderr)
        return 2
    hosts = list(dict.fromkeys(args.hosts))
    try:
        facts = capture.read_facts(s, hosts, Settings.from_env(), args.facts)
        result = capture.capture(s, facts, args.stack)
    except capture.CaptureError as exc:
        print(f"{err} {exc}", file=sys.stderr)
        return 2
    except capture.HostUnreachable as exc:
        for host, why in exc.reasons.items():
            print(f"{err} {host}: UNREACHABLE: {why}", file=sys.stderr)
        return 4
    for note in result.notes:
        print(f"{err} note: {note}", file=sys.stderr)
    bad = capture.problems(result.files, s.root / "schemas")
    if bad:
        print(*bad, sep="\n", file=sys.stderr)
        print(f"{err} the captured YAML fails its schema (a bug): nothing written",
              file=sys.stderr)
        return 1
    if args.out is None:
        print("\n".join(f"# ==> {stem}.yaml <==\n{text}" for stem, text in result.files.items()),
              end="")
        return 0
    for path in capture.write(result.files, args.out):
        print(f"{err} wrote {path}", file=sys.stderr)
    return 0
