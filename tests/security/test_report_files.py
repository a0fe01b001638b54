"""Issue 11, hole 6 and saved facts: report files are created safely, with the umask's mode.

Reports, saved facts and soak ledgers are written as a new file in the target directory
(O_EXCL|O_NOFOLLOW, an unguessable name) and renamed into place; a symlink planted where the
old code put its temporary file is never written through; the mode is 0640 minus the umask.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from opsverify import redact
from opsverify.facts.store import FactStore
from opsverify.outputs import files
from opsverify.soak import ledger


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def victim(tmp: Path) -> Path:
    v = tmp / "victim"
    v.write_text("precious\n")
    v.chmod(0o600)
    return v


def unchanged(v: Path) -> bool:
    return v.read_text() == "precious\n" and stat.S_IMODE(v.stat().st_mode) == 0o600


def test_a_planted_symlink_is_not_written_through(tmp_path: Path) -> None:
    v = victim(tmp_path)
    out = tmp_path / "reports"
    out.mkdir()
    target = out / "junit.xml"
    # Where the temporary file used to be, predictably: .junit.xml.<pid>.<thread id>.tmp
    (out / f".junit.xml.{os.getpid()}.{threading.get_ident()}.tmp").symlink_to(v)
    files.write_atomic(target, "<testsuites/>\n")
    assert unchanged(v)
    assert target.read_text() == "<testsuites/>\n" and not target.is_symlink()


def test_a_symlink_at_the_report_path_is_replaced_not_followed(tmp_path: Path) -> None:
    v = victim(tmp_path)
    target = tmp_path / "report.html"
    target.symlink_to(v)
    files.write_atomic(target, "<html></html>\n")
    assert unchanged(v) and not target.is_symlink()


@pytest.mark.parametrize("mask, mode", [(0o022, 0o640), (0o027, 0o640), (0o077, 0o600)],
                         ids=["umask-022", "umask-027", "umask-077"])
def test_reports_take_0640_minus_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    with umask(mask):
        files.write_atomic(tmp_path / "r.json", "{}\n")
        store = FactStore({"cloudflare": lambda: {"zone": {}}}, deadline=2,
                          save_dir=tmp_path / "facts")
        store.prefetch(["cloudflare"])
        store.save()
        ledger.create(tmp_path / "soak.jsonl", {"name": "soak"})
    for path in (tmp_path / "r.json", tmp_path / "facts" / "cloudflare.json",
                 tmp_path / "soak.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_ledger_and_saved_facts_never_write_through_a_planted_symlink(tmp_path: Path) -> None:
    v = victim(tmp_path)
    (tmp_path / f".soak.jsonl.{os.getpid()}.tmp").symlink_to(v)
    ledger.create(tmp_path / "soak.jsonl", {"name": "soak"})
    facts = tmp_path / "facts"
    facts.mkdir()
    (facts / f"cloudflare.tmp{os.getpid()}.{threading.get_ident()}").symlink_to(v)
    store = FactStore({"cloudflare": lambda: {"zone": {}}}, deadline=2, save_dir=facts)
    store.prefetch(["cloudflare"])
    store.save()
    assert unchanged(v)
    assert json.loads((facts / "cloudflare.json").read_text()) == {"zone": {}}


def test_saved_facts_are_masked_with_a_secret_another_source_registers_later(
        tmp_path: Path) -> None:
    """A host's config holds a key that the http source fetches from Infisical later."""
    late = "late-registered-3c9d8e7f"

    def host() -> dict:
        return {"config": {"sabnzbd": {"values": {"misc.url": [f"http://x/?apikey={late}"]}}}}

    def http() -> dict:
        time.sleep(0.3)  # after the host's facts are in
        redact.register(late)
        return {"probes": {}}

    store = FactStore({"host:vm209": host, "http": http}, deadline=3, save_dir=tmp_path)
    store.prefetch(["host:vm209", "http"])
    store.save()
    saved = (tmp_path / "host-vm209.json").read_text()
    assert late not in saved and redact.MASK in saved
