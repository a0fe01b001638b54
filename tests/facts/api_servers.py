"""Real servers on 127.0.0.1 for the API collector tests, and a transport that reaches them.

The SSOT's API and service URLs name the homelab's addresses. Tests never send traffic there:
`Loopback` maps each SSOT origin to a test server on 127.0.0.1 and refuses every other origin
before a socket is opened.
"""

from __future__ import annotations

import io
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import samples
from hypothesis import strategies as st

from opsverify.facts.api_client import make_client, tls_verify
from opsverify.lab import pki
from opsverify.lab.standins import _http
from opsverify.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def sample_bytes(name: str) -> bytes:
    """A vendor format sample from tests/samples."""
    return samples.raw(name)


def sample(name: str) -> Any:
    """A JSON format sample."""
    return json.loads(sample_bytes(name))


class Loopback(httpx.HTTPTransport):
    """Sends each request for a mapped origin to its 127.0.0.1 server; refuses every other."""

    def __init__(self, routes: dict[str, str], **kwargs: Any):
        super().__init__(**kwargs)
        self.routes = {origin: httpx.URL(target) for origin, target in routes.items()}
        for target in self.routes.values():
            assert target.host == "127.0.0.1", f"test servers live on 127.0.0.1, not {target}"
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or {"http": 80, "https": 443}[url.scheme]
        target = self.routes.get(f"{url.scheme}://{url.host}:{port}")
        if target is None:
            raise httpx.ConnectError(f"test transport: {url.scheme}://{url.host}:{port} is not a "
                                     "test server (nothing leaves 127.0.0.1)", request=request)
        if target.scheme == "https":  # verify the certificate against the name asked for
            request.extensions = {**request.extensions, "sni_hostname": url.host}
        request.url = url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        self.seen.append(request)
        return super().handle_request(request)


def loopback_client(settings: Settings, routes: dict[str, str]) -> httpx.Client:
    """The production client of `settings`, reaching the SSOT's origins on 127.0.0.1."""
    return make_client(settings, transport=Loopback(routes, verify=tls_verify(settings)))


@dataclass
class Seen:
    """One request a scripted server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    """What a scripted server answers: status, headers, body; or a misbehaviour."""

    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # the reason phrase; PVE puts its error message there
    hang: bool = False  # accept, read the request, never answer
    stream_forever: bool = False  # answer 200 and send chunks until the client leaves
    trickle_s: float = 0.0  # pause between chunks of a streamed body

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Script = Callable[[Seen], Answer]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    server: _Scripted

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(self.command, split.path,
                    {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"")
        self.server.seen.append(seen)
        answer = self.server.script(seen)
        if answer.hang:
            self.server.stopping.wait(60)
            self.close_connection = True
            return
        self.send_response(answer.status, answer.reason)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.stream_forever:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"[" + b"0," * 32767
            try:
                while not self.server.stopping.is_set():
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    if answer.trickle_s:
                        time.sleep(answer.trickle_s)
            except OSError:
                pass
            self.close_connection = True
            return
        body = answer.payload()
        if "Content-Length" not in answer.headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _serve


class _Scripted(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, script: Script, tls: ssl.SSLContext | None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            if isinstance(request, ssl.SSLSocket):
                request.settimeout(10)
                request.do_handshake()
            super().finish_request(request, client_address)
        except (OSError, ssl.SSLError):
            pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


@contextmanager
def scripted(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[_Scripted]:
    """A threaded HTTP(S) server on 127.0.0.1 answering each request as `script` says."""
    server = _Scripted(script, tls)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@contextmanager
def silent_listener() -> Iterator[str]:
    """A TCP port on 127.0.0.1 that accepts connections and never says a word."""
    held: list[socket.socket] = []
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.1)

        def accept() -> None:
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except TimeoutError:
                    continue
                except OSError:
                    return

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            stop.set()
            thread.join(2)
            for conn in held:
                conn.close()


@dataclass
class Pki:
    """A test CA and certificates it issued; `other` is a CA nobody trusts."""

    directory: Path

    @property
    def ca(self) -> Path:
        return pki.make_ca(self.directory)[0]

    def server_tls(self, name: str, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()
                   ) -> ssl.SSLContext:
        cert, key = pki.issue(self.directory, name, dns, ips)
        return _http.tls_context(str(cert), str(key))


@contextmanager
def standin(app_cls: type[_http.App], state: dict[str, Any], directory: Path,
            tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """One of the lab's stand-ins, seeded with `state`, served on 127.0.0.1; yields its URL."""
    path = directory / f"{app_cls.name}-state.json"
    _http.write_state(path, state)
    server = _http.start(app_cls(_http.State(path)), ("127.0.0.1", 0), tls, io.StringIO())
    try:
        yield f"{'https' if tls else 'http'}://{server.url_address}"
    finally:
        _http.stop(server)


def json_values(keys: tuple[str, ...] = (), max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """A hypothesis strategy of JSON documents whose object keys often are the API's own."""
    key = st.sampled_from(keys) | st.text(max_size=4) if keys else st.text(max_size=4)
    leaf = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
            | st.sampled_from(["", "0", "1", "NaN", "+Inf", "running", "true"]))
    return st.recursive(leaf, lambda kids: st.lists(kids, max_size=4)
                        | st.dictionaries(key, kids, max_size=4), max_leaves=max_leaves)
