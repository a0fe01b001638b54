"""Shared scaffolding of the HTTP stand-ins: routing, JSON, TLS, a state file and a quiet log."""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, TextIO
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY = 1 << 20
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ApiError(Exception):
    """An error answered to the client; each app renders it in its vendor's shape."""

    def __init__(self, status: int, message: str, code: Any = None, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.details = details


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    target: str
    headers: Message
    body: bytes
    client: str

    @property
    def path(self) -> str:
        """The path without query string."""
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, first value wins."""
        pairs = parse_qs(urlsplit(self.target).query, keep_blank_values=True)
        return {k: v[0] for k, v in pairs.items()}

    def json(self) -> Any:
        """The body as JSON; an empty body is an empty object."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "request body is not valid JSON") from None

    def params(self) -> dict[str, Any]:
        """Query merged with a JSON or form body (the body wins)."""
        params: dict[str, Any] = dict(self.query)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            try:
                form = parse_qs(self.body.decode(), keep_blank_values=True)
            except UnicodeDecodeError:
                raise ApiError(400, "form body is not valid UTF-8") from None
            params.update({k: v[0] for k, v in form.items()})
        elif self.body.strip():
            body = self.json()
            if not isinstance(body, dict):
                raise ApiError(400, "request body must be a JSON object")
            params.update(body)
        return params

    def bearer(self) -> str | None:
        """The token of an `Authorization: Bearer` header, if any."""
        value = self.headers.get("Authorization") or ""
        scheme, _, token = value.partition(" ")
        return (token.strip() or None) if scheme.lower() == "bearer" else None


@dataclass
class Response:
    """What a handler answers."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str | None = None


def json_response(status: int, obj: Any, reason: str | None = None) -> Response:
    """A JSON response."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    return Response(status, body, [("Content-Type", "application/json; charset=utf-8")], reason)


def text_response(status: int, text: str, ctype: str = "text/plain; charset=UTF-8") -> Response:
    """A plain-text response."""
    return Response(status, text.encode(), [("Content-Type", ctype)])


def sha256(secret: str) -> str:
    """Hex digest under which a state file keeps a secret (never the secret itself)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Router:
    """Maps `METHOD /path/{param}` to handlers."""

    def __init__(self, routes: list[tuple[str, str, Callable[..., Response]]]) -> None:
        self._routes = [
            (method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$"), fn)
            for method, pattern, fn in routes
        ]

    def resolve(self, method: str, path: str) -> tuple[Callable[..., Response], dict[str, str]]:
        """The handler and its path parameters, or a 404/405 ApiError."""
        allowed = False
        for route_method, regex, fn in self._routes:
            match = regex.match(path)
            if match:
                if route_method == method:
                    return fn, {k: unquote(v) for k, v in match.groupdict().items()}
                allowed = True
        if allowed:
            raise ApiError(405, f"{method} method not allowed")
        raise ApiError(404, "no route for that URI")


class App:
    """A stand-in application: routes requests, renders errors its vendor's way."""

    name = "standin"
    server_header = "standin"
    routes: ClassVar[list[tuple[str, str, str]]] = []

    def __init__(self, state: State) -> None:
        self.state = state
        self.clock: Callable[[], float] = time.time
        self.router = Router([(m, p, getattr(self, fn)) for m, p, fn in self.routes])

    def handle(self, req: Request) -> Response:
        """Answer one request."""
        try:
            fn, params = self.router.resolve(req.method, req.path)
            return fn(req, **params)
        except ApiError as err:
            return self.render_error(req, err)

    def render_error(self, req: Request, err: ApiError) -> Response:
        """The vendor-shaped body of an error."""
        return json_response(err.status, {"error": err.message})


class State:
    """A JSON state file shared by threads (a lock) and processes (flock), replaced atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {}
        self._stamp: tuple[int, int, int] | None = None
        self.read()

    def read(self) -> dict[str, Any]:
        """The current state; treat it as read-only (writers swap in a new object)."""
        with self._lock:
            self._reload_if_changed()
            return self._data

    @contextlib.contextmanager
    def update(self) -> Iterator[dict[str, Any]]:
        """Yield a copy of the state to change; it is saved when the block ends without error."""
        with self._lock, _file_lock(self.path):
            self._reload_if_changed()
            data = copy.deepcopy(self._data)
            yield data
            _write_atomic(self.path, data)
            self._data, self._stamp = data, _stamp(self.path)

    def _reload_if_changed(self) -> None:
        # Another process (the lab's drift scenarios) may replace the file at any time.
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            self._data = json.loads(self.path.read_text())
            self._stamp = stamp


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def take_rate_limit(state: State) -> int | None:
    """Retry-After seconds if this request must be answered 429, else None.

    Rate limits on demand: a state key `rate_limit: {"answer_429": N, "retry_after": S}`
    (set by a test or a drift scenario) makes the next N requests 429 with Retry-After S."""
    if not (state.read().get("rate_limit") or {}).get("answer_429"):
        return None
    with state.update() as data:
        limit = data.get("rate_limit") or {}
        if limit.get("answer_429", 0) <= 0:
            return None
        limit["answer_429"] -= 1
        return max(0, int(limit.get("retry_after", 60)))


def write_state(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write a state file (mode 0600) atomically, safe against a running stand-in."""
    path = Path(path)
    with _file_lock(path):
        _write_atomic(path, data)


class _Handler(BaseHTTPRequestHandler):

    # Without it every response waits ~40 ms on Nagle's algorithm for the last segment.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def version_string(self) -> str:
        return self.server.app.server_header

    def log_message(self, format: str, *args: Any) -> None:
        # The stdlib line carries the full request line (query strings may hold secrets).
        pass

    def _dispatch(self) -> None:
        start = time.monotonic()
        try:
            response = self._respond()
        except Exception as exc:  # noqa: BLE001 - a bug must never leak a traceback to the client
            self.server.log(f"{self.server.app.name} internal error: {_where(exc)}")
            response = self.server.app.render_error(self._request(b""), ApiError(500, "internal error"))
        # Logged before sending, so whoever got the answer also finds its line in the log.
        ms = (time.monotonic() - start) * 1000
        path = urlsplit(self.path).path
        self.server.log(
            f"{self.server.app.name} {self.client_address[0]} {self.command} {path} "
            f"{response.status} {ms:.0f}ms"
        )
        self._send(response)

    def _request(self, body: bytes) -> Request:
        return Request(self.command, self.path, self.headers, body, self.client_address[0])

    def _respond(self) -> Response:
        app = self.server.app
        encoding = (self.headers.get("Transfer-Encoding") or "identity").lower()
        if encoding != "identity":
            self.close_connection = True
            return app.render_error(self._request(b""), ApiError(411, "send a Content-Length body"))
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return app.render_error(self._request(b""), ApiError(400, "bad Content-Length"))
        if length > MAX_BODY:
            self.close_connection = True
            return app.render_error(self._request(b""), ApiError(413, "request body too large"))
        body = self.rfile.read(length) if length else b""
        return app.handle(self._request(body))

    def _send(self, response: Response) -> None:
        reason = response.reason
        if reason is not None:
            reason = reason.replace("\r", " ").replace("\n", " ").strip()
            reason = reason.encode("latin-1", "replace").decode("latin-1")
        self.send_response(response.status, reason)
        names = set()
        for name, value in response.headers:
            self.send_header(name, value)
            names.add(name.lower())
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


for _method in METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._dispatch)


