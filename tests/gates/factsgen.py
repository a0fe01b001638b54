"""Facts consistent with an SSOT, in exactly the shapes of the facts contract; and a gate runner.

clean_facts(ssot) is what a verifier would collect from a homelab that matches its SSOT.
Drift tests mutate one fact of it, write it with write_facts() and run the gates on it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsverify.facts import contract
from opsverify.families.values import canonical
from opsverify.ssot.model import Ssot

ROOT = Path(__file__).resolve().parents[2]
Facts = dict[str, dict[str, Any]]
# The clean twin as of a day inside VM 201's hold, so "stopped, not yet destroyed" is clean.
BEFORE_HOLD = "2026-02-11T12:00:00Z"
AFTER_HOLD = "2026-03-01T00:00:00Z"


def _root_fs() -> list[dict[str, Any]]:
    return [{"source": "/dev/sda1", "target": "/", "fstype": "ext4",
             "options": ["rw", "relatime", "errors=remount-ro"]}]


def _nfs_options(mode: str, server: str) -> list[str]:
    return [mode, "relatime", "vers=4.2", "rsize=1048576", "wsize=1048576", "namlen=255", "hard",
            "proto=tcp", "timeo=600", "retrans=2", "sec=sys", "local_lock=none", f"addr={server}"]


def host_facts(ssot: Ssot, name: str) -> dict[str, Any]:
    """One host's facts: everything its gates read, all as the SSOT says."""
    h = ssot.hosts[name]
    mounts = [m for m in ssot.mounts if m.host == name]
    server = ssot.hosts[ssot.mounts[0].server].lan_ip if ssot.mounts else ""
    facts: dict[str, Any] = {
        "hostname": h.hostname,
        "tailscale": {"ok": bool(h.tailscale_ip), "backend_state": "Running" if h.tailscale_ip
                      else None, "ips": [h.tailscale_ip, "fd7a:115c:a1e0::6e39:de61"]
                      if h.tailscale_ip else [], "online": True if h.tailscale_ip else None,
                      "error": None if h.tailscale_ip else "tailscale: command not found"},
        "mounts": _root_fs() + [{"source": m.source, "target": m.path, "fstype": m.fstype,
                                 "options": _nfs_options(m.mode, server)} for m in mounts],
        "automounts": {}, "fstab_errors": [],
        "fstab": [{"source": "UUID=d3a8f783-df75-4dc8-9163-975a891052c0", "target": "/",
                   "fstype": "ext4", "options": ["errors=remount-ro"], "line": 2}]
        + [{"source": m.source, "target": m.path, "fstype": m.fstype,
            "options": [m.mode, "vers=4.2", "_netdev", "nofail"], "line": 3 + i}
           for i, m in enumerate(mounts)],
        "docker": {"ok": True, "error": None, "now": "2026-02-11T12:00:00Z", "containers": [
            _container(c) for c in ssot.containers if c.host == name]},
        "stacks": {st.name: _stack(ssot, st.name) for st in ssot.stacks_on(name)},
        "stale_refs": [],
        "scan": {"roots": sorted({r for st in ssot.stacks_on(name) for r in st.config_roots}),
                 "files": 40, "bytes": 123456, "skipped": []},
        "config": {c.name: {"file": c.file, "ok": True, "error": None,
                            # `when: configured` and not configured yet (crosswatch: P3 "Empty
                            # config"): the keys are there, empty
                            "values": {k: [""] if c.when else [as_read(v, c.format)]
                                       for k, v in c.keys.items()}}
                   for c in ssot.config_checks if c.host == name},
        "errors": {},
        "duration_s": 0.4,
        # the same GETs from the host itself, without credentials (agent/probes.py)
        "probes": {p.name: [_host_probe(ssot, p)] for p in ssot.probes if p.host == name},
    }
    if ssot.proxmox_host and ssot.proxmox_host.name == name:
        pools = ["rpool", "rpool/ROOT", "tank", "tank/docker", "tank/docker/download-stack",
                 "tank/docker/streaming-stack"]
        facts["zfs"] = {"ok": True, "error": None, "datasets": sorted(
            {*pools, *(ds for d in ssot.decommissions for ds in d.datasets)})}
    return facts


