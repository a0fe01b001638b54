"""`ops report`: one report from the results of several `ops verify` runs (CI shards).

An operator with more hosts than one verifier serves splits the nightly run across CI runners:
`ops report shards N` prints the `ops verify` selection of each of N shards (hosts spread
evenly, plus one shard for the gates that concern no host), a matrix job runs one shard per
runner with `--json`, and `ops report merge` joins their results into one results JSON, JUnit
XML, Prometheus textfile and HTML page, with the exit code of the whole.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from opsverify import options, outputs, redact, results
from opsverify.outputs.terminal import detail_lines, headline
from opsverify.results import SEVERITY

NO_HOST = "not opsverify_host"  # pytest -k: the gates no host mark is on (ssot, PromQL rules)

EPILOG = """exit codes (merge):
  0  every gate of every shard passed
  1  a gate FAILED or hit an ERROR in some shard
  2  an input is missing or not an opsverify results file; bad option
  4  no FAIL, but a host or API was UNREACHABLE in some shard"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="merge the results of sharded runs into one report",
                       description=__doc__.split("\n\n")[1].replace("\n", " "),
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="report_command", metavar="SUBCOMMAND", required=True)
    m = cmds.add_parser("merge", help="join results JSON files into one report",
                        description="Join the --json results of several `ops verify` runs "
                                    "into one report.", epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("inputs", nargs="+", type=Path, metavar="RESULTS.json",
                   help="results written by `ops verify --json` (one per shard)")
    m.add_argument("--json", type=Path, metavar="PATH", help="the merged results JSON")
    m.add_argument("--junit-xml", type=Path, metavar="PATH", help="JUnit XML of the whole")
    m.add_argument("--prom", type=Path, metavar="PATH", help="Prometheus textfile")
    m.add_argument("--html", type=Path, metavar="PATH", help="self-contained HTML page")
    m.add_argument("-q", "--quiet", action="store_true", help="only the closing line")
    m.set_defaults(func=cmd_merge)
    s = cmds.add_parser("shards", help="the `ops verify` selection of each of N shards",
                        description="Spread the SSOT's hosts over N shards (plus one for the "
                                    "gates that concern no host); one line of `ops verify` "
                                    "arguments per shard, or a JSON list for a CI matrix.")
    s.add_argument("count", type=int, help="number of host shards (N >= 1)")
    options.add(s, "ssot")
    s.add_argument("--json", action="store_true", help="a JSON list of argument lists")
    s.add_argument("--index", type=int, metavar="I", default=None,
                   help="only shard I (0-based; the last one is the host-less gates), for a "
                        "matrix job: eval \"ops verify $(ops report shards N --index I) ...\"")
    s.set_defaults(func=cmd_shards)


def _fail(message: str, code: int = results.EXIT_USAGE) -> int:
    print(redact.safe(f"ops report: {message}"), file=sys.stderr)
    return code


# ---- shards ----------------------------------------------------------------------------------

def shards(hosts: list[str], count: int) -> list[list[str]]:
    """`ops verify` arguments of each shard: hosts dealt round-robin, then the host-less one."""
    out: list[list[str]] = [[] for _ in range(min(count, len(hosts)))]
    for i, host in enumerate(hosts):
        out[i % len(out)] += ["--host", host]
    return [*out, ["-k", NO_HOST]]


def cmd_shards(args: argparse.Namespace) -> int:
    from opsverify import ssot as ssot_pkg

    if args.count < 1:
        return _fail(f"shards {args.count}: must be at least 1")
    try:
        ssot = ssot_pkg.load(args.ssot, strict=False)
    except ssot_pkg.SsotInvalid as exc:
        return _fail(f"invalid SSOT: {len(exc.problems)} problems (`ops ssot check` lists them)")
    plan = shards(sorted(ssot.hosts), args.count)
    if args.index is not None:
        if not 0 <= args.index < len(plan):
            return _fail(f"--index {args.index}: the plan has shards 0..{len(plan) - 1}")
        plan = [plan[args.index]]
    if args.json:
        print(json.dumps(plan))
    else:
        import shlex
        for argv in plan:
            print(shlex.join(argv))
    return 0


# ---- merge -----------------------------------------------------------------------------------

def merge(docs: list[dict[str, Any]], names: list[str] | None = None) -> dict[str, Any]:
    """One results model from several; the same gate in two shards keeps its worse outcome."""
    tests: dict[str, dict[str, Any]] = {}
    unreachable: dict[str, str] = {}
    relaxations: list[str] = []
    commands: list[dict[str, Any]] = []
    for doc in docs:
        for t in doc["tests"]:
            have = tests.get(t["id"])
            # A gate run by two shards keeps its worse outcome: a merge never hides a failure.
            if have is None or SEVERITY.get(t["outcome"], 0) > SEVERITY.get(have["outcome"], 0):
                tests[t["id"]] = t
        unreachable.update(doc.get("unreachable") or {})
        relaxations += [r for r in doc.get("relaxations") or [] if r not in relaxations]
        commands += doc.get("remote_commands") or []
    started = min((d["started"] for d in docs), key=_when)
    finished = max((d["finished"] for d in docs), key=_when)
    merged = list(tests.values())
    counts = results.count(merged)
    ssots = list(dict.fromkeys(str(d.get("ssot", "")) for d in docs))
    return {
        "format": results.FORMAT, "ssot": ssots[0] if len(ssots) == 1 else ", ".join(ssots),
        "started": started, "finished": finished,
        "duration_s": round(max(d.get("duration_s", 0.0) for d in docs), 3),
        "exit_code": results.exit_code(counts), "relaxations": relaxations,
        "hosts": sorted({h for d in docs for h in d.get("hosts") or []}),
        "families": sorted({f for d in docs for f in d.get("families") or []}),
        "unreachable": dict(sorted(unreachable.items())), "remote_commands": commands,
        "counts": counts, "tests": merged,
        "shards": [{"name": (names or [""] * len(docs))[i], "started": d["started"],
                    "duration_s": d.get("duration_s"), "exit_code": d.get("exit_code"),
                    "hosts": d.get("hosts") or [], "tests": len(d["tests"])}
                   for i, d in enumerate(docs)]}


def _when(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return 0.0


def cmd_merge(args: argparse.Namespace) -> int:
    docs = []
    for path in args.inputs:
        try:
            doc = results.load(path)
            for key in ("started", "finished", "counts"):
                if key not in doc:
                    raise results.ResultsError(f"{path}: no {key!r} (not a complete run)")
        except results.ResultsError as exc:
            return _fail(str(exc))
        docs.append(doc)
    res = merge(docs, [str(p) for p in args.inputs])
    code = res["exit_code"]
    outputs.write(res, code, json=args.json, junit_xml=args.junit_xml, prom=args.prom,
                  html_path=args.html)
    print(headline(res).replace("ops verify:", f"ops report merge ({len(docs)} runs):"))
    if not args.quiet:
        for line in detail_lines(res):
            print(line)
    return code
