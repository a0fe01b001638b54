"""routes: the Cloudflare tunnel and DNS send each public hostname to the SSOT's service, and
the public URL answers as the SSOT says (redirects not followed)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from opsverify.findings import Findings
from opsverify.ssot.model import Route
from opsverify.verdict import Unreachable

from . import Case, Family
from .values import mentions

NO_REMOTE = ("the tunnel has no remote configuration (config null: locally managed, its ingress "
             "is in cloudflared's config.yml on the connector, which the API cannot show)")


def _remote(c: Findings, cloudflare: dict[str, Any]) -> bool:
    """False, with the one finding that says why, when the tunnel is locally managed."""
    remote = (cloudflare.get("tunnel") or {}).get("remote") is not False
    return c.require(remote, NO_REMOTE)


def _matches(rule: dict[str, Any], hostname: str) -> bool:
    pattern = rule.get("hostname")
    # cloudflared: a rule without hostname matches every host; `*.zone` matches one label or more.
    return not pattern or fnmatchcase(hostname.lower(), str(pattern).lower())


def rule_for(ingress: list[dict[str, Any]], hostname: str) -> tuple[int, dict[str, Any]] | None:
    """The ingress rule that serves `https://hostname/`: the first matching one without a path."""
    for i, rule in enumerate(ingress):
        if not rule.get("path") and _matches(rule, hostname):
            return i, rule
    return None


def check(route: Route, tunnel_id: str, cloudflare: dict[str, Any],
          http: dict[str, Any]) -> Findings:
    """Ingress maps the hostname to exactly route.service; proxied CNAME; public answer."""
    c = Findings(f"Route {route.hostname}")
    ingress = (cloudflare.get("tunnel") or {}).get("ingress") or []
    found = rule_for(ingress, route.hostname)
    records = [r for r in cloudflare.get("dns") or []
               if str(r.get("name", "")).lower().rstrip(".") == route.hostname.lower()]
    public = (http.get("routes") or {}).get(route.hostname)
    c.saw("route", {"expected": {"service": route.service, "status": route.status,
                                 "location": route.location},
                    "ingress_rule": found and {"index": found[0], **found[1]},
                    "dns": records, "public": public, "origin": origin(route, http)})
    if _remote(c, cloudflare):
        if found is None or not found[1].get("hostname"):
            fallback = f" (falls to the catch-all {found[1].get('service')})" if found else ""
            c.require(False, f"ingress service: expected {route.service}, no rule for the "
                             f"hostname{fallback}")
        else:
            c.expect("ingress service", route.service, found[1].get("service"))
    _dns(c, route, tunnel_id, records)
    if public and public.get("unreachable"):
        # The public answer could not be asked (the verifier's path, not drift): any drift of
        # the tunnel or DNS still fails; without it, the gate could not finish.
        if not c.problems:
            raise Unreachable("http", f"{route.hostname}: {public['unreachable']}")
    else:
        _public(c, route, public)
    return c


def origin(route: Route, http: dict[str, Any]) -> dict[str, Any] | None:
    """The origin's own answer when a service probe asks it (same address and port), beside the
    public edge's: the probe as the verifier saw it (the host's side is the services gate's)."""
    for name, p in sorted((http.get("probes") or {}).items()):
        if str(p.get("url", "")).startswith(route.service.rstrip("/") + "/"):
            return {"probe": name, "url": p.get("url"), "status": p.get("status"),
                    "error": p.get("error")}
    return None


def _dns(c: Findings, route: Route, tunnel_id: str, records: list[dict[str, Any]]) -> None:
    target = f"{tunnel_id}.cfargotunnel.com"
    if not records:
        c.require(False, f"DNS: expected a proxied CNAME to {target}, got no record")
        return
    rec = next((r for r in records if r.get("type") == "CNAME"), records[0])
    c.expect("DNS type", "CNAME", rec.get("type"))
    c.expect("DNS target", target, str(rec.get("content", "")).lower().rstrip("."))
    c.expect("DNS proxied", True, rec.get("proxied"))


def _public(c: Findings, route: Route, public: dict[str, Any] | None) -> None:
    if public is None:
        c.require(False, "public URL: not probed (no result in the http facts)")
        return
    if public.get("error") or public.get("status") is None:
        c.require(False, f"public URL: no answer: {public.get('error') or 'no status'}")
        return
    c.expect("public status", route.status, public.get("status"))
    if route.location is not None:
        c.expect("public redirect location", route.location,
                 _location(public.get("location"), route))


def _location(location: str | None, route: Route) -> str | None:
    """A Location header as the SSOT writes it: same-site absolute URLs reduced to their path."""
    if not location or route.location is None or route.location.startswith(("http:", "https:")):
        return location
    parts = urlsplit(location)
    if parts.netloc and (parts.hostname or "").lower() != route.hostname.lower():
        return location
    return parts.path + (f"?{parts.query}" if parts.query else "")


def check_catch_all(catch_all: str, cloudflare: dict[str, Any]) -> Findings:
    """The ingress ends in a rule without hostname or path serving the SSOT's catch-all."""
    c = Findings("Tunnel ingress")
    ingress = (cloudflare.get("tunnel") or {}).get("ingress") or []
    last = ingress[-1] if ingress else None
    c.saw("ingress", ingress)
    if not _remote(c, cloudflare):
        return c
    if last is None or last.get("hostname") or last.get("path"):
        c.require(False, f"catch-all: expected a last rule without hostname serving {catch_all}, "
                         f"got {_show(last)}")
    else:
        c.expect("catch-all service", catch_all, last.get("service"))
    return c


def check_retired(retired: dict[str, str], cloudflare: dict[str, Any]) -> Findings:
    """No ingress rule sends traffic to a retired address."""
    c = Findings("Tunnel ingress")
    ingress = (cloudflare.get("tunnel") or {}).get("ingress") or []
    c.saw("ingress", ingress)
    _remote(c, cloudflare)  # rules the API cannot show cannot be cleared of retired targets
    for i, rule in enumerate(ingress):
        service = str(rule.get("service", ""))
        for address, was in retired.items():
            c.require(not mentions(service, address),
                      f"rule {i + 1} ({rule.get('hostname') or 'catch-all'}) targets retired "
                      f"address {address} ({was}): {service}")
    return c


def _show(rule: dict[str, Any] | None) -> str:
    if rule is None:
        return "no rules"
    return f"a last rule for {rule.get('hostname') or '*'}{rule.get('path') or ''}"


FAMILY = Family(
    "routes", per="public hostname",
    checks=("tunnel ingress → exactly `http://<tailscale_ip>:<port>`; catch-all last; no retired "
           "target; proxied CNAME; public status and redirect, never followed"),
    subjects={"route": lambda s: (Case(r.hostname, r.host, r) for r in s.routes)},
    apis=("cloudflare", "http"))
