"""Facts: collected once per run from every source in parallel, cached, saved, replayed.

A *source* is one host (`host:vm209`) or one API (`cloudflare`, `infisical`, `proxmox`,
`prometheus`, `http`). Its collector returns JSON-serialisable facts or raises Unreachable.
Gates read facts from the store and never collect anything themselves.

With contract=True (every gate run: fixtures/facts.py) the facts contract (contract.py) is
enforced where facts enter and leave the store:
- collected: facts of the wrong shape make their source an ERROR (FactsContractError), not
  UNREACHABLE: the host or API answered, and what went wrong is a bug of the verifier's own
  collector, which exit status 1 reports (4 would send someone to look at the network). The
  reason names the JSON path, what was expected and the type found; the other sources are
  untouched.
- saved (--save-facts): each file is checked as written; one that would break the contract
  is saved as the record {"error": "<where>"} instead, so a saved directory always replays.
- replayed (--facts): a file of the wrong shape is an ERROR naming the file and the path
  (`ops verify` refuses such a directory up front, as a usage error); a saved
  {"unreachable": ...} replays as UNREACHABLE, a saved {"error": ...} as that ERROR again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from opsverify.facts import contract as facts_contract
from opsverify.facts import saved
from opsverify.facts.contract import FactsContractError
from opsverify.outputs.files import write_atomic
from opsverify.redact import register_known, scrub_obj
from opsverify.verdict import Unreachable

Collector = Callable[[], dict[str, Any]]
AT_ONCE = 32  # sources collected at once at most (see prefetch); --parallel N sets fewer


def _file_name(source: str) -> str:
    return source.replace(":", "-") + ".json"


class FactStore:
    """Collects each source at most once; a source that fails stays UNREACHABLE for the run."""

    def __init__(self, collectors: Mapping[str, Collector], *, deadline: float,
                 replay_dir: Path | None = None, save_dir: Path | None = None,
                 contract: bool = False):
        self._collectors = collectors
        self._contract = contract
        self._deadline = deadline
        self._replay_dir = replay_dir
        self._save_dir = save_dir
        self._facts: dict[str, dict[str, Any]] = {}
        self._unreachable: dict[str, str] = {}
        self._broken: dict[str, str] = {}  # source -> where its facts break the contract
        self._lock = threading.Lock()
        self.remote_commands: list[dict[str, Any]] = []  # every command run on a host, audited
        # The previous run's container facts, read before this run overwrites them.
        self._previous = _previous_containers(save_dir) if save_dir is not None else {}

    @property
    def sources(self) -> list[str]:
        return sorted(self._collectors)

    def prefetch(self, sources: Iterable[str], at_once: int | None = None) -> None:
        """Collect the given sources concurrently, at most at_once (--parallel; default
        AT_ONCE) at a time, each bounded by the deadline."""
        todo = [s for s in dict.fromkeys(sources) if not self._known(s)]
        at_once = max(1, at_once or AT_ONCE)
        if len(todo) > at_once:
            # Each source's timeout counts from its own start: 100 fact scripts started at
            # once can outlast it waiting for CPU (the lab twin's hosts share the verifier's
            # cores), and beyond a few dozen hosts the verifier's own share of each login is
            # the limit anyway. A hung source holds a worker for one timeout, as below.
            with ThreadPoolExecutor(at_once, thread_name_prefix="prefetch") as pool:
                list(pool.map(lambda s: self.prefetch([s]), todo))
            return
        # One daemon thread per source, not a pool: a collector hung where no timeout reaches
        # is abandoned after the deadline, and a daemon thread cannot keep the interpreter
        # alive at exit (a pool's threads are joined then). Sources are few (hosts + 5 APIs).
        threads = {s: threading.Thread(target=self._collect, args=(s,), daemon=True,
                                       name=f"facts-{s}") for s in todo}
        for thread in threads.values():
            thread.start()
        end = time.monotonic() + self._deadline + 5
        for source, thread in threads.items():
            thread.join(max(0.0, end - time.monotonic()))
            if thread.is_alive():
                self._mark(source, f"no answer within {self._deadline:.0f} s")

    def get(self, source: str) -> dict[str, Any]:
        """Facts of one source; raises Unreachable with the reason it could not be asked, or
        FactsContractError with where its facts break the contract."""
        if not self._known(source):
            self.prefetch([source])
        if source in self._unreachable:
            raise Unreachable(source, self._unreachable[source])
        if source in self._broken:
            raise FactsContractError(source, self._broken[source])
        return self._facts[source]

    def collected(self) -> dict[str, dict[str, Any]]:
        """The facts of every source collected so far."""
        with self._lock:
            return dict(self._facts)

    def adopt(self, found: Any) -> None:
        """Take over what another store collected (a live.Collected: facts, unreachable and
        broken sources, audited commands, the secret values its collectors registered)."""
        register_known(found.secrets)
        with self._lock:
            self.remote_commands.extend(found.remote_commands)
            for source, reason in found.unreachable.items():
                self._unreachable.setdefault(source, reason)
            for source, reason in found.broken.items():
                if source not in self._unreachable:
                    self._broken.setdefault(source, reason)
            for source, facts in found.facts.items():
                if not (source in self._unreachable or source in self._broken):
                    self._facts.setdefault(source, facts)

    def _known(self, source: str) -> bool:
        return source in self._facts or source in self._unreachable or source in self._broken

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
        except FactsContractError as exc:  # a replayed file of the wrong shape, or {"error"}
            self._break(source, exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - a collector bug must not pass for drift or take the run down
            self._mark(source, f"collector error: {exc.__class__.__name__}: {exc}")
            return
        # collected facts are checked here; replayed ones were, by _replay
        found = facts_contract.problem(source, facts) \
            if self._contract and self._replay_dir is None else None
        if found:
            self._break(source, f"its collector's facts break the contract at {found}")
            return
        with self._lock:
            if source not in self._unreachable:
                self._facts[source] = facts

    def _break(self, source: str, reason: str) -> None:
        with self._lock:
            if source not in self._unreachable:
                self._broken.setdefault(source, reason)

    def _mark(self, source: str, reason: str) -> None:
        with self._lock:
            self._unreachable.setdefault(source, reason)

    def _replay(self, source: str) -> dict[str, Any]:
        path = self._replay_dir / _file_name(source)
        try:
            facts = json.loads(path.read_text())
        except FileNotFoundError:
            raise Unreachable(source, f"no saved facts ({path})") from None
        except (OSError, ValueError) as exc:
            raise Unreachable(source, f"saved facts unreadable ({path}: {exc})") from None
        found = facts_contract.problem(source, facts) \
            if self._contract and not saved.checked_before(path) else None
        if found:
            raise FactsContractError(source, f"saved facts {path} break the contract at {found}")
        if isinstance(facts, dict) and set(facts) == {"unreachable"}:
            raise Unreachable(source, str(facts["unreachable"]))
        if self._contract and isinstance(facts, dict) and set(facts) == {"error"}:
            raise FactsContractError(source, str(facts["error"]))
        return facts

    def save(self) -> None:
        """Write every source's facts to the save directory (--save-facts), at the end of the run.

        Not as each source finishes: a secret another source registers later (a key fetched
        from Infisical for a probe) must be masked in every file, so all are scrubbed once
        every collector has run."""
        if self._save_dir is None:
            return
        with self._lock:
            done = {**{s: {"error": r} for s, r in self._broken.items()},
                    **{s: {"unreachable": r} for s, r in self._unreachable.items()},
                    **{s: f for s, f in self._facts.items() if s not in self._unreachable}}
        for source, facts in sorted(done.items()):
            text = json.dumps(scrub_obj(facts), indent=1, sort_keys=True, default=str)
            # as replay will read it: after masking and JSON's own conversions (default=str)
            found = facts_contract.problem(source, json.loads(text)) if self._contract else None
            if found:
                text = json.dumps({"error": f"saved facts break the contract at {found}"},
                                  indent=1)
            write_atomic(self._save_dir / _file_name(source), text)

    def previous(self, source: str) -> dict[str, Any] | None:
        """The container facts `--save-facts DIR` saved for this source in the previous run."""
        return self._previous.get(source)

    def record_command(self, host: str, command: str, purpose: str) -> None:
        """Remember a command run on a host, so the run's output can be audited."""
        with self._lock:
            self.remote_commands.append({"host": host, "purpose": purpose, "command": command})

    def unreachable(self) -> dict[str, str]:
        return dict(self._unreachable)

    def broken(self) -> dict[str, str]:
        """Sources whose facts break the contract: where (their gates are ERRORs)."""
        return dict(self._broken)


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
