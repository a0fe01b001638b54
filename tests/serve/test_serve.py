"""`ops serve` on replayed facts (no host asked): real HTTP on a free loopback port, real
`ops verify` children, real signals. The twin test is tests/integration/test_twin_serve.py."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "verify"))
from opsrun import env, facts_dir, mount, ops, read_json
from serverun import OPS, Server, metric_families, sample, state_of, stop_a_run

from opsverify import results

MOUNT_TEST = "gates/test_mounts.py::test_mount[vm210:/mnt/media]"
RUN_LINE = re.compile(r"^ops serve: run \d+, exit [0-9]+: ops verify: \d+/\d+ PASS")


def _rw(f: dict) -> None:
    mount(f, "vm210", "/mnt/media")["options"][0] = "rw"


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("facts")
    return {"clean": facts_dir(tmp / "clean"), "drift": facts_dir(tmp / "drift", _rw)}


@pytest.fixture(scope="module")
def verified(facts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What `ops verify --json --prom` says of the clean facts, for comparison."""
    tmp = tmp_path_factory.mktemp("verify")
    p = ops("verify", "-q", "--facts", facts["clean"], "--json", tmp / "r.json",
            "--prom", tmp / "r.prom")
    assert p.returncode == 0, p.stderr
    return {"json": read_json(tmp / "r.json"), "prom": (tmp / "r.prom").read_text()}


def use(live: Path, source: Path) -> None:
    """Make the replayed facts those of `source`, one file at a time, each atomically."""
    for f in source.iterdir():
        shutil.copy(f, live / f".{f.name}.tmp")
        os.replace(live / f".{f.name}.tmp", live / f.name)


def serve(tmp: Path, *args: str | Path, name: str = "serve") -> Server:
    argv = [*OPS, "serve", "--listen", "127.0.0.1:0", *map(str, args)]
    return Server(argv, tmp / f"{name}.log", env()).started()


def ok(r) -> bool:
    return r.status == 200


def test_healthz_flips_with_the_facts_and_every_endpoint_serves_the_last_run(
        facts: dict[str, Path], verified: dict, tmp_path: Path) -> None:
    live = tmp_path / "live"
    shutil.copytree(facts["clean"], live)
    s = serve(tmp_path, "--every", "2s", "--run-timeout", "60s", "--facts", live)
    try:
        h = s.wait("/healthz", ok).json()
        model = verified["json"]
        assert h["status"] == "pass" and h["exit_code"] == 0 and h["stale"] is False
        assert h["counts"] == model["counts"] and h["failing"] == [] and h["runs"] >= 1
        assert 0 <= h["age_s"] < 4

        families = metric_families(s.get("/metrics").body)
        prom = metric_families(verified["prom"])
        serve_own = {n for n in families if n.startswith("opsverify_serve_")}
        assert set(families) - serve_own == set(prom)  # the series of `ops verify --prom`
        assert serve_own >= {"opsverify_serve_last_run_age_seconds", "opsverify_serve_stale",
                             "opsverify_serve_runs"}  # a counter's family drops _total
        assert sample(families, "opsverify_last_run_success") == 1
        assert sample(families, "opsverify_gates", family="mounts", outcome="pass") == \
            sample(prom, "opsverify_gates", family="mounts", outcome="pass")

        served = s.get("/results.json")
        assert served.status == 200 and served.headers["Content-Type"].startswith(
            "application/json")
        res = served.json()
        assert res["format"] == results.FORMAT and res["counts"] == model["counts"]
        assert [(t["id"], t["outcome"]) for t in res["tests"]] == \
            [(t["id"], t["outcome"]) for t in model["tests"]]

        html = s.get("/")
        assert html.status == 200 and html.headers["Content-Type"].startswith("text/html")
        assert html.body.startswith("<!doctype html>") and 'id="gates"' in html.body
        assert f"{model['counts']['pass']}/{len(model['tests'])} PASS" in html.body
        head = s.get("/healthz", method="HEAD")
        assert head.status == 200 and head.body == ""
        assert s.get("/nothing-here").status == 404

        use(live, facts["drift"])
        r = s.wait("/healthz", lambda r: r.status == 503)
        d = r.json()
        assert d["status"] == "fail" and d["exit_code"] == 1 and d["stale"] is False
        assert d["failing"] == [MOUNT_TEST] and d["failing_total"] == 1
        assert d["counts"]["fail"] == 1
        families = metric_families(s.get("/metrics").body)
        assert sample(families, "opsverify_last_run_success") == 0
        assert sample(families, "opsverify_gates", family="mounts", outcome="fail") == 1
        assert "1 FAIL" in s.get("/").body

        use(live, facts["clean"])
        assert s.wait("/healthz", ok).json()["failing"] == []
    finally:
        code = s.stop()
    assert code == 0, s.stderr
    lines = s.stderr.splitlines()
    assert lines[-1] == "ops serve: stopped"
    runs = lines[1:-1]
    assert runs and all(RUN_LINE.match(ln) for ln in runs), lines  # one line per run
    assert any("exit 1: ops verify: " in ln and "1 FAIL" in ln for ln in runs)


