"""The soak's ledger analysed in one pass: per gate, container and source, one code per run.

What the report shows (report.py renders it) and what `ops soak report` exits with (the
verdict) both come from here. Memory grows with gates x runs bytes, not with the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from opsverify.soak.ledger import Columns, run_columns

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
_NOT_BAD = bytes(c for c in range(256) if c not in BAD)  # deleted, what is left is BAD
_FLAP = bytes.maketrans(bytes((OK, FAILED, ERR)), b"pbb")
_NOT_FLAP = bytes(c for c in range(256) if c not in (OK, FAILED, ERR))


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
        # Only PASS (p) and FAIL/ERROR (b) count; a flap is a "bp" after the first p.
        return self.codes.translate(_FLAP, _NOT_FLAP).lstrip(b"b").count(b"bp")

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
    """One pass over the runs; memory grows with gates x runs bytes, not with the ledger.

    A run's outcomes become one row of codes; rows of runs with the same gates in the same
    order (a segment) are joined and cut into each gate's strip by slicing, not gate by gate.
    """
    s = Soak(header)
    boxes = _Boxes(s, set(header.get("may_restart") or []))
    ids: tuple[str, ...] | None = None
    gates: list[Gate] = []  # the segment's gates, in its rows' order
    rows: list[bytes] = []
    i = 0
    for run in runs:
        columns = run_columns(run)  # a line with a missing key, a wrong type, NaN or 1e999
        if columns is None:
            s.unreadable += 1
            continue
        if columns[0] != ids:
            _flush(s, gates, rows, i)
            ids, rows, gates = columns[0], [], _gates(s, i, columns)
        codes = bytes(map(CODE.get, columns[3], repeat(ERR)))
        rows.append(codes)
        bad = bool(codes.translate(None, _NOT_BAD))
        if bad:
            messages = columns[4]
            for j, code in enumerate(codes):
                if code in BAD:
                    g = gates[j]
                    g.bad_runs += 1
                    seen = (run["k"], run["started"], messages[j] or "")
                    g.first_bad = g.first_bad or seen
                    g.last_bad = seen
        boxes.add(i, run)
        _reachability(s, i, run, columns[2])
        s.relaxations = run.get("relaxations") or s.relaxations
        s.runs.append({"k": run["k"], "started": run["started"], "finished": run["finished"],
                       "duration_s": run["duration_s"], "exit_code": run["exit_code"],
                       "error": run.get("error"), "counts": run["counts"], "bad": bad})
        i += 1
    _flush(s, gates, rows, i)
    boxes.flush()
    s.unreadable += getattr(runs, "unreadable", 0)  # lines that were not even JSON
    return s


def _gates(s: Soak, i: int, columns: Columns) -> list[Gate]:
    """The gates of a run's columns, a gate seen for the first time added (its strip padded)."""
    out = []
    for test_id, family, host in zip(columns[0], columns[1], columns[2], strict=True):
        g = s.gates.get(test_id)
        if g is None:
            g = s.gates[test_id] = Gate(test_id, family, host, bytearray(i))
        out.append(g)
    return out


def _flush(s: Soak, gates: list[Gate], rows: list[bytes], i: int) -> None:
    """Add a segment's rows to its gates' strips; pad every strip to i runs (no result)."""
    if rows and gates:
        data, width = b"".join(rows), len(gates)
        for j, g in enumerate(gates):
            g.codes += data[j::width]
    for g in s.gates.values():
        if len(g.codes) < i:
            g.codes += bytes(i - len(g.codes))


class _Boxes:
    """The containers' strips. A run whose containers equal the last run's (the common case)
    is only counted: nothing can have restarted, each strip repeats its last code."""

    def __init__(self, s: Soak, may: set[str]):
        self.s, self.may = s, may
        self.prev: dict[str, Any] | None = None
        self.repeats, self.finished = 0, ""

    def add(self, i: int, run: dict[str, Any]) -> None:
        now = run.get("containers", {})
        if self.prev is not None and now == self.prev:
            self.repeats, self.finished = self.repeats + 1, run["finished"]
            return
        self.flush()
        _containers(self.s, i, run, self.may)
        self.prev = now

    def flush(self) -> None:
        if not self.repeats or self.prev is None:
            return
        for b in self.s.boxes.values():
            if b.name in self.prev.get(b.host, {}):
                b.codes += bytes((_box_code(b.last or {}),)) * self.repeats
                b.last_seen = self.finished
            else:
                b.codes += bytes((C_ABSENT,)) * self.repeats
        self.repeats = 0


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


def _reachability(s: Soak, i: int, run: dict[str, Any], hosts: tuple[str, ...]) -> None:
    if run.get("error"):
        down: set[str] = set()
        asked: set[str] = set()
    else:
        down = set(run.get("unreachable") or {})
        s.reach_why.update(run.get("unreachable") or {})
        asked = {f"host:{h}" for h in set(hosts) if h} | down
    for source in asked:
        s.reach.setdefault(source, bytearray(i))
    for source, codes in s.reach.items():
        codes.append(UNREACH if source in down else OK if source in asked else ABSENT)
