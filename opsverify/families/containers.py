"""containers: each SSOT container is on its host's engine, in the state, health, image and env
the SSOT says; and no host runs a container the SSOT does not list."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from opsverify.findings import Findings
from opsverify.ssot.model import Container
from opsverify.verdict import Unreachable

from . import Case, Family
from .values import names, require_sections

STOPPED = ("exited", "created")  # intentionally stopped: not running, not restarting
# A loop caught between two restarts looks running. Docker's back-off resets once a run lasts
# 10 s, so a process that dies after a while is "Up" most of the time: a restart counted in
# the last few minutes is the sign. 5 minutes: assumed (the issue says "the last few minutes").
RECENT_RESTART_S = 300
HOST_NETWORK = "host"


def engine(host: str, facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The host's containers; Unreachable when its Docker engine could not be asked."""
    docker = facts.get("docker") or {}
    if not docker.get("ok"):
        raise Unreachable(f"host:{host}", f"docker engine: {docker.get('error') or 'no answer'}")
    return docker.get("containers") or []


def image_ref(ref: str) -> str:
    """An image reference with Docker's implied parts: nginx -> docker.io/library/nginx:latest."""
    name, at, digest = ref.partition("@")
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    if not at and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name + at + digest


def check(container: Container, facts: dict[str, Any],
          previous: dict[str, Any] | None = None) -> Findings:
    """Present; running or intentionally stopped; not restarting, nor restarted recently or
    since the previous saved run (unless may_restart); healthy; image; published ports; pinned
    env. previous: the host's facts saved by the previous run, if any."""
    require_sections(container.host, facts, "docker")
    c = Findings(f"Container {container.ref} on {container.host}")
    found = {str(x.get("name", "")).lstrip("/"): x for x in engine(container.host, facts)}
    actual = found.get(container.name)
    c.saw("container", {"expected": {"state": container.state, "image": container.image,
                                     "healthcheck": container.healthcheck,
                                     "env": sorted(container.env)},
                        "ports": [str(p) for p in container.ports],
                        "may_restart": container.may_restart,
                        "engine": actual and {k: actual.get(k) for k in (
                            "state", "restarting", "restart_count", "health", "has_healthcheck",
                            "image", "started_at", "finished_at", "network_mode",
                            "restart_policy", "ports_configured", "ports_published")}})
    if actual is None:
        c.require(False, f"not present on {container.host}'s Docker engine "
                         f"(expected {container.state}; found {len(found)} other containers)")
        return c
    state = actual.get("state")
    if actual.get("restarting") or state == "restarting":
        c.require(container.may_restart,
                  f"restarting (restart count {actual.get('restart_count', '?')}; "
                  f"expected {container.state})")
    elif container.state == "running":
        c.expect("state", "running", state)
    else:
        c.require(state in STOPPED,
                  f"state: expected stopped (exited or created), got {state}")
    if container.state == "running" and state == "running":
        _restarted(c, container, actual, _before(previous, container.name),
                   (facts.get("docker") or {}).get("now"))
        _health(c, container, actual)
    _ports(c, container, actual)
    if image_ref(str(actual.get("image"))) != image_ref(container.image):
        c.expect("image", container.image, actual.get("image"))
    env = actual.get("env") or {}
    for name, value in sorted(container.env.items()):
        c.same(f"env {name}", value, env.get(name))
    return c


def _before(previous: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    for x in ((previous or {}).get("docker") or {}).get("containers") or []:
        if str(x.get("name", "")).lstrip("/") == name:
            return x
    return None


def when(text: Any) -> datetime | None:
    """Docker's RFC 3339 time with nanoseconds ("2024-01-11T21:57:23.459691613Z"), or None."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)",
                     str(text or ""))
    if not m or m.group(1).startswith("0001"):
        return None
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")


def _restarted(c: Findings, container: Container, actual: dict[str, Any],
               before: dict[str, Any] | None, now_text: str | None) -> None:
    """A restart loop caught while the container happens to be up."""
    if container.may_restart:
        return
    count = int(actual.get("restart_count") or 0)
    # Same container (a recreate starts at 0), and the daemon's count only goes down when
    # dockerd restarts (moby api: "since it was created, or since daemon was started").
    if before and before.get("id") == actual.get("id") and \
            count > int(before.get("restart_count") or 0):
        c.require(False, f"restarted: restart count {before.get('restart_count') or 0} at the "
                         f"previous saved run, {count} now (the SSOT does not say may_restart)")
        return
    started, now = when(actual.get("started_at")), when(now_text) or datetime.now(UTC)
    if count and started is not None and (now - started).total_seconds() < RECENT_RESTART_S:
        ago = max(0, int((now - started).total_seconds()))
        c.require(False, f"restarted: up {ago} s after {count} restart"
                         f"{'s' if count != 1 else ''} (a restart loop caught between "
                         "restarts; the SSOT does not say may_restart)")


def _bindings(actual: dict[str, Any]) -> tuple[set[tuple[Any, int, str]], str]:
    """(host port, container port, protocol) published, and where that was read."""
    live = actual.get("ports_published") or []
    if actual.get("state") == "running" and actual.get("network_mode") != HOST_NETWORK and live:
        return {(p.get("host_port"), p.get("container_port"), p.get("proto")) for p in live}, \
            "bound by the engine"
    configured = actual.get("ports_configured") or []
    return {(p.get("host_port"), p.get("container_port"), p.get("proto")) for p in configured}, \
        "configured"


def _ports(c: Findings, container: Container, actual: dict[str, Any]) -> None:
    """Published host:container ports exactly as the SSOT lists them."""
    if "ports_configured" not in actual:  # facts from before the collector read ports
        return
    expected = {(p.host, p.container, p.protocol) for p in container.ports}
    got, where = _bindings(actual)
    if got != expected:
        def show(ports: set[tuple[Any, int, str]]) -> str:
            return ", ".join(f"{h if h is not None else 'random'}->{cp}/{pr}"
                             for h, cp, pr in sorted(ports, key=str)) or "none"
        c.require(False, f"published ports: expected {show(expected)}, got {show(got)} ({where})")


def _health(c: Findings, container: Container, actual: dict[str, Any]) -> None:
    has = actual.get("has_healthcheck")
    if container.healthcheck and not has:
        c.require(False, "healthcheck: the SSOT says it has one, the container defines none")
    elif has:
        c.expect("health", "healthy", actual.get("health"))


def check_host(host: str, expected: list[Container], facts: dict[str, Any]) -> Findings:
    """No running container on the host that the SSOT does not list for it."""
    require_sections(host, facts, "docker")
    c = Findings(f"Docker host {host}")
    listed = {x.name for x in expected if x.host == host}
    running = {str(x.get("name", "")).lstrip("/") for x in engine(host, facts)
               if x.get("state") in ("running", "restarting")}
    c.saw("containers", {"running": sorted(running), "ssot": sorted(listed)})
    extra = running - listed
    c.require(not extra, f"running containers the SSOT does not list: {names(extra)}")
    return c


FAMILY = Family(
    "containers", per="host × container",
    checks=("on the right host; running or intentionally stopped; healthy; not restarting, nor "
           "restarted in the last 5 minutes or since the previous `--save-facts DIR` run, unless"
           " the SSOT says `may_restart`; image as pinned; published host:container ports "
           "exactly as the SSOT lists them; pinned env; nothing unlisted running"),
    subjects={"container": lambda s: (Case(c.ref, c.host, c) for c in s.containers),
              "docker_host": lambda s: (Case(h, h, h) for h in
                                        sorted({c.host for c in s.containers}))},
    host_facts=True)
