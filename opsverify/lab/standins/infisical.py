"""Infisical stand-in: universal-auth login, the v3 raw secrets API and secret imports.

Secret imports work as Infisical's (backend/src/services/secret-import/secret-import-fns.ts):
a folder imports another folder (any environment) through /api/v1|v2/secret-imports; with
include_imports=true the raw secrets list answers `imports: [{secretPath, environment,
folderId, secrets}]` in import order, the secrets of imports of imports appended to their
top-level import (ten levels at most, cycles cut), each filtered by what the caller may read.
"""

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
    take_rate_limit,
)

SECRETS = "/api/v3/secrets/raw"
IMPORT_DEPTH = 10  # Infisical's LEVEL_BREAK
HIDDEN = "<hidden-by-infisical>"  # INFISICAL_SECRET_VALUE_HIDDEN_MASK, sent when not viewed
ENV_NAMES = {"dev": "Development", "staging": "Staging", "prod": "Production"}


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
        "imports": {project_id: {}},  # {env: {path: [import record, ...]}}
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
        "secretValue": rec["value"] if view else HIDDEN,
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


def _uuid(*parts: str) -> str:
    """A stable id for a folder or environment (the stand-in keeps none of its own)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "infisical:" + ":".join(parts)))


def _env_info(project_id: str, env: str) -> dict[str, str]:
    return {"name": ENV_NAMES.get(env, env), "slug": env, "id": _uuid(project_id, env)}


def _import_view(project_id: str, rec: dict[str, Any]) -> dict[str, Any]:
    """An import record as Infisical answers it (SecretImportsSchema, importEnv expanded)."""
    return {"id": rec["id"], "version": 1, "importPath": rec["importPath"],
            "importEnv": _env_info(project_id, rec["importEnv"]), "position": rec["position"],
            "createdAt": rec["createdAt"], "updatedAt": rec["updatedAt"],
            "folderId": rec["folderId"], "isReplication": False}


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
        ("GET", "/api/{version}/secret-imports", "list_imports"),
        ("POST", "/api/{version}/secret-imports", "create_import"),
        ("DELETE", "/api/{version}/secret-imports/{import_id}", "delete_import"),
    ]

    def handle(self, req: Request) -> Response:
        """Rate limits first (on demand, see _http.take_rate_limit), as Infisical's fastify
        rate limiter answers before any route; /api/status is on its allow list."""
        wait = None if req.path == "/api/status" else take_rate_limit(self.state)
        if wait is None:
            return super().handle(req)
        response = self.render_error(req, ApiError(
            429, f"Rate limit exceeded. Please try again in {wait} seconds", "RateLimitExceeded"))
        response.headers += [("x-ratelimit-limit", "600"), ("x-ratelimit-remaining", "0"),
                             ("x-ratelimit-reset", str(wait)), ("retry-after", str(wait))]
        return response

    def render_error(self, req: Request, err: ApiError) -> Response:
        """Infisical's `{reqId, statusCode, message, error}`."""
        names = {400: "BadRequestError", 401: "UnauthorizedError", 403: "PermissionDenied",
                 404: "NotFoundError", 405: "MethodNotAllowed", 411: "BadRequestError",
                 413: "PayloadTooLarge", 422: "ValidationFailure", 429: "RateLimitExceeded",
                 500: "InternalServerError"}
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
        body: dict[str, Any] = {"secrets": out}
        if params.get("include_imports", "false").lower() == "true":
            body["imports"] = self._imported(state, ident, action, project_id, env, path, view)
        return json_response(200, body)

    def _imported(self, state: dict[str, Any], ident: dict[str, Any], action: str,
                  project_id: str, env: str, path: str, view: bool) -> list[dict[str, Any]]:
        """The `imports` of a raw secrets list, as fnSecretsV2FromImports builds them."""
        seen = {(env, path)}  # cycles are cut where they close

        def secrets_of(imp_env: str, imp_path: str, depth: int) -> list[dict[str, Any]]:
            folder = state["secrets"].get(project_id, {}).get(imp_env, {}).get(imp_path)
            if folder is None:
                return []
            out = [_render(project_id, imp_env, imp_path, key, rec, view) for key, rec in
                   sorted(folder.items()) if self._allowed(ident, action, imp_path)]
            for rec in out:  # the import entries' schema: no timestamps, path or tags
                for key in ("createdAt", "updatedAt", "secretPath", "tags"):
                    rec.pop(key)
                rec["workspace"] = ""
            for deeper in self._imports_at(state, project_id, imp_env, imp_path):
                key = (deeper["importEnv"], deeper["importPath"])
                if depth < IMPORT_DEPTH and key not in seen:
                    seen.add(key)
                    out += secrets_of(*key, depth + 1)
            return out

        entries = []
        for rec in self._imports_at(state, project_id, env, path):
            key = (rec["importEnv"], rec["importPath"])
            # getSecretsRaw drops a first-level import whose source the caller may not read.
            if key in seen or not self._allowed(ident, action, rec["importPath"]):
                continue
            seen.add(key)
            entry: dict[str, Any] = {"secretPath": rec["importPath"],
                                     "environment": rec["importEnv"]}
            if rec["importPath"] in state["secrets"].get(project_id, {}).get(rec["importEnv"], {}):
                entry["folderId"] = _uuid(project_id, rec["importEnv"], rec["importPath"])
            entry["secrets"] = secrets_of(*key, 1)
            entries.append(entry)
        return entries

    @staticmethod
    def _imports_at(state: dict[str, Any], project_id: str, env: str, path: str
                    ) -> list[dict[str, Any]]:
        found = state.get("imports", {}).get(project_id, {}).get(env, {}).get(path, [])
        return sorted(found, key=lambda r: r["position"])

    def get_secret(self, req: Request, name: str) -> Response:
        """GET /api/v3/secrets/raw/{name}?workspaceId&environment&secretPath."""
        state = self.state.read()
        params = req.query
        view = self._view(params)
        action = "readValue" if view else "describeSecret"
        ident, project_id, env, path, folders = self._scope(req, state, params, action)
        rec = folders.get(path, {}).get(name)
        if rec is not None:
            return json_response(200, {"secret": _render(project_id, env, path, name, rec, view)})
        if params.get("include_imports", "false").lower() == "true":
            for entry in self._imported(state, ident, action, project_id, env, path, view):
                for found in entry["secrets"]:
                    if found["secretKey"] == name:
                        return json_response(200, {"secret": {**found,
                                                              "secretPath": entry["secretPath"]}})
        raise ApiError(404, f"Secret with name '{name}' not found", "NotFoundError")

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

    def _import_scope(self, req: Request, state: dict[str, Any], version: str,
                      params: dict[str, Any], action: str
                      ) -> tuple[str, str, str, dict[str, Any]]:
        """(project id, environment, folder path, folders) of a secret-imports call: v1 names
        the project workspaceId, v2 projectId; both name the folder `path` (default /)."""
        if version not in ("v1", "v2"):
            raise ApiError(404, f"Route GET:/api/{version}/secret-imports not found",
                           "NotFoundError")
        field = "workspaceId" if version == "v1" else "projectId"
        if not isinstance(params.get(field), str) or not params[field]:
            raise _validation(field)
        scoped = {"workspaceId": params[field], "environment": params.get("environment"),
                  "secretPath": params.get("path", "/")}
        _, project_id, env, path, folders = self._scope(req, state, scoped, action)
        return project_id, env, path, folders

    def list_imports(self, req: Request, version: str) -> Response:
        """GET /api/v1|v2/secret-imports?workspaceId|projectId&environment&path."""
        state = self.state.read()
        project_id, env, path, _ = self._import_scope(req, state, version, req.query,
                                                      "describeSecret")
        found = [_import_view(project_id, r) for r in self._imports_at(state, project_id, env,
                                                                        path)]
        return json_response(200, {"message": "Successfully fetched secret imports",
                                   "secretImports": found})

    def create_import(self, req: Request, version: str) -> Response:
        """POST /api/v1|v2/secret-imports {workspaceId|projectId, environment, path,
        import: {environment, path}}: the folder at `path` imports the one named in `import`."""
        params = req.params()
        source = params.get("import")
        if not isinstance(source, dict):
            raise _validation("import")
        with self.state.update() as state:
            project_id, env, path, folders = self._import_scope(req, state, version, params,
                                                                "create")
            imp_env = source.get("environment")
            if imp_env not in state["projects"][project_id]["environments"]:
                raise ApiError(404, f"Environment with slug '{imp_env}' in project with ID "
                                    f"'{project_id}' not found", "NotFoundError")
            imp_path = _norm_path(source.get("path"))
            if path not in folders:
                raise ApiError(404, f"Folder with path '{path}' in environment with slug "
                                    f"'{env}' not found", "NotFoundError")
            if (imp_env, imp_path) == (env, path):
                raise ApiError(400, "Cannot import from the same location", "BadRequestError")
            at = state.setdefault("imports", {}).setdefault(project_id, {}).setdefault(
                env, {}).setdefault(path, [])
            if any((r["importEnv"], r["importPath"]) == (imp_env, imp_path) for r in at):
                raise ApiError(400, "Secret import already exists", "BadRequestError")
            now = _now()
            rec = {"id": str(uuid.uuid4()), "importEnv": imp_env, "importPath": imp_path,
                   "position": len(at) + 1, "createdAt": now, "updatedAt": now,
                   "folderId": _uuid(project_id, env, path)}
            at.append(rec)
        return json_response(200, {"message": "Successfully created secret import",
                                   "secretImport": _import_view(project_id, rec)})

    def delete_import(self, req: Request, version: str, import_id: str) -> Response:
        """DELETE /api/v1|v2/secret-imports/{id} {workspaceId|projectId, environment, path}."""
        params = req.params()
        with self.state.update() as state:
            project_id, env, path, _ = self._import_scope(req, state, version, params, "delete")
            at = state.get("imports", {}).get(project_id, {}).get(env, {}).get(path, [])
            rec = next((r for r in at if r["id"] == import_id), None)
            if rec is None:
                raise ApiError(404, f"Secret import with ID '{import_id}' not found",
                               "NotFoundError")
            at.remove(rec)
            for position, other in enumerate(sorted(at, key=lambda r: r["position"]), 1):
                other["position"] = position
        return json_response(200, {"message": "Successfully deleted secret import",
                                   "secretImport": _import_view(project_id, rec)})

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
