"""How `ops verify` grows with the number of hosts, on lab twins of N = 3, 10, 30, 100 hosts.

    .venv/bin/python bench/scale_bench.py [--sizes 3,10,30,100] [--runs 3] [--frozen-at 30]
                                          [--out reports/scale] [--keep]      (as root)

For each N: an SSOT of N active hosts (the shipped one plus synthetic VMs, opsverify.lab.generate,
written to OUT/ssot-N), its twin (`ops lab up --name scaleN --ssot OUT/ssot-N --fresh`: up time
and twin memory, in all and per host), then, inside the twin (the bench re-runs itself there with
`ops lab exec`, so nothing leaves the twin's namespace):

- verify: `ops verify -q` wall time (median of --runs), the verifier's own CPU time (user +
  sys: what one verifier spends; on the twin the hosts' sshd and fact scripts run on this
  machine's cores too, so the wall time holds their work) and its peak RSS;
- the CPU of a run: the verifier's, and the hosts' (every sshd with what it ran: login, fact
  script, tailscale CLI), which on the twin share this machine's cores: their sum over the
  cores is the shortest run this machine allows;
- the verifier alone: `ops verify --facts` on that run's saved facts (median of --runs), how the
  verifier's own work grows with N apart from the hosts';
- floor: pytest start-up (collecting every gate of this SSOT) + one SSH login and `true` on every
  host, all in parallel + the slowest HTTP probe or public route, all at once (as
  bench/verify_bench.py); the ratio verify / floor;
- SSH logins per host per verify run, counted in every host's sshd log (must be 1);
- the HTML report of one run: its size and how long headless Chromium takes to open it;
- at --frozen-at hosts: one synthetic host's sshd frozen (SIGSTOP): the run's time, what it adds
  to the normal run, and which sources it marks UNREACHABLE (must be that host only).

Then the soak ledger figure: bench/soak_report_bench.py with 30 days of runs (--ledger-runs).
Twins are removed after each N unless --keep. Every figure is printed, none is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
OPS = [sys.executable, "-m", "opsverify.cli"]
GOALS = "goals: 3 hosts <= 1.3 x floor; 30 hosts <= 2 x and 100 hosts <= 4 x the 3-host time; " \
        "peak RSS <= 300 MB at 100; HTML <= 5 MB, opens <= 3 s; ledger of 30 days <= 2 s"


def ops(*args: str, timeout: float = 1800) -> tuple[float, str]:
    """Run `ops ARGS`; (wall seconds, stdout). Fails loudly."""
    t0 = time.monotonic()
    p = subprocess.run([*OPS, *args], cwd=REPO, capture_output=True, text=True, check=False,
                       timeout=timeout)
    if p.returncode:
        sys.exit(f"ops {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return time.monotonic() - t0, p.stdout


# ---- inside the twin -------------------------------------------------------------------------

def timed_child(argv: list[str], env: dict[str, str] | None = None
                ) -> tuple[float, int, int, float]:
    """(wall seconds, peak RSS in KiB, exit code, CPU seconds) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (time.perf_counter() - t0, usage.ru_maxrss, proc.returncode,
            usage.ru_utime + usage.ru_stime)


def logins(log_dir: Path, hosts: list[str]) -> dict[str, int]:
    """Accepted SSH logins so far, per host, from each host's sshd log."""
    out = {}
    for h in hosts:
        try:
            out[h] = (log_dir / f"{h}-sshd.log").read_text(errors="replace").count(
                "Accepted publickey")
        except FileNotFoundError:
            out[h] = 0
    return out


