"""The HTTP side of `ops serve`: /healthz, /metrics, / and /results.json from the last run."""

from __future__ import annotations

import hmac
import json
import time
from html import escape
from http.server import BaseHTTPRequestHandler
from typing import Any

from opsverify import results
from opsverify.outputs.ledger import iso
from opsverify.verdict import ERROR, FAIL, UNREACHABLE

from .scheduler import Scheduler

MAX_FAILING = 100  # ids listed in /healthz; failing_total counts them all


def health(last: dict[str, Any] | None, runs: int, running: bool, every: float,
           now: float) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of /healthz."""
    if last is None:
        return 503, {"status": "starting", "runs": runs, "running": running}
    code, res, age = last["exit_code"], last["results"] or {}, max(0.0, now - last["finished"])
    stale = age > 2 * every
    failing = [t["id"] for t in res.get("tests", []) if t["outcome"] in (FAIL, ERROR, UNREACHABLE)]
    status = "stale" if stale else {0: "pass", 1: "fail", 4: "unreachable"}.get(code, "error")
    if last["error"] and not stale:
        status = "error"
    body = {"status": status, "exit_code": code, "counts": res.get("counts") or results.count([]),
            "age_s": round(age, 1), "stale": stale, "failing": failing[:MAX_FAILING],
            "failing_total": len(failing), "finished": iso(last["finished"]),
            "duration_s": round(last["finished"] - last["started"], 2), "runs": runs,
            "running": running, "error": last["error"]}
    return (200 if status == "pass" else 503), body


def metrics(last: dict[str, Any] | None, runs: int, running: bool, every: float,
            now: float) -> str:
    """/metrics: the last run's `--prom` series, then ops serve's own."""
    out = [last["prom"]] if last else []

    def gauge(name: str, text: str, value: float, kind: str = "gauge") -> None:
        out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n{name} {value:g}\n")

    if last:
        age = max(0.0, now - last["finished"])
        gauge("opsverify_serve_last_run_age_seconds",
              "Seconds since the last run of ops serve finished.", round(age, 3))
        gauge("opsverify_serve_stale", "1 if the last run is older than twice the interval.",
              int(age > 2 * every))
    gauge("opsverify_serve_runs_total", "Runs of ops verify since ops serve started.", runs,
          "counter")
    gauge("opsverify_serve_running", "1 while a run is in progress.", int(running))
    gauge("opsverify_serve_interval_seconds", "The interval between runs.", every)
    return "".join(out)


def make_handler(sched: Scheduler, token: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def version_string(self) -> str:
            return "opsverify"
        timeout = 30  # a client that sends nothing does not hold a thread for ever

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per run, nothing per request

        def do_GET(self) -> None:
            self.answer(body=True)

        def do_HEAD(self) -> None:
            self.answer(body=False)

        def answer(self, body: bool) -> None:
            if token is not None:
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return self.send(401, "text/plain", "401 unauthorized: send "
                                     "Authorization: Bearer TOKEN\n", body,
                                     {"WWW-Authenticate": 'Bearer realm="opsverify"'})
            last, runs, running = sched.snapshot()
            path, now = self.path.split("?", 1)[0], time.time()
            if path == "/healthz":
                status, doc = health(last, runs, running, sched.every, now)
                return self.send(status, "application/json", json.dumps(doc) + "\n", body)
            if path == "/metrics":
                return self.send(200, "text/plain; version=0.0.4",
                                 metrics(last, runs, running, sched.every, now), body)
            if path in ("/", "/index.html", "/results.json"):
                html = path != "/results.json"
                if last and last["html" if html else "json"]:
                    return self.send(200, "text/html" if html else "application/json",
                                     last["html"] if html else last["json"], body)
                why = "no run has finished yet" if last is None else last["error"]
                if html:
                    return self.send(503, "text/html", "<!doctype html><title>opsverify</title>"
                                     f"<p>No report: {escape(why)}</p>\n", body)
                return self.send(503, "application/json", json.dumps(
                    {"status": "starting" if last is None else "error", "error": why}) + "\n",
                    body)
            return self.send(404, "text/plain", "404 not found: /healthz /metrics / "
                             "/results.json\n", body)

        def send(self, status: int, ctype: str, text: str, body: bool,
                 headers: dict[str, str] | None = None) -> None:
            data = text.encode("utf-8")
            self.send_response(status)
            for k, v in {"Content-Type": f"{ctype}; charset=utf-8", "Content-Length":
                         str(len(data)), "Cache-Control": "no-store", "X-Content-Type-Options":
                         "nosniff", "Content-Security-Policy": "default-src 'none'; "
                         "style-src 'unsafe-inline'; script-src 'unsafe-inline'",
                         **(headers or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


