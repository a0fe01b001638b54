"""Looks at the twin from inside its network and prints what it saw as JSON.

    ops lab exec -- python tests/lab/inside.py hosts|http|standins|prometheus|ssh HOST

Run only inside the twin: the SSOT's addresses exist nowhere else. The lab tests assert on
the output; secret values are used here but never printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import testinfra

from opsverify.lab import access, status
from opsverify.lab.layout import Layout

LAYOUT = Layout.of(os.environ.get("OPSVERIFY_LAB_NAME"), os.environ.get("OPSVERIFY_LAB_DIR"))


def hosts(st: dict[str, Any]) -> dict[str, Any]:
    """Each host through testinfra over its sshd: hostname, mounts, fstab, files, CLIs."""
    with ThreadPoolExecutor(max_workers=len(st["hosts"])) as pool:
        return dict(zip(st["hosts"], pool.map(lambda n: _host(st, n), st["hosts"]), strict=True))


def _host(st: dict[str, Any], name: str) -> dict[str, Any]:
    # ssh:// is OpenSSH with the twin's ssh_config: pinned host keys, strictly checked.
    h = testinfra.get_host(f"ssh://{name}", ssh_config=st["ssh_config"])
    facts: dict[str, Any] = {
        "hostname": h.check_output("hostname"),
        "user": h.user().name,
        "mounts": {m["target"]: m for m in _mounts(h.file("/proc/mounts").content_string)},
        "fstab": h.file("/etc/fstab").content_string.splitlines(),
        "path": h.check_output("echo $PATH"),
        "tailscale": None, "zfs": None, "docker": None, "stack_files": {},
    }
    # A non-root login's PATH has no sbin; the CLIs are looked up where the verifier looks.
    sbin = "PATH=/usr/local/sbin:/usr/sbin:$PATH"
    if h.run(f"{sbin} command -v tailscale").rc == 0:
        ts = json.loads(h.check_output(f"{sbin} tailscale status --json"))
        facts["tailscale"] = {**ts["Self"], "backend": ts["BackendState"]}
    if h.run(f"{sbin} command -v zfs").rc == 0:
        facts["zfs"] = h.check_output(f"{sbin} zfs list -H -o name").split()
    if h.file("/var/run/docker.sock").exists:
        facts["docker"] = sorted(h.check_output(
            "docker ps -a --format '{{.Names}} {{.State}}'").splitlines())
    for d in h.check_output("ls -d /opt/stacks/* 2>/dev/null || true").split():
        facts["stack_files"][d] = sorted(h.check_output(f"ls -A {d}").split())
    return facts


def _mounts(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        source, target, fstype, options = line.split()[:4]
        rows.append({"source": source, "target": target, "fstype": fstype,
                     "options": options.split(",")})
    return rows


def http(st: dict[str, Any]) -> dict[str, Any]:
    """The SSOT's service probes and public routes, as the verifier would ask them."""
    from opsverify.ssot import load
    ssot = load(st["ssot"])
    secrets = LAYOUT.read_state()["secrets"]
    out: dict[str, Any] = {"probes": {}, "routes": {}}
    with httpx.Client(timeout=5, verify=st["ca_bundle"], follow_redirects=False) as c:
        for p in ssot.probes:
            params = {k: str(v) for k, v in p.query.items()}
            headers = {}
            auth = p.auth
            if "header" in auth:
                headers[auth["header"]] = secrets[auth["secret"]]
            elif "query" in auth:
                params[auth["query"]] = secrets[auth["secret"]]
            elif "subsonic_user" in auth:
                salt = "c0ffee"
                pw = secrets[auth["subsonic_password"]]
                params |= {"u": secrets[auth["subsonic_user"]], "s": salt,
                           "t": hashlib.md5((pw + salt).encode()).hexdigest()}
            r = c.get(p.url, params=params, headers=headers)
            bad = c.get(p.url, params={**params, **({"u": "nobody"} if "u" in params else {}),
                                       **({"apikey": "wrong"} if "apikey" in params else {})},
                        headers={k: "wrong" for k in headers})
            out["probes"][p.name] = {"status": r.status_code, "body": r.text[:5000],
                                     "ctype": r.headers.get("content-type"),
                                     "wrong_auth_status": bad.status_code,
                                     "wrong_auth_body": bad.text[:300]}
        for route in ssot.routes:
            r = c.get(f"https://{route.hostname}/")
            out["routes"][route.hostname] = {"status": r.status_code,
                                             "location": r.headers.get("location")}
    return out


