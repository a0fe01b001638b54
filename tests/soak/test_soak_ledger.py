"""The soak ledger: created whole, appended whole, a torn tail ignored on read and cut on resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opsverify.redact import register
from opsverify.soak import ledger

HEADER = {"name": "t", "created": "2026-02-08T00:00:00+00:00", "every_s": 300.0,
          "for_s": 259200.0, "expected_runs": 864, "flags": [], "ssot": "ssot",
          "host": "mgmt", "may_restart": []}


def run(k: int, **extra: object) -> dict:
    return {"k": k, "started": "2026-02-08T00:00:00+00:00", "finished": "2026-02-08T00:00:01+00:00",
            "duration_s": 1.0, "exit_code": 0, "error": None, "counts": {}, "unreachable": {},
            "tests": {}, "containers": {}, **extra}


def test_append_then_read_back(tmp_path: Path) -> None:
    path = ledger.path_of(tmp_path, "t")
    ledger.create(path, HEADER)
    with ledger.Writer(path) as w:
        assert (w.done, w.repaired) == (0, 0)
        for k in (1, 2, 3):
            w.append(run(k))
    header, runs = ledger.read(path)
    assert header["name"] == "t" and header["format"] == ledger.FORMAT
    assert [r["k"] for r in runs] == [1, 2, 3]
    assert path.read_bytes().count(b"\n") == 4


def test_torn_tail_is_ignored_then_cut_on_resume(tmp_path: Path) -> None:
    path = ledger.path_of(tmp_path, "t")
    ledger.create(path, HEADER)
    with ledger.Writer(path) as w:
        w.append(run(1))
        w.append(run(2))
    whole = path.read_bytes()
    line = json.dumps({"type": "run", **run(3)}).encode()
    for cut in (1, len(line) // 2, len(line)):  # every kind of torn write, newline missing
        path.write_bytes(whole + line[:cut])
        assert [r["k"] for r in ledger.read(path)[1]] == [1, 2]
        with ledger.Writer(path) as w:
            assert (w.done, w.repaired, w.last["k"]) == (2, cut, 2)
            assert path.read_bytes() == whole
            w.append(run(3))
        assert [r["k"] for r in ledger.read(path)[1]] == [1, 2, 3]
        path.write_bytes(whole)


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    path = ledger.path_of(tmp_path, "t")
    ledger.create(path, HEADER)
    with ledger.Writer(path), pytest.raises(ledger.LedgerError, match="running in another"):
        ledger.Writer(path)
    ledger.Writer(path).close()  # free again once the first let go


def test_create_never_replaces_a_soak(tmp_path: Path) -> None:
    path = ledger.path_of(tmp_path, "t")
    ledger.create(path, HEADER)
    with pytest.raises(ledger.LedgerError, match="a soak of that name exists"):
        ledger.create(path, {**HEADER, "every_s": 1.0})
    assert ledger.read(path)[0]["every_s"] == 300.0
    assert os.listdir(tmp_path) == ["t.jsonl"]


@pytest.mark.parametrize("name", ["../etc/x", "a/b", "", ".hidden", "x" * 101])
def test_names_cannot_escape_the_soak_dir(tmp_path: Path, name: str) -> None:
    with pytest.raises(ledger.LedgerError, match="soak name"):
        ledger.path_of(tmp_path, name)


def test_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(ledger.LedgerError, match=r"t\.jsonl:1: not an opsverify soak ledger"):
        ledger.read(path)
    with pytest.raises(ledger.LedgerError, match="no such soak ledger"):
        ledger.read(tmp_path / "missing.jsonl")


def test_secrets_are_scrubbed_on_the_way_in(tmp_path: Path) -> None:
    register("ledger-canary-0f9e8d")
    path = ledger.path_of(tmp_path, "t")
    ledger.create(path, HEADER)
    with ledger.Writer(path) as w:
        w.append(run(1, error="auth failed with ledger-canary-0f9e8d"))
    assert b"ledger-canary-0f9e8d" not in path.read_bytes()
