"""The closing lines of a run: the headline, then one line per failing, skipped or
unreachable thing (goss-like: `FAIL  mounts::test_mount[vm210:/mnt/media]: Mount ...`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from opsverify.redact import safe
from opsverify.results import OUTCOMES
from opsverify.verdict import ERROR, FAIL, PASS, SKIP, UNREACHABLE, WAIVED


def short_id(test: dict[str, Any]) -> str:
    """mounts::test_mount[vm210:/mnt/media]: family and test name, enough to find it."""
    return f"{test['family']}::{test['name']}"


def unreachable_groups(results: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(source, reason, tests not run) once per host or API that could not be asked."""
    reasons = dict(results.get("unreachable") or {})
    tally: Counter[str] = Counter()
    for t in results["tests"]:
        if t["outcome"] == UNREACHABLE:
            source = t.get("source") or "?"
            tally[source] += 1
            reasons.setdefault(source, t["message"])
    return [(s, reasons[s], tally[s]) for s in sorted(tally)]


def display_source(source: str) -> str:
    """host:vm209 -> vm209; APIs keep their name."""
    return source.removeprefix("host:")


def headline(results: dict[str, Any]) -> str:
    """ops verify: 183/187 PASS, 3 FAIL, 1 UNREACHABLE (11 families, 3 hosts, 2.1 s)."""
    c, total = results["counts"], len(results["tests"])
    parts = [f"{c[PASS]}/{total} PASS"] + [f"{c[o]} {o.upper()}" for o in OUTCOMES[1:]
                                            if c.get(o)]
    nf, nh = len(results["families"]), len(results["hosts"])
    return (f"ops verify: {', '.join(parts)} ({nf} famil{'ies' if nf != 1 else 'y'}, "
            f"{nh} host{'s' if nh != 1 else ''}, {results['duration_s']:.1f} s)")


def detail_lines(results: dict[str, Any]) -> list[str]:
    """One line per failing test, one per skipped test, then one per unreachable host or API."""
    lines = [f"  {t['outcome'].upper():<5} {short_id(t)}: {t['message']}"
             for t in results["tests"] if t["outcome"] in (FAIL, ERROR)]
    # a SKIP is never silently absent: a planned item or an unconfigured app says why
    lines += [f"  SKIP  {short_id(t)}: {t['message']}"
              for t in results["tests"] if t["outcome"] == SKIP]
    lines += [f"  WAIVED {short_id(t)}: {t['message']} — {waived_by(t['waiver'])}"
              for t in results["tests"] if t["outcome"] == WAIVED]
    for source, reason, n in unreachable_groups(results):
        shown = reason.removeprefix(f"{source}: ")
        lines.append(f"  {display_source(source)} UNREACHABLE: {shown} — "
                     f"{n} test{'s' if n != 1 else ''} not run")
    lines += [f"  stale waiver {w['where']} {w['gate']!r} ({w['owner']}): {w['why']}"
              for w in results.get("stale_waivers") or []]
    return [safe(line) for line in lines]


def waived_by(w: dict[str, Any]) -> str:
    """waived by ronny until 2026-12-15 (12.5 days left): remount pending the NAS update"""
    return (f"waived by {w['owner']} until {w['expires'][:10]} ({w['days_left']:g} days left): "
            f"{w['reason']}")


