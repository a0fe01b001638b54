"""The Cloudflare stand-in: API v4 envelopes, token scopes, DNS records, tunnel config, the edge."""

from __future__ import annotations

import io
import json
import secrets
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from opsverify.lab import pki
from opsverify.lab.standins import _http, cloudflare

ACCOUNT = "5f1c0e9a7b2d4c6e8f0a1b2c3d4e5f60"
ZONE = "9a8b7c6d5e4f30211203f4e5d6c7b8a9"
TUNNEL = "ae7d4462-5b1c-4f0e-9a3d-7c2e81f0b6a4"
TARGET = f"{TUNNEL}.cfargotunnel.com"


class _Origin(BaseHTTPRequestHandler):
    """A tiny origin: / redirects to /login, /ok answers 200 and echoes the Host it saw."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/ok":
            body = b"hello from origin"
            self.send_response(200)
            self.send_header("X-Seen-Host", self.headers.get("Host", ""))
        else:
            body = b""
            self.send_response(302)
            self.send_header("Location", "/login")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def origin():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead_origin() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def tokens() -> dict[str, str]:
    return {"read": secrets.token_urlsafe(30), "edit": secrets.token_urlsafe(30)}


@pytest.fixture
def state(tmp_path: Path, tokens, origin, dead_origin) -> _http.State:
    data = cloudflare.seed(
        account_id=ACCOUNT, account_name="Homelab", zone_id=ZONE, zone_name="ronny.works",
        tunnel_id=TUNNEL, read_token=tokens["read"], edit_token=tokens["edit"], config_version=82,
        ingress=[
            {"hostname": "spotisub.ronny.works", "service": origin},
            {"hostname": "jellyfin.ronny.works", "service": dead_origin},
            {"hostname": "*.apps.ronny.works", "service": origin},
            {"service": "http_status:404"},
        ],
        dns_records=[
            {"name": "spotisub", "type": "CNAME", "content": TARGET, "proxied": True},
            {"name": "jellyfin.ronny.works", "type": "CNAME", "content": TARGET, "proxied": True},
            {"name": "other", "type": "CNAME", "content": TARGET, "proxied": True},
            {"name": "*.apps", "type": "CNAME", "content": TARGET, "proxied": True},
            {"name": "dnsonly", "type": "CNAME", "content": TARGET, "proxied": False},
            {"name": "@", "type": "A", "content": "203.0.113.7", "proxied": True},
        ],
    )
    path = tmp_path / "cloudflare.json"
    _http.write_state(path, data)
    return _http.State(path)


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def api(serve, state, tokens, log, new_client):
    base = serve(cloudflare.CloudflareApi(state), log=log) + "/client/v4"
    clients: dict[str | None, httpx.Client] = {}

    def client(scope: str | None = "read") -> httpx.Client:
        if scope not in clients:
            headers = {"Authorization": f"Bearer {tokens[scope]}"} if scope else {}
            clients[scope] = new_client(base, headers=headers)
        return clients[scope]

    return client


@pytest.fixture
def edge(serve, state, log, http):
    """GET a public hostname through the edge: edge(host, path="/")."""
    url = serve(cloudflare.CloudflareEdge(state), log=log)
    return lambda host, path="/": http.get(url + path, headers={"Host": host})


def test_envelope_and_record_shape_match_the_real_api(api, sample, gaps):
    body = api().get(f"/zones/{ZONE}/dns_records").json()
    real = sample("cloudflare_dns_records_tunnel_cname_real.json")
    assert gaps(real, body) == []
    cname = next(r for r in body["result"] if r["name"] == "spotisub.ronny.works")
    assert (cname["type"], cname["content"], cname["proxied"]) == ("CNAME", TARGET, True)
    assert cname["settings"] == {"flatten_cname": False} and cname["ttl"] == 1


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 400, 9106),
        ({"Authorization": "Basic abc"}, 400, 6003),
        ({"Authorization": "Bearer not-a-known-token-value"}, 403, 10000),
    ],
)
def test_authentication_failures(api, headers, status, code):
    response = api(None).get("/zones", headers=headers)
    assert response.status_code == status
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == code


def test_read_token_reads_but_cannot_write(api):
    read = api("read")
    assert read.get("/user/tokens/verify").json()["result"]["status"] == "active"
    assert read.get(f"/zones/{ZONE}/dns_records").status_code == 200
    denied = [
        read.post(f"/zones/{ZONE}/dns_records", json={"type": "A", "name": "x",
                                                       "content": "203.0.113.9"}),
        read.put(f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}/configurations",
                 json={"config": {"ingress": []}}),
        read.delete(f"/zones/{ZONE}/dns_records/whatever"),
    ]
    for response in denied:
        assert response.status_code == 403
        assert response.json()["errors"] == [{"code": 10000, "message": "Authentication error"}]


def test_zones_by_name(api):
    client = api()
    body = client.get("/zones", params={"name": "ronny.works"}).json()
    assert [(z["id"], z["name"], z["status"]) for z in body["result"]] == [
        (ZONE, "ronny.works", "active")]
    assert body["result"][0]["account"] == {"id": ACCOUNT, "name": "Homelab"}
    assert body["result_info"]["total_count"] == 1
    assert client.get("/zones", params={"name": "example.org"}).json()["result"] == []
    assert client.get(f"/zones/{ZONE}").json()["result"]["name"] == "ronny.works"


def test_dns_filters_and_paging(api):
    client = api()
    body = client.get(f"/zones/{ZONE}/dns_records",
                      params={"type": "CNAME", "name": "jellyfin.ronny.works"}).json()
    assert [r["name"] for r in body["result"]] == ["jellyfin.ronny.works"]
    assert body["result_info"] == {"page": 1, "per_page": 100, "count": 1, "total_count": 1,
                                   "total_pages": 1}
    page = client.get(f"/zones/{ZONE}/dns_records", params={"per_page": 2, "page": 2}).json()
    assert page["result_info"] == {"page": 2, "per_page": 2, "count": 2, "total_count": 6,
                                   "total_pages": 3}
    assert client.get(f"/zones/{ZONE}/dns_records", params={"name": "nope"}).json()["result"] == []


def test_dns_record_lifecycle(api):
    client = api("edit")
    created = client.post(f"/zones/{ZONE}/dns_records", json={
        "type": "CNAME", "name": "music", "content": TARGET, "proxied": True,
        "comment": "lab", "tags": ["a:b"]}).json()["result"]
    rid = created["id"]
    assert created["name"] == "music.ronny.works" and created["proxiable"] is True
    assert client.get(f"/zones/{ZONE}/dns_records/{rid}").json()["result"] == created

    patched = client.patch(f"/zones/{ZONE}/dns_records/{rid}", json={"proxied": False}).json()
    assert patched["result"]["proxied"] is False and patched["result"]["comment"] == "lab"

    put = client.put(f"/zones/{ZONE}/dns_records/{rid}", json={
        "type": "A", "name": "music", "content": "203.0.113.10"}).json()["result"]
    assert (put["id"], put["type"], put["comment"], put["created_on"]) == (
        rid, "A", None, created["created_on"])

    assert client.delete(f"/zones/{ZONE}/dns_records/{rid}").json()["result"] == {"id": rid}
    gone = client.get(f"/zones/{ZONE}/dns_records/{rid}")
    assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == 81044


def test_dns_errors(api):
    client = api("edit")
    conflict = client.post(f"/zones/{ZONE}/dns_records", json={
        "type": "A", "name": "spotisub", "content": "203.0.113.11"})
    assert conflict.status_code == 400 and conflict.json()["errors"][0]["code"] == 81053
    bad_ip = client.post(f"/zones/{ZONE}/dns_records", json={
        "type": "A", "name": "x", "content": "not-an-ip"})
    assert bad_ip.status_code == 400 and bad_ip.json()["errors"][0]["code"] == 9005
    unknown_zone = client.get("/zones/00000000000000000000000000000000/dns_records")
    assert unknown_zone.status_code == 404 and unknown_zone.json()["errors"][0]["code"] == 7003
    bad_json = client.post(f"/zones/{ZONE}/dns_records", content=b"{nope",
                           headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["success"] is False
    assert client.get("/no/such/route").json()["errors"][0]["code"] == 7000


def test_tunnel_configuration_get_and_put(api, sample, gaps):
    url = f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}/configurations"
    body = api().get(url).json()
    assert body["result"]["version"] == 82
    assert (body["result"]["account_id"], body["result"]["source"]) == (ACCOUNT, "cloudflare")
    assert body["result"]["config"]["ingress"][-1] == {"service": "http_status:404"}

    real = sample("cloudflare_tunnel_configurations_get.json")
    put = api("edit").put(url, json={"config": real["result"]["config"]})
    assert put.status_code == 200
    after = api().get(url).json()
    assert after["result"]["version"] == 83
    assert after["result"]["config"] == real["result"]["config"]
    assert gaps(real, after) == []

    bad = api("edit").put(url, json={"config": {"ingress": [{"hostname": "x"}]}})
    assert bad.status_code == 400 and bad.json()["success"] is False
    assert api().get(f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}").json()["result"]["status"] == \
        "healthy"
    assert api().get(f"/accounts/{ACCOUNT}/cfd_tunnel/nope/configurations").status_code == 404


def test_edge_passes_a_redirect_through_unchanged(edge):
    response = edge("spotisub.ronny.works")
    assert response.status_code == 302
    assert response.headers["location"] == "/login"
    assert response.headers["server"] == "cloudflare"
    assert response.headers["cf-ray"]


def test_edge_proxies_body_and_host(edge):
    response = edge("spotisub.ronny.works", "/ok")
    assert response.status_code == 200 and response.text == "hello from origin"
    assert response.headers["x-seen-host"] == "spotisub.ronny.works"
    wildcard = edge("radarr.apps.ronny.works", "/ok")
    assert wildcard.status_code == 200


@pytest.mark.parametrize(
    ("public_host", "status", "body"),
    [
        ("other.ronny.works", 404, ""),                      # catch-all http_status:404
        ("missing.ronny.works", 530, "error code: 1016"),    # no DNS record
        ("dnsonly.ronny.works", 530, "error code: 1016"),    # CNAME not proxied
        ("ronny.works", 530, "error code: 1016"),            # A record, not the tunnel
        ("jellyfin.ronny.works", 502, "error code: 502"),    # origin down
    ],
)
def test_edge_failures(edge, public_host, status, body):
    response = edge(public_host)
    assert (response.status_code, response.text) == (status, body)


def test_put_through_the_api_reroutes_live_traffic(api, edge, origin):
    url = f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}/configurations"
    assert edge("jellyfin.ronny.works").status_code == 502
    config = api().get(url).json()["result"]["config"]
    config["ingress"][1]["service"] = origin
    assert api("edit").put(url, json={"config": config}).status_code == 200
    assert edge("jellyfin.ronny.works", "/ok").status_code == 200
    config["ingress"] = [{"service": "http_status:503"}]
    api("edit").put(url, json={"config": config})
    assert edge("spotisub.ronny.works").status_code == 503


def test_deleting_the_dns_record_breaks_the_route(api, edge):
    client = api("edit")
    record = client.get(f"/zones/{ZONE}/dns_records", params={"name": "spotisub"}).json()
    client.delete(f"/zones/{ZONE}/dns_records/{record['result'][0]['id']}")
    assert edge("spotisub.ronny.works").status_code == 530


def test_edge_over_tls(serve, state, tmp_path):
    ca, _ = pki.make_ca(tmp_path / "pki")
    cert, key = pki.issue(tmp_path / "pki", "edge", ["*.ronny.works"], ["127.0.0.1"])
    url = serve(cloudflare.CloudflareEdge(state), tls=_http.tls_context(str(cert), str(key)))
    ctx = ssl.create_default_context(cafile=str(ca))
    response = httpx.get(url + "/", headers={"Host": "spotisub.ronny.works"}, verify=ctx,
                         follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (302, "/login")


def test_concurrent_writes_keep_the_state_whole(api, state):
    client = api("edit")

    def create(i: int) -> int:
        return client.post(f"/zones/{ZONE}/dns_records", json={
            "type": "A", "name": f"host{i}", "content": f"203.0.113.{i + 1}"}).status_code

    threads = []
    results: list[int] = []
    for i in range(30):
        t = threading.Thread(target=lambda i=i: results.append(create(i)))
        threads.append(t)
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 30
    saved = json.loads(state.path.read_text())
    assert len(saved["zones"][ZONE]["dns_records"]) == 36
    assert not [p for p in state.path.parent.iterdir() if p.name.endswith(".tmp")]


def test_log_never_holds_a_token(api, edge, log, tokens):
    api("edit").get("/zones", params={"token": tokens["edit"]})
    api("edit").post(f"/zones/{ZONE}/dns_records", json={
        "type": "TXT", "name": "t", "content": tokens["read"]})
    edge("spotisub.ronny.works", f"/?secret={tokens['edit']}")
    text = log.getvalue()
    assert "GET /client/v4/zones 200" in text and "edge" in text
    assert tokens["edit"] not in text and tokens["read"] not in text


# --- awkward answers on demand: rate limits, a locally managed tunnel, pages without a count ---


def test_rate_limit_on_demand_answers_like_cloudflare(api, state):
    import wire
    real = wire.load("cloudflare_429_rate_limited.http")
    with state.update() as data:
        data["rate_limit"] = {"answer_429": 1, "retry_after": 2}
    limited = api().get("/zones")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "2")
    assert limited.json() == json.loads(real.body)
    assert api().get("/zones").status_code == 200  # only as many as asked for


def test_locally_managed_tunnel_answers_config_null(api, state, edge, sample, gaps):
    with state.update() as data:
        tunnel = data["tunnels"][TUNNEL]
        tunnel.update(version=0, local_config=tunnel.pop("config"), config=None)
    body = api().get(f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}/configurations").json()
    real = sample("cloudflare_tunnel_configurations_local_null_RECONSTRUCTED.json")
    assert gaps(real, body) == []
    assert {k: body["result"][k] for k in ("config", "source", "version")} == {
        "config": None, "source": "local", "version": 0}
    assert api().get(f"/accounts/{ACCOUNT}/cfd_tunnel/{TUNNEL}").json()["result"][
        "remote_config"] is False
    assert edge("spotisub.ronny.works", "/ok").status_code == 200  # the connector's own rules


def test_list_without_total_pages_quirk(api, state, sample):
    with state.update() as data:
        data["quirks"] = {"no_total_pages": True, "max_per_page": 3}
    body = api().get(f"/zones/{ZONE}/dns_records", params={"per_page": 100}).json()
    real = sample("cloudflare_result_info_no_total_pages.json")["result_info"]
    assert set(body["result_info"]) == set(real)
    assert (body["result_info"]["per_page"], len(body["result"])) == (3, 3)
