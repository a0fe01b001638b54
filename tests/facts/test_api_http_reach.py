"""Probes: an XML Subsonic answer is read; a probe with no path is UNREACHABLE, not drift.

Issue 10 item 10: Navidrome answering XML (f=json ignored) read as "not JSON".
Issue 9 item 5: with no route to the hosts, `FAIL services::test_probe[...]: no answer: ...
Network is unreachable` while every other gate of the host was UNREACHABLE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import samples
from api_servers import Answer, Seen, scripted, silent_listener
from hypothesis import given
from hypothesis import strategies as st

from opsverify.facts import api_http, reach, xmlbody
from opsverify.facts.api_client import Api, make_client
from opsverify.families import routes, services
from opsverify.settings import Settings
from opsverify.ssot import Ssot, load
from opsverify.verdict import Unreachable

ROOT = Path(__file__).resolve().parents[2]
XML = samples.raw("navidrome_ping_snapshot.xml")


@pytest.fixture(scope="module")
def ssot() -> Ssot:
    return load()


def _navidrome(ssot: Ssot) -> Any:
    return next(p for p in ssot.probes if p.name == "navidrome")


def _ask(ssot: Ssot, probe: Any, url: str) -> dict[str, Any]:
    """One probe against `url` (a 127.0.0.1 server) instead of the SSOT's address."""
    local = type(probe)(**{**probe.__dict__, "url": url + probe.path})
    settings = Settings(timeout=2)
    values = {n: _done("canary-value-1234") for n in api_http.secret_names(local)}
    with make_client(settings) as client:
        return api_http.probe(Api("http", client, settings), local, values)


class _done:
    """A finished Future holding a secret value."""

    def __init__(self, value: str):
        self.value = value

    def result(self) -> str:
        return self.value


def test_navidrome_answering_xml_is_read(ssot: Ssot) -> None:
    def script(seen: Seen) -> Answer:
        return Answer(200, XML, {"Content-Type": "application/xml"})

    with scripted(script) as server:
        facts = _ask(ssot, _navidrome(ssot), server.url)
    assert facts["error"] is None
    assert facts["json"] == {"subsonic-response.status": "ok"}
    assert services.check(_navidrome(ssot), {"probes": {"navidrome": facts}}).problems == []


def test_a_failed_xml_answer_fails_the_gate(ssot: Ssot) -> None:
    failed = XML.replace(b'status="ok"', b'status="failed"').replace(
        b"</subsonic-response>",
        b'<error code="40" message="Wrong username or password"/></subsonic-response>')
    assert failed.count(b"failed") == 1 and b"<error" in failed

    def script(seen: Seen) -> Answer:
        return Answer(200, failed, {"Content-Type": "application/xml"})

    with scripted(script) as server:
        facts = _ask(ssot, _navidrome(ssot), server.url)
    check = services.check(_navidrome(ssot), {"probes": {"navidrome": facts}})
    assert check.problems == ["json subsonic-response.status: expected ok, got failed"]


def test_xml_as_its_json_form() -> None:
    doc = xmlbody.parse(XML)
    assert doc == {"subsonic-response": {"status": "ok", "version": "1.16.1",
                                         "type": "navidrome", "serverVersion": "v0.55.0",
                                         "openSubsonic": "true"}}
    inner = json.loads(samples.raw("navidrome_ping_snapshot_inner.json"))
    assert set(doc["subsonic-response"]) == set(inner)  # the same keys as the JSON snapshot
    nested = xmlbody.parse(b"<a x='1'><b>t</b><b>u</b><c/></a>")
    assert nested == {"a": {"x": "1", "b": [{"value": "t"}, {"value": "u"}], "c": {}}}


@pytest.mark.parametrize("body", [b"", b"Healthy", b"<html", b"{}", b"<a></b>",
                                  b'<!DOCTYPE x [<!ENTITY e "x">]><a>&e;</a>'])
def test_not_xml_is_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        xmlbody.parse(body)


@given(st.binary(max_size=200) | st.sampled_from([XML[:n] for n in range(len(XML))]))
def test_xml_parser_raises_only_value_error(body: bytes) -> None:
    try:
        xmlbody.parse(body)
    except ValueError:
        pass


# --- how far a failed probe got -----------------------------------------------------------------


def test_refused_is_no_connection_and_left_to_the_gate(ssot: Ssot) -> None:
    with silent_listener() as closed:
        pass  # nothing listens there any more: the kernel refuses
    jellyfin = next(p for p in ssot.probes if p.name == "jellyfin")
    facts = _ask(ssot, jellyfin, closed)
    assert (facts["connected"], facts["unreachable"]) == (False, None)
    assert "connection refused" in facts["error"]


def test_a_hung_service_was_connected(ssot: Ssot) -> None:
    jellyfin = next(p for p in ssot.probes if p.name == "jellyfin")
    with silent_listener() as hung:
        facts = _ask(ssot, jellyfin, hung)
    assert (facts["connected"], facts["unreachable"]) == (True, None)
    assert "(no answer)" in facts["error"]


