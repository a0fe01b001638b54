"""The program sections of the facts: `tailscale status --json`, `zfs list`, their parsers.

Only the programs of commands.HOST_ARGV can run (run_program() takes a name of that table, not
an argv), each with a timeout and stdin closed; both print status listings and change nothing.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from opsverify.facts import commands
from opsverify.facts.agent.primitives import (
    Context,
    ParseError,
    as_text,
    describe_error,
    json_field,
    json_object,
    json_strings,
    load_json,
)

PROGRAM_TIMEOUT = 5.0
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def run_program(name: str, timeout: float) -> tuple[int, bytes, bytes]:
    """Run HOST_ARGV[name] (nothing else can run); FileNotFoundError if it is not installed."""
    argv = list(commands.HOST_ARGV[name])
    path = os.pathsep.join([os.environ.get("PATH", commands.SYSTEM_PATH), *SBIN])
    exe = shutil.which(argv[0], path=path)
    if exe is None:
        raise FileNotFoundError(f"{argv[0]}: command not found")
    proc = subprocess.run([exe, *argv[1:]], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, env=dict(os.environ, LC_ALL="C"), check=False)
    return proc.returncode, proc.stdout, proc.stderr


def program_facts(name: str, ctx: Context, parse: Callable[[bytes], Any],
                  parse_failed: bool = False) -> tuple[Any, str]:
    """(parsed output, '') or (None, error: the program's first stderr line or why not).

    parse_failed: a program that exits non-zero may still print what it knows; then
    (parsed output, error) when that output parses.
    """
    words = " ".join(commands.HOST_ARGV[name][:2])
    try:
        rc, out, err = run_program(name, ctx.slice(PROGRAM_TIMEOUT))
    except FileNotFoundError as exc:
        return None, exc.args[0] if isinstance(exc.args[0], str) else describe_error(exc)
    except subprocess.TimeoutExpired as exc:
        return None, f"{words}: no answer within {exc.timeout:.1f} s"
    except OSError as exc:
        return None, f"{words}: {describe_error(exc)}"
    if rc != 0:
        first = err.decode("utf-8", "replace").strip().split("\n")[0][:300]
        error = first or f"{words}: exit status {rc}"
        if parse_failed and out.strip():
            try:
                return parse(out), error
            except ParseError:
                pass
        return None, error
    try:
        return parse(out), ""
    except ParseError as exc:
        return None, str(exc)


def tailscale_facts(ctx: Context) -> dict[str, Any]:
    # `tailscale status --json` prints the state and exits 0 even when logged out (cmd/
    # tailscale/cli/status.go returns before its state check); should a version or wrapper
    # exit non-zero, a BackendState it printed is still the fact, with the exit as its error.
    status, error = program_facts("tailscale_status", ctx, parse_tailscale_status,
                                  parse_failed=True)
    if status is None or (error and not status.get("backend_state")):
        return {"tailscale": {"ok": False, "error": error, "backend_state": None, "ips": [],
                              "online": None}}
    return {"tailscale": {"ok": True, "error": error or None, **status}}


def zfs_facts(ctx: Context) -> dict[str, Any]:
    names, error = program_facts("zfs_list", ctx, parse_zfs_list)
    return {"zfs": {"ok": names is not None, "error": error or None, "datasets": names or []}}


def parse_tailscale_status(data: str | bytes | dict) -> dict[str, Any]:
    """`tailscale status --json` as {backend_state, ips, online}."""
    what = "tailscale status"
    doc = load_json(data, what)
    if not isinstance(doc, dict):
        raise ParseError(f"{what}: expected a JSON object")
    own = json_object(doc.get("Self"), f"{what}: Self")
    ips = json_strings(doc.get("TailscaleIPs"), f"{what}: TailscaleIPs") or \
        json_strings(own.get("TailscaleIPs"), f"{what}: Self.TailscaleIPs")
    return {"backend_state": json_field(doc, "BackendState", str, what),
            "ips": ips, "online": json_field(own, "Online", bool, f"{what}: Self")}


def parse_zfs_list(data: str | bytes) -> list[str]:
    """`zfs list -H -o name` as the list of dataset names."""
    out = []
    for no, line in enumerate(as_text(data, "zfs list").split("\n"), 1):
        name = line.strip()
        if not name:
            continue
        if "\t" in name or "\0" in name or name.startswith("/"):
            raise ParseError(f"zfs list line {no}: not a dataset name")
        out.append(name)
    return out
