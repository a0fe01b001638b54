"""The outcomes of a gate: PASS, FAIL (drift, named), UNREACHABLE (could not ask); WAIVED (a
FAIL a live waiver of the SSOT accepts), ERROR (a bug) and SKIP (planned, not configured)."""

from __future__ import annotations

from typing import Any

PASS, FAIL, UNREACHABLE, ERROR, SKIP = "pass", "fail", "unreachable", "error", "skip"
WAIVED = "waived"


class Drift(AssertionError):
    """The live state differs from the SSOT; the message says what, where, expected and actual.

    `findings` holds the same in parts ({attribute, expected, actual, message}) for reports."""

    def __init__(self, message: str, subject: str = "",
                 findings: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.subject = subject
        self.findings = findings or []


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
