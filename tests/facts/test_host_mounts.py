"""/etc/fstab as libmount reads it, and systemd automounts, on real samples (tests/samples)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import samples

from opsverify.facts.agent import fstab
from opsverify.facts.agent import main as agent_main

AUTOMOUNTED = "proc_mounts_systemd_automount_f2fs_list.txt"   # after the first access
IDLE = "proc_mounts_systemd_automount_idle_DERIVED.txt"        # the same host before it


# --- /etc/fstab ------------------------------------------------------------------------------

def test_util_linux_fixture_comments_tabs_and_four_fields() -> None:
    entries, errors = fstab.parse_fstab(samples.text("fstab_util_linux_fixture.txt"))
    by_target = {e["target"]: e for e in entries}
    assert errors == [] and len(entries) == 11
    assert by_target["/mnt/remote"] == {"source": "foo.com:/mnt/share", "target": "/mnt/remote",
                                        "fstype": "nfs", "options": ["noauto"], "line": 11}
    assert by_target["/home/foo"]["source"] == "/dev/mapper/foo"  # tab separated
    assert by_target["/mnt/gogogo"]["options"] == ["user=SRGROUP/baby", "noauto"]


def test_inline_comment_after_pass_is_ignored_as_by_libmount() -> None:
    # Real `cat /etc/fstab` whose last two lines end in `#添加`; the same post's `df -h` after
    # a reboot shows both mounted: mount(8) ignores what follows the sixth field.
    entries, errors = fstab.parse_fstab(samples.raw("fstab_inline_comments_csdn.txt"))
    assert errors == []
    by_target = {e["target"]: e for e in entries}
    assert len(entries) == 9 and by_target["/mnt"]["options"] == ["_netdev"]
    assert by_target["/iscsi"] == {"source": "UUID=0efa1906-cbf6-a68d-de1f-26f6c0e878ae",
                                   "target": "/iscsi", "fstype": "gfs2",
                                   "options": ["defaults"], "line": 9}


def test_broken_line_costs_that_line_only() -> None:
    # rofs-filtered#38: `mount: /etc/fstab: parse error at line ... -- ignored` (7 fields:
    # "defaults,allow_other" lands in the dump field). lxd#4407: a `#` inside the source is
    # no comment for libmount.
    entries, errors = fstab.parse_fstab(samples.text("fstab_issue_lines_rofs_lxd.txt"))
    assert errors == [{"line": 1, "target": "/the/read/write/device",
                       "error": "/etc/fstab line 1: dump (5th field) is not a number; "
                                "mount(8) and systemd skip this line"}]
    assert entries == [{"source": "unionfs#/mnt/a=RO:/mnt/b=RW", "target": "/mnt/c",
                        "fstype": "fuse", "options": ["cow", "allow_other", "_netdev"],
                        "line": 2}]


@pytest.mark.parametrize("line, entry, error", [
    ("192.168.1.184:/media /mnt/media nfs4 ro 0 0 # streaming reads only", True, None),
    ("192.168.1.184:/media\t/mnt/media\tnfs4\tro\t0\t0\t#\tx", True, None),
    ("192.168.1.184:/media /mnt/media nfs4 ro # streaming reads only", False,
     "dump (5th field) is not a number"),
    ("192.168.1.184:/media /mnt/media nfs4 ro 0 #", False, "pass (6th field) is not a number"),
    ("192.168.1.184:/media /mnt/media nfs4 ro 0# 0", False, "dump (5th field) is not a number"),
    ("192.168.1.184:/media /mnt/media nfs4 ro -1 +2", True, None),
    ("192.168.1.184:/media /mnt/media nfs4", True, None),           # options: defaults
    ("192.168.1.184:/media /mnt/media", False, "no type"),
    ("lonely", False, "no mount point"),
    ("   # indented comment", None, None),
    ("\t", None, None),
    ("/dev/x /y ext4 rw 0 0\r", True, None),                         # CRLF file
])
def test_libmount_line_rules(line: str, entry: bool | None, error: str | None) -> None:
    entries, errors = fstab.parse_fstab(line + "\n")
    assert bool(entries) == bool(entry) and bool(errors) == bool(error)
    if error:
        assert error in errors[0]["error"] and errors[0]["line"] == 1
    if entries and "nfs4" in line and len(line.split()) == 3:
        assert entries[0]["options"] == ["defaults"]


def test_escapes_are_decoded() -> None:
    [e], _ = fstab.parse_fstab(r"LABEL=media /mnt/My\040Media ext4 defaults,nofail 0 2" + "\n")
    assert e["target"] == "/mnt/My Media"


# --- systemd automount -----------------------------------------------------------------------

def real_sequence() -> list[list[dict]]:
    """/proc/mounts of one host before and after its first access of /mnt/media."""
    return [fstab.parse_proc_mounts(samples.text(IDLE)),
            fstab.parse_proc_mounts(samples.text(AUTOMOUNTED))]


def test_real_automount_placeholder_is_recognised() -> None:
    idle, after = real_sequence()
    assert fstab.effective(idle, "/mnt/media") == {
        "source": "systemd-1", "target": "/mnt/media", "fstype": "autofs",
        "options": ["rw", "relatime", "fd=49", "pgrp=1", "timeout=0", "minproto=5",
                    "maxproto=5", "direct", "pipe_ino=14523"]}
    assert fstab.idle_automounts(idle, ["/mnt/media", "/tmp", "/scratch"]) == ["/mnt/media"]
    # after the access the real mount stacks on the placeholder, which stays listed
    assert fstab.effective(after, "/mnt/media")["fstype"] == "f2fs"
    assert fstab.idle_automounts(after, ["/mnt/media"]) == []


def test_settle_triggers_and_reads_again() -> None:
    tables = real_sequence()
    reads, triggered = [], []

    def read() -> list[dict]:
        reads.append(1)
        return tables[min(len(reads), 2) - 1]

    mounts, automounts = fstab.settle_automounts(
        read, lambda p: triggered.append(p), ["/mnt/media", "/tmp"])
    assert triggered == ["/mnt/media"] and len(reads) == 2
    assert fstab.effective(mounts, "/mnt/media")["source"] == "/dev/mapper/media-crypt"
    assert automounts == {"/mnt/media": {"triggered": True, "mounted": True, "error": None}}


def test_settle_reports_a_mount_still_missing() -> None:
    idle = fstab.parse_proc_mounts(samples.text(IDLE))
    mounts, automounts = fstab.settle_automounts(
        lambda: idle, lambda p: "no answer within 5.0 s when triggered (server down?)",
        ["/mnt/media"])
    assert fstab.effective(mounts, "/mnt/media")["fstype"] == "autofs"
    assert automounts["/mnt/media"] == {"triggered": True, "mounted": False,
                                        "error": "no answer within 5.0 s when triggered "
                                                 "(server down?)"}


def test_nothing_is_triggered_when_mounted() -> None:
    after = fstab.parse_proc_mounts(samples.text(AUTOMOUNTED))
    calls = []
    _, automounts = fstab.settle_automounts(lambda: after, calls.append, ["/mnt/media"])
    assert calls == [] and automounts == {}


def test_trigger_stats_below_the_mount_point(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    assert fstab.trigger(str(tmp_path / "m"), 2.0) is None
    assert "No such file or directory" in fstab.trigger(str(tmp_path / "gone"), 2.0)


def test_a_hung_server_costs_one_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real_stat = fstab.os.stat

    def hang(path: str, *a, **kw):  # a hard NFS mount whose server does not answer
        if path.startswith("/mnt/hung"):
            release.wait(30)
        return real_stat(path, *a, **kw)

    monkeypatch.setattr(fstab.os, "stat", hang)
    started = time.monotonic()
    error = fstab.trigger("/mnt/hung", 0.5)
    took = time.monotonic() - started
    release.set()
    assert error == "no answer within 0.5 s when triggered (server down?)"
    assert 0.45 < took < 2.0


def test_collector_on_a_recorded_sequence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The remote script's mounts section: placeholder, trigger, real mount; with the files
    /proc/mounts showed before and after, and the real fstab line of the mount."""
    proc = tmp_path / "mounts"
    proc.write_text(samples.text(IDLE))
    tab = tmp_path / "fstab"
    tab.write_text("LABEL=media /mnt/media f2fs noauto,x-systemd.automount 0 0  # idle\n")

    def trigger(path: str, timeout: float) -> None:
        proc.write_text(samples.text(AUTOMOUNTED))  # what autofs did on that access

    monkeypatch.setattr(fstab, "trigger", trigger)
    facts = agent_main.collect({"files": {"mounts": str(proc), "fstab": str(tab),
                                      "docker_socket": str(tmp_path / "no.sock")},
                            "mount_paths": ["/mnt/media"], "budget_s": 5})
    assert facts["errors"].get("mounts") is None and facts["errors"].get("fstab") is None
    assert fstab.effective(facts["mounts"], "/mnt/media")["fstype"] == "f2fs"
    assert facts["automounts"] == {"/mnt/media": {"triggered": True, "mounted": True,
                                                  "error": None}}
    assert facts["fstab"][0]["options"] == ["noauto", "x-systemd.automount"]
