"""services: each application answers its own API as the SSOT expects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from opsverify.findings import Findings
from opsverify.ssot.model import Probe
from opsverify.verdict import Unreachable

from . import Case, Family
from .values import same


def check(probe: Probe, facts: dict[str, Any],
          host_answers: Callable[[], object] | None = None) -> Findings:
    """Answered; status; body; JSON values; JSON keys present.

    host_answers: asked only when the verifier made no connection (refused, connect timeout;
    after a connection the path works and the failure is the service's); it gives the probe's
    host facts, with the same GET made on the host itself (agent/probes.py), or raises
    Unreachable. No answer at either end is "service down"; an answer on the host only is
    "path broken" (Tailscale, a firewall, a wrong bind address). No host facts either: the
    host's failure, not the service's (UNREACHABLE)."""
    c = Findings(f"Service {probe.container} (GET {probe.url})")
    got = (facts.get("probes") or {}).get(probe.name)
    c.saw("probe", {"expected": probe.expect, "answer": got})
    if got is None:
        c.require(False, "not probed (no result in the http facts)")
        return c
    if got.get("auth_error"):
        # Without its credential the probe was never sent: nothing is known about the service.
        raise Unreachable("http", f"{probe.name}: not probed: {got['auth_error']}")
    if got.get("unreachable"):
        # No path from the verifier to the host: its lack of a path is not the service's drift.
        raise Unreachable(f"host:{probe.host}", f"{probe.name}: {got['unreachable']}")
    if got.get("error") or got.get("status") is None:
        c.require(False, _no_answer(c, probe, got, host_answers))
        return c
    expect = probe.expect
    c.expect("status", expect.get("status", 200), got.get("status"))
    if "body" in expect:
        body = got.get("body")
        c.expect("body", str(expect["body"]).strip(), body.strip() if isinstance(body, str)
                 else body)
    values = got.get("json") or {}
    for key, want in sorted((expect.get("json") or {}).items()):
        found = values.get(key)
        if "*" in key and isinstance(found, list):
            bad = [v for v in found if not same(want, v)]
            c.require(bool(found) and not bad, f"json {key}: expected {want} for every match, "
                                               f"got {', '.join(map(str, found)) or 'none'}")
        else:
            c.same(f"json {key}", want, found)
    present = got.get("json_keys") or {}
    missing = [k for k in expect.get("json_keys") or [] if not present.get(k)]
    c.require(not missing, f"json keys missing: {', '.join(missing)}")
    return c


def host_end(probe: Probe, host: Any) -> tuple[bool | None, str]:
    """(whether the service answers on its host, what the host saw): an expected status, or
    401/403 when the probe sends a credential (the host asks without it). None: not asked."""
    tries = ((host or {}).get("probes") or {}).get(probe.name) if isinstance(host, dict) \
        else None
    if not tries:
        return None, "not probed from the host (no result in its facts)"
    want = probe.expect.get("status", 200)
    accept = {want, 401, 403} if probe.auth else {want}
    shown = [f"{urlsplit(str(t.get('url'))).netloc or t.get('url')}: "
             f"{t['status'] if t.get('status') is not None else t.get('error')}" for t in tries]
    return any(t.get("status") in accept for t in tries), "; ".join(shown)


def _no_answer(c: Findings, probe: Probe, got: dict[str, Any],
               host_answers: Callable[[], object] | None) -> str:
    """The finding of a probe the verifier got no answer to, with the host's end of it."""
    error = got.get("error") or "no status"
    if host_answers is None or got.get("connected") is True:
        return f"no answer: {error}"  # connected: the path works, the service did not answer
    try:
        host = host_answers()
    except Unreachable as exc:
        raise Unreachable(exc.target, f"{probe.name}: {error}; and the host does not "
                                      f"answer either: {exc.reason}") from None
    answers, seen = host_end(probe, host)
    c.saw("host end", {"answers": answers, "seen": seen,
                       "probes": ((host or {}).get("probes") or {}).get(probe.name)
                       if isinstance(host, dict) else None})
    if answers is None:  # facts of an older agent: the verifier's end only
        return f"no answer: {error}"
    if not answers:
        return f"service down: no answer: {error} from the verifier, nor on the host ({seen})"
    return (f"path broken: no answer: {error} from the verifier, but it answers on the host "
            f"({seen}): {_why(probe, host)}")


def _why(probe: Probe, host: dict[str, Any]) -> str:
    """Where the path breaks, as far as the host's two GETs tell."""
    first = host["probes"][probe.name][0]
    if first.get("status") is not None and "127.0.0.1:" not in str(first.get("url")):
        return "Tailscale or a firewall between the verifier and the host"
    if "not an address of this host" in str(first.get("error")):
        return "the verifier's address is not the host's (Tailscale down on the host?)"
    return "bound to 127.0.0.1 only (wrong bind address)"


FAMILY = Family(
    "services", per="probe",
    checks=("each app answers its own API (with its key) from the verifier's vantage point; one "
            "that does not is asked again from its own host (the same GET, without the key: "
            "401/403 counts as answering) and reads \"service down\" (no answer there either) "
            "or \"path broken\" (answers on the host only: Tailscale, firewall, bound to "
            "127.0.0.1)"),
    subjects={"probe": lambda s: (Case(p.container, p.host, p) for p in s.probes)},
    apis=("http",))
