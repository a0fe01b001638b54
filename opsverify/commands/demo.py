"""`ops demo`: the twin up, every gate green, one thing broken and caught, restored, green again."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from opsverify import redact, results
from opsverify.commands.verify import REPO
from opsverify.outputs.terminal import short_id

# The drift the demo injects, and the gate test (family, param id) that must catch it.
DRIFT, FAMILY, PARAM = "media-rw-vm210", "mounts", "vm210:/mnt/media"
REPORTS = REPO / "reports"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole story on the lab twin: verify, break, catch, restore",
        description="Build the lab twin, run `ops verify` on it with every report written to "
                    f"reports/, break one thing (`ops lab drift {DRIFT}`: the streaming VM's "
                    "media mounted read-write), show the gate that catches it, reset the "
                    "twin, verify green again, and say where the HTML report is. Needs root.",
        epilog="exit codes: 0 clean runs passed and the drift was caught; 1 a step went wrong; "
               "2 not root or prerequisites missing",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reports", metavar="DIR", type=Path, default=REPORTS,
                   help="where the reports go (default: reports/)")
    p.add_argument("--keep", action="store_true", help="leave the twin up at the end")
    p.set_defaults(func=run)


def say(text: str) -> None:
    print(redact.scrub(f"ops demo: {text}"), flush=True)


def ops(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsverify.cli", *args]


def prerequisites() -> list[str]:
    """What stops the twin from running here, one line each."""
    if os.geteuid() != 0:
        return ["the lab twin needs root (network namespaces, dockerd): run `sudo ops demo`"]
    try:
        from opsverify.lab import prereq
    except ImportError:
        return ["the lab twin (opsverify.lab) is not installed with this opsverify"]
    return prereq.missing()


def verify(out: Path, stem: str) -> tuple[int, dict | None]:
    """`ops lab exec -- ops verify` with every report written to out/STEM.*."""
    paths = {ext: out / f"{stem}.{ext}" for ext in ("html", "xml", "json", "prom")}
    cmd = ops("lab", "exec", "--", *ops("verify", "--html", str(paths["html"]),
                                        "--junit-xml", str(paths["xml"]),
                                        "--json", str(paths["json"]),
                                        "--prom", str(paths["prom"])))
    paths["json"].unlink(missing_ok=True)
    code = subprocess.run(cmd, check=False).returncode
    try:
        return code, results.load(paths["json"])
    except results.ResultsError:
        return code, None


def step(cmd: list[str], what: str) -> bool:
    say(what)
    ok = subprocess.run(cmd, check=False).returncode == 0
    if not ok:
        say(f"FAILED: {what}")
    return ok


def run(args: argparse.Namespace) -> int:
    problems = prerequisites()
    if problems:
        for line in problems:
            print(f"ops demo: {line}", file=sys.stderr)
        return 2
    out = args.reports.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not step(ops("lab", "up"), "building the lab twin (ops lab up)"):
        return 1
    try:
        return story(out)
    finally:
        if not args.keep:
            step(ops("lab", "down"), "removing the twin (ops lab down; --keep leaves it up)")


def story(out: Path) -> int:
    """Clean run, drift, caught, reset, clean run; 0 only if all of it held."""
    say("1/3 verifying the clean twin (ops lab exec -- ops verify)")
    code, _ = verify(out, "clean")
    if code != 0:
        say(f"the clean twin did not pass (exit {code}); see {out / 'clean.html'}")
        return 1
    if not step(ops("lab", "drift", DRIFT), f"2/3 breaking one thing: ops lab drift {DRIFT}"):
        return 1
    code, res = verify(out, "drift")
    caught = [t for t in (res or {}).get("tests", []) if t["family"] == FAMILY
              and t["param"] == PARAM and t["outcome"] == "fail"]
    if code != 1 or not caught:
        say(f"the drift was NOT caught (exit {code}); see {out / 'drift.html'}")
        step(ops("lab", "reset"), "restoring the twin (ops lab reset)")
        return 1
    for t in caught:
        say(f"caught: FAIL {short_id(t)}: {t['message']}")
    if not step(ops("lab", "reset"), "3/3 restoring the twin (ops lab reset)"):
        return 1
    code, _ = verify(out, "verify")
    if code != 0:
        say(f"the restored twin did not pass (exit {code}); see {out / 'verify.html'}")
        return 1
    say(f"done. HTML report: {out / 'verify.html'} (the drift caught: {out / 'drift.html'}); "
        f"JUnit, JSON and Prometheus files beside them")
    return 0