def test_a_hung_run_goes_stale_blocks_the_next_and_sigterm_kills_it(
        facts: dict[str, Path], tmp_path: Path) -> None:
    s = serve(tmp_path, "--every", "1s", "--run-timeout", "120s", "--facts", facts["clean"])
    child = 0
    try:
        s.wait("/healthz", ok)
        child = stop_a_run(s)
        r = s.wait("/healthz", lambda r: r.json().get("stale") is True)
        h = r.json()
        assert r.status == 503 and h["status"] == "stale" and h["exit_code"] == 0
        assert h["age_s"] >= 2 and h["running"] is True  # rounded to 0.1 s
        families = metric_families(s.get("/metrics").body)
        assert sample(families, "opsverify_serve_stale") == 1
        assert sample(families, "opsverify_serve_running") == 1
        time.sleep(1.5)  # more than an interval: the next run waits for the hung one
        assert s.children() == [child] and state_of(child) in ("T", "t")

        os.kill(child, signal.SIGCONT)  # it finishes: fresh again
        assert s.wait("/healthz", ok).json()["stale"] is False

        child = stop_a_run(s)
        t0 = time.monotonic()
        code = s.stop()
        stopped_in = time.monotonic() - t0
    finally:
        s.stop()
        if child and state_of(child):
            os.kill(child, signal.SIGKILL)
    assert code == 0 and stopped_in < 5, s.stderr
    assert state_of(child) == "", "the hung run outlived ops serve"
    assert s.stderr.splitlines()[-1] == "ops serve: stopped"


def test_a_run_past_its_timeout_is_killed_and_reported(facts: dict[str, Path],
                                                       tmp_path: Path) -> None:
    s = serve(tmp_path, "--every", "1s", "--run-timeout", "2s", "--facts", facts["clean"])
    try:
        s.wait("/healthz", ok)
        child = stop_a_run(s)
        r = s.wait("/healthz", lambda r: r.json().get("status") == "error", timeout=30)
        assert r.status == 503 and "did not finish within 2 s" in r.json()["error"]
        assert state_of(child) == ""
        assert s.get("/results.json").status == 503  # that run has no results model
        families = metric_families(s.get("/metrics").body)
        assert sample(families, "opsverify_last_run_success") == 0
    finally:
        assert s.stop() == 0
    assert "ERROR the run did not finish within 2 s" in s.stderr


def test_starting_then_state_kept_across_a_restart(facts: dict[str, Path],
                                                   tmp_path: Path) -> None:
    state = tmp_path / "state"
    s = serve(tmp_path, "--every", "1h", "--facts", facts["clean"], "--state", state)
    try:
        first = s.get("/healthz")  # usually before the first run has finished
        assert first.status == 200 or first.json() == {"status": "starting", "runs": 0,
                                                       "running": True}
        before = s.wait("/healthz", ok).json()
    finally:
        assert s.stop() == 0
    saved = state / "last.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert read_json(saved)["results"]["counts"] == before["counts"]
    # Restarted (on drifted facts): the kept run is served at once; the next is an hour away.
    s = serve(tmp_path, "--every", "1h", "--facts", facts["drift"], "--state", state,
              name="again")
    try:
        h = s.get("/healthz")
        assert h.status == 200 and h.json()["runs"] == 0 and h.json()["finished"] == \
            before["finished"]
        assert s.get("/results.json").json()["counts"] == before["counts"]
        assert "--state: serving the run that finished at" in s.stderr
    finally:
        assert s.stop() == 0


