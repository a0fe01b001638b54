"""Probes from both ends (issue 14): the host asks its own services (agent/probes.py), and the
services gate tells "service down" from "path broken" by comparing that with the verifier's end.

Offline: generated facts (factsgen) for the gate's logic; a loopback HTTP server for the agent.
"""

from __future__ import annotations

import copy
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from factsgen import clean_facts, mutated, run_gates

from opsverify.facts import commands, contract
from opsverify.facts.agent import main as agent_main
from opsverify.facts.agent import probes
from opsverify.facts.agent.primitives import Context
from opsverify.facts.host_params import remote_params, validate_params
from opsverify.families import routes, services
from opsverify.ssot import load
from opsverify.verdict import Unreachable

SSOT = load()
CLEAN = clean_facts(SSOT)
PRB = "test_services::test_probe"
NOT_HERE = "not an address of this host (not asked from here)"


def probe(name: str) -> Any:
    return next(p for p in SSOT.probes if p.name == name)


def refused(facts: dict, name: str, connected: bool | None = False,
            error: str = "GET http://x: connection refused") -> None:
    facts["http"]["probes"][name].update(status=None, error=error, connected=connected, json={},
                                         body=None, json_keys={})


def host_end(facts: dict, name: str, *tries: tuple[str, int | None, str | None]) -> None:
    p = probe(name)
    facts[f"host:{p.host}"]["probes"][name] = [
        {"url": f"http://{address}:8686/x", "status": status, "error": error}
        for address, status, error in tries]


def judge(facts: dict, name: str, host: Any = None) -> str:
    p = probe(name)
    got = host if host is not None else (lambda: facts[f"host:{p.host}"])
    c = services.check(p, facts["http"], host_answers=got)
    return "; ".join(c.problems)


def test_clean_probes_pass_and_the_host_end_is_in_the_contract() -> None:
    for p in SSOT.probes:
        assert judge(CLEAN, p.name) == ""
    for host in SSOT.active_hosts:
        assert contract.problem(f"host:{host}", CLEAN[f"host:{host}"]) is None
    broken = mutated(CLEAN, lambda f: f["host:vm209"]["probes"]["radarr"][0].update(status="x"))
    assert contract.problem("host:vm209", broken["host:vm209"]) == \
        "$.probes.radarr[0].status: expected integer or null, got string"
    older = mutated(CLEAN, lambda f: f["host:vm209"].pop("probes"))  # an older agent's facts
    assert contract.problem("host:vm209", older["host:vm209"]) is None


def test_answers_on_its_own_address_on_the_host_is_path_broken() -> None:
    f = mutated(CLEAN, lambda f: refused(f, "radarr"))
    assert judge(f, "radarr") == (
        "path broken: no answer: GET http://x: connection refused from the verifier, but it "
        "answers on the host (100.107.36.76:7878: 401): Tailscale or a firewall between the "
        "verifier and the host")


def test_answers_on_loopback_only_is_a_wrong_bind_address() -> None:
    f = mutated(CLEAN, lambda f: (refused(f, "lidarr"), host_end(
        f, "lidarr", ("100.107.36.76", None, "connection refused"), ("127.0.0.1", 401, None))))
    assert judge(f, "lidarr").endswith(
        "but it answers on the host (100.107.36.76:8686: connection refused; 127.0.0.1:8686: "
        "401): bound to 127.0.0.1 only (wrong bind address)")


def test_address_not_on_the_host_says_tailscale_may_be_down() -> None:
    f = mutated(CLEAN, lambda f: (refused(f, "lidarr"), host_end(
        f, "lidarr", ("100.107.36.76", None, NOT_HERE), ("127.0.0.1", 401, None))))
    assert judge(f, "lidarr").endswith(
        "the verifier's address is not the host's (Tailscale down on the host?)")


def test_no_answer_at_either_end_is_service_down() -> None:
    f = mutated(CLEAN, lambda f: (refused(f, "lidarr"), host_end(
        f, "lidarr", ("100.107.36.76", None, "connection refused"),
        ("127.0.0.1", None, "connection refused"))))
    assert judge(f, "lidarr") == (
        "service down: no answer: GET http://x: connection refused from the verifier, nor on "
        "the host (100.107.36.76:8686: connection refused; 127.0.0.1:8686: connection refused)")


def test_a_connected_failure_is_the_services_and_never_asks_the_host() -> None:
    # a hung service accepts the connection (the kernel does) and never answers: the path works
    f = mutated(CLEAN, lambda f: refused(f, "jellyfin", connected=True,
                                         error="timed out after 5 s (read)"))
    assert judge(f, "jellyfin", host=lambda: pytest.fail("asked")) == \
        "no answer: timed out after 5 s (read)"


