"""The Docker section of the facts: a GET-only client of the Engine API on the host's socket.

Docker is read here, through the Engine API on the host's unix socket, with plain GET requests
(the list, then one inspect per container) in the same round trip as the other facts. That is
deliberate: the Docker SDK over SSH opens a second SSH session per host and runs `docker system
dial-stdio` there, doubling the login cost; and a client that only holds the GETs of
commands.DOCKER_GETS cannot change a container. The parsers turn the answers into the
contract's container entries; a container's environment holds only the names the SSOT pins,
never a secret-named one.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from opsverify.facts import commands
from opsverify.facts.agent.keypaths import secret_named
from opsverify.facts.agent.primitives import (
    Context,
    ParseError,
    describe_error,
    json_field,
    json_object,
    json_strings,
    load_json,
)

MAX_API_BODY = 32 * 1024 * 1024
TIMEOUT = 5.0  # per request, never past the run's deadline


def docker_get(sock_path: str, which: str, timeout: float, **fields: str) -> tuple[int, bytes]:
    """(status, body) of one GET of DOCKER_GETS on the unix socket; nothing else is ever sent.

    HTTP/1.0, one connection per request: the answer ends when the connection closes, so no
    HTTP library is needed on the host (http.client would cost the script a third of its start).
    """
    path = commands.DOCKER_GETS[which].format(**fields)
    request = f"{commands.DOCKER_METHOD} {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode()
    chunks, size = [], 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(sock_path)
        sock.sendall(request)
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            chunks.append(data)
            size += len(data)
            if size > MAX_API_BODY:
                raise ParseError(f"Docker API: {which} answer larger than {MAX_API_BODY} bytes")
    return parse_http_response(b"".join(chunks))


def docker_facts(ctx: Context) -> dict[str, Any]:
    sock = ctx.docker_socket
    containers = []
    try:
        status, body = docker_get(sock, "containers", ctx.slice(TIMEOUT))
        if status != 200:
            return _docker_error(f"GET /containers/json: HTTP {status}")
        pinned = ctx.p.get("pinned_env") or {}
        for cid in parse_container_list(body):
            status, body = docker_get(sock, "inspect", ctx.slice(TIMEOUT), id=cid)
            if status == 404:  # removed between the list and the inspect
                continue
            if status != 200:
                return _docker_error(f"GET /containers/{cid[:12]}/json: HTTP {status}")
            containers.append(parse_container(body, pinned, ctx.secret_name))
    except FileNotFoundError:
        return _docker_error(f"no Docker socket at {sock}")
    except ConnectionRefusedError:
        return _docker_error(f"Docker socket {sock} refused the connection (dockerd down?)")
    except socket.timeout:  # noqa: UP041 -- on Python 3.8 it is not yet TimeoutError
        return _docker_error(f"Docker API on {sock}: no answer in time")
    except OSError as exc:
        return _docker_error(f"Docker API on {sock}: {describe_error(exc)}")
    except ParseError as exc:
        return _docker_error(str(exc))
    containers.sort(key=lambda c: c["name"])
    # The host's own clock: "started a minute ago" must not depend on the verifier's clock.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"docker": {"ok": True, "error": None, "now": now, "containers": containers}}


def _docker_error(error: str) -> dict[str, Any]:
    return {"docker": {"ok": False, "error": error, "containers": []}}


def container_env(ctx: Context) -> Callable[[str, str], tuple[str | None, str | None]]:
    """lookup(container, name): (None, its value or None), or (why Docker cannot say, None).

    One GET /containers/{name}/json per container asked about (a Recyclarr `!env_var`)."""
    docs: dict[str, Any] = {}

    def lookup(container: str, name: str) -> tuple[str | None, str | None]:
        if container not in docs:
            try:
                status, body = docker_get(ctx.docker_socket, "inspect",
                                          ctx.slice(TIMEOUT), id=container)
                docs[container] = load_json(body, "GET /containers/{id}/json") \
                    if status == 200 else f"container {container}: HTTP {status} from Docker"
            except (OSError, ParseError) as exc:
                docs[container] = f"Docker API: {describe_error(exc)}"
        doc = docs[container]
        return (doc, None) if isinstance(doc, str) else (None, env_value(doc, name))
    return lookup


# --- the Engine API's answers -----------------------------------------------------------------

def parse_http_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of a whole HTTP/1.x response (identity or chunked body)."""
    if not isinstance(raw, bytes):
        raise ParseError("HTTP response: expected bytes")
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if not sep or len(status) < 2 or not status[0].startswith(b"HTTP/1.") \
            or not (status[1].isdigit() and len(status[1]) == 3):
        raise ParseError("HTTP response: no status line and headers")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ParseError("HTTP response: malformed header line")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body)
    elif headers.get(b"content-length", b"").isdigit():
        if len(body) < int(headers[b"content-length"]):
            raise ParseError("HTTP response: body shorter than its Content-Length")
        body = body[:int(headers[b"content-length"])]
    return int(status[1]), body


