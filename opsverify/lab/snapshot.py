"""A comparable picture of the running twin: what `reset` must bring back exactly.

Files (checksums) under every directory a host owns and the files bind-mounted into it, mounts,
hostnames, SSH host keys, each engine's containers (image, state, health, env, command) and
image tags, the namespace's addresses, which services run, Prometheus's configuration and the
stand-ins' state. Read from this machine's side (/proc/<holder>/root, Docker sockets, state files): it
sends no traffic.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from . import engine, hosts
from .layout import Layout
from .proc import alive, host_argv, netns_argv, run
from .twin import load_world

VOLATILE = {"infisical": ("access_tokens",)}  # logins made by readers, not part of the setup


def snapshot(layout: Layout) -> dict[str, Any]:
    state = layout.read_state()
    world = load_world(layout, state)
    out: dict[str, Any] = {"hosts": {}, "standins": {}}
    for name, hs in world.hosts.items():
        holder = state["hosts"][name]["pid"]
        root = hosts.host_root(holder)
        files: dict[str, str] = {}
        for top in [*hs.roots, "/etc/fstab", hosts.CLI_DIR]:
            files.update(_tree(root, top))
        mounts = hosts.mounts_of(holder)
        h: dict[str, Any] = {
            "hostname": run(host_argv(holder) + ["hostname"]).stdout.strip(),
            "files": files,
            "mounts": {p: mounts.get(p) for p in hs.roots},
            "host_key": _sha(layout.host(name) / "ssh_host_ed25519_key.pub"),
            # bind-mounted inside the host over /etc/passwd, /etc/group, /etc/shadow, ~/.bashrc
            "state_files": {f: _sha(layout.host(name) / f) for f in (
                *hosts.ACCOUNT_FILES, "dot.bashrc", "dot.profile")},
            "sshd": sorted(hosts.listening(holder) & {(a, hs.host.ssh_port)
                                                      for a in hs.host.addresses}),
        }
        if hs.docker:
            cl = engine.client(layout, name)
            h["containers"] = {c.name: _container(c.attrs) for c in cl.containers.list(all=True)}
            h["images"] = sorted(t for i in cl.images.list() for t in i.tags)
        out["hosts"][name] = h
    out["addresses"] = sorted(a.split()[3] for a in run(
        netns_argv(layout.netns_path) + ["ip", "-o", "-4", "addr", "show"]).stdout.splitlines())
    out["services"] = sorted(n for n, pid in state["services"].items() if alive(pid))
    out["prometheus_yml"] = _sha(layout.root / "prometheus" / "prometheus.yml")
    for path in sorted(layout.standins.glob("*.json")):
        if path.name.endswith(".clean.json"):
            continue
        data = json.loads(path.read_text())
        for key in VOLATILE.get(path.stem, ()):
            data.pop(key, None)
        out["standins"][path.stem] = hashlib.sha256(
            json.dumps(data, sort_keys=True).encode()).hexdigest()
    return out


def _container(attrs: dict[str, Any]) -> dict[str, Any]:
    st = attrs["State"]
    return {"image": attrs["Config"]["Image"], "state": st["Status"],
            "health": (st.get("Health") or {}).get("Status"),
            # values only as checksums: a snapshot diff must never print a secret
            "env": dict(sorted(_env_item(e) for e in attrs["Config"].get("Env") or [])),
            "command": attrs["Config"].get("Cmd"), "labels": attrs["Config"].get("Labels")}


def _env_item(entry: str) -> tuple[str, str]:
    name, _, value = entry.partition("=")
    return name, hashlib.sha256(value.encode()).hexdigest()[:16]


def _tree(root: Path, top: str) -> dict[str, str]:
    base = root / top.lstrip("/")
    if base.is_file():
        return {top: _sha(base)}
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):
        inside = "/" + str(Path(dirpath).relative_to(root))
        for d in dirnames:
            out[f"{inside}/{d}/"] = "dir"
        for f in filenames:
            out[f"{inside}/{f}"] = _sha(Path(dirpath) / f)
    return out


def _sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two snapshots differ, one line per leaf (values of files are checksums)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}/{k}: added")
            elif k not in b:
                out.append(f"{path}/{k}: removed")
            else:
                out += diff(a[k], b[k], f"{path}/{k}")
        return out
    return [] if a == b else [f"{path}: {_short(a)} -> {_short(b)}"]


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) < 120 else text[:117] + "..."
