"""HTTP facts: every service probe and every public route, asked concurrently, never redirected.

A probe's secrets come from the environment variable of the same name, else from Infisical (at
the SSOT path that lists the key); they live only in memory and are registered for scrubbing.
A service that refuses or times out is recorded as the probe's `error` (drift, for the gate to
judge, which asks whether the host answers when no connection was made: `connected`); a probe
whose secret could not be obtained is `auth_error` (not asked at all), and one the verifier had
no path to is `unreachable` (reach.py): the verifier's own lack of a path is not drift.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx

from opsverify import redact
from opsverify.facts import reach, xmlbody
from opsverify.facts.agent.keypaths import values_at
from opsverify.facts.agent.primitives import ParseError
from opsverify.facts.api_client import Api, client_for, decode_json, short
from opsverify.facts.api_infisical import InfisicalAuth, read_value
from opsverify.settings import Settings, secret_problem
from opsverify.ssot import Ssot
from opsverify.ssot.model import Probe, Route
from opsverify.verdict import Unreachable

SOURCE = "http"
BODY_CHARS = 8192  # the SSOT's expected body is at most 4096 characters
MAX_WORKERS = 32


class SecretUnavailable(Exception):
    """A probe's secret is in neither the environment nor Infisical, or cannot be sent."""


def json_path(doc: Any, path: str) -> list[Any]:
    """Every value at a dot path: keys of objects, indexes of lists, `*` for all members."""
    nodes = [doc]
    for seg in path.split("."):
        found: list[Any] = []
        for node in nodes:
            if seg == "*":
                found += list(node.values()) if isinstance(node, dict) else (
                    node if isinstance(node, list) else [])
            elif isinstance(node, dict) and seg in node:
                found.append(node[seg])
            elif isinstance(node, list) and _index(seg) < len(node):
                found.append(node[int(seg)])
        nodes = found
    return nodes


def _index(seg: str) -> int:
    """A path segment as a list index; anything else is an index no list reaches."""
    return int(seg) if seg.isascii() and seg.isdigit() and len(seg) < 10 else 1 << 62


def body_facts(body: bytes, expect: Mapping[str, Any], content_type: str = "") -> dict[str, Any]:
    """body, json and json_keys of one answer, only what the SSOT's `expect` asks for; an
    answer its server calls XML is read as its JSON form (xmlbody)."""
    out: dict[str, Any] = {"body": None, "json": {}, "json_keys": {}, "error": None}
    if "body" in expect:
        out["body"] = redact.scrub(body.decode("utf-8", "replace")[:BODY_CHARS])
    values, keys = list(expect.get("json") or {}), list(expect.get("json_keys") or [])
    if not (values or keys):
        return out
    try:
        doc = decode_json(body)
    except ValueError as exc:
        try:  # Subsonic answers XML when f=json is ignored: read it as its JSON form
            if "xml" not in content_type.lower():
                raise ValueError("not said to be XML") from None
            doc = xmlbody.parse(body)
        except ValueError:
            doc, out["error"] = None, f"the response is not JSON ({short(str(exc), 80)})"
    for path in values:
        # As the fact script reads config files: a secret-named key's value only as present or
        # absent, whatever the path; through `*` only scalar leaves; never a subtree.
        try:
            found = values_at(doc, path)
        except ParseError:  # not a key path (the SSOT schema keeps these out)
            found = []
        if found:
            out["json"][path] = found if "*" in path.split(".") else found[0]
    out["json_keys"] = {path: bool(json_path(doc, path)) for path in keys}
    return out


def secret_names(probe: Probe) -> list[str]:
    """Names of the secrets a probe's auth needs."""
    return [probe.auth[k] for k in ("secret", "subsonic_user", "subsonic_password")
            if k in probe.auth]


def shown_url(probe: Probe) -> str:
    """The probe URL as reported: SSOT query values, but only the names of auth parameters."""
    shown = [f"{k}={v}" for k, v in probe.query.items()]
    if "query" in probe.auth:
        shown.append(probe.auth["query"])
    if "subsonic_user" in probe.auth:
        shown += ["u", "t", "s"]
    return probe.url + ("?" + "&".join(shown) if shown else "")


def authenticate(probe: Probe, values: Mapping[str, str]
                 ) -> tuple[dict[str, str], dict[str, str]]:
    """(query, headers) of a probe with its auth applied; the Subsonic password is never sent."""
    auth, query = probe.auth, {k: str(v) for k, v in probe.query.items()}
    headers: dict[str, str] = {}
    if ("header" in auth or "query" in auth) and "secret" not in auth:
        raise SecretUnavailable("auth names a header or query parameter but no secret")
    if "header" in auth:
        headers[auth["header"]] = values[auth["secret"]]
    if "query" in auth:
        query[auth["query"]] = values[auth["secret"]]
    if ("subsonic_user" in auth) != ("subsonic_password" in auth):
        raise SecretUnavailable("Subsonic auth needs both subsonic_user and subsonic_password")
    if "subsonic_user" in auth:
        salt = secrets.token_hex(8)
        token = hashlib.md5((values[auth["subsonic_password"]] + salt).encode()).hexdigest()
        redact.register(token, salt)
        query |= {"u": values[auth["subsonic_user"]], "t": token, "s": salt}
    return query, headers


