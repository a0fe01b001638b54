"""ProxyCommand and ProxyJump for the SSH collector, with an end that a frozen host cannot stop.

paramiko's ProxyCommand has two faults that together let one frozen host behind a jump host
hang a run for ever: close() sends SIGTERM to the command it started and to nothing else (the
children of a `sh -c` wrapper live on, holding the pipe open), and recv() never reports
end-of-file, so when the proxy is gone the transport keeps polling a dead pipe and the channel
waits without a timeout. Proxy fixes both: the command leads its own process group, which
close() ends (SIGTERM, then SIGKILL after GRACE), and recv() returns b"" at end-of-file or once
close() was called, which paramiko's transport treats as a closed connection.

ProxyJump is run as OpenSSH itself runs it: a ProxyCommand `ssh -W [%h]:%p JUMP` with the same
ssh_config (so the jump host's key is checked against the same known_hosts), in batch mode.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import threading
import time
from typing import Any

import paramiko

GRACE = 0.5  # seconds between SIGTERM and SIGKILL of the proxy's process group
POLL = 0.1  # how often a blocked recv() looks whether close() was called


class Proxy(paramiko.ProxyCommand):
    """A proxy command as a socket for paramiko; close() ends its whole process group."""

    def __init__(self, argv: list[str]):
        # Not super().__init__(): it would start the command without a process group.
        self.cmd = list(argv)
        # A process group of its own: close() reaches the command's children too. stderr is
        # not read (a full pipe would stall the proxy), so it goes nowhere.
        self.process = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, bufsize=0,
                                        start_new_session=True)
        self.timeout: float | None = None
        self._closing = threading.Event()

    def recv(self, size: int) -> bytes:
        """Up to size bytes; b"" at end-of-file or after close(); socket.timeout as a socket."""
        fd = self.process.stdout.fileno()  # type: ignore[union-attr]
        end = None if self.timeout is None else time.monotonic() + self.timeout
        while not self._closing.is_set():
            wait = POLL if end is None else min(POLL, end - time.monotonic())
            if wait <= 0:
                raise socket.timeout  # noqa: UP041 -- what paramiko's transport catches
            try:
                ready, _, _ = select.select([fd], [], [], wait)
                if ready:
                    return os.read(fd, size)
            except OSError as exc:  # the pipe is gone: as a socket reset
                raise paramiko.ProxyCommandFailure(" ".join(self.cmd), exc.strerror) from None
        return b""

    def send(self, content: bytes) -> int:
        if self._closing.is_set():
            raise paramiko.ProxyCommandFailure(" ".join(self.cmd), "closed")
        return super().send(content)

    def exit_status(self) -> int | None:
        """The command's exit status once it ended (not reaped, see close()), else None."""
        try:
            info = os.waitid(os.P_PID, self.process.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # already reaped
            return self.process.returncode
        return None if info is None else info.si_status

    def close(self) -> None:
        """End the command and everything it started: SIGTERM, SIGKILL after GRACE."""
        if self._closing.is_set():
            return
        self._closing.set()  # recv() returns b"" at its next poll: the transport ends
        # The leader is left unreaped until its group got SIGKILL, so that its pid, which is
        # the group's id, cannot be reused by an unrelated process in between.
        self._signal(signal.SIGTERM)
        end = time.monotonic() + GRACE
        while self.exit_status() is None and time.monotonic() < end:
            time.sleep(0.02)
        self._signal(signal.SIGKILL)
        try:
            self.process.wait(GRACE)
        except subprocess.TimeoutExpired:  # stuck in the kernel: the kernel will reap it
            pass

    def release(self) -> None:
        """Close the pipes, once the transport that read them is gone."""
        self.close()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):  # the whole group has ended
            pass


def proxy_argv(options: dict[str, Any], hostname: str, port: int,
               ssh_config: str | None) -> list[str] | None:
    """The proxy command of a host's ssh_config options (ProxyCommand first, as OpenSSH), or
    None to connect directly."""
    import shlex

    command = str(options.get("proxycommand") or "")
    if command and command.lower() != "none":
        return shlex.split(command)  # paramiko's lookup() has expanded %h, %p and %r
    jump = str(options.get("proxyjump") or "")
    if not jump or jump.lower() == "none":
        return None
    *before, last = [j.strip() for j in jump.split(",")]
    user, host, jport = _jump_spec(last)
    argv = ["ssh", *(["-F", ssh_config] if ssh_config else []), "-o", "BatchMode=yes",
            "-W", f"[{hostname}]:{port}"]
    if before:
        argv += ["-J", ",".join(before)]
    if user:
        argv += ["-l", user]
    if jport:
        argv += ["-p", jport]
    return [*argv, "--", host]


def _jump_spec(spec: str) -> tuple[str, str, str]:
    """(user, host, port) of `[user@]host[:port]` or `ssh://[user@]host[:port]`."""
    spec = spec.removeprefix("ssh://")
    user, _, rest = spec.rpartition("@")
    if rest.startswith("["):  # [IPv6]:port
        host, _, tail = rest[1:].partition("]")
        return user, host, tail.removeprefix(":")
    host, _, port = rest.partition(":") if rest.count(":") == 1 else (rest, "", "")
    return user, host, port
