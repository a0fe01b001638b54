"""Host fact collection: what one host costs, and where the time goes. Prints figures only.

    python bench/facts_bench.py            (root: starts a throwaway sshd on 127.0.0.1)

- the fact script alone (the exact host command, run here through sh), and its scan rate
- one host over loopback sshd through testinfra's paramiko:// backend (the verifier's path)
- the same command through testinfra's ssh:// backend, cold and with a warm ControlPath
- a bare `ssh true` login, the floor any transport pays on this host (its rc files included)
Medians of 5.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opsverify.facts import commands
from opsverify.facts.hosts import collect
from tests.facts.test_host_collect import Sshd, params

RUNS = 5


def median(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def big_tree(root: Path) -> dict:
    """~2000 small config files and a 20 MB SQLite database holding one stale address."""
    p = params(root)
    stack = Path(p["config_roots"][0])
    for i in range(2000):
        d = stack / f"app{i % 40}"
        d.mkdir(exist_ok=True)
        (d / f"conf{i}.xml").write_text(f"<Config><Url>http://10.0.{i % 250}.1:80</Url></Config>\n"
                                        * 20)
    con = sqlite3.connect(stack / "app.db")
    con.execute("CREATE TABLE History (Id INTEGER PRIMARY KEY, Data TEXT, Blob BLOB)")
    con.executemany("INSERT INTO History (Data, Blob) VALUES (?, ?)",
                    [(f"event {i} from http://10.1.2.3:{i}" + "x" * 150, os.urandom(32))
                     for i in range(100_000)])
    con.execute("UPDATE History SET Data = 'http://100.117.1.53:7878' WHERE Id = 77777")
    con.commit()
    con.close()
    return p


def script_alone(p: dict) -> tuple[float, dict]:
    command = commands.facts_command(commands.script_payload(), {**p, "budget_s": 60}, 90)
    out: dict = {}

    def run() -> None:
        proc = subprocess.run(["sh", "-c", command], capture_output=True, check=True)
        text = proc.stdout.decode()
        import json
        out.update(json.loads(text[text.rindex(commands.SENTINEL) + len(commands.SENTINEL):]))

    return median(run), out


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("facts_bench: run as root (it starts sshd on 127.0.0.1)")
    print(f"facts bench: medians of {RUNS}; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores")
    payload = commands.script_payload()
    source = sum(map(len, commands.script_modules(payload).values()))
    print(f"  script payload: {len(payload)} B base64 ({source} B of source)")

    with tempfile.TemporaryDirectory() as tmp:
        small = params(Path(tmp))
        t, _ = script_alone(small)
        print(f"  fact script alone, small tree:          {t * 1000:7.1f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        p = big_tree(Path(tmp))
        t, facts = script_alone(p)
        scan = facts["scan"]
        print(f"  fact script alone, {scan['files']} files / {scan['bytes'] / 1e6:.1f} MB: "
              f"{t * 1000:7.1f} ms ({scan['bytes'] / 1e6 / t:.0f} MB/s, "
              f"{len(facts['stale_refs'])} stale ref, complete={scan['complete']})")

    with tempfile.TemporaryDirectory() as tmp:
        sshd = Sshd(Path(tmp)).start()
        try:
            p = params(Path(tmp))
            settings = sshd.settings()
            last: dict = {}
            t = median(lambda: last.update(collect(sshd.target, p, settings)))
            tr = last["transport"]
            print(f"  one host, paramiko:// over loopback:    {t * 1000:7.1f} ms "
                  f"(login {tr['connect_s'] * 1000:.0f} ms, command {tr['command_s'] * 1000:.0f}"
                  f" ms, script {last['remote_s'] * 1000:.0f} ms)")
            ssh = ["ssh", "-F", str(sshd.ssh_config), "-o", "BatchMode=yes", "127.0.0.1"]
            t = median(lambda: subprocess.run([*ssh, "true"], check=True))
            print(f"  bare `ssh true` login (floor):          {t * 1000:7.1f} ms")
            command = commands.facts_command(payload, {**p, "budget_s": 8}, 9)
            t = median(lambda: subprocess.run([*ssh, command], capture_output=True, check=True))
            print(f"  one host, ssh:// cold (new login):      {t * 1000:7.1f} ms")
            control = Path(tmp) / "cm"
            master = [*ssh[:-1], "-o", "ControlMaster=auto", "-o", f"ControlPath={control}",
                      "-o", "ControlPersist=60", "127.0.0.1"]
            subprocess.run([*master, "true"], check=True)
            t = median(lambda: subprocess.run([*master, command], capture_output=True,
                                              check=True))
            print(f"  one host, ssh:// warm ControlPath:      {t * 1000:7.1f} ms")
            subprocess.run([*master[:-1], "-O", "exit", "127.0.0.1"], capture_output=True,
                           check=False)
        finally:
            sshd.stop()
    print("  (`ssh true` includes the login shell's rc files: on this machine root's "
          f"~/.bashrc runs `pyenv init`; command: {shlex.quote('ssh ... true')})")


if __name__ == "__main__":
    main()
