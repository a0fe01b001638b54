"""HTTP 429: Retry-After honoured within the source's deadline, then "rate limited".

The issue: one 429 from Cloudflare or Infisical made the whole source UNREACHABLE at once.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
import wire
from api_servers import Answer, loopback_client, sample, scripted, standin

from opsverify.facts import api_cloudflare as cf
from opsverify.facts import api_infisical as inf
from opsverify.facts.api_client import retry_after
from opsverify.lab.standins.cloudflare import CloudflareApi
from opsverify.lab.standins.cloudflare import seed as cf_seed
from opsverify.lab.standins.infisical import InfisicalApi
from opsverify.lab.standins.infisical import seed as inf_seed
from opsverify.settings import Settings
from opsverify.ssot import Ssot, load
from opsverify.verdict import Unreachable

TOKEN = "cf-read-token-0f9e8d7c6b5a4938"
INF_ID, INF_SECRET = "0b5c1e2f-reader", "inf-reader-secret-5e4d3c2b1a09"
INF_ORIGIN = "https://infisical.ronny.works:443"


@pytest.fixture(scope="module")
def ssot() -> Ssot:
    return load()


def _cf_state(ssot: Ssot, answer_429: int, wait: int) -> dict[str, Any]:
    c = ssot.cloudflare
    state = cf_seed(account_id="699d98642c564d2e855e9661899b7252", account_name="homelab",
                    zone_id="023e105f4ecef8ad9ca31a8372d0c353", zone_name=c["zone"],
                    tunnel_id=c["tunnel_id"], ingress=[{"service": c["catch_all"]}],
                    read_token=TOKEN, edit_token="cf-edit-token-unused-1234")
    state["rate_limit"] = {"answer_429": answer_429, "retry_after": wait}
    return state


def _cf(ssot: Ssot, url: str, timeout: float) -> dict[str, Any]:
    return cf.collect(ssot, Settings(timeout=timeout, cloudflare_api=f"{url}/client/v4",
                                     cloudflare_token=TOKEN))


def test_one_429_is_waited_out(ssot: Ssot, tmp_path: Path) -> None:
    with standin(CloudflareApi, _cf_state(ssot, 1, 1), tmp_path) as url:
        start = time.monotonic()
        facts = _cf(ssot, url, timeout=5)
    assert facts["zone"]["name"] == ssot.cloudflare["zone"]
    assert time.monotonic() - start >= 1.0  # Retry-After was honoured, not ignored


def test_a_wait_longer_than_the_deadline_says_rate_limited_at_once(ssot: Ssot,
                                                                  tmp_path: Path) -> None:
    with standin(CloudflareApi, _cf_state(ssot, 1, 300), tmp_path) as url:
        start = time.monotonic()
        with pytest.raises(Unreachable) as info:
            _cf(ssot, url, timeout=5)
    assert time.monotonic() - start < 2
    assert "rate limited (HTTP 429 after 1 try, Retry-After 300 s: Please wait and consider " \
           "throttling your request speed (971))" in info.value.reason


def test_still_limited_after_the_bounded_retries(ssot: Ssot, tmp_path: Path) -> None:
    with standin(CloudflareApi, _cf_state(ssot, 10, 0), tmp_path) as url, \
            pytest.raises(Unreachable) as info:
        _cf(ssot, url, timeout=5)
    assert "rate limited (HTTP 429 after 3 tries, Retry-After 0 s" in info.value.reason


def test_cloudflares_own_429_then_an_answer(ssot: Ssot) -> None:
    """The real 429 body (terraform-provider-cloudflare#5494) with Retry-After 2 s."""
    answers = iter([wire.answer("cloudflare_429_rate_limited.http")])

    def script(seen: Any) -> Answer:
        if seen.path.endswith("/zones"):
            return next(answers, None) or Answer(200, {"success": True, "result": [{
                "id": "z1", "name": ssot.cloudflare["zone"], "account": {"id": "a1"}}]})
        if seen.path.endswith("/configurations"):
            return Answer(200, sample("cloudflare_tunnel_configurations_get.json"))
        return Answer(200, sample("cloudflare_dns_records_tunnel_cname_real.json"))

    with scripted(script) as server:
        facts = cf.collect(ssot, Settings(timeout=8, cloudflare_api=server.url,
                                          cloudflare_token=TOKEN))
    assert [s.path for s in server.seen][:2] == ["/zones", "/zones"]
    assert facts["zone"]["id"] == "z1"


def _inf_state(ssot: Ssot, answer_429: int, wait: int) -> dict[str, Any]:
    state = inf_seed(project_id=ssot.infisical["project_id"],
                     secrets_by_path={sp.path: {k: "canary-x" for k in sp.keys}
                                      for sp in ssot.secret_paths},
                     reader_client_id=INF_ID, reader_client_secret=INF_SECRET,
                     admin_client_id="admin", admin_client_secret="inf-admin-secret-000",
                     environment=ssot.infisical["environment"])
    state["rate_limit"] = {"answer_429": answer_429, "retry_after": wait}
    return state


def _inf(ssot: Ssot, url: str, timeout: float) -> dict[str, Any]:
    settings = Settings(timeout=timeout, infisical_client_id=INF_ID,
                        infisical_client_secret=INF_SECRET)
    with loopback_client(settings, {INF_ORIGIN: url}) as client:
        return inf.collect(ssot, settings, client)


def test_infisical_429_is_waited_out(ssot: Ssot, tmp_path: Path) -> None:
    with standin(InfisicalApi, _inf_state(ssot, 2, 1), tmp_path) as url:
        facts = _inf(ssot, url, timeout=6)
    assert all(p["keys"] for p in facts["paths"].values())


def test_infisical_rate_limited_reason(ssot: Ssot, tmp_path: Path) -> None:
    with standin(InfisicalApi, _inf_state(ssot, 1, 120), tmp_path) as url, \
            pytest.raises(Unreachable) as info:
        _inf(ssot, url, timeout=5)
    assert "rate limited (HTTP 429 after 1 try, Retry-After 120 s: RateLimitExceeded; Rate " \
           "limit exceeded. Please try again in 120 seconds)" in info.value.reason


def test_infisicals_429_sample_is_understood(ssot: Ssot) -> None:
    real = wire.load("infisical_429_rate_limited_RECONSTRUCTED.http")
    reply_headers = httpx.Headers(real.headers)
    assert retry_after(reply_headers) == 2.0


@pytest.mark.parametrize(("value", "want"), [("2", 2.0), ("0", 0.0), ("1.5", 1.5), ("", None),
                                             ("soon", None), ("-3", None)])
def test_retry_after_seconds(value: str, want: float | None) -> None:
    assert retry_after(httpx.Headers({"Retry-After": value})) == want


def test_retry_after_http_date() -> None:
    later = retry_after(httpx.Headers({"Retry-After": formatdate(time.time() + 30,
                                                                 usegmt=True)}))
    assert later is not None and 28 <= later <= 31
    past = retry_after(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert past == 0.0
