"""`ops serve`: `ops verify` on a schedule, its last result over HTTP (health, metrics, report).

This module is the command line: options, the refusals (a non-loopback address without a
token file, an invalid SSOT, unsafe settings), signals. The scheduler and the HTTP answers
live in opsverify/serve/. A result older than twice the interval is stale: /healthz says 503.
"""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path

from opsverify import redact, results
from opsverify.commands.verify import (
    add_selection_args,
    check_args,
    load_ssot,
    refuse_settings,
    selection_flags,
)
from opsverify.settings import Settings
from opsverify.soak.runner import parse_duration

HELP = """endpoints (GET or HEAD):
  /healthz       200 when the last run passed (exit 0) and is fresh, else 503; JSON:
                 {"status": "pass|fail|unreachable|error|stale", "exit_code", "counts",
                  "age_s", "stale", "failing": [test ids that FAIL, ERROR or are UNREACHABLE],
                  "failing_total", "finished", "duration_s", "runs", "running", "error"}
                 before the first run has finished: 503 {"status": "starting"}
  /metrics       Prometheus text: the series of `ops verify --prom` for the last run, plus
                 opsverify_serve_last_run_age_seconds, opsverify_serve_stale,
                 opsverify_serve_runs_total, opsverify_serve_running,
                 opsverify_serve_interval_seconds (before the first run: only those)
  /              the last run's HTML report (as `ops verify --html`)
  /results.json  the last run's results model (as `ops verify --json`)
  Other paths: 404. With --token-file, every request needs `Authorization: Bearer TOKEN`,
  else 401. A run without results (refused, timed out) is served as such: /healthz 503
  with its error, /metrics with opsverify_last_run_success 0, / and /results.json 503.

stale rule:
  a result is stale when it finished more than 2 x --every ago (a run hung until its
  timeout, or the scheduler stopped): /healthz answers 503 with "stale": true.

listening:
  127.0.0.1 (or ::1, localhost) by default. Any other address needs --token-file PATH, a
  file holding the bearer token (not group- or world-readable); the token is never read
  from the command line, never logged. One line per run goes to stderr.

examples:
  ops serve                                      # 127.0.0.1:9842, every 5 minutes
  ops serve --every 15m --host vm210 --state /var/lib/opsverify/serve
  ops serve --listen 100.64.0.10:9842 --token-file /etc/opsverify/serve.token

  Uptime Kuma: monitor "HTTP(s) - Keyword", URL http://HOST:9842/healthz, keyword "pass"
    (a 503 is down by itself); with a token, header {"Authorization": "Bearer TOKEN"}.
  Homarr: an app with URL http://HOST:9842/ (the report) and its status check on
    http://HOST:9842/healthz.
  Prometheus (prometheus.yml):
    scrape_configs:
      - job_name: opsverify
        scrape_interval: 1m
        authorization: {credentials_file: /etc/prometheus/opsverify.token}  # with a token
        static_configs: [{targets: ["HOST:9842"]}]
    alert on: opsverify_last_run_success == 0 or opsverify_serve_stale == 1 or up == 0

exit codes:
  0  stopped by SIGTERM or SIGINT
  1  cannot listen on the address
  2  bad option, invalid SSOT, unsafe settings, refused listen address or token file"""


DESCRIPTION = """\
Run `ops verify` every --every (never two at once) and serve the last result
over HTTP: /healthz for uptime monitors, /metrics for Prometheus, / for the
HTML report, /results.json for the results model. Takes the selection flags
of `ops verify`."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", description=DESCRIPTION, epilog=HELP,
                       help="run the gates on a schedule; serve health, metrics and the report",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:9842",
                   help="address to serve on (default 127.0.0.1:9842; port 0: any free port)")
    p.add_argument("--every", metavar="DURATION", default="5m", help="interval (default 5m)")
    p.add_argument("--run-timeout", metavar="DURATION", default=None,
                   help="kill a run that takes longer (default: the interval)")
    p.add_argument("--token-file", metavar="PATH", type=Path, default=None,
                   help="file holding a bearer token every request must present")
    p.add_argument("--state", metavar="DIR", type=Path, default=None,
                   help="keep the last run in DIR/last.json: after a restart it is served "
                        "at once, and the next run is due an interval after it started")
    add_selection_args(p, save_facts=False)
    p.set_defaults(func=run)


def _fail(message: str, code: int = results.EXIT_USAGE) -> int:
    print(redact.safe(f"ops serve: {message}"), file=sys.stderr)
    return code


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:9842', '[::1]:9842', 'localhost:0' -> (host, port); ValueError if not."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:9842")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: whatever it resolves to, it is not known to be loopback


def read_token(path: Path) -> str:
    """The bearer token in path; ValueError saying why it cannot be used (never its value)."""
    try:
        st = path.stat()
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"--token-file {path}: cannot read it: {exc}") from None
    if st.st_mode & 0o007:
        raise ValueError(f"--token-file {path}: readable by every user (mode "
                         f"{st.st_mode & 0o777:o}); chmod 600 it")
    if len(token) < 16 or any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError(f"--token-file {path}: the token must be one line of at least 16 "
                         "printable characters")
    return token


def run(args: argparse.Namespace) -> int:
    try:
        every = parse_duration(args.every)
        timeout = parse_duration(args.run_timeout) if args.run_timeout else every
        host, port = parse_listen(args.listen)
        token = read_token(args.token_file) if args.token_file else None
    except ValueError as exc:
        return _fail(str(exc))
    if token is None and not is_loopback(host):
        return _fail(f"--listen {args.listen}: not a loopback address; serving beyond this "
                     "machine needs --token-file PATH (a file holding a bearer token)")
    problem = check_args(args)
    if problem:
        return _fail(problem)
    ssot = load_ssot(args.ssot)
    if ssot is None or refuse_settings(ssot, "ops serve"):
        return results.EXIT_USAGE
    unknown = [h for h in args.host if h not in ssot.hosts]
    if unknown:
        return _fail(f"unknown host {', '.join(unknown)} (SSOT hosts: {', '.join(ssot.hosts)})")
    redact.register(*Settings.from_env().secret_values(), token)
    return serve(args, host, port, every, timeout, token)


def serve(args: argparse.Namespace, host: str, port: int, every: float, timeout: float,
          token: str | None) -> int:
    """Listen, start the scheduler, serve until SIGTERM or SIGINT; then stop both cleanly."""
    from http.server import ThreadingHTTPServer

    from opsverify.serve.scheduler import Scheduler, log
    from opsverify.serve.web import make_handler

    sched = Scheduler(selection_flags(args), every, timeout, args.state)
    server_class = type("Server", (ThreadingHTTPServer,), {
        "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET,
        "daemon_threads": True})
    try:
        server = server_class((host, port), make_handler(sched, token))
    except OSError as exc:
        shutil.rmtree(sched.workdir, ignore_errors=True)
        return _fail(f"cannot listen on {args.listen}: {exc.strerror or exc}",
                     results.EXIT_FAIL)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    log(f"listening on http://{shown}:{bound_port}/ (/healthz /metrics /results.json), "
        f"ops verify every {args.every}{', bearer token required' if token else ''}")
    threading.Thread(target=server.serve_forever, name="ops-serve-http", daemon=True).start()
    sched.start()
    while not stop.wait(0.5):
        pass
    sched.stop.set()
    sched.kill()  # a run in progress is dropped: the last finished one stays the last
    server.shutdown()
    server.server_close()
    sched.join(timeout=10)
    log("stopped")
    return 0
