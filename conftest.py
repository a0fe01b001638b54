"""Wiring only: the gates' fixtures and hooks live in fixtures/."""

pytest_plugins = [
    "fixtures.ssot",
    "fixtures.evidence",
    "fixtures.facts",
    "fixtures.outcomes",
]
