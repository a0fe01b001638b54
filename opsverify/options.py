"""The options of a gate run, declared once for both front doors.

`ops verify` (argparse) and a plain `pytest gates/` (the fixtures' pytest_addoption) take the
same options from this table; `ops verify` hands its parsed values to pytest as `pytest_flag`.
A pytest flag differs from the CLI's only where pytest (or a plugin) already owns the name.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Option:
    flag: str                      # as `ops verify` takes it
    metavar: str
    type: Callable[[str], Any]
    help: str
    group: str                     # the section of `ops verify --help` it is listed in
    pytest_flag: str = ""          # as pytest takes it, when not the same

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def for_pytest(self) -> str:
        return self.pytest_flag or self.flag


SSOT_HELP = "SSOT directory (default: $OPSVERIFY_SSOT or the shipped ssot/)"

OPTIONS = (
    Option("--ssot", "DIR", Path, SSOT_HELP, "selection"),
    Option("--facts", "DIR", Path,
           "replay facts saved by --save-facts instead of asking hosts and APIs", "facts"),
    Option("--save-facts", "DIR", Path,
           "save every collected fact to DIR (one JSON file per host or API)", "facts"),
    Option("--timeout", "S", float,
           "hard limit in seconds for one host's or API's collection (default 10)", "facts"),
    Option("--parallel", "N", int, "collect at most N hosts/APIs at once (default: 32)", "facts",
           pytest_flag="--opsverify-parallel"),
    Option("--html", "PATH", Path, "self-contained HTML report", "reports",
           pytest_flag="--opsverify-html"),
    Option("--junit-xml", "PATH", Path, "JUnit XML for CI", "reports",
           pytest_flag="--opsverify-junit-xml"),
    Option("--json", "PATH", Path, "the results model: every test, its outcome and findings",
           "reports", pytest_flag="--opsverify-json"),
    Option("--prom", "PATH", Path,
           "Prometheus textfile for node-exporter's textfile collector", "reports",
           pytest_flag="--opsverify-prom"),
    Option("--propose-patch", "FILE", Path,
           "a unified diff making ssot/*.yaml say what this run found (each hunk names its gate;"
           " findings never to be accepted are listed as not patchable)", "reports",
           pytest_flag="--opsverify-propose-patch"),
)
BY_DEST = {o.dest: o for o in OPTIONS}
REPORTS = tuple(o.dest for o in OPTIONS if o.group == "reports")


def add_to_pytest(parser: Any) -> None:
    """Every option, on pytest's command line (`pytest gates/ --opsverify-html r.html`)."""
    group = parser.getgroup("opsverify")
    for o in OPTIONS:
        group.addoption(o.for_pytest, metavar=o.metavar, type=o.type, default=None,
                        dest=o.dest, help=o.help)


def add(parser: Any, *dests: str) -> None:
    """Named options onto one parser of another command (`ops ssot check --ssot DIR`)."""
    for dest in dests:
        o = BY_DEST[dest]
        parser.add_argument(o.flag, metavar=o.metavar, type=o.type, default=None, help=o.help)


def add_to_argparse(groups: dict[str, argparse._ArgumentGroup], *skip: str) -> None:
    """The options of each named group onto `ops verify`'s (or `ops soak`'s) parser."""
    for o in OPTIONS:
        if o.group in groups and o.dest not in skip:
            groups[o.group].add_argument(o.flag, metavar=o.metavar, type=o.type, default=None,
                                         help=o.help)


def as_argv(args: argparse.Namespace, *, for_pytest: bool, only: tuple[str, ...] = ()) -> list[str]:
    """The options set in args, as `ops verify` (or pytest) takes them; paths made absolute."""
    out: list[str] = []
    for o in OPTIONS:
        value = getattr(args, o.dest, None)
        if value is None or (only and o.dest not in only):
            continue
        out += [o.for_pytest if for_pytest else o.flag,
                str(Path(value).resolve()) if isinstance(value, Path) else str(value)]
    return out
