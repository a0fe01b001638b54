"""App config documents in their real on-disk formats, and the SSOT's key paths set into them.

A document is built as a Python structure (JSON/YAML: dicts and lists; XML: `El` trees;
SQLite: `Sqlite` tables of rows), the SSOT's expected values are set into it with `put`, and
`render` writes the bytes the application itself would write.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import yaml


@dataclass
class El:
    """One XML element: text or children (never both), attributes in order."""

    tag: str
    text: str | None = None
    children: list[El] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)


def E(tag: str, *children: El | str | int | bool | None, **attrs: str) -> El:
    """El("Port", "7878") or El("PathInfos", El(...), El(...)); bools render as .NET writes them."""
    kids = [c for c in children if isinstance(c, El)]
    texts = [c for c in children if not isinstance(c, El) and c is not None]
    return El(tag, xml_text(texts[0]) if texts else None, kids, dict(attrs))


def xml_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


XSI = {"xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
       "xmlns:xsd": "http://www.w3.org/2001/XMLSchema"}


@dataclass
class Xml:
    """An XML document as .NET writes it: XmlSerializer (declaration, `<X />`) or XDocument."""

    root: El
    declaration: bool = True
    empty_pair: bool = False  # XDocument (Radarr & co) writes <X></X>, XmlSerializer <X />


@dataclass
class Sqlite:
    """A SQLite database: DDL, then rows per table; `json_columns` hold indented JSON text."""

    ddl: str
    tables: dict[str, list[dict[str, Any]]]
    json_columns: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> col -> indent


@dataclass
class Json:
    data: Any
    indent: int | None = 2
    trailing_newline: bool = False


@dataclass
class Yaml:
    data: Any
    header: str = ""


@dataclass
class Toml:
    """A TOML file of tables and scalars (autopulse's config.toml)."""

    data: dict[str, Any]
    header: str = ""


@dataclass(frozen=True)
class Tag:
    """A YAML scalar behind a tag, written as such: Recyclarr's `!env_var NAME`, `!secret KEY`.

    Setting an SSOT key where a Tag sits leaves the Tag: the app resolves it (through the
    container's environment or secrets.yml, which its profile fills) to that very value."""

    tag: str
    text: str


@dataclass
class Text:
    """A file with no structure the SSOT sets keys in (INI, TOML): written as is."""

    text: str


Doc = Xml | Sqlite | Json | Yaml | Toml | Text


# ---- put: set an SSOT key path ---------------------------------------------------------------

def put(doc: Doc, path: str, value: Any, row: dict[str, Any] | None = None,
        table: str | None = None) -> None:
    """Set `value` at every place `path` names (`*` = every key or item), creating what is missing."""
    parts = path.split(".")
    if isinstance(doc, Xml):
        if parts[0] not in (doc.root.tag, "*"):
            raise ValueError(f"XML path {path!r} does not start at <{doc.root.tag}>")
        _put_xml(doc.root, parts[1:], value)
    elif isinstance(doc, Sqlite):
        rows = doc.tables.setdefault(table or "", [])
        matching = [r for r in rows if all(str(r.get(k)) == str(v) for k, v in (row or {}).items())]
        if not matching:
            matching = [dict(row or {})]
            rows.append(matching[0])
        for r in matching:
            col, rest = parts[0], parts[1:]
            if rest:
                inner = json.loads(r.get(col) or "{}")
                _put_tree(inner, rest, value)
                indent = doc.json_columns.get(table or "", {}).get(col, 2)
                r[col] = json.dumps(inner, indent=indent)
            else:
                r[col] = value
    elif isinstance(doc, Text):
        raise TypeError(f"cannot set {path!r} in a plain text file")
    else:
        _put_tree(doc.data, parts, value)


def _put_tree(node: Any, parts: list[str], value: Any) -> None:
    key, rest = parts[0], parts[1:]
    if not rest and isinstance(node, dict) and isinstance(node.get(key), Tag):
        return  # an indirection the app resolves to this value (see Tag)
    if isinstance(node, list):
        targets = range(len(node)) if key == "*" else [int(key)]
    elif key == "*":
        targets = list(node)
    else:
        if rest and not isinstance(node.get(key), (dict, list)):
            node[key] = {}
        targets = [key]
    for t in targets:
        if rest:
            _put_tree(node[t], rest, value)
        else:
            node[t] = value


def _put_xml(el: El, parts: list[str], value: Any) -> None:
    if not parts:
        el.text, el.children = xml_text(value), []
        return
    matches = [c for c in el.children if parts[0] in (c.tag, "*")]
    if not matches and parts[0] != "*":
        el.text = None
        matches = [El(parts[0])]
        el.children.append(matches[0])
    for child in matches:
        _put_xml(child, parts[1:], value)


# ---- render: the bytes on disk ---------------------------------------------------------------

def render(doc: Doc) -> bytes:
    if isinstance(doc, Xml):
        head = '<?xml version="1.0" encoding="utf-8"?>\n' if doc.declaration else ""
        return (head + "\n".join(_xml_lines(doc.root, 0, doc.empty_pair))).encode()
    if isinstance(doc, Json):
        text = json.dumps(doc.data, indent=doc.indent, ensure_ascii=False)
        return (text + ("\n" if doc.trailing_newline else "")).encode()
    if isinstance(doc, Text):
        return doc.text.encode()
    if isinstance(doc, Toml):
        return (doc.header + _toml(doc.data)).encode()
    if isinstance(doc, Yaml):
        body = yaml.dump(doc.data, Dumper=_YamlDumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True, width=100)
        return (doc.header + body).encode()
    return _sqlite_bytes(doc)


def _xml_lines(el: El, depth: int, empty_pair: bool) -> list[str]:
    pad = "  " * depth
    attrs = "".join(f' {k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in el.attrs.items())
    if el.children:
        lines = [f"{pad}<{el.tag}{attrs}>"]
        for child in el.children:
            lines += _xml_lines(child, depth + 1, empty_pair)
        return lines + [f"{pad}</{el.tag}>"]
    if el.text is None or (el.text == "" and not empty_pair):
        return [f"{pad}<{el.tag}{attrs}></{el.tag}>" if empty_pair else f"{pad}<{el.tag}{attrs} />"]
    return [f"{pad}<{el.tag}{attrs}>{escape(el.text)}</{el.tag}>"]


class _YamlDumper(yaml.SafeDumper):
    """Writes null as an empty value (`key:`), as hand-written configs do."""


_YamlDumper.add_representer(
    type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", ""))
_YamlDumper.add_representer(Tag, lambda d, t: d.represent_scalar(t.tag, t.text))


def _toml(data: dict[str, Any], prefix: str = "") -> str:
    """Tables of scalars as TOML: `key = value` first, then `[table]` sections."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    lines = [f"{k} = {json.dumps(v)}" for k, v in scalars.items()]  # JSON strings are TOML's
    text = "\n".join(lines) + ("\n" if lines else "")
    for k, v in data.items():
        if isinstance(v, dict):
            name = f"{prefix}.{k}" if prefix else k
            inner = _toml(v, name)
            text += f"\n[{name}]\n{inner}" if any(not isinstance(x, dict) for x in v.values()) \
                else inner
    return text


def _sqlite_bytes(doc: Sqlite) -> bytes:
    fd, tmp = tempfile.mkstemp(suffix=".db")
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        with con:
            con.executescript(doc.ddl)
            for table, rows in doc.tables.items():
                for r in rows:
                    cols = ", ".join(f'"{c}"' for c in r)
                    marks = ", ".join("?" for _ in r)
                    con.execute(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', list(r.values()))
        con.close()
        with open(tmp, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(tmp)
