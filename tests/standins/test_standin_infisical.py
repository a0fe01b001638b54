"""The Infisical stand-in: universal-auth login, scoped identities, raw secrets v3."""

from __future__ import annotations

import io
import secrets
import time

import httpx
import pytest

from opsverify.lab.standins import _http, infisical

PROJECT = "3f6a1c52-8d4e-4b7a-9e21-5c0d8f7b2a19"
DOWNLOAD = "/spine/vm-infra/media-stack/download"
STREAMING = "/spine/vm-infra/media-stack/streaming"
OTHER = "/spine/vm-infra/other"


@pytest.fixture
def creds() -> dict[str, str]:
    return {"reader_id": "reader-" + secrets.token_hex(4), "reader": secrets.token_hex(24),
            "admin_id": "admin-" + secrets.token_hex(4), "admin": secrets.token_hex(24),
            "radarr": secrets.token_hex(16)}


@pytest.fixture
def app(tmp_path, creds) -> infisical.InfisicalApi:
    data = infisical.seed(
        project_id=PROJECT,
        secrets_by_path={
            DOWNLOAD: {"RADARR_API_KEY": creds["radarr"], "SONARR_API_KEY": "s0narr"},
            STREAMING: {"JELLYFIN_API_KEY": "j3llyfin"},
            OTHER: {"UNRELATED": "x"},
            "/empty": {},
        },
        reader_client_id=creds["reader_id"], reader_client_secret=creds["reader"],
        admin_client_id=creds["admin_id"], admin_client_secret=creds["admin"],
        reader_paths=[DOWNLOAD, STREAMING],
    )
    path = tmp_path / "infisical.json"
    _http.write_state(path, data)
    return infisical.InfisicalApi(_http.State(path))


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def client(serve, app, log, new_client) -> httpx.Client:
    return new_client(serve(app, log=log))


def _login(client: httpx.Client, client_id: str, secret: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/universal-auth/login",
                           json={"clientId": client_id, "clientSecret": secret})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


@pytest.fixture
def reader(client, creds) -> dict[str, str]:
    return _login(client, creds["reader_id"], creds["reader"])


@pytest.fixture
def admin(client, creds) -> dict[str, str]:
    return _login(client, creds["admin_id"], creds["admin"])


def _query(path: str, **extra: str) -> dict[str, str]:
    return {"workspaceId": PROJECT, "environment": "prod", "secretPath": path, **extra}


def test_login_shape(client, creds, sample, gaps):
    body = client.post("/api/v1/auth/universal-auth/login",
                       json={"clientId": creds["reader_id"],
                             "clientSecret": creds["reader"]}).json()
    assert gaps(sample("infisical_universal_auth_login_response_RECONSTRUCTED.json"), body) == []
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 7200
    assert body["accessToken"].count(".") == 2


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ({"clientId": "nobody", "clientSecret": "x"}, 401, "UnauthorizedError"),
        ({"clientId": "reader", "clientSecret": ""}, 422, "ValidationFailure"),
        ({}, 422, "ValidationFailure"),
    ],
)
def test_login_failures(client, payload, status, error):
    response = client.post("/api/v1/auth/universal-auth/login", json=payload)
    assert response.status_code == status
    body = response.json()
    assert set(body) >= {"reqId", "statusCode", "message", "error"}
    assert (body["statusCode"], body["error"]) == (status, error)


def test_wrong_secret_is_refused(client, creds):
    response = client.post("/api/v1/auth/universal-auth/login",
                           json={"clientId": creds["reader_id"], "clientSecret": creds["admin"]})
    assert response.status_code == 401


def test_list_secrets_shape_and_values(client, reader, creds, sample, gaps):
    body = client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD), headers=reader).json()
    assert gaps(sample("infisical_v3_secrets_raw_response_RECONSTRUCTED.json"), body) == []
    assert body["imports"] == []
    by_key = {s["secretKey"]: s for s in body["secrets"]}
    assert set(by_key) == {"RADARR_API_KEY", "SONARR_API_KEY"}
    radarr = by_key["RADARR_API_KEY"]
    assert radarr["secretValue"] == creds["radarr"] and radarr["secretValueHidden"] is False
    assert (radarr["workspace"], radarr["environment"], radarr["secretPath"]) == (
        PROJECT, "prod", DOWNLOAD)


def test_view_secret_value_false_hides_every_value(client, reader, creds):
    response = client.get("/api/v3/secrets/raw",
                          params=_query(DOWNLOAD, viewSecretValue="false"), headers=reader)
    assert response.status_code == 200
    assert creds["radarr"] not in response.text
    for secret in response.json()["secrets"]:
        assert (secret["secretValue"], secret["secretValueHidden"]) == ("", True)
    one = client.get("/api/v3/secrets/raw/RADARR_API_KEY",
                     params=_query(DOWNLOAD, viewSecretValue="false"), headers=reader).json()
    assert one["secret"]["secretValue"] == "" and one["secret"]["secretValueHidden"] is True


