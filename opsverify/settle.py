"""`ops verify --wait`: after a deploy, things settle (containers start, health checks turn,
mounts come up). Re-run only the gates not yet green, every interval, until all are or the
deadline passes (goss's --retry-timeout); each try collects only the facts its gates need.

The run's results are the first run's, each re-run gate replaced by its latest try; every
output and the exit code are made from them at the end, as for one run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opsverify import results
from opsverify.outputs.terminal import short_id
from opsverify.verdict import PASS, SKIP, UNREACHABLE, WAIVED

# Outcomes that will not change by waiting: a planned item stays skipped.
SETTLED = (PASS, WAIVED, SKIP)

Attempt = Callable[[list[str] | None], dict[str, Any] | None]


def unsettled(res: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in res["tests"] if t["outcome"] not in SETTLED]


def merge(first: dict[str, Any], latest: dict[str, Any], started: float) -> dict[str, Any]:
    """first, with each test latest ran replaced by that try; counts and times for the whole."""
    newer = {t["id"]: t for t in latest["tests"]}
    tests = [newer.get(t["id"], t) for t in first["tests"]]
    counts = results.count(tests)
    unreachable = {t["source"]: t["message"] for t in tests
                   if t["outcome"] == UNREACHABLE and t.get("source")}
    return {**first, "tests": tests, "counts": counts, "exit_code": results.exit_code(counts),
            "finished": latest["finished"], "duration_s": round(time.time() - started, 3),
            "unreachable": {s: r for s, r in (first.get("unreachable") or {}).items()
                            if s in unreachable} | unreachable,
            "stale_waivers": latest.get("stale_waivers", first.get("stale_waivers", []))}


def wait(attempt: Attempt, *, deadline_s: float, interval_s: float,
         show: Callable[[str], None], clock: Callable[[], float] = time.time,
         sleep: Callable[[float], None] = time.sleep) -> tuple[dict[str, Any] | None,
                                                                dict[str, float]]:
    """Run, then re-run what is not green until it is or the deadline passes.

    Returns the merged results (None if the first run made none) and, per gate that went
    green while waiting, the seconds it took from the start."""
    started = clock()
    res = attempt(None)
    if res is None:
        return None, {}
    green_after: dict[str, float] = {}
    while (todo := unsettled(res)) and clock() - started + interval_s <= deadline_s:
        left = deadline_s - (clock() - started)
        first = todo[0]
        show(f"ops verify --wait: {len(todo)} not green yet ({short_id(first)}: "
             f"{first['outcome'].upper()}), next try in {interval_s:g} s, {left:.0f} s left")
        sleep(interval_s)
        latest = attempt([t["id"] for t in todo])
        if latest is None:
            break  # interrupted or refused: judge what we have
        for t in latest["tests"]:
            if t["outcome"] in SETTLED:
                green_after.setdefault(t["id"], round(clock() - started, 1))
        res = merge(res, latest, started)
    return res, green_after


def green_lines(res: dict[str, Any], green_after: dict[str, float]) -> list[str]:
    """How long each gate took to go green, slowest first."""
    by_id = {t["id"]: t for t in res["tests"]}
    return [f"  green after {s:g} s: {short_id(by_id[i])}"
            for i, s in sorted(green_after.items(), key=lambda kv: -kv[1]) if i in by_id]
