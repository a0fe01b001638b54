"""HTTP facts: service probes and public routes, concurrently, against real local servers.

Each SSOT service origin (http://100.107.36.76:7878, ...) is mapped to one scripted server on
127.0.0.1 that answers as the application does, keyed by the port the probe asked for; the
public hostnames go to an HTTPS "edge" with a certificate from the run's CA.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_servers import (
    Answer,
    Loopback,
    Pki,
    Seen,
    json_values,
    sample,
    sample_bytes,
    scripted,
    silent_listener,
    standin,
)
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from opsverify.facts import api_http
from opsverify.facts.api_client import make_client, tls_verify
from opsverify.lab.standins.infisical import InfisicalApi, seed
from opsverify.settings import Settings
from opsverify.ssot import Ssot, load

KEYS = {"RADARR_API_KEY": "canary-radarr-51c0d2", "SONARR_API_KEY": "canary-sonarr-8e1f0a",
        "LIDARR_API_KEY": "canary-lidarr-2b7c94", "PROWLARR_API_KEY": "canary-prowl-6d3e18",
        "SABNZBD_API_KEY": "canary-sab-9a4f27", "NAVIDROME_USER": "canary-navi-user",
        "NAVIDROME_PASSWORD": "canary-navi-pw-73b1"}
APPS = {7878: "Radarr", 8989: "Sonarr", 8686: "Lidarr", 9696: "Prowlarr"}
KEY_OF = {7878: "RADARR_API_KEY", 8989: "SONARR_API_KEY", 8686: "LIDARR_API_KEY",
          9696: "PROWLARR_API_KEY"}
READER = ("reader-id", "inf-reader-secret-0a9b8c")


@pytest.fixture(scope="module")
def ssot() -> Ssot:
    return load()


def app(seen: Seen) -> Answer:
    """The applications of both stacks, as each answers its status API."""
    port = int(seen.headers["host"].rsplit(":", 1)[1])
    if port in APPS:
        if seen.headers.get("x-api-key") != KEYS[KEY_OF[port]]:
            return Answer(401, {"error": "Unauthorized"})
        status = sample("radarr_api_v3_system_status_ha_fixture.json")
        return Answer(200, status | {"appName": APPS[port], "instanceName": APPS[port]})
    if port == 8080:
        if seen.query.get("apikey") != KEYS["SABNZBD_API_KEY"]:
            return Answer(200, {"status": False, "error": "API Key Incorrect"})
        return Answer(200, sample_bytes("sabnzbd_queue_with_slot_RECONSTRUCTED.json"))
    if port == 8096:
        return Answer(200, sample_bytes("jellyfin_health_body_RECONSTRUCTED.txt").strip(),
                      {"Content-Type": "text/plain"})
    if port == 4533:
        q = seen.query
        token = hashlib.md5((KEYS["NAVIDROME_PASSWORD"] + q.get("s", "")).encode()).hexdigest()
        ok = q.get("u") == KEYS["NAVIDROME_USER"] and q.get("t") == token and "p" not in q
        inner = sample("navidrome_ping_snapshot_inner.json")
        if not ok:
            inner |= {"status": "failed", "error": {"code": 40,
                                                    "message": "Wrong username or password"}}
        return Answer(200, {"subsonic-response": inner})
    if port == 5055:
        return Answer(200, {"version": "2.5.2", "commitTag": "v2.5.2", "updateAvailable": False})
    return Answer(404, b"")


def edge(seen: Seen) -> Answer:
    """Cloudflare's edge as the public routes answer through the tunnel."""
    host = seen.headers["host"]
    if host in ("requests.ronny.works", "spotisub.ronny.works"):
        status = 307 if host.startswith("requests") else 302
        return Answer(status, b"", {"Location": "/login"})
    return Answer(200, b"<html>app</html>", {"Content-Type": "text/html"})


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def servers(ssot: Ssot, ca: Pki) -> Iterator[dict[str, str]]:
    """Origin -> 127.0.0.1 URL of every probe and route of the SSOT."""
    ctx = ca.server_tls("edge", dns=tuple(r.hostname for r in ssot.routes))
    with scripted(app) as apps, scripted(edge, ctx) as front:
        routes = {_origin(p.url): apps.url for p in ssot.probes}
        routes |= {f"https://{r.hostname}:443": front.url for r in ssot.routes}
        yield routes


