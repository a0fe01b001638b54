"""Cloudflare facts: against the lab's Cloudflare stand-in, the vendor's samples, and garbage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_servers import Answer, json_values, sample, scripted, standin
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from opsverify.facts import api_cloudflare as cf
from opsverify.facts.api_client import decode_json, make_client
from opsverify.lab.standins.cloudflare import CloudflareApi, seed
from opsverify.settings import Settings
from opsverify.ssot import Ssot, load
from opsverify.verdict import Unreachable

TOKEN = "cf-read-token-0f9e8d7c6b5a4938"
ACCOUNT, ZONE_ID = "699d98642c564d2e855e9661899b7252", "023e105f4ecef8ad9ca31a8372d0c353"


@pytest.fixture(scope="module")
def ssot() -> Ssot:
    return load()


def _state(ssot: Ssot, filler: int = 0) -> dict[str, Any]:
    c = ssot.cloudflare
    ingress = [{"hostname": r.hostname, "service": r.service} for r in ssot.routes]
    target = f"{c['tunnel_id']}.cfargotunnel.com"
    records = [{"name": r.hostname, "type": "CNAME", "content": target, "proxied": True}
               for r in ssot.routes]
    records += [{"name": f"host{i}", "type": "A", "content": f"192.0.2.{i % 250 + 1}"}
                for i in range(filler)]
    return seed(account_id=ACCOUNT, account_name="homelab", zone_id=ZONE_ID,
                zone_name=c["zone"], tunnel_id=c["tunnel_id"],
                ingress=[*ingress, {"service": c["catch_all"]}], read_token=TOKEN,
                edit_token="cf-edit-token-unused-1234", dns_records=records, config_version=82)


@pytest.fixture
def api_url(ssot: Ssot, tmp_path: Path) -> Iterator[str]:
    with standin(CloudflareApi, _state(ssot, filler=150), tmp_path) as url:
        yield f"{url}/client/v4"


def test_collects_zone_tunnel_and_every_dns_page(ssot: Ssot, api_url: str) -> None:
    settings = Settings(timeout=2, cloudflare_api=api_url, cloudflare_token=TOKEN)
    facts = cf.collect(ssot, settings)
    assert facts["zone"] == {"id": ZONE_ID, "name": "ronny.works", "account_id": ACCOUNT}
    tunnel = facts["tunnel"]
    assert (tunnel["id"], tunnel["version"]) == (ssot.cloudflare["tunnel_id"], 82)
    assert tunnel["ingress"][0] == {"hostname": "jellyfin.ronny.works",
                                    "service": "http://100.123.207.64:8096", "path": None}
    assert tunnel["ingress"][-1] == {"hostname": None, "service": "http_status:404", "path": None}
    assert len(facts["dns"]) == 150 + len(ssot.routes)  # two pages of 100
    assert {"name": "music.ronny.works", "type": "CNAME", "proxied": True,
            "content": f"{ssot.cloudflare['tunnel_id']}.cfargotunnel.com"} in facts["dns"]
    assert TOKEN not in json.dumps(facts)


def test_missing_token(ssot: Ssot) -> None:
    with pytest.raises(Unreachable, match="CLOUDFLARE_API_TOKEN is not set"):
        cf.collect(ssot, Settings(cloudflare_api="http://127.0.0.1:9/client/v4"))


def test_wrong_token_is_unreachable_with_the_status(ssot: Ssot, api_url: str) -> None:
    wrong = "cf-wrong-token-aaaaaaaaaaaa"
    with pytest.raises(Unreachable) as info:
        cf.collect(ssot, Settings(timeout=2, cloudflare_api=api_url, cloudflare_token=wrong))
    assert "HTTP 403 Forbidden (Authentication error (10000))" in info.value.reason
    assert wrong not in str(info.value)


def test_unknown_zone_is_unreachable_naming_it(ssot: Ssot, tmp_path: Path) -> None:
    state = _state(ssot)
    state["zones"][ZONE_ID]["name"] = "example.org"
    with (standin(CloudflareApi, state, tmp_path) as url,
          pytest.raises(Unreachable, match="zone ronny.works not found")):
        cf.collect(ssot, Settings(timeout=2, cloudflare_api=f"{url}/client/v4",
                                  cloudflare_token=TOKEN))


def test_injected_client_is_used_and_left_open(ssot: Ssot, api_url: str) -> None:
    settings = Settings(timeout=2, cloudflare_api=api_url, cloudflare_token=TOKEN)
    with make_client(settings) as client:
        cf.collect(ssot, settings, client)
        assert not client.is_closed


def test_a_server_paging_forever_is_cut_off(ssot: Ssot) -> None:
    def script(seen: Any) -> Answer:
        if seen.path.endswith("/zones"):
            return Answer(200, sample_zone(ssot))
        if seen.path.endswith("/configurations"):
            return Answer(200, sample("cloudflare_tunnel_configurations_get.json"))
        return Answer(200, {"success": True, "result": [{"name": "x", "type": "A"}],
                            "result_info": {"total_pages": 10**9}})

    with (scripted(script) as server,
          pytest.raises(Unreachable, match="more than 100 pages of DNS records")):
        cf.collect(ssot, Settings(timeout=5, cloudflare_api=server.url, cloudflare_token=TOKEN))


def test_pages_followed_until_a_short_page_without_total_pages(ssot: Ssot,
                                                                tmp_path: Path) -> None:
    """The issue: result_info without total_pages stopped paging after page 1."""
    state = _state(ssot, filler=5)
    state["quirks"] = {"no_total_pages": True, "max_per_page": 3}  # 9 records: 3 + 3 + 3 + 0
    with standin(CloudflareApi, state, tmp_path) as url:
        facts = cf.collect(ssot, Settings(timeout=5, cloudflare_api=f"{url}/client/v4",
                                          cloudflare_token=TOKEN))
    assert len(facts["dns"]) == 5 + len(ssot.routes)
    assert {r["name"] for r in facts["dns"]} >= {r.hostname for r in ssot.routes}


def test_real_result_info_shape_pages_on(ssot: Ssot) -> None:
    """The real result_info of cloudflare-go#3631 (no total_pages): a full page asks again."""
    real = sample("cloudflare_result_info_no_total_pages.json")
    pages: list[str] = []

    def script(seen: Any) -> Answer:
        if seen.path.endswith("/zones"):
            return Answer(200, sample_zone(ssot))
        if seen.path.endswith("/configurations"):
            return Answer(200, sample("cloudflare_tunnel_configurations_get.json"))
        pages.append(seen.query["page"])
        page = int(seen.query["page"])
        size = real["result_info"]["per_page"]
        chunk = [{"name": f"r{page}-{i}", "type": "A", "content": "192.0.2.1"}
                 for i in range(size if page < 3 else 1)]
        return Answer(200, {**real, "result": chunk,
                            "result_info": {**real["result_info"], "page": page,
                                            "count": len(chunk)}})

    with scripted(script) as server:
        facts = cf.collect(ssot, Settings(timeout=5, cloudflare_api=server.url,
                                          cloudflare_token=TOKEN))
    assert pages == ["1", "2", "3"] and len(facts["dns"]) == 7


