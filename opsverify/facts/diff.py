"""What changed between two saved facts directories (`ops facts diff A B`).

Each source's facts (one file per source, as `ops verify --save-facts DIR` writes them; the
shape is the facts contract, contract.py) are flattened into {(family, subject, attribute):
value}, named as the gates name them (`mount vm210:/mnt/media`, `VM vm210 (210)`, `container
download-stack:radarr`), and the two flat maps compared. Which family a change belongs to
comes from the family registry: an API source's families are those whose `apis` name it; a
host's sections map to the family reading them (SECTIONS; tests/facts checks each against the
registry).

Never shown: the value of anything a secret-named key holds (redact.SECRET_NAME: a container's
env, a config key path, a probe's JSON key) reads `changed`; every line goes through
redact.safe. Left out as noise: when and how fast facts were collected (the host clock, SSH
and HTTP durations), the Docker `finished_at`, scan byte/file counters, Prometheus rule values
and the tunnel's config version. Kept: container ids, restart counts and start times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsverify import redact
from opsverify.facts import contract, saved
from opsverify.facts.diff_flat import (
    API_SECTIONS,
    NOISE,
    SECTIONS,
    Flat,
    Items,
    Names,
    Secret,
    flatten,
)

__all__ = ["API_SECTIONS", "NOISE", "SECTIONS", "Change", "DiffInputError", "Names",
           "compare_dirs", "diff", "render"]

HIDDEN = redact.MASK  # what --json holds for a secret-named key's value


class _Absent:
    """Not there at all (a key missing on one side), as against a null value ("none")."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


class DiffInputError(ValueError):
    """A directory that is not saved facts (or a file in it that is not): says which."""


@dataclass(frozen=True)
class Change:
    family: str
    source: str
    subject: str
    attribute: str  # "" for a whole subject that appeared or went; "found in"; ...
    was: Any        # None: absent
    now: Any
    kind: str = "value"  # value | secret | added | removed | appeared | gone | source

    def text(self) -> str:
        """One line, in the gates' words: `mount vm210:/mnt/media: mode: was ro, now rw`."""
        s, a, was, now = self.subject, self.attribute, show(self.was), show(self.now)
        gone, new = self.was in (None, ABSENT), self.now in (None, ABSENT)
        if self.kind == "source":
            if self.attribute == "unreachable":
                return f"{s}: unreachable now ({now})" if self.was is None else \
                    f"{s}: reachable again (was unreachable: {was})" if self.now is None else \
                    f"{s}: unreachable: was {was}, now {now}"
            if self.attribute == "error":
                return f"{s}: facts unusable now ({now})" if self.was is None else \
                    f"{s}: facts usable again (was: {was})" if self.now is None else \
                    f"{s}: facts unusable: was {was}, now {now}"
            return f"{s}: saved facts: was {was}, now {now}"
        if self.kind == "appeared":
            return f"{s}: now present ({now})"
        if self.kind == "gone":
            return f"{s}: now absent (was {was})"
        if self.kind == "secret":
            how = "now set" if gone else "now unset" if new else "changed"
            return f"{s}: {a}: {how} (value not shown)"
        if a == "found in":
            return f"{s}: now found in {now}" if self.kind == "added" else \
                f"{s}: no longer found in {was}"
        if self.kind == "added":
            return f"{s}: {a}: added {now}"
        if self.kind == "removed":
            return f"{s}: {a}: removed {was}"
        return f"{s}: {a}: was {was}, now {now}"

    def as_json(self) -> dict[str, Any]:
        hidden = self.kind == "secret"
        return {"family": self.family, "source": self.source, "subject": self.subject,
                "attribute": self.attribute,
                "was": HIDDEN if hidden and self.was not in (None, ABSENT) else plain(self.was),
                "now": HIDDEN if hidden and self.now not in (None, ABSENT) else plain(self.now)}


def show(value: Any) -> str:
    if value is ABSENT:
        return "absent"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Secret):
        return "changed"
    if isinstance(value, (list, tuple, frozenset)):
        return ", ".join(show(v) for v in value) or "none"
    return str(value)


def plain(value: Any) -> Any:
    if value is ABSENT:
        return None
    if isinstance(value, Secret):
        return HIDDEN
    if isinstance(value, (list, tuple, frozenset)):
        return [plain(v) for v in value]
    return value


# ---- reading the directories ---------------------------------------------------------------

