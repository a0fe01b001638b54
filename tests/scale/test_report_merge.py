"""`ops report merge` and `ops report shards`: sharded runs make one report, hiding nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from opsverify import results
from opsverify.commands import report
from opsverify.outputs import files
from opsverify.ssot import load

REPO = Path(__file__).resolve().parents[2]


def gate(id_: str, outcome: str = "pass", host: str = "vm209", family: str = "mounts",
         source: str = "", message: str = "") -> dict[str, Any]:
    return {"id": f"gates/test_{family}.py::test_x[{id_}]", "name": f"test_x[{id_}]",
            "param": id_, "family": family, "host": host, "outcome": outcome,
            "message": message, "source": source, "duration_s": 0.01,
            "evidence": {"seen": id_}}


def run_doc(tests: list[dict], started: str = "2026-02-08T10:00:00+00:00",
            unreachable: dict | None = None, duration: float = 2.0,
            finished: str = "2026-02-08T10:00:02+00:00") -> dict[str, Any]:
    counts = results.count(tests)
    return {"format": results.FORMAT, "ssot": "/srv/ssot", "started": started,
            "finished": finished, "duration_s": duration,
            "exit_code": results.exit_code(counts), "relaxations": ["fstype tmpfs accepted"],
            "hosts": sorted({t["host"] for t in tests if t["host"]}),
            "families": sorted({t["family"] for t in tests}),
            "unreachable": unreachable or {}, "remote_commands": [{"host": "vm209"}],
            "counts": counts, "tests": tests}


def ops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opsverify.cli", *args], cwd=REPO,
                          capture_output=True, text=True, check=False)


def test_merge_joins_tests_counts_and_unreachable_sources() -> None:
    a = run_doc([gate("a"), gate("b", "fail", message="mode: expected ro, got rw")])
    b = run_doc([gate("c", "unreachable", host="vm210", source="host:vm210")],
                started="2026-02-08T10:00:01+00:00", unreachable={"host:vm210": "ssh: refused"},
                duration=3.5, finished="2026-02-08T10:00:04+00:00")
    m = report.merge([a, b])
    assert [t["param"] for t in m["tests"]] == ["a", "b", "c"]
    assert m["counts"] == {"pass": 1, "waived": 0, "fail": 1, "unreachable": 1, "error": 0,
                           "skip": 0}
    assert m["exit_code"] == results.EXIT_FAIL
    assert m["unreachable"] == {"host:vm210": "ssh: refused"}
    assert m["hosts"] == ["vm209", "vm210"] and m["relaxations"] == ["fstype tmpfs accepted"]
    assert m["started"] == a["started"] and m["finished"] == b["finished"]
    assert m["duration_s"] == 3.5 and len(m["shards"]) == 2 and len(m["remote_commands"]) == 2


@pytest.mark.parametrize("first,second,kept", [("pass", "fail", "fail"), ("fail", "pass", "fail"),
                                                ("skip", "unreachable", "unreachable"),
                                                ("error", "unreachable", "error")])
def test_a_gate_in_two_shards_keeps_its_worse_outcome(first: str, second: str, kept: str) -> None:
    m = report.merge([run_doc([gate("x", first)]), run_doc([gate("x", second)])])
    assert [t["outcome"] for t in m["tests"]] == [kept]


def test_cli_writes_every_report_and_exits_with_the_whole_runs_code(tmp_path: Path) -> None:
    paths = []
    for i, doc in enumerate([run_doc([gate("a")]),
                             run_doc([gate("c", "unreachable", host="vm210",
                                           source="host:vm210")],
                                     unreachable={"host:vm210": "ssh: refused"})]):
        paths.append(tmp_path / f"s{i}.json")
        files.write_atomic(paths[-1], results.dump(doc))
    out = {k: tmp_path / f"m.{k}" for k in ("json", "xml", "prom", "html")}
    p = ops("report", "merge", *map(str, paths), "--json", str(out["json"]), "--junit-xml",
            str(out["xml"]), "--prom", str(out["prom"]), "--html", str(out["html"]))
    assert p.returncode == results.EXIT_UNREACHABLE, p.stderr
    assert "1/2 PASS, 1 UNREACHABLE" in p.stdout and "vm210 UNREACHABLE: ssh: refused" in p.stdout
    merged = results.load(out["json"])
    assert len(merged["tests"]) == 2
    suites = ET.parse(out["xml"]).getroot()
    assert suites.get("tests") == "2" and suites.get("errors") == "1"
    assert "opsverify_last_run_exit_code 4" in out["prom"].read_text()
    page = out["html"].read_text()
    # the same page as one run's (opsverify/outputs/html.py), with the runs it merged
    assert "<script src" not in page and "<link" not in page and "Runs merged" in page
    assert "test_x[c]" in page and "ssh: refused" in page


def test_cli_refuses_what_is_not_a_results_file(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"tests": []}))
    for arg in (str(tmp_path / "x.json"), str(tmp_path / "missing.json")):
        p = ops("report", "merge", arg)
        assert p.returncode == results.EXIT_USAGE and "ops report:" in p.stderr
        assert "Traceback" not in p.stderr


def test_shards_cover_every_host_once_and_the_hostless_gates() -> None:
    hosts = sorted(load().hosts)
    plan = report.shards(hosts, 2)
    assert plan[-1] == ["-k", report.NO_HOST] and len(plan) == 3
    dealt = [a for argv in plan[:-1] for a in argv if a != "--host"]
    assert sorted(dealt) == hosts
    assert report.shards(["a"], 5) == [["--host", "a"], ["-k", report.NO_HOST]]
    p = ops("report", "shards", "2", "--json")
    assert p.returncode == 0 and json.loads(p.stdout) == plan
    p = ops("report", "shards", "2", "--index", "2")
    assert p.returncode == 0 and p.stdout == "-k 'not opsverify_host'\n"
    p = ops("report", "shards", "2", "--index", "3")
    assert p.returncode == 2 and "0..2" in p.stderr
