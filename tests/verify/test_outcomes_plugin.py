"""fixtures/outcomes.py on gates written to raise each kind of outcome, in a pytest of their own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from opsrun import ROOT, env

CONFTEST = """
pytest_plugins = ["fixtures.ssot", "fixtures.evidence", "fixtures.facts", "fixtures.outcomes"]
"""
GATES = '''
import pytest
from opsverify import redact
from opsverify.verdict import Drift, Unreachable

redact.register("hunter2-canary-secret")

@pytest.fixture
def down():
    raise Unreachable("host:vm209", "ssh: connection refused")

@pytest.mark.opsverify_host("vm210")
def test_pass(evidence):
    evidence.add("mount", {"options": ["ro"], "note": "hunter2-canary-secret"})

@pytest.mark.opsverify_host("vm210")
def test_drift(evidence):
    evidence.add("mount", {"options": ["rw"]})
    raise Drift("Mount vm210:/mnt/media: mode: expected ro, got rw")

def test_plain_assert():
    mode = "rw"
    assert mode == "ro", "mode differs"

@pytest.mark.opsverify_host("vm209")
def test_down_in_call():
    raise Unreachable("host:vm209", "ssh: connection refused")

@pytest.mark.opsverify_host("vm209")
def test_down_in_setup(down):
    pass

def test_api_down():
    raise Unreachable("cloudflare", "HTTP 500 from the API")

def test_bug():
    {}["restart_count"]

def test_leaky_bug():
    raise ValueError("token hunter2-canary-secret rejected")

def test_skipped():
    pytest.skip("not on this homelab")
'''
UNREACHABLE_ONLY = '''
from opsverify.verdict import Unreachable

def test_ok():
    pass

def test_down():
    raise Unreachable("prometheus", "no answer within 10 s")
'''


def session(tmp_path: Path, modules: dict[str, str], *args: str) -> tuple[int, str, Path]:
    """pytest on tmp_path/gates with the project's plugins; (exit code, output, json path)."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "gates").mkdir()
    for name, body in modules.items():
        (tmp_path / "gates" / name).write_text(textwrap.dedent(body))
    out = tmp_path / "results.json"
    environ = env(PYTHONPATH=str(ROOT))
    # As `ops verify` runs it: one broken gate module must not hide the others.
    p = subprocess.run([sys.executable, "-m", "pytest", "gates", "-p", "no:cacheprovider",
                        "--continue-on-collection-errors", "--opsverify-json", str(out), *args],
                       cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120,
                       check=False)
    return p.returncode, p.stdout + p.stderr, out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict, ET.Element]:
    tmp = tmp_path_factory.mktemp("mixed")
    code, output, out = session(tmp, {"test_demo.py": GATES, "test_broken.py": "import nope\n"},
                                "--junitxml", str(tmp / "pytest-junit.xml"), "--tb=short")
    return code, output, json.loads(out.read_text()), ET.parse(tmp / "pytest-junit.xml").getroot()


def by_name(results: dict) -> dict[str, dict]:
    return {t["name"]: t for t in results["tests"]}


def test_each_exception_gets_its_outcome_and_one_line_message(mixed: tuple) -> None:
    code, _, res, _ = mixed
    t = by_name(res)
    assert code == 1
    assert {n: v["outcome"] for n, v in t.items()} == {
        "test_broken.py": "error", "test_pass": "pass", "test_drift": "fail",
        "test_plain_assert": "fail", "test_down_in_call": "unreachable",
        "test_down_in_setup": "unreachable", "test_api_down": "unreachable",
        "test_bug": "error", "test_leaky_bug": "error", "test_skipped": "skip"}
    assert t["test_drift"]["message"] == "Mount vm210:/mnt/media: mode: expected ro, got rw"
    assert t["test_plain_assert"]["message"] == "mode differs assert 'rw' == 'ro' - ro + rw"
    assert t["test_down_in_setup"]["source"] == "host:vm209"
    assert t["test_down_in_call"]["message"] == "host:vm209: ssh: connection refused"
    assert t["test_bug"]["message"] == "KeyError: 'restart_count'"
    assert t["test_skipped"]["message"] == "not on this homelab"
    assert t["test_broken.py"]["message"] == "ModuleNotFoundError: No module named 'nope'"
    assert t["test_drift"]["host"] == "vm210" and t["test_drift"]["family"] == "demo"
    assert t["test_drift"]["evidence"] == {"mount": {"options": ["rw"]}}
    assert res["counts"] == {"pass": 1, "waived": 0, "fail": 2, "unreachable": 3, "error": 3,
                             "skip": 1}
    assert res["unreachable"] == {"cloudflare": "HTTP 500 from the API",
                                  "host:vm209": "ssh: connection refused"}