def load_dir(directory: Path) -> dict[str, dict[str, Any]]:
    """source -> saved facts (or record) of one --save-facts directory; DiffInputError names
    the directory or the file that is not saved facts."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DiffInputError(f"{directory}: " + ("not a directory" if directory.exists()
                                                 else "no such directory"))
    out = {}
    for path in sorted(directory.glob("*.json")):
        source = contract.source_of(path.name)
        if source is None:
            continue  # results.json and the like, beside the facts
        try:
            out[source] = saved.load_file(path, source)
        except saved.FactsFileError as exc:
            raise DiffInputError(str(exc)) from None
    if not out:
        raise DiffInputError(f"{directory}: no saved facts in it (host-NAME.json, "
                             f"{', '.join(f'{s}.json' for s in contract.API_SOURCES)}: "
                             "what `ops verify --save-facts DIR` writes)")
    return out


# ---- comparing -------------------------------------------------------------------------------

def _record(doc: dict[str, Any] | None) -> tuple[str, str] | None:
    if doc is not None and len(doc) == 1 and set(doc) <= set(contract.RECORDS):
        key = next(iter(doc))
        return key, str(doc[key])
    return None


def _source_name(source: str) -> str:
    return f"host {source.removeprefix('host:')}" if source.startswith("host:") \
        else f"API {source}"


def diff(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]],
         names: Names) -> list[Change]:
    """Every change from facts a to facts b, in family order (the registry's), then source."""
    out: list[Change] = []
    for source in sorted(set(a) | set(b)):
        da, db = a.get(source), b.get(source)
        fams, subject = names.source_families(source), _source_name(source)
        if da is None or db is None:
            saved = ("not saved", "saved")
            out.append(Change(fams, source, subject, "saved", saved[da is not None],
                              saved[db is not None], "source"))
            continue
        ra, rb = _record(da), _record(db)
        if ra or rb:
            if ra == rb:
                continue
            # from facts to a record, a record to facts, or one record to another
            for kind in contract.RECORDS:
                was = ra[1] if ra and ra[0] == kind else None
                now = rb[1] if rb and rb[0] == kind else None
                if was != now:
                    out.append(Change(fams, source, subject, kind, was, now, "source"))
            continue
        out += _compare(source, flatten(source, da, names), flatten(source, db, names))
    from opsverify import families

    order = {n: i for i, n in enumerate(families.registry())}
    return sorted(out, key=lambda c: (order.get(c.family, len(order)), c.family, c.source,
                                      c.subject))


def _compare(source: str, fa: Flat, fb: Flat) -> list[Change]:
    out: list[Change] = []
    subjects = dict.fromkeys((f, s) for f, s, _ in [*fa, *fb])
    for fam, subj in subjects:
        ka = {k[2]: v for k, v in fa.items() if k[:2] == (fam, subj)}
        kb = {k[2]: v for k, v in fb.items() if k[:2] == (fam, subj)}
        if "" in ka and "" not in kb:
            out.append(Change(fam, source, subj, "", ka[""], None, "gone"))
            continue
        if "" in kb and "" not in ka:
            out.append(Change(fam, source, subj, "", None, kb[""], "appeared"))
            continue
        for attr in dict.fromkeys([*ka, *kb]):
            if attr == "":
                continue
            was, now = ka.get(attr, ABSENT), kb.get(attr, ABSENT)
            if was == now:
                continue
            if isinstance(was, Items) or isinstance(now, Items):
                was_s = set(was) if isinstance(was, Items) else set()
                now_s = set(now) if isinstance(now, Items) else set()
                out += [Change(fam, source, subj, attr, None, x, "added")
                        for x in sorted(now_s - was_s, key=str)]
                out += [Change(fam, source, subj, attr, x, None, "removed")
                        for x in sorted(was_s - now_s, key=str)]
            elif isinstance(was, Secret) or isinstance(now, Secret):
                out.append(Change(fam, source, subj, attr, was, now, "secret"))
            else:
                out.append(Change(fam, source, subj, attr, was, now))
    return out


def compare_dirs(a: Path, b: Path, ssot: Any | None = None) -> list[Change]:
    """Every change between two --save-facts directories; DiffInputError if one is not."""
    return diff(load_dir(a), load_dir(b), Names.of(ssot))


def render(changes: list[Change], a: Path, b: Path) -> list[str]:
    """Terminal lines: a headline, then each family's changes under its name."""
    if not changes:
        return [redact.safe(f"ops facts diff: no change from {a} to {b}")]
    fams = list(dict.fromkeys(c.family for c in changes))
    lines = [(f"ops facts diff: {len(changes)} change{'s' if len(changes) != 1 else ''} "
             f"from {a} to {b}, in {len(fams)} famil{'ies' if len(fams) != 1 else 'y'}")]
    for fam in fams:
        lines.append(fam)
        lines += [f"  {c.text()}" for c in changes if c.family == fam]
    return [redact.safe(line) for line in lines]


def as_json(changes: list[Change]) -> str:
    return redact.scrub(json.dumps([c.as_json() for c in changes], indent=1, default=str))