def test_locally_managed_tunnel_on_the_standin(ssot: Ssot, tmp_path: Path) -> None:
    c = ssot.cloudflare
    state = seed(account_id=ACCOUNT, account_name="homelab", zone_id=ZONE_ID,
                 zone_name=c["zone"], tunnel_id=c["tunnel_id"],
                 ingress=[{"service": c["catch_all"]}], read_token=TOKEN,
                 edit_token="cf-edit-token-unused-1234", config_src="local")
    with standin(CloudflareApi, state, tmp_path) as url:
        facts = cf.collect(ssot, Settings(timeout=2, cloudflare_api=f"{url}/client/v4",
                                          cloudflare_token=TOKEN))
    assert facts["tunnel"] | {"id": None} == {"id": None, "version": 0, "ingress": [],
                                              "remote": False, "source": "local"}


def sample_zone(ssot: Ssot) -> dict[str, Any]:
    return {"success": True, "result": [{"id": ZONE_ID, "name": ssot.cloudflare["zone"],
                                         "account": {"id": ACCOUNT, "name": "x"}}]}


# --- the vendor's samples ---------------------------------------------------------------------


def test_tunnel_configuration_sample() -> None:
    facts = cf.parse_tunnel_config(sample("cloudflare_tunnel_configurations_get.json"))
    assert facts == {"version": 5, "remote": True, "source": None, "ingress": [
        {"hostname": "test.example.com", "service": "https://localhost:8000", "path": None},
        {"hostname": None, "service": "http_status:404", "path": None}]}


