"""The lab twin's life cycle: up, reset and down.

Whether it is up and where everything is: status.py. The ways into it (exec, ssh):
access.py. What it should be: spec.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from opsverify import ssot as ssot_pkg

from . import hosts, services
from .access import exec_argv, exec_env, write_client_files
from .layout import LabError, Layout, write_private
from .proc import netns_argv, pids_in_netns, read_pid, run, stop
from .seeds import new_secrets
from .spec import World, build
from .status import hosts_up, is_up, status_of, summary

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# ---- the world of a running twin -------------------------------------------------------------

def load_world(layout: Layout, state: dict[str, Any] | None = None) -> World:
    """The world the twin was built as: its SSOT, secrets and clock, from its state file."""
    state = state or layout.read_state()
    if not state.get("secrets"):
        raise LabError(f"no twin {layout.name!r} at {layout.root} (run `ops lab up`)")
    return build(_load_ssot(Path(state["ssot"])), state["secrets"],
                 dt.datetime.fromisoformat(state["now"]))


def _load_ssot(path: Path | None) -> Any:
    try:
        return ssot_pkg.load(path)
    except ssot_pkg.SsotInvalid as exc:
        raise LabError("invalid SSOT:\n" + "\n".join(map(str, exc.problems))) from None


# ---- up --------------------------------------------------------------------------------------

def ssot_digest(root: Path) -> str:
    """A checksum of every SSOT file: a twin built from other content is rebuilt, not reused."""
    h = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".json"):
            h.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes() + b"\0")
    return h.hexdigest()


def up(layout: Layout, ssot_dir: Path | None, say: Say = _quiet,
       fresh: bool = False) -> dict[str, Any]:
    """Build the twin from the SSOT; returns the summary. A healthy twin of the same SSOT is
    converged back to its clean state instead (unless `fresh`); anything else is rebuilt."""
    t0 = time.monotonic()
    ssot = _load_ssot(ssot_dir)
    digest = ssot_digest(ssot.root)
    state = layout.read_state()
    # Reused only when built from this very SSOT directory: reset reads the SSOT from there
    # (a twin left by a clone since deleted is rebuilt).
    same_ssot = state.get("ssot") == str(Path(ssot.root).resolve())
    if not fresh and is_up(layout, state) and state.get("ssot_digest") == digest and same_ssot:
        say("already up from this SSOT: converging it back to its clean state")
        reset(layout, say)
        world = load_world(layout, state)
        return {**summary(layout, world, state), "seconds": round(time.monotonic() - t0, 1),
                "reused": True}
    if layout.root.exists() or layout.netns_path.exists():
        say("cleaning up the previous twin")
        down(layout)
    secrets = new_secrets(ssot)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    world = build(ssot, secrets, now)
    layout.root.mkdir(parents=True, mode=0o700)
    os.chmod(layout.root, 0o700)
    state = {"name": layout.name, "ssot": str(Path(ssot.root).resolve()), "ssot_digest": digest,
             "now": now.isoformat(), "secrets": secrets, "hosts": {},
                             "services": {}, "complete": False}
    _save(layout, state)

    from . import image
    with ThreadPoolExecutor(max_workers=4) as pool:
        tar = pool.submit(image.build_rootfs, layout.image_dir)
        say(f"network namespace {layout.netns}: {len(world.addresses)} addresses on its loopback")
        _netns(layout, world)
        _ssh_client(layout, world)
        hosts.prepare_mountpoints(layout, world)
        for hs in world.hosts.values():
            hosts.write_state_files(layout, hs)
            hosts.host_keys(layout, hs)
            hosts.sshd_config(layout, hs)
            pid = hosts.start_holder(layout, hs)
            hosts.install_clis(layout, pid, hs)
            hosts.sync_files(pid, hs)
            state["hosts"][hs.name] = {"pid": pid}
        _save(layout, state)
        for hs in world.hosts.values():
            state["hosts"][hs.name]["sshd_pid"] = hosts.start_sshd(
                layout, hs, state["hosts"][hs.name]["pid"])
            say(f"host {hs.name} ({hs.host.hostname}): {', '.join(hs.host.addresses)}, sshd, "
                f"{len(hs.mounts)} mounts, {len(hs.files)} config files")
        _save(layout, state)
        docker_hosts = [hs for hs in world.hosts.values() if hs.docker and not hs.shared_engine]
        engines = {hs.name: pool.submit(_engine, layout, hs, state["hosts"][hs.name]["pid"],
                                        tar, say) for hs in docker_hosts}
        common = None
        if any(hs.shared_engine for hs in world.hosts.values()):  # a generated SSOT's
            from . import shared_engine  # synthetic hosts: one engine for them all
            common = pool.submit(shared_engine.start, layout, world, tar, say)
        services.seed_standins(layout, world)
        holders = {n: h["pid"] for n, h in state["hosts"].items()}
        state["services"] = services.start_standins(layout, world, holders)
        state["services"]["prometheus"] = services.start_prometheus(layout, world, holders)
        say("stand-ins: " + ", ".join(n for n in state["services"] if n != "prometheus")
            + f"; prometheus at {world.ssot.prometheus_url}")
        for name, fut in engines.items():
            state["hosts"][name]["dockerd_pid"] = fut.result()
        if common is not None:
            state["engine"] = common.result()
    _save(layout, state)
    state["status"] = status_of(layout, world, state)
    _save(layout, state)
    say("waiting for containers, health checks, stand-ins and scrape targets")
    wait_ready(layout, world, timeout=90)
    state["complete"] = True
    state["up_seconds"] = round(time.monotonic() - t0, 1)
    _save(layout, state)
    return summary(layout, world, state)


def _engine(layout: Layout, hs: Any, holder: int, tar: Any, say: Say) -> int:
    from . import engine
    pid = engine.start_dockerd(layout, hs, holder)
    engine.load_image(layout, hs, tar.result())
    engine.converge(layout, hs)
    running = sum(c.running for c in hs.containers)
    say(f"host {hs.name}: dockerd, {len(hs.containers)} containers "
        f"({running} running, {len(hs.containers) - running} intentionally stopped)")
    return pid


def _netns(layout: Layout, world: World) -> None:
    run(["ip", "netns", "add", layout.netns])
    _addresses(layout, world)


def _addresses(layout: Layout, world: World) -> None:
    """The namespace's loopback up and holding every SSOT address (again, after a hand-made
    `ip addr del`)."""
    inside = netns_argv(layout.netns_path)
    run(inside + ["ip", "link", "set", "lo", "up"])
    have = run(inside + ["ip", "-o", "-4", "addr", "show", "dev", "lo"]).stdout
    for addr in world.addresses:
        if f" {addr}/32 " not in have:
            run(inside + ["ip", "addr", "add", f"{addr}/32", "dev", "lo"])


def _ssh_client(layout: Layout, world: World) -> None:
    """The twin's client key, authorized on every host; ssh_config and known_hosts follow."""
    layout.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"opsverify-lab-{layout.name}",
         "-f", str(layout.identity)])
    shutil.copy(layout.identity.with_suffix(".pub"), layout.ssh_dir / "authorized_keys")


