"""`ops verify`: run the gates (pytest on the repo's gates/) and write the reports asked for.

A thin wrapper: it validates the SSOT and the selection, builds a pytest argument list and runs
pytest in this process; the run renders every report from its results model and hands the
model back in memory (for the exit code). Every verdict comes from the gates; none is made here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
from pathlib import Path
from typing import Any

from opsverify import options, outputs, redact, results
from opsverify import ssot as ssot_pkg
from opsverify.commands import load_ssot as load_ssot_or_say

REPO = Path(__file__).resolve().parents[2]
GATES = REPO / "gates"

# Installed plugins the gates never use (pytest-html may linger from an older install);
# loading hypothesis alone costs ~1 s per run. (The unraisable-exception hook runs
# gc.collect() five times per session.) `logging` captured library log records per test, which
# no output shows (~4% of a 100-host run): without it they go nowhere (run_pytest).
UNUSED_PLUGINS = ("hypothesispytest", "benchmark", "anyio", "pytest11.testinfra",
                  "unraisableexception", "html", "metadata", "logging")

EXIT_HELP = """exit codes:
  0  every selected gate passed
  1  at least one gate FAILED (drift) or hit an ERROR (a bug in a gate or collector)
  2  invalid SSOT (schema or syntax), unknown --host/--family, bad option, nothing selected
  4  no FAIL, but at least one host or API was UNREACHABLE (its gates could not be run)
130 interrupted"""


def families() -> list[str]:
    """Gate families, as the registry declares them (each with gates/test_<family>.py)."""
    from opsverify import families as registry

    return registry.names()


def add_selection_args(p: argparse.ArgumentParser, *, save_facts: bool = True) -> None:
    """The flags that choose what is verified and how facts are gathered (shared with soak)."""
    g = p.add_argument_group("selection")
    g.add_argument("--host", metavar="NAME", action="append", default=[],
                   help="only gates concerning this SSOT host (repeatable)")
    g.add_argument("--family", metavar="NAME", action="append", default=[],
                   help="only this gate family, gates/test_NAME.py (repeatable)")
    g.add_argument("-k", metavar="EXPR", dest="keyword", default=None,
                   help="pytest -k expression over test ids, passed through")
    f = p.add_argument_group("facts")
    options.add_to_argparse({"selection": g, "facts": f}, *(() if save_facts else ("save_facts",)))


def selection_flags(args: argparse.Namespace) -> list[str]:
    """The selection flags of parsed args, as `ops verify` takes them (for soak and lab exec)."""
    out: list[str] = []
    for h in args.host:
        out += ["--host", h]
    for f in args.family:
        out += ["--family", f]
    if args.keyword is not None:
        out += ["-k", args.keyword]
    return out + options.as_argv(args, for_pytest=False,
                                 only=("ssot", "facts", "timeout", "parallel"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="run the drift gates against the hosts (or replayed facts)",
        description="Run every drift gate (or a selection) against the live hosts and APIs the "
                    "SSOT names, and report PASS / FAIL / UNREACHABLE per gate. Ends with one "
                    "line: `ops verify: 110/113 PASS, 3 SKIP (13 families, 4 hosts, 0.4 s)`.",
        epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_selection_args(p)
    options.add_to_argparse({"reports": p.add_argument_group(
        "reports (any together; each written atomically)")})
    w = p.add_argument_group("settling (after a deploy)")
    w.add_argument("--wait", metavar="DURATION", type=_duration, default=None,
                   help="re-run the gates not yet green every --interval until all are or "
                        "DURATION (30s, 2m, 1h) has passed; only their facts are collected "
                        "again; the summary says how long each took to go green")
    w.add_argument("--interval", metavar="S", type=_duration, default=5.0,
                   help="seconds between tries with --wait (default 5)")
    v = p.add_mutually_exclusive_group()
    v.add_argument("-q", "--quiet", action="count", default=0, help="less output")
    v.add_argument("-v", "--verbose", action="count", default=0, help="one line per gate")
    p.set_defaults(func=run)


def _duration(text: str) -> float:
    from opsverify.soak.runner import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fail(message: str, code: int = results.EXIT_USAGE) -> int:
    print(redact.safe(f"ops verify: {message}"), file=sys.stderr)
    return code


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the selection or options, or None."""
    if not GATES.is_dir():
        return (f"no gates/ directory next to the opsverify package ({REPO}); "
                "install opsverify from a clone with `pip install -e .`")
    known = families()
    unknown = [f for f in args.family if f not in known]
    if unknown:
        return f"unknown family {', '.join(unknown)} (known: {', '.join(known)})"
    if args.facts is not None and not args.facts.is_dir():
        return f"--facts {args.facts}: not a directory"
    if args.timeout is not None and not args.timeout > 0:
        return f"--timeout {args.timeout}: must be a positive number of seconds"
    if args.parallel is not None and args.parallel < 1:
        return f"--parallel {args.parallel}: must be at least 1"
    for path in (getattr(args, n, None) for n in options.REPORTS):
        problem = _unwritable(path) if path is not None else None
        if problem:
            return problem
    if args.facts is not None:  # the facts contract: a file of the wrong shape is refused here
        from opsverify.facts.saved import replay_problem
        return replay_problem(args.facts)
    return None


