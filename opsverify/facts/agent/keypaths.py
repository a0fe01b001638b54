"""Values at dotted key paths of config documents, a secret's value only as present or absent.

One rule decides what names a secret (SECRET_NAME): the fact script applies it on the host to
every config value it returns, whatever PARAMS say, and the verifier's redaction (redact.py)
and HTTP probes (api_http.py) import it from here, so there is one rule, not two. values_at()
reads parsed JSON/YAML/TOML; xml_values() reads XML with the same rules; descend_json() reads
JSON text held in a SQLite column.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.
"""

from __future__ import annotations

import re
from typing import Any

from opsverify.facts.agent.primitives import MAX_DEPTH, ParseError, load_json

# Key names whose values are secrets by convention, matched anywhere in a key name (apiKey,
# RADARR_API_KEY, SslCertPassword, basicAuthPassword, plexToken, vapidPrivate, tmdbtoken,
# botAPI, webhookUrl, flask_secret_key, ...), and notification URLs that embed a token
# (Posterizarr's Discord, AppriseUrl). A bare `key` counts as a word of its own only (nzb_key,
# ApiKey, KEY; not keyboard or monkey), `pass` not in passthrough/passive/bypass, `auth` not in
# author/authority. Over-matching hides a setting; under-matching leaks a secret. The fact
# script applies this rule itself, whatever PARAMS say (tests/security checks real keys).
SECRET_NAME = re.compile(
    r"(?i)(?:(?<!by)pass(?!thr|ive)|pwd|secret|token|salt|cookie|session|claim|bearer"
    r"|auth(?!or(?!i[sz]))|credential|private|webhook|discord|apprise|api[_-]?key|api$"
    r"|(?-i:(?:(?<![A-Za-z])[Kk]ey|(?<=[a-z])Key|(?<![A-Za-z])KEY)(?![a-z])))")
# What a secret-named key's value reads as: whether it is set, never what it is.
SECRET_PRESENT = "<secret: present>"
SECRET_ABSENT = "<secret: absent>"


def secret_named(name: Any, extra: re.Pattern | None = None) -> bool:
    """Whether a key or variable name names a secret (SECRET_NAME, or `extra` from PARAMS)."""
    text = str(name)
    return bool(SECRET_NAME.search(text) or (extra is not None and extra.search(text)))


def _hidden(value: Any) -> str:
    empty = value is None or (isinstance(value, (str, bytes, list, dict)) and not value)
    return SECRET_ABSENT if empty else SECRET_PRESENT


def _index(seg: str) -> int:
    """A path segment as a list index; anything else is an index no list reaches."""
    return int(seg) if seg.isascii() and seg.isdigit() and len(seg) < 10 else 1 << 62


def split_path(path: str) -> list[str]:
    """A dotted key path as its segments; `*` matches every key or item."""
    if not isinstance(path, str) or not path or any(not s for s in path.split(".")):
        raise ParseError(f"invalid key path {path!r}")
    segments = path.split(".")
    if len(segments) > MAX_DEPTH:
        raise ParseError(f"key path {path!r} is deeper than {MAX_DEPTH}")
    return segments


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes):  # a BLOB column
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return "<object>"  # never a subtree: it could hold a secret beside the wanted key
    if isinstance(value, list):
        return "<list>"
    return value


def _shown(found: list[tuple[Any, bool]], wild: bool) -> list[Any]:
    """What a path's matches read as: a match at or below a secret-named key only as present or
    absent; through a `*` only scalar leaves (a subtree could hold anything); else the value."""
    out = []
    for value, hidden in found:
        if hidden:
            out.append(_hidden(value))
        elif not (wild and isinstance(value, (dict, list))):
            out.append(_scalar(value))
    return out


def values_at(doc: Any, path: str, secret_name: re.Pattern | None = None) -> list[Any]:
    """Every value at a dotted path in parsed JSON/YAML data (numeric segments index lists).

    A value whose key, or any key above it, names a secret reads SECRET_PRESENT/ABSENT.
    """
    segments = split_path(path)
    nodes: list[tuple[Any, bool]] = [(doc, False)]
    for seg in segments:
        nxt: list[tuple[Any, bool]] = []
        for node, hidden in nodes:
            if isinstance(node, dict):
                items = node.items() if seg == "*" else [(seg, node[seg])] if seg in node else []
                nxt.extend((v, hidden or secret_named(k, secret_name)) for k, v in items)
            elif isinstance(node, list):
                if seg == "*":
                    nxt.extend((v, hidden) for v in node)
                elif _index(seg) < len(node):
                    nxt.append((node[int(seg)], hidden))
        nodes = nxt
    return _shown(nodes, "*" in segments)


def json_values(data: str | bytes, path: str, secret_name: re.Pattern | None = None) -> list[Any]:
    """Values at a dotted path of a JSON document."""
    return values_at(load_json(data, "JSON file"), path, secret_name)


def descend_json(value: Any, rest: list[str], secret_name: re.Pattern | None = None) -> list[Any]:
    """Values below a column's value: JSON text is parsed and descended into."""
    if not rest:
        return [_scalar(value)]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return []
    try:
        doc = load_json(value, "column")
    except ParseError:
        return []
    return values_at(doc, ".".join(rest), secret_name)


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def xml_values(data: str | bytes, path: str, secret_name: re.Pattern | None = None) -> list[Any]:
    """Text of every element at a dotted path from the root element (namespaces ignored).

    An element named as a secret, or below one, reads SECRET_PRESENT/ABSENT.
    """
    segments = split_path(path)
    raw = data.encode() if isinstance(data, str) else data
    if not isinstance(raw, bytes):
        raise ParseError(f"XML file: expected text, got {type(data).__name__}")
    if b"<!ENTITY" in raw:  # entity expansion is how XML bombs work; app configs have none
        raise ParseError("XML file: entity declarations are refused")
    import xml.etree.ElementTree as ET  # only hosts with an XML check pay for the import

    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        raise ParseError(f"XML file: not well-formed at line {line} column {col}") from None
    except (ValueError, LookupError):
        raise ParseError("XML file: unreadable encoding") from None
    if segments[0] not in ("*", _local(root.tag)):
        return []
    nodes = [(root, secret_named(_local(root.tag), secret_name))]
    for seg in segments[1:]:
        nodes = [(c, hidden or secret_named(_local(c.tag), secret_name))
                 for n, hidden in nodes for c in n if seg in ("*", _local(c.tag))]
    out: list[Any] = []
    for n, hidden in nodes:  # as _shown: an element with children is a subtree
        text = (n.text or "").strip()
        if hidden:
            out.append(SECRET_PRESENT if len(n) or text else SECRET_ABSENT)
        elif not len(n):
            out.append(text)
        elif "*" not in segments:
            out.append("<object>")
    return out

