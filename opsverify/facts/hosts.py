"""Host facts: one remote command per host, over testinfra's paramiko backend, hard-bounded.

host_collectors() gives the FactStore one collector per active host with an SSH target
(`host:<name>`). A collector logs in once, runs commands.facts_command() (remote.py's script
with the host's SSOT parameters), and returns the facts it prints, or raises Unreachable with
the reason: connection refused, no answer, frozen sshd, unknown host key, host key mismatch,
authentication failed, script failed. Everything is bounded by settings.timeout: the remote
script by coreutils `timeout` on the host, the SSH phases by their own timeouts plus a
watchdog that shuts the socket at the deadline (paramiko waits for an exec reply unbounded).

Transport: testinfra's `paramiko://` backend, in process. Measured on loopback (bench/
facts_bench.py): the login is ~50 ms and the script ~80 ms; the rest is the host's login shell
reading its rc files, which every transport pays. `ssh://` spawns an ssh client per command,
is slower cold, and a warm ControlPath saves nothing when each host gets one command per run;
nor can it take a per-command timeout. The backend is subclassed for what testinfra's lacks:
host keys verified against the ssh_config's UserKnownHostsFile (testinfra's accepts any key),
TCP_NODELAY (Nagle costs ~40 ms per exchange), connect/banner/auth timeouts, a per-command
deadline, and a check of every command against commands.py before it is sent. Hosts are made
with testinfra.host.Host(backend), not testinfra.get_host(), which caches a Host and its SSH
connection per process for ever: a collector opens one connection, runs one command, closes it.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paramiko
from testinfra.backend.base import CommandResult
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host as TestinfraHost

from opsverify import redact
from opsverify.facts import commands, parsers, remote
from opsverify.facts.ssh_proxy import Proxy, proxy_argv
from opsverify.facts.store import Collector
from opsverify.settings import Settings
from opsverify.ssot import Ssot
from opsverify.verdict import Unreachable

# paramiko logs a failed banner read with a traceback; the reason reaches the report instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

Recorder = Callable[[str, str, str], None]  # (host, command, purpose), as FactStore.record_command
MAX_OUTPUT = 64 * 1024 * 1024
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FORMATS = ("json", "xml", "yaml", "toml", "sqlite")
FILES = {"mounts": "/proc/mounts", "fstab": "/etc/fstab", "docker_socket": "/var/run/docker.sock"}
USER_KNOWN_HOSTS = "~/.ssh/known_hosts ~/.ssh/known_hosts2"
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"


@dataclass(frozen=True)
class Target:
    """Where a host is logged in to: its SSH address, user and port."""

    name: str
    address: str
    user: str = "root"
    port: int = 22

    @property
    def hostspec(self) -> str:
        return f"paramiko://{self.user}@{self.address}:{self.port}"


def host_collectors(ssot: Ssot, settings: Settings,
                    record: Recorder | None = None) -> dict[str, Collector]:
    """One collector per active host with an SSH target; record(host, command, purpose) audits."""
    out: dict[str, Collector] = {}
    for name, host in ssot.active_hosts.items():
        target = Target(name, host.ssh_address or "", host.ssh_user, host.ssh_port)
        out[f"host:{name}"] = functools.partial(_collect_ssot_host, ssot, target, settings, record)
    return out


def _collect_ssot_host(ssot: Ssot, target: Target, settings: Settings,
                       record: Recorder | None) -> dict[str, Any]:
    try:
        params = remote_params(ssot, target.name)
    except ValueError as exc:
        raise Unreachable(f"host:{target.name}", f"cannot build the fact command: {exc}") from None
    return collect(target, params, settings, record)


def remote_params(ssot: Ssot, host: str) -> dict[str, Any]:
    """The fact script's parameters for one host, from the SSOT (budget_s is added per run)."""
    stacks = ssot.stacks_on(host)
    pve = ssot.proxmox_host
    params = {
        "host": host,
        "secret_name": redact.SECRET_NAME.pattern,
        "files": dict(FILES),
        "zfs": bool(pve and pve.name == host),
        "pinned_env": {c.name: sorted(c.env) for c in ssot.containers if c.host == host and c.env},
        "stacks": {s.name: {"directory": s.directory, "compose": s.compose_path,
                            "roots": list(s.config_roots),
                            "generated": [{"path": g.path, "unit": g.unit}
                                          for g in ssot.generated_env if g.stack == s.name]}
                   for s in stacks},
        "mount_paths": [m.path for m in ssot.mounts if m.host == host],
        "secret_keys": sorted(set(ssot.secret_keys)),
        "plaintext_globs": list(ssot.plaintext_files),
        "retired": sorted(ssot.retired_addresses),
        "config_roots": list(dict.fromkeys(r for s in stacks for r in s.config_roots)),
        "config_checks": [{"name": c.name, "file": c.file, "format": c.format,
                           "keys": list(c.keys), "table": c.table, "row": dict(c.row),
                           # whose environment a Recyclarr `!env_var` in the file reads
                           "container": c.source.split(":")[-1] if c.source else None}
                          for c in ssot.config_checks if c.host == host],
    }
    validate_params(params)
    return params


