"""A ProxyCommand that relays stdin/stdout to HOST:PORT and freezes the host as a command is sent.

    python freeze_relay.py HOST PORT [--tree PID | --twin-host HOLDER] [--after BYTES]

It relays both ways like `nc HOST PORT`. Once the client has sent more than BYTES (default
16 KiB: the SSH exec request carries the whole fact script, the login is far smaller), it
SIGSTOPs the target's sshd processes before forwarding more: the host froze just after the
login, as a paused VM does, and its sshd never answers the exec request. --tree PID freezes PID
and its descendants (a test sshd); --twin-host HOLDER every sshd of a lab twin host. Without
either it only relays (the jump of a healthy host).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket


def descendants(pid: int) -> list[int]:
    """pid and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def freeze(args: argparse.Namespace) -> None:
    if args.tree:
        pids = descendants(args.tree)
    elif args.twin_host:
        from opsverify.lab.hosts import sshd_pids

        pids = sshd_pids(args.twin_host)
    else:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--tree", type=int, default=0)
    p.add_argument("--twin-host", type=int, default=0)
    p.add_argument("--after", type=int, default=16384)
    args = p.parse_args()
    sock = socket.create_connection((args.host, args.port))
    sent, frozen = 0, False
    while True:
        ready, _, _ = select.select([sock, 0], [], [])
        for source in ready:
            data = os.read(0, 65536) if source == 0 else sock.recv(65536)
            if not data:
                return
            if source == 0:
                sent += len(data)
                if sent > args.after and not frozen:
                    freeze(args)
                    frozen = True
                sock.sendall(data)
            else:
                view = memoryview(data)
                while view:
                    view = view[os.write(1, view):]


if __name__ == "__main__":
    main()
