"""`ops verify` end to end on replayed facts: every flag, every report parsed, every exit code."""

from __future__ import annotations

import json
import re
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opsrun import ROOT, facts_dir, mount, ops
from prometheus_client.parser import text_string_to_metric_families

from opsverify.commands.verify import families

HEADLINE = re.compile(r"^ops verify: (\d+)/(\d+) PASS(, [^(]*)? "
                      r"\((\d+) famil(y|ies), (\d+) hosts?, [\d.]+ s\)$")


@dataclass
class Run:
    """One `ops verify` with every report, and the reports parsed."""

    code: int
    out: str
    err: str
    json: dict[str, Any]
    junit: ET.Element
    prom: dict[tuple[str, tuple], float]
    html: str


def verify(tmp: Path, facts: Path, *flags: str) -> Run:
    reports = tmp / "reports"
    p = ops("verify", "--facts", facts, "--json", reports / "r.json", "--junit-xml",
            reports / "r.xml", "--prom", reports / "r.prom", "--html", reports / "r.html", *flags)
    assert "Traceback" not in p.stdout + p.stderr
    return Run(p.returncode, p.stdout, p.stderr, json.loads((reports / "r.json").read_text()),
               ET.parse(reports / "r.xml").getroot(), prom(reports / "r.prom"),
               (reports / "r.html").read_text())