def _host_probe(ssot: Ssot, p: Any) -> dict[str, Any]:
    """A probe asked from its host at its own address: 401 without the key it needs."""
    c = ssot.container(p.container)
    query = "&".join(f"{k}={v}" for k, v in p.query.items())
    return {"url": f"http://{ssot.hosts[p.host].vantage_ip}:{c.ports[0].host}{p.path}"
                   + (f"?{query}" if query else ""),
            "status": 401 if "header" in p.auth else p.expect.get("status", 200),
            "error": None}


def as_read(value: Any, fmt: str) -> Any:
    """A value as a config reader returns it: XML text is always a string ("true", "8096")."""
    return canonical(value) if fmt == "xml" else value


def _container(c: Any) -> dict[str, Any]:
    running = c.state == "running"
    return {"name": c.name, "id": hashlib.sha256(c.ref.encode()).hexdigest()[:12], "image": c.image,
            "state": "running" if running else "exited", "restarting": False,
            "restart_count": 0, "started_at": "2026-02-10T21:00:00.000000000Z",
            "finished_at": "0001-01-01T00:00:00Z" if running else "2026-02-10T09:00:00Z",
            "has_healthcheck": c.healthcheck,
            "health": ("healthy" if running else "unhealthy") if c.healthcheck else None,
            "env": dict(c.env), "network_mode": "download-stack_default"
            if c.stack == "download-stack" else "streaming-stack_default",
            "restart_policy": "unless-stopped",
            "ports_configured": [{"container_port": p.container, "proto": p.protocol,
                                  "host_ip": "", "host_port": p.host} for p in c.ports],
            # bound on IPv4 and IPv6 while running, as dockerd reports them
            "ports_published": [{"container_port": p.container, "proto": p.protocol,
                                 "host_ip": ip, "host_port": p.host}
                                for p in c.ports for ip in ("0.0.0.0", "::")] if running else []}


def _stack(ssot: Ssot, stack: str) -> dict[str, Any]:
    st = ssot.stacks[stack]
    keys = [k for sp in ssot.secret_paths if sp.stack == stack for k in sp.keys]
    generated = [g for g in ssot.generated_env if g.stack == stack]
    return {"directory": st.directory, "exists": True,
            "scanned": sorted({st.directory, *st.config_roots}),
            "plaintext_files": [{"path": g.path, "keys": [], "mode": g.mode} for g in generated],
            "generated": [{"path": g.path, "unit": g.unit, "exists": True, "mode": g.mode,
                           "uid": 0, "world_readable": False, "regular": True,
                           "git": {"repo": None, "tracked": False, "error": None},
                           "generator": {"file": f"/etc/systemd/system/{g.unit}", "dropins": [],
                                         "writes_file": True, "runs_infisical": True,
                                         "error": None}} for g in generated],
            "compose": {"path": st.compose_path, "exists": True, "error": None,
                        "secrets": {k: {"kind": "reference", "line": 10 + i}
                                    for i, k in enumerate(keys)}}}


