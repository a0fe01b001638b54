"""Whether a twin is up and where everything of it is: the shape other tools code against.

`up` computes the lasting part once (status_of) and keeps it in the state file; `status`
reads it back and adds what can change (is the twin up). `ops lab status --json` prints it;
`ops lab exec` takes its environment (env_of) from it.
"""

from __future__ import annotations

from typing import Any

from .layout import Layout
from .proc import alive
from .seeds import credentials
from .spec import World


def is_up(layout: Layout, state: dict[str, Any] | None = None) -> bool:
    """True when the namespace exists and every host's holder and dockerd and every service
    live. A stopped sshd is drift (a scenario does that), not a twin that is down."""
    state = state if state is not None else layout.read_state()
    return hosts_up(layout, state) and all(alive(p) for p in state["services"].values())


def hosts_up(layout: Layout, state: dict[str, Any]) -> bool:
    """The parts reset cannot rebuild in place: the namespace, each host's holder and dockerd."""
    if not state.get("complete") or not layout.netns_path.exists():
        return False
    shared = state.get("engine") or {}  # a generated SSOT's shared engine (shared_engine.py)
    if shared and not alive(shared["dockerd_pid"]):
        return False
    return all(alive(h[key]) for h in state.get("hosts", {}).values()
               for key in ("pid", "dockerd_pid") if h.get(key))


def summary(layout: Layout, world: World, state: dict[str, Any]) -> dict[str, Any]:
    """What `ops lab up` reports: how many hosts and containers, how long it took."""
    return {"hosts": len(world.hosts),
            "containers": sum(len(hs.containers) for hs in world.hosts.values()),
            "running": sum(c.running for hs in world.hosts.values() for c in hs.containers),
            "seconds": state.get("up_seconds")}


def status(layout: Layout) -> dict[str, Any]:
    """Where everything of the twin is (the shape other tools code against)."""
    state = layout.read_state()
    base = {"name": layout.name, "up": is_up(layout, state), "state_dir": str(layout.root),
            "netns": layout.netns, "netns_path": str(layout.netns_path),
            "ssot": state.get("ssot")}
    if state.get("status"):
        return {**state["status"], **base}
    return {**base, "hosts": {}, "ssh_config": None, "ca_bundle": None, "standins": {},
            "env": {}, "canaries": []}


def status_of(layout: Layout, world: World, state: dict[str, Any]) -> dict[str, Any]:
    """The lasting part of the status, computed once by `up` and kept in the state file."""
    out: dict[str, Any] = {"hosts": {}}
    for name, hs in world.hosts.items():
        h = hs.host
        out["hosts"][name] = {
            "hostname": h.hostname, "addresses": list(h.addresses),
            "ssh": {"address": h.ssh_address, "user": h.ssh_user, "port": h.ssh_port,
                    "identity_file": str(layout.identity), "known_hosts": str(layout.known_hosts)},
            "docker_socket": str(layout.docker_socket(name)) if hs.docker else None,
            "pid": state["hosts"][name]["pid"]}
    out["ssh_config"] = str(layout.ssh_config)
    out["ca_bundle"] = str(layout.ca_bundle)
    out["standins"] = credentials(world)
    out["env"] = env_of(layout, {**out, "ssot": state["ssot"]})
    out["canaries"] = world.canaries
    return out


def env_of(layout: Layout, st: dict[str, Any]) -> dict[str, str]:
    """The environment `ops lab exec` adds: where the twin's APIs, keys and trust anchors are."""
    s = st["standins"]
    env = {"OPSVERIFY_SSH_CONFIG": st["ssh_config"], "OPSVERIFY_CA_BUNDLE": st["ca_bundle"],
           "SSL_CERT_FILE": st["ca_bundle"], "REQUESTS_CA_BUNDLE": st["ca_bundle"],
           "CURL_CA_BUNDLE": st["ca_bundle"],
           "CLOUDFLARE_API_URL": s["cloudflare"]["api_url"],
           "CLOUDFLARE_API_TOKEN": s["cloudflare"]["read_token"],
           "INFISICAL_CLIENT_ID": s["infisical"]["reader"]["client_id"],
           "INFISICAL_CLIENT_SECRET": s["infisical"]["reader"]["client_secret"],
           "OPSVERIFY_ACCEPT_FSTYPE": "tmpfs", "OPSVERIFY_SSOT": st["ssot"],
           "OPSVERIFY_LAB_DIR": str(layout.root), "OPSVERIFY_LAB_NAME": layout.name}
    if "proxmox" in s:
        env["PROXMOX_API_TOKEN"] = s["proxmox"]["auditor_token"]
    return env

