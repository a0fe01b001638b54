"""The mount sections of the facts: /proc/mounts, /etc/fstab as libmount reads it, automounts.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.

parse_fstab() follows util-linux libmount (tab_parse.c, mnt_parse_table_line), because
mount(8) and systemd-fstab-generator read /etc/fstab through it:

- a line whose first non-blank character is `#` is a comment; blank lines are skipped;
- fields are separated by runs of spaces and tabs; `\\NNN` octal escapes are decoded;
- source, mount point and type are required; options, dump and pass are optional;
- dump and pass must be integers when present; anything after pass is ignored, so an inline
  `# comment` after the sixth field is harmless, while one in the fifth or sixth field makes
  libmount skip that line ("parse error at line N -- ignored") and only that line.

A line libmount skips is reported as an error of that line (with its mount point when the
first two fields are there), never as an error of the whole file.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from opsverify.facts.agent.primitives import Context, ParseError, as_text, read_file

AUTOMOUNT_TIMEOUT = 5.0  # one hard-mount timeout per idle automount point, at most

FIELDS = ("source", "mount point", "type")
NUMBERS = ("dump (5th field)", "pass (6th field)")
AUTOFS = "autofs"


def mounts_facts(ctx: Context) -> dict[str, Any]:
    """/proc/mounts; an SSOT mount point held only by an idle systemd automount is triggered
    first, the way any reader triggers it, and the table read again."""
    mounts, automounts = settle_automounts(
        lambda: parse_proc_mounts(read_file(ctx.mounts_file)),
        lambda path: trigger(path, ctx.slice(AUTOMOUNT_TIMEOUT)),
        ctx.p.get("mount_paths") or [])
    return {"mounts": mounts, "automounts": automounts}


def fstab_facts(ctx: Context) -> dict[str, Any]:
    entries, errors = parse_fstab(read_file(ctx.fstab_file) or b"")
    return {"fstab": entries, "fstab_errors": errors}


# --- /proc/mounts ---------------------------------------------------------------------------

_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape_octal(field: str) -> str:
    """A mount table field with its octal escapes (\\040 space, \\011 tab, \\134 ...) decoded."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_proc_mounts(data: str | bytes) -> list[dict[str, Any]]:
    """/proc/mounts as [{source, target, fstype, options}], escapes decoded."""
    out = []
    for no, line in enumerate(as_text(data, "/proc/mounts").split("\n"), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise ParseError(f"/proc/mounts line {no}: expected 6 fields, got {len(fields)}")
        src, target, fstype, options = (unescape_octal(f) for f in fields[:4])
        out.append({"source": src, "target": target, "fstype": fstype,
                    "options": [o for o in options.split(",") if o]})
    return out


# --- /etc/fstab -----------------------------------------------------------------------------

def _is_int(word: str) -> bool:
    """strtol(word, &end, 10) consumed all of word (libmount's next_s32 check)."""
    body = word[1:] if word[:1] in "+-" else word
    return body.isdigit() and body.isascii()


def parse_line(line: str) -> dict[str, Any] | str | None:
    """One fstab line: an entry, None for a comment or blank, or why libmount skips it."""
    line = line[:-1] if line.endswith("\r") else line  # noqa: FURB188 -- 3.8 lacks removesuffix
    stripped = line.lstrip(" \t")
    if not stripped or stripped.startswith("#"):
        return None
    words = [w for w in stripped.replace("\t", " ").split(" ") if w]
    for i, name in enumerate(FIELDS):
        if len(words) <= i:
            return f"no {name}"
    entry: dict[str, Any] = {
        "source": unescape_octal(words[0]), "target": unescape_octal(words[1]),
        "fstype": unescape_octal(words[2]),
        "options": [o for o in unescape_octal(words[3]).split(",") if o]
        if len(words) > 3 else ["defaults"],
    }
    for name, word in zip(NUMBERS, words[4:6]):
        if not _is_int(word):
            return f"{name} is not a number"
    return entry


def parse_fstab(data: str | bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(entries, errors): entries {source, target, fstype, options, line} of the lines libmount
    accepts; errors {line, target (None if unknown), error} of the lines it skips."""
    entries, errors = [], []
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if not isinstance(text, str):
        raise ParseError(f"/etc/fstab: expected text, got {type(data).__name__}")
    for no, line in enumerate(text.split("\n"), 1):
        parsed = parse_line(line)
        if parsed is None:
            continue
        if isinstance(parsed, str):
            words = line.split()
            target = unescape_octal(words[1]) if len(words) > 1 else None
            errors.append({"line": no, "target": target,
                           "error": f"/etc/fstab line {no}: {parsed}; mount(8) and systemd "
                                    "skip this line"})
        else:
            entries.append({**parsed, "line": no})
    return entries, errors


# --- systemd automount (x-systemd.automount) ---------------------------------------------------

def effective(mounts: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    """The entry in effect on a mount point: the last one mounted there."""
    hits = [m for m in mounts if str(m.get("target", "")).rstrip("/") == path.rstrip("/")]
    return hits[-1] if hits else None


def idle_automounts(mounts: list[dict[str, Any]], paths: Iterable[str]) -> list[str]:
    """Mount points whose entry in effect is an autofs placeholder (`systemd-1 PATH autofs`)."""
    out = []
    for path in paths:
        entry = effective(mounts, path)
        if entry is not None and entry.get("fstype") == AUTOFS:
            out.append(path)
    return out


def settle_automounts(read: Callable[[], list[dict[str, Any]]],
                      trigger: Callable[[str], str | None], paths: Iterable[str]
                      ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(mounts, automounts): read the mount table; where only an automount placeholder sits on
    one of `paths`, trigger it as any reader does (trigger(path) -> error or None) and read
    the table again. automounts: {path: {triggered: bool, mounted: bool, error}}."""
    mounts = read()
    idle = idle_automounts(mounts, paths)
    if not idle:
        return mounts, {}
    errors = {path: trigger(path) for path in idle}
    mounts = read()
    still = set(idle_automounts(mounts, idle))
    return mounts, {path: {"triggered": True, "mounted": path not in still,
                           "error": errors[path]} for path in idle}


def trigger(path: str, timeout: float) -> str | None:
    """stat() a path below an automount point: autofs mounts the filesystem on that lookup (a
    read, like `ls`). In a daemon thread, so a server that never answers costs `timeout` and
    the rest of the host's facts still arrive. Returns why it failed, or None."""
    result: dict[str, str | None] = {"error": None}

    def look() -> None:
        try:
            os.stat(os.path.join(path, "."))
        except OSError as exc:
            result["error"] = f"{exc.strerror or type(exc).__name__}: {path}"

    worker = threading.Thread(target=look, name="opsverify-automount", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return f"no answer within {timeout:.1f} s when triggered (server down?)"
    return result["error"]
