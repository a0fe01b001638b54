"""Facts: collected once per run from every source in parallel, cached, saved, replayed.

A *source* is one host (`host:vm209`) or one API (`cloudflare`, `infisical`, `proxmox`,
`prometheus`, `http`). Its collector returns JSON-serialisable facts or raises Unreachable.
Gates read facts from the store and never collect anything themselves.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from opsverify.redact import scrub_obj
from opsverify.verdict import Unreachable

Collector = Callable[[], dict[str, Any]]


def _file_name(source: str) -> str:
    return source.replace(":", "-") + ".json"


class FactStore:
    """Collects each source at most once; a source that fails stays UNREACHABLE for the run."""

    def __init__(self, collectors: dict[str, Collector], *, deadline: float,
                 replay_dir: Path | None = None, save_dir: Path | None = None):
        self._collectors = collectors
        self._deadline = deadline
        self._replay_dir = replay_dir
        self._save_dir = save_dir
        self._facts: dict[str, dict[str, Any]] = {}
        self._unreachable: dict[str, str] = {}
        self._lock = threading.Lock()
        self.remote_commands: list[dict[str, Any]] = []  # every command run on a host, audited
        # The previous run's container facts, read before this run overwrites them.
        self._previous = _previous_containers(save_dir) if save_dir is not None else {}

    @property
    def sources(self) -> list[str]:
        return sorted(self._collectors)

    def prefetch(self, sources: Iterable[str]) -> None:
        """Collect the given sources concurrently, each bounded by the deadline."""
        todo = [s for s in dict.fromkeys(sources) if s not in self._facts
                and s not in self._unreachable]
        if not todo:
            return
        pool = ThreadPoolExecutor(max_workers=min(16, len(todo)), thread_name_prefix="facts")
        futures = {s: pool.submit(self._collect, s) for s in todo}
        for source, fut in futures.items():
            try:
                fut.result(timeout=self._deadline + 5)
            except FutureTimeout:
                self._mark(source, f"no answer within {self._deadline:.0f} s")
        # A hung collector must not hold the run: its thread is abandoned, not joined.
        pool.shutdown(wait=False, cancel_futures=True)

    def get(self, source: str) -> dict[str, Any]:
        """Facts of one source; raises Unreachable with the reason it could not be asked."""
        if source not in self._facts and source not in self._unreachable:
            self.prefetch([source])
        if source in self._unreachable:
            raise Unreachable(source, self._unreachable[source])
        return self._facts[source]

    def _collect(self, source: str) -> None:
        try:
            if self._replay_dir is not None:
                facts = self._replay(source)
            elif source not in self._collectors:
                raise Unreachable(source, "no collector for this source")
            else:
                facts = self._collectors[source]()
        except Unreachable as exc:
            self._mark(source, exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - a collector bug must not pass for drift or take the run down
            self._mark(source, f"collector error: {exc.__class__.__name__}: {exc}")
            return
        with self._lock:
            if source not in self._unreachable:
                self._facts[source] = facts
        if self._save_dir is not None:
            self._save(source, facts)

    def _mark(self, source: str, reason: str) -> None:
        with self._lock:
            self._unreachable.setdefault(source, reason)
        if self._save_dir is not None:
            self._save(source, {"unreachable": reason})

    def _replay(self, source: str) -> dict[str, Any]:
        path = self._replay_dir / _file_name(source)
        try:
            facts = json.loads(path.read_text())
        except FileNotFoundError:
            raise Unreachable(source, f"no saved facts ({path})") from None
        except (OSError, ValueError) as exc:
            raise Unreachable(source, f"saved facts unreadable ({path}: {exc})") from None
        if isinstance(facts, dict) and set(facts) == {"unreachable"}:
            raise Unreachable(source, str(facts["unreachable"]))
        return facts

    def _save(self, source: str, facts: dict[str, Any]) -> None:
        self._save_dir.mkdir(parents=True, exist_ok=True)
        path = self._save_dir / _file_name(source)
        tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
        # Facts hold no secret by contract; scrubbing again costs little and backs that up.
        tmp.write_text(json.dumps(scrub_obj(facts), indent=1, sort_keys=True, default=str))
        os.replace(tmp, path)

    def previous(self, source: str) -> dict[str, Any] | None:
        """The container facts `--save-facts DIR` saved for this source in the previous run."""
        return self._previous.get(source)

    def record_command(self, host: str, command: str, purpose: str) -> None:
        """Remember a command run on a host, so the run's output can be audited."""
        with self._lock:
            self.remote_commands.append({"host": host, "purpose": purpose, "command": command})

    def unreachable(self) -> dict[str, str]:
        return dict(self._unreachable)


def _previous_containers(directory: Path) -> dict[str, dict[str, Any]]:
    """{host:<name>: {"docker": {"now", "containers": [{name, id, restart_count}]}}} of the
    facts saved in directory by an earlier run (what a restart-loop check compares with)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(directory).glob("host-*.json")) if Path(directory).is_dir() else []:
        try:
            docker = json.loads(path.read_text()).get("docker") or {}
        except (OSError, ValueError, AttributeError):
            continue  # unreadable or from another tool: no previous run to compare with
        containers = [{k: c.get(k) for k in ("name", "id", "restart_count")}
                      for c in docker.get("containers") or [] if isinstance(c, dict)]
        out["host:" + path.stem.removeprefix("host-")] = {
            "docker": {"now": docker.get("now"), "containers": containers}}
    return out
