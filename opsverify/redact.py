"""Secret values known to this process, and a scrubber every output passes through.

Collectors register each secret value they hold (API tokens, keys fetched for probes); every
report writer scrubs its text. A value that never reached a collector cannot leak through one.
"""

from __future__ import annotations

import html
import json
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

from opsverify.facts.agent.keypaths import SECRET_NAME  # noqa: F401 -- one rule, also on hosts

MASK = "********"
_MIN_LEN = 4  # shorter values would mask ordinary words and numbers
MIN_SECRET = 8  # shorter credentials are refused at start (settings.secret_problem)
_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def forms(value: str) -> set[str]:
    """Every spelling of value an output may hold: as is, with its whitespace collapsed (one-line
    messages), as a str or bytes repr (b'TOPSECRET\\t' in an HTTP library's error), JSON-,
    URL-, HTML- and XML-escaped."""
    out = {value, " ".join(value.split()), repr(value)[1:-1], json.dumps(value)[1:-1],
           json.dumps(value, ensure_ascii=False)[1:-1], quote(value), quote(value, safe=""),
           quote_plus(value), html.escape(value), html.escape(value, quote=False),
           html.escape(value).replace("&#x27;", "'").replace("\r", "&#13;")
           .replace("\n", "&#10;").replace("\t", "&#09;")}  # ElementTree's attribute escape
    for codec in ("utf-8", "latin-1"):
        try:
            out.add(repr(value.encode(codec))[2:-1])
        except UnicodeEncodeError:
            pass
    return {f for f in out if f}


def register(*values: str | None) -> None:
    """Remember secret values so that scrub() masks them, in every spelling, wherever they
    appear."""
    register_known({f for v in values if v and len(v) >= _MIN_LEN for f in forms(v)
                    if len(f) >= _MIN_LEN})


def known() -> frozenset[str]:
    """Every registered spelling (a forked collector hands these to its parent)."""
    with _lock:
        return frozenset(_secrets)


def register_known(spellings: frozenset[str] | set[str]) -> None:
    """Add spellings as they are (known() of another process: a forked collector's)."""
    global _pattern
    with _lock:
        before = len(_secrets)
        _secrets.update(spellings)
        if len(_secrets) != before:
            _pattern = re.compile("|".join(map(re.escape, sorted(_secrets, key=len, reverse=True))))


def scrub(text: str) -> str:
    """text with every registered secret value replaced by a mask."""
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern and text else text


def holds_secret(text: str) -> bool:
    """Whether text holds any registered secret, in any spelling (JSON-escaped included)."""
    pattern = _pattern
    return bool(pattern and text and pattern.search(text))


def scrub_obj(obj: Any) -> Any:
    """A JSON-like structure with every string scrubbed."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {scrub(str(k)): scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_obj(v) for v in obj]
    return obj


# Control characters (C0 but tab and newline, DEL, C1), bidirectional overrides, and what XML
# 1.0 cannot hold (lone surrogates, U+FFFE/U+FFFF): text from hosts and APIs may hold any of them.
_UNSAFE = ("\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
           "\u2066-\u2069\ufeff\ufff9-\ufffb\ufffe\uffff\ud800-\udfff")
_UNSAFE_LINE = re.compile(f"[\t\n{_UNSAFE}]")
_UNSAFE_TEXT = re.compile(f"[{_UNSAFE}]")


def _escape(m: re.Match[str]) -> str:
    n = ord(m.group())
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def visible(text: str, lines: bool = False) -> str:
    """text with every control character shown as an escape (ESC as \\x1b): nothing a host
    writes can move a terminal's cursor or make a report invalid XML. lines=True keeps
    newlines and tabs (a traceback); else they are escaped too."""
    return (_UNSAFE_TEXT if lines else _UNSAFE_LINE).sub(_escape, text)


def safe(text: str, lines: bool = False) -> str:
    """text scrubbed of secrets (first: a secret may hold a control character), then visible."""
    return visible(scrub(text), lines)
