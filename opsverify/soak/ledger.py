"""A soak ledger: JSON Lines, a header line then one line per completed run.

A run is appended with one write and an fsync, so a SIGKILL loses at most the run in flight:
its partial line has no newline, is ignored on read and cut off on resume. The header is
created whole (written aside, then linked into place) and a running soak holds an exclusive
lock on its ledger, so two soaks never write one file.

    {"type": "header", "format": "opsverify-soak/1", "name", "created": iso, "every_s",
     "for_s", "expected_runs", "flags": [ops verify selection flags], "ssot": dir,
     "may_restart": ["host/container"], "host": hostname of the soak runner}
    {"type": "run", "k": 1.., "started": iso, "finished": iso, "duration_s", "exit_code",
     "error": str|None (the run produced no results), "counts": {outcome: n},
     "relaxations": [checks turned off for the run],
     "unreachable": {source: reason},
     "tests": {nodeid: [family, host, outcome, duration_s, message]},
     "containers": {host: {name: {id, state, health, restart_count, started_at}}}}
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from opsverify.redact import scrub_obj

FORMAT = "opsverify-soak/1"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class LedgerError(Exception):
    """A ledger that cannot be created, locked or read; the message says which and why."""


def path_of(soak_dir: Path, name: str) -> Path:
    if not NAME.match(name):
        raise LedgerError(f"soak name {name!r}: use letters, digits, '.', '_' or '-'")
    return Path(soak_dir) / f"{name}.jsonl"


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(scrub_obj(obj), separators=(",", ":"), default=str).encode() + b"\n"


def create(path: Path, header: dict[str, Any]) -> None:
    """Create the ledger holding only its header; LedgerError if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(_line({"type": "header", "format": FORMAT, **header}))
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # atomic, and fails rather than replace an existing soak
    except FileExistsError:
        raise LedgerError(f"{path}: a soak of that name exists") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """(header, runs): runs is a generator over complete run lines, a torn tail ignored."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - the generator below owns and closes it
    except FileNotFoundError:
        raise LedgerError(f"{path}: no such soak ledger") from None
    except OSError as exc:
        raise LedgerError(f"{path}: {exc.strerror}") from None
    first = f.readline()
    try:
        header = json.loads(first) if first.endswith(b"\n") else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        f.close()
        raise LedgerError(f"{path}:1: not an opsverify soak ledger")

    def runs() -> Iterator[dict[str, Any]]:
        with f:
            for line in f:
                if not line.endswith(b"\n"):
                    return  # the run in flight when the soak was killed
                try:
                    run = json.loads(line)
                except ValueError:
                    continue
                if isinstance(run, dict) and run.get("type") == "run":
                    yield run
    return header, runs()


class Writer:
    """The open ledger of a running soak: locked, its torn tail cut, appended run by run."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            raise LedgerError(f"{path}: no such soak ledger") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise LedgerError(f"{path}: this soak is running in another process") from None
        self.repaired = self._cut_torn_tail()
        header, runs = read(path)
        self.header = header
        self.done = 0
        self.last: dict[str, Any] | None = None
        for run in runs:
            self.done, self.last = self.done + 1, run

    def _cut_torn_tail(self) -> int:
        """Truncate after the last newline; return how many bytes of a torn line went."""
        size = os.fstat(self._fd).st_size
        keep = size
        while keep > 0:
            start = max(0, keep - 65536)
            chunk = os.pread(self._fd, keep - start, start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            keep = start
        if keep != size:
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
        return size - keep

    def append(self, run: dict[str, Any]) -> None:
        """Append one completed run: one write, then fsync."""
        data = _line({"type": "run", **run})
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)
        self.done += 1
        self.last = run

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # also releases the lock
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
