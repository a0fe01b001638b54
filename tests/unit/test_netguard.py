"""The network guard stops traffic to the homelab's addresses from this machine's namespace."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from opsverify import netguard


@pytest.mark.skipif(netguard.in_private_namespace(), reason="runs in the machine's own namespace")
@pytest.mark.parametrize("address", ["100.123.207.64", "192.168.1.184", "192.0.2.1", "8.8.8.8"])
def test_non_loopback_is_refused_before_sending(address: str) -> None:
    with socket.socket() as s, pytest.raises(netguard.NetworkGuardError, match="network guard"):
        s.connect((address, 22))


def test_datagrams_are_guarded_too() -> None:
    if netguard.in_private_namespace():
        pytest.skip("runs in the machine's own namespace")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, \
            pytest.raises(netguard.NetworkGuardError):
        s.sendto(b"x", ("100.107.36.76", 53))


def test_loopback_is_allowed() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname(), timeout=2):
            pass


def test_ops_processes_inherit_the_guard() -> None:
    """An `ops` process started by a test is guarded as well (OPSVERIFY_NETGUARD=1)."""
    code = ("import os, socket, sys; from opsverify.cli import main; "
            "from opsverify import netguard; assert os.environ['OPSVERIFY_NETGUARD'] == '1'; "
            "main(['ssot', 'check']) ; s = socket.socket(); "
            "sys.exit(3 if isinstance(getattr(socket.socket.connect, '__wrapped__', None), object) "
            "and socket.socket.connect.__name__ == 'guarded' else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3, proc.stderr
