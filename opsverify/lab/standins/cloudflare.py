"""Cloudflare stand-in: API v4 (zones, DNS records, tunnel configurations) and the HTTPS edge."""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import re
import secrets
import ssl
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from opsverify.lab.standins._http import (
    MAX_BODY,
    ApiError,
    App,
    Request,
    Response,
    arg_parser,
    json_response,
    load_state,
    parse_listen,
    run,
    sha256,
    take_rate_limit,
    text_response,
    tls_context,
)

API = "/client/v4"
TUNNEL_SUFFIX = ".cfargotunnel.com"
RECORD_TYPES = {"A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA"}
PROXIABLE = {"A", "AAAA", "CNAME"}
PROXY_TIMEOUT = 5.0
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "proxy-connection",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hex_id() -> str:
    return uuid.uuid4().hex


def seed(
    *,
    account_id: str,
    account_name: str,
    zone_id: str,
    zone_name: str,
    tunnel_id: str,
    ingress: list[dict[str, Any]],
    read_token: str,
    edit_token: str,
    dns_records: list[dict[str, Any]] | None = None,
    tunnel_name: str = "homelab",
    config_version: int = 1,
    config_src: str = "cloudflare",
    quirks: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The initial state of the Cloudflare stand-in.

    account_id/account_name: the account owning the zone and the tunnel.
    zone_id/zone_name: the zone (e.g. 32-hex id, "ronny.works").
    tunnel_id: the tunnel's UUID; ingress: its cloudflared ingress rules, in order
      ({"hostname": ..., "service": "http://ip:port"}, ending with {"service": "http_status:404"}).
    read_token: bearer token that may only read (GET); edit_token: may read and write.
      Only their SHA-256 is stored.
    dns_records: [{"name", "type", "content", "proxied"?, "ttl"?, "comment"?, "tags"?}];
      names may be relative to the zone. A tunnel route is a proxied CNAME to
      "<tunnel_id>.cfargotunnel.com".
    tunnel_name/config_version: the tunnel's name and the version of its current configuration.
    config_src: "cloudflare" (remotely managed) or "local": a locally managed tunnel's ingress
      lives in cloudflared's config.yml on the connector; the API answers `config: null`,
      version 0, `source: "local"`, and only the edge (through the connector) follows the rules.
    quirks: {"no_total_pages": true} leaves total_pages out of list result_info, as Cloudflare's
      newer list answers do; {"max_per_page": N} caps the page size a list answers with.
    """
    now = _now()
    state: dict[str, Any] = {
        "accounts": {account_id: {"name": account_name}},
        "tokens": [
            {"id": _hex_id(), "name": "read", "scope": "read", "sha256": sha256(read_token)},
            {"id": _hex_id(), "name": "edit", "scope": "edit", "sha256": sha256(edit_token)},
        ],
        "zones": {
            zone_id: {
                "name": zone_name,
                "account_id": account_id,
                "status": "active",
                "created_on": now,
                "modified_on": now,
                "dns_records": {},
            }
        },
        "tunnels": {
            tunnel_id: {
                "account_id": account_id,
                "name": tunnel_name,
                "status": "healthy",
                "created_at": now,
                "version": config_version,
                "config_created_at": now,
                "config": {"ingress": ingress, "warp-routing": {"enabled": False}, "originRequest": {}},
            }
        },
        "quirks": dict(quirks or {}),
    }
    if config_src == "local":
        tunnel = state["tunnels"][tunnel_id]
        tunnel.update(version=0, local_config=tunnel.pop("config"), config=None)
    records = state["zones"][zone_id]["dns_records"]
    for spec in dns_records or []:
        record = _build_record(spec, zone_name, None)
        records[record["id"]] = record
    return state


# --- DNS records ---------------------------------------------------------------------------


def _fqdn(name: Any, zone: str) -> str:
    if not isinstance(name, str):
        raise ApiError(400, "DNS name is invalid.", 9005)
    name = name.strip().rstrip(".").lower()
    if name in ("", "@", zone):
        return zone
    return name if name.endswith("." + zone) else f"{name}.{zone}"


def _check_content(rtype: str, content: Any) -> str:
    if not isinstance(content, str) or not content.strip():
        raise ApiError(400, "DNS record content is required.", 9005)
    content = content.strip()
    try:
        if rtype == "A":
            return str(ipaddress.IPv4Address(content))
        if rtype == "AAAA":
            return str(ipaddress.IPv6Address(content))
    except ValueError:
        kind = "IPv4" if rtype == "A" else "IPv6"
        raise ApiError(400, f"Content for {rtype} record is invalid. Must be a valid {kind} address",
                       9005) from None
    if rtype in ("CNAME", "NS", "MX"):
        content = content.rstrip(".").lower()
        if not re.fullmatch(r"[a-z0-9_*]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*",
                            content):
            raise ApiError(400, f"Content for {rtype} record is invalid.", 9005)
    return content


def _build_record(spec: dict[str, Any], zone: str, old: dict[str, Any] | None) -> dict[str, Any]:
    """A full record from a request body (merged over `old` for PATCH)."""
    base = dict(old or {})
    base.update(spec)
    rtype = str(base.get("type") or "").upper()
    if rtype not in RECORD_TYPES:
        raise ApiError(400, "Invalid or unsupported DNS record type.", 9004 if rtype else 9003)
    proxied = base.get("proxied", False)
    if not isinstance(proxied, bool):
        raise ApiError(400, "proxied must be a boolean.", 9003)
    if proxied and rtype not in PROXIABLE:
        raise ApiError(400, "This record type cannot be proxied.", 9004)
    ttl = base.get("ttl", 1)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not (ttl == 1 or 30 <= ttl <= 86400):
        raise ApiError(400, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
                       9021)
    comment = base.get("comment")
    tags = base.get("tags", [])
    if comment is not None and not isinstance(comment, str):
        raise ApiError(400, "comment must be a string.", 9003)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ApiError(400, "tags must be a list of strings.", 9003)
    settings = {"flatten_cname": False} if rtype == "CNAME" else {}
    if isinstance(base.get("settings"), dict):
        settings.update(base["settings"])
    now = _now()
    record: dict[str, Any] = {
        "id": base.get("id") or _hex_id(),
        "name": _fqdn(base.get("name"), zone),
        "type": rtype,
        "content": _check_content(rtype, base.get("content")),
        "proxiable": rtype in PROXIABLE,
        "proxied": proxied,
        "ttl": ttl,
        "settings": settings,
        "meta": {},
        "comment": comment,
        "tags": tags,
        "created_on": base.get("created_on") or now,
        "modified_on": now,
    }
    if rtype in ("MX", "SRV"):
        record["priority"] = int(base.get("priority") or 0)
    return record


def _check_conflicts(records: dict[str, Any], new: dict[str, Any]) -> None:
    for other in records.values():
        if other["id"] == new["id"] or other["name"] != new["name"]:
            continue
        if (other["type"], other["content"]) == (new["type"], new["content"]):
            raise ApiError(400, "An identical record already exists.", 81058)
        if "CNAME" in (other["type"], new["type"]) and {other["type"], new["type"]} <= PROXIABLE:
            raise ApiError(400, "An A, AAAA, or CNAME record with that host already exists.", 81053)


def _page(req: Request, items: list[Any], default: int, quirks: dict[str, Any]
          ) -> tuple[list[Any], dict[str, int]]:
    try:
        page = int(req.query.get("page") or 1)
        per_page = int(req.query.get("per_page") or default)
    except ValueError:
        raise ApiError(400, "page and per_page must be integers", 1001) from None
    if page < 1 or not 1 <= per_page <= 5_000_000:
        raise ApiError(400, "page or per_page out of range", 1001)
    per_page = min(per_page, int(quirks.get("max_per_page") or per_page))
    chunk = items[(page - 1) * per_page: page * per_page]
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": len(items),
        "total_pages": max(1, math.ceil(len(items) / per_page)),
    }
    if quirks.get("no_total_pages"):
        del info["total_pages"]
    return chunk, info


def _ok(result: Any, result_info: dict[str, int] | None = None, status: int = 200) -> Response:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return json_response(status, body)


def _no_route(req: Request) -> ApiError:
    return ApiError(404, f"Could not route to {req.path}, perhaps your object identifier is invalid?",
                    7003)


# --- the API -------------------------------------------------------------------------------


class CloudflareApi(App):
    """Cloudflare API v4 under /client/v4."""

    name = "cloudflare"
    server_header = "cloudflare"
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("GET", f"{API}/user/tokens/verify", "verify_token"),
        ("GET", f"{API}/zones", "list_zones"),
        ("GET", f"{API}/zones/{{zone_id}}", "get_zone"),
        ("GET", f"{API}/zones/{{zone_id}}/dns_records", "list_records"),
        ("POST", f"{API}/zones/{{zone_id}}/dns_records", "create_record"),
        ("GET", f"{API}/zones/{{zone_id}}/dns_records/{{record_id}}", "get_record"),
        ("PUT", f"{API}/zones/{{zone_id}}/dns_records/{{record_id}}", "put_record"),
        ("PATCH", f"{API}/zones/{{zone_id}}/dns_records/{{record_id}}", "patch_record"),
        ("DELETE", f"{API}/zones/{{zone_id}}/dns_records/{{record_id}}", "delete_record"),
        ("GET", f"{API}/accounts/{{account_id}}/cfd_tunnel/{{tunnel_id}}", "get_tunnel"),
        ("GET", f"{API}/accounts/{{account_id}}/cfd_tunnel/{{tunnel_id}}/configurations",
         "get_config"),
        ("PUT", f"{API}/accounts/{{account_id}}/cfd_tunnel/{{tunnel_id}}/configurations",
         "put_config"),
    ]

    def handle(self, req: Request) -> Response:
        """Rate limits (on demand, see _http.take_rate_limit), then authenticate, then route."""
        wait = take_rate_limit(self.state)
        if wait is not None:  # Cloudflare's 429: code 971 and Retry-After in seconds
            response = self.render_error(req, ApiError(
                429, "Please wait and consider throttling your request speed", 971))
            response.headers.append(("Retry-After", str(wait)))
            return response
        try:
            self.router.resolve(req.method, req.path)
            self._authorize(req)
        except ApiError as err:
            return self.render_error(req, err)
        return super().handle(req)

    def render_error(self, req: Request, err: ApiError) -> Response:
        """Cloudflare's envelope with `success: false`."""
        code = err.code
        if code is None:
            code = {404: 7000, 405: 10405, 413: 9207, 500: 10001}.get(err.status, 9207)
            if err.status == 404:
                err = ApiError(400, "No route for that URI", 7000)
        error: dict[str, Any] = {"code": code, "message": err.message}
        if "error_chain" in err.details:
            error["error_chain"] = err.details["error_chain"]
        return json_response(err.status, {"success": False, "errors": [error], "messages": [],
                                          "result": None})

    def _authorize(self, req: Request) -> dict[str, Any]:
        header = req.headers.get("Authorization")
        if not header:
            raise ApiError(400, "Missing X-Auth-Key, X-Auth-Email or Authorization headers", 9106)
        token = req.bearer()
        if not token or not re.fullmatch(r"[A-Za-z0-9_\-.]+", token):
            raise ApiError(400, "Invalid request headers", 6003, error_chain=[
                {"code": 6111, "message": "Invalid format for Authorization header"}])
        digest = sha256(token)
        for entry in self.state.read()["tokens"]:
            if secrets.compare_digest(entry["sha256"], digest):
                if req.method not in ("GET", "HEAD") and entry["scope"] != "edit":
                    raise ApiError(403, "Authentication error", 10000)
                return entry
        raise ApiError(403, "Authentication error", 10000)

    def _zone(self, req: Request, state: dict[str, Any], zone_id: str) -> dict[str, Any]:
        zone = state["zones"].get(zone_id)
        if zone is None:
            raise _no_route(req)
        return zone

    def _zone_object(self, state: dict[str, Any], zone_id: str) -> dict[str, Any]:
        zone = state["zones"][zone_id]
        account = state["accounts"].get(zone["account_id"], {})
        return {
            "id": zone_id,
            "name": zone["name"],
            "status": zone["status"],
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": ["lab-ns1.ns.cloudflare.com", "lab-ns2.ns.cloudflare.com"],
            "original_name_servers": None,
            "original_registrar": None,
            "original_dnshost": None,
            "created_on": zone["created_on"],
            "modified_on": zone["modified_on"],
            "activated_on": zone["created_on"],
            "meta": {"phishing_detected": False},
            "owner": {"id": None, "type": "user", "email": None},
            "account": {"id": zone["account_id"], "name": account.get("name", "")},
            "permissions": ["#dns_records:read", "#zone:read"],
            "plan": {"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website",
                     "price": 0, "currency": "USD", "frequency": "", "is_subscribed": False,
                     "can_subscribe": False, "legacy_id": "free", "legacy_discount": False,
                     "externally_managed": False},
        }

    def verify_token(self, req: Request) -> Response:
        """GET /user/tokens/verify."""
        entry = self._authorize(req)
        body = {"success": True, "errors": [],
                "messages": [{"code": 10000, "message": "This API Token is valid and active",
                              "type": None}],
                "result": {"id": entry["id"], "status": "active"}}
        return json_response(200, body)

    def list_zones(self, req: Request) -> Response:
        """GET /zones?name=&status=&account.id=."""
        state = self.state.read()
        q = req.query
        zones = [self._zone_object(state, zid) for zid in sorted(state["zones"])]
        zones = [z for z in zones
                 if q.get("name", z["name"]).lower() == z["name"]
                 and q.get("status", z["status"]) == z["status"]
                 and q.get("account.id", z["account"]["id"]) == z["account"]["id"]]
        chunk, info = _page(req, zones, 20, state.get("quirks") or {})
        return _ok(chunk, info)

    def get_zone(self, req: Request, zone_id: str) -> Response:
        """GET /zones/{zone_id}."""
        state = self.state.read()
        self._zone(req, state, zone_id)
        return _ok(self._zone_object(state, zone_id))

    def list_records(self, req: Request, zone_id: str) -> Response:
        """GET /zones/{zone_id}/dns_records?type=&name=&content=&proxied=."""
        state = self.state.read()
        zone = self._zone(req, state, zone_id)
        q = req.query
        name = q.get("name.exact", q.get("name"))
        want = {
            "type": q["type"].upper() if "type" in q else None,
            "name": _fqdn(name, zone["name"]) if name is not None else None,
            "content": q.get("content.exact", q.get("content")),
            "proxied": {"true": True, "false": False}.get(q.get("proxied", "").lower()),
        }
        records = sorted(zone["dns_records"].values(),
                         key=lambda r: (r["type"], r["name"], r["content"]))
        records = [r for r in records
                   if all(v is None or r[k] == v for k, v in want.items())]
        chunk, info = _page(req, records, 100, state.get("quirks") or {})
        return _ok(chunk, info)

    def get_record(self, req: Request, zone_id: str, record_id: str) -> Response:
        """GET /zones/{zone_id}/dns_records/{id}."""
        zone = self._zone(req, self.state.read(), zone_id)
        return _ok(self._record(zone, record_id))

    def _record(self, zone: dict[str, Any], record_id: str) -> dict[str, Any]:
        record = zone["dns_records"].get(record_id)
        if record is None:
            raise ApiError(404, "Record does not exist.", 81044)
        return record

    def _write_record(self, req: Request, zone_id: str, record_id: str | None,
                      replace: bool) -> dict[str, Any]:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "Request body is invalid.", 9207)
        with self.state.update() as state:
            zone = self._zone(req, state, zone_id)
            records = zone["dns_records"]
            old = self._record(zone, record_id) if record_id else None
            keep = {"id": old["id"], "created_on": old["created_on"]} if old else {}
            spec = {k: v for k, v in body.items() if k not in ("id", "created_on")} | keep
            record = _build_record(spec, zone["name"], None if replace else old)
            _check_conflicts(records, record)
            records[record["id"]] = record
            return record

    def create_record(self, req: Request, zone_id: str) -> Response:
        """POST /zones/{zone_id}/dns_records."""
        return _ok(self._write_record(req, zone_id, None, replace=True))

    def put_record(self, req: Request, zone_id: str, record_id: str) -> Response:
        """PUT /zones/{zone_id}/dns_records/{id} (overwrite)."""
        return _ok(self._write_record(req, zone_id, record_id, replace=True))

    def patch_record(self, req: Request, zone_id: str, record_id: str) -> Response:
        """PATCH /zones/{zone_id}/dns_records/{id} (merge)."""
        return _ok(self._write_record(req, zone_id, record_id, replace=False))

    def delete_record(self, req: Request, zone_id: str, record_id: str) -> Response:
        """DELETE /zones/{zone_id}/dns_records/{id}."""
        with self.state.update() as state:
            zone = self._zone(req, state, zone_id)
            self._record(zone, record_id)
            del zone["dns_records"][record_id]
        return _ok({"id": record_id})

    def _tunnel(self, req: Request, state: dict[str, Any], account_id: str,
                tunnel_id: str) -> dict[str, Any]:
        tunnel = state["tunnels"].get(tunnel_id)
        if account_id not in state["accounts"] or not tunnel or tunnel["account_id"] != account_id:
            raise _no_route(req)
        return tunnel

    def get_tunnel(self, req: Request, account_id: str, tunnel_id: str) -> Response:
        """GET /accounts/{account_id}/cfd_tunnel/{tunnel_id}."""
        tunnel = self._tunnel(req, self.state.read(), account_id, tunnel_id)
        healthy = tunnel["status"] == "healthy"
        connections = [{
            "colo_name": "lab1", "id": str(uuid.uuid5(uuid.NAMESPACE_URL, tunnel_id)),
            "is_pending_reconnect": False, "origin_ip": "127.0.0.1",
            "opened_at": tunnel["created_at"], "client_id": str(uuid.uuid5(uuid.NAMESPACE_DNS,
                                                                           tunnel_id)),
            "client_version": "2025.1.0",
        }] if healthy else []
        return _ok({
            "id": tunnel_id,
            "account_tag": account_id,
            "created_at": tunnel["created_at"],
            "deleted_at": None,
            "name": tunnel["name"],
            "connections": connections,
            "conns_active_at": tunnel["created_at"] if healthy else None,
            "conns_inactive_at": None if healthy else tunnel["created_at"],
            "tun_type": "cfd_tunnel",
            "metadata": {},
            "status": tunnel["status"],
            "remote_config": tunnel["config"] is not None,
        })

    def _config_result(self, account_id: str, tunnel_id: str, tunnel: dict[str, Any]) -> Response:
        return _ok({
            "account_id": account_id,
            "tunnel_id": tunnel_id,
            "version": tunnel["version"],
            "config": tunnel["config"],
            "source": "cloudflare" if tunnel["config"] is not None else "local",
            "created_at": tunnel["config_created_at"] if tunnel["config"] is not None else None,
        })

    def get_config(self, req: Request, account_id: str, tunnel_id: str) -> Response:
        """GET /accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations."""
        tunnel = self._tunnel(req, self.state.read(), account_id, tunnel_id)
        return self._config_result(account_id, tunnel_id, tunnel)

    def put_config(self, req: Request, account_id: str, tunnel_id: str) -> Response:
        """PUT .../configurations with {"config": {...}}: replaces it and bumps the version."""
        body = req.json()
        config = body.get("config") if isinstance(body, dict) else None
        _validate_config(config)
        with self.state.update() as state:
            tunnel = self._tunnel(req, state, account_id, tunnel_id)
            tunnel["config"] = config
            tunnel["version"] += 1
            tunnel["config_created_at"] = _now()
        return self._config_result(account_id, tunnel_id, tunnel)


