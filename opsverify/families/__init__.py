"""The gate families, each declared once, in its own module beside its check:

    FAMILY = Family("mounts", per="host × mount", checks="...",
                    subjects={"mount": lambda s: (Case(f"{m.host}:{m.path}", m.host, m) ...)},
                    host_facts=True)

Everything that lists families derives from these declarations: the gates' parametrization
(a gate asking for `mount` gets one test per case), the facts prefetched for the selected
gates, `ops verify --family`, the lab's expected families and the README's family table.
gates/test_<name>.py holds the family's tests. ARCHITECTURE.md says how to add one.
"""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsverify.ssot import Ssot


@dataclass(frozen=True)
class Case:
    """One parametrized gate test: its readable id, the host it concerns ('' if none), its value."""

    id: str
    host: str
    value: Any


Subjects = Callable[[Ssot], Iterable[Case]]


def _no_sources(ssot: Ssot) -> tuple[str, ...]:
    return ()


def _covers_nothing(ssot: Ssot, value: Any) -> tuple[Any, ...]:
    return ()


@dataclass(frozen=True)
class Family:
    """One gate family: what it checks, its subjects in the SSOT and the facts it reads."""

    name: str
    per: str                                   # "host × mount": one test per ...
    checks: str                                # what its gates check, in a line
    subjects: Mapping[str, Subjects] = field(default_factory=dict)  # gate argument -> cases
    apis: tuple[str, ...] = ()                 # API sources every gate of it reads
    host_facts: bool = False                   # its gates read their case's host facts
    more_sources: Callable[[Ssot], tuple[str, ...]] = _no_sources  # e.g. the Proxmox host
    # For `ops ssot coverage`: SSOT objects a case's value checks beyond those it is or holds
    # (a decommission record checks its host), when the generic rule cannot see them.
    covers: Callable[[Ssot, Any], Iterable[Any]] = _covers_nothing

    def sources(self, ssot: Ssot, host: str) -> list[str]:
        """The fact sources one gate test of this family reads."""
        out = list(self.apis) + ([f"host:{host}"] if self.host_facts and host else [])
        return out + [s for s in self.more_sources(ssot) if s not in out]


@functools.cache
def registry() -> dict[str, Family]:
    """Every family, by name: the FAMILY of each module of this package."""
    found: dict[str, Family] = {}
    for module in pkgutil.iter_modules(__path__):
        family = getattr(importlib.import_module(f"{__name__}.{module.name}"), "FAMILY", None)
        if family is not None:
            found[family.name] = family
    return dict(sorted(found.items()))


def names() -> list[str]:
    return list(registry())


def subjects() -> dict[str, Subjects]:
    """Gate argument name -> its cases, over every family; a name belongs to one family."""
    out: dict[str, Subjects] = {}
    for family in registry().values():
        for arg, cases in family.subjects.items():
            if arg in out:
                raise ValueError(f"gate argument {arg!r} is declared by two families")
            out[arg] = cases
    return out


def reading_host_facts() -> tuple[str, ...]:
    """Families whose gates become UNREACHABLE when their host cannot be asked."""
    return tuple(n for n, f in registry().items() if f.host_facts)


GATES = Path(__file__).resolve().parents[2] / "gates"


@dataclass(frozen=True)
class Gate:
    """One gate test as a run names it: `mounts::test_mount[vm210:/mnt/media]`."""

    id: str
    family: str
    test: str
    case: Case | None  # None for a test of no SSOT subject (one per run)


@functools.cache
def _gate_tests(family: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(test function, its arguments) of gates/test_<family>.py, read, not imported."""
    tree = ast.parse((GATES / f"test_{family}.py").read_text())
    return tuple((fn.name, tuple(a.arg for a in fn.args.args)) for fn in tree.body
                 if isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_"))


def gates(ssot: Ssot) -> list[Gate]:
    """Every gate test the SSOT makes, without running pytest: each test function of a family
    once per case of the subject it asks for (a gate asks for one subject at most)."""
    by_arg = subjects()
    out: list[Gate] = []
    for name in registry():
        for test, args in _gate_tests(name):
            arg = next((a for a in args if a in by_arg), None)
            if arg is None:
                out.append(Gate(f"{name}::{test}", name, test, None))
                continue
            out += [Gate(f"{name}::{test}[{c.id}]", name, test, c)
                    for c in sorted(by_arg[arg](ssot), key=lambda c: c.id)]
    return out
