"""Infisical facts: key names per SSOT path, never a value; against the lab's stand-in."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_servers import Answer, json_values, loopback_client, sample, scripted, standin
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from opsverify import redact
from opsverify.facts import api_infisical as inf
from opsverify.facts.api_client import Api, decode_json
from opsverify.lab.standins.infisical import InfisicalApi, seed
from opsverify.settings import Settings
from opsverify.ssot import Ssot, load
from opsverify.verdict import Unreachable

CLIENT_ID, CLIENT_SECRET = "0b5c1e2f-reader", "inf-reader-secret-5e4d3c2b1a09"
VALUES = {"RADARR_API_KEY": "canary-radarr-3b9f0c2d7e", "NAVIDROME_PASSWORD": "canary-nd-pw-81f4"}
ORIGIN = "https://infisical.ronny.works:443"


@pytest.fixture(scope="module")
def ssot() -> Ssot:
    return load()


def _state(ssot: Ssot, extra: dict[str, str] | None = None,
           reader_paths: list[str] | None = None) -> dict[str, Any]:
    paths = {sp.path: {k: VALUES.get(k, f"canary-{k.lower()}-77") for k in sp.keys}
             for sp in ssot.secret_paths}
    first = ssot.secret_paths[0].path
    paths[first] |= extra or {}
    return seed(project_id=ssot.infisical["project_id"], secrets_by_path=paths,
                reader_client_id=CLIENT_ID, reader_client_secret=CLIENT_SECRET,
                admin_client_id="admin", admin_client_secret="inf-admin-secret-000",
                environment=ssot.infisical["environment"], reader_paths=reader_paths)


@pytest.fixture
def server(ssot: Ssot, tmp_path: Path) -> Iterator[str]:
    with standin(InfisicalApi, _state(ssot, {"UNRELATED_KEY": "canary-unrelated-1"}),
                 tmp_path) as url:
        yield url


def _settings(**kw: Any) -> Settings:
    return Settings(timeout=2, **kw)


def _collect(ssot: Ssot, url: str, settings: Settings) -> dict[str, Any]:
    with loopback_client(settings, {ORIGIN: url}) as client:
        return inf.collect(ssot, settings, client)


def test_key_names_of_every_path_and_no_value(ssot: Ssot, server: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _settings(infisical_client_id=CLIENT_ID, infisical_client_secret=CLIENT_SECRET)
    facts = _collect(ssot, server, settings)
    download, streaming = (sp.path for sp in ssot.secret_paths)
    assert facts["paths"][download]["keys"] == sorted({*ssot.secret_paths[0].keys,
                                                       "UNRELATED_KEY"})
    assert facts["paths"][streaming]["keys"] == sorted(ssot.secret_paths[1].keys)
    text = json.dumps(facts) + caplog.text
    assert "canary-" not in text and CLIENT_SECRET not in text


def test_values_sent_anyway_are_dropped(ssot: Ssot) -> None:
    """A server that ignores viewSecretValue=false: the values never reach the facts."""
    def script(seen: Any) -> Answer:
        if seen.path == inf.LOGIN:
            return Answer(200, {"accessToken": "tok-abcdef123456", "expiresIn": 60})
        assert seen.query["viewSecretValue"] == "false"
        return Answer(200, sample("infisical_v3_secrets_raw_response_RECONSTRUCTED.json"))

    with scripted(script) as srv:
        facts = _collect(ssot, srv.url, _settings(infisical_client_id="id",
                                                   infisical_client_secret="secret-value-x"))
    assert all(p["keys"] == ["RADARR_API_KEY"] for p in facts["paths"].values())
    assert "0123456789abcdef0123456789abcdef" not in json.dumps(facts)


def test_a_given_token_skips_the_login(ssot: Ssot) -> None:
    seen_auth: list[str] = []

    def script(seen: Any) -> Answer:
        assert seen.path != inf.LOGIN
        seen_auth.append(seen.headers["authorization"])
        return Answer(200, {"secrets": [], "imports": []})

    with scripted(script) as srv:
        facts = _collect(ssot, srv.url, _settings(infisical_token="st.given-token-123"))
    assert seen_auth == ["Bearer st.given-token-123"] * 2
    assert all(p == {"keys": [], "imported": {}, "imports": []}
               for p in facts["paths"].values())


def test_missing_credentials(ssot: Ssot) -> None:
    with pytest.raises(Unreachable) as info:
        inf.collect(ssot, _settings(infisical_client_id=CLIENT_ID),
                    httpx.Client(transport=httpx.MockTransport(lambda r: 1 / 0)))
    assert info.value.reason == inf.MISSING
    assert "INFISICAL_TOKEN" in info.value.reason


def test_wrong_credentials_are_unreachable_with_the_status(ssot: Ssot, server: str) -> None:
    wrong = "inf-wrong-secret-4444"
    with pytest.raises(Unreachable) as info:
        _collect(ssot, server, _settings(infisical_client_id=CLIENT_ID,
                                         infisical_client_secret=wrong))
    assert "POST https://infisical.ronny.works/api/v1/auth/universal-auth/login: HTTP 401" \
        in info.value.reason
    assert "Invalid credentials" in info.value.reason and wrong not in str(info.value)


def test_expired_or_bogus_token_is_unreachable(ssot: Ssot, server: str) -> None:
    with pytest.raises(Unreachable, match="HTTP 403 Forbidden .*malformed"):
        _collect(ssot, server, _settings(infisical_token="not-a-real-token"))


def test_identity_without_access_to_a_path(ssot: Ssot, tmp_path: Path) -> None:
    state = _state(ssot, reader_paths=[ssot.secret_paths[0].path])
    with standin(InfisicalApi, state, tmp_path) as url, pytest.raises(Unreachable) as info:
        _collect(ssot, url, _settings(infisical_client_id=CLIENT_ID,
                                      infisical_client_secret=CLIENT_SECRET))
    assert info.value.reason.startswith(f"secret path {ssot.secret_paths[1].path}: GET ")
    assert "HTTP 403 Forbidden (PermissionDenied; You are not allowed to describeSecret" \
        in info.value.reason


def test_one_login_serves_every_asker_and_a_failure_is_remembered(ssot: Ssot) -> None:
    logins: list[str] = []

    def script(seen: Any) -> Answer:
        logins.append(seen.path)
        return Answer(401, {"message": "Invalid credentials", "statusCode": 401})

    auth = inf.InfisicalAuth(_settings(infisical_client_id="a", infisical_client_secret="bbbb"))
    with scripted(script) as srv:
        settings = _settings()
        with loopback_client(settings, {ORIGIN: srv.url}) as client:
            for source in ("infisical", "http"):
                api = Api(source, client, settings)
                with pytest.raises(Unreachable) as info:
                    auth.headers(api, inf.base_url(ssot))
                assert info.value.target == source and "HTTP 401" in info.value.reason
    assert logins == [inf.LOGIN]


def test_read_value_registers_it_for_scrubbing(ssot: Ssot, server: str) -> None:
    settings = _settings(infisical_client_id=CLIENT_ID, infisical_client_secret=CLIENT_SECRET)
    auth = inf.InfisicalAuth(settings)
    with loopback_client(settings, {ORIGIN: server}) as client:
        value = inf.read_value(Api("http", client, settings), auth, ssot,
                               ssot.secret_paths[0].path, "RADARR_API_KEY")
    assert value == VALUES["RADARR_API_KEY"]
    assert redact.scrub(f"key={value}") == f"key={redact.MASK}"


# --- secret imports ---------------------------------------------------------------------------


def _move_into_import(ssot: Ssot, state: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Keys moved from the streaming path to the download path, which streaming imports."""
    download, streaming = (sp.path for sp in ssot.secret_paths)
    env, pid = ssot.infisical["environment"], ssot.infisical["project_id"]
    folders = state["secrets"][pid][env]
    for key in keys:
        folders[download][key] = folders[streaming].pop(key)
    state["imports"][pid] = {env: {streaming: [{
        "id": "imp-1", "importEnv": env, "importPath": download, "position": 1,
        "createdAt": "2024-05-03T09:00:00.000Z", "updatedAt": "2024-05-03T09:00:00.000Z",
        "folderId": "f-1"}]}}


