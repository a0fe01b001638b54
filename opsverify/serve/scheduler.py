"""The scheduler of `ops serve`: `ops verify` in a child process every interval, never two at
once (a run still going when the next is due makes the next wait). Each finished run replaces
the last one, its outputs rendered once (requests only send them); --state keeps it on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from opsverify import lifetime, redact, results
from opsverify.outputs.files import write_atomic
from opsverify.outputs.html import page
from opsverify.outputs.ledger import iso
from opsverify.outputs.prometheus import prometheus_text
from opsverify.outputs.terminal import headline
from opsverify.soak.runner import _last_words

STATE_FORMAT = "opsverify-serve/1"


def log(message: str) -> None:
    """One line on stderr, scrubbed of every secret, control characters shown as escapes."""
    print(redact.safe(f"ops serve: {message}"), file=sys.stderr, flush=True)


class Scheduler(threading.Thread):
    """Runs `ops verify` in a child every `every` seconds and keeps the last run's outputs."""

    def __init__(self, flags: list[str], every: float, timeout: float, state: Path | None):
        super().__init__(name="ops-serve-scheduler", daemon=True)
        self.flags, self.every, self.timeout, self.state = flags, every, timeout, state
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.last: dict[str, Any] | None = load_state(state) if state else None
        self.runs = 0
        self.running_since: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="ops-serve-"))
        # Resolved here, before any thread runs: the forked child (of a threaded process)
        # only makes the call, no import, no dlopen, no lock.
        self._prctl = lifetime.prctl_function()

    def snapshot(self) -> tuple[dict[str, Any] | None, int, bool]:
        with self.lock:
            return self.last, self.runs, self.running_since is not None

    def run(self) -> None:
        last_start: float | None = None
        if self.last:  # from --state: the schedule goes on where the last process left it
            last_start = time.monotonic() - max(0.0, time.time() - self.last["started"])
            log(f"--state: serving the run that finished at {iso(self.last['finished'])}")
        while not self.stop.is_set():
            due = time.monotonic() if last_start is None else last_start + self.every
            if self.stop.wait(max(0.0, due - time.monotonic())):
                break
            last_start = time.monotonic()
            done = self.run_once()
            if done is None:
                break  # stopped during the run
            with self.lock:
                self.last, self.runs, self.running_since = done, self.runs + 1, None
            line = headline(done["results"]) if done["results"] else f"ERROR {done['error']}"
            log(f"run {self.runs}, exit {done['exit_code']}: {line}")
            if self.state:
                save_state(self.state, done)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run_once(self) -> dict[str, Any] | None:
        json_path, out_path = self.workdir / "results.json", self.workdir / "output.txt"
        json_path.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "opsverify.cli", "verify", "-q", *self.flags,
               "--json", str(json_path)]
        error = None
        with self.lock, open(out_path, "wb") as out:
            if self.stop.is_set():
                return None
            self.running_since = started = time.time()
            self._proc = proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._die_with_parent)  # noqa: PLW1509 (see there)
        try:
            code = proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = results.EXIT_FAIL
            error = f"the run did not finish within {self.timeout:g} s and was killed"
        if self.stop.is_set():
            return None
        try:
            res: dict[str, Any] | None = results.load(json_path)
        except results.ResultsError:
            res = None
            error = error or _last_words(out_path.read_text(errors="replace"), code)
        return render({"started": started, "finished": time.time(), "exit_code": code,
                       "error": error, "results": res})

    def _die_with_parent(self) -> None:
        # A verify child must not outlive an `ops serve` killed with SIGKILL.
        lifetime.die_with_parent(self._prctl)

    def kill(self) -> None:
        """Kill the running child and its process group (if any)."""
        with self.lock:  # not while Popen is still starting it
            proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def render(run: dict[str, Any]) -> dict[str, Any]:
    """The run with its outputs rendered once (requests then only send them)."""
    res = run["results"]
    run["prom"] = prometheus_text(res, now=run["finished"], code=run["exit_code"])
    run["html"] = page(res) if res else None
    run["json"] = results.dump(res) if res else None
    return run


def save_state(directory: Path, run: dict[str, Any]) -> None:
    keep = {k: run[k] for k in ("started", "finished", "exit_code", "error", "results")}
    try:
        write_atomic(directory / "last.json",
                     json.dumps(redact.scrub_obj({"format": STATE_FORMAT, **keep})) + "\n", 0o600)
    except OSError as exc:
        log(f"--state {directory}: cannot write last.json: {exc.strerror}")


def load_state(directory: Path) -> dict[str, Any] | None:
    path = directory / "last.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != STATE_FORMAT:
            raise ValueError("not an ops serve state file")
        return render({k: data[k] for k in ("started", "finished", "exit_code", "error",
                                            "results")})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log(f"--state {directory}: ignoring last.json: {exc}")
        return None


