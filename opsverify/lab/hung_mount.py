"""A mount that hangs every access, like a hard NFS mount whose server stopped answering.

The twin's kernel has no NFS client, but it has FUSE: a FUSE mount whose daemon never reads
its /dev/fuse requests blocks every process that touches it, killable only by SIGKILL — the
same way a hung `hard` NFS mount blocks `ls /mnt/docker`. Run inside a host's mount
namespace: `python3 -m opsverify.lab.hung_mount /mnt/docker 192.168.1.184:/tank/docker/x`;
the mount stays hung while this process lives (kill it, then `umount -l`, to undo).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

MS_NOSUID, MS_NODEV = 2, 4


def mount_hung(target: str, source: str) -> int:
    """Mount a FUSE file system at target that will never answer; return the /dev/fuse fd."""
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
    if libc.mount(source.encode(), target.encode(), b"fuse.hung", MS_NOSUID | MS_NODEV, opts):
        err = ctypes.get_errno()
        raise OSError(err, f"mount fuse at {target}: {os.strerror(err)}")
    return fd


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 -m opsverify.lab.hung_mount TARGET SOURCE", file=sys.stderr)
        return 2
    try:
        fd = mount_hung(argv[0], argv[1])
    except OSError as exc:
        print(f"hung_mount: {exc}", file=sys.stderr)
        return 1
    print(f"ready hung mount {argv[0]}", flush=True)
    # Holding the fd without ever reading it is the whole trick: requests queue forever.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()
    os.close(fd)  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
