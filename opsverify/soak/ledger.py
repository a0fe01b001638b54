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
import math
import operator
import os
import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any, Self

from opsverify.redact import scrub_obj

FORMAT = "opsverify-soak/1"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_NUMBER = 10 ** 9  # no count, run number, duration or exit code of a soak comes near it


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
    # A new file of a random name (O_EXCL: nothing placed there beforehand is written through),
    # mode 0640 minus the umask: the ledger holds every run's messages.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        with os.fdopen(fd, "wb") as f:
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
    problem = header_problem(header)
    if problem:
        f.close()
        raise LedgerError(f"{path}:1: {problem}")
    return header, Runs(f)


class Runs:
    """The complete lines of a ledger after its header, parsed, in order; a line that is not
    JSON is skipped and counted in `unreadable` (a torn last line is the run in flight)."""

    def __init__(self, f: Any):
        self._f = f
        self.unreadable = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self._f as f:
            for line in f:
                if not line.endswith(b"\n"):
                    return  # the run in flight when the soak was killed
                try:
                    run = json.loads(line)
                except (ValueError, RecursionError):  # truncated or not JSON at all
                    self.unreadable += 1
                    continue
                yield run  # its content is checked by whoever reads it: run_problem()


def _number(value: Any, lo: float = 0) -> bool:
    """A finite JSON number in [lo, MAX_NUMBER] (not a boolean, NaN or 1e999)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    # an int is compared as an int: math.isfinite() of a 400-digit one raises OverflowError
    return (isinstance(value, int) or math.isfinite(value)) and lo <= value <= MAX_NUMBER


def _when(value: Any) -> bool:
    """An ISO time with its zone (the report subtracts them: naive and aware do not mix)."""
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _strs(value: Any, keys: bool = False) -> bool:
    items = value.items() if keys and isinstance(value, dict) else None
    if keys:
        return items is not None and all(isinstance(k, str) and isinstance(v, str)
                                         for k, v in items)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def header_problem(h: dict[str, Any]) -> str | None:
    """What is wrong with a ledger's header line, naming the field; None if it can be used."""
    if not isinstance(h.get("name"), str):
        return "header: name is not a string"
    for key in ("every_s", "for_s"):
        if not _number(h.get(key)):
            return f"header: {key} is not a number of seconds"
    if not isinstance(h.get("expected_runs"), int) or not _number(h["expected_runs"], 1):
        return "header: expected_runs is not a whole number of runs"
    if not _strs(h.get("flags")):
        return "header: flags is not a list of strings"
    if not (_strs(h.get("may_restart", [])) and isinstance(h.get("ssot", ""), str)):
        return "header: may_restart or ssot has the wrong type"
    return None


_BOX = {"id": str, "state": str, "health": str, "started_at": str}
_STR_OR_NONE = {str, type(None)}  # every _BOX field's type, or absent
_TEST_TYPES = frozenset((str, str, str, n, m) for n in (int, float) for m in (str, type(None)))


def run_problem(run: Any) -> str | None:
    """What is wrong with a run line (a missing key, a wrong type, NaN, a huge number); None if
    the report can show it. The report trusts nothing else about a line."""
    return _checked(run)[0]


Columns = tuple[tuple[str, ...], tuple[Any, ...], tuple[Any, ...], tuple[Any, ...],
                tuple[Any, ...]]


def run_columns(run: Any) -> Columns | None:
    """A run's tests as columns (ids, families, hosts, outcomes, messages), in the line's
    order; None if run_problem(run) is not None (the same rules, the same lines)."""
    return _checked(run)[1]