def prom(path: Path) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(path.read_text()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def gauge(run: Run, family: str, outcome: str) -> float:
    return run.prom[("opsverify_gates", (("family", family), ("outcome", outcome)))]


def junit_cases(root: ET.Element) -> dict[str, str]:
    """'gates/test_x.py::name' -> passed|failure|error|skipped."""
    out = {}
    for case in root.iter("testcase"):
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        out[f"{case.get('file')}::{case.get('name')}"] = kind
    return out


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("clean")
    return verify(tmp, facts_dir(tmp / "facts"))


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("drift")
    f = facts_dir(tmp / "facts", lambda f: mount(f, "vm210", "/mnt/media")["options"]
                  .__setitem__(0, "rw"))
    return verify(tmp, f)


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("unreach")
    f = facts_dir(tmp / "facts")
    (f / "host-vm209.json").write_text(json.dumps({"unreachable": "ssh: connection refused"}))
    return verify(tmp, f)


def test_clean_run_passes_and_every_report_agrees(clean: Run) -> None:
    tests = clean.json["tests"]
    n = len(tests)
    # The scope's open items (planned in the SSOT) are SKIPs with their reason, never absent.
    skips = [t for t in tests if t["outcome"] == "skip"]
    assert skips and all(t["message"] for t in skips)
    passed = n - len(skips)
    assert clean.code == 0, clean.out + clean.err
    line = next(ln for ln in clean.out.splitlines() if ln.startswith("ops verify:"))
    m = HEADLINE.match(line)
    assert m and m.group(1) == str(passed) and m.group(2) == str(n), line
    assert m.group(3) == f", {len(skips)} SKIP", line
    assert int(m.group(4)) == len(families()) == len(clean.json["families"])
    assert set(clean.json["families"]) == set(families())
    assert clean.json["counts"] == {"pass": passed, "waived": 0, "fail": 0, "unreachable": 0,
                                    "error": 0, "skip": len(skips)}
    assert clean.json["exit_code"] == 0 and clean.json["relaxations"] == []
    assert all(t["outcome"] == "pass" and t["message"] == "" for t in tests if t not in skips)
    # JUnit: the same ids, passed or skipped.
    assert junit_cases(clean.junit) == {
        t["id"]: "skipped" if t in skips else "passed" for t in tests}
    assert clean.junit.get("tests") == str(n) and clean.junit.get("failures") == "0"
    assert clean.junit.get("errors") == "0"
    # Prometheus: per family, the pass gauge is the family's test count.
    for fam in families():
        assert gauge(clean, fam, "pass") == sum(t["family"] == fam and t not in skips
                                                for t in tests)
        assert gauge(clean, fam, "fail") == gauge(clean, fam, "unreachable") == 0
    assert clean.prom[("opsverify_last_run_success", ())] == 1
    assert clean.prom[("opsverify_last_run_exit_code", ())] == 0
    assert abs(clean.prom[("opsverify_last_run_timestamp_seconds", ())] - time.time()) < 600
    assert clean.prom[("opsverify_last_run_duration_seconds", ())] > 0


def test_html_is_self_contained_titled_and_has_columns_and_evidence(clean: Run) -> None:
    html = clean.html
    assert f"<title>opsverify: {ROOT / 'ssot'} at " in html
    assert "<link " not in html and "<script src" not in html
    for column in ("Family", "Host", "Outcome", "Gate"):
        assert f">{column}</th>" in html
    assert "Relaxations" in html and "Evidence" in html
    assert "vm210:/mnt/media" in html
    # pytest-html's columns and filters that never apply to a gate run are gone
    assert "rerun" not in html.lower() and "xfail" not in html.lower()


def test_html_opens_with_a_host_by_family_grid(clean: Run) -> None:
    grid = clean.html.split('<table class="grid">', 1)[1].split("</table>", 1)[0]
    hosts = sorted({t["host"] for t in clean.json["tests"] if t["host"]})
    for host in hosts:
        assert f'<th data-host="{host}">{host}</th>' in grid
    cell = [t for t in clean.json["tests"] if (t["host"], t["family"]) == ("vm210", "mounts")]
    assert (f'<td class="cell pass" data-host="vm210" data-family="mounts" '
            f'title="vm210 × mounts">{len(cell)}/{len(cell)}</td>') in grid


def test_drift_fails_one_gate_named_in_every_output(drifted: Run) -> None:
    failing = [t for t in drifted.json["tests"] if t["outcome"] not in ("pass", "skip")]
    assert drifted.code == 1
    assert [t["id"] for t in failing] == ["gates/test_mounts.py::test_mount[vm210:/mnt/media]"]
    message = failing[0]["message"]
    assert message == "Mount vm210:/mnt/media: mode: expected ro, got rw"
    lines = [ln for ln in drifted.out.strip().splitlines() if not ln.startswith("  SKIP ")]
    n = len(drifted.json["tests"])
    skips = drifted.json["counts"]["skip"]
    assert lines[-2].startswith(f"ops verify: {n - 1 - skips}/{n} PASS, 1 FAIL, {skips} SKIP (")
    assert lines[-1] == f"  FAIL  mounts::test_mount[vm210:/mnt/media]: {message}"
    cases = junit_cases(drifted.junit)
    assert [k for k, v in cases.items() if v not in ("passed", "skipped")] == [failing[0]["id"]]
    failure = next(drifted.junit.iter("failure"))
    assert failure.get("message") == message and drifted.junit.get("failures") == "1"
    assert gauge(drifted, "mounts", "fail") == 1
    assert drifted.prom[("opsverify_last_run_success", ())] == 0
    assert drifted.prom[("opsverify_last_run_exit_code", ())] == 1
    assert "expected ro, got rw" in drifted.html
    # the finding in parts, in the JSON and as an expected | actual table in the HTML
    assert failing[0]["subject"] == "Mount vm210:/mnt/media"
    assert [(f["attribute"], f["expected"], f["actual"]) for f in failing[0]["findings"]] == \
        [("mode", "ro", "rw")]
    assert "<tr><td>mode</td><td>ro</td><td>rw</td></tr>" in drifted.html
    assert '<td class="cell fail" data-host="vm210" data-family="mounts"' in drifted.html


def test_unreachable_host_is_reported_once_and_exits_4(unreachable: Run) -> None:
    tests = unreachable.json["tests"]
    down = [t for t in tests if t["outcome"] == "unreachable"]
    assert unreachable.code == 4
    assert down and all(t["source"] == "host:vm209" for t in down)
    assert all(t["outcome"] in ("pass", "skip") for t in tests if t["source"] != "host:vm209")
    assert unreachable.json["unreachable"] == {"host:vm209": "ssh: connection refused"}
    lines = [ln for ln in unreachable.out.strip().splitlines() if not ln.startswith("  SKIP ")]
    assert lines[-1] == f"  vm209 UNREACHABLE: ssh: connection refused — {len(down)} tests not run"
    assert sum("UNREACHABLE" in ln for ln in lines) == 2  # the headline and that one line
    assert f", {len(down)} UNREACHABLE" in lines[-2]
    errors = list(unreachable.junit.iter("error"))
    assert len(errors) == len(down) == int(unreachable.junit.get("errors"))
    assert all(e.get("message") == "UNREACHABLE vm209: ssh: connection refused"
               for e in errors)
    assert sum(gauge(unreachable, f, "unreachable") for f in families()) == len(down)
    assert unreachable.prom[("opsverify_last_run_exit_code", ())] == 4


def test_replayed_facts_of_the_wrong_shape_are_refused_by_the_contract(tmp_path: Path) -> None:
    # A gate bug (ERROR) is classified in tests/verify/test_outcomes_plugin.py; facts that
    # break the contract never reach a gate: the run is refused, naming file and JSON path.
    f = facts_dir(tmp_path / "facts", lambda f: f["host:vm210"].__setitem__("mounts", 42))
    p = ops("verify", "--facts", f, "--family", "mounts", "--prom", tmp_path / "r.prom")
    assert p.returncode == 2 and "Traceback" not in p.stdout + p.stderr
    assert "host-vm210.json" in p.stderr and "$.mounts: expected array, got integer" in p.stderr
    assert "opsverify_last_run_success 0" in (tmp_path / "r.prom").read_text()


def test_selection_by_host_family_and_k(tmp_path: Path) -> None:
    f = facts_dir(tmp_path / "facts")
    by_host = ops("verify", "--facts", f, "--host", "vm210", "--json", tmp_path / "h.json", "-q")
    tests = json.loads((tmp_path / "h.json").read_text())["tests"]
    assert by_host.returncode == 0 and tests and {t["host"] for t in tests} == {"vm210"}
    both = ops("verify", "--facts", f, "--family", "mounts", "--family", "containers", "-k",
               "radarr", "--json", tmp_path / "k.json", "-q")
    tests = json.loads((tmp_path / "k.json").read_text())["tests"]
    assert both.returncode == 0
    assert {t["family"] for t in tests} == {"containers"}  # no mount id mentions radarr
    assert sorted(t["param"] for t in tests) == ["download-stack:radarr",
                                                 "download-stack:swaparr-radarr"]


def test_quiet_and_verbose(tmp_path: Path) -> None:
    f = facts_dir(tmp_path / "facts")
    quiet = ops("verify", "--facts", f, "--family", "decom", "-q")
    assert quiet.returncode == 0 and [ln for ln in quiet.stdout.splitlines() if ln.strip()] == [
        ln for ln in quiet.stdout.splitlines() if ln.startswith("ops verify: ")]
    loud = ops("verify", "--facts", f, "--family", "decom", "-v")
    assert re.search(r"^gates/test_decom\.py::\S+ PASS", loud.stdout, re.MULTILINE), loud.stdout


def test_save_facts_then_replay_them(tmp_path: Path) -> None:
    f = facts_dir(tmp_path / "facts")
    saved = tmp_path / "saved"
    first = ops("verify", "--facts", f, "--save-facts", saved, "--json", tmp_path / "a.json", "-q")
    again = ops("verify", "--facts", saved, "--json", tmp_path / "b.json", "-q")
    assert first.returncode == again.returncode == 0
    assert {p.name for p in saved.iterdir()} == {p.name for p in f.iterdir()}
    ids = [json.loads((tmp_path / n).read_text())["tests"] for n in ("a.json", "b.json")]
    assert [t["id"] for t in ids[0]] == [t["id"] for t in ids[1]]


def test_parallel_and_timeout_runs(tmp_path: Path) -> None:
    f = facts_dir(tmp_path / "facts")
    p = ops("verify", "--facts", f, "--parallel", "1", "--timeout", "3", "--family", "mounts",
            "--family", "services", "-q")
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--family", "nope"], "unknown family nope (known: " + ", ".join(families()) + ")"),
    (["--host", "vm999"], "unknown host vm999 (SSOT hosts: pve, vm201, vm209, vm210)"),
    (["-k", "no_such_gate_anywhere"], "no gate selected"),
    (["--facts", "/nonexistent/facts"], "--facts /nonexistent/facts: not a directory"),
    (["--timeout", "0"], "--timeout 0.0: must be a positive number of seconds"),
    (["--parallel", "0"], "--parallel 0: must be at least 1"),
])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    f = facts_dir(tmp_path / "facts")
    p = ops("verify", "--facts", f, *args) if args[0] != "--facts" else ops("verify", *args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert says in p.stderr and "Traceback" not in p.stdout + p.stderr


def test_invalid_ssot_exits_2_with_file_and_line(tmp_path: Path) -> None:
    ssot = shutil.copytree(ROOT / "ssot", tmp_path / "ssot")
    hosts = ssot / "hosts.yaml"
    hosts.write_text(hosts.read_text().replace("tailscale_ip: 100.123.207.64",
                                               "tailscale_ip: 100.123.207", 1))
    p = ops("verify", "--ssot", ssot, "--prom", tmp_path / "r.prom")
    assert p.returncode == 2
    assert re.search(r"hosts\.yaml:\d+ \$\.hosts\.vm210\.tailscale_ip: ", p.stderr), p.stderr
    assert "ops verify: invalid SSOT: 1 problem" in p.stderr and "Traceback" not in p.stderr
    metrics = prom(tmp_path / "r.prom")
    assert metrics[("opsverify_last_run_success", ())] == 0
    assert metrics[("opsverify_last_run_exit_code", ())] == 2


def test_help_documents_exit_codes() -> None:
    p = ops("verify", "--help")
    assert p.returncode == 0
    for line in ("0  every selected gate passed", "1  at least one gate FAILED",
                 "2  invalid SSOT", "4  no FAIL, but at least one host or API was UNREACHABLE"):
        assert line in p.stdout


def test_two_runs_at_once_leave_whole_reports(tmp_path: Path) -> None:
    import subprocess
    import sys

    from opsrun import env

    f = facts_dir(tmp_path / "facts")
    out = tmp_path / "reports"
    cmd = [sys.executable, "-m", "opsverify.cli", "verify", "--facts", str(f), "-q",
           "--html", str(out / "r.html"), "--json", str(out / "r.json"),
           "--junit-xml", str(out / "r.xml"), "--prom", str(out / "r.prom")]
    runs = [subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL)
            for _ in range(2)]
    assert [p.wait(timeout=180) for p in runs] == [0, 0]
    assert sorted(p.name for p in out.iterdir()) == ["r.html", "r.json", "r.prom", "r.xml"]
    assert json.loads((out / "r.json").read_text())["exit_code"] == 0
    assert (out / "r.html").read_text().rstrip().endswith("</html>")
    ET.parse(out / "r.xml")
    assert prom(out / "r.prom")[("opsverify_last_run_success", ())] == 1
