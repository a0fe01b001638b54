"""Real wire-format and config samples, kept in the repository; SOURCES.md names each origin.

A missing sample is a failure, never a skip: a test that silently stops reading real data
proves nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DIR = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The sample file `name`; FileNotFoundError (a test failure) when it is not there."""
    p = DIR / name
    if not p.is_file():
        raise FileNotFoundError(f"sample {name!r} is missing from {DIR} (see SOURCES.md there)")
    return p


def text(name: str) -> str:
    return path(name).read_text()


def raw(name: str) -> bytes:
    return path(name).read_bytes()


def load_json(name: str) -> Any:
    return json.loads(raw(name))