def test_keys_reachable_through_an_import_count_and_name_their_source(
        ssot: Ssot, tmp_path: Path) -> None:
    moved = ("NAVIDROME_USER", "NAVIDROME_PASSWORD")
    state = _state(ssot)
    _move_into_import(ssot, state, moved)
    download, streaming = (sp.path for sp in ssot.secret_paths)
    settings = _settings(infisical_client_id=CLIENT_ID, infisical_client_secret=CLIENT_SECRET)
    with standin(InfisicalApi, state, tmp_path) as url:
        facts = _collect(ssot, url, settings)
        auth = inf.InfisicalAuth(settings)
        with loopback_client(settings, {ORIGIN: url}) as client:
            value = inf.read_value(Api("http", client, settings), auth, ssot, streaming,
                                   "NAVIDROME_PASSWORD")
    got = facts["paths"][streaming]
    assert set(ssot.secret_paths[1].keys) <= set(got["keys"])  # the import offers all of it
    assert {k: got["imported"][k] for k in moved} == {k: [f"prod:{download}"] for k in moved}
    assert "JELLYFIN_API_KEY" not in got["imported"]  # still the path's own
    assert value == VALUES["NAVIDROME_PASSWORD"]  # the probe's secret, through the import
    assert "canary-" not in json.dumps(facts)