def test_terminal_ends_with_the_summary_and_unreachable_once_per_source(mixed: tuple) -> None:
    _, output, _, _ = mixed
    lines = output.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("ops verify: "))
    assert lines[start] == ("ops verify: 1/10 PASS, 2 FAIL, 3 UNREACHABLE, 3 ERROR, 1 SKIP "
                            "(2 families, 2 hosts, " + lines[start].split("hosts, ")[1])
    tail = lines[start + 1:]
    assert tail[:8] == [
        "  ERROR broken::test_broken.py: ModuleNotFoundError: No module named 'nope'",
        "  FAIL  demo::test_drift: Mount vm210:/mnt/media: mode: expected ro, got rw",
        "  FAIL  demo::test_plain_assert: mode differs assert 'rw' == 'ro' - ro + rw",
        "  ERROR demo::test_bug: KeyError: 'restart_count'",
        "  ERROR demo::test_leaky_bug: ValueError: token ******** rejected",
        "  SKIP  demo::test_skipped: not on this homelab",  # a SKIP says why, never absent
        "  cloudflare UNREACHABLE: HTTP 500 from the API — 1 test not run",
        "  vm209 UNREACHABLE: ssh: connection refused — 2 tests not run"]
    # A drift or an unreachable host reads as one line, never as a traceback.
    assert "raise Drift" not in output and "raise Unreachable" not in output
    assert "FAIL Mount vm210:/mnt/media: mode: expected ro, got rw" in output


def test_registered_secret_never_reaches_any_output(mixed: tuple, tmp_path: Path) -> None:
    _, output, res, _ = mixed
    assert "hunter2-canary-secret" not in output + json.dumps(res)
    assert by_name(res)["test_leaky_bug"]["message"] == "ValueError: token ******** rejected"


def test_pytest_junit_still_says_failed_for_every_non_pass(mixed: tuple) -> None:
    _, _, _, junit = mixed
    kinds = {c.get("name"): next((x.tag for x in c), "passed") for c in junit.iter("testcase")}
    assert kinds["test_pass"] == "passed" and kinds["test_skipped"] == "skipped"
    assert kinds["test_drift"] == "failure" and kinds["test_down_in_setup"] == "error"


def test_exit_status_4_when_only_unreachable(tmp_path: Path) -> None:
    code, output, out = session(tmp_path, {"test_prom.py": UNREACHABLE_ONLY})
    assert code == 4, output
    assert json.loads(out.read_text())["exit_code"] == 4
    assert "  prometheus UNREACHABLE: no answer within 10 s — 1 test not run" in output


def test_exit_status_0_when_all_pass(tmp_path: Path) -> None:
    code, output, _out = session(tmp_path, {"test_ok.py": "def test_ok():\n    pass\n"})
    assert code == 0, output
    assert "ops verify: 1/1 PASS (1 family, 0 hosts, " in output


def test_project_tests_outside_gates_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "tests" / "gates").mkdir(parents=True)
    (tmp_path / "tests" / "gates" / "test_x.py").write_text("def test_x():\n    assert 0\n")
    p = subprocess.run([sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider"],
                       cwd=tmp_path, env=env(PYTHONPATH=str(ROOT)), capture_output=True,
                       text=True, timeout=120, check=False)
    assert p.returncode == 1 and "ops verify:" not in p.stdout


def test_parallel_prefetch_hands_n_to_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # the store keeps to it: tests/scale/test_store_at_once.py
    import fixtures.facts
    from fixtures import outcomes

    asked: list[tuple[list[str], int | None]] = []

    class Store:
        def prefetch(self, sources: list[str], at_once: int | None = None) -> None:
            asked.append((sources, at_once))

    monkeypatch.setattr(fixtures.facts, "store_of", lambda config: Store())
    monkeypatch.setattr(fixtures.facts, "sources_for", lambda item: [f"host:{item}", "http"])
    outcomes.prefetch_limited(object(), ["h1", "h2"], 2)  # type: ignore[arg-type]
    assert asked == [(["host:h1", "http", "host:h2"], 2)]


def test_no_gate_output_when_nothing_collected(tmp_path: Path) -> None:
    code, output, out = session(tmp_path, {"test_empty.py": "X = 1\n"})
    assert code == 5 and not out.exists() and "ops verify:" not in output
