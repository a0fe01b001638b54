"""What every host-agent module shares: content-free errors, bounded reads, the deadline.

- ParseError, and describe_error(): an error names the line, field or path, never content
  (a file may hold secrets, and errors end up in reports);
- read_file() and walk(): files opened read-only, without following links where asked, never
  changing even the access time, with a size limit;
- Context: one run's parameters and its deadline, which every section asks for its timeouts;
- open_sqlite(): a database opened read-only and immutable (no lock, no -wal/-shm/-journal);
- the small readers of JSON values and text that several parsers use.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any

MAX_FILE = 64 * 1024 * 1024  # larger files are skipped by the scan and refused as configs
MAX_SKIPPED = 200  # skipped paths listed per stack and per scan; the rest are counted
MAX_DEPTH = 64  # nesting limit of the YAML reader and of key paths


class ParseError(ValueError):
    """Input that cannot be parsed; the message names where, never what."""


def describe_error(exc: BaseException) -> str:
    """An exception as a fact: parse errors and OS errors say where; others only their type."""
    if isinstance(exc, ParseError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    line = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{line}"  # its message might quote content


class Context:
    """The parameters of one run and its deadline."""

    def __init__(self, params: dict[str, Any], deadline: float):
        self.p = params
        self.deadline = deadline
        self.budget = float(params.get("budget_s", 8))
        self.secret_name = re.compile(params.get("secret_name") or r"(?!)")
        files = params.get("files") or {}
        self.mounts_file = files.get("mounts", "/proc/mounts")
        self.fstab_file = files.get("fstab", "/etc/fstab")
        self.docker_socket = files.get("docker_socket", "/var/run/docker.sock")
        self.roots = tuple(params.get("config_roots") or ())

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def slice(self, at_most: float) -> float:
        """A timeout for one step: at most at_most, never past the deadline."""
        return max(0.1, min(at_most, self.left()))


# --- reading files --------------------------------------------------------------------------

def _open(path: str, follow: bool = True) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:  # O_NOATIME needs to own the file (or CAP_FOWNER)
        return os.open(path, flags)


def read_file(path: str, follow: bool = True, limit: int = MAX_FILE,
              head: Callable[[bytes], bool] | None = None) -> bytes | None:
    """A regular file's bytes; None when head(first 16 bytes) says to skip it."""
    fd = _open(path, follow)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file", path)
        first = f.read(16)
        if head is not None and head(first):
            return None
        data = first + f.read(limit + 1 - len(first))
    if len(data) > limit:
        raise OSError(0, f"larger than {limit // (1024 * 1024)} MiB", path)
    return data


def walk(root: str, on_skip: Callable[[str, str], None]) -> Iterator[tuple[str, list[str]]]:
    """(dirpath, filenames) below root in a stable order, never through a symlink."""
    def onerror(exc: OSError) -> None:
        on_skip(exc.filename or root, describe_error(exc))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames.sort()
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                on_skip(os.path.join(dirpath, d), "symbolic link, not followed")
        yield dirpath, sorted(filenames)


# --- SQLite, read-only ----------------------------------------------------------------------

def sqlite3_module() -> Any:
    """The sqlite3 module, imported when first needed (it costs start-up); None if absent."""
    try:
        import sqlite3
    except ImportError:  # some minimal Pythons lack it: databases are then scanned as bytes
        return None
    return sqlite3


def sqlite_errors() -> tuple[type[Exception], ...]:
    """What `except` catches of SQLite's errors: nothing when this Python has no sqlite3."""
    module = sqlite3_module()
    return (module.Error,) if module else ()


def open_sqlite(path: str) -> Any:
    """A read-only, immutable connection: no lock taken, no -wal/-shm/-journal created."""
    from urllib.parse import quote

    sqlite3 = sqlite3_module()
    if sqlite3 is None:
        raise OSError(0, "this Python has no sqlite3 module", path)
    con = sqlite3.connect(f"file:{quote(path)}?mode=ro&immutable=1", uri=True,
                          isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA query_only = ON")
    return con


def sql_ident(name: str) -> str:
    """A table or column name quoted for SQL (names come from the file, never trusted)."""
    return '"' + name.replace('"', '""') + '"'


# --- text and JSON values -------------------------------------------------------------------

def as_text(data: str | bytes, what: str) -> str:
    """Input as text: bytes decoded as UTF-8 (invalid bytes replaced), anything else refused."""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    if not isinstance(data, str):
        raise ParseError(f"{what}: expected text, got {type(data).__name__}")
    return data


def strip_comment(value: str) -> str:
    """A value without its ` # comment`; a `#` inside quotes or inside a word stays."""
    quote = ""
    for i, ch in enumerate(value):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or value[i - 1] in " \t"):
            return value[:i]
    return value


def load_json(data: str | bytes | Any, what: str) -> Any:
    """Parsed JSON text (other values pass through); ParseError names the position only."""
    if not isinstance(data, (str, bytes)):
        return data
    try:
        return json.loads(data)
    except RecursionError:
        raise ParseError(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, huge numbers: no content
        where = f" at line {exc.lineno} column {exc.colno}" if hasattr(exc, "lineno") else ""
        raise ParseError(f"{what}: invalid JSON{where}") from None


def json_field(obj: dict, key: str, kind: type | tuple, what: str, default: Any = None) -> Any:
    """obj[key] when it is None or of type kind (a bool is no int); else ParseError."""
    value = obj.get(key, default)
    if value is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ParseError(f"{what}: {key} has type {type(value).__name__}")


def json_object(value: Any, what: str) -> dict:
    """A JSON object ({} for null); ParseError for anything else."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParseError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def json_strings(value: Any, what: str) -> list[str]:
    """A JSON list of strings ([] for null); ParseError for anything else."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseError(f"{what}: expected a list of strings")
    return list(value)
