"""Soak runs: one iteration is `ops verify` in a child process; the schedule repeats it.

Each iteration asks the child for its results model (--json, in a scratch directory emptied
before every run) and keeps the ledger line outputs/ledger.py renders from it: every test's
outcome, duration and message, and each container's id, state, health, restart count and
start time (the model carries them; no facts file is read).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from opsverify import lifetime, redact, results
from opsverify.outputs.ledger import record
from opsverify.soak.ledger import Writer


def _die_with_parent() -> None:
    # A verify child must not outlive a soak killed with SIGKILL.
    lifetime.die_with_parent()
    os.setsid()


def run_once(flags: list[str], workdir: Path, *, timeout: float,
             env: dict[str, str] | None = None) -> dict[str, Any]:
    """One soak iteration: `ops verify FLAGS` in a child; its outcomes and container facts."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    json_path = workdir / "results.json"
    cmd = [sys.executable, "-m", "opsverify.cli", "verify", "-q", *flags,
           "--json", str(json_path)]
    started = time.time()
    error = None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, preexec_fn=_die_with_parent)  # noqa: PLW1509 - no threads
    try:
        output, _ = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code, error = results.EXIT_FAIL, f"the run did not finish within {timeout:g} s"
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finished = time.time()
    try:
        res: dict[str, Any] | None = results.load(json_path)
    except results.ResultsError:
        res = None
        error = error or _last_words(output.decode(errors="replace"), code)
    return record(res, started, finished, code, error)


def _last_words(output: str, code: int) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    tail = " / ".join(lines[-3:]) if lines else "no output"
    return results.one_line(f"no results (exit {code}): {tail}")


def parse_duration(text: str) -> float:
    """'5m', '72h', '1h30m', '2s', '90' (seconds) -> seconds; ValueError if not one."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    s = text.strip().lower()
    if s.replace(".", "", 1).isdigit():
        return float(s)
    total, number = 0.0, ""
    for ch in s:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units and number:
            total += float(number) * units[ch]
            number = ""
        else:
            raise ValueError(f"{text!r} is not a duration (like 30s, 5m, 72h, 1h30m)")
    if number or total <= 0:
        raise ValueError(f"{text!r} is not a duration (like 30s, 5m, 72h, 1h30m)")
    return total


def human(seconds: float) -> str:
    """1.5s, 12s, 4m 57s, 2h 05m, 3d 07h."""
    if seconds < 10 and seconds != int(seconds):
        return f"{max(0.0, seconds):.1f}s"
    s = max(0, round(seconds))
    if s >= 86400:
        return f"{s // 86400}d {s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def expected_runs(every_s: float, for_s: float) -> int:
    """Runs in the window: one at its start and one every `every` (72 h / 5 min = 864)."""
    return max(1, math.ceil(for_s / every_s - 1e-9))  # 6 / 0.3 is 20.000000000000004


class Progress:
    """The live progress line: rewritten in place on a terminal, one line per run otherwise."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._width = 0

    def show(self, text: str, *, final: bool = False) -> None:
        text = redact.safe(text)  # run messages quote hosts: no escape sequence reaches a tty
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self._width = 0 if final else len(text)
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()


def summary(run: dict[str, Any]) -> str:
    """187/187 PASS (2.1 s), or what went wrong."""
    if run.get("error"):
        return f"ERROR {run['error']}"
    c, total = run["counts"], len(run["tests"])
    parts = [f"{c['pass']}/{total} PASS"] + [f"{c[o]} {o.upper()}" for o in results.OUTCOMES[1:]
                                             if c.get(o)]
    return f"{', '.join(parts)} ({run['duration_s']:.1f} s)"


def loop(writer: Writer, *, workdir: Path, run_timeout: float, progress: Progress,
         step: Callable[..., dict[str, Any]] = run_once,
         clock: Callable[[], float] = time.time,
         sleep: Callable[[float], None] = time.sleep) -> None:
    """Run until the soak has its expected runs; each run starts `every` after the last began."""
    h = writer.header
    every, expected, name = float(h["every_s"]), int(h["expected_runs"]), h["name"]
    last_start = _ts(writer.last["started"]) if writer.last else None
    while writer.done < expected:
        k = writer.done + 1
        due = clock() if last_start is None else max(clock(), last_start + every)
        last = f"last: {summary(writer.last)}" if writer.last else "first run"
        while (left := due - clock()) > 0:
            progress.show(f"soak {name}: run {writer.done}/{expected} done, {last}, "
                          f"next run in {human(left)}")
            sleep(min(1.0, left) if progress.tty else left)
        progress.show(f"soak {name}: run {k}/{expected} running, {last}")
        last_start = clock()
        before = writer.last
        run = step(list(h["flags"]), workdir, timeout=run_timeout)
        writer.append({"k": k, **run})
        # On a terminal one line is rewritten; a run stays on screen when the verdict changes.
        changed = before is None or before["exit_code"] != run["exit_code"]
        progress.show(f"soak {name}: run {k}/{expected} {summary(run)}",
                      final=changed or not progress.tty or k == expected)
    shutil.rmtree(workdir, ignore_errors=True)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