def cleartext_to(url: str) -> str | None:
    """The host a credential would cross the network to in clear text, or None: https, or http
    to loopback or a Tailscale address (100.64.0.0/10, inside WireGuard) is not clear text."""
    split = httpx.URL(url)
    if split.scheme == "https":
        return None
    try:
        address = ipaddress.ip_address(split.host)
    except ValueError:
        return split.host
    private = address.is_loopback or address in ipaddress.ip_network("100.64.0.0/10")
    return None if private else split.host


class _Secrets:
    """Secret values by name: the environment first, then Infisical; checked once, when read."""

    def __init__(self, ssot: Ssot, api: Api, auth: InfisicalAuth, env: Mapping[str, str],
                 allow_short: bool = False):
        self.ssot, self.api, self.auth, self.env = ssot, api, auth, env
        self.allow_short = allow_short
        # A Subsonic user name is sent hashed with nothing; it is masked, but may be short.
        self.users = {p.auth["subsonic_user"] for p in ssot.probes if "subsonic_user" in p.auth}

    def get(self, name: str) -> str:
        value = self._fetch(name)
        # httpx would refuse a control character with an error quoting the value, escaped past
        # the scrubber, and a non-ASCII one with an exception; neither is ever sent.
        problem = secret_problem(name, value, self.allow_short or name in self.users)
        if problem:
            raise SecretUnavailable(problem)
        return value

    def _fetch(self, name: str) -> str:
        if self.env.get(name):
            redact.register(self.env[name])
            return self.env[name]
        path = next((sp.path for sp in self.ssot.secret_paths if name in sp.keys), None)
        if path is None:
            raise SecretUnavailable(f"{name} is not set and no SSOT secret path lists it")
        try:
            return read_value(self.api, self.auth, self.ssot, path, name)
        except Unreachable as exc:
            raise SecretUnavailable(f"{name} is not set and Infisical could not give it: "
                                    f"{exc.reason}") from None


def probe(api: Api, p: Probe, values: Mapping[str, Future[str]]) -> dict[str, Any]:
    """The facts of one service probe."""
    facts: dict[str, Any] = {"url": shown_url(p), "status": None, "error": None,
                             "auth_error": None, "unreachable": None, "connected": None,
                             "elapsed_s": 0.0, "body": None, "json": {}, "json_keys": {}}
    if not p.url:
        facts["error"] = f"no URL: container {p.container} is not in the SSOT"
        return facts
    try:
        clear = cleartext_to(p.url) if secret_names(p) else None
        if clear:
            raise SecretUnavailable(f"{', '.join(secret_names(p))} would cross the network to "
                                    f"{clear} in clear text (http, not a Tailscale address)")
        query, headers = authenticate(p, {n: values[n].result() for n in secret_names(p)})
    except SecretUnavailable as exc:
        facts["auth_error"] = facts["error"] = f"not asked: {exc}"
        return facts
    expect = p.expect
    start = time.monotonic()
    try:
        reply = api.request("GET", p.url, params=query or None, headers=headers,
                            read_body=bool({"body", "json", "json_keys"} & set(expect)))
    except Unreachable as exc:
        facts.update(error=exc.reason, connected=reach.connected(exc.reason),
                     unreachable=f"no path from the verifier: {exc.reason}"
                     if reach.no_path(exc.reason) else None,
                     elapsed_s=round(time.monotonic() - start, 4))
        return facts
    facts.update(status=reply.status, connected=True, elapsed_s=round(reply.elapsed_s, 4),
                 **body_facts(reply.body, expect, reply.headers.get("content-type", "")))
    return facts


def route(api: Api, r: Route) -> dict[str, Any]:
    """The facts of one public hostname: its answer to GET https://<hostname>/, unfollowed."""
    url = f"https://{r.hostname}/"
    start = time.monotonic()
    try:
        reply = api.request("GET", url, read_body=False)
    except Unreachable as exc:
        return {"url": url, "status": None, "location": None, "error": exc.reason,
                "unreachable": f"no path from the verifier: {exc.reason}"
                if reach.no_path(exc.reason) else None,
                "elapsed_s": round(time.monotonic() - start, 4)}
    return {"url": url, "status": reply.status, "location": reply.headers.get("location"),
            "error": None, "unreachable": None, "elapsed_s": round(reply.elapsed_s, 4)}


def collect(ssot: Ssot, settings: Settings, client: httpx.Client | None = None,
            auth: InfisicalAuth | None = None, env: Mapping[str, str] | None = None
            ) -> dict[str, Any]:
    """The `http` facts of the contract: probes and routes, all at once."""
    env = os.environ if env is None else env
    with client_for(SOURCE, settings, client) as http:
        api = Api(SOURCE, http, settings)
        store = _Secrets(ssot, api, auth or InfisicalAuth(settings), env,
                         settings.allow_short_secrets)
        names = sorted({n for p in ssot.probes for n in secret_names(p)})
        jobs = len(names) + len(ssot.probes) + len(ssot.routes)
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, jobs)),
                                thread_name_prefix="http") as pool:
            # Secrets first: a FIFO pool then never parks a probe ahead of the secret it awaits.
            values = {n: pool.submit(store.get, n) for n in names}
            probes = {p.name: pool.submit(probe, api, p, values) for p in ssot.probes}
            routes = {r.hostname: pool.submit(route, api, r) for r in ssot.routes}
            return {"probes": {k: f.result() for k, f in probes.items()},
                    "routes": {k: f.result() for k, f in routes.items()}}
