"""Child processes that end with their parent: the verify run of `ops soak` and `ops serve`,
the collector `ops verify` forks (facts/live.py). prctl(PR_SET_PDEATHSIG) asks Linux to send the
calling process SIGKILL when its parent ends, however it ends (SIGKILL included)."""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1  # prctl(2)


def prctl_function() -> Callable[..., Any]:
    """libc's prctl, resolved now: a child forked from a threaded process may then only make the
    call (no import, no dlopen, no lock in the child)."""
    return ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(prctl: Callable[..., Any] | None = None) -> None:
    """SIGKILL this process when its parent ends."""
    (prctl or prctl_function())(PR_SET_PDEATHSIG, signal.SIGKILL)
