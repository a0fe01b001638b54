"""Short soaks on replayed facts: what was done to the facts between runs, the report says."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from opsrun import CLEAN, env, facts_dir, mount, mutated, ops

from opsverify.soak import analysis, ledger, report, runner
from opsverify.ssot import RULES, load

MOUNT_ID = "gates/test_mounts.py::test_mount[vm210:/mnt/media]"
MESSAGE = "Mount vm210:/mnt/media: mode: expected ro, got rw"


def media_rw(f: dict) -> None:
    mount(f, "vm210", "/mnt/media")["options"][0] = "rw"


def radarr_restarted(f: dict) -> None:
    box = next(c for c in f["host:vm209"]["docker"]["containers"] if c["name"] == "radarr")
    box["started_at"] = "2026-02-11T11:58:00.123456789Z"


# What the facts look like at each run: the drift on runs 3-4, vm209 down on run 5, radarr
# restarted before run 6.
SCRIPT: dict[int, Any] = {3: media_rw, 4: media_rw, 6: radarr_restarted, 7: radarr_restarted}


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> analysis.Soak:
    tmp = tmp_path_factory.mktemp("soak")
    facts = tmp / "facts"
    path = ledger.path_of(tmp, "drift")
    ledger.create(path, {"name": "drift", "created": "2026-02-11T12:00:00+00:00", "every_s": 0.0,
                         "for_s": 0.0, "expected_runs": 7, "ssot": "ssot", "host": "t",
                         "flags": ["--facts", str(facts), "--family", "mounts", "--family",
                                   "containers"], "may_restart": []})

    with ledger.Writer(path) as writer:
        def step(flags: list[str], workdir: Path, timeout: float) -> dict[str, Any]:
            k = writer.done + 1
            shutil.rmtree(facts, ignore_errors=True)
            facts_dir(facts, SCRIPT.get(k))
            if k == 5:
                (facts / "host-vm209.json").write_text(json.dumps({"unreachable": "ssh: timeout"}))
            return runner.run_once(flags, workdir, timeout=timeout, env=env())

        out = io.StringIO()
        runner.loop(writer, workdir=tmp / "work", run_timeout=120,
                    progress=runner.Progress(out), step=step)
    lines = out.getvalue().splitlines()
    assert [ln.split(" ")[3] for ln in lines] == [f"{k}/7" for k in range(1, 8)], lines
    header, runs = ledger.read(path)
    return analysis.analyse(header, runs)


def test_the_drift_shows_where_it_was_injected(soak: analysis.Soak) -> None:
    g = soak.gates[MOUNT_ID]
    assert list(g.codes) == [analysis.OK, analysis.OK, analysis.FAILED, analysis.FAILED,
                             analysis.OK, analysis.OK, analysis.OK]
    assert g.flaps == 1 and g.bad_runs == 2
    assert (g.first_bad[0], g.first_bad[2]) == (3, MESSAGE)
    assert (g.last_bad[0], g.last_bad[2]) == (4, MESSAGE)
    others = [x for x in soak.gates.values() if x.id != MOUNT_ID and x.host != "vm209"]
    assert others and all(set(x.codes) == {analysis.OK} for x in others)


def test_unreachable_host_is_grey_for_that_run_only(soak: analysis.Soak) -> None:
    vm209 = [g for g in soak.gates.values() if g.host == "vm209"]
    assert vm209 and all(g.codes[4] == analysis.UNREACH for g in vm209)
    assert all(c == analysis.OK for g in vm209 for i, c in enumerate(g.codes) if i != 4)
    assert list(soak.reach["host:vm209"]) == [1, 1, 1, 1, analysis.UNREACH, 1, 1]
    assert set(soak.reach["host:vm210"]) == {analysis.OK}
    assert [r["exit_code"] for r in soak.runs] == [0, 0, 1, 1, 4, 0, 0]


def test_restart_is_counted_once_and_fails_the_soak(soak: analysis.Soak) -> None:
    radarr = soak.boxes[("vm209", "radarr")]
    assert (radarr.restarts, radarr.restart_runs) == (1, [6])
    assert radarr.codes[4] == analysis.C_ABSENT and radarr.codes[5] == analysis.C_RESTART
    assert all(b.restarts == 0 for key, b in soak.boxes.items() if key != ("vm209", "radarr"))
    verdict, reasons = soak.verdict()
    assert verdict == analysis.FAIL
    vm209 = sum(g.host == "vm209" for g in soak.gates.values())
    assert reasons[0] == f"{vm209 + 1} gates did not pass in 3 of 7 runs"
    assert "vm209/radarr restarted 1x (runs 6)" in reasons


def test_report_renders_what_was_found(soak: analysis.Soak) -> None:
    html = report.render(soak)
    assert '<span class="verdict FAIL">FAIL</span>' in html
    assert "7 done / 7 expected" in html and MESSAGE in html
    assert "1 flap</span>" in html and "vm209/radarr restarted 1x" in html


def test_cli_soak_resume_report_and_usage(tmp_path: Path) -> None:
    d = tmp_path / "soaks"
    p = ops("soak", "--dir", d, "--name", "cli", "--every", "1s", "--for", "2s", "--family",
            "ssot")
    assert p.returncode == 0, p.stdout + p.stderr
    gates = len(load().files) + len(RULES)  # the ssot family: one gate per file and rule
    assert f"soak cli: run 1/2 {gates}/{gates} PASS (" in p.stdout
    assert f"soak cli: run 2/2 {gates}/{gates} PASS (" in p.stdout
    assert f"ops soak cli: PASS (2/2 runs, {gates} gates)" in p.stdout
    assert (d / "cli.html").read_text().count('<span class="verdict PASS">PASS</span>') == 1
    assert not (d / ".cli.work").exists()
    again = ops("soak", "--dir", d, "--resume", "cli")
    assert again.returncode == 0 and "ops soak cli: PASS (2/2 runs" in again.stdout
    rep = ops("soak", "report", "cli", "--dir", d, "--html", tmp_path / "r.html")
    assert rep.returncode == 0 and (tmp_path / "r.html").exists()
    dup = ops("soak", "--dir", d, "--name", "cli", "--every", "1s", "--for", "2s")
    assert dup.returncode == 2 and "a soak of that name exists" in dup.stderr
    for bad, says in ((["--every", "5x", "--for", "1h"], "'5x' is not a duration"),
                      (["--every", "5m"], "give --every and --for"),
                      (["--resume", "cli", "--every", "1s"], "give no others"),
                      (["--every", "1s", "--for", "2s", "--family", "nope"], "unknown family")):
        p = ops("soak", "--dir", d, *bad)
        assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr, bad
    missing = ops("soak", "report", "nope", "--dir", d)
    assert missing.returncode == 2 and "no such soak ledger" in missing.stderr


def test_incomplete_soak_says_so(tmp_path: Path) -> None:
    path = ledger.path_of(tmp_path, "short")
    ledger.create(path, {"name": "short", "created": "2026-02-08T00:00:00+00:00", "every_s": 300.0,
                         "for_s": 1500.0, "expected_runs": 5, "flags": [], "ssot": "ssot",
                         "host": "t", "may_restart": []})
    p = ops("soak", "report", "short", "--dir", tmp_path)
    assert p.returncode == 3 and "ops soak short: INCOMPLETE (0/5 runs" in p.stdout


def test_soak_outputs_hold_no_credential(tmp_path: Path) -> None:
    token = "soak-canary-Pq2Rs7Tu9V"
    facts = facts_dir(tmp_path / "facts",
                      lambda f: f["host:vm210"].__setitem__("hostname", token))
    d = tmp_path / "soaks"
    p = ops("soak", "--dir", d, "--name", "s", "--every", "1s", "--for", "1s", "--facts", facts,
            "--family", "reachability", environ=env(CLOUDFLARE_API_TOKEN=token))
    assert p.returncode == 1, p.stdout + p.stderr
    texts = [p.stdout, p.stderr, (d / "s.jsonl").read_text(), (d / "s.html").read_text()]
    assert all(token not in t for t in texts)
    assert "got ********" in texts[2] and "got ********" in texts[3]


def test_clean_facts_are_what_the_script_starts_from() -> None:
    assert mutated(CLEAN, media_rw) != CLEAN


def test_a_run_that_hangs_is_killed_and_recorded(tmp_path: Path) -> None:
    run = runner.run_once(["--family", "ssot"], tmp_path / "work", timeout=0.05, env=env())
    assert run["error"] == "the run did not finish within 0.05 s"
    assert run["exit_code"] == 1 and run["tests"] == {}
    s = analysis.analyse({"name": "h", "expected_runs": 1, "every_s": 1, "for_s": 1, "flags": []},
                       [{"k": 1, **run}])
    assert s.verdict()[0] == analysis.FAIL