def validate_params(params: dict[str, Any]) -> None:
    """ValueError naming the first value the fact script must not be given."""
    def path(value: Any, what: str) -> None:
        if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
            raise ValueError(f"{what}: {value!r} is not an absolute path")

    def name(value: Any, what: str) -> None:
        if not isinstance(value, str) or not ENV_NAME.fullmatch(value):
            raise ValueError(f"{what}: {value!r} is not a variable name")

    for key, value in params["files"].items():
        path(value, f"files.{key}")
    for stack, st in params["stacks"].items():
        path(st["directory"], f"stack {stack}: directory")
        path(st["compose"], f"stack {stack}: compose file")
        for root in st["roots"]:
            path(root, f"stack {stack}: config root")
        for g in st["generated"]:
            path(g["path"], f"stack {stack}: generated env file")
            if not re.fullmatch(r"[A-Za-z0-9_.@:-]+\.service", str(g["unit"])):
                raise ValueError(f"stack {stack}: {g['unit']!r} is not a systemd service name")
    for mount_path in params["mount_paths"]:
        path(mount_path, "mount point")
    for root in params["config_roots"]:
        path(root, "config root")
    for key in params["secret_keys"]:
        name(key, "secret key")
    for container, names in params["pinned_env"].items():
        for n in names:
            name(n, f"container {container}: env")
    for glob in params["plaintext_globs"]:
        if not isinstance(glob, str) or not glob or "/" in glob or "\0" in glob:
            raise ValueError(f"plaintext file pattern {glob!r} must be a file name pattern")
    for address in params["retired"]:
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ValueError(f"retired address {address!r} is not an IPv4 address") from None
    for check in params["config_checks"]:
        what = f"config check {check['name']}"
        path(check["file"], f"{what}: file")
        if check["format"] not in FORMATS:
            raise ValueError(f"{what}: format {check['format']!r} is not one of {FORMATS}")
        if check["format"] == "sqlite" and not check["table"]:
            raise ValueError(f"{what}: a sqlite check needs a table")
        for key in check["keys"]:
            try:
                parsers.split_path(key)
            except parsers.ParseError as exc:
                raise ValueError(f"{what}: {exc}") from None
    try:
        re.compile(params["secret_name"])
    except re.error as exc:
        raise ValueError(f"secret name pattern: {exc}") from None


def collect(target: Target, params: dict[str, Any], settings: Settings,
            record: Recorder | None = None) -> dict[str, Any]:
    """The facts of one host in one round trip, or Unreachable within settings.timeout."""
    source = f"host:{target.name}"
    started = time.monotonic()
    backend = _Backend(target, settings, started + settings.timeout)
    host = TestinfraHost(backend)
    backend.set_host(host)
    try:
        try:
            backend.login()  # first, so that a login failure and a script failure read apart
            connected = time.monotonic()
            # the host's `timeout` fires first, its KILL a second later, with time to answer
            limit = int(backend.left() - 1.5)
            if limit < 1:
                raise _SshFailure(f"logged in, but less than 2.5 s of the {settings.timeout:g} s "
                                  "timeout was left for the fact script")
            command = commands.facts_command(
                remote.script_payload(), {**params, "budget_s": max(0.5, limit - 1.0)}, limit)
            if record is not None:
                record(target.name, commands.describe(command), "host facts: one command per run")
            result = host.run(command)
        except _SshFailure as exc:
            raise Unreachable(source, exc.reason) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(source, backend.why(exc)) from None
    finally:
        backend.close()
    facts = _decode(source, result, limit)
    facts["duration_s"] = round(time.monotonic() - started, 3)
    facts["transport"] = {
        "backend": "paramiko",
        "host_key": f"NOT verified: unknown key {backend.accepted_unknown} accepted "
                    "(OPSVERIFY_INSECURE_HOST_KEYS)" if backend.accepted_unknown else "verified",
        "connect_s": round(connected - started, 3),
        "command_s": round(time.monotonic() - connected, 3),
    }
    return redact.scrub_obj(facts)


