"""One Docker engine for the synthetic hosts of a generated SSOT; each host still sees only
its own containers, through its own socket path.

A VM of the twin normally gets its own dockerd (engine.py): ~130 MB PSS with its containerd and
a few seconds to start. A hundred of them do not fit on one machine, so the hosts a generated
SSOT marks `shared_engine` (lab-twin.json, see scale.py) share one:

- one dockerd in the twin's network namespace (host-network containers listen on their host's
  addresses there, as with a VM's own engine) and in a private mount namespace of its own, so
  its overlay mounts never show on the machine; data under STATE/engine/.
- a container of host H is named "H.NAME" on that engine and labelled LABEL=H.
- H's /run/docker.sock still leads to STATE/hosts/H/docker/docker.sock, which is served by
  dockerproxy.py (one process for all hosts): reads of H's containers only, under the names H
  knows. The fact script cannot tell it from H's own engine.
- a container's /config is bound from STATE/engine/binds/H/NAME: the engine cannot see into
  H's mount namespace. Nothing in a twin container reads /config (twin-httpd's answers come
  from its command line); the app's config files live in H's /mnt/docker, as on a VM.
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors

from . import engine
from .image import import_image, split_ref
from .layout import LabError, Layout, write_private
from .proc import alive, netns_argv, spawn, stop, wait_for_line
from .spec import ContainerSpec, HostSpec

LABEL = "org.opsverify.lab.host"
SEP = "."


def engine_dir(layout: Layout) -> Path:
    return layout.root / "engine"


def engine_socket(layout: Layout) -> Path:
    return engine_dir(layout) / "docker.sock"


def client(layout: Layout, timeout: float = 60) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix://{engine_socket(layout)}",
                               version=engine.API_VERSION, timeout=timeout)


def engine_spec(layout: Layout, spec: ContainerSpec) -> ContainerSpec:
    """The container as the shared engine holds it: prefixed name, host label, own binds."""
    binds = {str(engine_dir(layout) / "binds" / spec.host / Path(src).name): dst
             for src, dst in spec.binds.items()}
    return dataclasses.replace(spec, name=f"{spec.host}{SEP}{spec.name}",
                               labels={**spec.labels, LABEL: spec.host}, binds=binds)


def sharing(world: Any) -> list[HostSpec]:
    """The hosts whose containers run on the shared engine."""
    return [hs for hs in world.hosts.values() if hs.docker and hs.shared_engine]


def start(layout: Layout, world: Any, tar: Future | Path,
          say: Any = lambda _: None) -> dict[str, int]:
    """Start the engine and its proxy, put every host's containers on it; returns the pids."""
    hosts = sharing(world)
    d = engine_dir(layout)
    (d / "data").mkdir(parents=True, exist_ok=True)
    config = d / "daemon.json"
    config.write_text("{}\n")  # never the machine's /etc/docker/daemon.json
    sock = engine_socket(layout)
    argv = netns_argv(layout.netns_path) + [
        "unshare", "-m", "--propagation", "private",
        "dockerd", "--config-file", str(config), "--host", f"unix://{sock}",
        "--data-root", str(d / "data"), "--exec-root", str(d / "x"),
        "--pidfile", str(d / "dockerd.pid"), "--bridge", "none", "--iptables=false",
        "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false",
        "--cgroup-parent", f"{layout.cgroup_parent}-shared", "--log-level", "warn",
        "--storage-driver", "overlay2"]
    pid = spawn(argv, layout.logs / "engine-dockerd.log", d / "dockerd.launcher.pid")
    deadline = time.monotonic() + 30
    while True:
        try:
            if sock.exists() and client(layout, 2).ping():
                break
        except (docker.errors.DockerException, OSError):
            pass
        if not alive(pid) or time.monotonic() > deadline:
            log = (layout.logs / "engine-dockerd.log").read_text(errors="replace")
            raise LabError(f"shared engine: dockerd did not start: {log.strip()[-400:]}")
        time.sleep(0.1)
    refs = sorted({c.image for hs in hosts for c in hs.containers})
    import_image(client(layout, 300), tar.result() if isinstance(tar, Future) else tar, refs)
    converge(layout, hosts)
    proxy = start_proxy(layout, hosts)
    n = sum(len(hs.containers) for hs in hosts)
    say(f"shared engine: {len(hosts)} hosts, {n} containers, one socket per host")
    return {"dockerd_pid": pid, "proxy_pid": proxy}


