"""Readiness of the twin's network services, asked from inside the twin (`ops lab exec`).

    python -m opsverify.lab.ready [--timeout S]   # exit 0 when ready; else what is not, one a line
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from typing import Any

import httpx

from .access import inside
from .layout import Layout
from .status import status
from .twin import load_world


def problems(st: dict[str, Any], targets: set[str], queries: tuple[str, ...] = ()) -> list[str]:
    """What does not answer yet: sshd banners, stand-ins with their credentials, scrape targets,
    and the SSOT's PromQL rules (a rate() needs two scrapes after Prometheus starts)."""
    out = []
    for name, h in st["hosts"].items():
        try:
            with socket.create_connection((h["ssh"]["address"], h["ssh"]["port"]), 2) as s:
                if not s.recv(64).startswith(b"SSH-2.0-"):
                    out.append(f"{name}: sshd sends no SSH banner")
        except OSError as exc:
            out.append(f"{name}: sshd: {exc}")
    s = st["standins"]
    with httpx.Client(verify=st["ca_bundle"], timeout=3) as http:
        checks = [("cloudflare", "GET", f"{s['cloudflare']['api_url']}/user/tokens/verify",
                   {"Authorization": f"Bearer {s['cloudflare']['read_token']}"}, None),
                  # /api/status: a login would add a token to the stand-in's clean state
                  ("infisical", "GET", f"{s['infisical']['url']}/api/status", {}, None)]
        if "proxmox" in s:
            checks.append(("proxmox", "GET", f"{s['proxmox']['url']}/api2/json/version",
                           {"Authorization": f"PVEAPIToken={s['proxmox']['auditor_token']}"},
                           None))
        for name, method, url, headers, body in checks:
            try:
                r = http.request(method, url, headers=headers, json=body)
                if r.status_code != 200:
                    out.append(f"{name}: HTTP {r.status_code}")
            except httpx.HTTPError as exc:
                out.append(f"{name}: {type(exc).__name__}")
        try:
            r = http.get(f"{s['prometheus']['url']}/api/v1/targets?state=active")
            active = r.json()["data"]["activeTargets"]
            up = {t["labels"]["instance"] for t in active if t["health"] == "up"}
            out += [f"prometheus: target {t} not up yet" for t in sorted(targets - up)]
            for q in queries:
                r = http.get(f"{s['prometheus']['url']}/api/v1/query", params={"query": q})
                if not r.json()["data"]["result"]:
                    out.append(f"prometheus: no value yet for {q}")
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            out.append(f"prometheus: {type(exc).__name__}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsverify.lab.ready")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args(argv)
    layout = Layout.of(os.environ.get("OPSVERIFY_LAB_NAME"), os.environ.get("OPSVERIFY_LAB_DIR"))
    if not inside(layout):
        print("run this inside the twin: ops lab exec -- python -m opsverify.lab.ready",
              file=sys.stderr)
        return 2
    st = status(layout)
    ssot = load_world(layout).ssot
    targets = {t.instance for t in ssot.scrape_targets}
    queries = tuple(r.query for r in ssot.rules)
    deadline = time.monotonic() + args.timeout
    while True:
        left = problems(st, targets, queries)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for line in left:
        print(line)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