def _where(exc: BaseException) -> str:
    """Exception type and innermost frame: enough to debug, without any value in it."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # the stdlib's 5 drops SYNs under a burst of clients

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        tls: ssl.SSLContext | None,
        log_stream: TextIO | None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.tls = tls
        self.log_stream = log_stream
        self._log_lock = threading.Lock()
        super().__init__(address, _Handler)

    def log(self, line: str) -> None:
        stream = self.log_stream or sys.stderr
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        with self._log_lock:
            stream.write(f"{stamp} {line}\n")
            stream.flush()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        # Handshake in the request's thread, so a slow client cannot stall accept().
        request.settimeout(10)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            self.log(f"{self.app.name} connection error: {_where(exc)}")

    @property
    def url_address(self) -> str:
        """`host:port` actually bound."""
        host, port = self.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """A server TLS context from PEM files, or None for plain HTTP."""
    if not cert and not key:
        return None
    if not (cert and key):
        raise ValueError("TLS needs both a certificate and a key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def start(
    app: App,
    address: tuple[str, int],
    tls: ssl.SSLContext | None = None,
    log_stream: TextIO | None = None,
) -> _Server:
    """Serve `app` on `address` from a daemon thread; stop it with `.shutdown()`."""
    server = _Server(address, app, tls, log_stream)
    threading.Thread(target=server.serve_forever, args=(0.05,), name=f"{app.name}-serve",
                     daemon=True).start()
    return server


def stop(server: _Server) -> None:
    """Stop a server started with `start`."""
    server.shutdown()
    server.server_close()


def parse_listen(value: str) -> tuple[str, int]:
    """`ADDR:PORT` or `[V6]:PORT` as a socket address."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def arg_parser(name: str) -> argparse.ArgumentParser:
    """The command line every HTTP stand-in shares."""
    parser = argparse.ArgumentParser(prog=f"python3 -m opsverify.lab.standins.{name}")
    parser.add_argument("--state", required=True, help="state JSON file (see seed())")
    parser.add_argument("--listen", required=True, type=parse_listen, help="ADDR:PORT")
    parser.add_argument("--tls-cert", help="PEM certificate (chain) for HTTPS")
    parser.add_argument("--tls-key", help="PEM private key for HTTPS")
    return parser


def load_state(parser: argparse.ArgumentParser, path: str) -> State:
    """The state file, or a clean exit when it is missing or not JSON."""
    try:
        return State(path)
    except FileNotFoundError:
        parser.exit(2, f"error: state file {path} not found\n")
    except (json.JSONDecodeError, UnicodeDecodeError):
        parser.exit(2, f"error: state file {path} is not valid JSON\n")
    raise AssertionError("unreachable")


def serve_main(name: str, app: Callable[[State], App], argv: list[str] | None) -> int:
    """main() of a one-listener stand-in: --state, --listen, optional TLS; serve until SIGTERM."""
    parser = arg_parser(name)
    args = parser.parse_args(argv)
    state = load_state(parser, args.state)
    return run(name, [(app(state), args.listen, tls_context(args.tls_cert, args.tls_key))])


def run(name: str, listeners: list[tuple[App, tuple[str, int], ssl.SSLContext | None]]) -> int:
    """Serve every listener until SIGTERM/SIGINT; print `ready NAME ADDR:PORT [extra...]` first."""
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    servers = [start(app, address, tls) for app, address, tls in listeners]
    extra = "".join(f" {srv.app.name}={srv.url_address}" for srv in servers[1:])
    print(f"ready {name} {servers[0].url_address}{extra}", flush=True)
    while not stopping.wait(0.5):
        pass
    for server in servers:
        stop(server)
    return 0
