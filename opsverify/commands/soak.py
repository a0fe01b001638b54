"""`ops soak`: run the gates every few minutes for days, keep every run, report on the window."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from opsverify import redact
from opsverify.commands.verify import (
    REPO,
    add_selection_args,
    check_args,
    load_ssot,
    refuse_settings,
    selection_flags,
)
from opsverify.outputs.files import write_atomic
from opsverify.settings import Settings
from opsverify.soak import analysis, ledger, report, runner

DEFAULT_DIR = REPO / "reports" / "soak"
EXIT_HELP = """exit codes (ops soak and ops soak report, from the soak's verdict):
  0  PASS: every gate passed every run, no container restarted unless the SSOT allows it
  1  FAIL: some gate did not pass in some run, a run produced no results, or a restart
  2  usage: bad option, invalid SSOT, unknown or running soak, unreadable ledger
  3  INCOMPLETE: nothing failed so far, but fewer runs than the window expects
130 interrupted (the ledger keeps every completed run: continue with --resume NAME)"""
VERDICT_EXIT = {analysis.PASS: 0, analysis.FAIL: 1, analysis.INCOMPLETE: 3}


def soak_dir(arg: Path | None) -> Path:
    return arg or Path(os.environ.get("OPSVERIFY_SOAK_DIR") or DEFAULT_DIR)


DESCRIPTION = """\
Run `ops verify` every --every for --for (the scope's 72-hour soak: --every 5m
--for 72h), appending each run to a ledger in the soak directory, with a live
progress line. A soak killed at any moment keeps every completed run; --resume
NAME continues it. `ops soak report NAME` renders the ledger as one HTML file."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("soak", description=DESCRIPTION, epilog=EXIT_HELP,
                       help="run the gates repeatedly over a window and report on it",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--every", metavar="DURATION", default=None, help="interval, e.g. 5m, 30s")
    p.add_argument("--for", dest="window", metavar="DURATION", default=None,
                   help="window, e.g. 72h, 20s")
    p.add_argument("--name", metavar="NAME", default=None,
                   help="ledger name (default: soak-<UTC time>)")
    p.add_argument("--resume", metavar="NAME", default=None,
                   help="continue the soak NAME where it stopped")
    p.add_argument("--dir", metavar="DIR", type=Path, default=None,
                   help="soak directory (default: $OPSVERIFY_SOAK_DIR or reports/soak/)")
    p.add_argument("--run-timeout", metavar="S", type=float, default=300.0,
                   help="kill a run that takes longer than this (default 300 s)")
    add_selection_args(p, save_facts=False)  # each run saves its facts to its scratch directory
    p.set_defaults(func=run)
    rsub = p.add_subparsers(dest="soak_command", metavar="SUBCOMMAND")
    r = rsub.add_parser("report", help="render a soak's ledger as one self-contained HTML file",
                        description="Render the ledger of soak NAME as one HTML file that "
                                    "opens offline: verdict, window, per-gate timeline, "
                                    "flapping gates, container restarts, reachability.",
                        epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("name", metavar="NAME")
    r.add_argument("--html", metavar="PATH", type=Path, default=None,
                   help="where to write it (default: the soak directory, NAME.html)")
    r.add_argument("--dir", metavar="DIR", type=Path, default=None, dest="report_dir",
                   help="soak directory (default: $OPSVERIFY_SOAK_DIR or reports/soak/)")
    r.set_defaults(func=run_report)


def _fail(message: str, code: int = 2) -> int:
    print(redact.safe(f"ops soak: {message}"), file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    redact.register(*Settings.from_env().secret_values())
    directory = soak_dir(args.dir)
    try:
        if args.resume:
            if args.every or args.window or args.name or selection_flags(args):
                return _fail("--resume NAME takes the soak's own settings; give no others")
            path = ledger.path_of(directory, args.resume)
        else:
            path = _start(args, directory)
            if isinstance(path, int):
                return path
        return _soak(path, args.run_timeout)
    except ledger.LedgerError as exc:
        return _fail(str(exc))


def _start(args: argparse.Namespace, directory: Path) -> Path | int:
    """Create a new soak's ledger from the options; an exit code if they are wrong."""
    if not args.every or not args.window:
        return _fail("give --every and --for (e.g. --every 5m --for 72h), or --resume NAME")
    try:
        every, window = runner.parse_duration(args.every), runner.parse_duration(args.window)
    except ValueError as exc:
        return _fail(str(exc))
    problem = check_args(args)
    if problem:
        return _fail(problem)
    ssot = load_ssot(args.ssot)
    if ssot is None or refuse_settings(ssot, "ops soak"):
        return 2
    unknown = [h for h in args.host if h not in ssot.hosts]
    if unknown:
        return _fail(f"unknown host {', '.join(unknown)} (SSOT hosts: {', '.join(ssot.hosts)})")
    now = datetime.now(UTC)
    name = args.name or now.strftime("soak-%Y%m%dT%H%M%SZ")
    path = ledger.path_of(directory, name)
    ledger.create(path, {
        "name": name, "created": now.isoformat(timespec="seconds"), "every_s": every,
        "for_s": window, "expected_runs": runner.expected_runs(every, window),
        "flags": selection_flags(args), "ssot": str(ssot.root), "host": socket.gethostname(),
        "may_restart": sorted(f"{c.host}/{c.name}" for c in ssot.containers if c.may_restart)})
    print(f"ops soak: ledger {path}")
    return path


def _soak(path: Path, run_timeout: float) -> int:
    # SIGTERM (systemctl stop, kill) stops like Ctrl-C: the run in flight is dropped, not torn.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with ledger.Writer(path) as writer:
        name = writer.header["name"]
        if writer.repaired:
            print(f"ops soak: {name}: dropped the run that was in flight when it stopped")
        workdir = path.with_name(f".{name}.work")
        try:
            runner.loop(writer, workdir=workdir, run_timeout=run_timeout,
                        progress=runner.Progress())
        except KeyboardInterrupt:
            print(f"\nops soak: {name} stopped after {writer.done}/"
                  f"{writer.header['expected_runs']} runs; continue with "
                  f"`ops soak --resume {name}`", file=sys.stderr)
            return 130
    return _verdict(path)


def _verdict(path: Path, html: Path | None = None) -> int:
    header, runs = ledger.read(path)
    soak = analysis.analyse(header, runs)
    verdict, reasons = soak.verdict()
    target = html or path.with_suffix(".html")
    write_atomic(target, report.render(soak))
    if soak.unreadable and soak.unreadable_text not in reasons:
        reasons = [*reasons, soak.unreadable_text]
    print(redact.safe(f"ops soak {header['name']}: {verdict} ({soak.done}/{soak.expected} runs, "
                      f"{len(soak.gates)} gates){': ' + '; '.join(reasons) if reasons else ''}"))
    print(f"ops soak: report {target}")
    return VERDICT_EXIT[verdict]


def run_report(args: argparse.Namespace) -> int:
    redact.register(*Settings.from_env().secret_values())
    directory = soak_dir(args.report_dir or args.dir)
    try:
        path = ledger.path_of(directory, args.name)
        return _verdict(path, args.html)
    except ledger.LedgerError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write the report: {exc}")