def _validate_config(config: Any) -> None:
    if not isinstance(config, dict):
        raise ApiError(400, "Bad Configuration: config must be an object", 1056)
    ingress = config.get("ingress", [])
    if not isinstance(ingress, list):
        raise ApiError(400, "Bad Configuration: ingress must be a list", 1056)
    for i, rule in enumerate(ingress):
        if not isinstance(rule, dict) or not isinstance(rule.get("service"), str):
            raise ApiError(400, f"Bad Configuration: ingress rule #{i + 1} needs a service", 1056)
        if not isinstance(rule.get("hostname", ""), str) or not isinstance(rule.get("path", ""), str):
            raise ApiError(400, f"Bad Configuration: ingress rule #{i + 1} is malformed", 1056)


# --- the edge ------------------------------------------------------------------------------


def _tunnel_for_host(state: dict[str, Any], host: str) -> str | None:
    """The tunnel a proxied CNAME routes `host` to, as Cloudflare's edge resolves it."""
    zones = [z for z in state["zones"].values() if host == z["name"] or host.endswith("." + z["name"])]
    if not zones:
        return None
    zone = max(zones, key=lambda z: len(z["name"]))
    candidates = [host, "*." + host.split(".", 1)[-1]] if host != zone["name"] else [host]
    for name in candidates:
        named = [r for r in zone["dns_records"].values() if r["name"] == name]
        for record in named:
            target = record["content"].rstrip(".").lower()
            if record["type"] == "CNAME" and record["proxied"] and target.endswith(TUNNEL_SUFFIX):
                return target[: -len(TUNNEL_SUFFIX)]
        if named:
            return None
    return None


