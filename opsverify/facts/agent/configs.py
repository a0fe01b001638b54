"""Config values behind one more step: TOML files, and Recyclarr's `!env_var` / `!secret`.

config_facts() is the config section of the facts: per SSOT config check, the values at its
key paths in a JSON, YAML, TOML, XML or SQLite file, never a secret-named key's value.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8 (TOML needs the host's
Python to have tomllib, 3.11+; the error says so otherwise).

Recyclarr (src/Recyclarr.Core/Config/EnvironmentVariables/EnvironmentVariablesDeserializer.cs,
.../Secrets/SecretsDeserializer.cs and SecretsProvider.cs) resolves, at load time:

- `!env_var NAME [default]`: the process environment's NAME; when unset or blank, the default
  (trimmed, quotes stripped); with neither, the config does not load;
- `!secret KEY`: KEY of `secrets.yml` (or `.yaml`) in its app data directory, the directory of
  recyclarr.yml (or its parent, for configs/*.yml); a missing key or file: the config does
  not load.

resolve() does the same for the values an SSOT check selected, with the container's own
environment, and returns only what wiring may compare: an http(s) URL without credentials.
A name that looks like a secret is never looked up; a value that is not such a URL is never
returned (an api_key behind `!secret` stays on the host). Whatever cannot be resolved is
reported as an unresolved indirection, never compared as if its name were its value.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable  # noqa: UP035 -- aliases below are evaluated; 3.8 has no abc[...]
from urllib.parse import urlsplit

from opsverify.facts.agent import docker
from opsverify.facts.agent.keypaths import (
    descend_json,
    secret_named,
    split_path,
    values_at,
    xml_values,
)
from opsverify.facts.agent.primitives import (
    Context,
    ParseError,
    describe_error,
    load_json,
    open_sqlite,
    read_file,
    sql_ident,
    sqlite_errors,
)
from opsverify.facts.agent.yaml_subset import Tagged, parse_yaml_subset

# (container, NAME) -> (why the environment cannot be read or None, the value of NAME or None):
# one name at a time, never the whole environment
EnvLookup = Callable[[str, str], "tuple[str | None, str | None]"]
FileReader = Callable[[str], "bytes | None"]          # path -> bytes (OSError when it cannot)
URL = re.compile(r"https?://[^\s]+")


class Unresolved(str):
    """Why an indirection could not be resolved (the text is the reason, never a value)."""


def load_toml(data: bytes | str) -> Any:
    """A TOML document; ParseError naming line and column, never content."""
    try:
        import tomllib  # only hosts with a TOML check pay for the import
    except ImportError:
        raise ParseError("TOML file: this host's python3 has no tomllib "
                                 "(Python 3.11 or later reads TOML)") from None
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"line (\d+), column (\d+)", str(exc))
        at = f" at line {where.group(1)} column {where.group(2)}" if where else ""
        raise ParseError(f"TOML file: invalid{at}") from None


def url_only(value: str, what: str) -> str:
    """value if it is an http(s) URL without credentials, else an Unresolved saying why."""
    text = value.strip()
    if not URL.fullmatch(text):
        return Unresolved(f"{what} does not hold an http(s) URL; its value is not read")
    try:
        netloc = urlsplit(text).netloc
    except ValueError:
        return Unresolved(f"{what} does not hold a valid URL; its value is not read")
    if "@" in netloc:
        return Unresolved(f"{what} holds a URL with credentials; its value is not read")
    return text


def secrets_files(config_file: str) -> list[str]:
    """Where Recyclarr looks for secrets.yml for this config file (its app data directory)."""
    here = os.path.dirname(config_file)
    base = os.path.dirname(here) if os.path.basename(here) == "configs" else here
    return [os.path.join(base, "secrets.yml"), os.path.join(base, "secrets.yaml")]


class Resolver:
    """Resolves the Tagged values of one config check, with one host's lookups."""

    def __init__(self, config_file: str, container: str | None, env: EnvLookup,
                 read: FileReader, secret_name: re.Pattern):
        self.file, self.container = config_file, container
        self.env, self.read, self.secret_name = env, read, secret_name
        self._secrets: dict[str, Any] | Unresolved | None = None

    def resolve(self, value: Any) -> Any:
        """A selected value as the app reads it: itself, a URL, or an Unresolved."""
        if not isinstance(value, Tagged):
            return value
        if value.tag == "!env_var":
            return self._env_var(str(value))
        return self._secret(str(value).strip())

    def _env_var(self, text: str) -> str:
        name, _, default = text.strip().partition(" ")
        what = f"!env_var {name}"
        if self.secret_name.search(name):
            return Unresolved(f"{what} names a secret; not looked up")
        if not self.container:
            return Unresolved(f"{what}: no container named for this file, so no environment")
        error, found = self.env(self.container, name)
        if error:
            return Unresolved(f"{what}: {error}")
        if found is None or not found.strip():
            found = default.strip().strip("'\"") or None
            if found is None:
                return Unresolved(f"{what}: not set in {self.container}'s environment and no "
                                  "default (Recyclarr refuses the config)")
            what += " (its default)"
        return url_only(found, what)

    def _secret(self, key: str) -> str:
        what = f"!secret {key}"
        if self.secret_name.search(key):
            return Unresolved(f"{what} names a secret; not looked up")
        table = self._secrets_table()
        if isinstance(table, Unresolved):
            return Unresolved(f"{what}: {table}")
        if key not in table:
            return Unresolved(f"{what}: no such key in secrets.yml (Recyclarr refuses the config)")
        found = table[key]
        if not isinstance(found, str):
            return Unresolved(f"{what} does not hold an http(s) URL; its value is not read")
        return url_only(found, what)

    def _secrets_table(self) -> dict[str, Any] | Unresolved:
        if self._secrets is None:
            self._secrets = self._load_secrets()
        return self._secrets

    def _load_secrets(self) -> dict[str, Any] | Unresolved:
        present = []
        for path in secrets_files(self.file):
            try:
                data = self.read(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                return Unresolved(f"{path} unreadable ({exc.strerror or type(exc).__name__})")
            present.append((path, data))
        if not present:
            return Unresolved(f"no secrets.yml beside {self.file}")
        if len(present) > 1:
            return Unresolved("both secrets.yml and secrets.yaml exist (Recyclarr refuses)")
        path, data = present[0]
        try:
            doc = parse_yaml_subset(data or b"")
        except ParseError as exc:
            return Unresolved(f"{path}: {exc}")
        if doc is None:
            return {}
        if not isinstance(doc, dict):
            return Unresolved(f"{path} is not a mapping of keys")
        return doc


def resolve_values(entry: dict[str, Any], check: dict[str, Any], secret_name: re.Pattern | None,
                   env: EnvLookup | None, read: FileReader) -> None:
    """Recyclarr's !env_var / !secret among entry["values"]: each resolved to a URL or moved to
    entry["unresolved"][key]; entry["via"][key] names the indirections followed."""
    resolver = Resolver(check["file"], check.get("container"),
                        env or (lambda c, n: ("no Docker lookup here", None)), read,
                        secret_name or re.compile(r"(?!)"))
    for key, found in entry["values"].items():
        kept = []
        for value in found:
            if not isinstance(value, Tagged):
                kept.append(value)
                continue
            entry.setdefault("via", {}).setdefault(key, []).append(
                f"{value.tag} {str(value).split(' ', 1)[0]}")
            value = resolver.resolve(value)
            if isinstance(value, Unresolved):
                entry.setdefault("unresolved", {}).setdefault(key, []).append(str(value))
            else:
                kept.append(value)
        entry["values"][key] = kept


def config_facts(ctx: Context) -> dict[str, Any]:
    env = docker.container_env(ctx)
    return {"config": {c["name"]: config_values(c, ctx.secret_name, env)
                       for c in ctx.p.get("config_checks") or []}}


def config_values(check: dict[str, Any], secret_name: re.Pattern | None = None,
                  env: EnvLookup | None = None) -> dict[str, Any]:
    """{file, ok, error, values} of one SSOT config check; never a secret-named key's value.

    A path that names a secret is refused; a value reached through `*` below a secret-named
    key reads only as present or absent (keypaths.SECRET_NAME, applied whatever PARAMS say).
    """
    entry: dict[str, Any] = {"file": check["file"], "ok": False, "error": None, "values": {}}
    keys = list(check.get("keys") or [])
    refused = [k for k in keys if any(secret_named(s, secret_name) for s in str(k).split("."))]
    if refused:
        entry["error"] = f"refused: key path {refused[0]} names a secret"
        return entry
    try:
        if check["format"] == "sqlite":
            entry["values"] = _sqlite_values(check, keys, secret_name)
        else:
            data = read_file(check["file"]) or b""
            if check["format"] == "yaml":
                doc = parse_yaml_subset(data)
                entry["values"] = {k: values_at(doc, k, secret_name) for k in keys}
                resolve_values(entry, check, secret_name, env, read_file)
            elif check["format"] == "toml":
                doc = load_toml(data)
                entry["values"] = {k: values_at(doc, k, secret_name) for k in keys}
            elif check["format"] == "json":
                doc = load_json(data, "JSON file")
                entry["values"] = {k: values_at(doc, k, secret_name) for k in keys}
            elif check["format"] == "xml":
                entry["values"] = {k: xml_values(data, k, secret_name) for k in keys}
            else:
                raise ParseError(f"unknown format {check['format']!r}")
    except FileNotFoundError:
        entry["error"] = f"file not found: {check['file']}"
        return entry
    except (OSError, ParseError) as exc:
        entry["error"] = describe_error(exc)
        return entry
    except sqlite_errors() as exc:  # "no such table", "file is not a database": no content
        entry["error"] = f"SQLite: {exc}"
        return entry
    entry["ok"] = True
    return entry


def _sqlite_values(check: dict[str, Any], keys: list[str],
                   secret_name: re.Pattern | None = None) -> dict[str, list[Any]]:
    path, table, row = check["file"], check.get("table"), check.get("row") or {}
    read_file(path, head=lambda h: True)  # a clear error when missing or not a regular file
    con = open_sqlite(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if table not in tables:
            raise ParseError(f"SQLite: no table {table!r}")
        columns = [r[1] for r in con.execute(f"PRAGMA table_info({sql_ident(table)})")]
        missing = [c for c in row if c not in columns]
        if missing:
            raise ParseError(f"SQLite: table {table!r} has no column {missing[0]!r}")
        where = " AND ".join(f"{sql_ident(c)} = ?" for c in row) or "1"
        cur = con.execute(f"SELECT * FROM {sql_ident(table)} WHERE {where}", list(row.values()))
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    out = {}
    for key in keys:
        first, *rest = split_path(key)
        if first not in names:
            out[key] = []
            continue
        i = names.index(first)
        out[key] = [v for r in rows for v in descend_json(r[i], rest, secret_name)]
    return out
