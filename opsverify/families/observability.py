"""observability: Prometheus scrapes each SSOT target and it is up; no target on a retired
address; every SSOT PromQL rule holds."""

from __future__ import annotations

import math
import operator
from typing import Any

from opsverify.findings import Findings
from opsverify.ssot.model import Rule, ScrapeTarget

from . import Case, Family
from .values import mentions

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
       "==": operator.eq, "!=": operator.ne}


def check_target(target: ScrapeTarget, prometheus: dict[str, Any]) -> Findings:
    """An active target with the SSOT's job and instance exists and is up."""
    c = Findings(f"Scrape target {target.instance} (job {target.job})")
    targets = prometheus.get("targets") or []
    found = [t for t in targets if t.get("instance") == target.instance
             and t.get("job") == target.job]
    c.saw("targets", {"matching": found, "active": [
        f"{t.get('job')}/{t.get('instance')}" for t in targets]})
    if not found:
        c.require(False, "not an active target of Prometheus")
    for t in found:
        if t.get("health") != "up":
            error = f" ({t['last_error']})" if t.get("last_error") else ""
            c.require(False, f"health: expected up, got {t.get('health')}{error}")
    return c


def check_retired(retired: dict[str, str], prometheus: dict[str, Any]) -> Findings:
    """No active target points at a retired address."""
    c = Findings("Prometheus targets")
    targets = prometheus.get("targets") or []
    c.saw("targets", [f"{t.get('job')}/{t.get('instance')}" for t in targets])
    for t in targets:
        where = f"{t.get('instance')} {t.get('scrape_url') or ''}"
        for address, was in retired.items():
            c.require(not mentions(where, address),
                      f"target {t.get('instance')} (job {t.get('job')}) is retired address "
                      f"{address} ({was})")
    return c


def number(value: Any) -> float:
    """A sample value; Prometheus sends them as strings ("0.05", "NaN", "+Inf")."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_rule(rule: Rule, prometheus: dict[str, Any]) -> Findings:
    """The query ran, returned at least one value, and every value satisfies op threshold."""
    c = Findings(f"Rule {rule.name} ({rule.query} {rule.op} {rule.threshold:g})")
    got = (prometheus.get("rules") or {}).get(rule.name)
    c.saw("rule", {"description": rule.description, "result": got})
    if got is None:
        c.require(False, "not evaluated (no result in the prometheus facts)")
    elif not got.get("ok"):
        c.require(False, f"query failed: {got.get('error') or 'unknown error'}")
    elif not got.get("values"):
        c.require(False, "no value: the query returned an empty result")
    else:
        holds = OPS[rule.op]
        for v in map(number, got["values"]):
            c.require(not math.isnan(v) and holds(v, rule.threshold),
                      f"value {'NaN' if math.isnan(v) else f'{v:g}'} violates "
                      f"{rule.op} {rule.threshold:g}")
    return c


FAMILY = Family(
    "observability", per="target / rule",
    checks=("node-exporter targets up; none at a retired address; the I/O-isolation PromQL rule "
           "holds; P8's open items (Grafana dashboards, Loki) SKIP with their reason in every "
           "report"),
    subjects={"scrape_target": lambda s: (Case(t.instance, t.host, t) for t in s.scrape_targets),
              "promql_rule": lambda s: (Case(r.name, "", r) for r in s.rules),
              "planned": lambda s: (Case(p.name, "", p) for p in s.planned
                                    if p.family == "observability")},
    apis=("prometheus",))