def _decode(source: str, result: CommandResult, limit: int) -> dict[str, Any]:
    out, err = result.stdout_bytes, result.stderr_bytes
    lines = [ln for ln in err.decode("utf-8", "replace").strip().split("\n") if ln.strip()]
    last = redact.scrub(lines[-1].strip()[:300]) if lines else "no error output"
    if result.rc in (124, 137):
        raise Unreachable(source, f"the fact script was stopped by its {limit} s limit on the "
                                  "host (hung filesystem?)")
    if result.rc in (126, 127):
        raise Unreachable(source, f"cannot run the fact script on the host: {last}")
    marker = commands.SENTINEL.encode()
    at = out.rfind(marker)
    if result.rc != 0 or at < 0:
        raise Unreachable(source, f"the fact script failed (exit {result.rc}): {last}")
    try:
        facts = json.loads(out[at + len(marker):])
    except ValueError:
        facts = None
    if not isinstance(facts, dict):
        raise Unreachable(source, "the fact script printed no JSON object")
    return facts


def _parsed(kind: str, path: str) -> Any:
    """An ssh_config or known_hosts file, parsed once per content. paramiko parses the whole
    file for every host, and its known_hosts load checks each line against every line before it:
    with 100 hosts in both files, seconds of the verifier's GIL, growing with the cube of N."""
    st = os.stat(path)
    with _PARSE_LOCK:  # the collector threads start together: one parses, the others wait
        return _parse(kind, path, (st.st_ino, st.st_mtime_ns, st.st_size))


_PARSE_LOCK = threading.Lock()


class _Config(paramiko.SSHConfig):
    """An ssh_config whose lookups are remembered, and made on the blocks that can apply.
    paramiko walks every block per lookup (asking getpass.getuser() for each), and each host
    is looked up several times per login: with a block per host, quadratic in hosts."""

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[str, Any] = {}
        self._memo_lock = threading.Lock()
        self._index: dict[str, list[int]] | None = None

    def lookup(self, hostname: str) -> Any:
        with self._memo_lock:
            if hostname not in self._memo:
                self._memo[hostname] = self._applicable(hostname).lookup(hostname)
            return copy.deepcopy(self._memo[hostname])  # callers get their own

    def _applicable(self, hostname: str) -> paramiko.SSHConfig:
        """The blocks in order, less the `Host` blocks of literal names that are not hostname
        (they cannot match it); all of them if canonicalization may look up another name."""
        if self._index is None:
            self._index, always = {}, []
            for i, c in enumerate(self._config):
                if "matches" in c or any(ch in p for p in c.get("host", []) for ch in "*?[!"):
                    always.append(i)
                for p in set(c.get("host", [])) if i not in always else ():
                    self._index.setdefault(p, []).append(i)
            self._index[""] = always
            if any("canonicalizehostname" in c["config"] for c in self._config):
                self._index = {"": list(range(len(self._config)))}
        sub = paramiko.SSHConfig()
        sub._config = [self._config[i] for i in sorted({*self._index[""],
                                                        *self._index.get(hostname, [])})]
        return sub


@functools.lru_cache(maxsize=16)
def _parse(kind: str, path: str, _stamp: tuple[int, int, int]) -> Any:
    # lookups only read them: shared between the collector threads
    return _Config.from_path(path) if kind == "ssh_config" else paramiko.HostKeys(path)


class _SshFailure(Exception):
    """An SSH phase failed; reason says which and why, for the UNREACHABLE report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, name: str, key: paramiko.PKey):
        super().__init__(f"unknown host key for {name}")
        self.key = key


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    """A host whose key no known_hosts file holds is not logged in to."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise _UnknownHostKey(hostname, key)


class _AcceptUnknown(paramiko.MissingHostKeyPolicy):
    """OPSVERIFY_INSECURE_HOST_KEYS: a key no known_hosts file holds is taken, and said so.

    A key that differs from the one known_hosts holds never reaches a policy: paramiko refuses
    it (BadHostKeyException) before, so a changed key is refused even here."""

    def __init__(self, backend: _Backend):
        self.backend = backend

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        self.backend.accepted_unknown = _fingerprint(key)


def _fingerprint(key: paramiko.PKey | None) -> str:
    return f"{key.get_name()} {key.fingerprint}" if key is not None else "no key"