def _gid(layout: Layout, host: str) -> int | None:
    """The docker group's gid in the host's own /etc/group (None: root only)."""
    group = layout.host(host) / "group"
    if not group.exists():
        return None
    for line in group.read_text().splitlines():
        parts = line.split(":")
        if parts[0] == "docker" and len(parts) > 2 and parts[2].isdigit():
            return int(parts[2])
    return None


def start_proxy(layout: Layout, hosts: list[HostSpec]) -> int:
    """(Re)start dockerproxy with one socket per host; returns its pid once it listens."""
    import json
    import sys
    d = engine_dir(layout)
    old = d / "proxy.pid"
    if old.exists():
        stop([int(old.read_text().strip() or 0)], grace=2)
    config = {"upstream": str(engine_socket(layout)), "label": LABEL, "sep": SEP,
              "hosts": {hs.name: {"socket": str(layout.docker_socket(hs.name)),
                                  "gid": _gid(layout, hs.name)} for hs in hosts}}
    write_private(d / "proxy.json", json.dumps(config, indent=1))
    log = layout.logs / "docker-proxy.log"
    log.unlink(missing_ok=True)
    argv = netns_argv(layout.netns_path) + [sys.executable, "-m", "opsverify.lab.dockerproxy",
                                            str(d / "proxy.json")]
    pid = spawn(argv, log, old)
    wait_for_line(log, "ready", pid, timeout=20)
    return pid


def converge(layout: Layout, hosts: list[HostSpec],
             recreate: dict[str, set[str]] | None = None) -> None:
    """Exactly these hosts' SSOT containers on the shared engine, as specified, in their
    intended state (`recreate`: {host: container names to make anew})."""
    cl = client(layout)
    refs = {c.image for hs in hosts for c in hs.containers}
    base = next(iter(cl.images.list()), None)
    if base is None:
        raise LabError("shared engine: the twin image is missing")
    have = {t for i in cl.images.list() for t in i.tags}
    for ref in sorted(refs - have):
        cl.api.tag(base.id, *split_ref(ref))
    names = {hs.name for hs in hosts}
    wanted = {s.name: (s, c.name in (recreate or {}).get(hs.name, ())) for hs in hosts
              for c in hs.containers for s in [engine_spec(layout, c)]}
    existing = {c.name: c for c in cl.containers.list(all=True, filters={"label": LABEL})
                if c.labels.get(LABEL) in names}
    for name, c in existing.items():
        if name not in wanted:
            c.remove(force=True)

    def one(item: tuple[ContainerSpec, bool]) -> None:
        spec, anew = item
        c = existing.get(spec.name)
        if c is not None and (anew or engine.differences(c.attrs, spec, cl)):
            c.remove(force=True)
            c = None
        if c is None:
            c = engine.create(cl, spec)
        engine._converge_state(cl, c, spec)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for fut in [pool.submit(one, item) for item in wanted.values()]:
            fut.result()


def reset(layout: Layout, world: Any, state: dict[str, Any],
          recreate: dict[str, set[str]]) -> None:
    """`ops lab reset` of these hosts' containers ({host: names to make anew}); a proxy that
    died is started again (the engine itself is part of the twin's up-check)."""
    if not alive(state["engine"].get("proxy_pid", 0)):
        state["engine"]["proxy_pid"] = start_proxy(layout, sharing(world))
    converge(layout, [world.hosts[h] for h in recreate], recreate)


def settled(layout: Layout, world: Any) -> list[str]:
    """Containers not yet in their intended state and health, "host: name state" (one
    listing of the engine, not one inspect per container)."""
    hosts = sharing(world)
    listed = client(layout).api.containers(all=True, filters={"label": LABEL})
    got = {(c.get("Names") or ["/"])[0][1:]: c for c in listed}
    waiting = []
    for hs in hosts:
        for spec in hs.containers:
            c = got.get(f"{hs.name}{SEP}{spec.name}")
            status = (c or {}).get("Status") or ""
            health = ("healthy" if "(healthy)" in status else "unhealthy"
                      if "(unhealthy)" in status else "starting" if "health:" in status else None)
            if c is None:
                waiting.append(f"{hs.name}: {spec.name} missing")
            elif spec.running != (c.get("State") == "running") or \
                    not spec.running and c.get("State") != "exited":
                waiting.append(f"{hs.name}: {spec.name} {c.get('State')}")
            elif spec.running and spec.healthcheck and health != "healthy":
                waiting.append(f"{hs.name}: {spec.name} {health}")
    return waiting
