"""The host agent's entry point: main(PARAMS) runs every section and prints one JSON document.

commands.BOOTSTRAP registers the modules of commands.script_payload() on the host under their
own names and calls main(PARAMS). One SSH round trip per host returns everything the host
families need, in the shape of `host:<name>` in opsverify/facts/__init__.py.

Sections run one after another in worker threads (lanes: the file and socket reads in one, each
program in its own); the main thread waits at most budget_s and then prints whatever finished,
so a hung NFS read costs one section, not the host's facts.
Errors never carry file content: parsers name lines, OSErrors name paths.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from opsverify.facts import commands
from opsverify.facts.agent import configs, docker, fstab, probes, programs, scan, stacks
from opsverify.facts.agent.primitives import Context, describe_error


def main(arg: str) -> None:
    """Collect what PARAMS asks for; print SENTINEL and one JSON document."""
    started = time.monotonic()
    try:
        facts = collect(commands.decode_params(arg), started)
    except ValueError as exc:
        facts = {"errors": {"params": str(exc)}}
    facts["remote_s"] = round(time.monotonic() - started, 3)
    body = json.dumps(facts, separators=(",", ":"), default=str)
    sys.stdout.write("\n" + commands.SENTINEL + "\n" + body + "\n")
    sys.stdout.flush()


class Lane(threading.Thread):
    """Sections run one after another in a daemon thread; a hung one costs itself and those
    after it in this lane only."""

    def __init__(self, sections: list[tuple[str, Callable[[Context], dict[str, Any]]]],
                 ctx: Context,
                 done: dict[str, Any], errors: dict[str, str]):
        super().__init__(name=f"opsverify-{sections[0][0]}", daemon=True)
        self.sections, self.ctx, self.done, self.errors = sections, ctx, done, errors
        self.running = ""

    def run(self) -> None:
        for name, fn in self.sections:
            self.running = name
            try:
                self.done.update(fn(self.ctx))
            except Exception as exc:  # noqa: BLE001 -- one broken section must not cost the others
                self.errors[name] = describe_error(exc)
        self.running = ""

    def report_hung(self, budget: float) -> None:
        names = [name for name, _ in self.sections]
        hung = self.running
        self.errors[hung] = f"did not finish within {budget:.1f} s (hung filesystem?)"
        self.errors.update({name: f"not run: {hung} did not finish"
                            for name in names[names.index(hung) + 1:]})


def hostname_facts(ctx: Context) -> dict[str, Any]:
    return {"hostname": socket.gethostname()}  # from the kernel (uname), no command


def collect(params: dict[str, Any], started: float | None = None) -> dict[str, Any]:
    """Every section's facts; what did not finish within budget_s keeps its empty default."""
    ctx = Context(params, (started or time.monotonic()) + float(params.get("budget_s", 8)))
    facts: dict[str, Any] = {
        "hostname": None,
        "tailscale": {"ok": False, "error": "not collected", "backend_state": None, "ips": [],
                      "online": None},
        "mounts": [], "automounts": {}, "fstab": [], "fstab_errors": [],
        "docker": {"ok": False, "error": "not collected", "containers": []},
        "stacks": {}, "stale_refs": [],
        "scan": {"roots": list(ctx.roots), "files": 0, "bytes": 0, "media_skipped": 0,
                 "skipped": [], "complete": False},
        "config": {}, "probes": {},
    }
    asking, early = None, ""
    try:  # the service probes' GETs run in their own threads, beside the sections below
        asking = probes.start(ctx)
    except Exception as exc:  # noqa: BLE001 -- the other sections still run
        early = describe_error(exc)
    # looked up on each run, so that a test can stand in for one section. A lane runs its
    # sections in order in a thread of its own: the programs wait on a child process (tailscale
    # answers in ~20 ms) while the file and socket reads of the first lane go on.
    reads: list[tuple[str, Callable[[Context], dict[str, Any]]]] = [
        ("hostname", hostname_facts), ("mounts", fstab.mounts_facts),
        ("fstab", fstab.fstab_facts), ("docker", docker.docker_facts),
        ("stacks", stacks.stacks_facts), ("config", configs.config_facts),
        ("stale_refs", scan.stale_refs_facts)]
    lanes = [reads, [("tailscale", programs.tailscale_facts)]]
    if params.get("zfs"):
        facts["zfs"] = {"ok": False, "error": "not collected", "datasets": []}
        lanes.append([("zfs", programs.zfs_facts)])
    done: dict[str, Any] = {}
    errors: dict[str, str] = {}
    workers = [Lane(sections, ctx, done, errors) for sections in lanes]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max(0.0, ctx.deadline - time.monotonic()) + 0.2)
        if worker.is_alive():  # its section is stuck in a read; report the rest
            worker.report_hung(ctx.budget)
    facts.update(dict(done))
    if asking is None:
        errors["probes"] = early
    else:
        facts.update(asking.facts())
    facts["errors"] = dict(errors)
    return facts