def clean_facts(ssot: Ssot, after_hold: bool = False) -> Facts:
    """Facts of every source, consistent with the SSOT: every gate passes on them.

    Decommissioned VMs are stopped and kept (inside their hold), or destroyed with their
    datasets (`after_hold`).
    """
    out: Facts = {f"host:{n}": host_facts(ssot, n) for n in ssot.active_hosts}
    cf = ssot.cloudflare
    out["cloudflare"] = {
        "zone": {"id": "023e105f4ecef8ad9ca31a8372d0c353", "name": cf["zone"],
                 "account_id": "699d98642c564d2e855e9661899b7252"},
        "tunnel": {"id": cf["tunnel_id"], "version": 82, "ingress": [
            {"hostname": r.hostname, "service": r.service, "path": None} for r in ssot.routes]
            + [{"hostname": None, "service": cf["catch_all"], "path": None}]},
        "dns": [{"name": cf["zone"], "type": "A", "content": "192.0.2.10", "proxied": True}]
        + [{"name": r.hostname, "type": "CNAME", "content": f"{cf['tunnel_id']}.cfargotunnel.com",
            "proxied": True} for r in ssot.routes],
    }
    out["infisical"] = {"paths": {sp.path: {"keys": sorted({*sp.keys, "UNRELATED_KEY"})}
                                  for sp in ssot.secret_paths}}
    vms = {str(h.vmid): {"exists": True, "status": "running", "qmpstatus": "running",
                         "onboot": 1, "name": h.hostname}
           for h in ssot.hosts.values() if h.vmid and h.active}
    for d in ssot.decommissions:
        vms[str(d.vmid)] = {"exists": True, "status": "stopped", "qmpstatus": "stopped",
                            "onboot": None, "name": ssot.hosts[d.host].hostname}
    if after_hold:
        for d in ssot.decommissions:
            vms[str(d.vmid)] = {"exists": False, "status": None, "qmpstatus": None,
                                "onboot": None, "name": None}
            pve = out.get(f"host:{ssot.proxmox_host.name}") if ssot.proxmox_host else None
            if pve:
                pve["zfs"]["datasets"] = [x for x in pve["zfs"]["datasets"]
                                          if x not in d.datasets]
    out["proxmox"] = {"node": next(iter(ssot.decommissions)).node if ssot.decommissions
                      else "pve", "vms": vms}
    out["prometheus"] = {
        "targets": [{"job": "prometheus", "instance": "localhost:9090", "health": "up",
                     "scrape_url": "http://localhost:9090/metrics", "last_error": ""}]
        + [{"job": t.job, "instance": t.instance, "health": "up",
            "scrape_url": f"http://{t.instance}/metrics", "last_error": ""}
           for t in ssot.scrape_targets],
        "rules": {r.name: {"ok": True, "error": None, "values": [_holding(r.op, r.threshold)]}
                  for r in ssot.rules},
    }
    out["http"] = {
        "probes": {p.name: _probe(p) for p in ssot.probes},
        "routes": {r.hostname: {"url": f"https://{r.hostname}/", "status": r.status,
                                "location": r.location, "error": None, "elapsed_s": 0.05}
                   for r in ssot.routes},
    }
    return checked(out)


def checked(facts: Facts) -> Facts:
    """facts, once every document is known to keep the facts contract (opsverify/facts/
    contract.py): a generator that drifts from what collectors produce fails here, loudly,
    not as a gate outcome that happens to pass."""
    broken = {s: p for s, d in facts.items() if (p := contract.problem(s, d))}
    if broken:
        raise AssertionError("factsgen: facts break the contract: " + "; ".join(
            f"{s}: {p}" for s, p in sorted(broken.items())))
    return facts


def _holding(op: str, threshold: float) -> float:
    """A value that satisfies `op threshold`."""
    return {"<": threshold / 2 if threshold > 0 else threshold - 1, "<=": threshold,
            ">": threshold * 2 + 1, ">=": threshold, "==": threshold,
            "!=": threshold + 1}[op]


def _probe(p: Any) -> dict[str, Any]:
    e = p.expect
    return {"url": p.url, "status": e.get("status", 200), "error": None, "elapsed_s": 0.02,
            "body": e.get("body"), "json": dict(e.get("json") or {}),
            "json_keys": {k: True for k in e.get("json_keys") or []}}


def write_facts(facts: Facts, directory: Path) -> Path:
    """Write facts as --save-facts does: DIR/<source>.json with ':' replaced by '-'."""
    directory.mkdir(parents=True, exist_ok=True)
    for source, body in facts.items():
        (directory / (source.replace(":", "-") + ".json")).write_text(json.dumps(body, indent=1))
    return directory


@dataclass
class Outcome:
    """One gate test's result as JUnit XML reports it."""

    status: str  # passed | failed | error | skipped
    message: str = ""


