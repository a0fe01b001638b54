"""The remote fact script: runs ON a host under python3 >= 3.8, reads only, prints one JSON.

script_payload() packs this module with commands.py and parsers.py (stdlib only, so nothing
needs installing on a host and the parsers exist once); commands.BOOTSTRAP registers them on
the host under their own names and calls main(PARAMS). One SSH round trip per host returns
everything the host families need, in the shape of `host:<name>` in opsverify/facts/__init__.py.

Docker is read here, through the Engine API on the host's unix socket, with plain GET requests
(the list, then one inspect per container) in the same round trip. That is deliberate: the
Docker SDK over SSH opens a second SSH session per host and runs `docker system dial-stdio`
there, doubling the login cost; and a script that only holds GETs cannot change a container.

Sections run one after another in a worker thread; the main thread waits at most budget_s and
then prints whatever finished, so a hung NFS read costs one section, not the host's facts.
Errors never carry file content: parsers name lines, OSErrors name paths.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from opsverify.facts import commands, configs, envfiles, fstab, parsers

MAX_FILE = 64 * 1024 * 1024  # larger files are skipped by the scan and refused as configs
MAX_API_BODY = 32 * 1024 * 1024
MAX_FINDINGS = 1000
MAX_SKIPPED = 200
PROGRAM_TIMEOUT = 5.0
SQLITE_MAGIC = b"SQLite format 3\x00"
# Images, video and audio hold no address an application reads; on a real config root they
# are most of the bytes (Jellyfin metadata), so the scan counts them instead of reading them.
MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"\x1aE\xdf\xa3",
               b"fLaC", b"ID3", b"OggS")
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
PACKAGES = ("opsverify", "opsverify.facts")
# In load order: a module comes after the ones it imports; the last one holds main().
MODULES = ("opsverify.facts.commands", "opsverify.facts.parsers", "opsverify.facts.fstab",
           "opsverify.facts.configs", "opsverify.facts.envfiles", "opsverify.facts.remote")
AUTOMOUNT_TIMEOUT = 5.0  # one hard-mount timeout per idle automount point, at most


@functools.lru_cache(maxsize=1)
def script_payload() -> str:
    """SCRIPT: the modules the host runs, as base64(zlib(JSON)); built from this checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    modules = [[name, ""] for name in PACKAGES]
    for name in MODULES:
        with open(os.path.join(here, name.rsplit(".", 1)[1] + ".py"), encoding="utf-8") as f:
            modules.append([name, f.read()])
    blob = json.dumps({"modules": modules, "main": MODULES[-1]})
    return base64.b64encode(zlib.compress(blob.encode(), 9)).decode()


def main(arg: str) -> None:
    """Collect what PARAMS asks for; print SENTINEL and one JSON document."""
    started = time.monotonic()
    try:
        facts = collect(commands.decode_params(arg), started)
    except ValueError as exc:
        facts = {"errors": {"params": str(exc)}}
    facts["remote_s"] = round(time.monotonic() - started, 3)
    body = json.dumps(facts, separators=(",", ":"), default=str)
    sys.stdout.write("\n" + commands.SENTINEL + "\n" + body + "\n")
    sys.stdout.flush()