def test_beyond_loopback_only_with_a_token_file(facts: dict[str, Path], tmp_path: Path) -> None:
    refused = ops("serve", "--listen", "0.0.0.0:0", "--facts", facts["clean"], timeout=60)
    assert refused.returncode == 2
    assert "not a loopback address" in refused.stderr and "--token-file" in refused.stderr
    token = secrets.token_urlsafe(24)
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o604)
    loose = ops("serve", "--listen", "0.0.0.0:0", "--token-file", path, timeout=60)
    assert loose.returncode == 2 and "chmod 600" in loose.stderr and token not in loose.stderr
    path.chmod(0o600)
    # On every address; this test talks to it via 127.0.0.1 only.
    argv = [*OPS, "serve", "--listen", "0.0.0.0:0", "--every", "2s", "--run-timeout", "60s",
            "--facts", str(facts["clean"]), "--token-file", str(path)]
    s = Server(argv, tmp_path / "any.log", env()).started()
    try:
        assert "0.0.0.0" in s.stderr and "bearer token required" in s.stderr
        for path_ in ("/healthz", "/metrics", "/", "/results.json"):
            r = s.get(path_)
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert s.get("/healthz", headers={"Authorization": f"Bearer {token}x"}).status == 401
        assert s.get("/healthz", headers={"Authorization": token}).status == 401
        good = {"Authorization": f"Bearer {token}"}
        assert s.wait("/healthz", ok, headers=good).json()["status"] == "pass"
        assert s.get("/metrics", headers=good).status == 200
    finally:
        assert s.stop() == 0
    assert token not in s.stderr


def _png_colours(png: bytes) -> int:
    """Distinct RGB(A) colours of an 8-bit PNG (Chromium's screenshot), filters undone."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += data
        pos += 12 + n
    raw, stride, prev, colours = zlib.decompress(idat), w * bpp, bytearray(w * bpp), set()
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pred = [0, a, b, (a + b) // 2,
                    min((abs(p - a), a), (abs(p - b), b), (abs(p - c), c))[1]][f]
            line[i] = (line[i] + pred) & 0xFF
        colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp * 7))
        prev = line
    return len(colours)


def test_the_page_renders_in_headless_chromium(facts: dict[str, Path], tmp_path: Path) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    s = serve(tmp_path, "--every", "1h", "--facts", facts["clean"])
    try:
        s.wait("/healthz", ok)
        shot = tmp_path / "page.png"
        with tempfile.TemporaryDirectory() as profile:
            p = subprocess.run(
                [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr",
                 "--v=0", "--virtual-time-budget=3000", "--window-size=1280,900",
                 "--dump-dom", s.base + "/#family=mounts"],
                capture_output=True, text=True, timeout=120, check=False)
            subprocess.run(
                [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
                 "--window-size=1280,900", f"--screenshot={shot}", s.base + "/"],
                capture_output=True, text=True, timeout=120, check=False)
    finally:
        assert s.stop() == 0
    console = [ln for ln in p.stderr.splitlines() if re.search(r":CONSOLE[:(]", ln)]
    assert console == [], console
    dom = p.stdout
    assert 'id="gates"' in dom and "PASS" in dom
    assert re.search(r'<tr[^>]*data-family="mounts"(?![^>]*hidden)', dom)  # the script ran:
    assert re.search(r'<tr[^>]*data-family="ssot"[^>]*hidden', dom)        # a filtered view
    assert shot.exists() and _png_colours(shot.read_bytes()) > 5