def _unwritable(path: Path) -> str | None:
    if path.is_dir():
        return f"{path}: is a directory"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{path}: cannot create its directory: {exc.strerror}"
    return None if os.access(path.parent, os.W_OK) else f"{path}: directory not writable"


def load_ssot(path: Path | None) -> ssot_pkg.Ssot | None:
    """The SSOT, or None after printing every problem as `ops ssot check` does."""
    return load_ssot_or_say(path, "ops verify")


def refuse_settings(ssot: ssot_pkg.Ssot, command: str) -> bool:
    """Print why the environment's settings are unsafe (never a value); True if they are."""
    from opsverify.settings import Settings

    users = [p.auth["subsonic_user"] for p in ssot.probes if "subsonic_user" in p.auth]
    names = [p.auth[k] for p in ssot.probes
             for k in ("secret", "subsonic_user", "subsonic_password") if k in p.auth]
    problems = Settings.from_env().problems(names=names, users=users)
    for problem in problems:
        print(redact.safe(f"{command}: {problem}"), file=sys.stderr)
    return bool(problems)


def pytest_argv(args: argparse.Namespace, only: list[str] | None = None,
                reports: bool = True) -> list[str]:
    """The pytest command line for this selection (or only these test ids), writing the
    reports asked for unless told not to."""
    paths = only or [str(GATES / f"test_{f}.py") for f in dict.fromkeys(args.family)] \
        or [str(GATES)]
    argv = [*paths, "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml"),
            "-p", "no:cacheprovider", "--continue-on-collection-errors", "-rN",
            *[a for name in UNUSED_PLUGINS for a in ("-p", f"no:{name}")]]
    for host in dict.fromkeys(args.host):
        argv += ["--opsverify-host", host]  # whole names: vm30 is not vm301, as -k would have it
    if args.keyword:
        argv += ["-k", args.keyword]
    argv += options.as_argv(args, for_pytest=True, only=() if reports else tuple(
        d for d in options.BY_DEST if d not in options.REPORTS))
    quiet, verbose = getattr(args, "quiet", 0), getattr(args, "verbose", 0)
    if verbose:
        argv += ["-" + "v" * verbose, "--tb=no"]
    else:
        argv += ["-qq", "--tb=no"]
        if quiet:
            argv += ["--opsverify-quiet", "-o", "console_output_style=classic"]
    return argv


def run(args: argparse.Namespace) -> int:
    problem = check_args(args)
    if problem:
        _fail(problem)
        with contextlib.suppress(OSError):  # the problem may be the report path itself
            write_reports(args, None, results.EXIT_USAGE)
        return results.EXIT_USAGE
    ssot = load_ssot(args.ssot)
    unknown = [h for h in args.host if ssot and h not in ssot.hosts]
    if ssot is None or unknown:
        if unknown:
            _fail(f"unknown host {', '.join(unknown)} (SSOT hosts: {', '.join(ssot.hosts)})")
        # The nightly textfile must say this run failed, not keep last night's success.
        write_reports(args, None, results.EXIT_USAGE)
        return results.EXIT_USAGE
    if refuse_settings(ssot, "ops verify"):
        write_reports(args, None, results.EXIT_USAGE)
        return results.EXIT_USAGE
    for path in (getattr(args, n, None) for n in options.REPORTS):
        if path is not None:
            path.unlink(missing_ok=True)  # a stale file must not pass for this run's report
    if args.wait is not None:
        return run_waiting(args)
    received = Received()
    head = head_start(ssot, args)
    try:
        rc = run_pytest(pytest_argv(args), received, *([HeadStartPlugin(head)] if head else []))
    finally:
        if head is not None:
            head.close()  # reaped, and killed first if the run ended without its facts
    code = exit_code(rc, received.results)
    if received.results is None or code != received.results["exit_code"]:
        write_reports(args, received.results, code)  # the run's own reports cannot know this
    return code


