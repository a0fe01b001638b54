"""Waivers: a known drift accepted for a while, by someone, for a reason (ssot/waivers.yaml).

    max_days: 30                    # no waiver may run longer (default 30)
    waivers:
      - gate: "mounts::test_mount[vm210:/mnt/media]"   # a gate id; * and ? are wildcards
        reason: remount pending the NAS firmware update
        owner: ronny
        since: 2026-12-01
        expires: 2026-12-15         # a date (the end of that day, UTC) or a date-time
        finding: {attribute: mode, actual: rw}          # optional: only this finding

A FAIL whose every finding a live waiver covers is WAIVED: counted apart, shown with owner,
reason and days left, and it passes the run. A waiver with `finding` covers only that finding,
so a different drift on the same gate still FAILS. An expired waiver covers nothing: its gate
FAILS saying so. A waiver that matches no gate, or only gates that pass, is stale and reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from opsverify.verdict import FAIL, WAIVED

from .loader import Problem, json_path

STEM = "waivers"
DEFAULT_MAX_DAYS = 30


def when(text: str, *, end_of_day: bool = False) -> datetime:
    """An SSOT date or date-time as an aware UTC datetime; a bare date is its start (or end)."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        d = date.fromisoformat(text)
        return datetime.combine(d, time.max if end_of_day else time.min, UTC)
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Waiver:
    gate: str
    reason: str
    owner: str
    since: datetime
    expires: datetime
    finding: dict[str, Any] | None
    file: str
    line: int
    index: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def matches_id(self, short_id: str) -> bool:
        """Whether the gate pattern names this gate id (`family::test[param]`); only * and ?
        are wildcards, so the brackets of an id are themselves."""
        pattern = re.escape(self.gate).replace(r"\*", ".*").replace(r"\?", ".")
        return re.fullmatch(pattern, short_id) is not None

    def covers(self, finding: dict[str, Any]) -> bool:
        """Whether this waiver accepts one finding (any, unless it names one)."""
        if self.finding is None:
            return True
        return all(str(finding.get(k)) == str(v) for k, v in self.finding.items())

    def expired(self, now: datetime) -> bool:
        return now > self.expires

    def days_left(self, now: datetime) -> float:
        return round((self.expires - now) / timedelta(days=1), 1)

    def describe(self, now: datetime) -> dict[str, Any]:
        """The waiver as reports show it."""
        return {"gate": self.gate, "owner": self.owner, "reason": self.reason,
                "expires": self.expires.isoformat(), "days_left": self.days_left(now),
                "finding": self.finding, "where": self.where}


def declared(ssot: Any) -> list[Waiver]:
    """The waivers of the SSOT (none without a waivers.yaml)."""
    out = []
    for i, w in enumerate(ssot.doc.get("waivers") or []):
        name, line = ssot.where(STEM, "waivers", i)
        out.append(Waiver(w["gate"], w["reason"], w["owner"], when(str(w["since"])),
                          when(str(w["expires"]), end_of_day=True), w.get("finding"), name,
                          line, i))
    return out


def max_days(ssot: Any) -> int:
    return int(ssot.doc.get("max_days") or DEFAULT_MAX_DAYS)


def problems(ssot: Any) -> list[Problem]:
    """What the SSOT refuses: a waiver that ends before it starts, or runs longer than
    max_days."""
    limit = max_days(ssot)
    out = []
    for w in declared(ssot):
        path = json_path(("waivers", w.index))
        if w.expires <= w.since:
            out.append(Problem(w.file, w.line, path, "expires before it starts (since)"))
        elif w.expires - w.since > timedelta(days=limit):
            out.append(Problem(w.file, w.line, path,
                               f"runs {(w.expires - w.since).days} days, longer than "
                               f"max_days {limit}: a waiver is a reminder, not a rule"))
    return out


def unmatched(ssot: Any, gate_ids: list[str]) -> list[Waiver]:
    """The waivers whose pattern matches no gate this SSOT makes (stale)."""
    return [w for w in declared(ssot) if not any(w.matches_id(g) for g in gate_ids)]


def apply(tests: list[dict[str, Any]], waivers: list[Waiver], now: datetime) -> list[dict]:
    """Turn each FAIL every finding of which a live waiver covers into WAIVED; an expired
    waiver's gate FAILS saying so. Returns the stale waivers of this run: those that match
    gates of the run, none of which failed (a waiver for gates not selected is not judged)."""
    matched: set[int] = set()
    used: set[int] = set()
    for t in tests:
        short = f"{t['family']}::{t['name']}"
        mine = [w for w in waivers if w.matches_id(short)]
        matched.update(w.index for w in mine)
        if t["outcome"] != FAIL or not mine:
            continue
        used.update(w.index for w in mine)
        live = [w for w in mine if not w.expired(now)]
        findings = t.get("findings") or [{"message": t["message"]}]
        if live and all(any(w.covers(f) for w in live) for f in findings):
            w = next((w for w in live if all(w.covers(f) for f in findings)), live[0])
            t["outcome"], t["waiver"] = WAIVED, w.describe(now)
        elif not live:
            w = max(mine, key=lambda w: w.expires)
            t["message"] += (f" (waiver expired on {w.expires.date().isoformat()}, owner "
                             f"{w.owner}, {w.where})")
    return [{**w.describe(now), "why": "every gate it matches passed"}
            for w in waivers if w.index in matched and w.index not in used]
