"""containers: each SSOT container is on its host's engine, in the state, health, image and env
the SSOT says; and no host runs a container the SSOT does not list."""

from __future__ import annotations

from typing import Any

from opsverify.ssot.model import Container
from opsverify.verdict import Unreachable

from . import Check, names, require_sections

STOPPED = ("exited", "created")  # intentionally stopped: not running, not restarting


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


def check(container: Container, facts: dict[str, Any]) -> Check:
    """Present; running or intentionally stopped; not restarting; healthy; image; pinned env."""
    require_sections(container.host, facts, "docker")
    c = Check(f"Container {container.ref} on {container.host}")
    found = {str(x.get("name", "")).lstrip("/"): x for x in engine(container.host, facts)}
    actual = found.get(container.name)
    c.saw("container", {"expected": {"state": container.state, "image": container.image,
                                     "healthcheck": container.healthcheck,
                                     "env": sorted(container.env)},
                        "engine": actual and {k: actual.get(k) for k in (
                            "state", "restarting", "restart_count", "health", "has_healthcheck",
                            "image", "started_at", "finished_at")}})
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
        _health(c, container, actual)
    if image_ref(str(actual.get("image"))) != image_ref(container.image):
        c.expect("image", container.image, actual.get("image"))
    env = actual.get("env") or {}
    for name, value in sorted(container.env.items()):
        c.same(f"env {name}", value, env.get(name))
    return c


def _health(c: Check, container: Container, actual: dict[str, Any]) -> None:
    has = actual.get("has_healthcheck")
    if container.healthcheck and not has:
        c.require(False, "healthcheck: the SSOT says it has one, the container defines none")
    elif has:
        c.expect("health", "healthy", actual.get("health"))


def check_host(host: str, expected: list[Container], facts: dict[str, Any]) -> Check:
    """No running container on the host that the SSOT does not list for it."""
    require_sections(host, facts, "docker")
    c = Check(f"Docker host {host}")
    listed = {x.name for x in expected if x.host == host}
    running = {str(x.get("name", "")).lstrip("/") for x in engine(host, facts)
               if x.get("state") in ("running", "restarting")}
    c.saw("containers", {"running": sorted(running), "ssot": sorted(listed)})
    extra = running - listed
    c.require(not extra, f"running containers the SSOT does not list: {names(extra)}")
    return c