def run_waiting(args: argparse.Namespace) -> int:
    """--wait: the gates re-run until green or the deadline (opsverify/settle.py); one
    summary, every report and the exit code from the merged results at the end."""
    from opsverify import settle
    from opsverify.outputs.terminal import detail_lines, headline
    from opsverify.soak.runner import Progress

    codes: list[int] = []

    def attempt(ids: list[str] | None) -> dict[str, Any] | None:
        received = Received()
        with contextlib.redirect_stdout(io.StringIO()):  # one summary, at the end
            rc = run_pytest(pytest_argv(args, only=ids, reports=False), received)
        codes.append(exit_code(rc, received.results))
        return received.results

    progress = Progress(sys.stderr)  # one line rewritten on a terminal, a line per try in a log
    res, green_after = settle.wait(attempt, deadline_s=args.wait, interval_s=args.interval,
                                   show=lambda text: progress.show(text, final=not progress.tty))
    if progress.tty:
        progress.show("", final=True)
    code = codes[-1] if res is None or codes[-1] in (130, results.EXIT_USAGE) \
        else res["exit_code"]
    write_reports(args, res, code)
    if res is not None:
        print(headline(res))
        for line in detail_lines(res) + settle.green_lines(res, green_after):
            print(line)
    return code


def head_start(ssot: ssot_pkg.Ssot, args: argparse.Namespace) -> Any:
    """The facts of the selected gates, collected by a forked child while pytest starts
    (opsverify/facts/live.py); None for replayed facts, and for -k: which gates it selects is
    only known once pytest has collected them."""
    if args.facts is not None or args.keyword is not None:
        return None
    from opsverify.facts import live
    from opsverify.settings import Settings

    return live.HeadStart.begin(
        ssot, Settings.from_env(timeout=args.timeout), args.family, args.host, args.parallel)


class HeadStartPlugin:
    """Hands the head start to the facts fixture (fixtures/facts.py adopts its result)."""

    def __init__(self, head: Any):
        self.head = head

    def pytest_configure(self, config: Any) -> None:
        from fixtures.facts import HEAD_START

        config.stash[HEAD_START] = self.head


class Received:
    """A pytest plugin object that keeps the run's results model when the run ends."""

    results: dict[str, Any] | None = None

    def pytest_unconfigure(self, config: Any) -> None:
        from fixtures.outcomes import RESULTS

        self.results = config.stash.get(RESULTS, None)


def run_pytest(argv: list[str], *plugins: object) -> int:
    """pytest in this process, on the repo's gates (fixtures/ is imported from the repo)."""
    import pytest

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    root = logging.getLogger()
    if not root.handlers:  # not Python's last resort either: a library's warning on the terminal
        root.addHandler(logging.NullHandler())
    cwd = Path.cwd()
    os.chdir(REPO)  # test ids and paths in the output read gates/test_x.py, wherever ops runs
    try:
        return int(pytest.main(argv, plugins=list(plugins)))
    finally:
        os.chdir(cwd)


def exit_code(rc: int, res: dict[str, Any] | None) -> int:
    """Map pytest's exit status and the results to ours (see EXIT_HELP)."""
    if rc == 2:
        return _fail("interrupted", 130)
    if res is not None:
        if rc == 3:
            return _fail("internal error in the run (see above)", results.EXIT_FAIL)
        return res["exit_code"]
    if rc == 5:
        return _fail("no gate selected: --host/--family/-k matched nothing")
    if rc == 4:
        return _fail("pytest refused the options (see above)")
    return _fail(f"the run ended without results (pytest exit status {rc})", results.EXIT_FAIL)


def write_reports(args: argparse.Namespace, res: dict[str, Any] | None, code: int) -> None:
    """The reports of a run that ended otherwise than its results say (interrupted, refused)."""
    outputs.write(res, code, json=getattr(args, "json", None),
                  junit_xml=getattr(args, "junit_xml", None), prom=getattr(args, "prom", None),
                  html_path=getattr(args, "html", None),
                  patch=getattr(args, "propose_patch", None), ssot_dir=getattr(args, "ssot", None))
