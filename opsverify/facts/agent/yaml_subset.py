"""A YAML subset without PyYAML: the block mappings and sequences config files use.

Recyclarr's recyclarr.yml and secrets.yml are read on the host, which has no PyYAML (the fact
script is stdlib-only). _YamlReader says what is supported and what is refused; Recyclarr's
indirection tags (`!env_var X`, `!secret X`) read as Tagged(X), which configs.py resolves.
Errors name the line, never its content.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.
"""

from __future__ import annotations

import re
from typing import Any

from opsverify.facts.agent.keypaths import values_at
from opsverify.facts.agent.primitives import MAX_DEPTH, ParseError, as_text, strip_comment

INDIRECTION_TAGS = ("!env_var", "!secret")  # Recyclarr's: the value lives elsewhere


class Tagged(str):
    """A YAML scalar behind an indirection tag (`!env_var RADARR_URL`, `!secret radarr_url`).

    It reads as its text, so nothing mistakes it for the value it points to unless it asks:
    configs.resolve_values() turns it into the value, or an unresolved indirection.
    """

    tag: str

    def __new__(cls, text: str, tag: str) -> Tagged:  # noqa: PYI034 -- typing.Self is 3.11+
        obj = super().__new__(cls, text)
        obj.tag = tag
        return obj


_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_PLAIN_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v",
            "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
            "N": "\x85", "_": "\xa0"}


def _plain(value: str) -> Any:
    """A plain scalar typed by the YAML 1.2 core schema."""
    if value in ("", "~", "null", "Null", "NULL"):
        return None
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    if _PLAIN_INT.fullmatch(value):
        return int(value)
    if _PLAIN_FLOAT.fullmatch(value) and any(c.isdigit() for c in value):
        return float(value)
    return value


