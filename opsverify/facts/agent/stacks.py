"""The stacks section of the facts: where secrets sit in plain text around each compose stack.

Per stack: the plaintext secret files (the SSOT's file name patterns) below its directory and
every config root, with the SSOT secret key names each assigns; the compose file's assignments
of those keys, each a reference (`${VAR}`) or a literal; and the generated .env files the SSOT
allows (envfiles.py). Facts hold key names, line numbers and modes, never a value.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable
from typing import Any

from opsverify.facts.agent import envfiles
from opsverify.facts.agent.primitives import (
    MAX_SKIPPED,
    Context,
    ParseError,
    as_text,
    describe_error,
    read_file,
    strip_comment,
    walk,
)


def stacks_facts(ctx: Context) -> dict[str, Any]:
    """Per stack: plaintext secret files under its directory and every config root, the
    generated .env files the SSOT declares, and the compose file's secret references."""
    keys = ctx.p.get("secret_keys") or []
    globs = ctx.p.get("plaintext_globs") or []
    out = {}
    for name, st in sorted((ctx.p.get("stacks") or {}).items()):
        directory = st["directory"]
        entry: dict[str, Any] = {"directory": directory, "exists": os.path.isdir(directory),
                                 "plaintext_files": [], "complete": True, "skipped": [],
                                 "scanned": [], "compose": _compose(st["compose"], keys)}

        def skip(path: str, reason: str, entry: dict = entry) -> None:
            if len(entry["skipped"]) < MAX_SKIPPED:
                entry["skipped"].append({"path": path, "reason": reason})
        for top in _tops([directory, *(st.get("roots") or [])]):
            if not os.path.isdir(top):
                if top != directory:  # the stack directory has its own `exists`
                    skip(top, "missing" if not os.path.exists(top) else "not a directory")
                continue
            entry["scanned"].append(top)
            for dirpath, filenames in walk(top, skip):
                if ctx.left() <= 0:
                    entry["complete"] = False
                    skip(dirpath, "time budget exhausted")
                    break
                for fname in filenames:
                    if any(fnmatch.fnmatchcase(fname, g) for g in globs):
                        entry["plaintext_files"].append(
                            _plaintext(os.path.join(dirpath, fname), keys))
        entry["generated"] = [envfiles.generated_facts(g, read_file)
                              for g in st.get("generated") or []]
        out[name] = entry
    return {"stacks": out}


def _tops(dirs: list[str]) -> list[str]:
    """The directories to walk: each once, none inside another one of them."""
    tops: list[str] = []
    for d in sorted({x.rstrip("/") or "/" for x in dirs}, key=len):
        if not any(d == t or d.startswith(t.rstrip("/") + "/") for t in tops):
            tops.append(d)
    return tops


def _plaintext(path: str, keys: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {"path": path, "keys": [], "mode": envfiles.file_facts(path)["mode"]}
    try:
        data = read_file(path)
    except OSError:  # a dangling symlink or a socket named .env: its name is the finding
        return found
    found["keys"] = assigned_keys(data or b"", keys)
    return found


def _compose(path: str, keys: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "exists": os.path.exists(path), "error": None,
                             "secrets": {}}
    if entry["exists"]:
        try:
            entry["secrets"] = parse_compose_secrets(read_file(path) or b"", keys)
        except (OSError, ParseError) as exc:
            entry["error"] = describe_error(exc)
    return entry


# --- secret keys assigned in compose and .env files ------------------------------------------

# KEY: value | KEY=value | - KEY=value | - "KEY=value" | "KEY": value | export KEY=value | - KEY
_ASSIGN = re.compile(
    r"""^[ \t]*(?:-[ \t]+)?(?:export[ \t]+)?(?P<q>["']?)(?P<key>[A-Za-z_][A-Za-z0-9_]*)
        (?:(?P=q)[ \t]*:(?=[ \t]|$)|(?P<eq>=)|(?P=q)[ \t]*(?:\#.*)?$)(?P<value>.*)$""",
    re.VERBOSE)
# ${VAR}, $VAR, ${VAR:?error}, ${VAR?error}, ${VAR:-} : a reference, no value in the file.
# ${VAR:-default} is a literal: its default sits in the file in plain text.
_REFERENCE = re.compile(
    r"\$(?:\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*|:?-)?\}|[A-Za-z_][A-Za-z0-9_]*)")


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
        raw = strip_comment(value).strip()
        yield no, m.group("key"), _unquote(raw) if raw or m.group("eq") else None


def classify_value(value: str | None) -> str:
    """'reference' when no secret value is written in the file, else 'literal'."""
    if value is None or value in ("null", "~"):  # `- KEY` / `KEY:` pass the variable through
        return "reference"
    return "reference" if _REFERENCE.fullmatch(value) else "literal"


def parse_compose_secrets(data: str | bytes, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{KEY: {kind, line}} for each SSOT secret key a compose file sets (a literal wins)."""
    out: dict[str, dict[str, Any]] = {}
    for no, key, value in _assignments(as_text(data, "compose file"), keys):
        kind = classify_value(value)
        if key not in out or kind == "literal" and out[key]["kind"] != "literal":
            out[key] = {"kind": kind, "line": no}
    return out


def assigned_keys(data: str | bytes, keys: Iterable[str]) -> list[str]:
    """The SSOT secret key names a plaintext (.env) file assigns, in order, once each."""
    seen: dict[str, None] = {}
    for _, key, _ in _assignments(as_text(data, "env file"), keys):
        seen.setdefault(key)
    return list(seen)

