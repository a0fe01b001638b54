"""A soak ledger's line for one run: what a soak keeps of the results model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsverify.redact import scrub_obj
from opsverify.results import count


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def record(res: dict[str, Any] | None, started: float, finished: float, code: int,
           error: str | None) -> dict[str, Any]:
    """The ledger line of one run: each test as [family, host, outcome, seconds, message],
    and each container's id, state, health, restart count and start time."""
    res = res or {}
    tests = {t["id"]: [t["family"], t["host"], t["outcome"], round(t["duration_s"], 4),
                       t["message"] or None] for t in res.get("tests", [])}
    return scrub_obj({
        "started": iso(started), "finished": iso(finished),
        "duration_s": round(finished - started, 3), "exit_code": code, "error": error,
        "counts": res.get("counts") or count([]), "relaxations": res.get("relaxations") or [],
        "unreachable": res.get("unreachable") or {}, "tests": tests,
        "containers": res.get("containers") or {}})