class _YamlReader:
    """Block mappings and sequences of scalars, as config files like recyclarr.yml use them.

    Supported: `key: value`, nested blocks by indentation, `- item` sequences (also at the
    indentation of their key), `- key: value` items, plain/single/double-quoted scalars,
    `|` and `>` block scalars, flow collections of scalars on one line (`[a, b]`, `{a: 1}`),
    comments, a leading `---`, anchors (dropped), tags (dropped, except Recyclarr's
    `!env_var X` and `!secret X`, read as Tagged(X): an indirection, not a value).
    Refused with ParseError: aliases, several documents, tabs as indentation, multi-line
    quoted or flow scalars. Duplicate keys keep the last value, as PyYAML does.
    """

    def __init__(self, text: str):
        self.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.i = 0
        self.started = False

    def parse(self) -> Any:
        line = self._peek()
        if line is None:
            return None
        node = self._block(line[0], 0)
        line = self._peek()
        if line is not None:
            raise ParseError(f"YAML line {self.i + 1}: unexpected indentation")
        return node

    def _peek(self) -> tuple[int, str] | None:
        """(indent, content) of the next line holding structure, skipping blanks and comments."""
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            content = raw.lstrip(" ")
            indent = len(raw) - len(content)
            if content.startswith("\t") and content.strip():
                raise ParseError(f"YAML line {self.i + 1}: tab used for indentation")
            stripped = content.strip()
            if not stripped or stripped.startswith("#") or stripped.startswith("%") and \
                    not self.started:
                self.i += 1
                continue
            if stripped in ("---", "...") or stripped.startswith("--- "):
                if self.started:
                    raise ParseError(f"YAML line {self.i + 1}: several documents")
                self.i += 1
                continue
            self.started = True
            return indent, content
        return None

    def _block(self, indent: int, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ParseError(f"YAML line {self.i + 1}: nested deeper than {MAX_DEPTH}")
        _, content = self._peek()  # type: ignore[misc]
        if content == "-" or content.startswith("- "):
            return self._sequence(indent, depth)
        if self._key(content) is not None:
            return self._mapping(indent, depth)
        self.i += 1
        return self._scalar(content, self.i)

    def _mapping(self, indent: int, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            line = self._peek()
            if line is None or line[0] < indent:
                return out
            if line[0] > indent:
                raise ParseError(f"YAML line {self.i + 1}: unexpected indentation")
            split = self._key(line[1])
            if split is None:
                raise ParseError(f"YAML line {self.i + 1}: expected `key: value`")
            key, rest = split
            self.i += 1
            out[key] = self._value(rest, indent, depth, in_mapping=True)

    def _sequence(self, indent: int, depth: int) -> list[Any]:
        out = []
        while True:
            line = self._peek()
            if line is None or line[0] < indent:
                return out
            content = line[1]
            if line[0] > indent or not (content == "-" or content.startswith("- ")):
                if line[0] == indent:
                    return out  # the mapping that holds this sequence goes on
                raise ParseError(f"YAML line {self.i + 1}: unexpected indentation")
            rest = content[1:]
            item = rest.lstrip(" ")
            if not item or item.startswith("#"):
                self.i += 1
                out.append(self._value("", indent, depth, in_mapping=False))
                continue
            # `- key: v` / `- - x`: the dash becomes indentation and the item is a block there
            sub = indent + 1 + len(rest) - len(item)
            self.lines[self.i] = " " * sub + item
            out.append(self._block(sub, depth + 1))

    def _value(self, rest: str, indent: int, depth: int, in_mapping: bool) -> Any:
        no = self.i
        raw = strip_comment(rest).strip()
        value = self._drop_props(raw, no)
        if value.startswith(("|", ">")):
            return self._block_scalar(indent, value[0] == ">")
        if value:
            return self._scalar(raw, no)  # with its tag: `!env_var X` stays an indirection
        line = self._peek()
        if line is not None and line[0] > indent:
            return self._block(line[0], depth + 1)
        if line is not None and in_mapping and line[0] == indent and \
                (line[1] == "-" or line[1].startswith("- ")):
            return self._sequence(indent, depth + 1)
        return None

    def _block_scalar(self, indent: int, folded: bool) -> str:
        body: list[str] = []
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            if raw.strip() and len(raw) - len(raw.lstrip(" ")) <= indent:
                break
            body.append(raw)
            self.i += 1
        while body and not body[-1].strip():
            body.pop()
        cut = min((len(b) - len(b.lstrip(" ")) for b in body if b.strip()), default=0)
        lines = [b[cut:] for b in body]
        return (" ".join(lines) if folded else "\n".join(lines)) + "\n"

    @staticmethod
    def _drop_props(value: str, no: int) -> str:
        while value[:1] in ("!", "&"):  # a tag or an anchor before the value
            _, _, value = value.partition(" ")
            value = value.lstrip(" ")
        if value.startswith("*"):
            raise ParseError(f"YAML line {no}: aliases are not supported")
        return value

    @staticmethod
    def _key(content: str) -> tuple[str, str] | None:
        """(key, rest) when the line is `key: rest`, else None."""
        if content[:1] in ("\"", "'"):
            end = content.find(content[0], 1)
            while end != -1 and content[0] == "'" and content[end + 1:end + 2] == "'":
                end = content.find("'", end + 2)
            if end == -1 or not content[end + 1:].lstrip(" ").startswith(":"):
                return None
            after = content[end + 1:].lstrip(" ")[1:]
            if after and after[0] not in " \t":
                return None
            return _YamlReader._scalar_text(content[:end + 1]), after
        if content[:1] in "[{#|>!&*-?" and not content.startswith("-") or \
                content.startswith("- ") or content == "-":
            return None
        for i, ch in enumerate(content):
            if ch == ":" and (i + 1 == len(content) or content[i + 1] in " \t"):
                return content[:i].rstrip(), content[i + 1:]
            if ch == "#" and i and content[i - 1] in " \t":
                return None
        return None

    def _scalar(self, value: str, no: int) -> Any:
        raw = strip_comment(value).strip()
        tag = raw.split(" ", 1)[0] if raw.startswith("!") else ""
        value = self._drop_props(raw, no)
        if value[:1] in ("[", "{"):
            return self._flow(value, no)
        if value[:1] in ("\"", "'"):
            try:
                text = self._scalar_text(value)
            except ParseError:
                raise ParseError(f"YAML line {no}: unterminated or invalid quoted scalar") from None
            return Tagged(text, tag) if tag in INDIRECTION_TAGS else text
        return Tagged(value, tag) if tag in INDIRECTION_TAGS and value else _plain(value)

    @staticmethod
    def _scalar_text(value: str) -> str:
        q = value[0]
        if len(value) < 2 or value[-1] != q:
            raise ParseError("unterminated quoted scalar")
        body = value[1:-1]
        if q == "'":
            if "'" in body.replace("''", ""):
                raise ParseError("stray quote in scalar")
            return body.replace("''", "'")
        out, i = [], 0
        while i < len(body):
            ch = body[i]
            if ch == '"':
                raise ParseError("stray quote in scalar")
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            esc = body[i + 1:i + 2]
            width = {"x": 2, "u": 4, "U": 8}.get(esc)
            if width:
                digits = body[i + 2:i + 2 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise ParseError("bad escape in scalar")
                code = int(digits, 16)
                if code > 0x10FFFF:
                    raise ParseError("bad escape in scalar")
                out.append(chr(code))
                i += 2 + width
            elif esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 2
            else:
                raise ParseError("bad escape in scalar")
        return "".join(out)

    def _flow(self, value: str, no: int) -> Any:
        close = "]" if value[0] == "[" else "}"
        if not value.endswith(close):
            raise ParseError(f"YAML line {no}: multi-line flow collections are not supported")
        inner = value[1:-1].strip()
        if any(c in inner for c in "[]{}"):
            raise ParseError(f"YAML line {no}: nested flow collections are not supported")
        items = [s.strip() for s in inner.split(",")] if inner else []
        if items and not items[-1]:
            items.pop()  # a trailing comma
        if close == "]":
            return [self._scalar(s, no) for s in items]
        out = {}
        for s in items:
            split = self._key(s) or (s, "")
            out[self._scalar(split[0], no) if split[0][:1] in "\"'" else split[0]] = \
                self._scalar(split[1], no) if split[1].strip() else None
        return out


def parse_yaml_subset(data: str | bytes) -> Any:
    """A YAML document of the supported subset (see _YamlReader) as plain data."""
    return _YamlReader(as_text(data, "YAML file")).parse()


def yaml_values(data: str | bytes, path: str) -> list[Any]:
    """Values at a dotted path of a YAML document of the supported subset."""
    return values_at(parse_yaml_subset(data), path)
