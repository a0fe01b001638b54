"""`ops facts`: work with the facts `ops verify --save-facts DIR` saved.

`ops facts diff A B` says what changed between two saved runs, on which host or API, grouped
by gate family, in the gates' own words: `mount vm210:/mnt/media: mode: was ro, now rw`.
The logic is opsverify/facts/diff.py; this module only parses and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opsverify import options, redact, results

DIFF_DESCRIPTION = """\
What changed between two directories of saved facts (`ops verify --save-facts DIR`, one JSON
file per host or API): one line per change, under the gate family that reads it, e.g.

  mounts
    mount vm210:/mnt/media: mode: was ro, now rw
  vms
    VM vm210 (210): onboot: was 1, now 0

A host or API that could not be asked in one run reads `host vm209: unreachable now (...)`.
Never shown: the value of a secret-named key (a container's env, a config key, a probe's JSON
key) reads `changed`. Left out as noise: when and how fast the facts were collected (host
clock, SSH and HTTP durations), scan counters, Prometheus rule values, the tunnel's config
version. Kept: container ids, restart counts and start times (a restart is a change).
Subjects are named from the SSOT (container download-stack:radarr, VM vm210 (210))."""

DIFF_EPILOG = """exit codes:
  0  no change
  1  something changed
  2  A or B is not a directory of saved facts (the message names the file), or a bad option

example, what changed since the last green nightly run:
  ops facts diff /var/lib/opsverify/facts/last-green /var/lib/opsverify/facts/current"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("facts", help="compare the facts saved by `ops verify --save-facts`",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    cmds = p.add_subparsers(dest="facts_command", metavar="SUBCOMMAND", required=True)
    d = cmds.add_parser("diff", help="what changed between two saved facts directories",
                        description=DIFF_DESCRIPTION, epilog=DIFF_EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("before", type=Path, metavar="A", help="the earlier --save-facts directory")
    d.add_argument("after", type=Path, metavar="B", help="the later --save-facts directory")
    d.add_argument("--json", action="store_true",
                   help="a JSON list of {family, source, subject, attribute, was, now}; "
                        "a secret-named key's value is ******** (was/now null: absent)")
    options.add(d, "ssot")
    d.set_defaults(func=cmd_diff)


def _ssot(root: Path | None) -> object | None:
    from opsverify import ssot as ssot_pkg

    try:
        return ssot_pkg.load(root, strict=False)
    except Exception:  # noqa: BLE001 - naming only: the diff stands without it
        return None


def _register_credentials() -> None:
    """Mask this process's credentials too (the nightly runs with them in its environment)."""
    try:
        from opsverify.settings import Settings

        redact.register(*Settings.from_env().secret_values())
    except Exception:  # noqa: BLE001,S110 - a bad setting is `ops verify`'s to report
        pass


def cmd_diff(args: argparse.Namespace) -> int:
    from opsverify.facts import diff

    _register_credentials()
    try:
        changes = diff.compare_dirs(args.before, args.after, _ssot(args.ssot))
    except diff.DiffInputError as exc:
        print(redact.safe(f"ops facts diff: {exc}"), file=sys.stderr)
        return results.EXIT_USAGE
    if args.json:
        print(diff.as_json(changes))
    else:
        for line in diff.render(changes, args.before, args.after):
            print(line)
    return 1 if changes else 0
