"""The results model and its views: headline, detail lines, exit code, JUnit, Prometheus, files."""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from opsverify import results
from opsverify.commands import verify
from opsverify.outputs import files, junit, prometheus, terminal


def fake(outcomes: dict[str, int], families: int = 11, hosts: int = 3,
         duration: float = 2.1) -> dict:
    tests = []
    for outcome, n in outcomes.items():
        for i in range(n):
            source = "host:vm209" if outcome == "unreachable" else ""
            tests.append({"id": f"gates/test_mounts.py::test_mount[{outcome}{i}]",
                          "name": f"test_mount[{outcome}{i}]", "param": f"{outcome}{i}",
                          "family": "mounts", "host": "vm209", "outcome": outcome,
                          "message": "" if outcome == "pass" else f"{outcome} {i}",
                          "source": source, "duration_s": 0.01, "evidence": {}})
    return {"format": results.FORMAT, "ssot": "ssot", "started": "2026-02-10T14:38:00+00:00",
            "finished": "2026-02-10T14:38:02+00:00", "duration_s": duration,
            "relaxations": ["TLS certificates NOT verified"],
            "hosts": [f"h{i}" for i in range(hosts)],
            "families": ["mounts", *(f"f{i}" for i in range(1, families))],
            "unreachable": {"host:vm209": "ssh: connection refused"},
            "remote_commands": [], "counts": results.count(tests), "tests": tests,
            "exit_code": results.exit_code(results.count(tests))}


def test_headline_reads_as_the_issue_shows_it() -> None:
    assert terminal.headline(fake({"pass": 187})) == \
        "ops verify: 187/187 PASS (11 families, 3 hosts, 2.1 s)"
    assert terminal.headline(fake({"pass": 183, "fail": 3, "unreachable": 1})) == \
        "ops verify: 183/187 PASS, 3 FAIL, 1 UNREACHABLE (11 families, 3 hosts, 2.1 s)"
    assert terminal.headline(fake({"pass": 1}, families=1, hosts=1, duration=0.04)) == \
        "ops verify: 1/1 PASS (1 family, 1 host, 0.0 s)"


def test_exit_codes() -> None:
    assert results.exit_code(results.count([])) == 0
    for outcomes, code in (({"pass": 3}, 0), ({"pass": 1, "skip": 1}, 0), ({"fail": 1}, 1),
                           ({"error": 1}, 1), ({"unreachable": 2}, 4),
                           ({"unreachable": 2, "fail": 1}, 1), ({"unreachable": 1, "error": 1}, 1)):
        assert fake(outcomes)["exit_code"] == code, outcomes


def test_detail_lines_group_unreachable_by_source() -> None:
    lines = terminal.detail_lines(fake({"pass": 1, "fail": 1, "unreachable": 61}))
    assert lines == ["  FAIL  mounts::test_mount[fail0]: fail 0",
                     "  vm209 UNREACHABLE: ssh: connection refused — 61 tests not run"]


def test_junit_maps_unreachable_and_error_to_error() -> None:
    res = fake({"pass": 2, "fail": 1, "unreachable": 2, "error": 1, "skip": 1})
    root = ET.fromstring(junit.junit_xml(res))
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == \
        ("7", "1", "3", "1")
    errors = [e.get("message") for e in root.iter("error")]
    assert "UNREACHABLE vm209: unreachable 0" in errors and "error 0" in errors
    assert [p.get("value") for p in root.iter("property") if p.get("name") == "relaxation"] == \
        ["TLS certificates NOT verified"]


def test_prometheus_text_parses_and_says_failure_without_results() -> None:
    text = prometheus.prometheus_text(fake({"pass": 5, "fail": 1}), now=1.7e9, code=1)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("opsverify_gates", (("family", "mounts"), ("outcome", "fail")))] == 1
    assert samples[("opsverify_gates", (("family", "mounts"), ("outcome", "pass")))] == 5
    assert samples[("opsverify_last_run_success", ())] == 0
    assert samples[("opsverify_last_run_timestamp_seconds", ())] == 1.7e9
    bare = prometheus.prometheus_text(None, now=1.7e9, code=2)
    names = {s.name for f in text_string_to_metric_families(bare) for s in f.samples}
    assert names == {"opsverify_last_run_timestamp_seconds", "opsverify_last_run_duration_seconds",
                     "opsverify_last_run_success", "opsverify_last_run_exit_code"}


def test_skip_reason_in_every_output() -> None:
    """A planned item (SKIP) says why in the terminal, JUnit and the Prometheus textfile."""
    res = fake({"pass": 1, "skip": 1})
    res["tests"][1]["message"] = 'planned (P8): Configure Loki log collection: "not deployed"'
    assert terminal.detail_lines(res) == [
        ('  SKIP  mounts::test_mount[skip0]: planned (P8): Configure Loki log collection: '
        '"not deployed"')]
    root = ET.fromstring(junit.junit_xml(res))
    assert [e.get("message") for e in root.iter("skipped")] == [res["tests"][1]["message"]]
    text = prometheus.prometheus_text(res, now=1.7e9, code=0)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("opsverify_skipped", (("family", "mounts"), (
        "reason", 'planned (P8): Configure Loki log collection: "not deployed"'),
        ("test", "test_mount[skip0]")))] == 1


def _hammer(path: str, body: str) -> None:
    for _ in range(200):
        files.write_atomic(Path(path), body)


def test_atomic_writes_never_show_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "opsverify.prom"
    bodies = ["a" * 200_000 + "\n", "b" * 300_000 + "\n"]
    files.write_atomic(path, bodies[0])
    writers = [multiprocessing.Process(target=_hammer, args=(str(path), b)) for b in bodies]
    for w in writers:
        w.start()
    seen = 0
    while any(w.is_alive() for w in writers):
        assert path.read_text() in bodies
        seen += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert seen > 0 and os.listdir(tmp_path) == ["opsverify.prom"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o640 & ~umask  # reports hold evidence (issue 11)


def test_pytest_argv_maps_every_flag(tmp_path: Path) -> None:
    args = argparse.Namespace(
        family=["mounts", "mounts", "containers"], host=["vm209", "vm210"], keyword="radarr",
        ssot=tmp_path / "ssot", facts=tmp_path / "f", save_facts=tmp_path / "s", timeout=3.0,
        parallel=2, html=tmp_path / "r.html", json=tmp_path / "r.json", quiet=0, verbose=1)
    argv = verify.pytest_argv(args)
    assert argv[:2] == [str(verify.GATES / "test_mounts.py"),
                        str(verify.GATES / "test_containers.py")]
    pairs = dict(itertools.pairwise(argv))
    assert pairs["-k"] == "radarr"
    assert [v for k, v in itertools.pairwise(argv) if k == "--opsverify-host"] == ["vm209", "vm210"]
    assert pairs["--ssot"] == str(tmp_path / "ssot") and pairs["--facts"] == str(tmp_path / "f")
    assert pairs["--save-facts"] == str(tmp_path / "s") and pairs["--timeout"] == "3.0"
    assert pairs["--opsverify-parallel"] == "2"
    assert pairs["--opsverify-html"] == str(tmp_path / "r.html")
    assert pairs["--opsverify-json"] == str(tmp_path / "r.json")
    assert "-v" in argv
    assert "--continue-on-collection-errors" in argv
    assert "-n" not in argv  # never xdist: on two cores it makes a fast run slower
