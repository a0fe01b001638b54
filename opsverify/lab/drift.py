"""Drift on demand: each scenario breaks one thing the way it broke (or could) in the scope
document, through the interface a person would use: the VM's Docker engine, a shell on the
host over SSH, the Cloudflare / Infisical / Proxmox APIs with write credentials.

Runs inside the twin's network (`ops lab drift` re-enters it). `undo` names the parts of the
twin that `reset` converges back; `ops lab reset` restores everything.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from opsverify import families

from . import apps, drift_api, engine, hosts
from .access import inside, ssh_argv
from .drift_host import SCENARIOS as HOST_SCENARIOS
from .image import split_ref
from .layout import LabError, Layout
from .proc import host_argv, signal_each, stop
from .spec import MEDIA_DIRS, World
from .status import status
from .twin import load_world, reset

HOST_FAMILIES = families.reading_host_facts()
TAILSCALE_NFS = "100.64.0.184"  # invented: pve as it would look on the tailnet


class Drifter:
    """What a scenario may use: the twin's world, its hosts' shells, engines and APIs."""

    def __init__(self, layout: Layout, say: Callable[[str], None]):
        self.layout, self.say = layout, say
        self.status = status(layout)
        self.state = layout.read_state()
        self.world: World = load_world(layout, self.state)
        self.ssot = self.world.ssot
        self.http = httpx.Client(verify=self.status["ca_bundle"], timeout=10)

    # -- hosts --
    def host(self, name: str) -> Any:
        if name not in self.world.hosts:
            raise LabError(f"the SSOT has no active host {name!r}")
        return self.world.hosts[name]

    def sh(self, host: str, script: str, stdin: str | None = None) -> str:
        """Run a shell script as root on a twin host through its sshd (values go via stdin)."""
        self.host(host)
        proc = subprocess.run(ssh_argv(self.layout, host, ["sh", "-ec", shlex.quote(script)]),
                              input=stdin, capture_output=True, text=True, timeout=30,
                              check=False)
        if proc.returncode:
            raise LabError(f"{host}: {script.splitlines()[0]}...: exit {proc.returncode}: "
                           f"{proc.stderr.strip()[-300:]}")
        return proc.stdout

    def holder(self, host: str) -> int:
        return self.state["hosts"][self.host(host).name]["pid"]

    # -- docker --
    def docker(self, host: str) -> Any:
        if not self.host(host).docker:
            raise LabError(f"host {host} runs no containers")
        return engine.client(self.layout, host)

    def spec(self, host: str, name: str) -> Any:
        found = [c for c in self.host(host).containers if c.name == name]
        if not found:
            raise LabError(f"the SSOT has no container {name!r} on {host}")
        return found[0]

    def recreate(self, host: str, name: str, **override: Any) -> None:
        """Remove a container and create it again with some settings changed, as compose would."""
        cl = self.docker(host)
        cl.containers.get(name).remove(force=True)
        engine.create(cl, self.spec(host, name), **override).start()

    def health(self, host: str, name: str) -> str | None:
        c = self.docker(host).containers.get(name)
        return (c.attrs["State"].get("Health") or {}).get("Status")

    # -- APIs --
    def cloudflare(self, method: str, path: str, body: Any = None) -> Any:
        cf = self.status["standins"]["cloudflare"]
        r = self.http.request(method, cf["api_url"] + path, json=body,
                              headers={"Authorization": f"Bearer {cf['edit_token']}"})
        return _ok(r, "cloudflare")["result"]

    def proxmox(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        px = self.status["standins"]["proxmox"]
        r = self.http.request(method, f"{px['url']}/api2/json{path}", data=data,
                              headers={"Authorization": f"PVEAPIToken={px['admin_token']}"})
        return _ok(r, "proxmox")["data"]

    def infisical(self, method: str, path: str, body: dict[str, Any]) -> Any:
        inf = self.status["standins"]["infisical"]
        login = _ok(self.http.post(f"{inf['url']}/api/v1/auth/universal-auth/login",
                                   json={"clientId": inf["admin"]["client_id"],
                                         "clientSecret": inf["admin"]["client_secret"]}),
                    "infisical")
        r = self.http.request(method, inf["url"] + path, json=body,
                              headers={"Authorization": f"Bearer {login['accessToken']}"})
        return _ok(r, "infisical")

    def prometheus_target(self, instance: str) -> str | None:
        r = self.http.get(self.status["standins"]["prometheus"]["url"] + "/api/v1/targets")
        for t in _ok(r, "prometheus")["data"]["activeTargets"]:
            if t["labels"].get("instance") == instance:
                return t["health"]
        return None

    def wait(self, what: str, done: Callable[[], bool], timeout: float = 60) -> None:
        self.say(f"waiting until {what}")
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise LabError(f"gave up waiting ({timeout:.0f} s) until {what}")
            time.sleep(0.5)

    # -- SSOT look-ups --
    def retired(self, host: str) -> str:
        """The retired address of a decommissioned host (VM 201's 100.117.1.53)."""
        for d in self.ssot.decommissions:
            if d.host == host and d.address:
                return d.address
        raise LabError(f"the SSOT has no decommission record with an address for {host}")

    def mount(self, host: str, path: str) -> Any:
        for m in self.host(host).mounts:
            if m.path == path:
                return m
        raise LabError(f"the SSOT has no mount {path} on {host}")

    def wiring_ref(self, name: str) -> Any:
        for c in self.ssot.config_checks:
            if c.name == name:
                return c
        raise LabError(f"the SSOT has no wiring check {name!r}")


def _ok(r: httpx.Response, api: str) -> Any:
    if r.status_code >= 300:
        raise LabError(f"{api} API: {r.request.method} {r.request.url.path}: HTTP {r.status_code}"
                       f" {r.text[:200]}")
    return r.json()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    families: tuple[str, ...]  # gate families expected to FAIL (or be UNREACHABLE)
    apply: Callable[[Drifter], None]
    undo: tuple[str, ...]      # twin parts reset converges: "vm210:mounts", "*:standins"
    outcome: str = "fail"      # fail | unreachable | pass (a change that is not drift)


# ---- the scenarios ---------------------------------------------------------------------------

def media_rw(d: Drifter) -> None:
    m = d.mount("vm210", "/mnt/media")
    d.sh("vm210", shlex.join(["mount", "-t", "tmpfs", "-o", "remount,rw", m.source, m.path]))


def nfs_over_tailscale(d: Drifter) -> None:
    m = d.mount("vm209", "/mnt/media")
    server = m.source.split(":")[0]
    bad = f"{TAILSCALE_NFS}:{m.export}"
    # The fstab is edited in place (cat >), as sed -i cannot replace a bind-mounted file.
    d.sh("vm209", f"sed 's#^{server}:{m.export} #{bad} #' /etc/fstab > /run/fstab.new\n"
                  "cat /run/fstab.new > /etc/fstab && rm /run/fstab.new\n"
                  f"umount {m.path}\n"
                  f"mount -t tmpfs -o rw,size=16m,mode=755 {bad} {m.path}\n"
                  f"cd {m.path} && mkdir -p {' '.join(MEDIA_DIRS)}")  # same export, same dirs


def stale_prowlarr(d: Drifter) -> None:
    check = d.wiring_ref("prowlarr->radarr")
    radarr = d.ssot.container(check.target or "")
    ctx = apps.Ctx(d.ssot, d.world.secrets, d.world.secrets["seed"])
    port = radarr.ports[0].container if radarr and radarr.ports else 7878
    settings = json.dumps({"prowlarrUrl": "http://prowlarr:9696",
                           "baseUrl": f"http://{d.retired('vm201')}:{port}",
                           "apiKey": ctx.ident("stale-radarr-key"),  # the old VM's key
                           "syncCategories": [2000, 2010, 2020, 2030, 2040, 2045, 2050, 2060]},
                          indent=2)
    row = "Radarr (media-stack)"
    sql = ('INSERT INTO "Applications" ("Name","Implementation","Settings","ConfigContract",'
           f'"SyncLevel","Tags") VALUES (\'{row}\', \'Radarr\', readfile(\'/run/settings.json\'), '
           "'RadarrSettings', 2, '[]');")
    d.sh("vm209", f"cat > /run/settings.json\nsqlite3 {check.file} {shlex.quote(sql)}\n"
                  "rm /run/settings.json", stdin=settings)


def stale_plugin(d: Drifter) -> None:
    checks = [d.wiring_ref("jellyfin-homescreensections->radarr"),
              d.wiring_ref("jellyfin-homescreensections->sonarr")]
    old = d.retired("vm201")
    for c in checks:
        d.sh("vm210", f"sed -i 's#{c.address}:#{old}:#' {shlex.quote(c.file)}")


def container_unhealthy(d: Drifter) -> None:
    # Bazarr hangs: its process stops answering, the health check times out. (Its process, not
    # the container's PID 1: that is docker-init, which cannot pass SIGSTOP on.)
    signal_each(engine.app_pids(d.docker("vm210").containers.get("bazarr")), signal.SIGSTOP)
    d.wait("docker says bazarr is unhealthy", lambda: d.health("vm210", "bazarr") == "unhealthy")


def container_stopped(d: Drifter) -> None:
    d.docker("vm209").containers.get("flaresolverr").stop(timeout=3)


def stopped_running(d: Drifter) -> None:
    d.docker("vm209").containers.get("tdarr").start()


def unexpected_container(d: Drifter) -> None:
    cl = d.docker("vm210")
    ref = "lscr.io/linuxserver/qbittorrent:latest"
    base = cl.images.list()[0]
    cl.api.tag(base.id, *split_ref(ref))  # stands for `docker pull`
    h = d.host("vm210").host
    listen = [x for a in h.addresses for x in ("-l", f"{a}:8090")]
    cl.containers.run(ref, ["/twin/httpd", *listen, "-r", "/ 200 text/html qBittorrent"],
                      name="qbittorrent", network_mode="host", detach=True)


def homarr_image(d: Drifter) -> None:
    cl = d.docker("vm210")
    ref = "ghcr.io/homarr-labs/homarr:latest"
    cl.api.tag(cl.images.get(d.spec("vm210", "homarr").image).id, *split_ref(ref))
    d.recreate("vm210", "homarr", image=ref)
    d.wait("homarr v2 is healthy", lambda: d.health("vm210", "homarr") == "healthy")


def watchtower_env(d: Drifter) -> None:
    spec = d.spec("vm210", "watchtower")
    env = {k: v for k, v in spec.env.items() if k != "DOCKER_API_VERSION"}
    d.recreate("vm210", "watchtower", env=env)
    d.wait("watchtower is healthy", lambda: d.health("vm210", "watchtower") == "healthy")


def plaintext_env(d: Drifter) -> None:
    stack = d.ssot.stacks["download-stack"]
    keys = [k for sp in d.ssot.secret_paths if sp.stack == stack.name for k in sp.keys]
    content = "".join(f"{k}={d.world.secrets[k]}\n" for k in keys)
    d.sh(stack.host, f"umask 077; cat > {shlex.quote(stack.directory)}/.env", stdin=content)


def compose_literal(d: Drifter) -> None:
    stack = d.ssot.stacks["streaming-stack"]
    # The value arrives on stdin; it never appears on a command line.
    d.sh(stack.host, f'v=$(cat); sed -i "s|\\${{LASTFM_API_KEY}}|$v|" '
                     f"{shlex.quote(stack.compose_path)}", stdin=d.world.secrets["LASTFM_API_KEY"])


def route_to_retired(d: Drifter) -> None:
    cf = d.status["standins"]["cloudflare"]
    path = f"/accounts/{cf['account_id']}/cfd_tunnel/{d.ssot.cloudflare['tunnel_id']}" \
           "/configurations"
    config = d.cloudflare("GET", path)["config"]
    port = next(r.port for r in d.ssot.routes if r.hostname.startswith("jellyfin."))
    for rule in config["ingress"]:
        if (rule.get("hostname") or "").startswith("jellyfin."):
            rule["service"] = f"http://{d.retired('vm201')}:{port}"
    d.cloudflare("PUT", path, {"config": config})


def requests_200(d: Drifter) -> None:
    spec = d.spec("vm210", "jellyseerr")
    cmd = list(spec.command)
    i = cmd.index(next(a for a in cmd if a.startswith("/ 3")))
    cmd[i] = "/ 200 text/html <!doctype html><title>Jellyseerr</title>"
    d.recreate("vm210", "jellyseerr", command=cmd)
    d.wait("jellyseerr is healthy", lambda: d.health("vm210", "jellyseerr") == "healthy")


def _vm201(d: Drifter, start: bool) -> None:
    rec = next(x for x in d.ssot.decommissions if x.host == "vm201")
    node = rec.node
    d.proxmox("POST", f"/nodes/{node}/qemu",
              {"vmid": rec.vmid, "name": d.ssot.hosts[rec.host].hostname, "onboot": 1,
               "cores": 4, "memory": 16384})
    if start:
        d.proxmox("POST", f"/nodes/{node}/qemu/{rec.vmid}/status/start")


def infisical_missing(d: Drifter) -> None:
    path = next(sp for sp in d.ssot.secret_paths if "LASTFM_SECRET" in sp.keys)
    inf = d.ssot.infisical
    d.infisical("DELETE", "/api/v3/secrets/raw/LASTFM_SECRET",
                {"workspaceId": inf["project_id"], "environment": inf["environment"],
                 "secretPath": path.path})


def posterizarr_dns(d: Drifter) -> None:
    c = d.wiring_ref("posterizarr->jellyfin")
    d.sh("vm209", f"sed -i 's#\"JellyfinUrl\": \"[^\"]*\"#\"JellyfinUrl\": "
                  f"\"http://jellyfin:8096\"#' {shlex.quote(c.file)}")


def jellyseerr_localhost(d: Drifter) -> None:
    c = d.wiring_ref("jellyseerr->jellyfin")
    d.sh("vm210", f"sed -i 's#\"ip\": \"jellyfin\"#\"ip\": \"127.0.0.1\"#' {shlex.quote(c.file)}")


def node_exporter_down(d: Drifter) -> None:
    spec = d.spec("vm210", "node-exporter")
    target = next(t for t in d.ssot.scrape_targets if t.host == "vm210")
    health = dict(spec.healthcheck or {})
    health["test"] = ["CMD-SHELL", (f"timeout 2 wget -q -O /dev/null "
                                   f"http://127.0.0.1:{target.port}/ || exit 1")]
    d.recreate("vm210", "node-exporter", healthcheck=health,
               command=["/bin/node_exporter", f"--web.listen-address=127.0.0.1:{target.port}"])
    d.wait(f"Prometheus reports {target.instance} down while the container is healthy",
           lambda: d.prometheus_target(target.instance) == "down"
           and d.health("vm210", "node-exporter") == "healthy", timeout=60)


def host_key_rotated(d: Drifter) -> None:
    hs = d.host("vm209")
    key = d.layout.host(hs.name) / "ssh_host_ed25519_key"
    for p in (key, key.with_suffix(".pub")):
        p.unlink()
    # As after a reinstall: a new host key, the client's known_hosts still pins the old one.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    hosts.start_sshd(d.layout, hs, d.holder("vm209"))


def sshd_stopped(d: Drifter) -> None:
    stop(hosts.sshd_pids(d.holder("vm209")), grace=2, sig=signal.SIGTERM)


def sshd_frozen(d: Drifter) -> None:
    hosts.signal_sshd(d.holder("vm209"), signal.SIGSTOP)


def hung_nfs(d: Drifter) -> None:
    m = d.mount("vm209", "/mnt/docker")
    target = str(Path(d.wiring_ref("prowlarr->radarr").file).parent)  # /mnt/docker/prowlarr
    # The kernel here has no NFS client: a FUSE mount that never answers hangs every access
    # the way a hard NFS mount does when its server stops (see hung_mount.py). It sits on
    # Prowlarr's config directory, as a nested export would, so /mnt/docker itself still
    # looks right and only what reads below it hangs.
    proc = subprocess.Popen(
        host_argv(d.holder("vm209")) + [sys.executable, "-m", "opsverify.lab.hung_mount",
                                        target, m.source + target.removeprefix(m.path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    if not (proc.stdout.readline() if proc.stdout else "").startswith("ready"):
        raise LabError(f"vm209: could not hang {target} (is /dev/fuse there?)")
    hosts.hung_mount_pidfile(d.layout, "vm209").write_text(f"{proc.pid} {target}\n")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("media-rw-vm210", "210's /mnt/media remounted rw (streaming must only read)",
             ("mounts",), media_rw, ("vm210:mounts",)),
    Scenario("nfs-over-tailscale-vm209", "209's /mnt/media mounted from pve's Tailscale "
             f"address ({TAILSCALE_NFS}), in the mount and in fstab (the P3 D-state deadlock)",
             ("mounts",), nfs_over_tailscale, ("vm209:mounts", "vm209:files")),
    Scenario("stale-ip-prowlarr", "a second Prowlarr application 'Radarr (media-stack)' "
             "syncing to VM 201 (100.117.1.53:7878)", ("stale_refs",), stale_prowlarr,
             ("vm209:files",)),
    Scenario("stale-ip-jellyfin-plugin", "HomeScreenSections SonarrUrl/RadarrUrl back on "
             "VM 201 (100.117.1.53)", ("stale_refs", "wiring"), stale_plugin, ("vm210:files",)),
    Scenario("container-unhealthy", "bazarr hangs (SIGSTOP) until docker says unhealthy",
             ("containers",), container_unhealthy, ("vm210:containers",)),
    Scenario("container-stopped", "`docker stop flaresolverr` on 209", ("containers",),
             container_stopped, ("vm209:containers",)),
    Scenario("stopped-container-running", "`docker start tdarr` on 209 (meant to stay exited)",
             ("containers",), stopped_running, ("vm209:containers",)),
    Scenario("unexpected-container-vm210", "a container qbittorrent started on 210",
             ("containers",), unexpected_container, ("vm210:containers",)),
    Scenario("homarr-image", "homarr recreated from ghcr.io/homarr-labs/homarr:latest (v2)",
             ("containers",), homarr_image, ("vm210:containers",)),
    Scenario("watchtower-api-version", "210's watchtower recreated without "
             "DOCKER_API_VERSION", ("containers",), watchtower_env, ("vm210:containers",)),
    Scenario("plaintext-env", "a .env with the stack's secret keys and values in 209's stack "
             "directory", ("secrets",), plaintext_env, ("vm209:files",)),
    Scenario("compose-literal-secret", "210's compose file holds the literal value of "
             "LASTFM_API_KEY", ("secrets",), compose_literal, ("vm210:files",)),
    Scenario("route-to-retired", "tunnel ingress for jellyfin.ronny.works back on "
             "http://100.117.1.53:8096 (PUT configurations)", ("routes",), route_to_retired,
             ("*:standins",)),
    Scenario("requests-200", "jellyseerr's / answers 200 instead of 307 to /login",
             ("routes",), requests_200, ("vm210:containers",)),
    Scenario("vm201-onboot", "VM 201 recreated through the Proxmox API: stopped, onboot 1",
             ("decom",), lambda d: _vm201(d, start=False), ("*:standins",)),
    Scenario("vm201-running", "VM 201 recreated through the Proxmox API and started",
             ("decom",), lambda d: _vm201(d, start=True), ("*:standins",)),
    Scenario("infisical-key-missing", "LASTFM_SECRET deleted from Infisical", ("secrets",),
             infisical_missing, ("*:standins",)),
    Scenario("posterizarr-docker-dns", "Posterizarr reaches Jellyfin as http://jellyfin:8096 "
             "(Docker DNS does not cross VMs)", ("wiring",), posterizarr_dns, ("vm209:files",)),
    Scenario("jellyseerr-localhost", "Jellyseerr reaches Jellyfin at 127.0.0.1", ("wiring",),
             jellyseerr_localhost, ("vm210:files",)),
    Scenario("node-exporter-down-vm210", "210's node-exporter listens on 127.0.0.1 only; its "
             "container stays healthy, Prometheus's target goes down", ("observability",),
             node_exporter_down, ("vm210:containers",)),
    Scenario("host-key-rotated-vm209", "209's sshd has a new host key; known_hosts still pins "
             "the old one", ("reachability",), host_key_rotated, ("vm209:sshd",)),
    Scenario("sshd-stopped-vm209", "209's sshd stopped: every gate of the host is UNREACHABLE",
             HOST_FAMILIES, sshd_stopped, ("vm209:sshd",), "unreachable"),
    Scenario("sshd-frozen-vm209", "209's sshd frozen (SIGSTOP): connections hang, every gate "
             "of the host is UNREACHABLE", HOST_FAMILIES, sshd_frozen, ("vm209:sshd",),
             "unreachable"),
    Scenario("hung-nfs-vm209", "209's /mnt/docker/prowlarr hangs like a hard NFS mount whose "
             "server stopped answering: reading it blocks (the .env scan of the config roots too)",
             ("secrets", "stale_refs", "wiring"), hung_nfs,
             ("vm209:mounts",), "unreachable"),
) + tuple(Scenario(**fields) for fields in drift_api.SCENARIOS)  # Proxmox and Infisical APIs
SCENARIOS += tuple(Scenario(**fields) for fields in HOST_SCENARIOS)  # fstab, restart loop


def get(name: str) -> Scenario:
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise LabError(f"no drift scenario {name!r}; `ops lab drift --list` shows them")


def apply(layout: Layout, scenario: Scenario, say: Callable[[str], None] = lambda _: None) -> None:
    """Apply one scenario to the running twin (from inside its network namespace)."""
    if not inside(layout):
        raise LabError("drift scenarios talk to the twin's APIs: run them inside it "
                       "(`ops lab drift NAME` does)")
    d = Drifter(layout, say)
    if not d.status["up"]:
        raise LabError(f"twin {layout.name!r} is not up (run `ops lab up`)")
    say(scenario.description)
    scenario.apply(d)


def undo(layout: Layout, scenario: Scenario, say: Callable[[str], None] = lambda _: None) -> None:
    """Converge just the parts of the twin this scenario changed."""
    reset(layout, say, only=set(scenario.undo))