def _checked(run: Any) -> tuple[str | None, Columns | None]:
    if not isinstance(run, dict) or run.get("type", "run") != "run":
        return "not a run", None
    if not isinstance(run.get("k"), int) or not _number(run["k"], 1):
        return "k", None
    if not (_when(run.get("started")) and _when(run.get("finished"))):
        return "started/finished", None
    if not _number(run.get("duration_s")) or not isinstance(run.get("exit_code"), int) \
            or not _number(run["exit_code"], -MAX_NUMBER):
        return "duration_s/exit_code", None
    if not isinstance(run.get("error"), (str, type(None))):
        return "error", None
    counts = run.get("counts")
    if not isinstance(counts, dict) or not all(isinstance(k, str) and isinstance(n, int)
                                               and _number(n) for k, n in counts.items()):
        return "counts", None
    if not (_strs(run.get("relaxations", [])) and _strs(run.get("unreachable", {}), keys=True)):
        return "relaxations/unreachable", None
    tests = run.get("tests")
    if not isinstance(tests, dict):
        return "tests", None
    columns = _test_columns(tests)
    if columns is None:  # not the common shape: test by test, for the message
        for tid, t in tests.items():
            # [family, host, outcome, seconds, message] by exact JSON types (bool is no number)
            if not isinstance(t, list) or tuple(map(type, t)) not in _TEST_TYPES \
                    or not 0 <= t[3] <= MAX_NUMBER:
                return f"tests[{tid!r}]", None
        columns = _transpose(tests)
    boxes = run.get("containers", {})
    if not isinstance(boxes, dict) or not all(isinstance(b, dict) for b in boxes.values()):
        return "containers", None
    if not _boxes_ok(boxes):
        for host in boxes.values():
            for name, c in host.items():
                ok = isinstance(c, dict) and set(map(type, map(c.get, _BOX))) <= _STR_OR_NONE
                count = c.get("restart_count") if isinstance(c, dict) else None
                if not ok or not (count is None or isinstance(count, int) and _number(count)):
                    return f"containers[{name!r}]", None
    return None, columns


def _transpose(tests: dict[str, list[Any]]) -> Columns:
    if not tests:
        return (), (), (), (), ()
    fam, host, out, _secs, msg = zip(*tests.values(), strict=True)
    return tuple(tests), fam, host, out, msg


_STR, _NUM, _MSG = {str}, {int, float}, {str, type(None)}
_BOX_GET = operator.itemgetter(*_BOX)  # no default: a field left out goes the slow way


def _test_columns(tests: dict[str, Any]) -> Columns | None:
    """The columns when every test is [str, str, str, number in range, str|None] (what the
    loop in _checked() accepts), tested column by column in C; None when not (or empty)."""
    values = tests.values()
    if set(map(type, values)) != {list}:
        return None
    try:  # exactly 5 items in every list, or a ValueError
        fam, host, out, secs, msg = zip(*values, strict=True)
    except ValueError:
        return None
    if not (set(map(type, fam)) == set(map(type, host)) == set(map(type, out)) == _STR
            and set(map(type, secs)) <= _NUM and set(map(type, msg)) <= _MSG):
        return None
    # In range, and no NaN: min() and max() are only wrong about a NaN after the first item,
    # and then the sum of numbers in range is NaN.
    if not (0 <= min(secs) and max(secs) <= MAX_NUMBER and sum(secs) == sum(secs)):
        return None
    return tuple(tests), fam, host, out, msg


def _boxes_ok(boxes: dict[str, dict[str, Any]]) -> bool:
    """Every container a plain dict with each _BOX field (str or None) and a restart count (a
    whole number in range, or None), tested in C; False also when unsure (a field left out)."""
    cs = list(chain.from_iterable(map(dict.values, boxes.values())))
    if not cs:
        return True
    if set(map(type, cs)) != {dict}:
        return False
    try:
        fields = set(map(type, chain.from_iterable(map(_BOX_GET, cs))))
        counts = list(map(operator.itemgetter("restart_count"), cs))
    except KeyError:
        return False
    if not fields <= _STR_OR_NONE or not set(map(type, counts)) <= {int, type(None)}:
        return False
    counts = [n for n in counts if n is not None]
    return not counts or (min(counts) >= 0 and max(counts) <= MAX_NUMBER)


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
        header, runs = read(path)  # an unreadable run line does not count as done
        self.header = header
        self.done = 0
        self.last: dict[str, Any] | None = None
        for run in runs:
            if run_problem(run) is None:
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
