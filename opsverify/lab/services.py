"""Services of the twin that are not containers: the HTTP stand-ins and Prometheus."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

from . import pki
from .layout import LabError, Layout, write_private
from .prereq import which
from .proc import alive, host_argv, netns_argv, spawn, wait_for_line
from .seeds import standin_seeds
from .spec import World

STANDINS = ("cloudflare", "infisical", "proxmox")


def issue_certs(layout: Layout, world: World) -> dict[str, tuple[Path, Path]]:
    """The twin CA and a certificate for each HTTPS stand-in, for its names and address."""
    pki.make_ca(layout.pki_dir)
    out = {}
    for key, e in world.endpoints.items():
        if key == "prometheus":
            continue
        out[key] = pki.issue(layout.pki_dir, key, [n for n in e.names if n], [e.address])
    return out


def seed_standins(layout: Layout, world: World) -> None:
    """Write each stand-in's clean state (kept for reset) and its live copy."""
    for name, state in standin_seeds(world).items():
        clean = layout.standins / f"{name}.clean.json"
        write_private(clean, json.dumps(state, indent=1, sort_keys=True))
        write_private(layout.standins / f"{name}.json", clean.read_bytes())


def restore_standins(layout: Layout) -> None:
    """Put every stand-in back to its clean state (the servers reload a replaced file)."""
    for clean in sorted(layout.standins.glob("*.clean.json")):
        live = layout.standins / clean.name.replace(".clean.json", ".json")
        if not live.exists() or live.read_bytes() != clean.read_bytes():
            write_private(live, clean.read_bytes())


def revive(layout: Layout, world: World, holders: dict[str, int],
           pids: dict[str, int]) -> dict[str, int]:
    """Start again each stand-in or Prometheus that is no longer running; point a running
    Prometheus back at the SSOT's scrape targets (SIGHUP reloads its configuration)."""
    dead = {name for name, pid in pids.items() if not alive(pid)}
    started = start_standins(layout, world, holders, only=dead) if dead - {"prometheus"} else {}
    config = layout.root / "prometheus" / "prometheus.yml"
    if "prometheus" in dead:
        started["prometheus"] = start_prometheus(layout, world, holders)
    elif "prometheus" in pids and config.read_text() != world.prometheus_yml:
        config.write_text(world.prometheus_yml)
        os.kill(pids["prometheus"], signal.SIGHUP)
    return started


def start_standins(layout: Layout, world: World, holders: dict[str, int],
                   only: set[str] | None = None) -> dict[str, int]:
    """Start the Cloudflare, Infisical and Proxmox stand-ins in the twin (or `only` those);
    wait until they listen."""
    certs = issue_certs(layout, world)
    e = world.endpoints
    started = {}
    for name in STANDINS:
        if name not in e or only is not None and name not in only:
            continue
        cert, key = certs[name]
        argv = [sys.executable, "-m", f"opsverify.lab.standins.{name}",
                "--state", str(layout.standins / f"{name}.json"),
                "--listen", f"{e[name].address}:{e[name].port}",
                "--tls-cert", str(cert), "--tls-key", str(key)]
        if name == "cloudflare":
            edge_cert, edge_key = certs["edge"]
            argv += ["--edge-listen", f"{e['edge'].address}:{e['edge'].port}",
                     "--edge-tls-cert", str(edge_cert), "--edge-tls-key", str(edge_key)]
        owner = e[name].host
        prefix = host_argv(holders[owner]) if owner in holders else netns_argv(layout.netns_path)
        log = layout.logs / f"{name}.log"
        log.unlink(missing_ok=True)
        started[name] = spawn(prefix + argv, log, layout.pids / f"{name}.pid")
    for name, pid in started.items():
        wait_for_line(layout.logs / f"{name}.log", "ready", pid, timeout=20)
    return started


def start_prometheus(layout: Layout, world: World, holders: dict[str, int]) -> int:
    """Debian's Prometheus at the SSOT's URL, scraping the SSOT's targets."""
    binary = which("prometheus")
    if not binary:
        raise LabError("prometheus not found: apt-get install prometheus")
    d = layout.root / "prometheus"
    shutil.rmtree(d / "data", ignore_errors=True)
    (d / "data").mkdir(parents=True)
    (d / "prometheus.yml").write_text(world.prometheus_yml)
    e = world.endpoints["prometheus"]
    argv = [binary, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
            f"--web.listen-address={e.address}:{e.port}", "--storage.tsdb.retention.time=2h",
            "--log.level=warn"]
    prefix = host_argv(holders[e.host]) if e.host in holders else netns_argv(layout.netns_path)
    return spawn(prefix + argv, layout.logs / "prometheus.log", layout.pids / "prometheus.pid")
