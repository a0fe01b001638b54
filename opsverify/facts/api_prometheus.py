"""Prometheus facts: the active scrape targets and the value of every SSOT PromQL rule.

Sample values arrive as strings ("0.02", "NaN", "+Inf") and become floats. A query Prometheus
rejects (status "error") fails that rule only; the source stays reachable.
"""

from __future__ import annotations

from typing import Any

import httpx

from opsverify.facts.api_client import (
    Api,
    as_dict,
    as_list,
    client_for,
    concurrently,
    opt_str,
    parsed,
    short,
)
from opsverify.settings import Settings
from opsverify.ssot import Ssot
from opsverify.ssot.model import Rule

SOURCE = "prometheus"
QUERY_ERROR_STATUS = (400, 422, 503)  # bad_data, execution, timeout: the body says which


def _success_data(payload: Any) -> dict[str, Any]:
    doc = as_dict(payload, "response")
    if doc.get("status") != "success":
        raise ValueError(f"status is {short(str(doc.get('status')), 40)}: {_error_of(doc)}")
    return as_dict(doc.get("data"), "data")


def _error_of(doc: dict[str, Any]) -> str:
    kind, error = opt_str(doc.get("errorType")), opt_str(doc.get("error"))
    return short(": ".join(x for x in (kind, error) if x) or "no error given")


def parse_targets(payload: Any) -> list[dict[str, Any]]:
    """[{job, instance, health, scrape_url, last_error}] of GET /api/v1/targets?state=active."""
    out = []
    for t in as_list(_success_data(payload).get("activeTargets"), "activeTargets"):
        if not isinstance(t, dict):
            continue
        labels = t.get("labels") if isinstance(t.get("labels"), dict) else {}
        out.append({"job": opt_str(labels.get("job")), "instance": opt_str(labels.get("instance")),
                    "health": opt_str(t.get("health")), "scrape_url": opt_str(t.get("scrapeUrl")),
                    "last_error": opt_str(t.get("lastError")) or None})
    return out


def sample_value(pair: Any) -> float:
    """The float of a [timestamp, "value"] pair (values are strings: "1", "NaN", "+Inf")."""
    pair = as_list(pair, "sample")
    if len(pair) != 2 or not isinstance(pair[1], (str, int, float)) or isinstance(pair[1], bool):
        raise ValueError("a sample is not [timestamp, value]")
    try:
        return float(pair[1])
    except ValueError:
        raise ValueError(f"sample value {short(str(pair[1]), 40)!r} is not a number") from None


def parse_query(payload: Any) -> dict[str, Any]:
    """{ok, error, values} of GET /api/v1/query; an error answer is ok=false, not ValueError."""
    doc = as_dict(payload, "response")
    if doc.get("status") == "error":
        return {"ok": False, "error": _error_of(doc), "values": []}
    data = _success_data(doc)
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        values = [sample_value(result)]
    elif kind == "vector":
        values = [sample_value(as_dict(s, "sample").get("value"))
                  for s in as_list(result, "result")]
    elif kind == "matrix":
        values = [sample_value(v) for s in as_list(result, "result")
                  for v in as_list(as_dict(s, "series").get("values"), "values")]
    elif kind == "string":
        return {"ok": False, "error": "the query returns a string, not a number", "values": []}
    else:
        raise ValueError(f"unknown resultType {short(str(kind), 40)!r}")
    return {"ok": True, "error": None, "values": values}


def collect(ssot: Ssot, settings: Settings, client: httpx.Client | None = None
            ) -> dict[str, Any]:
    """The `prometheus` facts of the contract, or Unreachable."""
    base = ssot.prometheus_url.rstrip("/")
    with client_for(SOURCE, settings, client) as http:
        api = Api(SOURCE, http, settings)
        url = f"{base}/api/v1/targets"
        _, payload = api.get_json(url, params={"state": "active"})
        targets = parsed(api, f"GET {url}", parse_targets, payload)

        def rule(r: Rule) -> dict[str, Any]:
            _, answer = api.get_json(f"{base}/api/v1/query", params={"query": r.query},
                                     accept=QUERY_ERROR_STATUS)
            return parsed(api, f"GET {base}/api/v1/query ({r.name})", parse_query, answer)

        rules = concurrently(rule, ssot.rules)
    return {"targets": targets,
            "rules": {r.name: res for r, res in zip(ssot.rules, rules, strict=True)}}

