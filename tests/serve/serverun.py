"""Run `ops serve` in a child process as a person would, and talk to it over real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OPS = [sys.executable, "-m", "opsverify.cli"]
# Loopback only, and straight there: an http_proxy in the environment is not used.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
LISTENING = re.compile(r"ops serve: listening on http://(\S+?)/ ")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET",
        timeout: float = 10) -> Reply:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with NO_PROXY.open(req, timeout=timeout) as r:
            return Reply(r.status, dict(r.headers), r.read().decode())
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers), e.read().decode())


class Server:
    """`ops ARGS` (serve, possibly through `ops lab exec`); stderr kept in a file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.log = log
        self._err = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._err)
        self.base = ""

    def started(self, timeout: float = 60, port: int | None = None) -> Server:
        """Wait for the `listening on` line; the base URL (via 127.0.0.1 for 0.0.0.0)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log.read_text())
            if m:
                bound = m[1].rpartition(":")[2]
                self.base = f"http://127.0.0.1:{port or bound}"
                return self
            assert self.proc.poll() is None, f"ops serve exited: {self.log.read_text()}"
            time.sleep(0.05)
        raise AssertionError(f"ops serve did not listen within {timeout} s: {self.stderr}")

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    def get(self, path: str, **kw: Any) -> Reply:
        return get(self.base + path, **kw)

    def wait(self, path: str, until: Callable[[Reply], bool], timeout: float = 60,
             **kw: Any) -> Reply:
        """GET path until `until(reply)`; the reply that satisfied it."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(path, **kw)
            if until(r):
                return r
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: still {r.status} {r.body[:600]} after {timeout} s;"
                                     f" ops serve said:\n{self.stderr[-2000:]}")
            time.sleep(0.1)

    def children(self) -> list[int]:
        """The pids of its child processes (the `ops verify` runs)."""
        out: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            try:
                out += [int(p) for p in task.read_text().split()]
            except FileNotFoundError:  # a thread that ended since the glob: it has no children
                continue
        return out

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        return self.proc.returncode


def state_of(pid: int) -> str:
    """R, S, T (stopped), Z... or '' when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return ""


def stop_a_run(server: Server, timeout: float = 30) -> int:
    """SIGSTOP the `ops verify` child of the next (or current) run; its pid once it is stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in server.children():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"verify" not in cmdline:
                    continue
                os.kill(pid, signal.SIGSTOP)
            except (FileNotFoundError, ProcessLookupError):
                continue
            for _ in range(50):
                if state_of(pid) in ("T", "t"):
                    return pid
                if state_of(pid) in ("", "Z", "X"):
                    break  # it had finished already: take the next run's
                time.sleep(0.01)
        time.sleep(0.02)
    raise AssertionError(f"no ops verify run to stop within {timeout} s")


def metric_families(text: str) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(families: dict[str, Any], name: str, **labels: str) -> float:
    for fam in families.values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(f"{name}{labels}")