def collect(params: dict[str, Any], started: float | None = None) -> dict[str, Any]:
    """Every section's facts; what did not finish within budget_s keeps its empty default."""
    ctx = _Context(params, (started or time.monotonic()) + float(params.get("budget_s", 8)))
    facts: dict[str, Any] = {
        "hostname": None,
        "tailscale": {"ok": False, "error": "not collected", "backend_state": None, "ips": [],
                      "online": None},
        "mounts": [], "automounts": {}, "fstab": [], "fstab_errors": [],
        "docker": {"ok": False, "error": "not collected", "containers": []},
        "stacks": {}, "stale_refs": [],
        "scan": {"roots": list(ctx.roots), "files": 0, "bytes": 0, "media_skipped": 0,
                 "skipped": [], "complete": False},
        "config": {},
    }
    sections: list[tuple[str, Callable[[_Context], dict[str, Any]]]] = [
        ("hostname", _hostname), ("mounts", _mounts), ("fstab", _fstab),
        ("tailscale", _tailscale)]
    if params.get("zfs"):
        facts["zfs"] = {"ok": False, "error": "not collected", "datasets": []}
        sections.append(("zfs", _zfs))
    sections += [("docker", _docker), ("stacks", _stacks), ("config", _config),
                 ("stale_refs", _stale_refs)]
    done: dict[str, Any] = {}
    errors: dict[str, str] = {}
    running = [""]

    def work() -> None:
        for name, fn in sections:
            running[0] = name
            try:
                done.update(fn(ctx))
            except Exception as exc:  # noqa: BLE001 -- one broken section must not cost the others
                errors[name] = describe_error(exc)
        running[0] = ""

    worker = threading.Thread(target=work, name="opsverify-facts", daemon=True)
    worker.start()
    worker.join(max(0.0, ctx.deadline - time.monotonic()) + 0.2)
    if worker.is_alive():  # its section is stuck in a read; report the rest
        hung = running[0]
        errors[hung] = f"did not finish within {ctx.budget:.1f} s (hung filesystem?)"
        later = [name for name, _ in sections][[name for name, _ in sections].index(hung) + 1:]
        errors.update({name: f"not run: {hung} did not finish" for name in later})
    facts.update(dict(done))
    facts["errors"] = dict(errors)
    return facts


def describe_error(exc: BaseException) -> str:
    """An exception as a fact: parse errors and OS errors say where; others only their type."""
    if isinstance(exc, parsers.ParseError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    line = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else ""
    return f"{type(exc).__name__}{line}"  # its message might quote content


class _Context:
    """The parameters of one run and its deadline."""

    def __init__(self, params: dict[str, Any], deadline: float):
        self.p = params
        self.deadline = deadline
        self.budget = float(params.get("budget_s", 8))
        self.secret_name = re.compile(params.get("secret_name") or r"(?!)")
        files = params.get("files") or {}
        self.mounts_file = files.get("mounts", "/proc/mounts")
        self.fstab_file = files.get("fstab", "/etc/fstab")
        self.docker_socket = files.get("docker_socket", "/var/run/docker.sock")
        self.roots = tuple(params.get("config_roots") or ())

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def slice(self, at_most: float) -> float:
        """A timeout for one step: at most at_most, never past the deadline."""
        return max(0.1, min(at_most, self.left()))


# --- reading files --------------------------------------------------------------------------

def _open(path: str, follow: bool = True) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:  # O_NOATIME needs to own the file (or CAP_FOWNER)
        return os.open(path, flags)


def read_file(path: str, follow: bool = True, limit: int = MAX_FILE,
              head: Callable[[bytes], bool] | None = None) -> bytes | None:
    """A regular file's bytes; None when head(first 16 bytes) says to skip it."""
    fd = _open(path, follow)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file", path)
        first = f.read(16)
        if head is not None and head(first):
            return None
        data = first + f.read(limit + 1 - len(first))
    if len(data) > limit:
        raise OSError(0, f"larger than {limit // (1024 * 1024)} MiB", path)
    return data


def _is_media(head: bytes) -> bool:
    return head.startswith(MEDIA_MAGIC) or head[4:8] == b"ftyp" or \
        head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"AVI ", b"WAVE")


def _sqlite3() -> Any:
    """The sqlite3 module, imported when first needed (it costs start-up); None if absent."""
    try:
        import sqlite3
    except ImportError:  # some minimal Pythons lack it: databases are then scanned as bytes
        return None
    return sqlite3


def _sqlite_errors() -> tuple[type[Exception], ...]:
    module = _sqlite3()
    return (module.Error,) if module else ()


