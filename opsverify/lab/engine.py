"""Each VM's Docker engine, started inside the VM's namespaces, and its containers.

`converge` makes an engine hold exactly the SSOT's containers as `ContainerSpec` describes
them, in their intended state, and nothing else; `up` and `reset` both use it.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors

from .hosts import DOCKER_GROUP
from .image import import_image, split_ref
from .layout import LabError, Layout
from .proc import alive, host_argv, signal_each, spawn, state
from .spec import STOP_TIMEOUT, ContainerSpec, HostSpec

API_VERSION = "1.41"  # Debian 12's engine (20.10); pinned so the SDK never has to ask


def client(layout: Layout, host: str, timeout: float = 30) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix://{layout.docker_socket(host)}",
                               version=API_VERSION, timeout=timeout)


def start_dockerd(layout: Layout, hs: HostSpec, holder: int) -> int:
    """Start the VM's own dockerd inside its namespaces; returns its pid once it answers."""
    d = layout.docker_dir(hs.name)
    (d / "data").mkdir(parents=True, exist_ok=True)
    config = d / "daemon.json"
    config.write_text("{}\n")  # never the machine's /etc/docker/daemon.json
    argv = host_argv(holder) + [
        "dockerd", "--config-file", str(config), "--host", f"unix://{layout.docker_socket(hs.name)}",
        "--data-root", str(d / "data"), "--exec-root", str(d / "x"),
        "--pidfile", str(d / "dockerd.pid"), "--group", DOCKER_GROUP, "--bridge", "none",
        "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false",
        "--cgroup-parent", f"{layout.cgroup_parent}-{hs.name}", "--log-level", "warn",
        "--storage-driver", "overlay2"]
    pid = spawn(argv, layout.logs / f"{hs.name}-dockerd.log", d / "dockerd.launcher.pid")
    deadline = time.monotonic() + 30
    while True:
        try:
            if layout.docker_socket(hs.name).exists() and client(layout, hs.name, 2).ping():
                return pid
        except (docker.errors.DockerException, OSError):
            pass
        if not alive(pid) or time.monotonic() > deadline:
            log = (layout.logs / f"{hs.name}-dockerd.log").read_text(errors="replace")
            raise LabError(f"host {hs.name}: dockerd did not start: {log.strip()[-400:]}")
        time.sleep(0.1)


def load_image(layout: Layout, hs: HostSpec, tar: Path) -> None:
    """Import the twin image and tag it with every image reference the host's SSOT names."""
    refs = sorted({c.image for c in hs.containers})
    import_image(client(layout, hs.name, 120), tar, refs)


def converge(layout: Layout, hs: HostSpec, recreate: set[str] = frozenset()) -> None:
    """Exactly the host's SSOT containers, configured as specified, in their intended state."""
    cl = client(layout, hs.name, 60)
    _converge_images(cl, hs)
    wanted = {s.name: s for s in hs.containers}
    existing = {c.name: c for c in cl.containers.list(all=True)}
    for name, c in existing.items():
        if name not in wanted:
            c.remove(force=True)

    def one(spec: ContainerSpec) -> None:
        c = existing.get(spec.name)
        if c is not None and (spec.name in recreate or differences(c.attrs, spec, cl)):
            c.remove(force=True)
            c = None
        if c is None:
            c = create(cl, spec)
        _converge_state(cl, c, spec)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for fut in [pool.submit(one, s) for s in hs.containers]:
            fut.result()


def _converge_images(cl: docker.DockerClient, hs: HostSpec) -> None:
    refs = {c.image for c in hs.containers}
    images = cl.images.list()
    if not images:
        raise LabError(f"host {hs.name}: the twin image is missing from its engine")
    base = next((i for i in images if set(i.tags) & refs), images[0])
    for image in images:
        for tag in image.tags:
            if tag not in refs:
                cl.images.remove(tag, noprune=True)
    for ref in refs:
        try:
            if cl.images.get(ref).id == base.id:
                continue
        except docker.errors.ImageNotFound:
            pass
        repo, tag = split_ref(ref)
        cl.api.tag(base.id, repo, tag)


