"""Issue 11, hole 3: no secret leaks through an HTTP client error, and none aborts a source.

Real HTTP servers on 127.0.0.1 (the SSOT's service origins are mapped to them, nothing else is
reachable); the production client and collectors.
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from facts.api_servers import Answer, Loopback, scripted

from opsverify import redact
from opsverify.facts import api_http
from opsverify.facts.api_client import Api, make_client
from opsverify.settings import Settings
from opsverify.ssot import load
from opsverify.verdict import Unreachable

OTHER_KEYS = {"SONARR_API_KEY": "other-sonarr-5b2c1a", "LIDARR_API_KEY": "other-lidarr-8d3e2f",
              "PROWLARR_API_KEY": "other-prowl-1a2b3c", "SABNZBD_API_KEY": "other-sab-4d5e6f",
              "NAVIDROME_USER": "navi-user", "NAVIDROME_PASSWORD": "other-navi-pw-7a8b"}


def collect(env: dict[str, str], caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """The http source against one server that answers every probe with 200 and JSON."""
    caplog.set_level(logging.DEBUG)
    ssot = load()
    with scripted(lambda seen: Answer(200, {"appName": "x", "version": "1"})) as apps:
        origins = {p.url.split("/", 3)[0] + "//" + p.url.split("/", 3)[2]: apps.url
                   for p in ssot.probes}
        settings = Settings(timeout=2)
        with make_client(settings, transport=Loopback(origins)) as client:
            return api_http.collect(ssot, settings, client, env=env)


@pytest.mark.parametrize("value", ["TOPSECRET-4a1f9c\t", "\tTOPSECRET-4a1f9c",
                                   "TOPSECRET-4a1f9c\x7f", "TOPSECRET-4a1f9c\x1b[0m"])
def test_a_control_character_in_a_header_secret_is_refused_unquoted(
        value: str, caplog: pytest.LogCaptureFixture) -> None:
    facts = collect({**OTHER_KEYS, "RADARR_API_KEY": value}, caplog)
    radarr = facts["probes"]["radarr"]
    assert radarr["status"] is None and "RADARR_API_KEY" in radarr["auth_error"]
    assert "control character" in radarr["auth_error"]
    assert "TOPSECRET-4a1f9c" not in json.dumps(facts) + caplog.text
    assert facts["probes"]["sonarr"]["status"] == 200


def test_a_non_ascii_secret_costs_its_probe_only(caplog: pytest.LogCaptureFixture) -> None:
    facts = collect({**OTHER_KEYS, "RADARR_API_KEY": "TOPSECRET-é-4a1f9c"}, caplog)
    radarr = facts["probes"]["radarr"]
    assert radarr["auth_error"] == ("not asked: RADARR_API_KEY holds a non-ASCII character "
                                    "(HTTP headers carry ASCII only)")
    others = [p for name, p in facts["probes"].items() if name != "radarr"]
    assert len(others) == 7 and all(p["status"] == 200 for p in others), others
    assert len(facts["routes"]) == 4
    assert "TOPSECRET" not in json.dumps(facts) + caplog.text


def test_an_unencodable_header_is_the_requests_failure_not_an_exception() -> None:
    """Behind the check when read: the client itself turns it into Unreachable."""
    with scripted(lambda seen: Answer(200, {})) as srv, \
            make_client(Settings(timeout=2)) as client:
        api = Api("http", client, Settings(timeout=2))
        with pytest.raises(Unreachable) as exc:
            api.request("GET", srv.url + "/x", headers={"X-Api-Key": "TOPSECRET-é-77"})
    assert "TOPSECRET" not in exc.value.reason


@pytest.mark.parametrize("secret", ["TOP  SECRET-9x2c", "TOP\tSECRET-9x2c", "TOP SECRET\n9x2c"])
def test_an_echoed_secret_is_scrubbed_before_the_message_is_collapsed(secret: str) -> None:
    """An API echoes the credential in its error body; the reason collapses whitespace."""
    redact.register(secret)
    body = {"errors": [{"code": 10000, "message": f"invalid token {secret}"}]}
    with scripted(lambda seen: Answer(403, body)) as srv, \
            make_client(Settings(timeout=2)) as client:
        api = Api("cloudflare", client, Settings(timeout=2))
        with pytest.raises(Unreachable) as exc:
            api.get_json(srv.url + "/zones")
    assert "HTTP 403" in exc.value.reason and redact.MASK in exc.value.reason
    assert "SECRET" not in exc.value.reason


def test_every_spelling_of_a_secret_is_masked() -> None:
    secret = "p@ss w/\"rd\t<&>é-7f3a"
    redact.register(secret)
    spellings = {
        "raw": secret, "repr": repr(secret), "bytes repr": repr(secret.encode()),
        "latin-1 bytes repr": repr(secret.encode("latin-1")), "url": quote(secret, safe=""),
        "url path": quote(secret), "form": quote_plus(secret), "json": json.dumps(secret),
        "json unicode": json.dumps(secret, ensure_ascii=False), "html": html.escape(secret),
        "collapsed": " ".join(secret.split()),
        "xml attribute": html.escape(secret).replace("&#x27;", "'").replace("\t", "&#09;"),
    }
    for how, text in spellings.items():
        shown = redact.scrub(f"error: {text} (end)")
        assert "rd" not in shown and "7f3a" not in shown, (how, shown)


@pytest.mark.parametrize("secret", ['pa"ss\\word-Ünïcode-7', "plain-canary-secret-8", "tab\there-9x"])
def test_one_search_of_json_text_finds_a_secret_in_its_escaped_spelling(secret: str) -> None:
    # fixtures/outcomes._evidence walks a test's evidence only when this says it must
    from opsverify import redact

    redact.register(secret)
    evidence = {"config": {"url": f"http://x/?k={secret}", "list": [1, None, secret]}}
    text = json.dumps(evidence, default=str)
    assert redact.holds_secret(text)
    assert secret not in json.dumps(redact.scrub_obj(json.loads(text)))
    assert not redact.holds_secret(json.dumps({"config": {"url": "http://x/"}}))
