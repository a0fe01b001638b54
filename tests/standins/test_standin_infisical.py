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
    body = client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD, include_imports="true"),
                      headers=reader).json()
    assert gaps(sample("infisical_v3_secrets_raw_response_RECONSTRUCTED.json"), body) == []
    assert body["imports"] == []
    plain = client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD), headers=reader).json()
    assert "imports" not in plain  # getSecretsRaw answers imports only when asked
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
        assert (secret["secretValue"], secret["secretValueHidden"]) == (infisical.HIDDEN, True)
    one = client.get("/api/v3/secrets/raw/RADARR_API_KEY",
                     params=_query(DOWNLOAD, viewSecretValue="false"), headers=reader).json()
    assert one["secret"]["secretValue"] == infisical.HIDDEN
    assert one["secret"]["secretValueHidden"] is True


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


# --- secret imports (Infisical's /api/v1|v2/secret-imports) -----------------------------------


def _import(client, admin, into: str, source: str, version: str = "v2", env: str = "prod"):
    project = {"projectId": PROJECT} if version == "v2" else {"workspaceId": PROJECT}
    return client.post(f"/api/{version}/secret-imports", headers=admin, json={
        **project, "environment": "prod", "path": into,
        "import": {"environment": env, "path": source}})


def test_create_import_answers_infisicals_shape(client, admin, sample, gaps):
    created = _import(client, admin, STREAMING, DOWNLOAD)
    assert created.status_code == 200, created.text
    body = created.json()
    assert gaps(sample("infisical_secret_import_create_response_RECONSTRUCTED.json"), body) == []
    assert (body["secretImport"]["importPath"], body["secretImport"]["importEnv"]["slug"],
            body["secretImport"]["position"]) == (DOWNLOAD, "prod", 1)
    listed = client.get("/api/v1/secret-imports", headers=admin, params={
        "workspaceId": PROJECT, "environment": "prod", "path": STREAMING}).json()
    assert [i["id"] for i in listed["secretImports"]] == [body["secretImport"]["id"]]
    assert _import(client, admin, STREAMING, DOWNLOAD, "v1").status_code == 400  # exists
    assert _import(client, admin, STREAMING, STREAMING).status_code == 400  # itself
    assert _import(client, admin, "/nope", DOWNLOAD).status_code == 404


def test_reader_may_not_change_imports(client, reader):
    assert _import(client, reader, STREAMING, DOWNLOAD).status_code == 403


def test_list_with_imports_nested_and_filtered(client, admin, reader, creds, sample, gaps):
    _import(client, admin, STREAMING, DOWNLOAD)
    _import(client, admin, DOWNLOAD, OTHER)        # an import of an import
    _import(client, admin, DOWNLOAD, STREAMING)    # a cycle, cut where it closes
    _import(client, admin, STREAMING, "/empty")    # a source the reader may not read
    query = _query(STREAMING, include_imports="true", viewSecretValue="false")
    body = client.get("/api/v3/secrets/raw", headers=reader, params=query).json()
    assert gaps(sample("infisical_v3_secrets_raw_with_imports_RECONSTRUCTED.json"), body) == []
    assert [(i["environment"], i["secretPath"]) for i in body["imports"]] == [("prod", DOWNLOAD)]
    assert {s["secretKey"] for s in body["imports"][0]["secrets"]} == {
        "RADARR_API_KEY", "SONARR_API_KEY"}  # OTHER's key is not the reader's to see
    assert creds["radarr"] not in str(body)
    full = client.get("/api/v3/secrets/raw", headers=admin, params=query).json()["imports"]
    assert [i["secretPath"] for i in full] == [DOWNLOAD, "/empty"]
    assert "UNRELATED" in {s["secretKey"] for s in full[0]["secrets"]}  # appended, as Infisical
    plain = client.get("/api/v3/secrets/raw", headers=reader, params=_query(STREAMING)).json()
    assert "imports" not in plain


def test_get_one_secret_through_an_import(client, admin, reader, creds):
    _import(client, admin, STREAMING, DOWNLOAD)
    query = _query(STREAMING, include_imports="true")
    one = client.get("/api/v3/secrets/raw/RADARR_API_KEY", params=query, headers=reader).json()
    assert (one["secret"]["secretValue"], one["secret"]["secretPath"]) == (creds["radarr"],
                                                                          DOWNLOAD)
    without = client.get("/api/v3/secrets/raw/RADARR_API_KEY", params=_query(STREAMING),
                         headers=reader)
    assert without.status_code == 404


def test_delete_import(client, admin, reader):
    first = _import(client, admin, STREAMING, DOWNLOAD).json()["secretImport"]
    _import(client, admin, STREAMING, "/empty")
    scope = {"projectId": PROJECT, "environment": "prod", "path": STREAMING}
    gone = client.request("DELETE", f"/api/v2/secret-imports/{first['id']}", json=scope,
                          headers=admin)
    assert gone.status_code == 200 and gone.json()["secretImport"]["id"] == first["id"]
    left = client.get("/api/v2/secret-imports", params=scope, headers=admin).json()
    assert [(i["importPath"], i["position"]) for i in left["secretImports"]] == [("/empty", 1)]
    again = client.request("DELETE", f"/api/v2/secret-imports/{first['id']}", json=scope,
                           headers=admin)
    assert again.status_code == 404


def test_rate_limit_on_demand_answers_like_infisical(client, app, reader):
    import wire
    real = wire.load("infisical_429_rate_limited_RECONSTRUCTED.http")
    with app.state.update() as state:
        state["rate_limit"] = {"answer_429": 1, "retry_after": 2}
    limited = client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD), headers=reader)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    body = limited.json()
    assert {k: v for k, v in body.items() if k != "reqId"} == {
        k: v for k, v in __import__("json").loads(real.body).items() if k != "reqId"}
    assert client.get("/api/status").status_code == 200
    assert client.get("/api/v3/secrets/raw", params=_query(DOWNLOAD),
                      headers=reader).status_code == 200
