"""The single source of truth: load, validate and check the SSOT directory.

    ssot = load(Path("ssot"))      # raises SsotInvalid(problems) with every problem found

Gates, fixtures and the lab use the typed views of the returned `Ssot`; nothing else parses
the YAML.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .integrity import RULES, all_problems
from .loader import Problem, SourceFile, SsotInvalid, load_schemas, parse_file, schema_problems
from .model import Ssot

__all__ = ["DEFAULT_DIR", "RULES", "Problem", "Ssot", "SsotInvalid", "load", "load_files"]

# The SSOT shipped with the project; OPSVERIFY_SSOT or --ssot point elsewhere.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "ssot"


def default_dir() -> Path:
    return Path(os.environ.get("OPSVERIFY_SSOT") or DEFAULT_DIR)


def _shown(path: Path) -> str:
    """A path as people should see it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_files(root: Path) -> tuple[dict[str, SourceFile], list[Problem]]:
    """Parse and schema-check every SSOT file; return what parsed and every problem."""
    root = Path(root)
    shown = _shown(root)
    if not root.is_dir():
        return {}, [Problem(shown, 0, "", "SSOT directory not found" if not root.exists()
                            else "not a directory")]
    schemas = load_schemas(root / "schemas")
    if not schemas:
        return {}, [Problem(f"{shown}/schemas", 0, "", "no *.schema.json files found")]
    files: dict[str, SourceFile] = {}
    problems: list[Problem] = []
    present = {p.stem: p for p in sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml"))}
    for stem in sorted(set(present) - set(schemas)):
        problems.append(Problem(_shown(present[stem]), 0, "",
                                f"no schema for this file (known: {', '.join(sorted(schemas))})"))
    owner: dict[str, str] = {}
    for stem in sorted(schemas):
        path = present.get(stem)
        if path is None:
            problems.append(Problem(f"{shown}/{stem}.yaml", 0, "", "required SSOT file is missing"))
            continue
        try:
            src = parse_file(path, _shown(path))
        except SsotInvalid as exc:
            problems.extend(exc.problems)
            continue
        found = schema_problems(src, schemas[stem])
        problems.extend(found)
        if found:
            continue
        for key in src.data:
            if key in owner:
                problems.append(Problem(src.name, src.line_of((key,)), f"$.{key}",
                                        f"top-level key also defined in {owner[key]}"))
            owner[key] = src.name
        files[stem] = src
    return files, problems


def load(root: Path | str | None = None, *, strict: bool = True) -> Ssot:
    """Load the SSOT at root (default: the shipped one); raise SsotInvalid listing every problem.

    With strict=False, only unreadable or schema-invalid files raise; broken references are
    left in `ssot.problems` so the ssot gate family can report them beside host drift.
    """
    root = Path(root) if root is not None else default_dir()
    # `ops verify` loads the SSOT, then its pytest run loads it again: parsing and checking
    # 100 hosts' YAML costs ~0.7 s, so the same content (and working directory: problems name
    # files relative to it) gives the same read-only Ssot.
    key = (str(root.resolve()), os.getcwd(), _digest(root))
    ssot = _CACHE.get(key) if key[2] else None
    if ssot is None:
        files, problems = load_files(root)
        if problems:
            raise SsotInvalid(problems)
        doc = {k: v for src in files.values() for k, v in src.data.items()}
        ssot = Ssot(root, files, doc)
        ssot.problems = all_problems(ssot)
        if key[2]:
            if len(_CACHE) >= 4:
                _CACHE.clear()
            _CACHE[key] = ssot
    if ssot.problems and strict:
        raise SsotInvalid(ssot.problems)
    return ssot


_CACHE: dict[tuple[str, str, str], Ssot] = {}


def _digest(root: Path) -> str | None:
    """A checksum of every file the loader reads (None if one cannot be read: no caching)."""
    h = hashlib.sha256()
    try:
        for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml"),
                            *(root / "schemas").glob("*.schema.json")]):
            h.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes() + b"\0")
    except OSError:
        return None
    return h.hexdigest()
