"""services: each application answers its own API as the SSOT expects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsverify.findings import Findings
from opsverify.ssot.model import Probe
from opsverify.verdict import Unreachable

from . import Case, Family
from .values import same


def check(probe: Probe, facts: dict[str, Any],
          host_answers: Callable[[], object] | None = None) -> Findings:
    """Answered; status; body; JSON values; JSON keys present.

    host_answers: asked only when the probe made no connection (refused, connect timeout); it
    raises Unreachable when the probe's host does not answer either (its SSH facts), and then
    the failure is the host's, not the service's."""
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
    if got.get("connected") is False and host_answers is not None:
        try:
            host_answers()
        except Unreachable as exc:
            raise Unreachable(exc.target, f"{probe.name}: {got.get('error')}; and the host "
                                          f"does not answer either: {exc.reason}") from None
    if got.get("error") or got.get("status") is None:
        c.require(False, f"no answer: {got.get('error') or 'no status'}")
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


FAMILY = Family(
    "services", per="probe",
    checks=("each app answers its own API (with its key) from the verifier's vantage point"),
    subjects={"probe": lambda s: (Case(p.container, p.host, p) for p in s.probes)},
    apis=("http",))