def _dechunk(body: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = body.find(b"\r\n", pos)
        size = body[pos:end].split(b";")[0].strip() if end >= 0 else b""
        if not size or any(c not in b"0123456789abcdefABCDEF" for c in size) or len(size) > 16:
            raise ParseError("HTTP response: bad chunk size")
        n = int(size, 16)
        if n == 0:
            return b"".join(out)
        if end + 2 + n > len(body):
            raise ParseError("HTTP response: truncated chunk")
        out.append(body[end + 2:end + 2 + n])
        pos = end + 2 + n + 2


_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
_HEALTH = ("healthy", "unhealthy", "starting")


def parse_container_list(data: str | bytes | list) -> list[str]:
    """GET /containers/json?all=1 as the list of container ids."""
    what = "GET /containers/json"
    doc = load_json(data, what)
    if not isinstance(doc, list):
        raise ParseError(f"{what}: expected a JSON list")
    ids = []
    for n, item in enumerate(doc):
        cid = json_object(item, f"{what}[{n}]").get("Id")
        if not isinstance(cid, str) or not _CONTAINER_ID.fullmatch(cid):
            raise ParseError(f"{what}[{n}]: Id is not a container id")
        ids.append(cid)
    return ids


def parse_container(data: str | bytes | dict, pinned_env: dict[str, Iterable[str]] | None = None,
                    secret_name: re.Pattern | None = None) -> dict[str, Any]:
    """GET /containers/{id}/json as the contract's container entry.

    env holds only the names pinned for this container ({container name: [names]}), and never
    one that names a secret.
    """
    what = "GET /containers/{id}/json"
    doc = load_json(data, what)
    if not isinstance(doc, dict):
        raise ParseError(f"{what}: expected a JSON object")
    state = json_object(doc.get("State"), f"{what}: State")
    config = json_object(doc.get("Config"), f"{what}: Config")
    host_config = json_object(doc.get("HostConfig"), f"{what}: HostConfig")
    network = json_object(doc.get("NetworkSettings"), f"{what}: NetworkSettings")
    health = json_object(state.get("Health"), f"{what}: State.Health")
    check = json_strings(
        json_object(config.get("Healthcheck"), f"{what}: Config.Healthcheck").get("Test"),
        f"{what}: Config.Healthcheck.Test")
    status = json_field(health, "Status", str, f"{what}: State.Health")
    name = (json_field(doc, "Name", str, what) or "").lstrip("/")
    pinned = (pinned_env or {}).get(name) or ()
    wanted = {n for n in pinned if isinstance(n, str) and not secret_named(n, secret_name)}
    env = {}
    for item in json_strings(config.get("Env"), f"{what}: Config.Env"):
        key, sep, value = item.partition("=")
        if sep and key in wanted:
            env[key] = value
    return {
        "name": name,
        "id": json_field(doc, "Id", str, what),
        "image": json_field(config, "Image", str, f"{what}: Config"),
        "state": json_field(state, "Status", str, f"{what}: State"),
        "restarting": bool(json_field(state, "Restarting", bool, f"{what}: State")),
        "restart_count": json_field(doc, "RestartCount", int, what) or 0,
        "started_at": json_field(state, "StartedAt", str, f"{what}: State"),
        "finished_at": json_field(state, "FinishedAt", str, f"{what}: State"),
        # Health is absent when neither the image nor the container defines a check;
        # Test ["NONE"] switches off the image's check.
        "has_healthcheck": bool(health) or (bool(check) and check[0] != "NONE"),
        "health": status if status in _HEALTH else None,
        "env": env,
        "network_mode": json_field(host_config, "NetworkMode", str, f"{what}: HostConfig"),
        "restart_policy": json_field(
            json_object(host_config.get("RestartPolicy"), f"{what}: RestartPolicy"),
            "Name", str, f"{what}: RestartPolicy"),
        # what compose/`docker run -p` asked for, and what the engine bound (while running)
        "ports_configured": parse_port_map(host_config.get("PortBindings"),
                                           f"{what}: HostConfig.PortBindings"),
        "ports_published": parse_port_map(network.get("Ports"), f"{what}: NetworkSettings.Ports"),
    }


def parse_port_map(value: Any, what: str) -> list[dict[str, Any]]:
    """A Docker PortMap ({"7889/tcp": [{"HostIp": "", "HostPort": "7667"}]}) as a sorted list of
    {container_port, proto, host_ip, host_port}; an exposed, unpublished port (null) is left out
    and an empty HostPort (a random port) reads as host_port None."""
    out = []
    for key, binds in json_object(value, what).items():
        port, _, proto = str(key).partition("/")
        if not (port.isascii() and port.isdigit()):
            raise ParseError(f"{what}: {key!r} is not a port")
        if binds is not None and not isinstance(binds, list):
            raise ParseError(f"{what}: {key}: expected a list of bindings")
        for b in binds or []:
            b = json_object(b, f"{what}: {key}")
            host_port = str(b.get("HostPort") or "")
            out.append({"container_port": int(port), "proto": proto or "tcp",
                        "host_ip": str(b.get("HostIp") or ""),
                        "host_port": int(host_port) if host_port.isascii() and
                        host_port.isdigit() else None})
    return sorted(out, key=lambda p: (p["container_port"], p["proto"], p["host_ip"],
                                      p["host_port"] or 0))


def env_value(inspect: Any, name: str) -> str | None:
    """One variable of a container's environment, from its inspect document."""
    config = inspect.get("Config") if isinstance(inspect, dict) else None
    items = config.get("Env") if isinstance(config, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str) and item.startswith(name + "="):
            return item[len(name) + 1:]
    return None
