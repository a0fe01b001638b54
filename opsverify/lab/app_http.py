"""What each application of the twin answers over HTTP, and how its healthcheck asks.

twin-httpd serves every app container; these rules make it answer as the real app does where
the gates look (an *arr's system/status behind its API key, Jellyfin's public info, ...). The
profile table (apps.py) says which kind an app is; this module knows what each kind answers.
"""

from __future__ import annotations

import json
from typing import Any

from opsverify.ssot.model import Container

from .app_model import Ctx, Profile, Rule, host_port
from .apps import profile

HTML = "<!doctype html><html><head><title>{title}</title></head><body></body></html>"


def rules(ctx: Ctx, c: Container) -> list[Rule]:
    """twin-httpd rules for a container: its API, its health path, `/` as the SSOT routes say."""
    p = profile(c)
    out: list[Rule] = list(p.extra)
    key_env = f"{c.name.upper().replace('-', '_')}_API_KEY"
    if p.kind == "arr":
        out.append(Rule(f"/api/{p.api}/system/status 200 application/json "
                        + json.dumps(_arr_status(ctx, c, p), separators=(",", ":")),
                        auth=f"arr X-Api-Key {key_env}"))
        out.append(Rule('/ping 200 application/json {"status":"OK"}'))
    elif p.kind == "sabnzbd":
        out.append(Rule("/api 200 application/json " + json.dumps(_sab_queue(p)),
                        auth=f"query apikey {key_env}",
                        fail='403 application/json {"status":false,"error":"API Key Incorrect"}'))
    elif p.kind == "jellyfin":
        out.append(Rule("/health 200 text/plain Healthy"))
        info = {"LocalAddress": f"http://{ctx.ssot.hosts[c.host].vantage_ip}:{host_port(c)}",
                "ServerName": ctx.ssot.hosts[c.host].hostname, "Version": p.version,
                "ProductName": "Jellyfin Server", "OperatingSystem": "",
                "Id": ctx.ident("jellyfin.id"), "StartupWizardCompleted": True}
        out.append(Rule("/System/Info/Public 200 application/json " + json.dumps(info)))
    elif p.kind == "navidrome":
        out.append(Rule("/rest/ping.view 200 subsonic", auth="subsonic NAVIDROME_USER "
                                                              "NAVIDROME_PASSWORD"))
        out.append(Rule("/rest/ping 200 subsonic", auth="subsonic NAVIDROME_USER "
                                                         "NAVIDROME_PASSWORD"))
        out.append(Rule("/ping 200 text/plain ."))
    elif p.kind == "jellyseerr":
        status = {"version": p.version, "commitTag": f"v{p.version}", "updateAvailable": False,
                  "commitsBehind": 0, "restartRequired": False}
        out.append(Rule("/api/v1/status 200 application/json " + json.dumps(status)))
    elif p.kind == "flaresolverr":
        body = {"msg": "FlareSolverr is ready!", "version": p.version,
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                             "Gecko) Chrome/126.0.0.0 Safari/537.36"}
        out.append(Rule("/ 200 application/json " + json.dumps(body)))
    if not any(r.spec.startswith("/ ") for r in out):
        out.append(root_rule(ctx, c))
    return out


def root_rule(ctx: Ctx, c: Container, status: int | None = None) -> Rule:
    """`/`: what the SSOT's route expects of it (a redirect stays a redirect), else 200."""
    for r in ctx.ssot.routes:
        if r.host == c.host and any(p.host == r.port for p in c.ports) and status is None:
            if 300 <= r.status < 400:
                return Rule(f"/ {r.status} {r.location or '/'}")
            status = r.status
    return Rule(f"/ {status or 200} text/html " + HTML.format(title=profile(c).title))


def login_rule(c: Container) -> Rule:
    return Rule("/login 200 text/html " + HTML.format(title=f"{profile(c).title} - Sign in"))


def _arr_status(ctx: Ctx, c: Container, p: Profile) -> dict[str, Any]:
    return {
        "appName": p.title, "instanceName": p.title, "version": p.version,
        "buildTime": "2025-01-12T10:41:02Z", "isDebug": False, "isProduction": True,
        "isAdmin": False, "isUserInteractive": False, "startupPath": "/app/bin",
        "appData": "/config", "osName": "ubuntu", "osVersion": "24.04", "isNetCore": True,
        "isLinux": True, "isOsx": False, "isWindows": False, "isDocker": True,
        "mode": "console", "branch": "master", "authentication": "external",
        "sqliteVersion": "3.46.1", "migrationVersion": 241, "urlBase": "",
        "runtimeVersion": "8.0.12", "runtimeName": ".NET", "startTime": "2026-02-08T09:00:00Z",
        "packageVersion": p.version, "packageAuthor": "linuxserver.io",
        "packageUpdateMechanism": "docker", "databaseType": "sqLite",
        "databaseVersion": "3.46.1", "isMonoRuntime": False,
    }


def _sab_queue(p: Profile) -> dict[str, Any]:
    return {"queue": {
        "version": p.version, "paused": False, "pause_int": "0", "paused_all": False,
        "diskspace1": "3978.31", "diskspace2": "3978.31", "diskspace1_norm": "3.9 T",
        "diskspace2_norm": "3.9 T", "diskspacetotal1": "5543.63", "diskspacetotal2": "5543.63",
        "speedlimit": "100", "speedlimit_abs": "", "have_warnings": "0", "finishaction": None,
        "quota": "0 ", "have_quota": False, "left_quota": "0 ", "cache_art": "0",
        "cache_size": "0 B", "kbpersec": "0.00", "speed": "0 ", "mbleft": "0.00", "mb": "0.00",
        "sizeleft": "0 B", "size": "0 B", "noofslots_total": 0, "noofslots": 0, "start": 0,
        "limit": 0, "finish": 0, "status": "Idle", "timeleft": "0:00:00", "slots": []}}


def health_cmd(c: Container, address: str, port: int, p: Profile) -> list[str]:
    """The container's healthcheck: busybox wget against its own endpoint (or its pid 1)."""
    if not port:
        return ["CMD-SHELL", "kill -0 1"]  # no web endpoint: is the main process alive
    url = f"http://{address}:{port}{p.health}"
    if p.health_accepts_401:
        return ["CMD-SHELL", (f"out=$(timeout 2 wget -q -O /dev/null {url} 2>&1) || "
                             "echo \"$out\" | grep -q ' 401 '")]
    return ["CMD-SHELL", f"timeout 2 wget -q -O /dev/null {url} || exit 1"]