def test_the_query_asks_as_infisical_run_does(ssot: Ssot) -> None:
    seen_queries: list[dict[str, str]] = []

    def script(seen: Any) -> Answer:
        seen_queries.append(seen.query)
        return Answer(200, sample("infisical_v3_secrets_raw_with_imports_RECONSTRUCTED.json"))

    with scripted(script) as srv:
        facts = _collect(ssot, srv.url, _settings(infisical_token="st.given-token-123"))
    assert {(q["include_imports"], q["recursive"], q["viewSecretValue"])
            for q in seen_queries} == {("true", "false", "false")}
    assert all(p["imported"]["NAVIDROME_USER"] == ["prod:/shared"]
               for p in facts["paths"].values())


# --- samples and hostile input ----------------------------------------------------------------


def test_samples() -> None:
    assert inf.parse_login(sample("infisical_universal_auth_login_response_RECONSTRUCTED.json")
                           ).startswith("eyJ")
    assert inf.parse_secret_keys(sample("infisical_v3_secrets_raw_response_RECONSTRUCTED.json")
                                 ) == {"keys": ["RADARR_API_KEY"], "imported": {}, "imports": []}
    with_imports = inf.parse_secret_keys(
        sample("infisical_v3_secrets_raw_with_imports_RECONSTRUCTED.json"))
    assert with_imports == {
        "keys": ["JELLYFIN_API_KEY", "NAVIDROME_PASSWORD", "NAVIDROME_USER"],
        "imported": {"NAVIDROME_PASSWORD": ["prod:/shared"], "NAVIDROME_USER": ["prod:/shared"]},
        "imports": [{"from": "prod:/shared", "keys": ["NAVIDROME_PASSWORD", "NAVIDROME_USER"]},
                    {"from": "staging:/apps/streaming", "keys": []}]}


def test_hidden_value_is_value_error() -> None:
    with pytest.raises(ValueError, match="hidden"):
        inf.parse_secret_value({"secret": {"secretKey": "X", "secretValue": "",
                                           "secretValueHidden": True}})


JSON = json_values(("secrets", "secretKey", "secretValue", "secret", "accessToken", "imports",
                    "secretPath", "environment"))
SECRETS = st.lists(st.dictionaries(
    st.sampled_from(["secretKey", "secretValue", "secretValueHidden"]), JSON), max_size=3) | JSON
SHAPED = st.fixed_dictionaries({}, optional={
    "accessToken": JSON, "secrets": SECRETS,
    "imports": st.lists(st.dictionaries(st.sampled_from(["secretPath", "environment", "secrets"]),
                                        SECRETS | JSON), max_size=3) | JSON,
    "secret": st.dictionaries(st.sampled_from(["secretValue", "secretValueHidden"]),
                              JSON) | JSON})


@hsettings(max_examples=200)
@given(SHAPED | JSON)
def test_parsers_raise_only_value_error(payload: Any) -> None:
    for parse in (inf.parse_login, inf.parse_secret_keys, inf.parse_secret_value):
        try:
            parse(payload)
        except ValueError:
            pass


@given(st.data())
def test_truncated_samples_raise_only_value_error(data: st.DataObject) -> None:
    raw = json.dumps(sample("infisical_v3_secrets_raw_response_RECONSTRUCTED.json")).encode()
    try:
        inf.parse_secret_keys(decode_json(raw[: data.draw(st.integers(0, len(raw)))]))
    except ValueError:
        pass
