"""Secret values known to this process, and a scrubber every output passes through.

Collectors register each secret value they hold (API tokens, keys fetched for probes); every
report writer scrubs its text. A value that never reached a collector cannot leak through one.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "********"
_MIN_LEN = 4  # shorter values would mask ordinary words and numbers
_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(*values: str | None) -> None:
    """Remember secret values so that scrub() masks them wherever they appear."""
    global _pattern
    with _lock:
        before = len(_secrets)
        _secrets.update(v for v in values if v and len(v) >= _MIN_LEN)
        if len(_secrets) != before:
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(map(re.escape, ordered)))


def scrub(text: str) -> str:
    """text with every registered secret value replaced by a mask."""
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern and text else text


def scrub_obj(obj: Any) -> Any:
    """A JSON-like structure with every string scrubbed."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {scrub(str(k)): scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_obj(v) for v in obj]
    return obj


# Key names whose values are secrets by convention; config readers never report them.
SECRET_NAME = re.compile(r"(?i)(api[_-]?key|apikey|secret|passw(or)?d|token|credential|private)")
