"""The scan section of the facts: where the SSOT's retired addresses still appear.

Every file below the config roots is read once (hard links once, symlinks never followed,
images and media counted but not read), searched for the retired IPv4 addresses as whole
addresses, and every SQLite database's TEXT and BLOB values are searched table by table
(SQLite's instr() picks the candidates, the regex decides). Findings name the file and line,
or the table, row and column: never the text around the address. The scan stops at the run's
deadline and says what it did not reach.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from typing import Any

from opsverify.facts.agent.primitives import (
    MAX_FILE,
    MAX_SKIPPED,
    Context,
    ParseError,
    describe_error,
    open_sqlite,
    read_file,
    sql_ident,
    sqlite3_module,
    sqlite_errors,
    walk,
)

MAX_FINDINGS = 1000
SQLITE_MAGIC = b"SQLite format 3\x00"
# Images, video and audio hold no address an application reads; on a real config root they
# are most of the bytes (Jellyfin metadata), so the scan counts them instead of reading them.
MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"\x1aE\xdf\xa3",
               b"fLaC", b"ID3", b"OggS")


def stale_refs_facts(ctx: Context) -> dict[str, Any]:
    return Scan(ctx).run()


def address_pattern(addresses: Iterable[str]) -> re.Pattern[bytes]:
    """Bytes regex matching any of the IPv4 addresses as a whole address.

    100.117.1.53 matches in "http://100.117.1.53:7878" but not in 100.117.1.530,
    1100.117.1.53 or 100.117.1.53.4.
    """
    addrs = list(addresses)
    for a in addrs:
        parts = a.split(".") if isinstance(a, str) else []
        if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
            raise ParseError(f"not an IPv4 address: {a!r}")
    if not addrs:
        return re.compile(rb"(?!)")
    alternatives = b"|".join(re.escape(a.encode()) for a in sorted(addrs, key=len, reverse=True))
    return re.compile(rb"(?<![0-9])(?<![0-9]\.)(" + alternatives + rb")(?![0-9])(?!\.[0-9])")


def find_addresses(data: bytes, pattern: re.Pattern[bytes],
                   text: bool = True) -> list[tuple[str, int | None]]:
    """(address, line) of each match, one per address and line; line None for binary data."""
    out: list[tuple[str, int | None]] = []
    seen = set()
    line, pos = 1, 0
    for m in pattern.finditer(data):
        if text:
            line += data.count(b"\n", pos, m.start())
            pos = m.start()
        hit = (m.group(1).decode(), line if text else None)
        if hit not in seen:
            seen.add(hit)
            out.append(hit)
    return out


def looks_binary(data: bytes) -> bool:
    """Whether data is not text (a NUL byte in its first 8 KiB)."""
    return b"\0" in data[:8192]


def is_media(head: bytes) -> bool:
    return head.startswith(MEDIA_MAGIC) or head[4:8] == b"ftyp" or \
        head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"AVI ", b"WAVE")


class Scan:
    """Where the retired addresses appear below the config roots."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.pattern = address_pattern(ctx.p.get("retired") or [])
        self.needles = [a.encode() for a in ctx.p.get("retired") or []]
        self.refs: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {"roots": list(ctx.roots), "files": 0, "bytes": 0,
                                      "media_skipped": 0, "skipped": [], "complete": True}
        self.seen: set[tuple[int, int]] = set()
        self.dropped = 0

    def skip(self, path: str, reason: str) -> None:
        if len(self.facts["skipped"]) < MAX_SKIPPED:
            self.facts["skipped"].append({"path": path, "reason": reason})
        else:
            self.dropped += 1

    def add(self, address: str, path: str, line: int | None = None, table: str | None = None,
            row: int | None = None, column: str | None = None) -> None:
        if len(self.refs) == MAX_FINDINGS:
            self.skip(path, f"more than {MAX_FINDINGS} matches: listing stopped")
        if len(self.refs) < MAX_FINDINGS:
            self.refs.append({"address": address, "file": path, "line": line, "table": table,
                              "row": row, "column": column})

    def run(self) -> dict[str, Any]:
        for root in self.ctx.roots:
            if not os.path.isdir(root):
                self.skip(root, "missing" if not os.path.exists(root) else "not a directory")
                continue
            if not self._root(root):
                self.facts["complete"] = False
                break
        if self.dropped:
            self.facts["skipped"].append({"path": "", "reason": f"{self.dropped} more skipped"})
        return {"stale_refs": self.refs, "scan": self.facts}

    def _root(self, root: str) -> bool:
        for dirpath, filenames in walk(root, self.skip):
            for fname in [""] + filenames:
                if self.ctx.left() <= 0:
                    self.skip(dirpath, "time budget exhausted: the rest was not scanned")
                    return False
                if fname:
                    self._file(os.path.join(dirpath, fname))
        return True

    def _file(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except OSError as exc:
            self.skip(path, describe_error(exc))
            return
        if stat.S_ISLNK(st.st_mode):
            self.skip(path, "symbolic link, not followed")
            return
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in self.seen:
            return  # sockets, FIFOs and devices hold no config; hard links are read once
        self.seen.add((st.st_dev, st.st_ino))
        if st.st_size > MAX_FILE:
            self.skip(path, "larger than 64 MiB")
            return
        try:
            data = read_file(path, follow=False, head=is_media)
        except OSError as exc:
            self.skip(path, describe_error(exc))
            return
        if data is None:
            self.facts["media_skipped"] += 1
            return
        self.facts["files"] += 1
        self.facts["bytes"] += len(data)
        if data.startswith(SQLITE_MAGIC) and self._sqlite(path):
            return
        if not any(n in data for n in self.needles):  # most files: one fast substring search
            return
        for address, line in find_addresses(data, self.pattern, not looks_binary(data)):
            self.add(address, path, line)

    def _sqlite(self, path: str) -> bool:
        """Scan every TEXT/BLOB value of every table; False if the file must be read as bytes."""
        try:
            con = open_sqlite(path)
        except (OSError, *sqlite_errors()) as exc:  # not openable here: the bytes still count
            self.skip(path, f"SQLite unreadable ({describe_error(exc)}): scanned as bytes")
            return False
        found: list[tuple[str, str, int | None, str]] = []
        try:
            con.text_factory = bytes  # no decoding: invalid UTF-8 cannot stop the scan
            tables = [r[0].decode("utf-8", "replace") for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                if self.ctx.left() <= 0:
                    raise TimeoutError
                found += self._table(con, table)
        except TimeoutError:
            self.skip(path, "time budget exhausted inside this database")
            return True
        except sqlite_errors() as exc:  # malformed, or written while read: the bytes still count
            self.skip(path, f"SQLite error ({exc}): scanned as bytes")
            return False
        finally:
            con.close()
        for address, table, row, column in found:
            self.add(address, path, None, table, row, column)
        return True

    def _table(self, con: Any, table: str) -> list[tuple[str, str, int | None, str]]:
        """Matches in one table: SQLite's instr() finds candidate values, the regex decides."""
        if not self.needles:
            return []
        info = list(con.execute(f"PRAGMA table_info({sql_ident(table)})"))
        names = [r[1].decode("utf-8", "replace") if isinstance(r[1], bytes) else r[1]
                 for r in info]
        pk = [n for n, r in zip(names, info) if r[5]]
        try:
            con.execute(f"SELECT rowid FROM {sql_ident(table)} LIMIT 0")
            key = "rowid"
        except sqlite3_module().OperationalError:  # WITHOUT ROWID: a one-column key names the row
            key = sql_ident(pk[0]) if len(pk) == 1 else "NULL"
        found = []
        for column in names:
            if self.ctx.left() <= 0:
                raise TimeoutError
            # CAST AS BLOB: TEXT and BLOB values are searched as bytes, numbers never match
            where = " OR ".join(f"instr(CAST({sql_ident(column)} AS BLOB), X'{n.hex()}') > 0"
                                for n in self.needles)
            for rid, value in con.execute(f"SELECT {key}, {sql_ident(column)} FROM "
                                          f"{sql_ident(table)} WHERE {where}"):
                if not isinstance(value, bytes):
                    continue
                for address in dict.fromkeys(m.group(1).decode()
                                             for m in self.pattern.finditer(value)):
                    found.append((address, table, rid if isinstance(rid, int) else None, column))
                if len(found) > MAX_FINDINGS:
                    return found
        return found
