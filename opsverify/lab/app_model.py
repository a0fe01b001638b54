"""The vocabulary of the twin's application profiles: Profile, Rule, Ctx and a container's ports.

A profile says how one application behaves in the twin; apps.py holds the table of them,
app_http.py turns one into twin-httpd rules and a healthcheck, app_files.py writes its config
files. They all share these types, kept here so none of them has to import another's table.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from opsverify.ssot import Ssot
from opsverify.ssot.model import Container

from .formats import Doc

CONFIG_ROOT = "/mnt/docker"  # each app's /config is /mnt/docker/<container> on its VM


@dataclass(frozen=True)
class Rule:
    """One twin-httpd rule: `-r "PATH STATUS ..."`, optional `-a AUTH`, optional `-f FAIL`."""

    spec: str
    auth: str | None = None
    fail: str | None = None

    def argv(self) -> list[str]:
        out = ["-r", self.spec]
        if self.auth:
            out += ["-a", self.auth]
        if self.fail:
            out += ["-f", self.fail]
        return out


@dataclass(frozen=True)
class Profile:
    """An application's behaviour in the twin."""

    title: str
    kind: str = "web"                 # web | arr | sabnzbd | jellyfin | navidrome | jellyseerr ...
    version: str = "1.0.0"
    api: str = "v1"                   # *arr API version
    health: str = "/"                 # path the healthcheck GETs
    health_accepts_401: bool = False  # trailarr (P3: "healthcheck accepts 401 as healthy")
    secrets: tuple[str, ...] = ()     # SSOT secret keys passed as ${VAR} in compose
    files: Callable[[Ctx, Container], dict[str, Doc]] | None = None
    env: Callable[[Ctx, Container], dict[str, str]] | None = None  # non-secret settings
    command: str = "httpd"            # httpd | node-exporter
    extra: tuple[Rule, ...] = field(default_factory=tuple)


class Ctx:
    """What a profile may ask about the twin: the SSOT, secret values and addresses."""

    def __init__(self, ssot: Ssot, secrets: dict[str, str], seed: str):
        self.ssot, self.secrets, self.seed = ssot, secrets, seed
        self.by_name = {}
        for c in ssot.containers:
            self.by_name.setdefault(c.name, c)

    def secret(self, name: str) -> str:
        """The value of an SSOT secret key, or of a twin-only secret (named `app.what`)."""
        return self.secrets[name]

    def api_key(self, app: str) -> str:
        """An app's own API key: its SSOT secret (RADARR_API_KEY) when the SSOT has one."""
        key = f"{app.upper().replace('-', '_')}_API_KEY"
        return self.secrets.get(key) or self.secrets.get(f"{app}.apikey", "")

    def ident(self, label: str, hex_len: int = 32) -> str:
        """A stable id for this twin (same on every reset): hex derived from the twin's seed."""
        return hashlib.sha256(f"{self.seed}:{label}".encode()).hexdigest()[:hex_len]

    def uuid(self, label: str) -> str:
        return str(uuid.UUID(self.ident(label), version=4))

    def url(self, source: Container, target: str) -> str:
        """How `source` reaches container `target`: Docker DNS on one VM, Tailscale IP across."""
        t = self.by_name.get(target)
        if t is None:
            return ""
        port = t.ports[0].container if t.ports else 80
        if t.host == source.host:
            return f"http://{t.name}:{port}"
        host = self.ssot.hosts[t.host]
        return f"http://{host.vantage_ip}:{t.ports[0].host if t.ports else port}"

    def route_of(self, c: Container) -> str | None:
        """The public URL routed to this container, if any."""
        for r in self.ssot.routes:
            if r.host == c.host and any(p.host == r.port for p in c.ports):
                return f"https://{r.hostname}"
        return None


def host_port(c: Container) -> int:
    """The port the container publishes on its host (0: none)."""
    return c.ports[0].host if c.ports else 0


def app_port(c: Container, default: int) -> int:
    """The port the app itself listens on inside the container (`default` when none is mapped)."""
    return c.ports[0].container if c.ports else default
