"""Pure parsers of what a host prints or stores: mounts, fstab, tailscale, Docker, zfs, configs.

This module is sent to the hosts as text with the remote fact script (see remote.py), so it
must stay stdlib-only and run on Python 3.8. Every parser takes arbitrary input and either
returns plain JSON-able data or raises ParseError (a ValueError) whose message names the line
or the field, never the content: a file may hold secrets and the message ends up in reports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

MAX_DEPTH = 64  # nesting limit of the YAML reader and of key paths


class ParseError(ValueError):
    """Input that cannot be parsed; the message names where, never what."""


def _text(data: str | bytes, what: str) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    if not isinstance(data, str):
        raise ParseError(f"{what}: expected text, got {type(data).__name__}")
    return data


# --- /proc/mounts (/etc/fstab is read by fstab.py) ------------------------------------------

_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape_octal(field: str) -> str:
    """A mount table field with its octal escapes (\\040 space, \\011 tab, \\134 ...) decoded."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def _mount_entry(fields: list[str]) -> dict[str, Any]:
    src, target, fstype, options = (unescape_octal(f) for f in fields[:4])
    return {"source": src, "target": target, "fstype": fstype,
            "options": [o for o in options.split(",") if o]}


def parse_proc_mounts(data: str | bytes) -> list[dict[str, Any]]:
    """/proc/mounts as [{source, target, fstype, options}], escapes decoded."""
    out = []
    for no, line in enumerate(_text(data, "/proc/mounts").split("\n"), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise ParseError(f"/proc/mounts line {no}: expected 6 fields, got {len(fields)}")
        out.append(_mount_entry(fields))
    return out


# --- tailscale status --json -----------------------------------------------------------------

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


def _field(obj: dict, key: str, kind: type | tuple, what: str, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ParseError(f"{what}: {key} has type {type(value).__name__}")


def _obj(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParseError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseError(f"{what}: expected a list of strings")
    return list(value)


def parse_tailscale_status(data: str | bytes | dict) -> dict[str, Any]:
    """`tailscale status --json` as {backend_state, ips, online}."""
    what = "tailscale status"
    doc = load_json(data, what)
    if not isinstance(doc, dict):
        raise ParseError(f"{what}: expected a JSON object")
    own = _obj(doc.get("Self"), f"{what}: Self")
    ips = _strings(doc.get("TailscaleIPs"), f"{what}: TailscaleIPs") or \
        _strings(own.get("TailscaleIPs"), f"{what}: Self.TailscaleIPs")
    return {"backend_state": _field(doc, "BackendState", str, what),
            "ips": ips, "online": _field(own, "Online", bool, f"{what}: Self")}


# --- Docker Engine API -----------------------------------------------------------------------

def parse_http_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of a whole HTTP/1.x response (identity or chunked body)."""
    if not isinstance(raw, bytes):
        raise ParseError("HTTP response: expected bytes")
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if not sep or len(status) < 2 or not status[0].startswith(b"HTTP/1.") \
            or not (status[1].isdigit() and len(status[1]) == 3):
        raise ParseError("HTTP response: no status line and headers")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ParseError("HTTP response: malformed header line")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body)
    elif headers.get(b"content-length", b"").isdigit():
        if len(body) < int(headers[b"content-length"]):
            raise ParseError("HTTP response: body shorter than its Content-Length")
        body = body[:int(headers[b"content-length"])]
    return int(status[1]), body


def _dechunk(body: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = body.find(b"\r\n", pos)
        size = body[pos:end].split(b";")[0].strip() if end >= 0 else b""
        if not size or any(c not in b"0123456789abcdefABCDEF" for c in size) or len(size) > 16:
            raise ParseError("HTTP response: bad chunk size")
        n = int(size, 16)
        if n == 0:
            return b"".join(out)
        if end + 2 + n > len(body):
            raise ParseError("HTTP response: truncated chunk")
        out.append(body[end + 2:end + 2 + n])
        pos = end + 2 + n + 2


_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
_HEALTH = ("healthy", "unhealthy", "starting")


def parse_container_list(data: str | bytes | list) -> list[str]:
    """GET /containers/json?all=1 as the list of container ids."""
    what = "GET /containers/json"
    doc = load_json(data, what)
    if not isinstance(doc, list):
        raise ParseError(f"{what}: expected a JSON list")
    ids = []
    for n, item in enumerate(doc):
        cid = _obj(item, f"{what}[{n}]").get("Id")
        if not isinstance(cid, str) or not _CONTAINER_ID.fullmatch(cid):
            raise ParseError(f"{what}[{n}]: Id is not a container id")
        ids.append(cid)
    return ids


def parse_container(data: str | bytes | dict, pinned_env: dict[str, Iterable[str]] | None = None,
                    secret_name: re.Pattern | None = None) -> dict[str, Any]:
    """GET /containers/{id}/json as the contract's container entry.

    env holds only the names pinned for this container ({container name: [names]}), and never
    one that names a secret.
    """
    what = "GET /containers/{id}/json"
    doc = load_json(data, what)
    if not isinstance(doc, dict):
        raise ParseError(f"{what}: expected a JSON object")
    state = _obj(doc.get("State"), f"{what}: State")
    config = _obj(doc.get("Config"), f"{what}: Config")
    host_config = _obj(doc.get("HostConfig"), f"{what}: HostConfig")
    network = _obj(doc.get("NetworkSettings"), f"{what}: NetworkSettings")
    health = _obj(state.get("Health"), f"{what}: State.Health")
    check = _strings(_obj(config.get("Healthcheck"), f"{what}: Config.Healthcheck").get("Test"),
                     f"{what}: Config.Healthcheck.Test")
    status = _field(health, "Status", str, f"{what}: State.Health")
    name = (_field(doc, "Name", str, what) or "").lstrip("/")
    pinned = (pinned_env or {}).get(name) or ()
    wanted = {n for n in pinned if isinstance(n, str) and not secret_named(n, secret_name)}
    env = {}
    for item in _strings(config.get("Env"), f"{what}: Config.Env"):
        key, sep, value = item.partition("=")
        if sep and key in wanted:
            env[key] = value
    return {
        "name": name,
        "id": _field(doc, "Id", str, what),
        "image": _field(config, "Image", str, f"{what}: Config"),
        "state": _field(state, "Status", str, f"{what}: State"),
        "restarting": bool(_field(state, "Restarting", bool, f"{what}: State")),
        "restart_count": _field(doc, "RestartCount", int, what) or 0,
        "started_at": _field(state, "StartedAt", str, f"{what}: State"),
        "finished_at": _field(state, "FinishedAt", str, f"{what}: State"),
        # Health is absent when neither the image nor the container defines a check;
        # Test ["NONE"] switches off the image's check.
        "has_healthcheck": bool(health) or (bool(check) and check[0] != "NONE"),
        "health": status if status in _HEALTH else None,
        "env": env,
        "network_mode": _field(host_config, "NetworkMode", str, f"{what}: HostConfig"),
        "restart_policy": _field(_obj(host_config.get("RestartPolicy"), f"{what}: RestartPolicy"),
                                 "Name", str, f"{what}: RestartPolicy"),
        # what compose/`docker run -p` asked for, and what the engine bound (while running)
        "ports_configured": parse_port_map(host_config.get("PortBindings"),
                                           f"{what}: HostConfig.PortBindings"),
        "ports_published": parse_port_map(network.get("Ports"), f"{what}: NetworkSettings.Ports"),
    }


def parse_port_map(value: Any, what: str) -> list[dict[str, Any]]:
    """A Docker PortMap ({"7889/tcp": [{"HostIp": "", "HostPort": "7667"}]}) as a sorted list of
    {container_port, proto, host_ip, host_port}; an exposed, unpublished port (null) is left out
    and an empty HostPort (a random port) reads as host_port None."""
    out = []
    for key, binds in _obj(value, what).items():
        port, _, proto = str(key).partition("/")
        if not (port.isascii() and port.isdigit()):
            raise ParseError(f"{what}: {key!r} is not a port")
        if binds is not None and not isinstance(binds, list):
            raise ParseError(f"{what}: {key}: expected a list of bindings")
        for b in binds or []:
            b = _obj(b, f"{what}: {key}")
            host_port = str(b.get("HostPort") or "")
            out.append({"container_port": int(port), "proto": proto or "tcp",
                        "host_ip": str(b.get("HostIp") or ""),
                        "host_port": int(host_port) if host_port.isascii() and
                        host_port.isdigit() else None})
    return sorted(out, key=lambda p: (p["container_port"], p["proto"], p["host_ip"],
                                      p["host_port"] or 0))


# --- zfs list -H -o name ---------------------------------------------------------------------

def parse_zfs_list(data: str | bytes) -> list[str]:
    """`zfs list -H -o name` as the list of dataset names."""
    out = []
    for no, line in enumerate(_text(data, "zfs list").split("\n"), 1):
        name = line.strip()
        if not name:
            continue
        if "\t" in name or "\0" in name or name.startswith("/"):
            raise ParseError(f"zfs list line {no}: not a dataset name")
        out.append(name)
    return out


# --- secrets in compose and .env files -------------------------------------------------------

# KEY: value | KEY=value | - KEY=value | - "KEY=value" | "KEY": value | export KEY=value | - KEY
_ASSIGN = re.compile(
    r"""^[ \t]*(?:-[ \t]+)?(?:export[ \t]+)?(?P<q>["']?)(?P<key>[A-Za-z_][A-Za-z0-9_]*)
        (?:(?P=q)[ \t]*:(?=[ \t]|$)|(?P<eq>=)|(?P=q)[ \t]*(?:\#.*)?$)(?P<value>.*)$""",
    re.VERBOSE)
# ${VAR}, $VAR, ${VAR:?error}, ${VAR?error}, ${VAR:-} : a reference, no value in the file.
# ${VAR:-default} is a literal: its default sits in the file in plain text.
_REFERENCE = re.compile(
    r"\$(?:\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*|:?-)?\}|[A-Za-z_][A-Za-z0-9_]*)")


def _strip_comment(value: str) -> str:
    quote = ""
    for i, ch in enumerate(value):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or value[i - 1] in " \t"):
            return value[:i]
    return value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _assignments(text: str, keys: Iterable[str]) -> Iterable[tuple[int, str, str | None]]:
    """(line, key, value or None for a bare name) of every SSOT key assigned in text."""
    wanted = set(keys)
    for no, line in enumerate(text.split("\n"), 1):
        m = _ASSIGN.match(line)
        if not m or m.group("key") not in wanted:
            continue
        value, q = m.group("value"), m.group("q")
        if q and m.group("eq"):  # - "KEY=value": the quotes hold the whole item
            whole = re.match(f"(.*?){q}[ \t]*(?:#.*)?$", value)
            yield no, m.group("key"), whole.group(1) if whole else value
            continue
        raw = _strip_comment(value).strip()
        yield no, m.group("key"), _unquote(raw) if raw or m.group("eq") else None


def classify_value(value: str | None) -> str:
    """'reference' when no secret value is written in the file, else 'literal'."""
    if value is None or value in ("null", "~"):  # `- KEY` / `KEY:` pass the variable through
        return "reference"
    return "reference" if _REFERENCE.fullmatch(value) else "literal"


def parse_compose_secrets(data: str | bytes, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{KEY: {kind, line}} for each SSOT secret key a compose file sets (a literal wins)."""
    out: dict[str, dict[str, Any]] = {}
    for no, key, value in _assignments(_text(data, "compose file"), keys):
        kind = classify_value(value)
        if key not in out or kind == "literal" and out[key]["kind"] != "literal":
            out[key] = {"kind": kind, "line": no}
    return out


def assigned_keys(data: str | bytes, keys: Iterable[str]) -> list[str]:
    """The SSOT secret key names a plaintext (.env) file assigns, in order, once each."""
    seen: dict[str, None] = {}
    for _, key, _ in _assignments(_text(data, "env file"), keys):
        seen.setdefault(key)
    return list(seen)


# --- stale addresses -------------------------------------------------------------------------

def address_pattern(addresses: Iterable[str]) -> re.Pattern[bytes]:
    """Bytes regex matching any of the IPv4 addresses as a whole address.

    100.117.1.53 matches in "http://100.117.1.53:7878" but not in 100.117.1.530,
    1100.117.1.53 or 100.117.1.53.4.
    """
    addrs = list(addresses)
    for a in addrs:
        parts = a.split(".") if isinstance(a, str) else []
        if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
            raise ParseError(f"not an IPv4 address: {a!r}")
    if not addrs:
        return re.compile(rb"(?!)")
    alternatives = b"|".join(re.escape(a.encode()) for a in sorted(addrs, key=len, reverse=True))
    return re.compile(rb"(?<![0-9])(?<![0-9]\.)(" + alternatives + rb")(?![0-9])(?!\.[0-9])")


def find_addresses(data: bytes, pattern: re.Pattern[bytes],
                   text: bool = True) -> list[tuple[str, int | None]]:
    """(address, line) of each match, one per address and line; line None for binary data."""
    out: list[tuple[str, int | None]] = []
    seen = set()
    line, pos = 1, 0
    for m in pattern.finditer(data):
        if text:
            line += data.count(b"\n", pos, m.start())
            pos = m.start()
        hit = (m.group(1).decode(), line if text else None)
        if hit not in seen:
            seen.add(hit)
            out.append(hit)
    return out


def looks_binary(data: bytes) -> bool:
    """Whether data is not text (a NUL byte in its first 8 KiB)."""
    return b"\0" in data[:8192]


# --- config values at key paths --------------------------------------------------------------

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


# --- a YAML subset, without PyYAML -----------------------------------------------------------

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
        raw = _strip_comment(rest).strip()
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
        raw = _strip_comment(value).strip()
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
    return _YamlReader(_text(data, "YAML file")).parse()


def yaml_values(data: str | bytes, path: str) -> list[Any]:
    """Values at a dotted path of a YAML document of the supported subset."""
    return values_at(parse_yaml_subset(data), path)