def test_get_one_secret(client, reader, creds):
    one = client.get("/api/v3/secrets/raw/RADARR_API_KEY", params=_query(DOWNLOAD), headers=reader)
    assert one.json()["secret"]["secretValue"] == creds["radarr"]
    missing = client.get("/api/v3/secrets/raw/NOPE", params=_query(DOWNLOAD), headers=reader)
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"


def test_reader_is_confined_to_its_paths(client, reader):
    elsewhere = client.get("/api/v3/secrets/raw", params=_query(OTHER), headers=reader)
    assert elsewhere.status_code == 403
    assert elsewhere.json()["error"] == "PermissionDenied"
    body = {"workspaceId": PROJECT, "environment": "prod", "secretPath": DOWNLOAD,
            "secretValue": "x", "type": "shared"}
    assert client.post("/api/v3/secrets/raw/NEW", json=body, headers=reader).status_code == 403
    assert client.patch("/api/v3/secrets/raw/RADARR_API_KEY", json=body,
                        headers=reader).status_code == 403
    assert client.request("DELETE", "/api/v3/secrets/raw/RADARR_API_KEY", json=body,
                          headers=reader).status_code == 403


def test_token_failures(client, app, reader):
    no_token = client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD))
    assert (no_token.status_code, no_token.json()["error"]) == (401, "UnauthorizedError")
    forged = client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD),
                        headers={"Authorization": "Bearer a.b.c"})
    assert (forged.status_code, forged.json()["error"]) == (403, "TokenError")
    app.clock = lambda: time.time() + 7201
    expired = client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD), headers=reader)
    assert expired.status_code == 403 and "expired" in expired.json()["message"]


def test_missing_parameters_and_unknowns(client, reader):
    missing = client.get("/api/v3/secrets/raw", params={"workspaceId": PROJECT}, headers=reader)
    assert missing.status_code == 422
    assert missing.json()["message"][0]["path"] == ["environment"]
    env = client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD) | {"environment": "dev"},
                     headers=reader)
    assert env.status_code == 404
    project = client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD) | {"workspaceId": "x"},
                         headers=reader)
    assert project.status_code == 404


def test_unknown_folder_lists_nothing(client, admin):
    body = client.get("/api/v3/secrets/raw", params=_query("/does/not/exist"), headers=admin)
    assert body.status_code == 200 and body.json()["secrets"] == []


def test_recursive_listing(client, admin):
    body = client.get("/api/v3/secrets/raw", params=_query("/spine", recursive="true"),
                      headers=admin).json()
    assert {(s["secretPath"], s["secretKey"]) for s in body["secrets"]} == {
        (DOWNLOAD, "RADARR_API_KEY"), (DOWNLOAD, "SONARR_API_KEY"),
        (STREAMING, "JELLYFIN_API_KEY"), (OTHER, "UNRELATED")}


def test_admin_create_update_delete(client, admin, reader):
    body = {"workspaceId": PROJECT, "environment": "prod", "secretPath": STREAMING,
            "secretValue": "v1", "type": "shared"}
    created = client.post("/api/v3/secrets/raw/LASTFM_API_KEY", json=body, headers=admin)
    assert created.status_code == 200 and created.json()["secret"]["version"] == 1
    again = client.post("/api/v3/secrets/raw/LASTFM_API_KEY", json=body, headers=admin)
    assert again.status_code == 400

    updated = client.patch("/api/v3/secrets/raw/LASTFM_API_KEY", json=body | {"secretValue": "v2"},
                           headers=admin).json()["secret"]
    assert (updated["secretValue"], updated["version"]) == ("v2", 2)
    seen = client.get("/api/v3/secrets/raw/LASTFM_API_KEY", params=_query(STREAMING),
                      headers=reader).json()["secret"]
    assert seen["secretValue"] == "v2"

    deleted = client.request("DELETE", "/api/v3/secrets/raw/LASTFM_API_KEY",
                             json={k: body[k] for k in ("workspaceId", "environment", "secretPath")},
                             headers=admin)
    assert deleted.status_code == 200
    gone = client.get("/api/v3/secrets/raw/LASTFM_API_KEY", params=_query(STREAMING), headers=admin)
    assert gone.status_code == 404

    nowhere = client.post("/api/v3/secrets/raw/X", json=body | {"secretPath": "/nope"},
                          headers=admin)
    assert nowhere.status_code == 404 and "Folder" in nowhere.json()["message"]


def test_state_and_log_hold_no_credential(client, app, creds, reader, log):
    client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD), headers=reader)
    token = reader["Authorization"].split()[1]
    text = log.getvalue()
    assert "POST /api/v1/auth/universal-auth/login 200" in text
    for secret in (creds["reader"], creds["admin"], creds["radarr"], token):
        assert secret not in text
    stored = app.state.path.read_text()
    assert creds["reader"] not in stored and token not in stored
