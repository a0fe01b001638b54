"""The fact script's parameters for one host, from the SSOT: what the host agent may read.

remote_params() turns the SSOT's view of one host (its stacks, config roots, config checks,
mounts, pinned container variables, secret key names, retired addresses) into the PARAMS of
commands.facts_command(); validate_params() refuses, before anything is sent, a value the
agent must not be given (a relative path, a NUL, a malformed name, pattern or address). The
result is data the agent reads, never code, and commands.encode_params() admits only the keys
of commands.PARAM_KEYS.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlencode

from opsverify import redact
from opsverify.facts.agent import keypaths
from opsverify.facts.agent.primitives import ParseError
from opsverify.ssot import Ssot

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FORMATS = ("json", "xml", "yaml", "toml", "sqlite")
FILES = {"mounts": "/proc/mounts", "fstab": "/etc/fstab", "docker_socket": "/var/run/docker.sock"}


def remote_params(ssot: Ssot, host: str) -> dict[str, Any]:
    """The fact script's parameters for one host, from the SSOT (budget_s is added per run)."""
    stacks = ssot.stacks_on(host)
    pve = ssot.proxmox_host
    params = {
        "host": host,
        "secret_name": redact.SECRET_NAME.pattern,
        "files": dict(FILES),
        "zfs": bool(pve and pve.name == host),
        "pinned_env": {c.name: sorted(c.env) for c in ssot.containers if c.host == host and c.env},
        "stacks": {s.name: {"directory": s.directory, "compose": s.compose_path,
                            "roots": list(s.config_roots),
                            "generated": [{"path": g.path, "unit": g.unit}
                                          for g in ssot.generated_env if g.stack == s.name]}
                   for s in stacks},
        "mount_paths": [m.path for m in ssot.mounts if m.host == host],
        "secret_keys": sorted(set(ssot.secret_keys)),
        "plaintext_globs": list(ssot.plaintext_files),
        "retired": sorted(ssot.retired_addresses),
        "config_roots": list(dict.fromkeys(r for s in stacks for r in s.config_roots)),
        "config_checks": [{"name": c.name, "file": c.file, "format": c.format,
                           "keys": list(c.keys), "table": c.table, "row": dict(c.row),
                           # whose environment a Recyclarr `!env_var` in the file reads
                           "container": c.source.split(":")[-1] if c.source else None}
                          for c in ssot.config_checks if c.host == host],
        "probes": probe_params(ssot, host),
    }
    validate_params(params)
    return params


def probe_params(ssot: Ssot, host: str) -> list[dict[str, Any]]:
    """The host's service probes as the agent asks them from the host (agent/probes.py): the
    published port, the path with the SSOT's query values, the verifier's address; never an
    auth parameter or a secret (PARAMS are shown decoded in the audit log)."""
    out = []
    for p in ssot.probes:
        c = ssot.container(p.container) if p.host == host else None
        if not (c and c.ports and p.url):
            continue
        query = urlencode({k: str(v) for k, v in p.query.items()})
        out.append({"name": p.name, "port": c.ports[0].host, "address": ssot.hosts[host].vantage_ip,
                    "path": p.path + (f"?{query}" if query else "")})
    return out


def validate_params(params: dict[str, Any]) -> None:
    """ValueError naming the first value the fact script must not be given."""
    def path(value: Any, what: str) -> None:
        if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
            raise ValueError(f"{what}: {value!r} is not an absolute path")

    def name(value: Any, what: str) -> None:
        if not isinstance(value, str) or not ENV_NAME.fullmatch(value):
            raise ValueError(f"{what}: {value!r} is not a variable name")

    for key, value in params["files"].items():
        path(value, f"files.{key}")
    for stack, st in params["stacks"].items():
        path(st["directory"], f"stack {stack}: directory")
        path(st["compose"], f"stack {stack}: compose file")
        for root in st["roots"]:
            path(root, f"stack {stack}: config root")
        for g in st["generated"]:
            path(g["path"], f"stack {stack}: generated env file")
            if not re.fullmatch(r"[A-Za-z0-9_.@:-]+\.service", str(g["unit"])):
                raise ValueError(f"stack {stack}: {g['unit']!r} is not a systemd service name")
    for mount_path in params["mount_paths"]:
        path(mount_path, "mount point")
    for root in params["config_roots"]:
        path(root, "config root")
    for key in params["secret_keys"]:
        name(key, "secret key")
    for container, names in params["pinned_env"].items():
        for n in names:
            name(n, f"container {container}: env")
    for glob in params["plaintext_globs"]:
        if not isinstance(glob, str) or not glob or "/" in glob or "\0" in glob:
            raise ValueError(f"plaintext file pattern {glob!r} must be a file name pattern")
    for address in params["retired"]:
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ValueError(f"retired address {address!r} is not an IPv4 address") from None
    for check in params["config_checks"]:
        what = f"config check {check['name']}"
        path(check["file"], f"{what}: file")
        if check["format"] not in FORMATS:
            raise ValueError(f"{what}: format {check['format']!r} is not one of {FORMATS}")
        if check["format"] == "sqlite" and not check["table"]:
            raise ValueError(f"{what}: a sqlite check needs a table")
        for key in check["keys"]:
            try:
                keypaths.split_path(key)
            except ParseError as exc:
                raise ValueError(f"{what}: {exc}") from None
    for probe in params.get("probes", []):
        what = f"probe {probe.get('name')!r}"
        if not isinstance(probe["port"], int) or not 0 < probe["port"] < 65536:
            raise ValueError(f"{what}: port {probe['port']!r} is not a TCP port")
        if not re.fullmatch(r"/[\x21-\x7e]*", str(probe["path"])):
            raise ValueError(f"{what}: {probe['path']!r} is not an absolute URL path")
        if probe["address"] is not None:
            try:
                ipaddress.ip_address(probe["address"])
            except ValueError:
                raise ValueError(f"{what}: {probe['address']!r} is not an IP address") from None
    try:
        re.compile(params["secret_name"])
    except re.error as exc:
        raise ValueError(f"secret name pattern: {exc}") from None
