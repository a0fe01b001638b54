"""The data of the twin as it should be: the world, its hosts and their containers.

spec.py computes a World from the SSOT; up, reset, the engine and the host namespaces
converge the running twin to it. These are plain records: no logic beyond a few views.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from opsverify.ssot import Ssot
from opsverify.ssot.model import Host, Mount

from .endpoints import Endpoint


@dataclass(frozen=True)
class ContainerSpec:
    """One container as `docker create` makes it (and compose would)."""

    name: str
    stack: str
    host: str
    image: str
    command: tuple[str, ...]
    env: dict[str, str] = field(hash=False)          # resolved values, as the engine holds them
    compose_env: dict[str, str] = field(hash=False)  # as written in compose: ${VAR} for secrets
    labels: dict[str, str] = field(hash=False)
    binds: dict[str, str] = field(hash=False)        # host path -> container path
    healthcheck: dict[str, Any] | None = field(hash=False)
    running: bool
    # published ports as the SSOT lists them: (host, container, protocol). The twin's containers
    # share the host's network, where Docker maps nothing; the engine keeps the mapping in
    # HostConfig.PortBindings all the same, which is what the gate compares on such a container.
    ports: tuple[tuple[int, int, str], ...] = ()


@dataclass
class HostSpec:
    """One twin host: names, addresses, mounts, files and containers."""

    host: Host
    mounts: list[Mount]
    tmpfs_dirs: list[str]            # stack directories: a fresh tmpfs each
    containers: list[ContainerSpec]
    files: dict[str, bytes]          # absolute path inside the host -> content
    dirs: list[str]                  # directories that must exist (app /config, media)
    fstab: str
    tailscale: dict[str, Any] | None = None  # tailscale stand-in state
    zfs: dict[str, Any] | None = None        # zfs stand-in state (Proxmox host)
    modes: dict[str, int] = field(default_factory=dict)  # files not 0644 (a generated .env)
    shared_engine: bool = False  # containers on the twin's shared dockerd (scale.py)

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def docker(self) -> bool:
        return bool(self.containers)

    @property
    def roots(self) -> list[str]:
        """Directories whose whole content the twin owns (reset removes anything else there)."""
        return sorted({m.path for m in self.mounts} | set(self.tmpfs_dirs))


@dataclass
class World:
    ssot: Ssot
    secrets: dict[str, str]
    hosts: dict[str, HostSpec]
    addresses: list[str]
    endpoints: dict[str, Endpoint]
    etc_hosts: str
    prometheus_yml: str
    now: dt.datetime

    @property
    def canaries(self) -> list[str]:
        """Every secret value of the twin: grep any output for these to find a leak."""
        return sorted({v for k, v in self.secrets.items() if k != "seed"})