def _save(layout: Layout, state: dict[str, Any]) -> None:
    write_private(layout.state_file, json.dumps(state, indent=1))


# ---- readiness -------------------------------------------------------------------------------

def wait_ready(layout: Layout, world: World, timeout: float) -> None:
    """Until every container is as intended, stand-ins answer and Prometheus scrapes all targets."""
    from . import engine  # imported late: the docker SDK costs a second, status needs none of it
    write_client_files(layout, world)
    deadline = time.monotonic() + timeout
    waiting: list[str] = []
    while time.monotonic() < deadline:
        waiting = [f"{hs.name}: {w}" for hs in world.hosts.values()
                   if hs.docker and not hs.shared_engine for w in engine.settled(layout, hs)]
        if any(hs.shared_engine for hs in world.hosts.values()):
            from . import shared_engine
            waiting += shared_engine.settled(layout, world)
        if not waiting:
            break
        time.sleep(0.5)
    if not waiting:
        left = max(5.0, deadline - time.monotonic())
        proc = subprocess.run(exec_argv(layout, [sys.executable, "-m", "opsverify.lab.ready",
                                                 "--timeout", str(left)]),
                              capture_output=True, text=True, env=exec_env(layout),
                              check=False)
        if proc.returncode:
            waiting = (proc.stdout.strip() or proc.stderr.strip()[-500:]).splitlines()
    if waiting:
        raise LabError("the twin did not settle within "
                       f"{timeout:.0f} s; still waiting for: " + "; ".join(waiting[:8]))


# ---- reset -----------------------------------------------------------------------------------

