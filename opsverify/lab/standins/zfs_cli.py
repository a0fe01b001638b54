#!/usr/bin/env python3
"""Stand-in for `zfs list|create|destroy` on the Proxmox host, from a JSON state file."""

from __future__ import annotations

import fcntl
import json
import os
import sys

TYPE_CHECKING = False  # typing is not imported when run: each call of the CLI pays its imports
if TYPE_CHECKING:
    from typing import Any

STATE_ENV = "ZFS_STANDIN_STATE"
DEFAULT_STATE = "/var/lib/zfs-standin/datasets.json"
NEW_DATASET_REFER = 96 * 1024
COLUMNS = {  # property -> (header, right-justified)
    "name": ("NAME", False),
    "type": ("TYPE", False),
    "used": ("USED", True),
    "avail": ("AVAIL", True),
    "available": ("AVAIL", True),
    "refer": ("REFER", True),
    "referenced": ("REFER", True),
    "mountpoint": ("MOUNTPOINT", False),
}
LIST_USAGE = """usage:
\tlist [-Hp] [-r|-d max] [-o property[,...]] [-s property]...
\t    [-S property]... [-t type[,...]] [filesystem|volume|snapshot] ...
"""


class ZfsError(Exception):
    """A zfs error: message for stderr and exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def seed(*, datasets: dict[str, int], pool_size: int = 8 * 1024 ** 4) -> dict[str, Any]:
    """The state file of `zfs` on the Proxmox host.

    datasets: {"tank": 98304, "tank/docker/media-stack": 412 * 1024**3} - each dataset's own
      referenced bytes; parents must be listed too. Names with "@" are snapshots.
    pool_size: bytes of every pool, from which `avail` is computed.
    """
    return {"pool_size": pool_size,
            "datasets": {name: {"refer": refer} for name, refer in sorted(datasets.items())}}


def _nicenum(num: int) -> str:
    """Bytes the way `zfs list` prints them (zfs_nicebytes)."""
    units = "BKMGTPE"
    n, index = num, 0
    while n >= 1024 and index < len(units) - 1:
        n //= 1024
        index += 1
    if index == 0 or num % 1024 ** index == 0:
        return f"{n}{units[index]}"
    for precision in (2, 1, 0):
        text = f"{num / 1024 ** index:.{precision}f}{units[index]}"
        if len(text) <= 5:
            return text
    return text


def _children(datasets: dict[str, Any], name: str) -> list[str]:
    return [d for d in datasets if d.startswith((name + "/", name + "@"))]


def _props(state: dict[str, Any], name: str) -> dict[str, Any]:
    datasets = state["datasets"]
    snapshot = "@" in name
    used = datasets[name]["refer"] if snapshot else sum(
        datasets[d]["refer"] for d in [name, *_children(datasets, name)] if "@" not in d)
    pool = name.split("/")[0].split("@")[0]
    pool_used = sum(v["refer"] for d, v in datasets.items()
                    if (d == pool or d.startswith(pool + "/")) and "@" not in d)
    mountpoint = datasets[name].get("mountpoint") or ("-" if snapshot else "/" + name)
    return {
        "name": name,
        "type": "snapshot" if snapshot else "filesystem",
        "used": 0 if snapshot else used,
        "avail": "-" if snapshot else max(0, state["pool_size"] - pool_used),
        "refer": datasets[name]["refer"],
        "mountpoint": mountpoint,
    }


def _parse_flags(args: list[str], value_flags: str) -> tuple[set[str], dict[str, str], list[str]]:
    """getopt-style: returns (bool flags, flag values, operands)."""
    flags: set[str] = set()
    values: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i + 1:]
            break
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            i += 1
            continue
        letters = arg[1:]
        for j, letter in enumerate(letters):
            if letter in value_flags:
                value = letters[j + 1:] or (args[i + 1] if i + 1 < len(args) else None)
                if value is None:
                    raise ZfsError(f"missing argument for '{letter}' option", 2)
                if not letters[j + 1:]:
                    i += 1
                values[letter] = (values[letter] + "," + value) if letter in values else value
                break
            flags.add(letter)
        i += 1
    return flags, values, rest


def cmd_list(state: dict[str, Any], args: list[str]) -> tuple[str, str, int]:
    """`zfs list`: (stdout, stderr, exit code)."""
    flags, values, names = _parse_flags(args, "odtsS")
    if flags - {"H", "p", "r"}:
        bad = min(flags - {"H", "p", "r"})
        raise ZfsError(f"invalid option '{bad}'\n{LIST_USAGE}", 2)
    columns = values.get("o", "name,used,avail,refer,mountpoint").split(",")
    for col in columns:
        if col not in COLUMNS:
            raise ZfsError(f"bad property list: invalid property '{col}'\n{LIST_USAGE}", 2)
    types = set(values.get("t", "filesystem,volume").split(","))
    if "all" in types:
        types = {"filesystem", "volume", "snapshot"}
    types |= {"snapshot"} if "snap" in types else set()
    depth = int(values["d"]) if "d" in values else (None if "r" in flags or not names else 0)
    datasets = state["datasets"]
    selected: list[str] = []
    err, code = "", 0
    for name in names or sorted(d for d in datasets if "/" not in d and "@" not in d):
        if name not in datasets:
            err += f"cannot open '{name}': dataset does not exist\n"
            code = 1
            continue
        tree = [name] if depth == 0 else [name, *_children(datasets, name)]
        if depth:
            base = name.count("/")
            tree = [d for d in tree if d.split("@")[0].count("/") - base <= depth]
        selected += [d for d in sorted(tree) if d not in selected]
    rows = [_props(state, d) for d in selected]
    rows = [r for r in rows if r["type"] in types]
    if not rows and not names:
        return "", "no datasets available\n", 0
    raw = "p" in flags

    def cell(row: dict[str, Any], col: str) -> str:
        value = row["avail" if col == "available" else "refer" if col == "referenced" else col]
        return str(value) if raw or not isinstance(value, int) else _nicenum(value)

    table = [[cell(r, c) for c in columns] for r in rows]
    if "H" in flags:
        return "".join("\t".join(line) + "\n" for line in table), err, code
    headers = [COLUMNS[c][0] for c in columns]
    widths = [max(len(x) for x in [h, *(line[i] for line in table)]) for i, h in enumerate(headers)]
    out = []
    for line in [headers, *table]:
        cells = []
        for i, (text, col) in enumerate(zip(line, columns, strict=True)):
            if COLUMNS[col][1]:
                cells.append(text.rjust(widths[i]))
            else:
                cells.append(text if i == len(columns) - 1 else text.ljust(widths[i]))
        out.append("  ".join(cells) + "\n")
    return "".join(out), err, code


def cmd_create(state: dict[str, Any], args: list[str]) -> bool:
    """`zfs create [-p] [-o mountpoint=X] NAME`; True when the state changed."""
    flags, values, names = _parse_flags(args, "o")
    if len(names) != 1:
        raise ZfsError("missing filesystem argument" if not names else "too many arguments", 2)
    name = names[0]
    datasets = state["datasets"]
    if name in datasets:
        raise ZfsError(f"cannot create '{name}': dataset already exists")
    if "/" not in name or "@" in name:
        raise ZfsError(f"cannot create '{name}': missing dataset name")
    parent = name.rsplit("/", 1)[0]
    missing = []
    while parent not in datasets and "/" in parent:
        missing.append(parent)
        parent = parent.rsplit("/", 1)[0]
    if parent not in datasets:
        raise ZfsError(f"cannot create '{name}': no such pool '{parent}'")
    if missing and "p" not in flags:
        raise ZfsError(f"cannot create '{name}': parent does not exist")
    for dataset in [*reversed(missing), name]:
        datasets[dataset] = {"refer": NEW_DATASET_REFER}
    for opt in filter(None, values.get("o", "").split(",")):
        key, _, value = opt.partition("=")
        if key != "mountpoint":
            raise ZfsError(f"cannot create '{name}': invalid property '{key}'")
        datasets[name]["mountpoint"] = value
    return True


def cmd_destroy(state: dict[str, Any], args: list[str]) -> tuple[str, bool]:
    """`zfs destroy [-rRfnv] NAME`: (stdout, state changed)."""
    flags, _, names = _parse_flags(args, "")
    if len(names) != 1:
        raise ZfsError("missing dataset argument" if not names else "too many arguments", 2)
    name = names[0]
    datasets = state["datasets"]
    if name not in datasets:
        raise ZfsError(f"cannot open '{name}': dataset does not exist")
    children = sorted(_children(datasets, name))
    if children and not flags & {"r", "R"}:
        raise ZfsError(f"cannot destroy '{name}': filesystem has children\n"
                       f"use '-r' to destroy the following datasets:\n" + "\n".join(children))
    doomed = [*children, name]
    out = "".join(f"will destroy {d}\n" for d in doomed) if {"n", "v"} & flags else ""
    if "n" in flags:
        return out, False
    for dataset in doomed:
        del datasets[dataset]
    return out, True


def _save(path: str, state: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # any user may `zfs list`
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run one `zfs` command; errors to stderr with exit 1 (2 for usage), as the real CLI."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        sys.stderr.write("usage: zfs command args ...\nwhere 'command' is one of the following:\n"
                         "\n\tlist\n\tcreate\n\tdestroy\n")
        return 2
    cmd, rest = args[0], args[1:]
    if cmd not in ("list", "create", "destroy"):
        sys.stderr.write(f"unrecognized command '{cmd}'\n")
        return 2
    path = os.environ.get(STATE_ENV, DEFAULT_STATE)
    lock_fd: int | None = None
    try:
        # `list` only reads, as any user may on a real host: it needs no write access.
        lock_fd = os.open(f"{path}.lock", os.O_RDONLY if cmd == "list" else
                          os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        # A missing lock for `list`: no writer ever ran (writers replace the state atomically).
        if cmd != "list" or not isinstance(exc, FileNotFoundError):
            sys.stderr.write("The ZFS modules are not loaded.\nTry running '/sbin/modprobe zfs' "
                             "as root to load them.\n")
            return 1
    try:
        if lock_fd is not None:
            fcntl.flock(lock_fd, fcntl.LOCK_SH if cmd == "list" else fcntl.LOCK_EX)
        try:
            with open(path) as fh:
                state = json.load(fh)
        except (OSError, ValueError):
            state = {"pool_size": 0, "datasets": {}}
        out, err, code, changed = "", "", 0, False
        if cmd == "list":
            out, err, code = cmd_list(state, rest)
        elif cmd == "create":
            changed = cmd_create(state, rest)
        else:
            out, changed = cmd_destroy(state, rest)
        if changed:
            _save(path, state)
    except ZfsError as exc:
        sys.stderr.write(f"{exc}\n")
        return exc.code
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main())
