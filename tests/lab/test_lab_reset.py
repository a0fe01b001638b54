"""`ops lab reset` puts back every surface the twin owns after tampering by hand (not through
`ops lab drift`): hostnames, files, the files bind-mounted into a host, databases, mounts,
containers, stand-in state and processes, scrape targets and the namespace's addresses."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from opsverify.lab.proc import alive, host_argv, netns_argv, run
from opsverify.lab.snapshot import diff, snapshot


def as_root(lab: Any, host: str, script: str) -> None:
    """A shell command run as root inside a twin host, as a person at its console would."""
    run(host_argv(lab.holder(host)) + ["sh", "-ec", script])


def edit_state(lab: Any, standin: str, change: Any) -> None:
    path = lab.layout.standins / f"{standin}.json"
    data = json.loads(path.read_text())
    change(data)
    tmp = path.with_name(path.name + ".hand")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # the stand-in reloads a replaced file


def tamper(lab: Any) -> None:
    as_root(lab, "vm210", "hostname media-stack")
    as_root(lab, "vm209", "echo '192.168.1.184:/old /mnt/old nfs4 rw 0 0' >> /etc/fstab")
    as_root(lab, "vm209", "echo 'opsverify-extra:x:4242:4242::/:/bin/sh' >> /etc/passwd")
    as_root(lab, "vm209", "sed -i 's/<Port>/<Port>1/' /mnt/docker/radarr/config.xml; "
                          "rm /mnt/docker/sonarr/config.xml; echo stray > /mnt/docker/stray.txt")
    as_root(lab, "vm209", "sqlite3 /mnt/docker/prowlarr/prowlarr.db "
                          "\"UPDATE Applications SET Name = 'hand-made' WHERE Id = 1\"")
    as_root(lab, "vm210", "echo '# edited by hand' >> /opt/stacks/streaming-stack/docker-compose.yml")
    as_root(lab, "vm210", "mount -t tmpfs -o remount,rw 192.168.1.184:/media /mnt/media")
    as_root(lab, "vm210", "docker stop -t 1 jellyfin >/dev/null")
    as_root(lab, "vm209", "docker rm -f radarr >/dev/null")
    edit_state(lab, "proxmox", lambda d: d["vms"]["210"]["config"].update(onboot=0))
    edit_state(lab, "infisical", lambda d: [env.pop(next(iter(env)))
                                            for env in d["secrets"].values()])
    prom = lab.layout.root / "prometheus" / "prometheus.yml"
    prom.write_text(prom.read_text().replace(":9100\n", ":9101\n", 1))
    os.kill(lab.state["services"]["prometheus"], signal.SIGHUP)
    cloudflare = lab.state["services"]["cloudflare"]
    os.kill(cloudflare, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(cloudflare) and time.monotonic() < deadline:
        time.sleep(0.05)
    address = lab.status["hosts"]["vm210"]["addresses"][0]
    run(netns_argv(lab.layout.netns_path) + ["ip", "addr", "del", f"{address}/32", "dev", "lo"])


def test_reset_restores_every_surface_tampered_by_hand(lab: Any) -> None:
    tamper(lab)
    changed = diff(lab.clean, snapshot(lab.layout))
    for surface in ("/hostname", "/etc/fstab", "state_files/passwd", "radarr/config.xml",
                    "sonarr/config.xml", "stray.txt", "prowlarr.db", "docker-compose.yml",
                    "/mounts//mnt/media", "containers/jellyfin", "containers/radarr",
                    "/standins/proxmox", "/standins/infisical", "/prometheus_yml",
                    "/services:", "/addresses:"):
        assert any(surface in line for line in changed), (surface, changed)

    lab.ops("lab", "reset", timeout=240)

    assert diff(lab.clean, snapshot(lab.layout)) == []
    proc = lab.ops("lab", "exec", "--", "ops", "verify", check=False, timeout=300)
    # every gate passed but the SSOT's planned items, which are SKIPs with their reason
    summary = re.search(r"ops verify: (\d+)/(\d+) PASS(?:, (\d+) SKIP)? \(", proc.stdout)
    assert proc.returncode == 0 and summary, proc.stdout[-2000:]
    assert int(summary[1]) + int(summary[3] or 0) == int(summary[2]), proc.stdout[-2000:]


def test_exec_and_ssh_find_this_checkouts_ops_without_an_activated_venv(lab: Any) -> None:
    system = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    own = Path(sys.executable).parent
    proc = lab.ops("lab", "exec", "--", "sh", "-c", "command -v ops", env=system)
    assert Path(proc.stdout.strip()) == own / "ops"
    proc = lab.ops("lab", "ssh", "vm210", "--", "cd / && command -v ops", env=system)
    assert Path(proc.stdout.strip()) == own / "ops"