def _sqlite(path: str) -> Any:
    """A read-only, immutable connection: no lock taken, no -wal/-shm/-journal created."""
    from urllib.parse import quote

    sqlite3 = _sqlite3()
    if sqlite3 is None:
        raise OSError(0, "this Python has no sqlite3 module", path)
    con = sqlite3.connect(f"file:{quote(path)}?mode=ro&immutable=1", uri=True,
                          isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA query_only = ON")
    return con


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- sections -------------------------------------------------------------------------------

def _hostname(ctx: _Context) -> dict[str, Any]:
    return {"hostname": socket.gethostname()}


def _mounts(ctx: _Context) -> dict[str, Any]:
    """/proc/mounts; an SSOT mount point held only by an idle systemd automount is triggered
    first, the way any reader triggers it, and the table read again."""
    mounts, automounts = fstab.settle_automounts(
        lambda: parsers.parse_proc_mounts(read_file(ctx.mounts_file)),
        lambda path: fstab.trigger(path, ctx.slice(AUTOMOUNT_TIMEOUT)),
        ctx.p.get("mount_paths") or [])
    return {"mounts": mounts, "automounts": automounts}


def _fstab(ctx: _Context) -> dict[str, Any]:
    entries, errors = fstab.parse_fstab(read_file(ctx.fstab_file) or b"")
    return {"fstab": entries, "fstab_errors": errors}


def run_program(name: str, timeout: float) -> tuple[int, bytes, bytes]:
    """Run HOST_ARGV[name] (nothing else can run); FileNotFoundError if it is not installed."""
    argv = list(commands.HOST_ARGV[name])
    path = os.pathsep.join([os.environ.get("PATH", commands.SYSTEM_PATH), *SBIN])
    exe = shutil.which(argv[0], path=path)
    if exe is None:
        raise FileNotFoundError(f"{argv[0]}: command not found")
    proc = subprocess.run([exe, *argv[1:]], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, env=dict(os.environ, LC_ALL="C"), check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _program_facts(name: str, ctx: _Context, parse: Callable[[bytes], Any],
                   parse_failed: bool = False) -> tuple[Any, str]:
    """(parsed output, '') or (None, error: the program's first stderr line or why not).

    parse_failed: a program that exits non-zero may still print what it knows; then
    (parsed output, error) when that output parses.
    """
    words = " ".join(commands.HOST_ARGV[name][:2])
    try:
        rc, out, err = run_program(name, ctx.slice(PROGRAM_TIMEOUT))
    except FileNotFoundError as exc:
        return None, exc.args[0] if isinstance(exc.args[0], str) else describe_error(exc)
    except subprocess.TimeoutExpired as exc:
        return None, f"{words}: no answer within {exc.timeout:.1f} s"
    except OSError as exc:
        return None, f"{words}: {describe_error(exc)}"
    if rc != 0:
        first = err.decode("utf-8", "replace").strip().split("\n")[0][:300]
        error = first or f"{words}: exit status {rc}"
        if parse_failed and out.strip():
            try:
                return parse(out), error
            except parsers.ParseError:
                pass
        return None, error
    try:
        return parse(out), ""
    except parsers.ParseError as exc:
        return None, str(exc)


def _tailscale(ctx: _Context) -> dict[str, Any]:
    # `tailscale status --json` prints the state and exits 0 even when logged out (cmd/
    # tailscale/cli/status.go returns before its state check); should a version or wrapper
    # exit non-zero, a BackendState it printed is still the fact, with the exit as its error.
    status, error = _program_facts("tailscale_status", ctx, parsers.parse_tailscale_status,
                                   parse_failed=True)
    if status is None or (error and not status.get("backend_state")):
        return {"tailscale": {"ok": False, "error": error, "backend_state": None, "ips": [],
                              "online": None}}
    return {"tailscale": {"ok": True, "error": error or None, **status}}


def _zfs(ctx: _Context) -> dict[str, Any]:
    names, error = _program_facts("zfs_list", ctx, parsers.parse_zfs_list)
    return {"zfs": {"ok": names is not None, "error": error or None, "datasets": names or []}}


def docker_get(sock_path: str, which: str, timeout: float, **fields: str) -> tuple[int, bytes]:
    """(status, body) of one GET of DOCKER_GETS on the unix socket; nothing else is ever sent.

    HTTP/1.0, one connection per request: the answer ends when the connection closes, so no
    HTTP library is needed on the host (http.client would cost the script a third of its start).
    """
    path = commands.DOCKER_GETS[which].format(**fields)
    request = f"{commands.DOCKER_METHOD} {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode()
    chunks, size = [], 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(sock_path)
        sock.sendall(request)
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            chunks.append(data)
            size += len(data)
            if size > MAX_API_BODY:
                raise parsers.ParseError(f"Docker API: {which} answer larger than "
                                         f"{MAX_API_BODY} bytes")
    return parsers.parse_http_response(b"".join(chunks))


def _docker(ctx: _Context) -> dict[str, Any]:
    sock = ctx.docker_socket
    containers = []
    try:
        status, body = docker_get(sock, "containers", ctx.slice(PROGRAM_TIMEOUT))
        if status != 200:
            return _docker_error(f"GET /containers/json: HTTP {status}")
        pinned = ctx.p.get("pinned_env") or {}
        for cid in parsers.parse_container_list(body):
            status, body = docker_get(sock, "inspect", ctx.slice(PROGRAM_TIMEOUT), id=cid)
            if status == 404:  # removed between the list and the inspect
                continue
            if status != 200:
                return _docker_error(f"GET /containers/{cid[:12]}/json: HTTP {status}")
            containers.append(parsers.parse_container(body, pinned, ctx.secret_name))
    except FileNotFoundError:
        return _docker_error(f"no Docker socket at {sock}")
    except ConnectionRefusedError:
        return _docker_error(f"Docker socket {sock} refused the connection (dockerd down?)")
    except socket.timeout:  # noqa: UP041 -- on Python 3.8 it is not yet TimeoutError
        return _docker_error(f"Docker API on {sock}: no answer in time")
    except OSError as exc:
        return _docker_error(f"Docker API on {sock}: {describe_error(exc)}")
    except parsers.ParseError as exc:
        return _docker_error(str(exc))
    containers.sort(key=lambda c: c["name"])
    # The host's own clock: "started a minute ago" must not depend on the verifier's clock.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"docker": {"ok": True, "error": None, "now": now, "containers": containers}}


def _docker_error(error: str) -> dict[str, Any]:
    return {"docker": {"ok": False, "error": error, "containers": []}}


def _walk(root: str, ctx: _Context, on_skip: Callable[[str, str], None]) -> Any:
    """(dirpath, filenames) below root in a stable order, never through a symlink."""
    def onerror(exc: OSError) -> None:
        on_skip(exc.filename or root, describe_error(exc))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames.sort()
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                on_skip(os.path.join(dirpath, d), "symbolic link, not followed")
        yield dirpath, sorted(filenames)


def _stacks(ctx: _Context) -> dict[str, Any]:
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
            for dirpath, filenames in _walk(top, ctx, skip):
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
    found["keys"] = parsers.assigned_keys(data or b"", keys)
    return found


def _compose(path: str, keys: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "exists": os.path.exists(path), "error": None,
                             "secrets": {}}
    if entry["exists"]:
        try:
            entry["secrets"] = parsers.parse_compose_secrets(read_file(path) or b"", keys)
        except (OSError, parsers.ParseError) as exc:
            entry["error"] = describe_error(exc)
    return entry


def _config(ctx: _Context) -> dict[str, Any]:
    env = _container_env(ctx)
    return {"config": {c["name"]: config_values(c, ctx.secret_name, env)
                       for c in ctx.p.get("config_checks") or []}}


def _container_env(ctx: _Context) -> configs.EnvLookup:
    """One variable of a container's environment, from GET /containers/{name}/json."""
    docs: dict[str, Any] = {}

    def lookup(container: str, name: str) -> tuple[str | None, str | None]:
        if container not in docs:
            try:
                status, body = docker_get(ctx.docker_socket, "inspect",
                                          ctx.slice(PROGRAM_TIMEOUT), id=container)
                docs[container] = parsers.load_json(body, "GET /containers/{id}/json") \
                    if status == 200 else f"container {container}: HTTP {status} from Docker"
            except (OSError, parsers.ParseError) as exc:
                docs[container] = f"Docker API: {describe_error(exc)}"
        doc = docs[container]
        return (doc, None) if isinstance(doc, str) else (None, configs.env_value(doc, name))
    return lookup


def config_values(check: dict[str, Any], secret_name: re.Pattern | None = None,
                  env: configs.EnvLookup | None = None) -> dict[str, Any]:
    """{file, ok, error, values} of one SSOT config check; never a secret-named key's value.

    A path that names a secret is refused; a value reached through `*` below a secret-named
    key reads only as present or absent (parsers.SECRET_NAME, applied whatever PARAMS say).
    """
    entry: dict[str, Any] = {"file": check["file"], "ok": False, "error": None, "values": {}}
    keys = list(check.get("keys") or [])
    refused = [k for k in keys if any(parsers.secret_named(s, secret_name)
                                      for s in str(k).split("."))]
    if refused:
        entry["error"] = f"refused: key path {refused[0]} names a secret"
        return entry
    try:
        if check["format"] == "sqlite":
            entry["values"] = _sqlite_values(check, keys, secret_name)
        else:
            data = read_file(check["file"]) or b""
            if check["format"] == "yaml":
                doc = parsers.parse_yaml_subset(data)
                entry["values"] = {k: parsers.values_at(doc, k, secret_name) for k in keys}
                configs.resolve_values(entry, check, secret_name, env, read_file)
            elif check["format"] == "toml":
                doc = configs.load_toml(data)
                entry["values"] = {k: parsers.values_at(doc, k, secret_name) for k in keys}
            elif check["format"] == "json":
                doc = parsers.load_json(data, "JSON file")
                entry["values"] = {k: parsers.values_at(doc, k, secret_name) for k in keys}
            elif check["format"] == "xml":
                entry["values"] = {k: parsers.xml_values(data, k, secret_name) for k in keys}
            else:
                raise parsers.ParseError(f"unknown format {check['format']!r}")
    except FileNotFoundError:
        entry["error"] = f"file not found: {check['file']}"
        return entry
    except (OSError, parsers.ParseError) as exc:
        entry["error"] = describe_error(exc)
        return entry
    except _sqlite_errors() as exc:  # "no such table", "file is not a database": no content
        entry["error"] = f"SQLite: {exc}"
        return entry
    entry["ok"] = True
    return entry


def _sqlite_values(check: dict[str, Any], keys: list[str],
                   secret_name: re.Pattern | None = None) -> dict[str, list[Any]]:
    path, table, row = check["file"], check.get("table"), check.get("row") or {}
    read_file(path, head=lambda h: True)  # a clear error when missing or not a regular file
    con = _sqlite(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if table not in tables:
            raise parsers.ParseError(f"SQLite: no table {table!r}")
        columns = [r[1] for r in con.execute(f"PRAGMA table_info({_ident(table)})")]
        missing = [c for c in row if c not in columns]
        if missing:
            raise parsers.ParseError(f"SQLite: table {table!r} has no column {missing[0]!r}")
        where = " AND ".join(f"{_ident(c)} = ?" for c in row) or "1"
        cur = con.execute(f"SELECT * FROM {_ident(table)} WHERE {where}", list(row.values()))
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    out = {}
    for key in keys:
        first, *rest = parsers.split_path(key)
        if first not in names:
            out[key] = []
            continue
        i = names.index(first)
        out[key] = [v for r in rows for v in parsers.descend_json(r[i], rest, secret_name)]
    return out


class _Scan:
    """Where the retired addresses appear below the config roots."""

    def __init__(self, ctx: _Context):
        self.ctx = ctx
        self.pattern = parsers.address_pattern(ctx.p.get("retired") or [])
        self.needles = [a.encode() for a in ctx.p.get("retired") or []]
        self.refs: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {"roots": list(ctx.roots), "files": 0, "bytes": 0,
                                      "media_skipped": 0, "skipped": [], "complete": True}
        self.seen: set[tuple[int, int]] = set()
        self.dropped = 0

    def skip(self, path: str, reason: str) -> None:
        if len(self.facts["skipped"]) < MAX_SKIPPED:
            self.facts["skipped"].append({"path": path, "reason": reason})
        else:
            self.dropped += 1

    def add(self, address: str, path: str, line: int | None = None, table: str | None = None,
            row: int | None = None, column: str | None = None) -> None:
        if len(self.refs) == MAX_FINDINGS:
            self.skip(path, f"more than {MAX_FINDINGS} matches: listing stopped")
        if len(self.refs) < MAX_FINDINGS:
            self.refs.append({"address": address, "file": path, "line": line, "table": table,
                              "row": row, "column": column})

    def run(self) -> dict[str, Any]:
        for root in self.ctx.roots:
            if not os.path.isdir(root):
                self.skip(root, "missing" if not os.path.exists(root) else "not a directory")
                continue
            if not self._root(root):
                self.facts["complete"] = False
                break
        if self.dropped:
            self.facts["skipped"].append({"path": "", "reason": f"{self.dropped} more skipped"})
        return {"stale_refs": self.refs, "scan": self.facts}

    def _root(self, root: str) -> bool:
        for dirpath, filenames in _walk(root, self.ctx, self.skip):
            for fname in [""] + filenames:
                if self.ctx.left() <= 0:
                    self.skip(dirpath, "time budget exhausted: the rest was not scanned")
                    return False
                if fname:
                    self._file(os.path.join(dirpath, fname))
        return True

    def _file(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except OSError as exc:
            self.skip(path, describe_error(exc))
            return
        if stat.S_ISLNK(st.st_mode):
            self.skip(path, "symbolic link, not followed")
            return
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in self.seen:
            return  # sockets, FIFOs and devices hold no config; hard links are read once
        self.seen.add((st.st_dev, st.st_ino))
        if st.st_size > MAX_FILE:
            self.skip(path, "larger than 64 MiB")
            return
        try:
            data = read_file(path, follow=False, head=_is_media)
        except OSError as exc:
            self.skip(path, describe_error(exc))
            return
        if data is None:
            self.facts["media_skipped"] += 1
            return
        self.facts["files"] += 1
        self.facts["bytes"] += len(data)
        if data.startswith(SQLITE_MAGIC) and self._sqlite(path):
            return
        if not any(n in data for n in self.needles):  # most files: one fast substring search
            return
        for address, line in parsers.find_addresses(data, self.pattern,
                                                    not parsers.looks_binary(data)):
            self.add(address, path, line)

    def _sqlite(self, path: str) -> bool:
        """Scan every TEXT/BLOB value of every table; False if the file must be read as bytes."""
        try:
            con = _sqlite(path)
        except (OSError, *_sqlite_errors()) as exc:  # not openable here: the bytes still count
            self.skip(path, f"SQLite unreadable ({describe_error(exc)}): scanned as bytes")
            return False
        found: list[tuple[str, str, int | None, str]] = []
        try:
            con.text_factory = bytes  # no decoding: invalid UTF-8 cannot stop the scan
            tables = [r[0].decode("utf-8", "replace") for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                if self.ctx.left() <= 0:
                    raise TimeoutError
                found += self._table(con, table)
        except TimeoutError:
            self.skip(path, "time budget exhausted inside this database")
            return True
        except _sqlite_errors() as exc:  # malformed, or written while read: the bytes still count
            self.skip(path, f"SQLite error ({exc}): scanned as bytes")
            return False
        finally:
            con.close()
        for address, table, row, column in found:
            self.add(address, path, None, table, row, column)
        return True

    def _table(self, con: Any, table: str) -> list[tuple[str, str, int | None, str]]:
        """Matches in one table: SQLite's instr() finds candidate values, the regex decides."""
        if not self.needles:
            return []
        info = list(con.execute(f"PRAGMA table_info({_ident(table)})"))
        names = [r[1].decode("utf-8", "replace") if isinstance(r[1], bytes) else r[1]
                 for r in info]
        pk = [n for n, r in zip(names, info) if r[5]]
        try:
            con.execute(f"SELECT rowid FROM {_ident(table)} LIMIT 0")
            key = "rowid"
        except _sqlite3().OperationalError:  # WITHOUT ROWID: a one-column key names the row
            key = _ident(pk[0]) if len(pk) == 1 else "NULL"
        found = []
        for column in names:
            if self.ctx.left() <= 0:
                raise TimeoutError
            # CAST AS BLOB: TEXT and BLOB values are searched as bytes, numbers never match
            where = " OR ".join(f"instr(CAST({_ident(column)} AS BLOB), X'{n.hex()}') > 0"
                                for n in self.needles)
            for rid, value in con.execute(f"SELECT {key}, {_ident(column)} FROM "
                                          f"{_ident(table)} WHERE {where}"):
                if not isinstance(value, bytes):
                    continue
                for address in dict.fromkeys(m.group(1).decode()
                                             for m in self.pattern.finditer(value)):
                    found.append((address, table, rid if isinstance(rid, int) else None, column))
                if len(found) > MAX_FINDINGS:
                    return found
        return found


def _stale_refs(ctx: _Context) -> dict[str, Any]:
    return _Scan(ctx).run()