@dataclass
class Run:
    """The outcomes of one `pytest gates/` run, by `module::test[id]`, and what it printed."""

    outcomes: dict[str, Outcome]
    output: str = field(repr=False, default="")

    def failing(self) -> dict[str, str]:
        """Tests that did not pass; a SKIP (a planned item, an unconfigured reference) is not."""
        return {k: o.message for k, o in self.outcomes.items()
                if o.status not in ("passed", "skipped")}

    def skipped(self) -> dict[str, str]:
        return {k: o.message for k, o in self.outcomes.items() if o.status == "skipped"}


CREDENTIALS = ("CLOUDFLARE_API_TOKEN", "INFISICAL_CLIENT_ID", "INFISICAL_CLIENT_SECRET",
               "INFISICAL_TOKEN", "PROXMOX_API_TOKEN")


def gate_env(**env: str) -> dict[str, str]:
    """The environment of a gate run: no settings or credentials of ours, the network guard on."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("OPSVERIFY_") and k not in CREDENTIALS}
    base.update({"OPSVERIFY_NETGUARD": "1", "OPSVERIFY_NOW": BEFORE_HOLD}, **env)
    return base


def run_many(jobs: dict[str, tuple[Facts, dict[str, str]]], workdir: Path,
             workers: int = 2, args: dict[str, list[str]] | None = None) -> dict[str, Run]:
    """Run the gates once per job (facts, env overrides), spread over worker processes.

    args: more pytest arguments for some jobs, by job name.
    """
    dirs = {}
    for i, (name, (facts, env)) in enumerate(jobs.items()):
        job = workdir / f"job{i:03d}"
        write_facts(facts, job / "facts")
        (job / "env.json").write_text(json.dumps(env))
        (job / "args.json").write_text(json.dumps((args or {}).get(name, [])))
        dirs[name] = job
    batches = [list(dirs.values())[w::workers] for w in range(workers)]
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).with_name("gaterun.py")),
                               *map(str, batch)], cwd=ROOT, env=gate_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for batch in batches if batch]
    crashes = "".join(p.communicate(timeout=300)[0] for p in procs)
    return {name: _result(job, crashes) for name, job in dirs.items()}


def _result(job: Path, crashes: str) -> Run:
    junit, output = job / "junit.xml", job / "output.txt"
    text = output.read_text() if output.exists() else crashes
    return Run(parse_junit(junit) if junit.exists() else {}, text)


def run_gates(facts: Facts, env: dict[str, str] | None = None) -> Run:
    """Run the gates once on these facts and wait for the result."""
    with tempfile.TemporaryDirectory(prefix="opsverify-gates-") as tmp:
        return run_many({"run": (facts, env or {})}, Path(tmp), workers=1)["run"]


def parse_junit(path: Path) -> dict[str, Outcome]:
    """Per-test outcomes from a JUnit XML file, keyed `test_mounts::test_mount[vm210:/mnt/media]`."""
    out: dict[str, Outcome] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        key = f"{module}::{case.get('name')}"
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                status, message = {"failure": "failed"}.get(tag, tag), node.get("message") or ""
                if "full report in element text" in message:  # pytest >= 9.2 truncates it
                    raised = [ln[1:].strip() for ln in (node.text or "").splitlines()
                              if ln.startswith("E ")]
                    message = raised[-1] if raised else message
                break
        out[key] = Outcome(status, message)
    return out


def mutated(facts: Facts, change: Callable[[Facts], Any]) -> Facts:
    """A deep copy of facts with one change applied."""
    out = copy.deepcopy(facts)
    change(out)
    return out


def main(argv: list[str]) -> int:
    """`python tests/gates/factsgen.py DIR`: write clean facts for the shipped SSOT and today."""
    from datetime import UTC, datetime

    from opsverify.families.decom import when
    from opsverify.ssot import load

    if len(argv) != 1:
        print("usage: factsgen.py DIR", file=sys.stderr)
        return 2
    ssot = load()
    now = datetime.now(UTC)
    after = any(now >= when(d.hold_until) for d in ssot.decommissions)
    write_facts(clean_facts(ssot, after_hold=after), Path(argv[0]))
    print(f"clean facts ({'after' if after else 'inside'} the decommission hold) in {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
