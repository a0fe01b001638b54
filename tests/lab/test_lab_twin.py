"""The twin after `ops lab up`: hosts, containers, services and stand-ins as the SSOT says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import docker

from opsverify.lab import hosts as lab_hosts
from opsverify.lab import proc as lab_proc
from opsverify.lab.snapshot import diff, snapshot
from opsverify.ssot import load

SSOT = load()


def test_status_json_has_the_agreed_shape(lab: Any) -> None:
    st = lab.status
    assert set(st) == {"name", "up", "state_dir", "netns", "netns_path", "ssot", "hosts",
                       "ssh_config", "ca_bundle", "standins", "env", "canaries"}
    assert st["up"] is True and st["netns"] == f"opsverify-{lab.layout.name}"
    assert Path(st["netns_path"]).exists() and Path(st["ssot"]).is_absolute()
    assert set(st["hosts"]) == set(SSOT.active_hosts)
    for name, h in st["hosts"].items():
        host = SSOT.hosts[name]
        assert h["hostname"] == host.hostname and h["addresses"] == list(host.addresses)
        assert set(h["ssh"]) == {"address", "user", "port", "identity_file", "known_hosts"}
        assert (h["ssh"]["address"], h["ssh"]["port"]) == (host.ssh_address, host.ssh_port)
        assert Path(f"/proc/{h['pid']}").exists()
        has_docker = any(c.host == name for c in SSOT.containers)
        assert (h["docker_socket"] is not None) == has_docker
        if has_docker:
            assert Path(h["docker_socket"]).is_socket()
    s = st["standins"]
    assert set(s["cloudflare"]) >= {"api_url", "edge", "read_token", "edit_token", "account_id",
                                    "zone_id"}
    assert set(s["infisical"]) >= {"url", "reader", "admin"}
    assert set(s["proxmox"]) >= {"url", "auditor_token", "admin_token"}
    assert s["prometheus"]["url"] == SSOT.prometheus_url
    env = st["env"]
    assert env["CLOUDFLARE_API_URL"] == "https://api.cloudflare.com/client/v4"
    assert env["CLOUDFLARE_API_TOKEN"] == s["cloudflare"]["read_token"]
    assert env["INFISICAL_CLIENT_ID"] == s["infisical"]["reader"]["client_id"]
    assert env["INFISICAL_CLIENT_SECRET"] == s["infisical"]["reader"]["client_secret"]
    assert env["PROXMOX_API_TOKEN"] == s["proxmox"]["auditor_token"]
    assert re.fullmatch(r"[^@]+@[^!]+![^=]+=\S+", env["PROXMOX_API_TOKEN"])
    assert env["OPSVERIFY_CA_BUNDLE"] == env["SSL_CERT_FILE"] == st["ca_bundle"]
    assert env["OPSVERIFY_ACCEPT_FSTYPE"] == "tmpfs" and env["OPSVERIFY_SSOT"] == st["ssot"]
    secrets = lab.state["secrets"]
    assert set(st["canaries"]) == {v for k, v in secrets.items() if k != "seed"}
    assert {secrets[k] for k in SSOT.secret_keys} <= set(st["canaries"])


def test_human_status_prints_no_secret(lab: Any) -> None:
    out = lab.ops("lab", "status").stdout
    assert "UP" in out and lab.status["netns"] in out
    for canary in lab.status["canaries"]:
        assert canary not in out


def test_every_host_answers_ssh_with_its_hostname_and_mounts(lab: Any) -> None:
    facts = lab.inside("hosts")
    assert set(facts) == set(SSOT.active_hosts)
    for name, f in facts.items():
        host = SSOT.hosts[name]
        assert f["hostname"] == host.hostname and f["user"] == host.ssh_user
        if host.ssh_user == "root":
            assert "/usr/local/sbin" in f["path"].split(":")
        for m in (m for m in SSOT.mounts if m.host == name):
            live = f["mounts"][m.path]
            assert (live["source"], live["fstype"]) == (m.source, "tmpfs"), m
            assert m.mode in live["options"] and ({"ro", "rw"} - {m.mode}).isdisjoint(
                live["options"])
            entry = [ln.split() for ln in f["fstab"] if ln.split()[:2] == [m.source, m.path]]
            assert entry and entry[0][2] == m.fstype and m.mode in entry[0][3].split(",")
        if host.tailscale_ip:
            assert f["tailscale"]["backend"] == "Running"
            assert host.tailscale_ip in f["tailscale"]["TailscaleIPs"]
        else:
            assert f["tailscale"] is None
        for stack in SSOT.stacks_on(name):
            # the compose file, and the .env its unit generates where the SSOT declares one
            generated = [g.path.rsplit("/", 1)[1] for g in SSOT.generated_env
                         if g.stack == stack.name and g.path.startswith(stack.directory + "/")]
            assert f["stack_files"][stack.directory] == sorted([stack.compose_file, *generated])
        containers = [c for c in SSOT.containers if c.host == name]
        assert len(f["docker"] or []) == len(containers)
    pve = SSOT.proxmox_host.name
    assert "tank/docker/download-stack" in facts[pve]["zfs"]
    assert "tank/docker/media-stack" not in facts[pve]["zfs"]  # destroyed after its hold


def test_each_vm_runs_exactly_its_ssot_containers(lab: Any) -> None:
    for name, h in lab.status["hosts"].items():
        want = {c.name: c for c in SSOT.containers if c.host == name}
        if not want:
            continue
        cl = docker.DockerClient(base_url=f"unix://{h['docker_socket']}", version="1.41")
        got = {c.name: c.attrs for c in cl.containers.list(all=True)}
        assert set(got) == set(want), name
        for cname, c in want.items():
            a = got[cname]
            state = a["State"]
            assert a["Config"]["Image"] == c.image
            assert state["Status"] == ("running" if c.state == "running" else "exited"), cname
            if c.state == "stopped":
                assert not state["StartedAt"].startswith("0001")  # ran once, then exited
            health = (state.get("Health") or {}).get("Status")
            assert (a["Config"].get("Healthcheck") is not None) == c.healthcheck, cname
            if c.healthcheck and c.state == "running":
                assert health == "healthy", cname
            env = dict(e.split("=", 1) for e in a["Config"]["Env"])
            assert {k: env.get(k) for k in c.env} == c.env
            labels = a["Config"]["Labels"]
            assert labels["com.docker.compose.project"] == c.stack
            assert labels["com.docker.compose.service"] == cname
            assert a["HostConfig"]["NetworkMode"] == "host"
            assert a["RestartCount"] == 0


def test_what_a_health_check_leaves_behind_is_reaped(lab: Any) -> None:
    # busybox `timeout` forks a watchdog that outlives the command: under a PID 1 that never
    # waits (node_exporter), each check left a zombie, and a long soak ran out of PIDs
    h = lab.status["hosts"]["vm210"]
    cl = docker.DockerClient(base_url=f"unix://{h['docker_socket']}", version="1.41")
    box = cl.containers.get("node-exporter")
    for _ in range(3):
        assert box.exec_run(["sh", "-c", "timeout 1 true"]).exit_code == 0
    time.sleep(2.5)  # the watchdogs have given up by now
    pids = box.attrs["State"]["Pid"]
    zombies = [p for p in _descendants(pids) if lab_proc.state(p) == "Z"]
    assert not zombies, [(p, _cmd(p)) for p in zombies]


def test_services_and_routes_answer_as_the_gates_ask(lab: Any) -> None:
    seen = lab.inside("http")
    probes = seen["probes"]
    for p in SSOT.probes:
        got = probes[p.name]
        assert got["status"] == p.expect["status"], p.name
        if "json" in p.expect:
            body = json.loads(got["body"])
            for path, want in p.expect["json"].items():
                value = body
                for part in path.split("."):
                    value = value[part]
                assert value == want, (p.name, path)
        for path in p.expect.get("json_keys", []):
            value = json.loads(got["body"])
            for part in path.split("."):
                value = value[part]
        if "body" in p.expect:
            assert got["body"] == p.expect["body"] and got["ctype"].startswith("text/plain")
        if p.auth.get("header") or p.auth.get("query"):
            assert got["wrong_auth_status"] in (401, 403), p.name
        if p.auth.get("subsonic_user"):
            assert json.loads(got["wrong_auth_body"])["subsonic-response"]["error"]["code"] == 40
    for r in SSOT.routes:
        got = seen["routes"][r.hostname]
        assert got["status"] == r.status, r.hostname
        if r.location:
            assert got["location"] in (r.location, f"https://{r.hostname}{r.location}")


def test_standins_are_seeded_from_the_ssot(lab: Any) -> None:
    s = lab.inside("standins")
    cf, tunnel = s["cloudflare"], SSOT.cloudflare["tunnel_id"]
    assert cf["zones"] == [SSOT.cloudflare["zone"]]
    ingress = cf["config"]["config"]["ingress"]
    assert [(i.get("hostname"), i["service"]) for i in ingress[:-1]] == \
        [(r.hostname, r.service) for r in SSOT.routes]
    assert ingress[-1] == {"service": SSOT.cloudflare["catch_all"]} or \
        (ingress[-1]["service"] == SSOT.cloudflare["catch_all"] and not ingress[-1].get("hostname"))
    dns = {d["name"]: d for d in cf["dns"]}
    for r in SSOT.routes:
        assert dns[r.hostname]["type"] == "CNAME" and dns[r.hostname]["proxied"] is True
        assert dns[r.hostname]["content"] == f"{tunnel}.cfargotunnel.com"
    assert cf["write_with_read_token"] == 403
    assert s["infisical"] == {sp.path: sorted(sp.keys) for sp in SSOT.secret_paths}
    vms = s["proxmox"]
    for h in SSOT.hosts.values():
        if h.vmid and h.active:
            assert vms[str(h.vmid)] == {"status": "running", "name": h.hostname, "onboot": 1}
    assert "201" not in vms
    assert s["proxmox_write_with_auditor"] == 403


def test_prometheus_scrapes_every_ssot_target(lab: Any) -> None:
    targets = lab.inside("prometheus")
    assert targets == {t.instance: "up" for t in SSOT.scrape_targets}


def test_config_files_on_the_hosts_are_wired_as_the_ssot_says(lab: Any) -> None:
    for check in SSOT.config_checks:
        path = lab_hosts.host_root(lab.holder(check.host)) / check.file.lstrip("/")
        assert path.is_file(), check.file
        if check.format == "sqlite":
            rows = [r for r in lab.sqlite_rows(check.host, check.file, check.table)
                    if all(str(r.get(k)) == str(v) for k, v in check.row.items())]
            assert len(rows) == 1
            row = rows[0]
            for key, want in check.keys.items():
                col, *rest = key.split(".")
                value = json.loads(row[col]) if rest else row[col]
                for part in rest:
                    value = value[part]
                assert value == want, (check.name, key)
        elif check.format == "xml":
            root = ET.parse(path).getroot()
            for key, want in check.keys.items():
                nodes = [root]
                for part in key.split(".")[1:]:
                    nodes = [c for n in nodes for c in n if c.tag == part]
                want_s = str(want).lower() if isinstance(want, bool) else str(want)
                assert nodes and all(n.text == want_s for n in nodes), (check.name, key)


def test_exec_runs_inside_with_the_twin_environment_and_exit_code(lab: Any) -> None:
    proc = lab.ops("lab", "exec", "--", "sh", "-c",
                   'echo "$CLOUDFLARE_API_URL $OPSVERIFY_ACCEPT_FSTYPE"; '
                   "getent hosts api.cloudflare.com jellyfin.ronny.works pve; "
                   "ip -o link show | wc -l; ip route | wc -l; exit 7", check=False)
    assert proc.returncode == 7
    lines = proc.stdout.splitlines()
    assert lines[0] == "https://api.cloudflare.com/client/v4 tmpfs"
    assert lines[1].split()[0] == "127.0.1.1" and lines[2].split()[0] == "127.0.1.2"
    assert lines[3].split()[0] == SSOT.hosts["pve"].ssh_address
    assert lines[4] == "1"  # the loopback is the only interface
    assert lines[5] == "0"  # and nothing routes out


def test_ssh_runs_a_command_on_a_host(lab: Any) -> None:
    proc = lab.ops("lab", "ssh", "vm209", "--", "hostname", "&&", "cat", "/etc/fstab")
    assert proc.stdout.splitlines()[0] == SSOT.hosts["vm209"].hostname
    assert "192.168.1.184:/media /mnt/media nfs4" in proc.stdout
    bad = lab.ops("lab", "ssh", "nosuchhost", "--", "true", check=False)
    assert bad.returncode == 1 and "no twin host 'nosuchhost'" in bad.stderr


def test_guard_nothing_of_the_twin_lives_in_the_machines_namespace(lab: Any) -> None:
    """The SSOT's addresses exist only in the twin; no twin process uses the machine's network."""
    ssot_addrs = {a for h in SSOT.hosts.values() for a in h.addresses}
    ssot_addrs |= set(SSOT.retired_addresses) | {t.address for t in SSOT.scrape_targets}
    root_addrs = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True,
                                check=True).stdout
    assert not [a for a in ssot_addrs if f" {a}/" in root_addrs]
    twin_net = os.stat(lab.status["netns_path"]).st_ino
    own_net = os.stat("/proc/self/ns/net").st_ino
    assert twin_net != own_net
    ours = {h["pid"] for h in lab.state["hosts"].values()}
    ours |= {h.get("dockerd_pid") for h in lab.state["hosts"].values()} - {None}
    ours |= set(lab.state["services"].values())
    for pid in list(ours):
        ours |= _descendants(pid)
    for pid in ours:
        try:
            assert os.stat(f"/proc/{pid}/ns/net").st_ino == twin_net, _cmd(pid)
        except FileNotFoundError:
            continue
    root_listeners = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True,
                                    check=True).stdout
    pids = {int(p) for p in re.findall(r"pid=(\d+)", root_listeners)}
    assert not pids & ours, [_cmd(p) for p in pids & ours]
    # Every daemon started for this twin (they all name its state directory) is inside it.
    state_dir = lab.status["state_dir"].encode()
    daemons = (b"dockerd", b"containerd", b"sshd", b"prometheus", b"opsverify.lab.standins")
    for entry in os.scandir("/proc"):
        cmd = _cmdline(int(entry.name)) if entry.name.isdigit() else b""
        if state_dir in cmd and any(d in cmd for d in daemons):
            try:
                assert os.stat(f"/proc/{entry.name}/ns/net").st_ino == twin_net, _cmd(
                    int(entry.name))
            except FileNotFoundError:
                continue


def _descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except FileNotFoundError:
            continue
        for k in map(int, kids):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _cmd(pid: int) -> str:
    return _cmdline(pid).replace(b"\0", b" ").decode(errors="replace")


def test_second_up_converges_to_the_same_clean_twin(lab: Any) -> None:
    proc = lab.ops("lab", "up")
    assert "reused" in proc.stdout
    assert diff(lab.clean, snapshot(lab.layout)) == []
    assert json.loads(lab.ops("lab", "status", "--json").stdout)["canaries"] == \
        lab.status["canaries"]
