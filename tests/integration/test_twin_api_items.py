"""The API-side items of issues 9 and 10 on the real twin: real stand-in processes, real sshd
and dockerd, the real `ops verify`.

- issue 10.1: a privilege-separated Proxmox token without permission: decom UNREACHABLE with
  the reason, never "VM 201 destroyed";
- issue 10.4: keys reached through an Infisical secret import pass, the probe that needs them
  runs; a key missing at the import's source fails;
- issue 9.5: a probe the verifier has no path to is UNREACHABLE; a refused connection while the
  host answers is FAIL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest
from twinrun import OPS, failing, ops


def _test(results: dict[str, Any], family: str, part: str) -> dict[str, Any]:
    found = [t for t in results["tests"] if t["family"] == family and part in t["id"]]
    assert len(found) == 1, [t["id"] for t in results["tests"] if t["family"] == family]
    return found[0]


@pytest.fixture
def drifted(twin: dict[str, Any]):
    """Apply one drift scenario; the twin is reset afterwards whatever happens."""
    applied: list[str] = []

    def apply(name: str) -> None:
        applied.append(name)
        ops("lab", "drift", name, timeout=180)

    yield apply
    if applied:
        ops("lab", "reset", timeout=300)


def test_privilege_separated_token_is_unreachable_not_absence(verify, drifted) -> None:
    code, clean, _ = verify("--family", "decom")
    assert code == 0 and failing(clean) == {}
    drifted("proxmox-privsep-token")
    code, results, text = verify("--family", "decom")
    gate = _test(results, "decom", "vm201")
    assert gate["outcome"] == "unreachable", gate
    assert "token cannot audit /vms (privilege-separated token without PVEAuditor?)" \
        in gate["message"]
    assert "Permission check failed (/vms/201, VM.Audit)" in gate["message"]
    assert code == 4, text


def test_keys_through_an_import_pass_and_the_probe_runs(verify, drifted) -> None:
    drifted("infisical-keys-imported")
    code, results, text = verify("--family", "secrets", "--family", "services")
    assert failing(results) == {}, text
    path = _test(results, "secrets", "infisical_path[/spine/vm-infra/media-stack/streaming")
    seen = path["evidence"]["infisical"]
    download = "prod:/spine/vm-infra/media-stack/download"
    assert seen["imported_from"]["NAVIDROME_PASSWORD"] == [download]
    navidrome = _test(results, "services", "navidrome")
    assert navidrome["outcome"] == "pass"
    assert navidrome["evidence"]["probe"]["answer"]["status"] == 200  # it ran, with the keys
    assert code == 0


def test_a_key_missing_at_the_imports_source_fails(verify, drifted) -> None:
    drifted("infisical-import-key-missing")
    code, results, _ = verify("--family", "secrets", "--family", "services")
    assert set(failing(results)) == {"secrets"}
    gate = _test(results, "secrets", "infisical_path[/spine/vm-infra/media-stack/streaming")
    assert gate["outcome"] == "fail" and "missing keys: LASTFM_SECRET" in gate["message"]
    assert code == 1


def test_no_route_from_the_verifier_is_unreachable_not_drift(twin: dict[str, Any],
                                                             tmp_path: Path) -> None:
    """The issue's run: no route to the hosts (a network namespace with nothing up)."""
    out = tmp_path / "results.json"
    proc = ops("lab", "exec", "--", "unshare", "-n", *OPS, "verify", "--json", str(out),
               "--family", "services", "--family", "reachability", "--timeout", "3",
               check=False, timeout=300)
    results = json.loads(out.read_text())
    outcomes = {t["id"]: t["outcome"] for t in results["tests"]}
    assert set(outcomes.values()) == {"unreachable"}, outcomes
    jellyfin = _test(results, "services", "jellyfin")
    assert "no path from the verifier" in jellyfin["message"]
    assert "Network is unreachable" in jellyfin["message"]
    assert proc.returncode == 4


@pytest.fixture
def reset_after(twin: dict[str, Any]):
    yield
    ops("lab", "reset", timeout=300)


def test_refused_while_the_host_answers_is_drift(twin: dict[str, Any], verify,
                                                 reset_after: None) -> None:
    engine = docker.DockerClient(base_url=f"unix://{twin['hosts']['vm210']['docker_socket']}",
                                 version="1.41")
    engine.containers.get("jellyfin").stop(timeout=3)  # nothing listens on its port now
    code, results, _ = verify("--family", "services", "--family", "reachability")
    jellyfin = _test(results, "services", "jellyfin")
    assert jellyfin["outcome"] == "fail", jellyfin
    assert "no answer:" in jellyfin["message"] and "connection refused" in jellyfin["message"]
    assert _test(results, "reachability", "vm210")["outcome"] == "pass"
    assert code == 1
