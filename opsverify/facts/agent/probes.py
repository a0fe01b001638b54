"""The service probes again, from the service's own host: one HTTP GET per probe, no credential.

The verifier asks each service at http://<vantage address>:<published port><path>; when that
fails, the services gate must tell a service that is down from a path that is broken (Tailscale,
a firewall, a port bound to 127.0.0.1 only). So the host asks too, beside the other sections:

- first at the probe's own address, but only when it is an address of this host (binding a
  socket to it, port 0, sends nothing and succeeds only then), so the GET never leaves the host;
- then, when that got no HTTP answer, at 127.0.0.1 on the same port (a wrong bind address).

Each GET: a plain socket, a short timeout, never redirected, at most READ_LIMIT bytes read and
none kept (facts hold the status only, no timings: facts of two runs compare equal), no
credential sent: a probe's API key would have to be in PARAMS, which the audit log and the
run's `remote_commands` show decoded. Without its key a
service answers 401 or 403, and the gate counts that as answering. The SSOT's non-secret query
values are sent; auth parameters never.

Every probe runs in its own thread, started by start() before the other sections and collected
by Started.facts() after them, within PROBE_BUDGET seconds in all.

Sent to the hosts (see agent/__init__.py): stdlib only, Python 3.8.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from opsverify.facts.agent.primitives import Context, describe_error, read_file

PROBE_BUDGET = 3.0   # seconds for every probe of the host, both attempts included
ATTEMPT_TIMEOUT = 2.0  # seconds for one GET (connect and answer)
READ_LIMIT = 4096
LOOPBACK = "127.0.0.1"
HEADERS = {"User-Agent": "opsverify-host-probe", "Accept": "*/*", "Connection": "close"}


def is_local(address: str) -> bool:
    """Whether address is one of this host's own: binding to it (port 0, nothing sent) succeeds
    only then, unless the kernel lets any address be bound (ip_nonlocal_bind): then not asked."""
    for version in ("ipv4", "ipv6"):
        try:
            if read_file(f"/proc/sys/net/{version}/ip_nonlocal_bind", limit=16).strip() != b"0":
                return False
        except OSError:
            pass  # no such setting here: nothing lets a foreign address be bound
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            address, 0, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST)[0]
        with socket.socket(family, kind, proto) as s:
            s.bind(where)
        return True
    except OSError:  # EADDRNOTAVAIL: not an address of this host
        return False


def _url(address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}{path}"


def get(address: str, port: int, path: str, timeout: float) -> dict[str, Any]:
    """One GET: its status, or why there was none (a content-free reason).

    Spoken over a plain socket, not http.client: its import (email parsing, ssl) costs ~11 ms
    of every host's CPU per run, and the status line is all the facts keep."""
    host = f"[{address}]" if ":" in address else address
    out: dict[str, Any] = {"url": _url(address, port, path), "status": None, "error": None}
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in HEADERS.items()) + "\r\n"
    stage = "connect"
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            stage = "answer"
            sock.sendall(request.encode("ascii"))
            head = b""
            while b"\n" not in head and len(head) < READ_LIMIT:
                chunk = sock.recv(READ_LIMIT - len(head))
                if not chunk:
                    break
                head += chunk
        out["status"] = status_of(head)
        if out["status"] is None:
            out["error"] = "not an HTTP answer" + (" (closed without a word)" if not head else "")
    except socket.timeout:  # noqa: UP041 -- not yet TimeoutError on Python 3.8
        out["error"] = f"timed out after {timeout:.1f} s ({stage})"
    except ConnectionRefusedError:
        out["error"] = "connection refused"
    except OSError as exc:
        out["error"] = describe_error(exc)
    return out


def status_of(head: bytes) -> int | None:
    """The status code of an HTTP/1.x status line (`HTTP/1.1 401 Unauthorized`), else None."""
    version, _, rest = head.split(b"\n", 1)[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit() or len(code) != 3 \
            or rest[3:4] not in (b"", b" ", b"\r") or not 100 <= int(code) <= 599:
        return None
    return int(code)


def attempts(probe: dict[str, Any], deadline: float) -> list[dict[str, Any]]:
    """The probe's own address (if this host's), then loopback when that got no HTTP answer."""
    port, path, address = int(probe["port"]), str(probe["path"]), probe.get("address")
    out: list[dict[str, Any]] = []
    if address and address != LOOPBACK:
        if is_local(address):
            out.append(get(address, port, path, max(0.1, min(ATTEMPT_TIMEOUT,
                                                             deadline - time.monotonic()))))
        else:
            out.append({"url": _url(address, port, path), "status": None,
                        "error": "not an address of this host (not asked from here)"})
        if out[-1]["status"] is not None:
            return out
    out.append(get(LOOPBACK, port, path, max(0.1, min(ATTEMPT_TIMEOUT,
                                                      deadline - time.monotonic()))))
    return out


class Started:
    """The probes under way: one thread each."""

    def __init__(self, ctx: Context):
        self.probes = [p for p in ctx.p.get("probes") or [] if isinstance(p, dict)]
        self.deadline = min(ctx.deadline, time.monotonic() + PROBE_BUDGET)
        self.done: dict[str, list[dict[str, Any]]] = {}
        self.threads: list[threading.Thread] = []
        for p in self.probes:
            t = threading.Thread(target=self._run, args=(p,), daemon=True,
                                 name=f"opsverify-probe-{p.get('name')}")
            t.start()
            self.threads.append(t)

    def _run(self, probe: dict[str, Any]) -> None:
        try:
            self.done[str(probe["name"])] = attempts(probe, self.deadline)
        except Exception as exc:  # noqa: BLE001 -- one broken probe must not cost the others
            self.done[str(probe.get("name"))] = [{"url": "", "status": None,
                                                  "error": describe_error(exc)}]

    def facts(self) -> dict[str, Any]:
        """{"probes": {name: [attempt, ...]}}; a probe still running reads as timed out."""
        for t in self.threads:
            t.join(max(0.0, self.deadline - time.monotonic()) + 0.3)
        out = {}
        for p in self.probes:
            name = str(p["name"])
            out[name] = list(self.done.get(name) or [
                {"url": _url(str(p.get("address") or LOOPBACK), int(p["port"]), str(p["path"])),
                 "status": None, "error": f"did not finish within {PROBE_BUDGET:.1f} s"}])
        return {"probes": out}


def start(ctx: Context) -> Started:
    """Start every probe PARAMS lists; Started.facts() collects them."""
    return Started(ctx)
