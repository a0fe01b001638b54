"""The three outcomes of a gate: PASS, FAIL (drift, named) and UNREACHABLE (could not ask)."""

from __future__ import annotations

from typing import Any

PASS, FAIL, UNREACHABLE, ERROR, SKIP = "pass", "fail", "unreachable", "error", "skip"


class Drift(AssertionError):
    """The live state differs from the SSOT; the message says what, where, expected and actual."""


class Unreachable(Exception):
    """A host or API could not be asked; every test that needs it is UNREACHABLE, not FAIL."""

    def __init__(self, target: str, reason: str):
        self.target, self.reason = target, reason
        super().__init__(f"{target}: {reason}")


def show(value: Any) -> str:
    """A value as a failure message shows it: short, one line."""
    text = "absent" if value is None else str(value)
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."


class Findings:
    """Collects every mismatch of one subject, then fails once naming them all.

        f = Findings("Mount vm210:/mnt/media")
        f.expect("mode", "ro", actual_mode)
        f.raise_if_any()   # Drift: Mount vm210:/mnt/media: mode: expected ro, got rw
    """

    def __init__(self, subject: str):
        self.subject = subject
        self.problems: list[str] = []

    def expect(self, attribute: str, expected: Any, actual: Any) -> bool:
        """Record a mismatch unless actual == expected; return whether it held."""
        if actual == expected:
            return True
        self.problems.append(f"{attribute}: expected {show(expected)}, got {show(actual)}")
        return False

    def require(self, ok: bool, problem: str) -> bool:
        """Record a free-form problem unless ok."""
        if not ok:
            self.problems.append(problem)
        return ok

    def raise_if_any(self) -> None:
        if self.problems:
            raise Drift(f"{self.subject}: " + "; ".join(self.problems))