def test_401_counts_as_answering_only_for_a_probe_that_sends_a_key() -> None:
    # jellyfin's /health needs no key: a 401 on the host is not the service answering as it should
    f = mutated(CLEAN, lambda f: (refused(f, "jellyfin"), host_end(
        f, "jellyfin", ("100.123.207.64", 401, None))))
    assert judge(f, "jellyfin").startswith("service down:")
    f = mutated(CLEAN, lambda f: (refused(f, "radarr"), host_end(
        f, "radarr", ("100.107.36.76", 403, None))))
    assert judge(f, "radarr").startswith("path broken:")


def test_host_facts_missing_or_unreachable() -> None:
    f = mutated(CLEAN, lambda f: (refused(f, "radarr"), f["host:vm209"].pop("probes")))
    assert judge(f, "radarr") == "no answer: GET http://x: connection refused"  # older agent

    def down() -> None:
        raise Unreachable("host:vm209", "ssh: connection refused")

    f = mutated(CLEAN, lambda f: refused(f, "radarr"))
    with pytest.raises(Unreachable, match="and the host does not answer either"):
        judge(f, "radarr", host=down)


def test_an_answering_probe_never_asks_the_host() -> None:
    def never() -> None:
        raise AssertionError("host facts asked for a probe that answered")

    assert judge(CLEAN, "radarr", host=never) == ""
    f = mutated(CLEAN, lambda f: f["http"]["probes"]["radarr"].update(status=401, json={}))
    assert judge(f, "radarr", host=never).startswith("status: expected 200, got 401")


def test_routes_show_their_origin_probe() -> None:
    by_name = {r.hostname: routes.origin(r, CLEAN["http"]) for r in SSOT.routes}
    assert by_name["jellyfin.ronny.works"]["probe"] == "jellyfin"
    assert by_name["music.ronny.works"]["probe"] == "navidrome"
    assert by_name["spotisub.ronny.works"] is None  # no probe asks spotisub: nothing to compare


def test_the_gates_read_both_ends() -> None:
    def drift(f: dict) -> None:
        refused(f, "lidarr")
        host_end(f, "lidarr", ("100.107.36.76", None, "connection refused"),
                 ("127.0.0.1", 401, None))
        refused(f, "navidrome")
        host_end(f, "navidrome", ("100.123.207.64", None, "connection refused"),
                 ("127.0.0.1", None, "connection refused"))

    run = run_gates(mutated(CLEAN, drift))
    assert set(run.failing()) == {f"{PRB}[download-stack:lidarr]",
                                  f"{PRB}[streaming-stack:navidrome]"}, run.output[-2000:]
    assert "path broken" in run.outcomes[f"{PRB}[download-stack:lidarr]"].message
    assert "service down" in run.outcomes[f"{PRB}[streaming-stack:navidrome]"].message


# --- the host's end: agent/probes.py against a loopback server ----------------------------------

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    seen: list[dict[str, Any]]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, "headers": dict(self.headers)})
        if self.path.startswith("/hang"):
            time.sleep(3)
        status = 302 if self.path.startswith("/moved") else 401 if "key" in self.path else 200
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            self.wfile.write(b"x" * 100000)
        except OSError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server(("127.0.0.1", 0), Handler)
    srv.seen = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(items: list[dict[str, Any]], budget: float = 8) -> dict[str, Any]:
    ctx = Context({"probes": items, "budget_s": budget}, time.monotonic() + budget)
    return probes.start(ctx).facts()["probes"]


def test_the_host_asks_loopback_and_never_leaves_the_host(server: Server) -> None:
    port = server.server_address[1]
    got = ask([{"name": "a", "port": port, "path": "/api?key=no", "address": "127.0.0.1"},
               # TEST-NET-1: not this host's, so not asked (the UDP connect() sends nothing)
               {"name": "b", "port": port, "path": "/ok", "address": "192.0.2.1"},
               {"name": "c", "port": free_port(), "path": "/", "address": None}])
    assert [(t["url"], t["status"], t["error"]) for t in got["a"]] == [
        (f"http://127.0.0.1:{port}/api?key=no", 401, None)]
    assert [(t["url"], t["status"], t["error"]) for t in got["b"]] == [
        (f"http://192.0.2.1:{port}/ok", None, "not an address of this host (not asked from here)"),
        (f"http://127.0.0.1:{port}/ok", 200, None)]
    assert got["c"][0]["status"] is None and got["c"][0]["error"] == "connection refused"
    assert probes.is_local("127.0.0.1") and not probes.is_local("192.0.2.1")