def test_dns_list_sample_with_pages() -> None:
    records, pages, per_page = cf.parse_dns_page(
        sample("cloudflare_dns_records_list_fixture.json"))
    assert (pages, per_page, len(records)) == (2, 3, 3)
    assert records[1] == {"name": "sub1.example.com", "type": "A", "content": "198.51.100.5",
                          "proxied": False}


def test_dns_sample_with_a_tunnel_cname() -> None:
    records, _, _ = cf.parse_dns_page(sample("cloudflare_dns_records_tunnel_cname_real.json"))
    assert {"name": "tunnel.jnishant.com", "type": "CNAME", "proxied": True,
            "content": "05819d54-4201-4c60-acc4-562920b9c7e6.cfargotunnel.com"} in records
    assert all(set(r) == {"name", "type", "content", "proxied"} for r in records)


def test_locally_managed_tunnel_is_not_remote() -> None:
    facts = cf.parse_tunnel_config(
        sample("cloudflare_tunnel_configurations_local_null_RECONSTRUCTED.json"))
    assert facts == {"version": 0, "ingress": [], "remote": False, "source": "local"}


def test_result_info_without_total_pages() -> None:
    records, pages, per_page = cf.parse_dns_page(
        sample("cloudflare_result_info_no_total_pages.json"))
    assert (records, pages, per_page) == ([], None, 3)


def test_failure_envelope_is_value_error() -> None:
    with pytest.raises(ValueError, match="success is false: nope"):
        cf.parse_zone({"success": False, "errors": [{"message": "nope"}]}, "ronny.works")


# --- hostile input: generated and truncated JSON --------------------------------------------

JSON = json_values(("success", "result", "id", "name", "account", "config", "ingress",
                    "hostname", "service", "version"))
ENVELOPE = st.fixed_dictionaries({"success": st.booleans() | JSON, "result": JSON | st.lists(
    st.dictionaries(st.sampled_from(["id", "name", "account", "type", "content", "proxied",
                                     "config", "ingress", "version"]), JSON, max_size=6),
    max_size=4)}, optional={"result_info": JSON, "errors": JSON})


@hsettings(max_examples=200)
@given(ENVELOPE | JSON)
def test_parsers_raise_only_value_error(payload: Any) -> None:
    for parse in (lambda p: cf.parse_zone(p, "ronny.works"), cf.parse_tunnel_config,
                  cf.parse_dns_page):
        try:
            parse(payload)
        except ValueError:
            pass


@hsettings(max_examples=200)
@given(st.sampled_from(["cloudflare_tunnel_configurations_get.json",
                        "cloudflare_dns_records_list_fixture.json",
                        "cloudflare_dns_records_tunnel_cname_real.json"]), st.data())
def test_truncated_samples_raise_only_value_error(name: str, data: st.DataObject) -> None:
    raw = json.dumps(sample(name)).encode()
    cut = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        payload = decode_json(cut)
        cf.parse_tunnel_config(payload) if "tunnel" in name else cf.parse_dns_page(payload)
    except ValueError:
        pass
