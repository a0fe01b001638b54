"""Cloudflare facts: the zone, the tunnel's remotely managed ingress and the zone's DNS records.

A locally managed tunnel (its ingress in cloudflared's config.yml on the connector) answers the
configurations endpoint with `config: null` (`source: "local"`, version 0): that is recorded as
`remote: false`, not as an ingress without rules. DNS records are paged until a short page when
`result_info.total_pages` is absent (Cloudflare's newer list answers omit it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from opsverify import redact
from opsverify.facts.api_client import (
    Api,
    as_dict,
    as_list,
    client_for,
    opt_bool,
    opt_int,
    opt_str,
    parsed,
)
from opsverify.settings import Settings
from opsverify.ssot import Ssot
from opsverify.verdict import Unreachable

SOURCE = "cloudflare"
DNS_PER_PAGE = 100
MAX_PAGES = 100  # 10,000 records: far beyond a homelab zone; a server paging forever stops here


def result_of(payload: Any) -> Any:
    """The `result` of a v4 envelope; ValueError if the envelope is missing or says failure."""
    doc = as_dict(payload, "response")
    if doc.get("success") is False:
        raise ValueError(f"success is false: {api_message_of(doc) or 'no error given'}")
    if "result" not in doc:
        raise ValueError("no result in the response")
    return doc["result"]


def api_message_of(doc: dict[str, Any]) -> str | None:
    errors = doc.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return opt_str(errors[0].get("message"))
    return None


def parse_zone(payload: Any, name: str) -> dict[str, Any] | None:
    """{id, name, account_id} of the zone called `name` in a GET /zones answer, or None."""
    for zone in as_list(result_of(payload), "result"):
        if not isinstance(zone, dict) or (opt_str(zone.get("name")) or "").lower() != name.lower():
            continue
        account = zone.get("account") if isinstance(zone.get("account"), dict) else {}
        zone_id = opt_str(zone.get("id"))
        if zone_id:
            return {"id": zone_id, "name": name, "account_id": opt_str(account.get("id"))}
    return None


def parse_tunnel_config(payload: Any) -> dict[str, Any]:
    """{version, ingress, remote, source} of GET .../cfd_tunnel/{id}/configurations.

    remote: whether Cloudflare holds the tunnel's configuration; `config: null` is a locally
    managed tunnel, whose rules the API cannot show (ingress is then empty, and not "no rules").
    """
    result = as_dict(result_of(payload), "result")
    config = result.get("config")
    if config is not None and not isinstance(config, dict):
        raise ValueError("config is neither an object nor null")
    rules = (config or {}).get("ingress")
    rules = rules if isinstance(rules, list) else []
    ingress = [{"hostname": opt_str(r.get("hostname")) or None,
                "service": opt_str(r.get("service")) or "",
                "path": opt_str(r.get("path")) or None}
               for r in rules if isinstance(r, dict)]
    return {"version": opt_int(result.get("version")), "ingress": ingress,
            "remote": config is not None, "source": opt_str(result.get("source"))}


def parse_dns_page(payload: Any) -> tuple[list[dict[str, Any]], int | None, int | None]:
    """(records, total_pages, per_page) of one GET /zones/{id}/dns_records page; the last two
    None when result_info leaves them out."""
    records = [{"name": opt_str(r.get("name")) or "", "type": opt_str(r.get("type")) or "",
                "content": opt_str(r.get("content")) or "",
                "proxied": opt_bool(r.get("proxied")) or False}
               for r in as_list(result_of(payload), "result") if isinstance(r, dict)]
    info = payload.get("result_info") if isinstance(payload.get("result_info"), dict) else {}
    return records, opt_int(info.get("total_pages")), opt_int(info.get("per_page"))


def collect(ssot: Ssot, settings: Settings, client: httpx.Client | None = None
            ) -> dict[str, Any]:
    """The `cloudflare` facts of the contract, or Unreachable."""
    token = settings.cloudflare_token
    if not token:
        raise Unreachable(SOURCE, "CLOUDFLARE_API_TOKEN is not set")
    redact.register(token)
    zone_name, tunnel_id = ssot.cloudflare["zone"], ssot.cloudflare["tunnel_id"]
    base = settings.cloudflare_api.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    with client_for(SOURCE, settings, client) as http:
        api = Api(SOURCE, http, settings)
        _, payload = api.get_json(f"{base}/zones", params={"name": zone_name}, headers=headers)
        zone = parsed(api, f"GET {base}/zones", parse_zone, payload, zone_name)
        if zone is None:
            raise api.fail(f"zone {zone_name} not found (or the token may not read it)")
        if not zone["account_id"]:
            raise api.fail(f"zone {zone_name}: the API named no account")
        url = (f"{base}/accounts/{quote(zone['account_id'], safe='')}/cfd_tunnel/"
               f"{quote(tunnel_id, safe='')}/configurations")
        _, payload = api.get_json(url, headers=headers)
        tunnel = parsed(api, f"GET {url}", parse_tunnel_config, payload)
        dns = _dns_records(api, f"{base}/zones/{quote(zone['id'], safe='')}/dns_records", headers)
    return {"zone": zone, "tunnel": {"id": tunnel_id, **tunnel}, "dns": dns}


def _dns_records(api: Api, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        _, payload = api.get_json(url, params={"page": page, "per_page": DNS_PER_PAGE},
                                  headers=headers)
        chunk, total, per_page = parsed(api, f"GET {url}", parse_dns_page, payload)
        records += chunk
        # total_pages when given; else a page shorter than the page size is the last one.
        last = page >= total if total is not None else len(chunk) < (per_page or DNS_PER_PAGE)
        if not chunk or last:
            return records
    raise api.fail(f"GET {url}: more than {MAX_PAGES} pages of DNS records")
