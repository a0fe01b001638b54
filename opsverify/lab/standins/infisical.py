"""Infisical stand-in: universal-auth login and the v3 raw secrets API."""

from __future__ import annotations

import base64
import fnmatch
import json
import secrets
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from opsverify.lab.standins._http import (
    ApiError,
    App,
    Request,
    Response,
    json_response,
    serve_main,
    sha256,
)

SECRETS = "/api/v3/secrets/raw"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _norm_path(path: Any) -> str:
    if not isinstance(path, str):
        raise _validation("secretPath", "Expected string")
    path = "/" + path.strip().strip("/")
    return path


def _validation(field: str, message: str = "Required") -> ApiError:
    issue = {"code": "invalid_type", "expected": "string", "received": "undefined",
             "path": [field], "message": message}
    return ApiError(422, message, "ValidationFailure", issues=[issue])


def seed(
    *,
    project_id: str,
    secrets_by_path: dict[str, dict[str, str]],
    reader_client_id: str,
    reader_client_secret: str,
    admin_client_id: str,
    admin_client_secret: str,
    environment: str = "prod",
    reader_paths: list[str] | None = None,
    access_token_ttl: int = 7200,
) -> dict[str, Any]:
    """The initial state of the Infisical stand-in.

    project_id: the project (workspaceId); environment: its environment slug (e.g. "prod").
    secrets_by_path: {"/spine/vm-infra/media-stack/download": {"RADARR_API_KEY": "value"}};
      every path given (even with no keys) is an existing folder.
    reader_client_id/reader_client_secret: a universal-auth identity that may only read
      reader_paths (default: every path of secrets_by_path; fnmatch globs allowed).
    admin_client_id/admin_client_secret: an identity that may read and write everywhere.
    access_token_ttl: lifetime of issued access tokens, seconds.
    Only SHA-256 digests of client secrets and access tokens are stored.
    """
    now = _now()
    folders: dict[str, Any] = {}
    for path, values in secrets_by_path.items():
        folders[_norm_path(path)] = {key: _secret_record(value, now) for key, value in values.items()}

    def identity(name: str, secret: str, role: str, paths: list[str]) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "name": name, "client_secret_sha256": sha256(secret),
                "role": role, "project_id": project_id, "read_paths": paths,
                "access_token_ttl": access_token_ttl}

    paths = [_norm_path(p) for p in (reader_paths if reader_paths is not None else folders)]
    return {
        "projects": {project_id: {"name": "homelab", "environments": [environment]}},
        "identities": {
            reader_client_id: identity("opsverify-reader", reader_client_secret, "reader", paths),
            admin_client_id: identity("lab-admin", admin_client_secret, "admin", ["/**"]),
        },
        "access_tokens": {},
        "secrets": {project_id: {environment: folders}},
    }


def _secret_record(value: str, now: str, comment: str = "") -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "version": 1, "type": "shared", "value": value,
            "comment": comment, "skip_multiline_encoding": False, "reminder_note": None,
            "reminder_repeat_days": None, "created_at": now, "updated_at": now, "tags": []}


def _render(project_id: str, env: str, path: str, key: str, rec: dict[str, Any],
            view: bool) -> dict[str, Any]:
    return {
        "id": rec["id"],
        "_id": rec["id"],
        "workspace": project_id,
        "environment": env,
        "version": rec["version"],
        "type": rec["type"],
        "secretKey": key,
        "secretValue": rec["value"] if view else "",
        "secretValueHidden": not view,
        "secretComment": rec["comment"],
        "secretReminderNote": rec["reminder_note"],
        "secretReminderRepeatDays": rec["reminder_repeat_days"],
        "skipMultilineEncoding": rec["skip_multiline_encoding"],
        "createdAt": rec["created_at"],
        "updatedAt": rec["updated_at"],
        "secretPath": path,
        "tags": rec["tags"],
        "secretMetadata": [],
    }


