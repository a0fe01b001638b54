"""Host facts: one remote command per host, its output decoded, hard-bounded.

host_collectors() gives the FactStore one collector per active host with an SSH target
(`host:<name>`). A collector builds the host's parameters from the SSOT (host_params.py), logs
in once (ssh_transport.py), runs commands.facts_command() (the host agent, opsverify/facts/
agent/, with those parameters), and returns the facts it prints, or raises Unreachable with
the reason: connection refused, no answer, frozen sshd, unknown host key, host key mismatch,
authentication failed, script failed. Everything is bounded by settings.timeout: the remote
script by coreutils `timeout` on the host, the SSH phases by their own timeouts plus a
watchdog that shuts the socket at the deadline. Every command is recorded as
commands.describe() shows it, and checked by commands.check() before it is sent.

Hosts are made with testinfra.host.Host(backend), not testinfra.get_host(), which caches a
Host and its SSH connection per process for ever: a collector opens one connection, runs one
command, closes it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import paramiko
from testinfra.backend.base import CommandResult
from testinfra.host import Host as TestinfraHost

from opsverify import redact
from opsverify.facts import commands
from opsverify.facts.host_params import remote_params
from opsverify.facts.ssh_transport import Backend, SshFailure, Target
from opsverify.facts.store import Collector
from opsverify.settings import Settings
from opsverify.ssot import Ssot
from opsverify.verdict import Unreachable

Recorder = Callable[[str, str, str], None]  # (host, command, purpose), as FactStore.record_command


def host_collectors(ssot: Ssot, settings: Settings,
                    record: Recorder | None = None) -> dict[str, Collector]:
    """One collector per active host with an SSH target; record(host, command, purpose) audits."""
    out: dict[str, Collector] = {}
    for name, host in ssot.active_hosts.items():
        target = Target(name, host.ssh_address or "", host.ssh_user, host.ssh_port)
        out[f"host:{name}"] = functools.partial(_collect_ssot_host, ssot, target, settings, record)
    return out


def _collect_ssot_host(ssot: Ssot, target: Target, settings: Settings,
                       record: Recorder | None) -> dict[str, Any]:
    try:
        params = remote_params(ssot, target.name)
    except ValueError as exc:
        raise Unreachable(f"host:{target.name}", f"cannot build the fact command: {exc}") from None
    return collect(target, params, settings, record)


def collect(target: Target, params: dict[str, Any], settings: Settings,
            record: Recorder | None = None) -> dict[str, Any]:
    """The facts of one host in one round trip, or Unreachable within settings.timeout."""
    source = f"host:{target.name}"
    started = time.monotonic()
    backend = Backend(target, settings, started + settings.timeout)
    host = TestinfraHost(backend)
    backend.set_host(host)
    try:
        try:
            backend.login()  # first, so that a login failure and a script failure read apart
            connected = time.monotonic()
            # the host's `timeout` fires first, its KILL a second later, with time to answer
            limit = int(backend.left() - 1.5)
            if limit < 1:
                raise SshFailure(f"logged in, but less than 2.5 s of the {settings.timeout:g} s "
                                 "timeout was left for the fact script")
            command = commands.facts_command(
                commands.script_payload(), {**params, "budget_s": max(0.5, limit - 1.0)}, limit)
            if record is not None:
                record(target.name, commands.describe(command), "host facts: one command per run")
            result = host.run(command)
        except SshFailure as exc:
            raise Unreachable(source, exc.reason) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(source, backend.why(exc)) from None
    finally:
        backend.close()
    facts = _decode(source, result, limit)
    facts["duration_s"] = round(time.monotonic() - started, 3)
    facts["transport"] = {
        "backend": "paramiko",
        "host_key": f"NOT verified: unknown key {backend.accepted_unknown} accepted "
                    "(OPSVERIFY_INSECURE_HOST_KEYS)" if backend.accepted_unknown else "verified",
        "connect_s": round(connected - started, 3),
        "command_s": round(time.monotonic() - connected, 3),
    }
    return redact.scrub_obj(facts)


def _decode(source: str, result: CommandResult, limit: int) -> dict[str, Any]:
    out, err = result.stdout_bytes, result.stderr_bytes
    lines = [ln for ln in err.decode("utf-8", "replace").strip().split("\n") if ln.strip()]
    last = redact.scrub(lines[-1].strip()[:300]) if lines else "no error output"
    if result.rc in (124, 137):
        raise Unreachable(source, f"the fact script was stopped by its {limit} s limit on the "
                                  "host (hung filesystem?)")
    if result.rc in (126, 127):
        raise Unreachable(source, f"cannot run the fact script on the host: {last}")
    marker = commands.SENTINEL.encode()
    at = out.rfind(marker)
    if result.rc != 0 or at < 0:
        raise Unreachable(source, f"the fact script failed (exit {result.rc}): {last}")
    try:
        facts = json.loads(out[at + len(marker):])
    except ValueError:
        facts = None
    if not isinstance(facts, dict):
        raise Unreachable(source, "the fact script printed no JSON object")
    return facts
