"""The soak's ledger analysed in one pass: per gate, container and source, one code per run.

What the report shows (report.py renders it) and what `ops soak report` exits with (the
verdict) both come from here. Memory grows with gates x runs bytes, not with the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opsverify.soak.ledger import run_problem

# Outcome codes in the strips; 0 = no result for that run.
ABSENT, OK, FAILED, UNREACH, ERR, SKIPPED, WAIVED = range(7)
CODE = {"pass": OK, "fail": FAILED, "unreachable": UNREACH, "error": ERR, "skip": SKIPPED,
        "waived": WAIVED}
WORD = {ABSENT: "no result", OK: "PASS", FAILED: "FAIL", UNREACH: "UNREACHABLE", ERR: "ERROR",
        SKIPPED: "SKIP", WAIVED: "WAIVED (a known drift, accepted until its waiver expires)"}
BAD = (FAILED, UNREACH, ERR)
# Container strip codes.
C_ABSENT, C_UP, C_UNHEALTHY, C_STOPPED, C_RESTART = range(5)
C_WORD = {C_ABSENT: "not seen", C_UP: "running", C_UNHEALTHY: "unhealthy or starting",
          C_STOPPED: "stopped", C_RESTART: "restarted"}
PASS, FAIL, INCOMPLETE = "PASS", "FAIL", "INCOMPLETE"


@dataclass
class Gate:
    id: str
    family: str
    host: str
    codes: bytearray
    first_bad: tuple[int, str, str] | None = None  # (run k, time, message)
    last_bad: tuple[int, str, str] | None = None
    bad_runs: int = 0

    @property
    def flaps(self) -> int:
        """How often it failed and then passed again (passed -> failed -> passed).

        An unreachable host says nothing about the gate, so those runs are skipped over.
        """
        n, seen_pass, in_bad = 0, False, False
        for c in self.codes:
            if c == OK:
                if in_bad and seen_pass:
                    n += 1
                seen_pass, in_bad = True, False
            elif c in (FAILED, ERR):
                in_bad = True
        return n

    @property
    def short(self) -> str:
        """mounts::test_mount[vm210:/mnt/media]."""
        return f"{self.family}::{self.id.split('::', 1)[-1]}"


@dataclass
class Box:
    host: str
    name: str
    codes: bytearray
    may_restart: bool
    restarts: int = 0
    restart_runs: list[int] = field(default_factory=list)
    last: dict[str, Any] | None = None
    last_seen: str = ""


@dataclass
class Soak:
    """Everything the report shows, gathered in one pass over the ledger."""

    header: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)  # per run: k, times, counts
    gates: dict[str, Gate] = field(default_factory=dict)
    boxes: dict[tuple[str, str], Box] = field(default_factory=dict)
    reach: dict[str, bytearray] = field(default_factory=dict)
    reach_why: dict[str, str] = field(default_factory=dict)  # source -> its last reason
    relaxations: list[str] = field(default_factory=list)
    unreadable: int = 0  # ledger lines skipped: not JSON, or not a well-formed run

    @property
    def done(self) -> int:
        return len(self.runs)

    @property
    def expected(self) -> int:
        return int(self.header["expected_runs"])

    def verdict(self) -> tuple[str, list[str]]:
        """PASS only if every gate passed every run and nothing restarted that may not."""
        reasons = []
        bad = [g for g in self.gates.values() if g.bad_runs]
        if bad:
            runs = sum(1 for r in self.runs if r["bad"])
            reasons.append(f"{len(bad)} gate{'s' if len(bad) != 1 else ''} did not pass in "
                           f"{runs} of {self.done} runs")
        broken = [r for r in self.runs if r["error"]]
        if broken:
            reasons.append(f"{len(broken)} run{'s' if len(broken) != 1 else ''} produced no "
                           f"results (first: {broken[0]['error']})")
        for b in self.boxes.values():
            if b.restarts and not b.may_restart:
                reasons.append(f"{b.host}/{b.name} restarted {b.restarts}x "
                               f"(runs {', '.join(map(str, b.restart_runs[:5]))})")
        if reasons:
            return FAIL, reasons
        if self.done < self.expected:
            return INCOMPLETE, [f"{self.done} of {self.expected} runs done"]
        if self.unreadable:  # a run nobody can read might have failed
            return INCOMPLETE, [self.unreadable_text]
        return PASS, []

    @property
    def unreadable_text(self) -> str:
        n = self.unreadable
        return f"{n} unreadable ledger line{'s' if n != 1 else ''} (skipped)"


def analyse(header: dict[str, Any], runs: Iterable[dict[str, Any]]) -> Soak:
    """One pass over the runs; memory grows with gates x runs bytes, not with the ledger."""
    s = Soak(header)
    may = set(header.get("may_restart") or [])

    def readable() -> Iterable[dict[str, Any]]:
        for run in runs:  # a line with a missing key, a wrong type, NaN or 1e999 is skipped
            if run_problem(run) is None:
                yield run
            else:
                s.unreadable += 1

    for i, run in enumerate(readable()):
        bad = False
        for test_id, (family, host, outcome, _dur, message) in run["tests"].items():
            g = s.gates.get(test_id)
            if g is None:
                g = s.gates[test_id] = Gate(test_id, family, host, bytearray(i))
            code = CODE.get(outcome, ERR)
            g.codes.append(code)
            if code in BAD:
                bad = True
                g.bad_runs += 1
                seen = (run["k"], run["started"], message or "")
                g.first_bad = g.first_bad or seen
                g.last_bad = seen
        for g in s.gates.values():
            if len(g.codes) <= i:
                g.codes.append(ABSENT)
        _containers(s, i, run, may)
        _reachability(s, i, run)
        s.relaxations = run.get("relaxations") or s.relaxations
        s.runs.append({"k": run["k"], "started": run["started"], "finished": run["finished"],
                       "duration_s": run["duration_s"], "exit_code": run["exit_code"],
                       "error": run.get("error"), "counts": run["counts"], "bad": bad})
    s.unreadable += getattr(runs, "unreadable", 0)  # lines that were not even JSON
    return s


def _containers(s: Soak, i: int, run: dict[str, Any], may: set[str]) -> None:
    for host, boxes in run.get("containers", {}).items():
        for name, now in boxes.items():
            b = s.boxes.get((host, name))
            if b is None:
                b = s.boxes[(host, name)] = Box(host, name, bytearray(i), f"{host}/{name}" in may)
            code = _box_code(now)
            restarted = _restarts(b.last, now)
            if restarted:
                b.restarts += restarted
                b.restart_runs.append(run["k"])
                code = C_RESTART
            b.codes.append(code)
            b.last, b.last_seen = now, run["finished"]
    for b in s.boxes.values():
        if len(b.codes) <= i:
            b.codes.append(C_ABSENT)


def _box_code(c: dict[str, Any]) -> int:
    if c.get("state") == "restarting":
        return C_RESTART
    if c.get("state") != "running":
        return C_STOPPED
    return C_UP if c.get("health") in (None, "healthy") else C_UNHEALTHY


def _restarts(before: dict[str, Any] | None, now: dict[str, Any]) -> int:
    """Restarts between two looks: a new container, a new start time, or a higher count."""
    if before is None:
        return 0
    if before.get("id") and now.get("id") and before["id"] != now["id"]:
        return 1  # recreated (compose up, watchtower): its restart count starts again
    counted = max(0, (now.get("restart_count") or 0) - (before.get("restart_count") or 0))
    started_again = bool(now.get("started_at")) and now.get("started_at") != before.get(
        "started_at") and now.get("state") == "running"
    return max(counted, 1 if started_again else 0)


def _reachability(s: Soak, i: int, run: dict[str, Any]) -> None:
    if run.get("error"):
        down: set[str] = set()
        asked: set[str] = set()
    else:
        down = set(run.get("unreachable") or {})
        s.reach_why.update(run.get("unreachable") or {})
        asked = {f"host:{h}" for _f, h, *_ in run["tests"].values() if h} | down
    for source in asked:
        s.reach.setdefault(source, bytearray(i))
    for source, codes in s.reach.items():
        codes.append(UNREACH if source in down else OK if source in asked else ABSENT)