def create(cl: docker.DockerClient, spec: ContainerSpec, **override: Any) -> Any:
    """`docker create` the container as its spec (or an override of it) says."""
    kw: dict[str, Any] = {"image": spec.image, "command": list(spec.command), "env": spec.env,
                              "labels": spec.labels, "healthcheck": spec.healthcheck,
                              "binds": [f"{s}:{d}:rw" for s, d in spec.binds.items()]}
    kw.update(override)
    # init: docker-init (tini) is PID 1 and reaps orphans. busybox `timeout` in a health check
    # leaves its watchdog behind; under a PID 1 that never waits (node_exporter) each check left
    # a zombie, 2 a minute per container: a pid_max of 32,768 gone in ~3 h on a 100-host twin.
    host_config = cl.api.create_host_config(
        network_mode="host", restart_policy={"Name": "unless-stopped"}, binds=kw.pop("binds"),
        init=True)
    # The SDK refuses port bindings beside host networking; dockerd keeps them (with a warning,
    # "Published ports are discarded when using host network mode"), as the SSOT's declaration.
    host_config["PortBindings"] = port_bindings(spec)
    created = cl.api.create_container(
        kw["image"], command=kw["command"], name=spec.name, environment=kw["env"],
        labels=kw["labels"], healthcheck=kw["healthcheck"], host_config=host_config,
        stop_signal="SIGTERM", stop_timeout=STOP_TIMEOUT,
        ports=[(c, proto) for _, c, proto in spec.ports] or None,
        volumes=[b.split(":")[1] for b in host_config.get("Binds", [])])
    return cl.containers.get(created["Id"])


def port_bindings(spec: ContainerSpec) -> dict[str, list[dict[str, str]]]:
    """The spec's published ports as the Engine API's PortMap."""
    out: dict[str, list[dict[str, str]]] = {}
    for host, container, proto in spec.ports:
        out.setdefault(f"{container}/{proto}", []).append({"HostIp": "", "HostPort": str(host)})
    return out


def differences(attrs: dict[str, Any], spec: ContainerSpec, cl: docker.DockerClient) -> list[str]:
    """How a container differs from its spec (configuration only, not its state)."""
    cfg, host = attrs["Config"], attrs["HostConfig"]
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [])
    env.pop("PATH", None)
    out = []
    if cfg.get("Image") != spec.image:
        out.append("image")
    if tuple(cfg.get("Cmd") or ()) != spec.command:
        out.append("command")
    if env != spec.env:
        out.append("env")
    if (cfg.get("Labels") or {}) != spec.labels:
        out.append("labels")
    if sorted(host.get("Binds") or []) != sorted(f"{s}:{d}:rw" for s, d in spec.binds.items()):
        out.append("binds")
    if _health(cfg.get("Healthcheck")) != _health(spec.healthcheck):
        out.append("healthcheck")
    if host.get("NetworkMode") != "host":
        out.append("network")
    if (host.get("PortBindings") or {}) != port_bindings(spec):
        out.append("ports")
    try:
        if attrs.get("Image") != cl.images.get(spec.image).id:
            out.append("image id")
    except docker.errors.ImageNotFound:
        out.append("image missing")
    return out


def _health(h: dict[str, Any] | None) -> tuple[Any, ...] | None:
    if not h:
        return None
    get = {k.lower(): v for k, v in h.items()}
    return (tuple(get.get("test") or ()), get.get("interval"), get.get("timeout"),
            get.get("retries"))


def _converge_state(cl: docker.DockerClient, c: Any, spec: ContainerSpec) -> None:
    c.reload()
    st = c.attrs["State"]
    if spec.running:
        if st.get("Paused"):
            c.unpause()
        frozen = [p for p in app_pids(c) if state(p) == "T"] if st.get("Running") else []
        if frozen:  # by a drift: thaw, the health check recovers
            signal_each(frozen, signal.SIGCONT)
        elif st.get("Running") and (st.get("Health") or {}).get("Status") == "unhealthy":
            c.restart(timeout=STOP_TIMEOUT)
        elif not st.get("Running"):
            c.start()
    else:
        if not st.get("StartedAt", "").startswith("0001") and not st.get("Running"):
            return
        if not st.get("Running"):
            c.start()  # intentionally stopped containers ran once and exited, as in the soak
        c.stop(timeout=STOP_TIMEOUT)


def app_pids(c: Any) -> list[int]:
    """The container's application: the children of its PID 1, docker-init (create(): init)."""
    init = c.attrs["State"].get("Pid")
    try:
        return [int(p) for p in Path(f"/proc/{init}/task/{init}/children").read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def status(layout: Layout, hs: HostSpec) -> list[dict[str, Any]]:
    """Name, state and health of every container on the host's engine."""
    out = []
    for c in client(layout, hs.name).containers.list(all=True):
        st = c.attrs["State"]
        out.append({"name": c.name, "image": c.attrs["Config"]["Image"], "state": st["Status"],
                    "health": (st.get("Health") or {}).get("Status")})
    return sorted(out, key=lambda x: x["name"])


def settled(layout: Layout, hs: HostSpec) -> list[str]:
    """Containers not yet in their intended state and health (empty when the host is ready)."""
    got = {c["name"]: c for c in status(layout, hs)}
    waiting = []
    for spec in hs.containers:
        c = got.get(spec.name)
        if c is None:
            waiting.append(f"{spec.name} missing")
        elif spec.running and c["state"] != "running" or not spec.running and c["state"] != "exited":
            waiting.append(f"{spec.name} {c['state']}")
        elif spec.running and spec.healthcheck and c["health"] != "healthy":
            waiting.append(f"{spec.name} {c['health']}")
    return waiting
