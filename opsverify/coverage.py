"""SSOT coverage: which gate tests check each SSOT entity, and which entity nothing checks.

Every entity the SSOT declares (a host, a container, a mount, an Infisical key, a waiver, ...)
is listed with its file and line, and with the gate ids (`mounts::test_mount[vm209:/mnt/media]`)
whose subject it is. The gates come from the family registry (`families.gates`), never from a
pytest run. The rule is generic: a gate's case covers the SSOT object it *is* (a `Mount`), the
objects it holds as a tuple (the stale scan `(host, address)` covers the retired address) and
the entities the object directly holds (a `SecretPath` covers each of its keys). A family
declares `covers` only for what that rule cannot see (a decommission record checks its host).
A waiver is covered when its pattern matches at least one gate id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opsverify import families
from opsverify.families import vms
from opsverify.ssot import Ssot
from opsverify.ssot import waivers as waivers_mod

# Entity kinds, in the order they are listed.
KINDS = ("host", "stack", "container", "mount", "route", "probe", "secret_path", "secret_key",
         "generated_env", "config_check", "retired_address", "decommission", "scrape_target",
         "promql_rule", "planned", "vm", "waiver")


@dataclass(frozen=True)
class Key:
    """One Infisical key name under its path: held by the path's `SecretPath`."""

    path: str
    name: str


@dataclass(frozen=True)
class Entity:
    """One thing the SSOT declares, where it is declared, and the object gates are given."""

    kind: str
    name: str
    file: str
    line: int
    obj: Any = field(compare=False, repr=False)
    parent: Any = field(default=None, compare=False, repr=False)  # the object holding it

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Row:
    entity: Entity
    gates: tuple[str, ...]  # the gate ids that check it; () if none


def entities(ssot: Ssot) -> list[Entity]:
    """Every SSOT entity with its file and line, in KINDS order, each kind in file order."""
    stem = {key: s for s, src in ssot.files.items() for key in src.data}

    def at(*path: Any) -> tuple[str, int]:
        return ssot.where(stem[path[0]], *path) if path[0] in stem else ("?", 0)

    out: list[Entity] = []

    def add(kind: str, name: str, where: tuple[str, int], obj: Any, parent: Any = None) -> None:
        out.append(Entity(kind, name, where[0], where[1], obj, parent))

    # the kinds an SSOT file keys by one attribute of the object: (kind, objects, key, attribute)
    keyed = (("host", ssot.hosts.values(), "hosts", "name"),
             ("stack", ssot.stacks.values(), "stacks", "name"),
             ("route", ssot.routes, "routes", "hostname"), ("probe", ssot.probes, "probes", "name"),
             ("secret_path", ssot.secret_paths, "secret_paths", "path"),
             ("generated_env", ssot.generated_env, "generated_env", "path"),
             ("decommission", ssot.decommissions, "decommissions", "host"),
             ("scrape_target", ssot.scrape_targets, "scrape_targets", "name"),
             ("promql_rule", ssot.rules, "rules", "name"),
             ("planned", ssot.planned, "planned", "name"), ("vm", vms.declared(ssot), "vms", "name"))
    for kind, objects, top, attr in keyed:
        for o in objects:
            add(kind, getattr(o, attr), at(top, getattr(o, attr)), o)
    for c in ssot.containers:
        add("container", c.ref, at("stacks", c.stack, "containers", c.name), c)
    for i, m in enumerate(ssot.mounts):
        add("mount", f"{m.host}:{m.path}", at("mounts", i), m)
    for sp in ssot.secret_paths:
        for i, k in enumerate(sp.keys):
            add("secret_key", f"{sp.path}:{k}", at("secret_paths", sp.path, "keys", i),
                Key(sp.path, k), parent=sp)
    references = list(ssot.doc.get("references") or {})
    for i, c in enumerate(ssot.config_checks):
        top = "references" if i < len(references) else "app_settings"
        add("config_check", c.name, at(top, c.name), c)
    for i, r in enumerate(ssot.doc.get("retired_addresses") or []):
        add("retired_address", r["address"], at("retired_addresses", i), r["address"])
    for w in waivers_mod.declared(ssot):
        out.append(Entity("waiver", w.gate, w.file, w.line, w))
    return sorted(out, key=lambda e: KINDS.index(e.kind))  # stable: file order within a kind


def _touched(ssot: Ssot, gate: families.Gate) -> Iterator[Any]:
    """The SSOT objects one gate test checks: its case's value, what a tuple value holds, and
    what its family declares it `covers`."""
    if gate.case is None:
        return
    value = gate.case.value
    yield value
    if isinstance(value, tuple):
        yield from value
    family = families.registry().get(gate.family)
    if family is not None:
        yield from family.covers(ssot, value)


def coverage(ssot: Ssot) -> list[Row]:
    """Each entity with the gate ids that check it."""
    gates = families.gates(ssot)
    by_object: dict[Any, list[str]] = defaultdict(list)
    for gate in gates:
        for obj in _touched(ssot, gate):
            try:
                ids = by_object[obj]
            except TypeError:  # an unhashable value is no SSOT entity
                continue
            if not ids or ids[-1] != gate.id:
                ids.append(gate.id)
    ids = [g.id for g in gates]
    rows = []
    for e in entities(ssot):
        if e.kind == "waiver":
            found = [i for i in ids if e.obj.matches_id(i)]
        else:
            found = _lookup(by_object, e.obj) + (_lookup(by_object, e.parent)
                                                 if e.parent is not None else [])
        rows.append(Row(e, tuple(dict.fromkeys(found))))
    return rows


def _lookup(index: dict[Any, list[str]], obj: Any) -> list[str]:
    try:
        return index.get(obj, [])
    except TypeError:
        return []


def unchecked(rows: list[Row]) -> list[Entity]:
    return [r.entity for r in rows if not r.gates]


def summary(rows: list[Row]) -> str:
    """`143/143 entities checked (100%)`: the percentage rounded down, so 100% means all."""
    total, checked = len(rows), sum(1 for r in rows if r.gates)
    percent = 100 * checked // total if total else 100
    return f"{checked}/{total} entities checked ({percent}%)"


def counts(rows: list[Row]) -> dict[str, dict[str, int]]:
    """Per kind (every kind, in KINDS order): entities and how many of them are checked."""
    out = {k: {"entities": 0, "checked": 0} for k in KINDS}
    for r in rows:
        out[r.entity.kind]["entities"] += 1
        out[r.entity.kind]["checked"] += bool(r.gates)
    return out


def problem(e: Entity) -> str:
    """`ssot/hosts.yaml:60: host vm202: no gate checks it`."""
    return f"{e.where}: {e.kind} {e.name}: no gate checks it"


def as_json(rows: list[Row]) -> dict[str, Any]:
    total, checked = len(rows), sum(1 for r in rows if r.gates)
    return {
        "entities": [{"kind": r.entity.kind, "name": r.entity.name, "file": r.entity.file,
                      "line": r.entity.line, "gates": list(r.gates)} for r in rows],
        "total": total, "checked": checked,
        "unchecked": [{"kind": e.kind, "name": e.name, "file": e.file, "line": e.line}
                      for e in unchecked(rows)],
        "kinds": counts(rows),
    }
