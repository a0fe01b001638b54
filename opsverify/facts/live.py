"""Live collection: the collectors of a run, and the head start `ops verify` gives them.

Before pytest has imported itself and collected the gates (~0.3 s on the lab twin), nothing
is asked of the hosts; after it, the collectors import paramiko and httpx (~0.17 s, all of it
CPU under one GIL) before the first login. The hosts' own part (sshd, the fact script, dockerd)
then runs while the verifier waits. So `ops verify` forks right after loading the SSOT: the
child imports the collectors and collects exactly the sources the selected gates read, on the
other core, while the parent starts pytest. When pytest wants its facts, the parent takes over
what an in-process run would have held (Collected): the facts, the unreachable and broken
sources, the audited host commands, and the secret values the child's collectors registered,
so that the parent masks them in every output.

Only where it is safe and exact (HeadStart.begin says why not, and the run goes on as before):
- one thread in the process: fork() copies the calling thread only, and a lock another thread
  held would stay locked in the child;
- the selection is known without pytest (--family and --host, not -k): a host the selection
  leaves out must not be contacted, so the child asks for nothing a gate will not read;
- live facts (not --facts) and a single run (not --wait, whose later tries re-collect).
If the child dies, sends something unreadable or is late, the parent kills it and the store
collects in-process whatever it lacks; no verdict depends on which of them collected.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsverify import families, redact
from opsverify.facts.contract import API_SOURCES
from opsverify.facts.store import AT_ONCE, Collector, FactStore
from opsverify.settings import Settings
from opsverify.ssot import Ssot


def collectors(ssot: Ssot, settings: Settings, record: Any = None) -> Mapping[str, Collector]:
    """Every live source's collector; record(host, command, purpose) audits host commands.

    Each kind is built (and its client library imported) when a source of it is first looked
    up: a replayed or SSOT-only run never loads paramiko and httpx, a store that adopted every
    fact loads neither, and the hosts' logins need not wait for httpx (~60 ms) to import."""
    return OnDemand(ssot, settings, record)


class OnDemand(Mapping[str, Collector]):
    """The collectors by kind, hosts (paramiko) and APIs (httpx), each built on first use."""

    def __init__(self, ssot: Ssot, settings: Settings, record: Any):
        self._ssot, self._settings, self._record = ssot, settings, record
        self._keys = dict.fromkeys([*(f"host:{name}" for name in ssot.active_hosts),
                                    *API_SOURCES])
        self._kinds: dict[str, dict[str, Collector]] = {}
        self._locks = {"hosts": threading.Lock(), "apis": threading.Lock()}

    def _kind(self, source: str) -> dict[str, Collector]:
        kind = "hosts" if source.startswith("host:") else "apis"
        with self._locks[kind]:  # the first of a kind builds it; the others wait for that only
            if kind not in self._kinds:
                self._kinds[kind] = self._build(kind)
            return self._kinds[kind]

    def _build(self, kind: str) -> dict[str, Collector]:
        if kind == "hosts":
            from opsverify.facts.hosts import host_collectors

            return host_collectors(self._ssot, self._settings, record=self._record)
        from opsverify.facts.apis import api_collectors

        return api_collectors(self._ssot, self._settings)

    def __contains__(self, source: object) -> bool:  # Mapping's own would build the kind
        return source in self._keys

    def __getitem__(self, source: str) -> Collector:
        if source not in self._keys:
            raise KeyError(source)
        return self._kind(source)[source]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def selected_sources(ssot: Ssot, family_names: list[str], hosts: list[str]) -> list[str]:
    """The sources the gates of this selection read, as pytest's prefetch will ask for them:
    --family keeps its families' gates, --host the gates concerning those hosts (whole names)."""
    registry = families.registry()
    out: dict[str, None] = {}
    for gate in families.gates(ssot):
        host = gate.case.host if gate.case else ""
        if (family_names and gate.family not in family_names) or (hosts and host not in hosts):
            continue
        out.update(dict.fromkeys(registry[gate.family].sources(ssot, host)))
    return list(out)


@dataclass
class Collected:
    """What a store that collected these sources holds (FactStore.adopt takes it over)."""

    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    remote_commands: list[dict[str, Any]] = field(default_factory=list)
    secrets: frozenset[str] = frozenset()


def collect(ssot: Ssot, settings: Settings, sources: list[str], at_once: int) -> Collected:
    """Collect the sources as a run's store would, at most at_once at a time."""
    if not sources:
        return Collected()
    store = FactStore(collectors(ssot, settings, lambda *a: store.record_command(*a)),
                      deadline=settings.timeout, contract=True)
    store.prefetch(sources, at_once=at_once)
    return Collected(store.collected(), store.unreachable(), store.broken(),
                     list(store.remote_commands), redact.known())


class HeadStart:
    """The forked child collecting while pytest starts; result() hands its Collected over."""

    def __init__(self, pid: int, fd: int, limit_s: float):
        self.pid, self._fd, self._end = pid, fd, time.monotonic() + limit_s
        self._result: Collected | None = None
        self._done = False

    @classmethod
    def begin(cls, ssot: Ssot, settings: Settings, family_names: list[str], hosts: list[str],
              at_once: int | None = None) -> HeadStart | None:
        """Fork the child collecting what the gates of this selection read (it works out which
        sources, so the fork comes first); None when that would not be safe (see above)."""
        if not hasattr(os, "fork") or threading.active_count() != 1:
            return None
        at_once = max(1, at_once or AT_ONCE)
        most = len(hosts or ssot.active_hosts) + len(API_SOURCES)
        limit_s = -(-most // at_once) * (settings.timeout + 5) + 5  # the store's bound, per wave
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: collect, write, leave without running anything of the parent's
            code = 1
            try:
                os.close(read_fd)
                _detach(parent)
                sources = selected_sources(ssot, family_names, hosts)
                data = pickle.dumps(collect(ssot, settings, sources, at_once),
                                    protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write_fd, "wb") as out:
                    out.write(data)
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        return cls(pid, read_fd, limit_s)

    def result(self) -> Collected | None:
        """The child's Collected, waiting for it; None if it failed or ran out of time (the
        store then collects in-process)."""
        if self._done:
            return self._result
        self._done = True
        chunks: list[bytes] = []
        try:
            while True:
                left = self._end - time.monotonic()
                if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                    break  # late: killed below
                chunk = os.read(self._fd, 1 << 20)
                if not chunk:
                    self._result = _unpickled(b"".join(chunks))
                    break
                chunks.append(chunk)
        finally:
            self.close()
        return self._result

    def close(self) -> None:
        """End the child (if still running) and reap it; idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.pid:
            try:
                if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0


def _detach(parent: int) -> None:
    """The child ends with its parent, and holds none of its terminal or pipes: a caller that
    reads `ops verify`'s output to the end (a soak run, a CI step) must not wait for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it with the parent
    try:  # a parent killed outright (SIGKILL) takes it along: no SSH session lingers
        from opsverify import lifetime  # ctypes: imported in the child only

        lifetime.die_with_parent()
    except (OSError, AttributeError):
        pass  # not Linux: it ends on its own, within the store's bound
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _unpickled(data: bytes) -> Collected | None:
    try:
        found = pickle.loads(data)  # from our own child, through a pipe only it could write
    except Exception:  # noqa: BLE001 -- a child that died mid-write: collect in-process
        return None
    return found if isinstance(found, Collected) else None