def reset(layout: Layout, say: Say = _quiet, only: set[str] | None = None) -> None:
    """Converge the twin back to its clean state (`only`: components such as "vm209:files")."""
    state = layout.read_state()
    if not hosts_up(layout, state):
        raise LabError(f"twin {layout.name!r} is not up (run `ops lab up`)")
    world = load_world(layout, state)

    def want(host: str, part: str) -> bool:
        return only is None or f"{host}:{part}" in only or f"*:{part}" in only

    if only is None:
        _addresses(layout, world)
    shared: dict[str, set[str]] = {}  # host -> containers to recreate, on the shared engine
    for name, hs in world.hosts.items():
        holder = state["hosts"][name]["pid"]
        if want(name, "hostname"):
            run(hosts.host_argv(holder) + ["hostname", hs.host.hostname])
        replaced: set[str] = set()
        if want(name, "mounts"):
            hosts.release_hung_mount(layout, holder, name)
            replaced = hosts.converge_mounts(holder, hs)
        if want(name, "files") or replaced:
            hosts.write_state_files(layout, hs)
            hosts.install_clis(layout, holder, hs)
            hosts.sync_files(holder, hs)
        if want(name, "sshd"):
            d = layout.host(name)
            shutil.copy2(d / "pinned_host_key", d / "ssh_host_ed25519_key")
            shutil.copy2(d / "pinned_host_key.pub", d / "ssh_host_ed25519_key.pub")
            state["hosts"][name]["sshd_pid"] = hosts.start_sshd(layout, hs, holder)
        if hs.docker and (want(name, "containers") or replaced):
            from . import engine
            recreate = {c.name for c in hs.containers
                        if any(src.startswith(p + "/") or src == p
                               for src in c.binds for p in replaced)}
            if hs.shared_engine:
                shared[name] = recreate  # all at once, below
            else:
                engine.converge(layout, hs, recreate)
    if shared:
        from . import shared_engine
        shared_engine.reset(layout, world, state, shared)
    if only is None or "*:standins" in only:
        services.restore_standins(layout)
        holders = {n: h["pid"] for n, h in state["hosts"].items()}
        state["services"].update(services.revive(layout, world, holders, state["services"]))
    _save(layout, state)
    say("waiting for the clean state to settle")
    wait_ready(layout, world, timeout=60)


# ---- down ------------------------------------------------------------------------------------

def down(layout: Layout, say: Say = _quiet) -> list[str]:
    """Remove every process, mount, namespace, address, cgroup and file of the twin."""
    leftovers: list[str] = []
    dockerds = [p for p in (read_pid(f) for f in [*layout.root.glob("hosts/*/docker/dockerd.pid"),
                                                  *layout.root.glob("engine/dockerd.pid")])
                if p]
    stop(dockerds, grace=8)  # a clean engine stop removes its containers' cgroups itself
    pids = set(pids_in_netns(layout.netns_path))
    pidfiles = [*layout.pids.glob("*.pid"), *layout.root.glob("hosts/*/*.pid"),
                *layout.root.glob("hosts/*/docker/*.pid"), *layout.root.glob("engine/*.pid")]
    pids |= {p for p in map(read_pid, pidfiles) if p}
    stop(pids, grace=2)
    leftovers += _remove_cgroups(layout)
    leftovers += _unmount_under(layout.root)
    if layout.netns_path.exists():
        run(["ip", "netns", "delete", layout.netns], check=False)
    if layout.netns_path.exists():
        leftovers.append(f"network namespace {layout.netns} could not be deleted")
    hosts.remove_mountpoints(layout)
    if layout.root.exists():
        shutil.rmtree(layout.root, ignore_errors=True)
    for parent in (layout.root.parent, layout.root.parent.parent):
        try:
            parent.rmdir()  # only when empty: another twin may live beside this one
        except OSError:
            pass
    if layout.root.exists():
        leftovers.append(f"{layout.root} could not be removed")
    return leftovers


def _remove_cgroups(layout: Layout) -> list[str]:
    """Container cgroups left by an engine that did not stop cleanly (cgroupfs is global)."""
    left = []
    base = Path("/sys/fs/cgroup")
    for top in sorted(base.glob(f"*/{layout.cgroup_parent}-*")) + \
            sorted(base.glob(f"{layout.cgroup_parent}-*")):
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            _rmdir(d, left)
        _rmdir(top, left)
    return left


def _rmdir(d: Path, left: list[str]) -> None:
    try:
        d.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        left.append(f"cgroup {d}: {exc.strerror}")


def _unmount_under(root: Path) -> list[str]:
    """Mounts below the state directory in this mount namespace (none, unless a crash left one)."""
    prefix = str(root) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix) or point == str(root):
            points.append(point)
    left = []
    for point in sorted(points, key=len, reverse=True):
        if run(["umount", "-l", point], check=False).returncode:
            left.append(f"mount {point} could not be removed")
    return left

