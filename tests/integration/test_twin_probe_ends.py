"""Probes from both ends on the twin (issue 14): a service bound to 127.0.0.1 only reads "path
broken", a stopped one "service down"; the host's own GETs are in its facts."""

from __future__ import annotations

import json

import pytest
from twinrun import ops


@pytest.fixture
def drifted(twin):
    def apply(name: str) -> None:
        ops("lab", "drift", name, timeout=180)
    yield apply
    ops("lab", "reset", timeout=300)


def test_clean_twin_host_facts_hold_the_host_end(verify, tmp_path) -> None:
    code, _results, text = verify("--family", "services", "--family", "containers",
                                 "--save-facts", str(tmp_path / "facts"))
    assert code == 0, text
    vm209 = json.loads((tmp_path / "facts" / "host-vm209.json").read_text())
    assert {n: [t["status"] for t in ts] for n, ts in vm209["probes"].items()} == {
        "radarr": [401], "sonarr": [401], "lidarr": [401], "prowlarr": [401], "sabnzbd": [403]}
    assert all(ts[0]["url"].startswith("http://100.107.36.76:") for ts in vm209["probes"].values())


def test_bound_to_loopback_reads_path_broken(verify, drifted) -> None:
    drifted("service-loopback-vm209")
    code, results, text = verify("--family", "services")
    assert code == 1, text
    failed = [t for t in results["tests"] if t["outcome"] == "fail"]
    assert [t["family"] for t in failed] == ["services"], text
    [line] = [ln for ln in text.splitlines() if ln.lstrip().startswith("FAIL")]
    assert "lidarr" in line and "path broken: no answer:" in line, line
    assert "127.0.0.1:8686: 401" in line and "bound to 127.0.0.1 only" in line, line


def test_stopped_reads_service_down(verify, drifted) -> None:
    drifted("service-stopped-vm209")
    code, _results, text = verify("--family", "services")
    assert code == 1, text
    lines = [ln for ln in text.splitlines() if ln.lstrip().startswith("FAIL")]
    assert len(lines) == 1 and "lidarr" in lines[0], text
    assert "service down: no answer:" in lines[0], lines[0]
    assert "127.0.0.1:8686: connection refused" in lines[0], lines[0]
