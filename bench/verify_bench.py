"""Wall time of a full `ops verify` on the lab twin beside its floor, measured in the same run.

floor = pytest start-up (collecting every gate) + one SSH round trip per host, all hosts in
parallel + the slowest HTTP probe or public route, all at once. The goal (issue 15): full ≤ 1.3 ×
floor.

    sudo .venv/bin/python bench/verify_bench.py [--runs 5]     (re-runs itself inside the twin)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _plugins_off() -> list[str]:
    from opsverify.commands.verify import UNUSED_PLUGINS  # the same start-up as `ops verify`

    return [a for name in UNUSED_PLUGINS for a in ("-p", f"no:{name}")]


PLUGINS_OFF = _plugins_off()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(*argv: str) -> None:
    subprocess.run(argv, cwd=REPO, check=False, capture_output=True)


def ssh_round_trip(host) -> float:
    import paramiko

    from opsverify.facts.ssh_transport import connect_socket

    cfg = paramiko.SSHConfig.from_path(os.environ["OPSVERIFY_SSH_CONFIG"]).lookup(host.ssh_address)
    client = paramiko.SSHClient()
    client.load_host_keys(os.path.expanduser(cfg["userknownhostsfile"].split()[0]))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    t0 = time.perf_counter()
    # the collector's own socket (TCP_NODELAY, no delayed ACK): the floor is the best login
    sock = connect_socket(host.ssh_address, host.ssh_port, 10)
    client.connect(host.ssh_address, port=host.ssh_port, username=host.ssh_user, sock=sock,
                   key_filename=cfg["identityfile"][0], look_for_keys=False, allow_agent=False,
                   timeout=10)
    _, out, _ = client.exec_command("true", timeout=10)
    out.channel.recv_exit_status()
    elapsed = time.perf_counter() - t0
    client.close()
    return elapsed


def slowest_http(ssot) -> float:
    import httpx

    from opsverify.facts.api_client import tls_verify
    from opsverify.settings import Settings

    urls = [p.url for p in ssot.probes] + [f"https://{r.hostname}/" for r in ssot.routes]
    with httpx.Client(verify=tls_verify(Settings.from_env()), follow_redirects=False,
                      timeout=10, trust_env=False) as client:
        def get(url: str) -> float:
            return timed(lambda: client.get(url))
        with ThreadPoolExecutor(len(urls)) as pool:
            return max(pool.map(get, urls))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from opsverify import netguard
    if not netguard.in_private_namespace():
        ops = [sys.executable, "-m", "opsverify.cli"]
        return subprocess.call([*ops, "lab", "exec", "--", sys.executable, __file__,
                                "--runs", str(args.runs)], cwd=REPO)
    from opsverify.ssot import load

    ssot = load()
    hosts = list(ssot.active_hosts.values())
    full, startup, ssh, http = [], [], [], []
    for _ in range(args.runs):
        full.append(timed(lambda: run(sys.executable, "-m", "opsverify.cli", "verify", "-q")))
        startup.append(timed(lambda: run(sys.executable, "-m", "pytest", "gates/",
                                         "--collect-only", "-q", *PLUGINS_OFF)))
        with ThreadPoolExecutor(len(hosts)) as pool:
            ssh.append(max(pool.map(ssh_round_trip, hosts)))
        http.append(slowest_http(ssot))
    med = statistics.median
    floor = med(startup) + med(ssh) + med(http)
    print(f"ops verify, full suite on the twin (median of {args.runs}): {med(full):.2f} s")
    print(f"  floor {floor:.2f} s = pytest start-up {med(startup):.2f} s"
          f" + SSH round trip, {len(hosts)} hosts in parallel {med(ssh):.2f} s"
          f" + slowest HTTP probe/route {med(http):.2f} s")
    print(f"  ratio {med(full) / floor:.2f} x floor (goal <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
