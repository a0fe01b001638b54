"""Infisical facts: which secret keys exist at each SSOT path (names only, never values).

Keys are asked for as `infisical run` sees them: with secret imports (include_imports=true,
the CLI's default; Infisical resolves imports of imports itself, up to ten levels deep) and
without sub-folders (recursive=false, the CLI's default too). A key reachable only through an
import counts, and the facts name the import it came from.

Also reads single secret values for the service probes (api_http), kept only in memory.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import httpx

from opsverify import redact
from opsverify.facts.api_client import Api, as_dict, as_list, client_for, concurrently, parsed
from opsverify.settings import Settings
from opsverify.ssot import Ssot
from opsverify.verdict import Unreachable

SOURCE = "infisical"
LOGIN = "/api/v1/auth/universal-auth/login"
SECRETS = "/api/v3/secrets/raw"
MISSING = "INFISICAL_TOKEN, or INFISICAL_CLIENT_ID and INFISICAL_CLIENT_SECRET, are not set"


def parse_login(payload: Any) -> str:
    """The accessToken of a universal-auth login answer."""
    token = as_dict(payload, "login response").get("accessToken")
    if not isinstance(token, str) or not token.strip():
        raise ValueError("no accessToken in the login response")
    return token.strip()


def _names(items: Any, what: str) -> list[str]:
    return sorted({i["secretKey"] for i in as_list(items, what)
                   if isinstance(i, dict) and isinstance(i.get("secretKey"), str)})


def parse_secret_keys(payload: Any) -> dict[str, Any]:
    """{keys, imported, imports} of a GET /api/v3/secrets/raw answer; values never looked at.

    keys: every key name the path offers, its own and imported ones (sorted).
    imported: {key: ["env:/path", ...]} for keys the path has only through imports.
    imports: [{"from": "env:/path", "keys": [names]}], in Infisical's order (import position).
    """
    doc = as_dict(payload, "response")
    own = _names(doc.get("secrets"), "secrets")
    imports = []
    for i, entry in enumerate(as_list(doc.get("imports") or [], "imports")):
        entry = as_dict(entry, f"imports[{i}]")
        source = f"{entry.get('environment') or '?'}:{entry.get('secretPath') or '?'}"
        imports.append({"from": source, "keys": _names(entry.get("secrets") or [],
                                                       f"imports[{i}].secrets")})
    imported: dict[str, list[str]] = {}
    for entry in imports:
        for key in entry["keys"]:
            if key not in own:  # the path's own secret wins over an imported one of that name
                imported.setdefault(key, []).append(entry["from"])
    return {"keys": sorted(set(own) | set(imported)), "imported": imported, "imports": imports}


def parse_secret_value(payload: Any) -> str:
    """The value of a GET /api/v3/secrets/raw/{name} answer."""
    secret = as_dict(as_dict(payload, "response").get("secret"), "secret")
    value = secret.get("secretValue")
    if secret.get("secretValueHidden") is True or not isinstance(value, str):
        raise ValueError("the secret's value was not returned (hidden or missing)")
    return value


class InfisicalAuth:
    """The run's Infisical access token: given, or from one universal-auth login, shared."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._token: str | None = None
        self._failed: str | None = None
        self._lock = threading.Lock()

    def headers(self, api: Api, base: str) -> dict[str, str]:
        """Authorization header; logs in once per run (a failure is told to every asker)."""
        with self._lock:
            if self._failed is not None:
                raise api.fail(self._failed)
            if self._token is None:
                try:
                    self._token = self._obtain(api, base)
                except Unreachable as exc:
                    self._failed = exc.reason
                    raise api.fail(exc.reason) from None
            return {"Authorization": f"Bearer {self._token}"}

    def _obtain(self, api: Api, base: str) -> str:
        s = self.settings
        if s.infisical_token:
            redact.register(s.infisical_token)
            return s.infisical_token
        if not (s.infisical_client_id and s.infisical_client_secret):
            raise api.fail(MISSING)
        redact.register(s.infisical_client_secret)
        _, payload = api.get_json(f"{base}{LOGIN}", method="POST", json_body={
            "clientId": s.infisical_client_id, "clientSecret": s.infisical_client_secret})
        token = parsed(api, f"POST {base}{LOGIN}", parse_login, payload)
        redact.register(token)
        return token


def _scope(ssot: Ssot, path: str) -> dict[str, str]:
    inf = ssot.infisical
    return {"workspaceId": inf["project_id"], "environment": inf["environment"],
            "secretPath": path}


def base_url(ssot: Ssot) -> str:
    return str(ssot.infisical["url"]).rstrip("/")


def read_value(api: Api, auth: InfisicalAuth, ssot: Ssot, path: str, name: str) -> str:
    """One secret's value (registered for scrubbing before it is returned)."""
    base = base_url(ssot)
    url = f"{base}{SECRETS}/{quote(name, safe='')}"
    _, payload = api.get_json(url, params={**_scope(ssot, path), "viewSecretValue": "true",
                                           "include_imports": "true"},
                              headers=auth.headers(api, base))
    value = parsed(api, f"GET {url}", parse_secret_value, payload)
    redact.register(value)
    return value


def collect(ssot: Ssot, settings: Settings, client: httpx.Client | None = None,
            auth: InfisicalAuth | None = None) -> dict[str, Any]:
    """The `infisical` facts of the contract, or Unreachable."""
    auth = auth or InfisicalAuth(settings)
    base = base_url(ssot)
    with client_for(SOURCE, settings, client) as http:
        api = Api(SOURCE, http, settings)
        headers = auth.headers(api, base)

        def keys(path: str) -> dict[str, Any]:
            try:
                _, payload = api.get_json(f"{base}{SECRETS}", headers=headers, params={
                    **_scope(ssot, path), "viewSecretValue": "false",
                    "include_imports": "true", "recursive": "false"})
                return parsed(api, f"GET {base}{SECRETS}", parse_secret_keys, payload)
            except Unreachable as exc:  # the query that names the path is not in the reason
                raise api.fail(f"secret path {path}: {exc.reason}") from None

        paths = [sp.path for sp in ssot.secret_paths]
        found = concurrently(keys, paths)
    return {"paths": dict(zip(paths, found, strict=True))}
