"""The shared HTTP client under faults: hangs, 500s, garbage, endless bodies, TLS, redirects."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest
from api_servers import Answer, Pki, scripted, silent_listener
from hypothesis import given
from hypothesis import strategies as st

from opsverify import redact
from opsverify.facts.api_client import (
    Api,
    Deadline,
    api_message,
    client_for,
    decode_json,
    make_client,
    opt_bool,
    opt_int,
)
from opsverify.settings import Settings
from opsverify.verdict import Unreachable

TIMEOUT = 1.0


def _api(settings: Settings, **kwargs: object) -> Api:
    return Api("testapi", make_client(settings), settings, **kwargs)  # type: ignore[arg-type]


def _fails(api: Api, url: str, **kwargs: object) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(Unreachable) as info:
        api.get_json(url, **kwargs)  # type: ignore[arg-type]
    assert info.value.target == "testapi"
    return info.value.reason, time.monotonic() - start


def test_silent_server_costs_one_timeout() -> None:
    settings = Settings(timeout=TIMEOUT)
    with silent_listener() as url:
        reason, cost = _fails(_api(settings), f"{url}/api/v1/targets")
    print(f"\nsilent server: Unreachable after {cost:.2f} s (timeout {TIMEOUT} s): {reason}")
    assert "timed out after 1 s" in reason and "GET http://127.0.0.1" in reason
    assert cost < TIMEOUT * 3  # a guard against a hang, not a speed target


def test_hanging_handler_after_request_read_costs_one_timeout() -> None:
    with scripted(lambda seen: Answer(hang=True)) as server:
        reason, cost = _fails(_api(Settings(timeout=TIMEOUT)), f"{server.url}/x")
    print(f"\nhanging handler: Unreachable after {cost:.2f} s: {reason}")
    assert "timed out after 1 s (no answer)" in reason
    assert cost < TIMEOUT * 3


def test_connection_refused_is_unreachable_at_once() -> None:
    with silent_listener() as url:
        pass  # closed again: nothing listens on that port any more
    reason, cost = _fails(_api(Settings(timeout=TIMEOUT)), f"{url}/x")
    print(f"\nrefused: Unreachable after {cost:.3f} s: {reason}")
    assert "connection refused" in reason


def test_500_names_status_and_api_message() -> None:
    body = {"success": False, "errors": [{"code": 10001, "message": "service down"}]}
    with scripted(lambda seen: Answer(500, body)) as server:
        reason, _ = _fails(_api(Settings(timeout=TIMEOUT)), f"{server.url}/zones")
    assert reason == (f"GET {server.url}/zones: HTTP 500 Internal Server Error "
                      "(service down (10001))")


@pytest.mark.parametrize("garbage", [b"<html>oops</html>", b'{"result": [', b"", b"\xff\xfe"])
def test_garbage_json_is_unreachable(garbage: bytes) -> None:
    with scripted(lambda seen: Answer(200, garbage)) as server:
        reason, _ = _fails(_api(Settings(timeout=TIMEOUT)), f"{server.url}/q")
    assert "HTTP 200 but invalid JSON" in reason


def test_endless_body_is_cut_off_at_the_limit() -> None:
    with scripted(lambda seen: Answer(stream_forever=True)) as server:
        reason, cost = _fails(_api(Settings(timeout=TIMEOUT)), f"{server.url}/big")
    print(f"\nendless body: Unreachable after {cost:.2f} s at 4 MiB: {reason}")
    assert "exceeds the 4194304 byte limit" in reason


def test_declared_oversize_body_is_refused_before_reading() -> None:
    with scripted(lambda seen: Answer(200, b"{}", {"Content-Length": "99999999"})) as server:
        reason, _ = _fails(_api(Settings(timeout=TIMEOUT), max_body=1024), f"{server.url}/big")
    assert "response of 99999999 bytes exceeds the 1024 byte limit" in reason


def test_trickling_body_stops_at_the_source_deadline() -> None:
    settings = Settings(timeout=TIMEOUT)
    with scripted(lambda seen: Answer(stream_forever=True, trickle_s=0.2)) as server:
        api = _api(settings, deadline=Deadline(1.5), max_body=1 << 40)
        reason, cost = _fails(api, f"{server.url}/slow")
    print(f"\ntrickling body: Unreachable after {cost:.2f} s (deadline 1.5 s): {reason}")
    assert "body still arriving" in reason
    assert cost < 1.5 + TIMEOUT * 2


def test_nothing_is_sent_after_the_deadline() -> None:
    with scripted(lambda seen: Answer(200, {})) as server:
        api = _api(Settings(timeout=TIMEOUT), deadline=Deadline(0))
        reason, _ = _fails(api, f"{server.url}/late")
        assert server.seen == []
    assert "not sent, the 0 s deadline of testapi has passed" in reason


def test_redirect_is_recorded_not_followed() -> None:
    with scripted(lambda seen: Answer(302, b"", {"Location": "/login"})) as server:
        reply = _api(Settings(timeout=TIMEOUT)).request("GET", f"{server.url}/")
        assert (reply.status, reply.headers["location"]) == (302, "/login")
        assert [s.path for s in server.seen] == ["/"]


def test_redirect_is_not_an_api_answer() -> None:
    with scripted(lambda seen: Answer(301, b"", {"Location": "/elsewhere"})) as server:
        reason, _ = _fails(_api(Settings(timeout=TIMEOUT)), f"{server.url}/api")
        assert len(server.seen) == 1
    assert "HTTP 301 Moved Permanently" in reason


# --- TLS: an impostor is refused; trust is given by the CA bundle or turned off loudly -------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Pki]:
    """(the CA the run trusts, a CA nobody trusts)."""
    return Pki(tmp_path_factory.mktemp("ca")), Pki(tmp_path_factory.mktemp("impostor"))


def test_certificate_from_unknown_ca_is_refused(tls: tuple[Pki, Pki]) -> None:
    trusted, impostor = tls
    ctx = impostor.server_tls("api", ips=("127.0.0.1",))
    with scripted(lambda seen: Answer(200, {"ok": 1}), ctx) as server:
        for settings in (Settings(timeout=TIMEOUT, ca_bundle=trusted.ca),
                         Settings(timeout=TIMEOUT)):  # system trust does not know it either
            reason, _ = _fails(_api(settings), f"{server.url}/v1")
            assert "certificate verify failed" in reason
        assert server.seen == []  # the request never left the client


def test_certificate_from_the_bundle_ca_is_accepted(tls: tuple[Pki, Pki]) -> None:
    trusted, _ = tls
    with scripted(lambda seen: Answer(200, {"ok": 1}), trusted.server_tls(
            "api", ips=("127.0.0.1",))) as server:
        api = _api(Settings(timeout=TIMEOUT, ca_bundle=trusted.ca))
        assert api.get_json(f"{server.url}/v1") == (200, {"ok": 1})


def test_wrong_name_on_a_trusted_certificate_is_refused(tls: tuple[Pki, Pki]) -> None:
    trusted, _ = tls
    ctx = trusted.server_tls("other", dns=("other.example",))
    with scripted(lambda seen: Answer(200, {}), ctx) as server:
        reason, _ = _fails(_api(Settings(timeout=TIMEOUT, ca_bundle=trusted.ca)),
                           f"{server.url}/v1")
    assert "certificate verify failed" in reason and "IP address mismatch" in reason


def test_insecure_tls_accepts_and_is_named_in_relaxations(tls: tuple[Pki, Pki]) -> None:
    _, impostor = tls
    settings = Settings.from_env({"OPSVERIFY_INSECURE_TLS": "1", "OPSVERIFY_TIMEOUT": "1"})
    with scripted(lambda seen: Answer(200, {"ok": 1}),
                  impostor.server_tls("api2", ips=("127.0.0.1",))) as server:
        assert _api(settings).get_json(f"{server.url}/v1") == (200, {"ok": 1})
    assert "TLS certificates NOT verified (OPSVERIFY_INSECURE_TLS=1)" in settings.relaxations()
    assert Settings().relaxations() == []


def test_unusable_ca_bundle_is_unreachable_not_a_traceback(tmp_path: Path) -> None:
    settings = Settings(ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(Unreachable) as info, client_for("cloudflare", settings, None):
        pass
    assert info.value.reason.startswith(f"CA bundle {tmp_path / 'missing.pem'} is unusable")


def test_proxies_in_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with scripted(lambda seen: Answer(200, {"direct": True})) as server:
        assert _api(Settings(timeout=TIMEOUT)).get_json(f"{server.url}/") == (200,
                                                                               {"direct": True})


# --- secrets stay out of reasons and logs ---------------------------------------------------


def test_query_secret_never_reaches_reason_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sab-7f3a9c1e5d2b4a68"
    redact.register(secret)
    caplog.set_level(logging.DEBUG)
    with scripted(lambda seen: Answer(403, {"error": f"bad key {seen.query['apikey']}"})
                  ) as server:
        reason, _ = _fails(_api(Settings(timeout=TIMEOUT)), f"{server.url}/api",
                           params={"mode": "queue", "apikey": secret},
                           headers={"X-Api-Key": secret})
    assert secret not in reason and "HTTP 403" in reason and redact.MASK in reason
    assert any("HTTP Request: GET" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert secret not in record.getMessage(), record.name


# --- pure helpers ----------------------------------------------------------------------------


@given(st.binary(max_size=512))
def test_decode_json_raises_only_value_error(data: bytes) -> None:
    try:
        decode_json(data)
    except ValueError:
        pass


def test_decode_json_deep_nesting_is_value_error() -> None:
    with pytest.raises(ValueError, match="invalid JSON"):
        decode_json(b"[" * 100_000 + b"]" * 100_000)


@given(st.binary(max_size=256))
def test_api_message_never_raises(data: bytes) -> None:
    assert api_message(data) is None or isinstance(api_message(data), str)


@pytest.mark.parametrize(("raw", "want"), [
    (201, 201), ("201", 201), (" 7 ", 7), (1.0, 1), (True, 1), ("x", None), (None, None),
    (1.5, None), ("1e3", None), ([], None)])
def test_opt_int_accepts_numbers_as_strings(raw: object, want: int | None) -> None:
    assert opt_int(raw) == want


@pytest.mark.parametrize(("raw", "want"), [
    (True, True), (0, False), ("1", True), ("false", False), ("yes", None), (2, None)])
def test_opt_bool(raw: object, want: bool | None) -> None:
    assert opt_bool(raw) is want


def test_client_never_follows_redirects_or_uses_env() -> None:
    client = make_client(Settings())
    assert client.follow_redirects is False and client.trust_env is False
    assert client.timeout == httpx.Timeout(10.0)
