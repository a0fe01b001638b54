"""All five API sources through the FactStore: one hung API costs one timeout, and nothing leaks."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_servers import Answer, Loopback, Pki, sample, scripted, silent_listener, standin

from opsverify import redact
from opsverify.facts.api_client import make_client, tls_verify
from opsverify.facts.apis import api_collectors
from opsverify.facts.store import FactStore
from opsverify.lab.standins import cloudflare, infisical, proxmox
from opsverify.settings import Settings
from opsverify.ssot import Ssot, load
from opsverify.verdict import Unreachable

CF_TOKEN = "cf-token-e2e-4d5c6b7a8f"
PVE_SECRET = "pve-e2e-1f2e3d4c-5b6a"
INF = ("reader-e2e", "inf-e2e-secret-9a8b7c")
CANARY = {"RADARR_API_KEY": "canary-e2e-radarr-01", "NAVIDROME_PASSWORD": "canary-e2e-pw-02"}
ENV = {"CLOUDFLARE_API_TOKEN": CF_TOKEN, "PROXMOX_API_TOKEN": f"opsverify@pve!audit={PVE_SECRET}",
       "INFISICAL_CLIENT_ID": INF[0], "INFISICAL_CLIENT_SECRET": INF[1]}


@pytest.fixture(scope="module")
def ssot() -> Ssot:
    return load()


@pytest.fixture
def world(ssot: Ssot, tmp_path: Path) -> Iterator[tuple[dict[str, str], Pki]]:
    """Every API of the SSOT on 127.0.0.1: origin -> URL, and the CA the run trusts."""
    c = ssot.cloudflare
    cf_state = cloudflare.seed(
        account_id="a" * 32, account_name="lab", zone_id="z" * 32, zone_name=c["zone"],
        tunnel_id=c["tunnel_id"], read_token=CF_TOKEN, edit_token="cf-edit-unused-000",
        ingress=[{"hostname": r.hostname, "service": r.service} for r in ssot.routes]
        + [{"service": c["catch_all"]}])
    inf_state = infisical.seed(
        project_id=ssot.infisical["project_id"], environment=ssot.infisical["environment"],
        secrets_by_path={sp.path: {k: CANARY.get(k, f"canary-e2e-{k.lower()}") for k in sp.keys}
                         for sp in ssot.secret_paths},
        reader_client_id=INF[0], reader_client_secret=INF[1], admin_client_id="adm",
        admin_client_secret="adm-secret-0000")
    pve_state = proxmox.seed(
        vms=[{"vmid": 201, "name": "media-stack", "status": "stopped", "onboot": 0}],
        auditor_token_id="opsverify@pve!audit", auditor_secret=PVE_SECRET,
        admin_token_id="root@pam!x", admin_secret="root-secret-0000")
    ca = Pki(tmp_path / "ca")

    def prom(seen: Any) -> Answer:
        name = "targets_state_active" if seen.path.endswith("targets") else "query_vector"
        return Answer(200, sample(f"prometheus_api_v1_{name}.json"))

    with (standin(cloudflare.CloudflareApi, cf_state, tmp_path) as cf_url,
          standin(infisical.InfisicalApi, inf_state, tmp_path) as inf_url,
          standin(proxmox.ProxmoxApi, pve_state, tmp_path) as pve_url,
          scripted(prom) as prom_srv,
          scripted(lambda seen: Answer(200, {"appName": "x", "version": "1"})) as apps,
          scripted(lambda seen: Answer(200, b"ok"), ca.server_tls(
              "edge", dns=tuple(r.hostname for r in ssot.routes))) as edge):
        origins = {"https://api.cloudflare.com:443": cf_url,
                   "https://infisical.ronny.works:443": inf_url,
                   "https://192.168.1.184:8006": pve_url, "http://192.168.1.184:9090": prom_srv.url}
        origins |= {p.url.split("/api")[0].split("/health")[0].split("/rest")[0]: apps.url
                    for p in ssot.probes}
        origins |= {f"https://{r.hostname}:443": edge.url for r in ssot.routes}
        yield origins, ca


def _store(ssot: Ssot, origins: dict[str, str], ca: Pki, save: Path, timeout: float = 2
           ) -> FactStore:
    settings = Settings.from_env(ENV, timeout=timeout, ca_bundle=ca.ca)
    client = make_client(settings, transport=Loopback(origins, verify=tls_verify(settings)))
    return FactStore(api_collectors(ssot, settings, client=client, env={}),
                     deadline=settings.timeout, save_dir=save)


def test_api_collectors_names_the_five_sources(ssot: Ssot) -> None:
    assert sorted(api_collectors(ssot, Settings())) == [
        "cloudflare", "http", "infisical", "prometheus", "proxmox"]


def test_all_sources_through_the_store_without_a_leak(
        ssot: Ssot, world: tuple[dict[str, str], Pki], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    origins, ca = world
    store = _store(ssot, origins, ca, tmp_path / "facts")
    start = time.monotonic()
    store.prefetch(store.sources)
    print(f"\nfive API sources, collected concurrently: {time.monotonic() - start:.2f} s")
    store.save()  # as --save-facts does, once every source ran
    assert store.unreachable() == {}
    assert store.get("proxmox")["vms"]["201"]["exists"] is True
    assert store.get("proxmox")["vms"]["209"]["exists"] is False
    assert store.get("cloudflare")["tunnel"]["ingress"][-1]["service"] == "http_status:404"
    assert store.get("infisical")["paths"][ssot.secret_paths[0].path]["keys"]
    assert store.get("prometheus")["rules"]["streaming-io-isolation"]["values"] == [1.0, 0.0]
    http = store.get("http")
    assert http["probes"]["radarr"]["status"] == 200  # its key came from Infisical
    assert http["routes"]["jellyfin.ronny.works"]["status"] == 200
    saved = "".join(p.read_text() for p in (tmp_path / "facts").iterdir())
    for secret in [CF_TOKEN, PVE_SECRET, INF[1], *CANARY.values(), "canary-e2e-"]:
        assert secret not in saved and secret not in caplog.text


def test_a_hung_api_costs_one_timeout_and_only_its_source(
        ssot: Ssot, world: tuple[dict[str, str], Pki], tmp_path: Path) -> None:
    origins, ca = world
    with silent_listener() as hung:
        store = _store(ssot, origins | {"http://192.168.1.184:9090": hung}, ca, tmp_path, 1)
        start = time.monotonic()
        store.prefetch(store.sources)
        cost = time.monotonic() - start
    store.save()
    print(f"\nprometheus hung: the run's API collection took {cost:.2f} s (timeout 1 s)")
    assert list(store.unreachable()) == ["prometheus"]
    assert "timed out after" in store.unreachable()["prometheus"]
    assert json.loads((tmp_path / "prometheus.json").read_text()) == {
        "unreachable": store.unreachable()["prometheus"]}
    assert store.get("http")["probes"]["jellyfin"]["status"] == 200
    assert cost < 3  # a guard against a hang, not a speed target


def test_echoed_secret_is_masked_in_the_facts(ssot: Ssot) -> None:
    """An API that echoes a credential back: the registered value never reaches the facts."""
    token = "cf-echoed-token-77aa88bb"
    zone = {"success": True, "result": [{"id": "z1", "name": "ronny.works",
                                         "account": {"id": token}}]}
    tunnel = {"success": True, "result": {"version": 1, "config": {"ingress": [
        {"hostname": token, "service": "http_status:404"}]}}}
    dns = {"success": True, "result": [{"name": "x", "type": "TXT", "content": token}]}

    def script(seen: Any) -> Answer:
        return Answer(200, zone if seen.path.endswith("/zones") else
                      dns if seen.path.endswith("/dns_records") else tunnel)

    with scripted(script) as srv:
        settings = Settings(timeout=2, cloudflare_api=srv.url, cloudflare_token=token)
        facts = api_collectors(ssot, settings)["cloudflare"]()
    assert token not in json.dumps(facts)
    assert facts["tunnel"]["ingress"][0]["hostname"] == redact.MASK
    assert facts["dns"][0]["content"] == redact.MASK


ORIGINS = {"cloudflare": "https://api.cloudflare.com:443",
           "infisical": "https://infisical.ronny.works:443",
           "proxmox": "https://192.168.1.184:8006", "prometheus": "http://192.168.1.184:9090"}
FAULTS = {"hang": Answer(hang=True), "500": Answer(500, b"<h1>Internal Server Error</h1>"),
          "garbage": Answer(200, b'{"result": [1, 2'), "wrong shape": Answer(200, [])}
EXPECTED = {"hang": "timed out after 1 s (no answer)", "500": "HTTP 500 Internal Server Error",
            "garbage": "HTTP 200 but invalid JSON", "wrong shape": "unexpected response: "}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("source", list(ORIGINS))
def test_each_api_under_each_fault(ssot: Ssot, source: str, fault: str) -> None:
    """Hung, 500, garbage, wrong shape: Unreachable(source, reason), one timeout at most."""
    settings = Settings.from_env(ENV, timeout=1)
    with scripted(lambda seen: FAULTS[fault]) as srv:
        client = make_client(settings, transport=Loopback({ORIGINS[source]: srv.url}))
        start = time.monotonic()
        with pytest.raises(Unreachable) as info:
            api_collectors(ssot, settings, client=client)[source]()
        cost = time.monotonic() - start
    print(f"\n{source} {fault}: Unreachable after {cost:.2f} s: {info.value.reason}")
    assert info.value.target == source and EXPECTED[fault] in info.value.reason
    assert cost < 3  # a guard against a hang, not a speed target
