"""Writing an output file so that no reader ever sees half of it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

REPORT_MODE = 0o640  # reports hold evidence; the process umask may make them stricter


def write_atomic(path: Path, text: str, mode: int = REPORT_MODE) -> None:
    """Write text to path via a temporary file and rename: readers see old or new, never half.

    The temporary file is new (O_EXCL: no file or symlink someone placed there is written
    through; its name is random too), created with `mode` minus the umask (a systemd unit's
    UMask=0027 holds), and renamed over path (a symlink at path is replaced, not followed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, mode)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"{path.parent}: no unused temporary file name")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