class _WithoutProxy:
    """An ssh_config as testinfra reads it, but for ProxyCommand and ProxyJump: testinfra would
    start paramiko's own proxy, which a frozen host outlives; _Backend starts a Proxy."""

    def __init__(self, config: paramiko.SSHConfig):
        self.config = config

    def lookup(self, name: str) -> dict[str, Any]:
        return {k: v for k, v in self.config.lookup(name).items()
                if k not in ("proxycommand", "proxyjump")}


class _Backend(ParamikoBackend):
    """testinfra's paramiko backend with verified host keys, TCP_NODELAY and hard deadlines."""

    def __init__(self, target: Target, settings: Settings, deadline: float):
        ssh_config = str(settings.ssh_config) if settings.ssh_config else None
        super().__init__(target.hostspec, ssh_config=ssh_config,
                         timeout=max(1, int(settings.timeout)))
        self.settings = settings
        self.deadline = deadline
        self.known_hosts: list[str] = []
        self.endpoint = f"{target.address}:{target.port}"
        self.user = target.user
        self.name = target.name
        self.accepted_unknown: str | None = None  # fingerprint, under insecure host keys
        self._proxy: Proxy | None = None
        self.expired = False
        self._sock: Any = None
        self._timer: threading.Timer | None = None
        self._client: paramiko.SSHClient | None = None

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def get_encoding(self) -> str:
        return "utf-8"  # testinfra would ask the host with a command of its own

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        """Run a command of commands.py; anything else is refused before it is sent."""
        commands.check(self.get_command(command, *args))
        return super().run(command, *args, **kwargs)

    def login(self) -> paramiko.SSHClient:
        """The logged-in SSH client (testinfra's `client`), connecting on first use."""
        return self.client

    @property
    def client(self) -> paramiko.SSHClient:
        # Not functools.cached_property: before Python 3.12 it holds one lock per class, so a
        # frozen sshd's login would hold up every other host's.
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> paramiko.SSHClient:
        if self.left() <= 0:
            raise _SshFailure(f"no answer from {self.endpoint} within "
                              f"{self.settings.timeout:g} s")
        client = paramiko.SSHClient()
        cfg: dict[str, Any] = {"hostname": self.host.name, "port": int(self.host.port or 22),
                               "username": self.host.user}
        try:
            options = self._read_ssh_config(client, cfg)
            self._trust(client, options, cfg)
            self.endpoint, self.user = f"{cfg['hostname']}:{cfg['port']}", cfg["username"]
            argv = proxy_argv(options, cfg["hostname"], cfg["port"], self.ssh_config)
            if argv is not None:  # ProxyCommand or ProxyJump: a proxy the deadline can end
                self._proxy = cfg["sock"] = Proxy(argv)
            else:  # our own socket, to set TCP_NODELAY on it
                cfg["sock"] = socket.create_connection((cfg["hostname"], cfg["port"]),
                                                       timeout=max(0.1, self.left()))
                cfg["sock"].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._arm(cfg["sock"])
            left = max(0.1, self.left())
            client.connect(**cfg, timeout=left, banner_timeout=left, auth_timeout=left,
                           channel_timeout=left)
        except _SshFailure:
            client.close()
            raise
        except Exception as exc:  # noqa: BLE001 -- every way a login fails becomes a reason
            client.close()
            raise _SshFailure(self.why(exc)) from None
        return client

    def _read_ssh_config(self, client: paramiko.SSHClient, cfg: dict[str, Any]) -> dict:
        path = self.ssh_config or os.path.expanduser("~/.ssh/config")
        if not os.path.exists(path):
            if self.ssh_config:
                raise _SshFailure(f"ssh_config {path} does not exist")
            return {}
        try:
            config = _parsed("ssh_config", path)
            self._load_ssh_config(client, cfg, _WithoutProxy(config), os.path.dirname(path))
        except (OSError, ValueError, paramiko.SSHException) as exc:
            raise _SshFailure(f"cannot read ssh_config {path}: {exc}") from None
        return config.lookup(self.host.name)

    def _trust(self, client: paramiko.SSHClient, options: dict, cfg: dict[str, Any]) -> None:
        """Known hosts from the ssh_config, always: a changed key is refused. An unknown key is
        refused unless insecure host keys are allowed for this host."""
        names = f"{options.get('userknownhostsfile') or USER_KNOWN_HOSTS} " \
                f"{options.get('globalknownhostsfile') or GLOBAL_KNOWN_HOSTS}"
        self.known_hosts = [os.path.expanduser(n) for n in names.split()]
        # The name paramiko's connect() looks the server's key up by; only its keys are given
        # to the client, the first file's key of a type first, as load_system_host_keys() does.
        port = int(cfg["port"])
        name = cfg["hostname"] if port == 22 else f"[{cfg['hostname']}]:{port}"
        mine = client.get_host_keys()
        for path in self.known_hosts:
            if os.path.isfile(path):
                try:
                    found = _parsed("known_hosts", path).lookup(name) or {}
                except (OSError, paramiko.SSHException, ValueError) as exc:
                    raise _SshFailure(f"cannot read known_hosts {path}: {exc}") from None
                have = set(mine.lookup(name) or {})
                for keytype, key in found.items():
                    if keytype not in have:
                        mine.add(name, keytype, key)
        # after testinfra's, which StrictHostKeyChecking=no would make ignore every key
        client.set_missing_host_key_policy(
            _AcceptUnknown(self) if self.settings.host_keys_relaxed(self.name) else _RejectUnknown())

    def _arm(self, sock: Any) -> None:
        self._sock = sock
        self._timer = threading.Timer(max(0.0, self.left()), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        """The deadline: shut the socket, which ends every SSH wait, even exec's unbounded one."""
        self.expired = True
        try:
            if hasattr(self._sock, "shutdown"):
                self._sock.shutdown(socket.SHUT_RDWR)
            else:
                self._sock.close()  # a ProxyCommand
        except OSError:
            pass

    def why(self, exc: BaseException) -> str:
        """The reason an SSH phase failed, as the UNREACHABLE report shows it."""
        where, limit = self.endpoint, f"{self.settings.timeout:g} s"
        if isinstance(exc, _UnknownHostKey):
            return (f"unknown host key: {where} offered {_fingerprint(exc.key)}, which no "
                    f"known_hosts file holds ({', '.join(self.known_hosts)}); not logged in")
        if isinstance(exc, paramiko.BadHostKeyException):
            return (f"host key mismatch: {where} offered {_fingerprint(exc.key)}, known_hosts "
                    f"holds {_fingerprint(exc.expected_key)}; not logged in")
        if isinstance(exc, paramiko.AuthenticationException):
            return f"authentication failed as {self.user} on {where}"
        if isinstance(exc, ConnectionRefusedError):
            return f"connection refused by {where} (sshd not running?)"
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve {where}: {exc.strerror}"
        status = self._proxy.exit_status() if self._proxy is not None else None
        if status is not None and not self.expired:
            return (f"the proxy command to {where} ({' '.join(self._proxy.cmd)[:120]}) ended "
                    f"with status {status} before a login (jump host down or refusing?)")
        if "banner" in str(exc) or self.expired and self._client is None:
            return f"no SSH login from {where} within {limit} (sshd hung or frozen?)"
        if self.expired or isinstance(exc, TimeoutError):
            return f"no answer from {where} within {limit}"
        if isinstance(exc, OSError):
            return f"cannot connect to {where}: {exc.strerror or exc}"
        return f"SSH to {where} failed: {type(exc).__name__}: {exc}"

    def _exec_command(self, command: bytes) -> tuple[int, bytes, bytes]:
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise paramiko.SSHException("SSH transport closed")
        try:
            chan = transport.open_session(timeout=max(0.1, self.left()))
            chan.exec_command(command)  # waits for sshd's reply unbounded: _expire() ends it
            out, err = self._drain(chan)
            if not chan.status_event.wait(max(0.0, self.left())):
                raise TimeoutError
            return chan.recv_exit_status(), out, err
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if self.expired or isinstance(exc, TimeoutError):
                raise _SshFailure(f"the fact command did not finish within "
                                  f"{self.settings.timeout:g} s on {self.endpoint}") from None
            raise

    def _drain(self, chan: paramiko.Channel) -> tuple[bytes, bytes]:
        """stdout until EOF, stderr beside it (an unread stderr would stall the channel)."""
        out: list[bytes] = []
        err: list[bytes] = []
        size = 0
        while True:
            if self.left() <= 0:
                raise TimeoutError
            chan.settimeout(min(self.left(), 0.5))
            try:
                data: bytes | None = chan.recv(1 << 16)
            except TimeoutError:
                data = None
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(1 << 16))
            if data == b"":
                return b"".join(out), b"".join(err)
            if data:
                out.append(data)
                size += len(data)
                if size > MAX_OUTPUT:
                    raise _SshFailure(f"the fact command printed more than {MAX_OUTPUT} bytes")

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._sock is not None and hasattr(self._sock, "close"):
            self._sock.close()
        if self._proxy is not None:
            self._proxy.release()
