"""The stand-ins' shared scaffolding: limits, errors, the state file, TLS, the command line."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from opsverify.lab import pki
from opsverify.lab.standins import _http, cloudflare, infisical, proxmox


class Boom(_http.App):
    """An app with a bug."""

    routes: ClassVar[list[tuple[str, str, str]]] = [("GET", "/boom", "boom"),
                                                    ("POST", "/echo", "echo")]

    def boom(self, req: _http.Request) -> _http.Response:
        raise KeyError("a-value-that-must-not-leak")

    def echo(self, req: _http.Request) -> _http.Response:
        return _http.json_response(200, req.json())


@pytest.fixture
def state(tmp_path) -> _http.State:
    _http.write_state(tmp_path / "s.json", {"n": 0})
    return _http.State(tmp_path / "s.json")


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        return sock.recv(65536)


def test_oversized_and_chunked_bodies_are_refused(serve, state):
    url = serve(Boom(state))
    big = _raw(url, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n")
    assert big.startswith(b"HTTP/1.1 413 ")
    chunked = _raw(url, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 411 ")


def test_errors_are_json_and_never_a_traceback(serve, state, http):
    url = serve(Boom(state), log=(log := _Log()))
    boom = http.get(url + "/boom")
    assert boom.status_code == 500 and boom.json() == {"error": "internal error"}
    assert "a-value-that-must-not-leak" not in log.text and "KeyError at" in log.text
    bad = http.post(url + "/echo", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    assert http.get(url + "/nowhere").status_code == 404
    assert http.delete(url + "/echo").status_code == 405
    assert http.post(url + "/echo", json={"a": 1}).json() == {"a": 1}


class _Log:
    """A thread-safe text sink."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(self.parts)


def test_state_updates_from_two_processes_never_lose_a_write(state):
    # Two State objects on one file behave as two processes: each has its own flock and cache.
    other = _http.State(state.path)

    def bump(s: _http.State) -> None:
        for _ in range(20):
            with s.update() as data:
                data["n"] += 1

    threads = [threading.Thread(target=bump, args=(s,)) for s in (state, other, state)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads(state.path.read_text())["n"] == 60
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    assert [p.name for p in state.path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_an_external_rewrite_is_picked_up(state):
    assert state.read()["n"] == 0
    _http.write_state(state.path, {"n": 7})
    assert state.read()["n"] == 7


def test_a_failed_update_changes_nothing(state):
    with pytest.raises(RuntimeError), state.update() as data:
        data["n"] = 99
        raise RuntimeError
    assert state.read()["n"] == 0 and json.loads(state.path.read_text())["n"] == 0


def test_tls(serve, state, tmp_path):
    ca, ca_key = pki.make_ca(tmp_path / "pki")
    cert, key = pki.issue(tmp_path / "pki", "api", ["api.lab.test"], ["127.0.0.1"])
    assert stat.S_IMODE(key.stat().st_mode) == stat.S_IMODE(ca_key.stat().st_mode) == 0o600
    assert pki.make_ca(tmp_path / "pki") == (ca, ca_key)  # reused, not replaced
    url = serve(Boom(state), tls=_http.tls_context(str(cert), str(key)))
    ctx = ssl.create_default_context(cafile=str(ca))
    assert httpx.post(url + "/echo", json={"tls": True}, verify=ctx).json() == {"tls": True}
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/echo", verify=ssl.create_default_context())


def _spawn(module: str, state_file: Path, *extra: str) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", f"opsverify.lab.standins.{module}", "--state", str(state_file),
         "--listen", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline().split()
    assert ready[:2] == ["ready", module], ready
    return proc, ready


def _terminate(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    return err


def test_cloudflare_main_serves_api_and_edge_until_sigterm(tmp_path, http):
    token = secrets.token_urlsafe(30)
    _http.write_state(tmp_path / "cf.json", cloudflare.seed(
        account_id="a" * 32, account_name="lab", zone_id="z" * 32, zone_name="ronny.works",
        tunnel_id="t", ingress=[{"service": "http_status:404"}], read_token=token,
        edit_token=secrets.token_urlsafe(30),
        dns_records=[{"name": "x", "type": "CNAME", "content": "t.cfargotunnel.com",
                      "proxied": True}]))
    proc, ready = _spawn("cloudflare", tmp_path / "cf.json", "--edge-listen", "127.0.0.1:0")
    api, edge = ready[2], ready[3].removeprefix("edge=")
    zones = http.get(f"http://{api}/client/v4/zones", params={"token": token},
                      headers={"Authorization": f"Bearer {token}"})
    assert zones.status_code == 200
    assert http.get(f"http://{edge}/", headers={"Host": "x.ronny.works"}).status_code == 404
    err = _terminate(proc)
    assert "GET /client/v4/zones 200" in err and "edge" in err
    assert token not in err


def test_infisical_and_proxmox_mains(tmp_path, http):
    secret = secrets.token_hex(20)
    _http.write_state(tmp_path / "inf.json", infisical.seed(
        project_id="p", secrets_by_path={"/a": {"K": secret}}, reader_client_id="r",
        reader_client_secret=secret, admin_client_id="adm", admin_client_secret="x" * 20))
    _http.write_state(tmp_path / "pve.json", proxmox.seed(
        vms=[], auditor_token_id="a@pve!t", auditor_secret=secret,
        admin_token_id="root@pam!t", admin_secret="y" * 20))
    inf, ready = _spawn("infisical", tmp_path / "inf.json")
    login = http.post(f"http://{ready[2]}/api/v1/auth/universal-auth/login",
                       json={"clientId": "r", "clientSecret": secret})
    assert login.status_code == 200
    pve, ready = _spawn("proxmox", tmp_path / "pve.json")
    version = http.get(f"http://{ready[2]}/api2/json/version",
                        headers={"Authorization": f"PVEAPIToken=a@pve!t={secret}"})
    assert version.status_code == 200
    for proc in (inf, pve):
        err = _terminate(proc)
        assert err and secret not in err and login.json()["accessToken"] not in err


def test_main_refuses_a_missing_state_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "opsverify.lab.standins.proxmox", "--state",
         str(tmp_path / "nope.json"), "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 2 and "not found" in result.stderr
