"""A read-only Docker socket per synthetic host, in front of the twin's shared engine.

    python -m opsverify.lab.dockerproxy CONFIG.json    (started by opsverify/lab/shared_engine.py)

One process, one listening unix socket per host (the host's /run/docker.sock leads to it). A
socket answers GET and HEAD of /_ping, /version, /info, /containers/json and
/containers/{id or name}/json, with or without a /vX.Y prefix, for its own host's containers
only: the list is filtered by the host's label, names are the names the host knows
("radarr", not "vm301.radarr"), and an inspect of another host's container is a 404, as that
host's own engine would answer. Everything else is a 403: the lab creates and starts the
containers on the engine itself, and the gates only read. One request per upstream connection
(HTTP/1.0), so an answer ends when dockerd closes it; clients may keep their connection alive.

CONFIG: {"upstream": SOCKET, "label": KEY, "sep": ".", "hosts": {NAME: {"socket": PATH,
"gid": GID or null}}}. Prints "ready" once every socket listens; SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

READ_ONLY = ("GET", "HEAD")
PASS_THROUGH = ("/_ping", "/version", "/info", "/images/json")  # nothing of another host
INSPECT = re.compile(r"/containers/([^/]+)/json")
IMAGE = re.compile(r"/images/[^/]+/json")  # the twin image, tagged alike on every engine
VERSION = re.compile(r"^/v\d+\.\d+(?=/)")
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           500: "Internal Server Error", 502: "Bad Gateway"}
MAX_HEADER_LINES = 100


class Proxy:
    def __init__(self, config: dict[str, Any]):
        self.upstream = config["upstream"]
        self.label = config["label"]
        self.sep = config.get("sep", ".")
        self.hosts = config["hosts"]

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of one GET on the engine's socket."""
        reader, writer = await asyncio.open_unix_connection(self.upstream)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)
        if len(status) < 2 or not status[1].isdigit():
            return 502, _error("no HTTP answer from the shared engine")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(b":") for line in head.split(b"\r\n")[1:])}
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = _dechunk(body)
        return int(status[1]), body

    def own(self, host: str, name: str) -> str | None:
        """A container name as its host knows it, or None if it is another host's."""
        prefix = f"/{host}{self.sep}"
        return "/" + name[len(prefix):] if name.startswith(prefix) else None

    async def answer(self, host: str, method: str, target: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request on `host`'s socket."""
        if method not in READ_ONLY:
            return 403, "application/json", _error(
                f"this twin socket of {host} only reads (the lab manages its containers)")
        url = urlsplit(target)
        path = VERSION.sub("", url.path)
        if path in PASS_THROUGH or IMAGE.fullmatch(path):
            status, body = await self.get(target)
            return status, "text/plain" if path == "/_ping" else "application/json", body
        if path == "/containers/json":
            query = parse_qs(url.query)
            try:
                filters = json.loads((query.pop("filters", None) or ["{}"])[0] or "{}")
            except ValueError:
                return 400, "application/json", _error("filters: invalid JSON")
            if isinstance(filters.get("label"), dict):  # the old {"value": true} form
                filters["label"] = [k for k, on in filters["label"].items() if on]
            filters["label"] = [*filters.get("label", []), f"{self.label}={host}"]
            query["filters"] = [json.dumps(filters)]
            status, body = await self.get(f"{url.path}?{urlencode(query, doseq=True)}")
            if status != 200:
                return status, "application/json", body
            listed = json.loads(body)
            for c in listed:
                c["Names"] = [n for n in (self.own(host, x) for x in c.get("Names") or []) if n]
                (c.get("Labels") or {}).pop(self.label, None)
            return 200, "application/json", json.dumps(listed).encode()
        m = INSPECT.fullmatch(path)
        if m:
            prefix = url.path[:len(url.path) - len(path)]
            for ident in (f"{host}{self.sep}{m[1]}", m[1]):
                status, body = await self.get(f"{prefix}/containers/{ident}/json")
                if status == 200:
                    doc = json.loads(body)
                    labels = (doc.get("Config") or {}).get("Labels") or {}
                    name = self.own(host, doc.get("Name") or "")
                    if labels.pop(self.label, None) == host and name:
                        doc["Name"] = name
                        return 200, "application/json", json.dumps(doc).encode()
                elif status != 404:
                    return status, "application/json", body
            return 404, "application/json", _error(f"No such container: {m[1]}")
        return 403, "application/json", _error(
            f"this twin socket of {host} answers only container listings and inspects")

    async def serve(self, host: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    break
                parts = line.decode("latin-1").split()
                headers: dict[str, str] = {}
                for _ in range(MAX_HEADER_LINES):
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length") or 0)
                if length:
                    await reader.readexactly(length)
                if len(parts) != 3:
                    status, ctype, body = 400, "application/json", _error("bad request line")
                else:
                    try:
                        status, ctype, body = await self.answer(host, parts[0], parts[1])
                    except (OSError, ValueError) as exc:
                        status, ctype, body = 502, "application/json", _error(
                            f"shared engine: {type(exc).__name__}")
                keep = len(parts) == 3 and parts[2] == "HTTP/1.1" \
                    and headers.get("connection", "").lower() != "close"
                head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
                        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                        f"Api-Version: 1.41\r\nConnection: {'keep-alive' if keep else 'close'}"
                        "\r\n\r\n").encode()
                writer.write(head + (body if parts[:1] != ["HEAD"] else b""))
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def _error(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


def _dechunk(body: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = body.find(b"\r\n", pos)
        size = int(body[pos:end].split(b";")[0] or b"0", 16) if end >= 0 else 0
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2:end + 2 + size])
        pos = end + 2 + size + 2


async def main_async(config: dict[str, Any]) -> None:
    proxy = Proxy(config)
    servers = []
    for host, h in config["hosts"].items():
        path = h["socket"]
        if os.path.exists(path):
            os.unlink(path)
        servers.append(await asyncio.start_unix_server(
            lambda r, w, host=host: proxy.serve(host, r, w), path=path))
        # as dockerd's own socket: root and the host's docker group
        os.chown(path, 0, h["gid"] if h.get("gid") is not None else 0)
        os.chmod(path, 0o660)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready: {len(servers)} host sockets in front of {config['upstream']}", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m opsverify.lab.dockerproxy CONFIG.json", file=sys.stderr)
        return 2
    try:
        with open(argv[0]) as fh:
            config = json.load(fh)
        asyncio.run(main_async(config))
    except (OSError, ValueError, KeyError) as exc:
        print(f"dockerproxy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
