"""Findings: what a gate found wrong with one subject, kept in parts (goss's TestResult).

    f = Findings("Mount vm210:/mnt/media")
    f.expect("mode", "ro", actual_mode)
    f.raise_if_any()   # Drift: Mount vm210:/mnt/media: mode: expected ro, got rw

Each Finding keeps its attribute, expected and actual value, so every output can show them
side by side and later steps (waivers, SSOT patches) can act on one; the sentence a person
reads is made from those parts, or given whole for a finding that has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from opsverify.redact import scrub, scrub_obj
from opsverify.verdict import Drift, show


@dataclass(frozen=True)
class Finding:
    """One thing that differs: `attribute: expected X, got Y`, or a sentence (`text`)."""

    attribute: str = ""
    expected: Any = None
    actual: Any = None
    text: str = ""

    def __str__(self) -> str:
        if self.text:
            return self.text
        return f"{self.attribute}: expected {show(self.expected)}, got {show(self.actual)}"

    def as_dict(self) -> dict[str, Any]:
        """The finding for a report: its parts (scrubbed, JSON-safe) and its sentence."""
        return scrub_obj({"attribute": self.attribute, "expected": _plain(self.expected),
                          "actual": _plain(self.actual), "message": str(self)})


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


class EvidenceSink(Protocol):
    def add(self, name: str, facts: Any) -> None: ...


class Findings:
    """Every finding of one subject, and the facts they were drawn from (never a secret)."""

    def __init__(self, subject: str, sep: str = ": "):
        self.subject = subject
        self.sep = sep
        self.items: list[Finding] = []
        self.seen: dict[str, Any] = {}

    def saw(self, name: str, facts: Any) -> None:
        """Keep what the gate looked at, shown as evidence beside its verdict."""
        self.seen[name] = facts

    def expect(self, attribute: str, expected: Any, actual: Any) -> bool:
        """A finding unless actual == expected; whether it held."""
        if actual == expected:
            return True
        self.items.append(Finding(attribute, expected, actual))
        return False

    def same(self, attribute: str, expected: Any, actual: Any) -> bool:
        """Like expect(), with "8096" == 8096 and "true" == True."""
        from opsverify.families.values import same

        return same(expected, actual) or self.expect(attribute, expected, actual)

    def require(self, ok: bool, text: str, attribute: str = "", expected: Any = None,
                actual: Any = None) -> bool:
        """A finding in words unless ok; its parts when the words have them."""
        if not ok:
            self.items.append(Finding(attribute, expected, actual, text))
        return ok

    @property
    def problems(self) -> list[str]:
        """Each finding as the sentence a person reads."""
        return [str(f) for f in self.items]

    @property
    def message(self) -> str:
        return scrub(self.subject + self.sep + "; ".join(map(str, self.items)))

    def raise_if_any(self) -> None:
        if self.items:
            raise Drift(self.message, subject=self.subject,
                        findings=[f.as_dict() for f in self.items])


def conclude(findings: Findings, evidence: EvidenceSink) -> None:
    """Attach what the gate saw to its report row, then fail if it found drift."""
    for name, facts in findings.seen.items():
        evidence.add(name, scrub_obj(facts))
    findings.raise_if_any()
