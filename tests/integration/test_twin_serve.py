"""`ops serve` inside the lab twin: /healthz follows a drift and a reset, and the twin's own
Prometheus scrapes /metrics. Every HTTP request is made inside the twin's network."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

SERVE_TESTS = Path(__file__).resolve().parents[1] / "serve"
sys.path.insert(0, str(SERVE_TESTS))  # serverun, inside_get.py
from serverun import Server
from twinrun import OPS, ops

from opsverify.lab.layout import Layout

MOUNT_TEST = "gates/test_mounts.py::test_mount[vm210:/mnt/media]"
SERVE = "http://127.0.0.1:9842"  # the twin's loopback, not this machine's


def inside(url: str, *args: str, timeout: float = 90) -> dict[str, Any]:
    """tests/serve/inside_get.py in the twin's network: GET url until it answers as asked."""
    p = ops("lab", "exec", "--", sys.executable, str(SERVE_TESTS / "inside_get.py"), url, *args,
            "--timeout", str(timeout), check=False, timeout=timeout + 60)
    assert p.returncode == 0, f"{url} {args}: {p.stdout[-1500:]}{p.stderr[-1500:]}"
    return json.loads(p.stdout)


def scrape_serve(layout: Layout) -> None:
    """Add a job scraping `ops serve` to the twin's Prometheus and reload it (SIGHUP); the
    next `ops lab reset` restores the twin's own configuration."""
    config = layout.root / "prometheus" / "prometheus.yml"
    doc = yaml.safe_load(config.read_text())
    doc["scrape_configs"].append({"job_name": "opsverify",
                                  "static_configs": [{"targets": ["127.0.0.1:9842"]}]})
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.kill(int((layout.pids / "prometheus.pid").read_text()), signal.SIGHUP)


def test_healthz_follows_drift_and_reset_and_prometheus_scrapes_it(twin, tmp_path) -> None:
    layout = Layout.of(twin["name"], twin["state_dir"])
    prom = twin["standins"]["prometheus"]["url"]
    # --run-timeout: a twin run takes about 3 s, as long as the interval (the default timeout)
    server = Server([*OPS, "lab", "exec", "--", *OPS, "serve", "--listen", "127.0.0.1:9842",
                     "--every", "3s", "--run-timeout", "60s"], tmp_path / "serve.log")
    drifted = False
    try:
        server.started(timeout=60)
        up = json.loads(inside(f"{SERVE}/healthz", "--status", "200")["body"])
        assert up["status"] == "pass" and up["failing"] == [] and up["counts"]["pass"] > 100

        scrape_serve(layout)
        inside(prom, "--query", 'up{job="opsverify"}', "--value", "1")
        inside(prom, "--query", 'opsverify_last_run_success{job="opsverify"}', "--value", "1")

        ops("lab", "drift", "media-rw-vm210", timeout=120)
        drifted = True
        down = json.loads(inside(f"{SERVE}/healthz", "--status", "503")["body"])
        assert down["status"] == "fail" and MOUNT_TEST in down["failing"], down
        inside(prom, "--query", 'opsverify_last_run_success{job="opsverify"}', "--value", "0")

        ops("lab", "reset", timeout=300)
        drifted = False
        back = json.loads(inside(f"{SERVE}/healthz", "--status", "200", timeout=120)["body"])
        assert back["status"] == "pass" and back["failing"] == []
        config = (layout.root / "prometheus" / "prometheus.yml").read_text()
        assert "opsverify" not in config.split("scrape_configs", 1)[1]  # the reset restored it
    finally:
        code = server.stop()
        if drifted:
            ops("lab", "reset", timeout=300)
    assert code == 0, server.stderr
    lines = server.stderr.splitlines()
    assert lines[-1] == "ops serve: stopped"
    assert any(" exit 1: ops verify: " in ln for ln in lines)
    assert not any(c in server.stderr for c in twin.get("canaries", [])), "a secret was logged"