def standins(st: dict[str, Any]) -> dict[str, Any]:
    """What each stand-in answers with the credentials the verifier gets."""
    s = st["standins"]
    out: dict[str, Any] = {}
    with httpx.Client(timeout=5, verify=st["ca_bundle"]) as c:
        cf = {"Authorization": f"Bearer {os.environ['CLOUDFLARE_API_TOKEN']}"}
        base = os.environ["CLOUDFLARE_API_URL"]
        zones = c.get(f"{base}/zones", headers=cf).json()
        zone = zones["result"][0]
        out["cloudflare"] = {
            "zones": [z["name"] for z in zones["result"]],
            "dns": c.get(f"{base}/zones/{zone['id']}/dns_records", headers=cf).json()["result"],
            "config": c.get(f"{base}/accounts/{s['cloudflare']['account_id']}/cfd_tunnel/"
                            f"{_tunnel(st)}/configurations", headers=cf).json()["result"],
            "write_with_read_token": c.put(
                f"{base}/accounts/{s['cloudflare']['account_id']}/cfd_tunnel/{_tunnel(st)}"
                "/configurations", headers=cf, json={"config": {"ingress": []}}).status_code}
        inf = s["infisical"]
        login = c.post(f"{inf['url']}/api/v1/auth/universal-auth/login",
                       json={"clientId": os.environ["INFISICAL_CLIENT_ID"],
                             "clientSecret": os.environ["INFISICAL_CLIENT_SECRET"]}).json()
        from opsverify.ssot import load
        ssot = load(st["ssot"])
        out["infisical"] = {}
        for sp in ssot.secret_paths:
            r = c.get(f"{inf['url']}/api/v3/secrets/raw",
                      params={"workspaceId": ssot.infisical["project_id"],
                              "environment": ssot.infisical["environment"],
                              "secretPath": sp.path, "viewSecretValue": "false"},
                      headers={"Authorization": f"Bearer {login['accessToken']}"})
            out["infisical"][sp.path] = sorted(x["secretKey"] for x in r.json()["secrets"])
        px = {"Authorization": f"PVEAPIToken={os.environ['PROXMOX_API_TOKEN']}"}
        vms = c.get(f"{s['proxmox']['url']}/api2/json/nodes/pve/qemu", headers=px).json()["data"]
        out["proxmox"] = {}
        for vm in vms:
            cfg = c.get(f"{s['proxmox']['url']}/api2/json/nodes/pve/qemu/{vm['vmid']}/config",
                        headers=px).json()["data"]
            out["proxmox"][str(vm["vmid"])] = {"status": vm["status"], "name": vm.get("name"),
                                               "onboot": cfg.get("onboot")}
        out["proxmox_write_with_auditor"] = c.post(
            f"{s['proxmox']['url']}/api2/json/nodes/pve/qemu/209/status/stop",
            headers=px).status_code
    return out


def _tunnel(st: dict[str, Any]) -> str:
    from opsverify.ssot import load
    return load(st["ssot"]).cloudflare["tunnel_id"]


def prometheus(st: dict[str, Any]) -> dict[str, Any]:
    r = httpx.get(st["standins"]["prometheus"]["url"] + "/api/v1/targets", timeout=5)
    return {t["labels"]["instance"]: t["health"] for t in r.json()["data"]["activeTargets"]}


def ssh(st: dict[str, Any], host: str) -> dict[str, Any]:
    """One SSH login through the twin's ssh_config: exit code and what kind of failure."""
    try:
        p = subprocess.run(["ssh", "-F", st["ssh_config"], host, "hostname"], capture_output=True,
                           text=True, timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return {"rc": None, "error": "timeout"}
    err = p.stderr
    kind = ("host key changed" if "REMOTE HOST IDENTIFICATION HAS CHANGED" in err
            or "Host key verification failed" in err else
            "refused" if "Connection refused" in err else
            "timeout" if "timed out" in err else err.strip()[-200:])
    return {"rc": p.returncode, "out": p.stdout.strip(), "error": kind if p.returncode else None}


def main() -> int:
    if not access.inside(LAYOUT):
        print("run inside the twin: ops lab exec -- python tests/lab/inside.py ...",
              file=sys.stderr)
        return 2
    st = status.status(LAYOUT)
    what, args = sys.argv[1], sys.argv[2:]
    result = {"hosts": hosts, "http": http, "standins": standins, "prometheus": prometheus,
              "ssh": ssh}[what](st, *args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
