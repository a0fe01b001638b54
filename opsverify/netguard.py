"""A fail-fast guard against sending traffic off this machine from its own network namespace.

The SSOT's addresses belong to a real homelab. Tests and the demo reach them only inside the
lab twin's namespace, which has nothing but a loopback. Where the guard is installed (the test
suite, and any `ops` process started with OPSVERIFY_NETGUARD=1), a connection or datagram to a
non-loopback address from a namespace that has a real interface raises before a packet leaves.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

ENV = "OPSVERIFY_NETGUARD"


class NetworkGuardError(ConnectionRefusedError):
    """Raised instead of sending to a non-loopback address from the machine's own namespace."""


def in_private_namespace() -> bool:
    """True inside a namespace whose only interface is loopback (the lab twin's)."""
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return False
    return {ln.split(":", 1)[0].strip() for ln in lines} <= {"lo"}


def _allowed(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True  # AF_UNIX paths and abstract sockets never leave the machine
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name: resolving it is already traffic we cannot vouch for
    return ip.is_loopback or in_private_namespace()


def _guard(method: Any, addr_index: int) -> Any:
    def guarded(self: socket.socket, *args: Any) -> Any:
        address = args[addr_index] if len(args) > addr_index else None
        if self.family in (socket.AF_INET, socket.AF_INET6) and address is not None \
                and not _allowed(address):
            raise NetworkGuardError(
                f"network guard: refusing to send to {address!r} from the machine's own network "
                "namespace (SSOT addresses are reachable only inside the lab twin: "
                "use `ops lab exec -- …`)")
        return method(self, *args)
    guarded.__wrapped__ = method  # type: ignore[attr-defined]
    return guarded


def install() -> None:
    """Guard every socket of this process (idempotent); children inherit it through ENV."""
    if getattr(socket.socket.connect, "__wrapped__", None):
        return
    socket.socket.connect = _guard(socket.socket.connect, 0)  # type: ignore[method-assign]
    socket.socket.connect_ex = _guard(socket.socket.connect_ex, 0)  # type: ignore[method-assign]
    socket.socket.sendto = _guard(socket.socket.sendto, -1)  # type: ignore[method-assign]
    os.environ[ENV] = "1"
