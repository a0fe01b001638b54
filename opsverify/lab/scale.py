"""Hints of a generated SSOT (SSOT/lab-twin.json) that make a twin of 100 hosts fit one machine.

opsverify/lab/generate.py writes them beside the YAML; the SSOT loader never reads them, and an
SSOT without the file (the shipped one) builds exactly the twin it always did. What they change,
for the hosts they name only, and why:

- shared_engine: these hosts' containers run on one shared dockerd (shared_engine.py), each host
  answering its own containers through its own socket path; 100 engines would not fit.
- health_interval_s: their Docker health checks run this often (the 3-host twin: 5 s). Each
  check is a `docker exec` costing ~40 ms of CPU; 250 containers at 5 s would take more than a
  core. The first check comes one interval after the start, so `up` waits that long.
- node_exporter_collectors: their node-exporters run only these collectors (a full scrape of
  every default collector costs ~20 ms of CPU, 100 of them every 2 s a core).
- scrape_jobs: Prometheus scrape interval per job (the synthetic hosts' job: 10 s, not 2 s).
- secret_aliases: a synthetic VM's secret key (RADARR_API_KEY_VM301: a key name lives at one
  Infisical path only) gets the value of its template's key, because the twin's app profiles
  find an app's API key by the container's name.
- plant: files with a retired address in a few hosts' config roots (stale drift, by design).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from .layout import LabError

HINTS_FILE = "lab-twin.json"
FORMAT = "opsverify-lab-hints/1"
NODE_EXPORTER = "/bin/node_exporter"


def hints(root: str | Path) -> dict[str, Any]:
    """The hints of the SSOT at root ({} when it has none)."""
    path = Path(root) / HINTS_FILE
    try:
        out = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: unreadable twin hints ({exc})") from None
    if not isinstance(out, dict) or out.get("format") != FORMAT:
        raise LabError(f"{path}: not {FORMAT} twin hints")
    return out


def secret_aliases(root: str | Path, secrets: dict[str, str]) -> dict[str, str]:
    """{alias: value} for the aliased keys whose template key has a value."""
    aliases = hints(root).get("secret_aliases") or {}
    return {alias: secrets[key] for alias, key in aliases.items() if key in secrets}


def apply(world: Any) -> None:
    """Change the world of a generated SSOT as its hints say (nothing without hints)."""
    from .compose import compose_file as _compose

    h = hints(world.ssot.root)
    if not h:
        return
    interval = int(float(h.get("health_interval_s", 5)) * 1e9)
    collectors = h.get("node_exporter_collectors") or []
    for name in h.get("shared_engine") or []:
        hs = world.hosts.get(name)
        if hs is None:
            continue
        hs.shared_engine = True
        hs.containers = [_light(c, interval, collectors) for c in hs.containers]
        for st in world.ssot.stacks_on(name):  # the compose file says what the engine runs
            hs.files[st.compose_path] = _compose(
                st.name, [c for c in hs.containers if c.stack == st.name])
    for p in h.get("plant") or []:
        hs = world.hosts.get(p["host"])
        if hs is not None:
            hs.files[p["file"]] = p["content"].encode()
            hs.dirs = sorted({*hs.dirs, str(Path(p["file"]).parent)})
    jobs = h.get("scrape_jobs") or {}
    if jobs:
        world.prometheus_yml = _scrape_jobs(world.prometheus_yml, jobs)


def _light(c: Any, interval: int, collectors: list[str]) -> Any:
    health = {**c.healthcheck, "interval": interval} if c.healthcheck else None
    command = c.command
    if collectors and command and command[0] == NODE_EXPORTER:
        command = (command[0], "--collector.disable-defaults",
                   *(f"--collector.{x}" for x in collectors), *command[1:])
    return dataclasses.replace(c, healthcheck=health, command=tuple(command))


def _scrape_jobs(text: str, jobs: dict[str, float]) -> str:
    head = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    config = yaml.safe_load(text)
    for job in config.get("scrape_configs") or []:
        if job["job_name"] in jobs:
            job["scrape_interval"] = f"{int(jobs[job['job_name']])}s"
    return head + yaml.safe_dump(config, sort_keys=False)
