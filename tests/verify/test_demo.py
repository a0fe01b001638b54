"""`ops demo`'s story on a stand-in for `ops lab` whose hosts are replayed facts.

The real twin run (`ops demo` as root) belongs to the lab integration tests; here every
`ops verify` the demo starts is real, only `ops lab up/exec/drift/reset/down` are played.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest
from opsrun import env, facts_dir, mount

from opsverify.commands import demo

REAL_RUN = subprocess.run  # demo.subprocess.run is patched: the fake lab still runs verify


class FakeLab:
    """Plays `ops lab`: drift swaps the facts the next `exec -- ops verify` replays."""

    def __init__(self, tmp: Path, drift_breaks: bool = True):
        self.clean = facts_dir(tmp / "clean")
        self.drift = facts_dir(tmp / "drift", lambda f: mount(f, "vm210", "/mnt/media")[
            "options"].__setitem__(0, "rw")) if drift_breaks else self.clean
        self.state = self.clean
        self.calls: list[str] = []

    def run(self, cmd: list[str], check: bool = False) -> subprocess.CompletedProcess:
        i = cmd.index("lab")
        what = cmd[i + 1]
        self.calls.append(what)
        if what == "exec":
            inner = cmd[cmd.index("--") + 1:]
            return REAL_RUN([*inner, "--facts", str(self.state)], env=env(), check=False)
        if what == "drift":
            assert cmd[i + 2] == demo.DRIFT
            self.state = self.drift
        elif what == "reset":
            self.state = self.clean
        return subprocess.CompletedProcess(cmd, 0)


def args(tmp: Path) -> argparse.Namespace:
    return argparse.Namespace(reports=tmp / "reports", keep=False)


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "prerequisites", list)


def test_demo_catches_the_drift_and_ends_green(tmp_path: Path, root: None,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    lab = FakeLab(tmp_path)
    monkeypatch.setattr(demo.subprocess, "run", lab.run)
    assert demo.run(args(tmp_path)) == 0
    assert lab.calls == ["up", "exec", "drift", "exec", "reset", "exec", "down"]
    out = capsys.readouterr().out
    assert ("ops demo: caught: FAIL mounts::test_mount[vm210:/mnt/media]: Mount vm210:/mnt/media: "
            "mode: expected ro, got rw") in out
    reports = tmp_path / "reports"
    assert f"HTML report: {reports / 'verify.html'}" in out
    for stem in ("clean", "drift", "verify"):
        for ext in ("html", "xml", "json", "prom"):
            assert (reports / f"{stem}.{ext}").stat().st_size > 0


def test_demo_fails_when_the_drift_goes_unnoticed(tmp_path: Path, root: None,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    lab = FakeLab(tmp_path, drift_breaks=False)
    monkeypatch.setattr(demo.subprocess, "run", lab.run)
    assert demo.run(args(tmp_path)) == 1
    assert "the drift was NOT caught (exit 0)" in capsys.readouterr().out
    assert lab.calls[-2:] == ["reset", "down"]


def test_demo_needs_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(demo.subprocess, "run", lambda *a, **k: pytest.fail("ran something"))
    assert demo.run(args(tmp_path)) == 2
    assert "the lab twin needs root" in capsys.readouterr().err
