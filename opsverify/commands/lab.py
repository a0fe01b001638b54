"""`ops lab`: the lab twin, the homelab rebuilt from the SSOT on this machine."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from opsverify import options, redact

if TYPE_CHECKING:  # the lab's modules load only when a lab command runs
    from opsverify.lab.layout import Layout

DESCRIPTION = """\
The lab twin rebuilds the SSOT's homelab on this machine, with the SSOT's own addresses,
inside a private network namespace: real sshd, dockerd, Prometheus and node-exporter per
host, stand-ins for Cloudflare, Infisical, Proxmox VE and the tailscale/zfs CLIs. Gates
run against it unchanged: `ops lab exec -- ops verify`."""


UP_DESCRIPTION = """\
Build the twin from the SSOT and wait until every container, stand-in and scrape target is as
the SSOT says. A twin left by a crash, or built from another SSOT, is removed first; a healthy
one of the same SSOT is reset."""


def register(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser("lab", help="build, inspect, break and remove the lab twin",
                         description=DESCRIPTION,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=os.environ.get("OPSVERIFY_LAB_NAME"),
                        help="twin name (default: twin; namespace opsverify-NAME)")
    common.add_argument("--state-dir", metavar="DIR", type=Path, default=None,
                        help="state directory (default: $OPSVERIFY_LAB_DIR or "
                             "/var/lib/opsverify/lab/NAME)")
    cmds = lab.add_subparsers(dest="lab_command", metavar="SUBCOMMAND", required=True)

    p = cmds.add_parser("up", parents=[common], help="build the twin from the SSOT",
                        description=UP_DESCRIPTION,
                        epilog="exit codes: 0 up, 1 failed, 2 prerequisites missing or bad SSOT")
    options.add(p, "ssot")
    p.add_argument("--fresh", action="store_true",
                   help="rebuild even when a healthy twin of the same SSOT is up "
                        "(new canary secrets); without it such a twin is reset to clean")
    p.set_defaults(func=_guarded("up", cmd_up))

    p = cmds.add_parser("down", parents=[common], help="remove everything the twin made",
                        description="Stop every process and remove every mount, namespace, "
                                    "address, cgroup and file of the twin. Safe to repeat.")
    p.set_defaults(func=_guarded("down", cmd_down))

    p = cmds.add_parser("status", parents=[common], help="where everything of the twin is",
                        description="Where the twin's hosts, sockets, keys and stand-ins are. "
                                    "--json adds the credentials and canaries (for tools).")
    p.add_argument("--json", action="store_true", help="machine-readable, with credentials")
    p.set_defaults(func=_guarded("status", cmd_status))

    p = cmds.add_parser("exec", parents=[common], help="run a command inside the twin",
                        description="Run CMD in the twin's network, with its name resolution, "
                                    "CA bundle and API credentials in the environment.",
                        usage="ops lab exec [--name NAME] [--state-dir DIR] -- CMD [ARG...]")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command")
    p.set_defaults(func=_guarded("exec", cmd_exec))

    p = cmds.add_parser("ssh", parents=[common], help="run a command on a twin host over SSH",
                        usage="ops lab ssh [--name NAME] HOST [-- CMD [ARG...]]")
    p.add_argument("host", help="SSOT host name (vm209) or its hostname")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (none: a login shell)")
    p.set_defaults(func=_guarded("ssh", cmd_ssh))

    p = cmds.add_parser("drift", parents=[common], help="break one thing, as it broke in real life",
                        description="Apply one drift scenario through the interface a person "
                                    "would use. `ops lab reset` undoes every drift.")
    p.add_argument("scenario", nargs="?", help="scenario name (see --list)")
    p.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--json", action="store_true", help="with --list: as JSON")
    p.set_defaults(func=_guarded("drift", cmd_drift))

    p = cmds.add_parser("reset", parents=[common], help="restore the clean twin",
                        description="Converge the twin back to the state of a fresh `up`.")
    p.set_defaults(func=_guarded("reset", cmd_reset))

    p = cmds.add_parser("generate", help="write an SSOT of N hosts for a scale twin",
                        description="Write an SSOT of N active hosts: the base SSOT plus "
                                    "synthetic VMs shaped like 209 and 210, with fresh private "
                                    "addresses, valid under the schemas; `ops lab up --ssot OUT` "
                                    "builds its twin (see opsverify/lab/generate.py).",
                        epilog="exit codes: 0 written, 2 bad base SSOT or N")
    p.add_argument("--hosts", type=int, required=True, metavar="N",
                   help="active hosts in all (at least the base's)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="directory to write (replaced)")
    p.add_argument("--base", type=Path, default=None, metavar="DIR",
                   help="SSOT to extend (default: $OPSVERIFY_SSOT or the shipped ssot/)")
    p.set_defaults(func=_guarded("generate", cmd_generate))


def _guarded(name: str, func: Callable[[argparse.Namespace], int]
             ) -> Callable[[argparse.Namespace], int]:
    """Run a subcommand; an engine, process or file error is reported, not a traceback."""
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except BrokenPipeError:  # `ops lab status | head`: the reader left, nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except Exception as exc:  # LabError is handled inside; this is everything unforeseen
            if os.environ.get("OPSVERIFY_DEBUG") == "1":
                raise
            where = f"; logs in {_layout(args).logs}" if name in ("up", "reset", "drift") else ""
            print(f"ops lab {name}: {type(exc).__name__}: {redact.scrub(str(exc))}{where} "
                  "(OPSVERIFY_DEBUG=1 shows the traceback)", file=sys.stderr)
            return 1
    return run


def _layout(args: argparse.Namespace) -> Layout:
    from opsverify.lab.layout import Layout
    return Layout.of(args.name, args.state_dir)


def _fail(cmd: str, exc: Exception, code: int = 1) -> int:
    print(f"ops lab {cmd}: {redact.scrub(str(exc))}", file=sys.stderr)
    return code


def _reexec_inside(layout: Layout, *cmd: str) -> int | None:
    """Run `ops CMD` inside the twin's network (drift scenarios talk to its APIs); None when
    this process already is inside."""
    from opsverify.lab import access
    if access.inside(layout):
        return None
    argv = access.exec_argv(layout, [sys.executable, "-m", "opsverify.cli", *cmd,
                                     "--name", layout.name, "--state-dir", str(layout.root)])
    os.execvpe(argv[0], argv, access.exec_env(layout))
    return 1  # not reached


def cmd_up(args: argparse.Namespace) -> int:
    from opsverify.lab import prereq, twin
    from opsverify.lab.layout import LabError
    problems = prereq.missing()
    if problems:
        for line in problems:
            print(f"ops lab up: {line}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        layout = _layout(args)
        say = lambda msg: print(f"ops lab up: {msg}", flush=True)
        result = twin.up(layout, args.ssot, say, fresh=args.fresh)
    except LabError as exc:
        return _fail("up", exc, 2 if str(exc).startswith("invalid SSOT") else 1)
    print(f"ops lab up: twin {layout.name!r} {'reused' if result.get('reused') else 'ready'}: "
          f"{result['hosts']} hosts, "
          f"{result['containers']} containers ({result['running']} running), "
          f"{time.monotonic() - t0:.1f} s; `ops lab status` says where everything is")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from opsverify.lab import twin
    from opsverify.lab.layout import LabError
    t0 = time.monotonic()
    try:
        layout = _layout(args)
        left = twin.down(layout)
    except LabError as exc:
        return _fail("down", exc)
    for line in left:
        print(f"ops lab down: {line}", file=sys.stderr)
    print(f"ops lab down: twin {layout.name!r} removed ({time.monotonic() - t0:.1f} s)"
          + (f", {len(left)} leftovers" if left else ""))
    return 1 if left else 0


def cmd_status(args: argparse.Namespace) -> int:
    from opsverify.lab import status
    from opsverify.lab.layout import LabError
    try:
        st = status.status(_layout(args))
    except LabError as exc:
        return _fail("status", exc)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0 if st["up"] else 3
    print(f"twin {st['name']!r}: {'UP' if st['up'] else 'DOWN'}")
    print(f"  state dir   {st['state_dir']}")
    print(f"  namespace   {st['netns']} ({st['netns_path']})")
    if not st["hosts"]:
        return 0 if st["up"] else 3
    print(f"  SSOT        {st['ssot']}")
    print(f"  ssh_config  {st['ssh_config']}")
    print(f"  CA bundle   {st['ca_bundle']}")
    for name, h in st["hosts"].items():
        ssh = h["ssh"]
        print(f"  host {name:<6} {h['hostname']:<16} {', '.join(h['addresses'])}")
        print(f"      ssh {ssh['user']}@{ssh['address']}:{ssh['port']}  pid {h['pid']}"
              + (f"  docker {h['docker_socket']}" if h["docker_socket"] else ""))
    s = st["standins"]
    print(f"  cloudflare  {s['cloudflare']['api_url']} (edge {s['cloudflare']['edge']})")
    print(f"  infisical   {s['infisical']['url']}")
    if "proxmox" in s:
        print(f"  proxmox     {s['proxmox']['url']}")
    print(f"  prometheus  {s['prometheus']['url']}")
    print(f"  credentials and {len(st['canaries'])} canary secrets: ops lab status --json")
    return 0 if st["up"] else 3


def cmd_exec(args: argparse.Namespace) -> int:
    from opsverify.lab import access
    from opsverify.lab.layout import LabError
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("ops lab exec: give a command after --", file=sys.stderr)
        return 2
    try:
        layout = _layout(args)
        argv, env = access.exec_argv(layout, cmd), access.exec_env(layout)
    except LabError as exc:
        return _fail("exec", exc)
    os.execvpe(argv[0], argv, env)
    return 1  # not reached


def cmd_ssh(args: argparse.Namespace) -> int:
    from opsverify.lab import access, status
    from opsverify.lab.layout import LabError
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    try:
        layout = _layout(args)
        st = status.status(layout)
        if not st["up"]:
            raise LabError(f"twin {layout.name!r} is not up (run `ops lab up`)")
        names = {n: n for n in st["hosts"]} | {h["hostname"]: n for n, h in st["hosts"].items()}
        if args.host not in names:
            raise LabError(f"no twin host {args.host!r} (hosts: {', '.join(st['hosts'])})")
        argv = access.ssh_argv(layout, names[args.host], cmd)
    except LabError as exc:
        return _fail("ssh", exc)
    os.execvp(argv[0], argv)
    return 1  # not reached


def cmd_drift(args: argparse.Namespace) -> int:
    from opsverify.lab import drift
    from opsverify.lab.layout import LabError
    if args.list or not args.scenario:
        if args.json:
            print(json.dumps([{"name": s.name, "description": s.description,
                               "families": list(s.families), "outcome": s.outcome,
                               "undo": list(s.undo)} for s in drift.SCENARIOS],
                             indent=2))
            return 0
        width = max(len(s.name) for s in drift.SCENARIOS)
        for s in drift.SCENARIOS:
            expect = {"unreachable": "UNREACHABLE " + ", ".join(s.families),
                      "pass": "PASS (not drift)"}.get(s.outcome, "FAIL " + ", ".join(s.families))
            print(f"{s.name:<{width}}  {expect}\n{'':<{width}}  {s.description}")
        return 0 if args.list else 2
    try:
        layout = _layout(args)
        scenario = drift.get(args.scenario)
        again = _reexec_inside(layout, "lab", "drift", scenario.name)
        if again is not None:
            return again
        drift.apply(layout, scenario, say=lambda m: print(f"ops lab drift: {m}", flush=True))
    except LabError as exc:
        return _fail("drift", exc)
    expect = {"pass": "every gate to PASS", "unreachable": "UNREACHABLE: "}.get(
        scenario.outcome, "to FAIL: ") + ", ".join(scenario.families)
    print(f"ops lab drift: {scenario.name} applied; expected {expect}; undo with "
          "`ops lab reset`")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from opsverify.lab import twin
    from opsverify.lab.layout import LabError
    t0 = time.monotonic()
    try:
        layout = _layout(args)
        twin.reset(layout, say=lambda m: print(f"ops lab reset: {m}", flush=True))
    except LabError as exc:
        return _fail("reset", exc)
    print(f"ops lab reset: twin {layout.name!r} is clean again ({time.monotonic() - t0:.1f} s)")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from opsverify.lab import generate
    argv = ["--hosts", str(args.hosts), "--out", str(args.out)]
    return generate.main(argv + (["--base", str(args.base)] if args.base else []),
                         prog="ops lab generate")
