"""dockerproxy: each synthetic host's socket reads only that host's containers, under its names.

The proxy runs as the real process the lab starts; upstream is a small engine stand-in on a unix
socket answering the two container GETs as dockerd 20.10 does (HTTP/1.0 in, body until close).
The tests/scale twin test runs the same proxy in front of a real shared dockerd.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from opsverify.facts.agent import docker
from opsverify.lab.shared_engine import LABEL

CONTAINERS = [
    {"Id": "a" * 64, "Names": ["/vm301.radarr"], "Labels": {LABEL: "vm301", "x": "1"},
     "State": "running"},
    {"Id": "b" * 64, "Names": ["/vm302.radarr"], "Labels": {LABEL: "vm302"}, "State": "running"},
]


class _Engine(BaseHTTPRequestHandler):
    """GET /containers/json (label filter) and /containers/{id|name}/json, like dockerd."""

    def log_message(self, *_: object) -> None:
        pass

    def _send(self, status: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path.split("/", 2)[2] if url.path.startswith("/v1.") else url.path[1:]
        if path == "_ping":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")
            return
        if path == "containers/json":
            wanted = json.loads(parse_qs(url.query).get("filters", ["{}"])[0]).get("label", [])
            out = [c for c in CONTAINERS  # every label filter must hold (KEY or KEY=VALUE)
                   if all(any(w in (k, f"{k}={v}") for k, v in c["Labels"].items())
                          for w in wanted)]
            self._send(200, out)
            return
        ident = path.split("/")[1] if path.startswith("containers/") else ""
        for c in CONTAINERS:
            if ident in (c["Id"], c["Names"][0][1:]) or (len(ident) >= 4
                                                          and c["Id"].startswith(ident)):
                self._send(200, {"Id": c["Id"], "Name": c["Names"][0],
                                 "Config": {"Labels": dict(c["Labels"]), "Env": ["A=1"]},
                                 "State": {"Status": c["State"]}})
                return
        self._send(404, {"message": f"No such container: {ident}"})


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[dict[str, str]]:
    upstream = str(tmp_path / "engine.sock")
    server = _UnixServer(upstream, _Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    socks = {h: str(tmp_path / f"{h}.sock") for h in ("vm301", "vm302")}
    config = tmp_path / "proxy.json"
    config.write_text(json.dumps({"upstream": upstream, "label": LABEL, "sep": ".",
                                  "hosts": {h: {"socket": s, "gid": None}
                                            for h, s in socks.items()}}))
    log = open(tmp_path / "proxy.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([sys.executable, "-m", "opsverify.lab.dockerproxy", str(config)],
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while "ready" not in (tmp_path / "proxy.log").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, \
            (tmp_path / "proxy.log").read_text()
        time.sleep(0.02)
    yield socks
    proc.terminate()
    assert proc.wait(5) == 0
    log.close()
    server.shutdown()
    server.server_close()


def raw(sock: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_the_fact_scripts_own_reads_see_only_the_hosts_containers(proxy) -> None:
    status, body = docker.docker_get(proxy["vm301"], "containers", 5)
    assert status == 200
    listed = json.loads(body)
    assert [c["Names"] for c in listed] == [["/radarr"]]
    assert listed[0]["Labels"] == {"x": "1"}  # the lab's own label stays behind the proxy
    assert docker.parse_container_list(body) == ["a" * 64]
    for ident in ("a" * 64, "radarr", "aaaa"):
        status, body = docker.docker_get(proxy["vm301"], "inspect", 5, id=ident)
        assert status == 200, ident
        assert json.loads(body)["Name"] == "/radarr"


def test_another_hosts_container_is_not_found(proxy) -> None:
    for ident in ("b" * 64, "vm302.radarr", "bbbb"):
        status, body = docker.docker_get(proxy["vm301"], "inspect", 5, id=ident)
        assert status == 404 and b"No such container" in body, ident
    status, body = docker.docker_get(proxy["vm302"], "containers", 5)
    assert [c["Id"] for c in json.loads(body)] == ["b" * 64]


def test_only_reads_are_answered(proxy) -> None:
    out = raw(proxy["vm301"], b"POST /v1.41/containers/radarr/stop HTTP/1.0\r\n"
                              b"Content-Length: 2\r\n\r\n{}")
    assert out.startswith(b"HTTP/1.1 403 ") and b"only reads" in out
    out = raw(proxy["vm301"], b"GET /v1.41/containers/x/logs HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 403 ")
    out = raw(proxy["vm301"], b"HEAD /_ping HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\n")


def test_a_kept_alive_connection_gets_each_answer_whole(proxy) -> None:
    """The Docker SDK (the lab's readiness checks) keeps its connection open."""
    one = b"GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: docker\r\n\r\n"
    last = b"GET /v1.41/containers/radarr/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
    out = raw(proxy["vm301"], one + last)
    first, _, rest = out.partition(b"\r\n\r\n")
    length = int(next(h.split(b":")[1] for h in first.split(b"\r\n")
                      if h.lower().startswith(b"content-length")))
    assert json.loads(rest[:length])[0]["Names"] == ["/radarr"]
    second = rest[length:]
    assert second.startswith(b"HTTP/1.1 200 ")
    assert json.loads(second.partition(b"\r\n\r\n")[2])["Name"] == "/radarr"


def test_the_socket_is_root_and_docker_group_only(proxy) -> None:
    mode = os.stat(proxy["vm301"]).st_mode & 0o777
    assert mode == 0o660
