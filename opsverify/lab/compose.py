"""A stack's compose file as the twin writes it: what compose would create the containers from.

The twin's engine creates the containers itself (engine.py); this file is what the verifier
reads on the host, so it must say what the engine runs: the same images, commands, mounts and
healthchecks, and every secret as a ${VAR} reference, never a value.
"""

from __future__ import annotations

from typing import Any

import yaml

from .world import ContainerSpec


def compose_file(stack: str, specs: list[ContainerSpec]) -> bytes:
    """The compose file of `stack`, running these containers."""
    services = {}
    for s in specs:
        svc: dict[str, Any] = {"image": s.image, "container_name": s.name,
                               "network_mode": "host", "restart": "unless-stopped",
                               "command": list(s.command[1:]) or None,
                               "environment": s.compose_env,
                               "volumes": [f"{src}:{dst}" for src, dst in s.binds.items()]}
        if s.healthcheck:
            h = s.healthcheck
            svc["healthcheck"] = {"test": h["test"], "interval": f"{h['interval'] // 10**9}s",
                                  "timeout": f"{h['timeout'] // 10**9}s", "retries": h["retries"]}
        services[s.name] = {k: v for k, v in svc.items() if v is not None}
    head = (f"# {stack}: secrets come from Infisical at deploy time\n"
            "# (`infisical run -- docker compose up -d`); never write them into this directory.\n")
    body = yaml.safe_dump({"name": stack, "services": services}, sort_keys=False, width=1000)
    return (head + body).encode()