def _b64(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class InfisicalApi(App):
    """Infisical's REST API as a machine identity sees it."""

    name = "infisical"
    server_header = "infisical-standin"
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("GET", "/api/status", "status"),
        ("POST", "/api/v1/auth/universal-auth/login", "login"),
        ("GET", SECRETS, "list_secrets"),
        ("GET", SECRETS + "/{name}", "get_secret"),
        ("POST", SECRETS + "/{name}", "create_secret"),
        ("PATCH", SECRETS + "/{name}", "update_secret"),
        ("DELETE", SECRETS + "/{name}", "delete_secret"),
    ]

    def render_error(self, req: Request, err: ApiError) -> Response:
        """Infisical's `{reqId, statusCode, message, error}`."""
        names = {400: "BadRequestError", 401: "UnauthorizedError", 403: "PermissionDenied",
                 404: "NotFoundError", 405: "MethodNotAllowed", 411: "BadRequestError",
                 413: "PayloadTooLarge", 422: "ValidationFailure", 500: "InternalServerError"}
        body: dict[str, Any] = {"reqId": f"req-{secrets.token_hex(7)}", "statusCode": err.status,
                                "message": err.details.get("issues", err.message),
                                "error": err.code or names.get(err.status, "Error")}
        if err.status == 403 and err.code == "PermissionDenied":
            body["details"] = []
        return json_response(err.status, body)

    def status(self, req: Request) -> Response:
        """GET /api/status (no auth), as Infisical's health endpoint."""
        return json_response(200, {"date": _now(), "message": "Ok", "emailConfigured": False,
                                   "inviteOnlySignup": True, "redisConfigured": True,
                                   "secretScanningConfigured": False})

    def login(self, req: Request) -> Response:
        """POST /api/v1/auth/universal-auth/login {clientId, clientSecret}."""
        body = req.params()
        for field in ("clientId", "clientSecret"):
            if not isinstance(body.get(field), str) or not body[field]:
                raise _validation(field)
        now = self.clock()
        with self.state.update() as state:
            ident = state["identities"].get(body["clientId"])
            if ident is None or not secrets.compare_digest(
                    ident["client_secret_sha256"], sha256(body["clientSecret"])):
                raise ApiError(401, "Invalid credentials", "UnauthorizedError")
            ttl = int(ident["access_token_ttl"])
            claims = {"identityId": ident["id"], "clientSecretId": str(uuid.uuid4()),
                      "identityAccessTokenId": str(uuid.uuid4()),
                      "authTokenType": "identityAccessToken", "iat": int(now), "exp": int(now) + ttl}
            token = ".".join([_b64({"alg": "HS256", "typ": "JWT"}), _b64(claims),
                              _b64(secrets.token_bytes(32))])
            tokens = {k: v for k, v in state["access_tokens"].items() if v["expires_at"] > now}
            tokens[sha256(token)] = {"client_id": body["clientId"], "expires_at": now + ttl}
            state["access_tokens"] = tokens
        return json_response(200, {"accessToken": token, "expiresIn": ttl,
                                   "accessTokenMaxTTL": ttl, "tokenType": "Bearer"})

    def _identity(self, req: Request, state: dict[str, Any]) -> dict[str, Any]:
        token = req.bearer()
        if not token:
            raise ApiError(401, "Token missing", "UnauthorizedError")
        entry = state["access_tokens"].get(sha256(token))
        if entry is None:
            raise ApiError(403, "The provided access token is malformed. Please use a valid token "
                                "or generate a new one and try again.", "TokenError")
        if entry["expires_at"] <= self.clock():
            raise ApiError(403, "Your token has expired. Please re-authenticate.", "TokenError")
        ident = state["identities"].get(entry["client_id"])
        if ident is None:
            raise ApiError(401, "Identity not found", "UnauthorizedError")
        return ident

    def _scope(
        self, req: Request, state: dict[str, Any], params: dict[str, Any], action: str
    ) -> tuple[dict[str, Any], str, str, str, dict[str, Any]]:
        """Check identity, project, environment and permission.

        Returns (identity, project id, environment, secret path, {path: {key: record}}).
        """
        ident = self._identity(req, state)
        for field in ("workspaceId", "environment"):
            if not isinstance(params.get(field), str) or not params[field]:
                raise _validation(field)
        project_id, env = params["workspaceId"], params["environment"]
        path = _norm_path(params.get("secretPath", "/"))
        if project_id not in state["projects"]:
            raise ApiError(404, f"Project with ID '{project_id}' not found", "NotFoundError")
        if ident["project_id"] != project_id:
            raise ApiError(403, "Identity is not a member of the project", "ForbiddenError")
        if env not in state["projects"][project_id]["environments"]:
            raise ApiError(404, f"Environment with slug '{env}' in project with ID '{project_id}' "
                                "not found", "NotFoundError")
        if not self._allowed(ident, action, path):
            raise ApiError(403, f"You are not allowed to {action} on secrets", "PermissionDenied")
        folders = state["secrets"].get(project_id, {}).get(env, {})
        return ident, project_id, env, path, folders

    @staticmethod
    def _allowed(ident: dict[str, Any], action: str, path: str) -> bool:
        if ident["role"] == "admin":
            return True
        if action not in ("describeSecret", "readValue"):
            return False
        return any(p == path or fnmatch.fnmatchcase(path, p) for p in ident["read_paths"])

    @staticmethod
    def _view(params: dict[str, Any]) -> bool:
        return str(params.get("viewSecretValue", "true")).lower() not in ("false", "0")

    def list_secrets(self, req: Request) -> Response:
        """GET /api/v3/secrets/raw?workspaceId&environment&secretPath[&recursive][&viewSecretValue]."""
        state = self.state.read()
        params = req.query
        view = self._view(params)
        action = "readValue" if view else "describeSecret"
        ident, project_id, env, path, folders = self._scope(req, state, params, action)
        if params.get("recursive", "false").lower() == "true":
            prefix = path.rstrip("/") + "/"
            paths = [p for p in folders if (p == path or p.startswith(prefix))
                     and self._allowed(ident, action, p)]
        else:
            paths = [path] if path in folders else []
        out = [_render(project_id, env, p, key, rec, view)
               for p in sorted(paths) for key, rec in sorted(folders[p].items())]
        return json_response(200, {"secrets": out, "imports": []})

    def get_secret(self, req: Request, name: str) -> Response:
        """GET /api/v3/secrets/raw/{name}?workspaceId&environment&secretPath."""
        state = self.state.read()
        params = req.query
        view = self._view(params)
        _, project_id, env, path, folders = self._scope(
            req, state, params, "readValue" if view else "describeSecret")
        rec = folders.get(path, {}).get(name)
        if rec is None:
            raise ApiError(404, f"Secret with name '{name}' not found", "NotFoundError")
        return json_response(200, {"secret": _render(project_id, env, path, name, rec, view)})

    def _write(self, req: Request, name: str, action: str) -> Response:
        params = req.params()
        with self.state.update() as state:
            _, project_id, env, path, folders = self._scope(req, state, params, action)
            if path not in folders:
                raise ApiError(404, f"Folder with path '{path}' in environment with slug '{env}' "
                                    "not found", "NotFoundError")
            folder = folders[path]
            now = _now()
            if action == "create":
                if name in folder:
                    raise ApiError(400, "Secret already exist", "BadRequestError")
                value = params.get("secretValue")
                if not isinstance(value, str):
                    raise _validation("secretValue")
                folder[name] = _secret_record(value, now, str(params.get("secretComment") or ""))
                rec = folder[name]
            else:
                rec = folder.get(name)
                if rec is None:
                    raise ApiError(404, f"Secret with name '{name}' not found", "NotFoundError")
                if action == "delete":
                    del folder[name]
                else:
                    if "secretValue" in params:
                        if not isinstance(params["secretValue"], str):
                            raise _validation("secretValue", "Expected string")
                        rec["value"] = params["secretValue"]
                    if "secretComment" in params:
                        rec["comment"] = str(params["secretComment"])
                    rec["version"] += 1
                    rec["updated_at"] = now
                    new_name = params.get("newSecretName")
                    if isinstance(new_name, str) and new_name and new_name != name:
                        if new_name in folder:
                            raise ApiError(400, "Secret already exist", "BadRequestError")
                        folder[new_name] = folder.pop(name)
                        name = new_name
        return json_response(200, {"secret": _render(project_id, env, path, name, rec, True)})

    def create_secret(self, req: Request, name: str) -> Response:
        """POST /api/v3/secrets/raw/{name} {workspaceId, environment, secretPath, secretValue}."""
        return self._write(req, name, "create")

    def update_secret(self, req: Request, name: str) -> Response:
        """PATCH /api/v3/secrets/raw/{name} {workspaceId, environment, secretPath, secretValue}."""
        return self._write(req, name, "edit")

    def delete_secret(self, req: Request, name: str) -> Response:
        """DELETE /api/v3/secrets/raw/{name} {workspaceId, environment, secretPath}."""
        return self._write(req, name, "delete")


def main(argv: list[str] | None = None) -> int:
    """Serve the stand-in until SIGTERM."""
    return serve_main("infisical", InfisicalApi, argv)


if __name__ == "__main__":
    sys.exit(main())
