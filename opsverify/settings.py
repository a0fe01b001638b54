"""Run settings: where credentials, timeouts and trust anchors come from (the environment).

Credentials never come from the SSOT. Each is read from the environment by name, so a
nightly job can take them from its secret store, and `ops lab exec` can point them at the twin.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from opsverify.redact import MIN_SECRET

ALLOW_SHORT = "OPSVERIFY_ALLOW_SHORT_SECRETS"
# The credentials a run holds, by the variable each comes from (INFISICAL_CLIENT_ID is a name).
CREDENTIALS = {"cloudflare_token": "CLOUDFLARE_API_TOKEN",
               "infisical_client_secret": "INFISICAL_CLIENT_SECRET",
               "infisical_token": "INFISICAL_TOKEN", "proxmox_token": "PROXMOX_API_TOKEN"}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def secret_problem(name: str, value: str, allow_short: bool = False) -> str | None:
    """Why the secret in variable `name` cannot be used safely, naming the variable and never
    the value; None if it can. A control character makes HTTP libraries quote the value in their
    errors, escaped past the scrubber; a non-ASCII one cannot be sent in a header; a short one
    cannot be masked without masking ordinary words too."""
    if _CONTROL.search(value):
        return f"{name} holds a control character (a trailing newline or tab?)"
    if not value.isascii():
        return f"{name} holds a non-ASCII character (HTTP headers carry ASCII only)"
    if value != value.strip():
        return f"{name} begins or ends with a space"
    if len(value) < MIN_SECRET and not (allow_short and len(value) >= 4):
        return (f"{name} is shorter than {MIN_SECRET} characters: too short to be masked safely "
                f"in reports" + ("" if len(value) < 4 else f" (set {ALLOW_SHORT}=1 to accept it)"))
    return None


@dataclass(frozen=True)
class Settings:
    timeout: float = 10.0  # seconds: hard limit for one host's collection or one API call
    ssh_config: Path | None = None  # OpenSSH client config (HostName, IdentityFile, known hosts)
    ca_bundle: Path | None = None  # trust anchors for HTTPS APIs and public routes
    insecure_host_keys: bool = False  # accept unknown SSH host keys, never changed ones (loudly)
    insecure_hosts: tuple[str, ...] = ()  # ...only for these SSOT hosts (empty: every host)
    allow_short_secrets: bool = False  # accept credentials of 4 to 7 characters (loudly)
    insecure_tls: bool = False  # skip TLS verification (reported loudly)
    accept_fstype: str | None = None  # the lab twin mounts tmpfs where production mounts nfs4
    now: str | None = None  # ISO time the decommission gate takes as "now" (tests only)
    cloudflare_api: str = "https://api.cloudflare.com/client/v4"
    cloudflare_token: str | None = field(default=None, repr=False)
    infisical_client_id: str | None = field(default=None, repr=False)
    infisical_client_secret: str | None = field(default=None, repr=False)
    infisical_token: str | None = field(default=None, repr=False)
    proxmox_token: str | None = field(default=None, repr=False)  # USER@REALM!TOKENID=SECRET

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from OPSVERIFY_* and the vendors' usual variable names."""
        e = os.environ if env is None else env

        def path(name: str) -> Path | None:
            return Path(e[name]) if e.get(name) else None

        values: dict[str, object] = {
            "timeout": float(e.get("OPSVERIFY_TIMEOUT") or 10.0),
            "ssh_config": path("OPSVERIFY_SSH_CONFIG"),
            "ca_bundle": path("OPSVERIFY_CA_BUNDLE") or path("SSL_CERT_FILE"),
            # 1: every host; or a comma-separated list of the SSOT hosts it applies to
            "insecure_host_keys": bool(e.get("OPSVERIFY_INSECURE_HOST_KEYS", "").strip(" ,0")),
            "insecure_hosts": tuple(h.strip() for h in e.get("OPSVERIFY_INSECURE_HOST_KEYS", "")
                                    .split(",") if h.strip() not in ("", "1")),
            "allow_short_secrets": e.get(ALLOW_SHORT) == "1",
            "insecure_tls": e.get("OPSVERIFY_INSECURE_TLS") == "1",
            "accept_fstype": e.get("OPSVERIFY_ACCEPT_FSTYPE") or None,
            "now": e.get("OPSVERIFY_NOW") or None,
            "cloudflare_api": e.get("CLOUDFLARE_API_URL") or cls.cloudflare_api,
            "cloudflare_token": e.get("CLOUDFLARE_API_TOKEN") or None,
            "infisical_client_id": e.get("INFISICAL_CLIENT_ID") or None,
            "infisical_client_secret": e.get("INFISICAL_CLIENT_SECRET") or None,
            "infisical_token": e.get("INFISICAL_TOKEN") or None,
            "proxmox_token": e.get("PROXMOX_API_TOKEN") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def secret_values(self) -> list[str]:
        """Every credential this run holds, so outputs can be scrubbed of them."""
        return [v for v in (self.cloudflare_token, self.infisical_client_secret,
                            self.infisical_token, self.proxmox_token) if v]

    def host_keys_relaxed(self, host: str) -> bool:
        """Whether an unknown SSH host key of this SSOT host is accepted."""
        return self.insecure_host_keys and (not self.insecure_hosts or host in self.insecure_hosts)

    def problems(self, env: Mapping[str, str] | None = None, names: Iterable[str] = (),
                 users: Iterable[str] = ()) -> list[str]:
        """What makes these settings unsafe to run with, one line each, never a secret value:
        a credential URL that is not https, and each credential (and each of `names` that the
        environment sets: the SSOT's probe secrets; `users` may be short) that cannot be used."""
        e = os.environ if env is None else env
        out = []
        if not self.cloudflare_api.startswith("https://"):
            out.append(f"CLOUDFLARE_API_URL {self.cloudflare_api!r} must be an https:// URL: "
                       "requests to it carry CLOUDFLARE_API_TOKEN")
        for attr, name in CREDENTIALS.items():
            value = getattr(self, attr)
            problem = value and secret_problem(name, value, self.allow_short_secrets)
            if problem:
                out.append(problem)
        users = set(users)
        for name in sorted(set(names)):
            problem = e.get(name) and secret_problem(name, e[name],
                                                     self.allow_short_secrets or name in users)
            if problem:
                out.append(problem)
        return out

    def relaxations(self) -> list[str]:
        """Checks turned off for this run, for the report header."""
        out = []
        if self.insecure_host_keys:
            which = ", ".join(self.insecure_hosts) or "every host"
            out.append(f"unknown SSH host keys accepted for {which}; changed keys still refused "
                       "(OPSVERIFY_INSECURE_HOST_KEYS)")
        if self.allow_short_secrets:
            out.append(f"credentials shorter than {MIN_SECRET} characters accepted ({ALLOW_SHORT}=1)")
        if self.insecure_tls:
            out.append("TLS certificates NOT verified (OPSVERIFY_INSECURE_TLS=1)")
        if self.accept_fstype:
            out.append(f"fstype {self.accept_fstype} accepted in place of the SSOT's (lab twin)")
        return out
