"""Run settings: where credentials, timeouts and trust anchors come from (the environment).

Credentials never come from the SSOT. Each is read from the environment by name, so a
nightly job can take them from its secret store, and `ops lab exec` can point them at the twin.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    timeout: float = 10.0  # seconds: hard limit for one host's collection or one API call
    ssh_config: Path | None = None  # OpenSSH client config (HostName, IdentityFile, known hosts)
    ca_bundle: Path | None = None  # trust anchors for HTTPS APIs and public routes
    insecure_host_keys: bool = False  # accept unknown/changed SSH host keys (reported loudly)
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

        values: dict[str, object] = dict(
            timeout=float(e.get("OPSVERIFY_TIMEOUT") or 10.0),
            ssh_config=path("OPSVERIFY_SSH_CONFIG"),
            ca_bundle=path("OPSVERIFY_CA_BUNDLE") or path("SSL_CERT_FILE"),
            insecure_host_keys=e.get("OPSVERIFY_INSECURE_HOST_KEYS") == "1",
            insecure_tls=e.get("OPSVERIFY_INSECURE_TLS") == "1",
            accept_fstype=e.get("OPSVERIFY_ACCEPT_FSTYPE") or None,
            now=e.get("OPSVERIFY_NOW") or None,
            cloudflare_api=e.get("CLOUDFLARE_API_URL") or cls.cloudflare_api,
            cloudflare_token=e.get("CLOUDFLARE_API_TOKEN") or None,
            infisical_client_id=e.get("INFISICAL_CLIENT_ID") or None,
            infisical_client_secret=e.get("INFISICAL_CLIENT_SECRET") or None,
            infisical_token=e.get("INFISICAL_TOKEN") or None,
            proxmox_token=e.get("PROXMOX_API_TOKEN") or None,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def secret_values(self) -> list[str]:
        """Every credential this run holds, so outputs can be scrubbed of them."""
        return [v for v in (self.cloudflare_token, self.infisical_client_secret,
                            self.infisical_token, self.proxmox_token) if v]

    def relaxations(self) -> list[str]:
        """Checks turned off for this run, for the report header."""
        out = []
        if self.insecure_host_keys:
            out.append("SSH host keys NOT verified (OPSVERIFY_INSECURE_HOST_KEYS=1)")
        if self.insecure_tls:
            out.append("TLS certificates NOT verified (OPSVERIFY_INSECURE_TLS=1)")
        if self.accept_fstype:
            out.append(f"fstype {self.accept_fstype} accepted in place of the SSOT's (lab twin)")
        return out
