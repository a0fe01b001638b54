"""ssot/waivers.yaml: its schema and terms, and how a waiver meets a gate's findings."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsverify.ssot import load, waivers
from opsverify.verdict import FAIL, PASS, WAIVED

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def ssot_with(tmp_path: Path, doc: dict[str, Any]):
    d = tmp_path / "ssot"
    shutil.copytree(REPO / "ssot", d)
    (d / "waivers.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return d


def w(**kw: Any) -> dict[str, Any]:
    return {"gate": "mounts::test_mount[vm210:/mnt/media]", "reason": "NAS update pending",
            "owner": "ronny", "since": "2026-12-01", "expires": "2026-12-10", **kw}


def fail(*findings: dict[str, Any], name: str = "test_mount[vm210:/mnt/media]") -> dict:
    return {"family": "mounts", "name": name, "outcome": FAIL, "message": "Mount ...",
            "findings": list(findings)}


def declared(tmp_path: Path, *items: dict[str, Any]) -> list[waivers.Waiver]:
    return waivers.declared(load(ssot_with(tmp_path, {"waivers": list(items)})))


def test_the_shipped_ssot_has_a_valid_empty_waivers_file() -> None:
    s = load()
    assert waivers.declared(s) == [] and waivers.max_days(s) == 30


def test_ids_match_whole_with_star_and_question_mark_only(tmp_path: Path) -> None:
    exact, star = declared(tmp_path, w(), w(gate="mounts::test_mount[vm2?0:*]"))
    assert exact.matches_id("mounts::test_mount[vm210:/mnt/media]")
    assert not exact.matches_id("mounts::test_mount[vm210:/mnt/media2]")
    assert not exact.matches_id("mounts::test_mount[v]")  # brackets are not a character class
    assert star.matches_id("mounts::test_mount[vm210:/mnt/docker]")
    assert not star.matches_id("mounts::test_mount[vm209x:/mnt/docker]")


def test_an_exact_finding_waiver_covers_that_finding_only(tmp_path: Path) -> None:
    (exact,) = declared(tmp_path, w(finding={"attribute": "mode", "actual": "rw"}))
    rw, other = {"attribute": "mode", "actual": "rw"}, {"attribute": "fstype", "actual": "nfs"}
    tests = [fail(rw), fail(rw, other), fail({"attribute": "mode", "actual": "ro"})]
    stale = waivers.apply(tests, [exact], NOW)
    assert [t["outcome"] for t in tests] == [WAIVED, FAIL, FAIL]
    assert tests[0]["waiver"]["owner"] == "ronny" and tests[0]["waiver"]["days_left"] == 8.5
    assert stale == []


def test_an_expired_waiver_covers_nothing_and_says_so(tmp_path: Path) -> None:
    (old,) = declared(tmp_path, w(since="2026-11-01", expires="2026-11-20"))
    tests = [fail({"attribute": "mode", "actual": "rw"})]
    waivers.apply(tests, [old], NOW)
    assert tests[0]["outcome"] == FAIL
    assert tests[0]["message"].endswith(f"(waiver expired on 2026-11-20, owner ronny, {old.where})")


def test_a_waiver_whose_gates_pass_is_stale_one_for_unselected_gates_is_not(
        tmp_path: Path) -> None:
    mine, elsewhere = declared(tmp_path, w(), w(gate="routes::*"))
    tests = [{**fail(), "outcome": PASS, "findings": []}]
    stale = waivers.apply(tests, [mine, elsewhere], NOW)
    assert [s["gate"] for s in stale] == [mine.gate] and tests[0]["outcome"] == PASS


@pytest.mark.parametrize(("item", "message"), [
    (w(expires="2027-01-05T00:00:00Z"), "runs 35 days, longer than max_days 30"),
    (w(since="2026-12-10", expires="2026-12-01"), "expires before it starts"),
])
def test_terms_are_refused_with_file_and_line(tmp_path: Path, item: dict, message: str) -> None:
    from opsverify.ssot.integrity import run_rule

    d = ssot_with(tmp_path, {"max_days": 30, "waivers": [w(), item]})
    (problem,) = run_rule(load(d, strict=False), "waivers")
    assert problem.file.endswith("waivers.yaml") and problem.line > 1
    assert problem.path == "$.waivers[1]" and message in problem.message


@pytest.mark.parametrize("bad", [
    {"waivers": [{**w(), "owner": ""}]},
    {"waivers": [{**w(), "expires": "next week"}]},
    {"waivers": [{**w(), "gate": "rm -rf /"}]},
    {"waivers": [{**w(), "color": "red"}]},
    {"max_days": 0, "waivers": []},
])
def test_the_schema_refuses_malformed_waivers(tmp_path: Path, bad: dict) -> None:
    from opsverify.ssot import SsotInvalid

    with pytest.raises(SsotInvalid) as exc:
        load(ssot_with(tmp_path, bad))
    assert all("waivers.yaml" in p.file for p in exc.value.problems)