@pytest.fixture
def infisical(ssot: Ssot, tmp_path: Path) -> Iterator[str]:
    state = seed(project_id=ssot.infisical["project_id"],
                 secrets_by_path={sp.path: {k: KEYS.get(k, "x" * 12) for k in sp.keys}
                                  for sp in ssot.secret_paths},
                 reader_client_id=READER[0], reader_client_secret=READER[1],
                 admin_client_id="admin", admin_client_secret="admin-secret-xyz",
                 environment=ssot.infisical["environment"])
    with standin(InfisicalApi, state, tmp_path) as url:
        yield url


def _origin(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def collect(ssot: Ssot, settings: Settings, routes: dict[str, str],
            env: dict[str, str] | None = None) -> tuple[dict[str, Any], Loopback]:
    transport = Loopback(routes, verify=tls_verify(settings))
    with make_client(settings, transport=transport) as client:
        return api_http.collect(ssot, settings, client, env=env or {}), transport


def _trusting(ca: Pki, **kw: Any) -> Settings:
    return Settings(**{"timeout": 2, "ca_bundle": ca.ca, **kw})


def test_every_probe_and_route(ssot: Ssot, ca: Pki, servers: dict[str, str], infisical: str,
                               caplog: pytest.LogCaptureFixture) -> None:
    """Arr keys from the environment; SABnzbd and Navidrome secrets from Infisical."""
    caplog.set_level(logging.DEBUG)
    env = {k: v for k, v in KEYS.items() if k in KEY_OF.values()}
    settings = _trusting(ca, infisical_client_id=READER[0], infisical_client_secret=READER[1])
    facts, transport = collect(ssot, settings, servers | {
        "https://infisical.ronny.works:443": infisical}, env)
    probes, routes = facts["probes"], facts["routes"]
    assert probes["radarr"] | {"elapsed_s": 0} == {
        "url": "http://100.107.36.76:7878/api/v3/system/status", "status": 200, "error": None,
        "auth_error": None, "unreachable": None, "connected": True, "elapsed_s": 0,
        "body": None, "json": {"appName": "Radarr"}, "json_keys": {}}
    assert [probes[n]["json"] for n in ("sonarr", "lidarr", "prowlarr")] == [
        {"appName": "Sonarr"}, {"appName": "Lidarr"}, {"appName": "Prowlarr"}]
    assert probes["sabnzbd"]["url"] == "http://100.107.36.76:8080/api?mode=queue&output=json&apikey"
    assert probes["sabnzbd"]["json_keys"] == {"queue.status": True, "queue.slots": True}
    assert (probes["jellyfin"]["status"], probes["jellyfin"]["body"]) == (200, "Healthy")
    assert probes["navidrome"]["json"] == {"subsonic-response.status": "ok"}
    assert probes["navidrome"]["url"].endswith("/rest/ping.view?v=1.16.1&c=opsverify&f=json&u&t&s")
    assert probes["jellyseerr"]["json_keys"] == {"version": True}
    assert {h: (r["status"], r["location"], r["error"]) for h, r in routes.items()} == {
        "jellyfin.ronny.works": (200, None, None), "music.ronny.works": (200, None, None),
        "requests.ronny.works": (307, "/login", None),
        "spotisub.ronny.works": (302, "/login", None)}
    assert routes["music.ronny.works"]["url"] == "https://music.ronny.works/"
    # Redirects are recorded, never followed: each hostname was asked once, for "/".
    asked = [(r.headers["host"], r.url.path) for r in transport.seen
             if r.headers["host"].endswith(".ronny.works") and "infisical" not in r.headers["host"]]
    assert sorted(asked) == sorted((r.hostname, "/") for r in ssot.routes)
    everything = json.dumps(facts) + caplog.text
    for value in [*KEYS.values(), READER[1]]:
        assert value not in everything


def test_subsonic_password_is_never_sent(ssot: Ssot, servers: dict[str, str]) -> None:
    facts, transport = collect(ssot, Settings(timeout=2), servers, KEYS)
    assert facts["probes"]["navidrome"]["json"] == {"subsonic-response.status": "ok"}
    for request in transport.seen:
        assert KEYS["NAVIDROME_PASSWORD"] not in str(request.url) + str(request.headers)


def test_wrong_key_is_recorded_as_the_status(ssot: Ssot, servers: dict[str, str]) -> None:
    env = KEYS | {"RADARR_API_KEY": "wrong-key-0000", "NAVIDROME_PASSWORD": "wrong-pw-1111"}
    facts, _ = collect(ssot, Settings(timeout=2), servers, env)
    radarr, navidrome = facts["probes"]["radarr"], facts["probes"]["navidrome"]
    assert (radarr["status"], radarr["error"], radarr["json"]) == (401, None, {})
    assert navidrome["json"] == {"subsonic-response.status": "failed"}


def test_service_down_or_hanging_is_the_probes_error(ssot: Ssot, ca: Pki,
                                                     servers: dict[str, str]) -> None:
    """One service refuses, one hangs: both are drift in their probe; the rest stands."""
    with silent_listener() as closed:
        pass  # closed again: nothing listens there any more
    with silent_listener() as hung:
        routes = servers | {"http://100.107.36.76:7878": closed, "http://100.123.207.64:8096": hung}
        start = time.monotonic()
        facts, _ = collect(ssot, _trusting(ca, timeout=1), routes, KEYS)
        cost = time.monotonic() - start
    probes = facts["probes"]
    print(f"\nhttp source with one hung service: {cost:.2f} s (timeout 1 s)")
    assert "connection refused" in probes["radarr"]["error"] and probes["radarr"]["status"] is None
    assert re.search(r"timed out after (1|0\.9\d) s \(no answer\)", probes["jellyfin"]["error"])
    assert probes["jellyfin"]["auth_error"] is None
    assert all(probes[n]["status"] == 200 for n in ("sonarr", "sabnzbd", "navidrome"))
    assert all(r["error"] is None for r in facts["routes"].values())
    assert cost < 3  # concurrently: one timeout in all, not one per probe (a hang guard)


def test_secret_unavailable_is_auth_error_not_drift(ssot: Ssot, ca: Pki,
                                                    servers: dict[str, str]) -> None:
    facts, _ = collect(ssot, _trusting(ca), servers, {})
    radarr = facts["probes"]["radarr"]
    assert radarr["status"] is None and radarr["auth_error"] == radarr["error"]
    assert radarr["auth_error"] == (
        "not asked: RADARR_API_KEY is not set and Infisical could not give it: "
        "INFISICAL_TOKEN, or INFISICAL_CLIENT_ID and INFISICAL_CLIENT_SECRET, are not set")
    assert facts["probes"]["jellyfin"]["status"] == 200  # needs no secret
    assert facts["routes"]["jellyfin.ronny.works"]["status"] == 200


def test_secret_with_a_line_break_is_refused_unquoted(ssot: Ssot, servers: dict[str, str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    facts, _ = collect(ssot, Settings(timeout=2), servers,
                       KEYS | {"RADARR_API_KEY": "canary-nl-3f2e1d\n"})
    assert facts["probes"]["radarr"]["auth_error"] == (
        "not asked: RADARR_API_KEY holds a control character (a trailing newline or tab?)")
    assert "canary-nl-3f2e1d" not in json.dumps(facts) + caplog.text


def test_infisical_hanging_costs_one_timeout(ssot: Ssot, servers: dict[str, str]) -> None:
    with silent_listener() as hung:
        start = time.monotonic()
        facts, _ = collect(ssot, Settings(timeout=1, infisical_token="tok-123456"),
                           servers | {"https://infisical.ronny.works:443": hung})
        cost = time.monotonic() - start
    print(f"\nhttp source with Infisical hung: {cost:.2f} s (timeout 1 s)")
    assert re.search(r"timed out after (1|0\.9\d) s", facts["probes"]["sabnzbd"]["auth_error"])
    assert facts["probes"]["jellyseerr"]["status"] == 200
    assert cost < 3


def test_route_certificate_from_unknown_ca(ssot: Ssot, servers: dict[str, str],
                                           tmp_path: Path) -> None:
    other = Pki(tmp_path)
    for settings in (Settings(timeout=2, ca_bundle=other.ca), Settings(timeout=2)):
        facts, _ = collect(ssot, settings, servers, KEYS)
        for route in facts["routes"].values():
            assert route["status"] is None and "certificate verify failed" in route["error"]
    insecure = Settings(timeout=2, ca_bundle=other.ca, insecure_tls=True)
    facts, _ = collect(ssot, insecure, servers, KEYS)
    assert facts["routes"]["requests.ronny.works"]["status"] == 307
    assert insecure.relaxations() == ["TLS certificates NOT verified (OPSVERIFY_INSECURE_TLS=1)"]


def test_non_json_answer_to_a_json_probe(ssot: Ssot, servers: dict[str, str]) -> None:
    with scripted(lambda seen: Answer(200, b"<html>login</html>")) as html:
        facts, _ = collect(ssot, Settings(timeout=2), servers | {
            "http://100.123.207.64:5055": html.url}, KEYS)
    jellyseerr = facts["probes"]["jellyseerr"]
    assert jellyseerr["status"] == 200 and jellyseerr["json_keys"] == {"version": False}
    assert jellyseerr["error"].startswith("the response is not JSON (invalid JSON")


# --- pure helpers -----------------------------------------------------------------------------


def test_json_paths() -> None:
    doc = sample("sabnzbd_queue_with_slot_RECONSTRUCTED.json")
    assert api_http.json_path(doc, "queue.status") == ["Downloading"]
    assert api_http.json_path(doc, "queue.slots.0.cat") == ["movies"]
    assert api_http.json_path(doc, "queue.slots.*.status") == ["Downloading"]
    assert api_http.json_path(doc, "queue.nothing") == []
    assert api_http.json_path(sample("sabnzbd_queue_empty_real_v2.1.json"), "queue.slots") == [[]]


def test_body_facts_take_only_what_the_ssot_expects() -> None:
    body = json.dumps({"appName": "Radarr", "apiKey": "abc", "v": {"x": [1, 2]}}).encode()
    got = api_http.body_facts(body, {"status": 200, "json": {"appName": "Radarr", "v.x.*": 1},
                                     "json_keys": ["v.x", "nope"]})
    assert got == {"body": None, "error": None, "json": {"appName": "Radarr", "v.x.*": [1, 2]},
                   "json_keys": {"v.x": True, "nope": False}}
    assert api_http.body_facts(b"x" * 20000, {"body": "Healthy"})["body"] == "x" * 8192


JSON = json_values(("queue", "status", "slots", "a", "0"))
SEGMENT = st.sampled_from(["*", "0", "1", "²", "a", "queue", "status", ""]) | st.text(max_size=3)
PATH = st.lists(SEGMENT, min_size=1, max_size=5).map(".".join)


@hsettings(max_examples=200)
@given(JSON, PATH)
def test_json_path_never_raises(doc: Any, path: str) -> None:
    assert isinstance(api_http.json_path(doc, path), list)


@hsettings(max_examples=200)
@given(st.binary(max_size=300) | JSON.map(lambda d: json.dumps(d).encode()),
       st.lists(PATH, max_size=3), st.booleans())
def test_body_facts_never_raise(body: bytes, paths: list[str], want_body: bool) -> None:
    expect: dict[str, Any] = {"status": 200, "json": {p: 1 for p in paths}, "json_keys": paths}
    if want_body:
        expect["body"] = "Healthy"
    got = api_http.body_facts(body, expect)
    assert set(got["json_keys"]) == set(paths)
