"""SSH transport of the host facts: testinfra's paramiko backend, verified and hard-bounded.

Backend is testinfra's `paramiko://` backend (in process) subclassed for what testinfra's lacks:
host keys verified against the ssh_config's UserKnownHostsFile (testinfra's accepts any key;
OPSVERIFY_INSECURE_HOST_KEYS accepts an unknown key, said so, never a changed one), TCP_NODELAY
and TCP_QUICKACK (Nagle and delayed ACKs cost ~40 ms each: connect_socket), connect/banner/auth timeouts, a watchdog that shuts the
socket at the deadline (paramiko waits for an exec reply unbounded), ProxyCommand/ProxyJump
through ssh_proxy.Proxy (which the deadline can end), and a check of every command against
commands.py before it is sent. It overrides testinfra private methods (_exec_command,
_load_ssh_config): tests/facts/test_host_collect.py runs it against a real sshd.

Measured against the twin's OpenSSH (bench/verify_bench.py): the login ~20 ms, the channel
~2 ms (43 ms before TCP_QUICKACK), the fact script ~90 ms on an idle host. `ssh://`
spawns an ssh client per command, is slower cold, and a warm ControlPath saves nothing when
each host gets one command per run; nor can it take a per-command timeout.

ssh_config and known_hosts files are parsed once per content and shared by the collector
threads (SshConfig, _parsed): paramiko's own lookups grow with the square or cube of the hosts.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import paramiko
from testinfra.backend.base import CommandResult
from testinfra.backend.paramiko import ParamikoBackend

from opsverify.facts import commands
from opsverify.facts.ssh_proxy import Proxy, proxy_argv
from opsverify.settings import Settings

# paramiko logs a failed banner read with a traceback; the reason reaches the report instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

MAX_OUTPUT = 64 * 1024 * 1024
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


def _parsed(kind: str, path: str) -> Any:
    """An ssh_config or known_hosts file, parsed once per content. paramiko parses the whole
    file for every host, and its known_hosts load checks each line against every line before it:
    with 100 hosts in both files, seconds of the verifier's GIL, growing with the cube of N."""
    st = os.stat(path)
    with _PARSE_LOCK:  # the collector threads start together: one parses, the others wait
        return _parse(kind, path, (st.st_ino, st.st_mtime_ns, st.st_size))


_PARSE_LOCK = threading.Lock()


class SshConfig(paramiko.SSHConfig):
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
    return SshConfig.from_path(path) if kind == "ssh_config" else paramiko.HostKeys(path)


class SshFailure(Exception):
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

    def __init__(self, backend: Backend):
        self.backend = backend

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        self.backend.accepted_unknown = _fingerprint(key)


def _fingerprint(key: paramiko.PKey | None) -> str:
    return f"{key.get_name()} {key.fingerprint}" if key is not None else "no key"


class _WithoutProxy:
    """An ssh_config as testinfra reads it, but for ProxyCommand and ProxyJump: testinfra would
    start paramiko's own proxy, which a frozen host outlives; Backend starts a Proxy."""

    def __init__(self, config: paramiko.SSHConfig):
        self.config = config

    def lookup(self, name: str) -> dict[str, Any]:
        return {k: v for k, v in self.config.lookup(name).items()
                if k not in ("proxycommand", "proxyjump")}


_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _QuickAckSocket(socket.socket):
    """A TCP socket that acknowledges every segment at once (Linux TCP_QUICKACK, re-armed after
    each read: the kernel drops it again by itself).

    Why: right after the login, sshd sends its `hostkeys-00@openssh.com` announcement, which asks
    for no reply. The client's kernel delays its ACK of it (40 ms on Linux), and sshd, which sets
    TCP_NODELAY only for sessions with a terminal, holds its small channel-open confirmation back
    under Nagle until that ACK comes: every login then waited 40 ms before the command could be
    sent (measured against the twin's OpenSSH: open_session 43 ms, 1.5 ms with this)."""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        self.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        return data


def connect_socket(address: str, port: int, timeout: float) -> socket.socket:
    """A connected TCP socket for paramiko: TCP_NODELAY (Nagle costs ~40 ms per exchange) and,
    on Linux, acknowledgements never delayed (_QuickAckSocket)."""
    sock = socket.create_connection((address, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if _TCP_QUICKACK is None:
        return sock
    quick = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    quick.settimeout(timeout)
    quick.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
    return quick


class Backend(ParamikoBackend):
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
            raise SshFailure(f"no answer from {self.endpoint} within "
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
            else:  # our own socket: no Nagle, no delayed ACK (connect_socket)
                cfg["sock"] = connect_socket(cfg["hostname"], cfg["port"], max(0.1, self.left()))
            self._arm(cfg["sock"])
            left = max(0.1, self.left())
            client.connect(**cfg, timeout=left, banner_timeout=left, auth_timeout=left,
                           channel_timeout=left)
        except SshFailure:
            client.close()
            raise
        except Exception as exc:  # noqa: BLE001 -- every way a login fails becomes a reason
            client.close()
            raise SshFailure(self.why(exc)) from None
        return client

    def _read_ssh_config(self, client: paramiko.SSHClient, cfg: dict[str, Any]) -> dict:
        path = self.ssh_config or os.path.expanduser("~/.ssh/config")
        if not os.path.exists(path):
            if self.ssh_config:
                raise SshFailure(f"ssh_config {path} does not exist")
            return {}
        try:
            config = _parsed("ssh_config", path)
            self._load_ssh_config(client, cfg, _WithoutProxy(config), os.path.dirname(path))
        except (OSError, ValueError, paramiko.SSHException) as exc:
            raise SshFailure(f"cannot read ssh_config {path}: {exc}") from None
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
                    raise SshFailure(f"cannot read known_hosts {path}: {exc}") from None
                have = set(mine.lookup(name) or {})
                for keytype, key in found.items():
                    if keytype not in have:
                        mine.add(name, keytype, key)
        # after testinfra's, which StrictHostKeyChecking=no would make ignore every key
        relaxed = self.settings.host_keys_relaxed(self.name)
        client.set_missing_host_key_policy(_AcceptUnknown(self) if relaxed else _RejectUnknown())

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
                raise SshFailure(f"the fact command did not finish within "
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
                    raise SshFailure(f"the fact command printed more than {MAX_OUTPUT} bytes")

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