NO_NETWORK = """
import json
from opsverify.facts.api_client import Api, make_client
from opsverify.facts import api_http
from opsverify.settings import Settings
from opsverify.ssot import load
probe = next(p for p in load().probes if p.name == "jellyfin")
local = type(probe)(**{**probe.__dict__, "url": "http://127.0.0.1:8096" + probe.path})
with make_client(Settings(timeout=2)) as client:
    print(json.dumps(api_http.probe(Api("http", client, Settings(timeout=2)), local, {})))
"""


def test_no_network_at_all_is_unreachable(ssot: Ssot) -> None:
    """A real 'Network is unreachable': a fresh network namespace, its loopback down."""
    if os.geteuid() != 0:
        pytest.skip("unshare -n needs root")
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", NO_NETWORK], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert "Network is unreachable" in facts["error"]
    assert facts["unreachable"] == f"no path from the verifier: {facts['error']}"
    jellyfin = next(p for p in ssot.probes if p.name == "jellyfin")
    with pytest.raises(Unreachable) as info:
        services.check(jellyfin, {"probes": {"jellyfin": facts}})
    assert info.value.target == "host:vm210"
    assert "jellyfin: no path from the verifier: GET" in info.value.reason


@pytest.mark.parametrize(("reason", "path", "conn"), [
    ("GET http://x:1/: Network is unreachable", False, False),
    ("GET http://x:1/: No route to host", False, False),
    ("GET http://x:1/: [Errno -2] Name or service not known", False, False),
    ("GET http://x:1/: connection refused", True, False),
    ("GET http://x:1/: timed out after 2 s (connect)", True, False),
    ("GET http://x:1/: timed out after 2 s (no answer)", True, True),
    ("GET https://x:1/: certificate verify failed: self-signed certificate", True, True)])
def test_reasons(reason: str, path: bool, conn: bool) -> None:
    assert (not reach.no_path(reason), reach.connected(reason)) == (path, conn)


def _refused(ssot: Ssot) -> tuple[Any, dict[str, Any]]:
    jellyfin = next(p for p in ssot.probes if p.name == "jellyfin")
    got = {"url": jellyfin.url, "status": None, "error": "GET x: connection refused",
           "auth_error": None, "unreachable": None, "connected": False}
    return jellyfin, {"probes": {"jellyfin": got}}


def test_refused_while_the_host_answers_is_drift(ssot: Ssot) -> None:
    probe, facts = _refused(ssot)
    asked: list[str] = []
    check = services.check(probe, facts, host_answers=lambda: asked.append("ssh") or {})
    assert check.problems == ["no answer: GET x: connection refused"] and asked == ["ssh"]


def test_refused_while_the_host_is_silent_too_is_unreachable(ssot: Ssot) -> None:
    probe, facts = _refused(ssot)

    def silent() -> None:
        raise Unreachable("host:vm210", "ssh: connection timed out")

    with pytest.raises(Unreachable) as info:
        services.check(probe, facts, host_answers=silent)
    assert info.value.target == "host:vm210"
    assert info.value.reason == ("jellyfin: GET x: connection refused; and the host does not "
                                 "answer either: ssh: connection timed out")


def test_a_connected_failure_never_asks_the_host(ssot: Ssot) -> None:
    probe, facts = _refused(ssot)
    facts["probes"]["jellyfin"].update(connected=True, error="GET x: timed out (no answer)")
    check = services.check(probe, facts, host_answers=lambda: pytest.fail("asked"))
    assert check.problems == ["no answer: GET x: timed out (no answer)"]


def test_public_url_without_a_path_is_unreachable_unless_the_tunnel_drifted(ssot: Ssot) -> None:
    route = ssot.routes[0]
    tunnel = {"remote": True, "ingress": [{"hostname": route.hostname, "service": route.service},
                                          {"hostname": None, "service": "http_status:404"}]}
    target = f"{ssot.cloudflare['tunnel_id']}.cfargotunnel.com"
    cloudflare = {"tunnel": tunnel, "dns": [{"name": route.hostname, "type": "CNAME",
                                             "content": target, "proxied": True}]}
    http = {"routes": {route.hostname: {"status": None, "error": "Network is unreachable",
                                        "unreachable": "no path from the verifier: ..."}}}
    with pytest.raises(Unreachable, match="no path from the verifier"):
        routes.check(route, ssot.cloudflare["tunnel_id"], cloudflare, http)
    tunnel["ingress"][0]["service"] = "http://100.117.1.53:8096"
    drifted = routes.check(route, ssot.cloudflare["tunnel_id"], cloudflare, http)
    assert drifted.problems == [(f"ingress service: expected {route.service}, got "
                                "http://100.117.1.53:8096")]
