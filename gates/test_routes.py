"""routes: the Cloudflare tunnel, DNS and public URL of every public hostname."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import routes
from opsverify.findings import conclude
from opsverify.ssot.model import Route, Ssot


def test_route(route: Route, ssot: Ssot, facts: FactStore, evidence: Evidence) -> None:
    """Ingress maps to exactly the SSOT service; proxied CNAME to the tunnel; public answer."""
    tunnel_id = ssot.cloudflare["tunnel_id"]
    conclude(routes.check(route, tunnel_id, facts.get("cloudflare"), facts.get("http")),
             evidence)


def test_ingress_catch_all(ssot: Ssot, facts: FactStore, evidence: Evidence) -> None:
    """The tunnel ingress ends in the SSOT's catch-all rule."""
    conclude(routes.check_catch_all(ssot.cloudflare["catch_all"], facts.get("cloudflare")),
             evidence)


def test_ingress_no_retired_target(ssot: Ssot, facts: FactStore, evidence: Evidence) -> None:
    """No ingress rule targets a retired address."""
    conclude(routes.check_retired(ssot.retired_addresses, facts.get("cloudflare")), evidence)
