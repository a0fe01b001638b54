"""Waivers on the twin: a drift accepted by an exact-finding waiver is WAIVED and the run
passes; a different drift on the same gate still FAILS; an expired waiver FAILS saying so; a
waiver of a passing gate is reported stale."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from twinrun import REPO, ops

GATE = "mounts::test_mount[vm210:/mnt/media]"
TODAY = datetime.now(UTC).date()


def ssot_with(tmp_path: Path, *waivers: dict[str, Any]) -> Path:
    """A copy of the shipped SSOT with these waivers."""
    d = tmp_path / "ssot"
    shutil.copytree(REPO / "ssot", d)
    (d / "waivers.yaml").write_text(yaml.safe_dump({"max_days": 30, "waivers": list(waivers)}))
    return d


def waiver(days_from: int = -1, days_to: int = 10, **more: Any) -> dict[str, Any]:
    return {"gate": GATE, "reason": "remount pending the NAS firmware update", "owner": "ronny",
            "since": str(TODAY + timedelta(days=days_from)),
            "expires": str(TODAY + timedelta(days=days_to)), **more}


def mount_test(res: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in res["tests"] if f"{t['family']}::{t['name']}" == GATE)


def test_exact_finding_waiver_waives_that_drift_and_only_that(
        tmp_path: Path, verify: Any, drifted: Any) -> None:
    exact = ssot_with(tmp_path, waiver(finding={"attribute": "mode", "actual": "rw"}))
    drifted("media-rw-vm210")
    xml = tmp_path / "r.xml"
    code, res, out = verify("--ssot", str(exact), "--family", "mounts", "--junit-xml", str(xml),
                            "--prom", str(tmp_path / "r.prom"))
    t = mount_test(res)
    assert code == 0, out
    assert t["outcome"] == "waived" and t["waiver"]["owner"] == "ronny"
    assert t["waiver"]["days_left"] > 9
    assert "1 WAIVED" in out and f"  WAIVED {GATE}: Mount vm210:/mnt/media: mode: expected ro, " \
        "got rw — waived by ronny until" in out
    assert res["counts"]["waived"] == 1 and res["counts"]["fail"] == 0
    skipped = [c for c in ET.parse(xml).getroot().iter("testcase") if c.find("skipped") is not None
               and c.find("skipped").get("type") == "Waived"]
    assert len(skipped) == 1 and "remount pending" in skipped[0].find("skipped").get("message")
    prom = (tmp_path / "r.prom").read_text()
    assert 'opsverify_gates{family="mounts",outcome="waived"} 1' in prom
    assert 'opsverify_waived_days_left{family="mounts",test="test_mount[vm210:/mnt/media]",' \
        'owner="ronny"}' in prom

    # A second drift on the same gate (its fstab line broken) is not what was accepted.
    drifted("fstab-broken-line-vm210")
    code, res, out = verify("--ssot", str(exact), "--family", "mounts")
    t = mount_test(res)
    assert code == 1 and t["outcome"] == "fail", out
    assert {f["attribute"] for f in t["findings"]} >= {"mode"} and len(t["findings"]) > 1


def test_expired_waiver_fails_and_says_so(tmp_path: Path, verify: Any, drifted: Any) -> None:
    expired = ssot_with(tmp_path, waiver(days_from=-20, days_to=-2))
    drifted("media-rw-vm210")
    code, res, out = verify("--ssot", str(expired), "--family", "mounts")
    t = mount_test(res)
    when = (TODAY - timedelta(days=2)).isoformat()
    assert code == 1 and t["outcome"] == "fail", out
    assert f"(waiver expired on {when}, owner ronny, " in t["message"]


def test_waiver_of_a_passing_gate_is_stale(tmp_path: Path, verify: Any, twin: Any) -> None:
    stale = ssot_with(tmp_path, waiver(), waiver(gate="routes::test_route[nothing.example]"))
    code, res, out = verify("--ssot", str(stale), "--family", "mounts")
    assert code == 0 and res["counts"]["waived"] == 0
    assert [w["gate"] for w in res["stale_waivers"]] == [GATE]
    assert f"  stale waiver {stale / 'waivers.yaml'}:" in out and "every gate it matches passed" in out
    check = ops("ssot", "check", "--ssot", str(stale))
    assert check.returncode == 0
    assert "stale waiver 'routes::test_route[nothing.example]' (ronny): matches no gate" \
        in check.stdout