def sshd_cpu() -> float:
    """CPU seconds so far of every sshd on this machine, with the children it reaped: on the
    twin, each host's login and everything its fact command ran (python3, the tailscale CLI)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1:text.rindex(")")].startswith("sshd"):
            ticks += sum(int(x) for x in text[text.rindex(")") + 2:].split()[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def chromium_open(page: Path) -> float | None:
    """Seconds headless Chromium takes to load and render the page, minus its start-up on an
    empty page (None without Chromium)."""
    import shutil
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        return None

    def load(p: Path) -> float:
        with tempfile.TemporaryDirectory() as profile:
            t0 = time.perf_counter()
            subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                            "--dump-dom", p.resolve().as_uri()],
                           capture_output=True, timeout=120, check=False)
            return time.perf_counter() - t0
    with tempfile.NamedTemporaryFile("w", suffix=".html") as blank:
        blank.write("<!doctype html><title>blank</title>")
        blank.flush()
        base = min(load(Path(blank.name)) for _ in range(2))
    return max(0.0, min(load(page) for _ in range(2)) - base)


def slowest_http(ssot) -> float:
    """verify_bench's slowest probe or route, with a pool as large as the URLs: at 100 hosts
    (~250 URLs) a default pool would queue them and add its waits to the floor."""
    import httpx

    from opsverify.facts.api_client import tls_verify
    from opsverify.settings import Settings

    urls = [p.url for p in ssot.probes] + [f"https://{r.hostname}/" for r in ssot.routes]
    with httpx.Client(verify=tls_verify(Settings.from_env()), follow_redirects=False,
                      timeout=10, trust_env=False,
                      limits=httpx.Limits(max_connections=len(urls))) as client:
        def get(url: str) -> float:
            t0 = time.perf_counter()
            client.get(url)
            return time.perf_counter() - t0
        with ThreadPoolExecutor(len(urls)) as pool:
            return max(pool.map(get, urls))


def inside(args: argparse.Namespace) -> int:
    import verify_bench

    from opsverify.lab import hosts as lab_hosts
    from opsverify.lab.layout import Layout
    from opsverify.ssot import load

    ssot = load()
    layout = Layout.of(os.environ.get("OPSVERIFY_LAB_NAME"), os.environ.get("OPSVERIFY_LAB_DIR"))
    active = list(ssot.active_hosts.values())
    names = [h.name for h in active]
    out: dict = {"hosts": len(active), "tests": None}
    tmp = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    default = [*OPS, "verify", "-q", "--json", str(tmp / "r.json")]
    verify = [*default, *args.verify_args.split()]
    before, hosts_cpu = logins(layout.logs, names), sshd_cpu()
    runs = [timed_child(verify) for _ in range(args.runs)]
    hosts_cpu, after = (sshd_cpu() - hosts_cpu) / args.runs, logins(layout.logs, names)
    per_host = {h: (after[h] - before[h]) / args.runs for h in names}
    res = json.loads((tmp / "r.json").read_text())
    out.update(verify_s=statistics.median(r[0] for r in runs), rss_mib=max(r[1] for r in runs)
               / 1024, exit=runs[-1][2], tests=len(res["tests"]), counts=res["counts"],
               cpu_s=statistics.median(r[3] for r in runs), unreachable=sorted(res["unreachable"]),
               logins_min=min(per_host.values()), logins_max=max(per_host.values()),
               hosts_cpu_s=hosts_cpu)
    # The verifier alone: the same gates on this run's facts, replayed (no host, no API).
    saved = tmp / "facts"
    timed_child([*verify, "--save-facts", str(saved)])
    replays = [timed_child([*OPS, "verify", "-q", "--facts", str(saved)]) for _ in range(args.runs)]
    out.update(replay_s=statistics.median(r[0] for r in replays),
               replay_cpu_s=statistics.median(r[3] for r in replays))
    startup, ssh, http = [], [], []
    for _ in range(args.runs):
        startup.append(timed_child([sys.executable, "-m", "pytest", "gates/", "--collect-only",
                                    "-q", "--ssot", str(ssot.root),
                                    *verify_bench.PLUGINS_OFF])[0])
        with ThreadPoolExecutor(len(active)) as pool:
            ssh.append(max(pool.map(verify_bench.ssh_round_trip, active)))
        http.append(slowest_http(ssot))
    med = statistics.median
    out.update(startup_s=med(startup), ssh_s=med(ssh), http_s=med(http),
               floor_s=med(startup) + med(ssh) + med(http))
    html = tmp / "report.html"
    timed_child([*OPS, "verify", "-q", "--html", str(html), *args.verify_args.split()])
    out.update(html_mb=html.stat().st_size / 1e6, html_open_s=chromium_open(html))
    if args.freeze:
        synthetic = [h for h in names if h not in ("pve", "vm209", "vm210")] or names
        victim = synthetic[len(synthetic) // 2]
        holder = layout.read_state()["hosts"][victim]["pid"]
        lab_hosts.signal_sshd(holder, signal.SIGSTOP)
        try:  # the default timeout, whatever --verify-args says: the cost of one timeout
            wall, _, code, _ = timed_child(default)
        finally:
            lab_hosts.signal_sshd(holder, signal.SIGCONT)
        frozen = json.loads((tmp / "r.json").read_text())
        hit = sorted({t["host"] for t in frozen["tests"] if t["outcome"] == "unreachable"})
        out.update(frozen_host=victim, frozen_s=wall, frozen_added_s=wall - out["verify_s"],
                   frozen_unreachable=sorted(frozen["unreachable"]), frozen_hosts_hit=hit,
                   frozen_exit=code)
    Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


# ---- outside: one twin per N -----------------------------------------------------------------

def one_size(n: int, args: argparse.Namespace) -> dict:
    from lab_bench import memory_mib, twin_cpu

    from opsverify.lab.generate import generate
    from opsverify.lab.layout import Layout

    ssot_dir = (args.out / f"ssot-{n}").resolve()
    generate(n, ssot_dir)
    name = f"scale{n}"
    layout = Layout.of(name)
    ops("lab", "down", "--name", name)
    up_s, _ = ops("lab", "up", "--name", name, "--ssot", str(ssot_dir), "--fresh")
    time.sleep(5)
    pss, rss, procs = memory_mib(layout)
    idle = twin_cpu(layout, 10)
    figures = {"up_s": up_s, "twin_pss_mib": pss, "twin_rss_mib": rss, "twin_procs": procs,
               "idle_cores": idle}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inside.json"
        argv = ["lab", "exec", "--name", name, "--", sys.executable, __file__, "--inside",
                "--runs", str(args.runs), "--json", str(path),
                f"--verify-args={args.verify_args}"]
        if n == args.frozen_at:
            argv.append("--freeze")
        ops(*argv)
        figures.update(json.loads(path.read_text()))
    if not args.keep:
        ops("lab", "down", "--name", name)
    h = figures["hosts"]
    print(f"N={n}: up {up_s:.1f} s ({up_s / h:.2f} s/host); twin {pss:.0f} MiB PSS "
          f"({pss / h:.0f} MiB/host, {procs} processes), idle {idle:.2f} cores; "
          f"{figures['tests']} gates {figures['counts']}", flush=True)
    return figures


def ledger_render(runs: int) -> str:
    p = subprocess.run([sys.executable, str(REPO / "bench/soak_report_bench.py"), "--runs",
                        str(runs)], cwd=REPO, capture_output=True, text=True, check=False)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("render")), None)
    return line or f"soak_report_bench failed ({p.returncode}): {p.stderr[-300:]}"


def table(results: dict[int, dict]) -> None:
    base = results.get(min(results))
    print(f"\n{'N':>4} {'verify s':>9} {'floor s':>8} {'x floor':>8} {'x N=3':>6} "
          f"{'CPU s':>6} {'RSS MiB':>8} {'logins/host':>11} {'HTML MB':>8} {'open s':>7} "
          f"{'up s/host':>9} {'MiB/host':>8}")
    for n, f in sorted(results.items()):
        opened = f"{f['html_open_s']:.2f}" if f.get("html_open_s") is not None else "-"
        login = f"{f['logins_min']:g}" + ("" if f["logins_min"] == f["logins_max"]
                                          else f"..{f['logins_max']:g}")
        print(f"{n:>4} {f['verify_s']:>9.2f} {f['floor_s']:>8.2f} "
              f"{f['verify_s'] / f['floor_s']:>8.2f} {f['verify_s'] / base['verify_s']:>6.2f} "
              f"{f['cpu_s']:>6.2f} {f['rss_mib']:>8.0f} {login:>11} {f['html_mb']:>8.2f} {opened:>7} "
              f"{f['up_s'] / f['hosts']:>9.2f} {f['twin_pss_mib'] / f['hosts']:>8.0f}")
        print(f"{'':>4} floor = start-up {f['startup_s']:.2f} + SSH {f['ssh_s']:.2f} "
              f"+ HTTP {f['http_s']:.2f}; UNREACHABLE in the runs: {f['unreachable'] or 'none'}")
        busy = (f["cpu_s"] + f["hosts_cpu_s"]) / (os.cpu_count() or 1)
        print(f"{'':>4} CPU per run: verifier {f['cpu_s']:.2f} s + the hosts' sshd and fact "
              f"commands {f['hosts_cpu_s']:.2f} s ({f['hosts_cpu_s'] / f['hosts'] * 1000:.0f} ms "
              f"per host): on {os.cpu_count()} cores no run is shorter than {busy:.2f} s")
        print(f"{'':>4} the verifier alone (replayed facts): {f['replay_s']:.2f} s, "
              f"{f['replay_s'] / base['replay_s']:.2f} x N=3, CPU {f['replay_cpu_s']:.2f} s")
    for n, f in sorted(results.items()):
        if "frozen_host" in f:
            print(f"\nfrozen sshd on {f['frozen_host']} among {n}: {f['frozen_s']:.2f} s "
                  f"(+{f['frozen_added_s']:.2f} s over the normal run), UNREACHABLE sources "
                  f"{f['frozen_unreachable']}, hosts with UNREACHABLE gates "
                  f"{f['frozen_hosts_hit']}, exit {f['frozen_exit']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="3,10,30,100", help="host counts (default 3,10,30,100)")
    p.add_argument("--runs", type=int, default=3, help="verify runs per N (median)")
    p.add_argument("--frozen-at", type=int, default=30, help="N of the frozen-host run (0: none)")
    p.add_argument("--ledger-runs", type=int, default=8640, help="soak runs (30 days at 5 min)")
    p.add_argument("--out", type=Path, default=REPO / "reports" / "scale",
                   help="where the generated SSOTs go (default reports/scale, git-ignored)")
    p.add_argument("--keep", action="store_true", help="leave each twin up")
    p.add_argument("--verify-args", default="", metavar="ARGS",
                   help='more `ops verify` flags for the measured runs, e.g. "--parallel 16"')
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--freeze", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inside:
        return inside(args)
    if os.geteuid() != 0:
        sys.exit("scale_bench: needs root, as the lab does")
    sizes = [int(s) for s in re.split(r"[,\s]+", args.sizes) if s]
    print(f"scale bench on {os.cpu_count()} cores, ops verify {args.verify_args or '(defaults)'}; "
          f"load average "
          f"{os.getloadavg()[0]:.2f} at the start", flush=True)
    results = {n: one_size(n, args) for n in sizes}
    table(results)
    if args.ledger_runs:
        print(f"\nsoak ledger of {args.ledger_runs} runs: {ledger_render(args.ledger_runs)}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end; {GOALS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
