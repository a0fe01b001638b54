"""Saved facts files (`--save-facts DIR`, `--facts DIR`) read against the facts contract.

load_file() reads one file and says where it breaks the contract (FactsFileError: the file, the
JSON path and the type found, never a value); check_dir() and replay_problem() do it for a
directory before a replay, and remember what they found whole (checked_before), so the run's
FactStore reads each file once more but does not check it again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from opsverify.facts.contract import problem, source_of


class FactsFileError(ValueError):
    """A saved facts file that is unreadable, not JSON, or breaks the contract."""


def load_file(path: Path, source: str | None = None) -> dict[str, Any]:
    """One saved facts file, checked against the contract; FactsFileError says where not."""
    source = source or source_of(path.name) or path.stem
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise FactsFileError(f"{path}: unreadable ({exc.strerror or type(exc).__name__})") \
            from None
    except UnicodeDecodeError as exc:
        raise FactsFileError(f"{path}: not JSON (not UTF-8 text at byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:  # JSONDecodeError: where, never what
        where = f" (line {exc.lineno} column {exc.colno}: {exc.msg})" \
            if isinstance(exc, json.JSONDecodeError) else ""
        raise FactsFileError(f"{path}: not JSON{where}") from None
    found = problem(source, doc)
    if found:
        raise FactsFileError(f"{path}: {source} facts break the contract at {found}")
    _checked.add(_identity(path))
    return doc


_checked: set[tuple] = set()  # files load_file() found whole (checked_before)


def _identity(path: Path) -> tuple:
    st = os.stat(path)
    return str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns


def checked_before(path: Path) -> bool:
    """load_file() found this file, as it is now, within the contract (~0.1 s saved per replay
    of 100 hosts)."""
    try:
        return _identity(path) in _checked
    except OSError:
        return False


def check_dir(directory: Path) -> list[str]:
    """Every problem of the saved facts in directory (files of known sources only)."""
    out = []
    for path in sorted(Path(directory).glob("*.json")):
        source = source_of(path.name)
        if source is None:
            continue
        try:
            load_file(path, source)
        except FactsFileError as exc:
            out.append(str(exc))
    return out


def replay_problem(directory: Path) -> str | None:
    """Why `--facts directory` cannot be replayed (one line, for a usage error), or None."""
    bad = check_dir(directory)
    if not bad:
        return None
    more = f" (and {len(bad) - 1} more file{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
    return f"--facts: {bad[0]}{more}"
