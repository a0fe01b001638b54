"""The collector's TCP socket: no Nagle, and no delayed ACK (ssh_transport.connect_socket).

Without TCP_QUICKACK re-armed after every read, every login waited 40 ms before its command
could be sent: sshd holds its channel-open confirmation back under Nagle until the client's
delayed ACK of sshd's unanswered `hostkeys-00@openssh.com` message comes. Linux drops
quick-ACK mode by itself once a connection looks interactive, which the control below shows.
"""

from __future__ import annotations

import socket
import threading

import pytest

from opsverify.facts.ssh_transport import connect_socket

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")


def _echo_server() -> int:
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with conn, srv:
            while data := conn.recv(64):
                conn.sendall(data)
    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


def _quickack_after_each_exchange(sock: socket.socket) -> list[int]:
    seen = []
    with sock:
        for _ in range(10):
            sock.sendall(b"ping")
            sock.recv(64)
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK))
    return seen


def test_the_kernel_drops_quickack_on_a_plain_socket() -> None:
    # the control: what the collector's socket must not do
    seen = _quickack_after_each_exchange(socket.create_connection(("127.0.0.1", _echo_server())))
    assert 0 in seen


def test_the_collectors_socket_acks_at_once_after_every_read_and_has_no_nagle() -> None:
    sock = connect_socket("127.0.0.1", _echo_server(), 5)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert sock.gettimeout() == 5
    assert _quickack_after_each_exchange(sock) == [1] * 10
