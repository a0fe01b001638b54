"""One module per `ops` command, and what several of them share."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def load_ssot(path: Path | None, command: str, *, strict: bool = False) -> Any:
    """The SSOT, or None after printing each of its problems (FILE:LINE PATH: MESSAGE) and a
    closing `<command>: invalid SSOT: N problems` line, as every command does."""
    from opsverify import redact
    from opsverify import ssot as ssot_pkg

    try:
        return ssot_pkg.load(path, strict=strict)
    except ssot_pkg.SsotInvalid as exc:
        for problem in exc.problems:
            print(redact.safe(str(problem)), file=sys.stderr)
        n = len(exc.problems)
        print(f"{command}: invalid SSOT: {n} problem{'s' if n != 1 else ''}", file=sys.stderr)
        return None