def test_no_redirect_no_credential_no_content(server: Server) -> None:
    port = server.server_address[1]
    got = ask([{"name": "m", "port": port, "path": "/moved", "address": "127.0.0.1"}])
    assert got["m"][0]["status"] == 302
    assert [s["path"] for s in server.seen] == ["/moved"]  # the Location was not followed
    headers = {k.lower() for k in server.seen[0]["headers"]}
    assert not headers & {"authorization", "x-api-key", "cookie"}
    assert set(got["m"][0]) == {"url", "status", "error"}  # no body kept, no timing


def test_hung_services_cost_one_timeout_in_parallel(server: Server, monkeypatch) -> None:
    monkeypatch.setattr(probes, "ATTEMPT_TIMEOUT", 0.5)
    monkeypatch.setattr(probes, "PROBE_BUDGET", 1.5)
    port = server.server_address[1]
    start = time.monotonic()
    got = ask([{"name": f"h{i}", "port": port, "path": "/hang", "address": "127.0.0.1"}
               for i in range(6)])
    took = time.monotonic() - start
    assert took < 1.5, took  # six hung services, one timeout
    assert {t[0]["error"] for t in got.values()} == {"timed out after 0.5 s (answer)"}


def test_the_section_runs_beside_the_others_in_the_whole_agent(server: Server,
                                                               tmp_path) -> None:
    port = server.server_address[1]
    facts = agent_main.collect({"host": "h", "files": {"docker_socket": str(tmp_path / "none")},
                                "probes": [{"name": "p", "port": port, "path": "/",
                                            "address": "127.0.0.1"}], "budget_s": 5})
    assert facts["probes"]["p"][0]["status"] == 200 and "probes" not in facts["errors"]
    assert agent_main.collect({"host": "h", "budget_s": 5,
                               "files": {"docker_socket": str(tmp_path / "none")}})["probes"] == {}


def test_the_parameters_hold_no_secret_and_are_checked() -> None:
    every = {h: remote_params(SSOT, h)["probes"] for h in SSOT.active_hosts}
    assert sorted(p["name"] for ps in every.values() for p in ps) == \
        sorted(p.name for p in SSOT.probes)
    sab = next(p for p in every["vm209"] if p["name"] == "sabnzbd")
    assert sab == {"name": "sabnzbd", "port": 8080, "address": "100.107.36.76",
                   "path": "/api?mode=queue&output=json"}  # no apikey parameter
    nav = next(p for p in every["vm210"] if p["name"] == "navidrome")
    assert "u=" not in nav["path"] and "t=" not in nav["path"] and "s=" not in nav["path"]
    described = commands.describe(commands.facts_command(
        commands.script_payload(), remote_params(SSOT, "vm209"), 20))
    shown = json.loads(described.rsplit(" ", 1)[1].strip("'"))
    assert shown["probes"] == every["vm209"]
    assert "opsverify.facts.agent.probes" in commands.script_modules(commands.script_payload())
    for bad, why in [({"port": 0}, "is not a TCP port"), ({"path": "/a b"}, "URL path"),
                     ({"path": "api"}, "URL path"), ({"address": "vm209"}, "not an IP")]:
        params = copy.deepcopy(remote_params(SSOT, "vm209"))
        params["probes"][0].update(bad)
        with pytest.raises(ValueError, match=why):
            validate_params(params)


@pytest.mark.parametrize("head, status", [
    (b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n", 401),
    (b"HTTP/1.0 200 OK\r\n", 200), (b"HTTP/1.1 204\r\n", 204), (b"HTTP/1.1 302 Found", 302),
    (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", None), (b"HTTP/1.1 2000 OK\r\n", None),
    (b"HTTP/1.1 099 Low\r\n", None), (b"", None), (b"<html>hello</html>\n", None)])
def test_the_status_line_is_read_or_refused(head: bytes, status: int | None) -> None:
    assert probes.status_of(head) == status


@pytest.mark.parametrize("speaks, error", [
    (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "not an HTTP answer"),
    (b"", "not an HTTP answer (closed without a word)")])
def test_a_port_that_is_not_http_reads_as_such(speaks: bytes, error: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)  # the request read: closing on unread data would reset it
                conn.sendall(speaks)

        threading.Thread(target=answer, daemon=True).start()
        got = ask([{"name": "x", "port": listener.getsockname()[1], "path": "/",
                    "address": "127.0.0.1"}])
    assert [(t["status"], t["error"]) for t in got["x"]] == [(None, error)]