def _match_rule(ingress: list[dict[str, Any]], host: str, path: str) -> dict[str, Any] | None:
    """The first ingress rule matching host and path, as cloudflared matches them."""
    for rule in ingress:
        pattern = (rule.get("hostname") or "").lower()
        if pattern.startswith("*."):
            host_ok = host.endswith(pattern[1:])
        else:
            host_ok = pattern in ("", "*") or pattern == host
        if not host_ok:
            continue
        if rule.get("path"):
            try:
                if not re.search(rule["path"], path):
                    continue
            except re.error:
                continue
        return rule
    return None


def _cf_error(status: int, code: int) -> Response:
    return text_response(status, f"error code: {code}")


class CloudflareEdge(App):
    """The HTTPS edge: Host → proxied CNAME → tunnel ingress → origin, redirects untouched."""

    name = "edge"
    server_header = "cloudflare"

    def handle(self, req: Request) -> Response:
        """Route one public request through the tunnel."""
        ray = f"{secrets.token_hex(8)}-LAB"
        response = self._route(req, ray)
        response.headers += [("cf-ray", ray), ("cf-cache-status", "DYNAMIC")]
        return response

    def render_error(self, req: Request, err: ApiError) -> Response:
        """Edge errors are plain text, as Cloudflare answers non-browser clients."""
        return text_response(err.status, f"error code: {err.status}")

    def _route(self, req: Request, ray: str) -> Response:
        host = (req.headers.get("Host") or "").strip().lower()
        host = re.sub(r":\d+$", "", host).rstrip(".")
        state = self.state.read()
        tunnel_id = _tunnel_for_host(state, host)
        if tunnel_id is None:
            return _cf_error(530, 1016)
        tunnel = state["tunnels"].get(tunnel_id)
        if tunnel is None or tunnel.get("status") != "healthy":
            return _cf_error(530, 1033)
        # A locally managed tunnel routes by the connector's config.yml (local_config).
        config = tunnel["config"] if tunnel["config"] is not None else tunnel.get("local_config") \
            or {}
        rule = _match_rule(config.get("ingress") or [], host, req.path)
        if rule is None:
            return text_response(503, "no ingress rule matched this request\n")
        service = rule["service"].strip()
        status = re.fullmatch(r"http_status:(\d{3})", service)
        if status:
            return Response(int(status.group(1)))
        origin = {**(config.get("originRequest") or {}), **(rule.get("originRequest") or {})}
        if urlsplit(service).scheme in ("http", "https"):
            return self._proxy(req, service, origin, host, ray)
        return _cf_error(502, 502)

    def _proxy(self, req: Request, service: str, origin: dict[str, Any], host: str,
               ray: str) -> Response:
        url = urlsplit(service)
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
        except ValueError:
            return _cf_error(502, 502)
        if url.scheme == "https":
            ctx = ssl.create_default_context()
            if origin.get("noTLSVerify"):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname or "", port, timeout=PROXY_TIMEOUT, context=ctx)
        else:
            conn = http.client.HTTPConnection(url.hostname or "", port, timeout=PROXY_TIMEOUT)
        headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
        headers.update({
            "Host": origin.get("httpHostHeader") or req.headers.get("Host") or host,
            "X-Forwarded-For": req.client,
            "X-Forwarded-Proto": "https",
            "Cf-Connecting-Ip": req.client,
            "Cf-Ray": ray,
            "Cf-Visitor": json.dumps({"scheme": "https"}),
            "Cdn-Loop": "cloudflare",
        })
        target = urlsplit(req.target)
        path = target.path + (f"?{target.query}" if target.query else "")
        try:
            conn.request(req.method, path or "/", body=req.body or None, headers=headers)
            upstream = conn.getresponse()
            body = upstream.read(16 * MAX_BODY)
        except (OSError, http.client.HTTPException):
            return _cf_error(502, 502)
        finally:
            conn.close()
        drop = HOP_BY_HOP | {"server", "date"}
        if req.method != "HEAD":
            drop = drop | {"content-length"}
        kept = [(k, v) for k, v in upstream.getheaders() if k.lower() not in drop]
        return Response(upstream.status, body, kept, upstream.reason)


def main(argv: list[str] | None = None) -> int:
    """Serve the API (and, with --edge-listen, the edge) until SIGTERM."""
    parser = arg_parser("cloudflare")
    parser.add_argument("--edge-listen", type=parse_listen, help="ADDR:PORT of the HTTPS edge")
    parser.add_argument("--edge-tls-cert", help="edge certificate (default: --tls-cert)")
    parser.add_argument("--edge-tls-key", help="edge key (default: --tls-key)")
    args = parser.parse_args(argv)
    state = load_state(parser, args.state)
    listeners = [(CloudflareApi(state), args.listen, tls_context(args.tls_cert, args.tls_key))]
    if args.edge_listen:
        edge_tls = tls_context(args.edge_tls_cert or args.tls_cert, args.edge_tls_key or args.tls_key)
        listeners.append((CloudflareEdge(state), args.edge_listen, edge_tls))
    return run("cloudflare", listeners)


if __name__ == "__main__":
    sys.exit(main())
