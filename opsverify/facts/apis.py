"""The API sources of a run: cloudflare, infisical, proxmox, prometheus and http."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from opsverify import redact
from opsverify.facts import (
    api_cloudflare,
    api_http,
    api_infisical,
    api_prometheus,
    api_proxmox,
)
from opsverify.facts.store import Collector
from opsverify.settings import Settings
from opsverify.ssot import Ssot


def _scrubbed(collect: Callable[[], dict[str, Any]]) -> Collector:
    # Facts are saved and shown: mask any registered secret an API echoed back, to be sure.
    return lambda: redact.scrub_obj(collect())


def api_collectors(ssot: Ssot, settings: Settings, *, client: httpx.Client | None = None,
                   env: Mapping[str, str] | None = None) -> dict[str, Collector]:
    """One collector per API source; `client` is injected in tests, else one per source."""
    redact.register(*settings.secret_values())
    auth = api_infisical.InfisicalAuth(settings)  # one login serves infisical and the probes
    return {
        "cloudflare": _scrubbed(lambda: api_cloudflare.collect(ssot, settings, client)),
        "infisical": _scrubbed(lambda: api_infisical.collect(ssot, settings, client, auth)),
        "proxmox": _scrubbed(lambda: api_proxmox.collect(ssot, settings, client)),
        "prometheus": _scrubbed(lambda: api_prometheus.collect(ssot, settings, client)),
        "http": _scrubbed(lambda: api_http.collect(ssot, settings, client, auth, env)),
    }
