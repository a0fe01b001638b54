"""Issue 10's host-side gates on facts built from real samples through the real collectors."""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import samples

from opsverify.facts.agent import configs, docker, envfiles, fstab, primitives, programs, stacks
from opsverify.families import containers, mounts, reachability, secrets, wiring
from opsverify.redact import SECRET_NAME
from opsverify.ssot import load
from opsverify.ssot.model import ConfigCheck, Container, GeneratedEnv, Host, Mount, Port, Stack

SSOT = load()


# --- 2: x-systemd.automount ------------------------------------------------------------------

def automount_facts(table: str, automounts: dict, fstab_text: str) -> dict[str, Any]:
    entries, errors = fstab.parse_fstab(fstab_text)
    return {"mounts": fstab.parse_proc_mounts(samples.text(table)), "automounts": automounts,
            "fstab": entries, "fstab_errors": errors}


MEDIA = Mount("client", "/mnt/media", "disk", "", "/dev/mapper/media-crypt", "f2fs", "rw")
FSTAB = "/dev/mapper/media-crypt /mnt/media f2fs noauto,x-systemd.automount 0 0\n"


def test_automount_mounted_on_access_passes() -> None:
    facts = automount_facts("proc_mounts_systemd_automount_f2fs_list.txt",
                            {"/mnt/media": {"triggered": True, "mounted": True, "error": None}},
                            FSTAB)
    assert mounts.check(MEDIA, facts).problems == []


def test_automount_still_idle_is_one_clear_failure() -> None:
    facts = automount_facts("proc_mounts_systemd_automount_idle_DERIVED.txt",
                            {"/mnt/media": {"triggered": True, "mounted": False,
                                            "error": "no answer within 5.0 s when triggered "
                                                     "(server down?)"}}, FSTAB)
    assert mounts.check(MEDIA, facts).problems == [
        ("automount configured, not mounted (no answer within 5.0 s when triggered (server "
        "down?)); /etc/fstab line 1: /dev/mapper/media-crypt /mnt/media f2fs "
        "noauto,x-systemd.automount")]


def test_fstab_line_never_shows_a_password_option() -> None:
    line = mounts.fstab_line({"line": 3, "source": "//nas/media", "target": "/mnt/m",
                              "fstype": "cifs", "options": ["password=hunter2", "ro"]})
    assert line == "/etc/fstab line 3: //nas/media /mnt/m cifs password=***,ro"


# --- 3: fstab as libmount reads it -----------------------------------------------------------

def test_inline_comment_costs_nothing_and_a_broken_line_only_its_mount() -> None:
    text = samples.text("fstab_inline_comments_csdn.txt") + \
        samples.text("fstab_issue_lines_rofs_lxd.txt")
    entries, errors = fstab.parse_fstab(text)
    facts = {"mounts": [{"source": "UUID=0efa1906-cbf6-a68d-de1f-26f6c0e878ae",
                         "target": "/iscsi", "fstype": "gfs2", "options": ["rw"]}],
             "fstab": entries, "fstab_errors": errors}
    iscsi = Mount("c", "/iscsi", "d", "", "UUID=0efa1906-cbf6-a68d-de1f-26f6c0e878ae", "gfs2",
                  "rw")
    assert mounts.check(iscsi, facts).problems == []  # its line ends in `#添加`
    broken = Mount("c", "/the/read/write/device", "d", "", "/usr/local/bin/rofs-filtered",
                   "fuse", "rw")
    assert mounts.check(broken, facts).problems == [
        "not mounted", ("fstab: /etc/fstab line 10: dump (5th field) is not a number; mount(8) "
                       "and systemd skip this line, so the mount does not survive a reboot")]


# --- 5: a restart loop caught between restarts ------------------------------------------------

def portainer(**state: Any) -> dict[str, Any]:
    doc = samples.load_json("docker_inspect_portainer_running_watchtower.json")
    doc["State"].update(state)
    return doc


def test_restart_loop_state_from_docker_cli_4779() -> None:
    # the real State of a container restarted 0.6 s after it exited, caught up and running
    state = samples.load_json("docker_state_restarted_cli4779_EXCERPT.json")
    doc = {**portainer(**state), "RestartCount": 3}
    c = docker.parse_container(doc)
    box = Container("s", "h", "portainer", "running", False, "portainer/portainer:latest",
                    (Port(9000, 9000),))
    two_minutes_later = {"docker": {"ok": True, "now": "2024-01-11T21:59:23Z",
                                    "containers": [c]}}
    assert containers.check(box, two_minutes_later).problems == [
        ("restarted: up 119 s after 3 restarts (a restart loop caught between restarts; the SSOT "
        "does not say may_restart)")]
    next_day = {"docker": {**two_minutes_later["docker"], "now": "2024-01-12T21:57:23Z"}}
    assert containers.check(box, next_day).problems == []


# --- 14: published ports ----------------------------------------------------------------------

def test_published_ports_of_a_real_inspect_and_the_api_port_map() -> None:
    c = docker.parse_container(portainer())
    assert c["ports_published"] == [{"container_port": 9000, "proto": "tcp",
                                     "host_ip": "0.0.0.0", "host_port": 9000}]
    facts = {"docker": {"ok": True, "containers": [c]}}
    box = Container("s", "h", "portainer", "running", False, "portainer/portainer:latest",
                    (Port(9000, 9000),))
    assert containers.check(box, facts).problems == []
    portmap = samples.load_json("docker_api_portmap_swagger_example.json")
    doc = portainer()
    doc["HostConfig"]["PortBindings"] = doc["NetworkSettings"]["Ports"] = portmap
    c = docker.parse_container(doc)
    assert [(p["host_port"], p["container_port"], p["proto"]) for p in c["ports_published"]] == [
        (53, 53, "udp"), (80, 80, "tcp"), (8080, 80, "tcp"), (80, 80, "udp"), (4443, 443, "tcp")]
    mapped = Container("s", "h", "portainer", "running", False, "portainer/portainer:latest",
                       (Port(53, 53, "udp"), Port(80, 80), Port(8080, 80), Port(80, 80, "udp"),
                        Port(4443, 443)))
    facts = {"docker": {"ok": True, "containers": [c]}}
    assert containers.check(mapped, facts).problems == []
    assert containers.check(box, facts).problems == [
        ("published ports: expected 9000->9000/tcp, got 4443->443/tcp, 53->53/udp, 80->80/tcp, "
        "80->80/udp, 8080->80/tcp (bound by the engine)")]


# --- 9: tailscale logged out -------------------------------------------------------------------

def test_logged_out_state_is_kept_even_from_a_failing_exit(monkeypatch) -> None:
    out = samples.raw("tailscale_status_json_needslogin_issue1680_EXCERPT.json")
    for rc in (0, 1):  # real tailscale exits 0 here (status.go); a wrapper might not
        monkeypatch.setattr(programs, "run_program", lambda name, t, rc=rc: (rc, out, b""))
        ctx = primitives.Context({"budget_s": 5}, 1e12)
        ts = programs.tailscale_facts(ctx)["tailscale"]
        assert (ts["ok"], ts["backend_state"], ts["ips"]) == (True, "NeedsLogin", [])
        assert ts["error"] == (None if rc == 0 else "tailscale status: exit status 1")
        host = Host("vm209", "vm", "active", "download-stack", tailscale_ip="100.107.36.76")
        found = reachability.check(host, {"hostname": "download-stack", "tailscale": ts})
        assert found.problems[0] == "tailscale backend state: expected Running, got NeedsLogin"
    monkeypatch.setattr(programs, "run_program", lambda name, t: (1, b"", b"failed to connect"))
    ts = programs.tailscale_facts(primitives.Context({"budget_s": 5}, 1e12))["tailscale"]
    assert (ts["ok"], ts["error"]) == (False, "failed to connect")


# --- 11: Recyclarr's !env_var / !secret --------------------------------------------------------

RECYCLARR = next(c for c in SSOT.config_checks if c.name == "recyclarr->radarr")


def test_recyclarr_indirection_resolved_compared_unresolved_failed(tmp_path: Path) -> None:
    path = tmp_path / "recyclarr.yml"
    path.write_text(samples.text("recyclarr_secrets_docs_config.yml"))
    (tmp_path / "secrets.yml").write_text(samples.text("recyclarr_secrets_docs_secrets.yml"))
    params = {"name": RECYCLARR.name, "file": str(path), "format": "yaml", "keys":
              list(RECYCLARR.keys), "container": "recyclarr"}
    got = configs.config_values(params, SECRET_NAME)
    check = wiring.check(SSOT, RECYCLARR, {"config": {RECYCLARR.name: got}})
    assert check.problems == [("radarr.*.base_url: expected http://radarr:7878, got "
                              "http://localhost:7878 (localhost is the container itself, not "
                              "radarr)")]
    (tmp_path / "secrets.yml").unlink()
    got = configs.config_values(params, SECRET_NAME)
    check = wiring.check(SSOT, RECYCLARR, {"config": {RECYCLARR.name: got}})
    assert check.problems == [(f"radarr.*.base_url: unresolved indirection: !secret "
                              f"radarr4k_another_url: no secrets.yml beside {path}; not "
                              "compared as a literal")]


# --- 13: autopulse and crosswatch reach Jellyfin across VMs ---------------------------------

def config_check(name: str) -> ConfigCheck:
    return next(c for c in SSOT.config_checks if c.name == name)


def test_autopulse_example_uses_the_docker_dns_name(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(samples.text("autopulse_example_config.toml"))
    chk = config_check("autopulse->jellyfin")
    got = configs.config_values({"name": chk.name, "file": str(path), "format": "toml",
                                "keys": list(chk.keys)}, SECRET_NAME)
    problems = wiring.check(SSOT, chk, {"config": {chk.name: got}}).problems
    assert "targets.*.url: expected http://100.123.207.64:8096, got http://plex:32400" \
           in problems[0]
    assert problems[1] == ("targets.*.url: expected http://100.123.207.64:8096, got "
                           "http://jellyfin:8096 (the Docker DNS name jellyfin does not resolve "
                           "across VMs; use jellyfin's Tailscale IP 100.123.207.64)")


def test_crosswatch_is_checked_only_once_configured(tmp_path: Path) -> None:
    chk = config_check("crosswatch->jellyfin")
    path = tmp_path / "config.json"
    default = samples.load_json("crosswatch_config_default_jellyfin_RECONSTRUCTED.json")

    def run(doc: dict | None) -> Any:
        if doc is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(json.dumps(doc))
        got = configs.config_values({"name": chk.name, "file": str(path), "format": "json",
                                    "keys": list(chk.keys)}, SECRET_NAME)
        return wiring.check(SSOT, chk, {"config": {chk.name: got}})

    for doc in (None, default):
        c = run(doc)
        assert c.problems == [] and c.skip_reason.startswith(
            "crosswatch->jellyfin: not configured yet")
    configured = copy.deepcopy(default)
    configured["jellyfin"]["server"] = "http://100.123.207.64:8096/"  # _clean_base adds the /
    assert run(configured).problems == [] and run(configured).skip_reason is None
    configured["jellyfin"]["server"] = "http://jellyfin:8096/"
    assert run(configured).problems == [
        ("jellyfin.server: expected http://100.123.207.64:8096/, got http://jellyfin:8096/ "
        "(the Docker DNS name jellyfin does not resolve across VMs; use jellyfin's Tailscale "
        "IP 100.123.207.64)")]


# --- 15: a .env generated by a systemd unit ---------------------------------------------------

@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
def test_generated_env_judged_by_mode_git_and_unit(tmp_path: Path, monkeypatch) -> None:
    stack_dir = tmp_path / "stacks" / "streaming-stack"
    stack_dir.mkdir(parents=True)
    env = stack_dir / ".env"
    env.write_text("JELLYFIN_API_KEY=0123456789abcdef\n")
    os.chmod(env, 0o600)
    units = tmp_path / "units"
    units.mkdir()
    unit = samples.text("systemd_unit_compose_infisical_RECONSTRUCTED.service")
    (units / "streaming-stack.service").write_text(
        unit.replace("/opt/stacks/streaming-stack/.env", str(env)))
    monkeypatch.setattr(envfiles, "UNIT_DIRS", (str(units),))
    g = GeneratedEnv(str(env), "streaming-stack", "vm210", "streaming-stack.service", "0600")
    st = Stack("streaming-stack", "vm210", str(stack_dir), "docker-compose.yml",
               (str(stack_dir),))
    (stack_dir / "docker-compose.yml").write_text("services: {}\n")

    def gate() -> list[str]:
        ctx = primitives.Context({"budget_s": 10, "plaintext_globs": list(SSOT.plaintext_files), "stacks": {
            st.name: {"directory": st.directory, "compose": st.compose_path,
                      "roots": list(st.config_roots),
                      "generated": [{"path": g.path, "unit": g.unit}]}}}, 1e12)
        facts = stacks.stacks_facts(ctx)
        return secrets.check_stack(st, facts, [g]).problems

    assert gate() == []
    os.chmod(env, 0o644)
    assert gate() == [f"generated {env}: world-readable (mode 0644)",
                      f"generated {env}: mode 0644, expected 0600"]
    os.chmod(env, stat.S_IRUSR | stat.S_IWUSR)
    subprocess.run(["git", "-C", str(tmp_path), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "-f", str(env)], check=True)
    assert gate() == [(f"generated {env}: tracked by git in {tmp_path} (secrets in the "
                      "repository)")]
    subprocess.run(["git", "-C", str(tmp_path), "rm", "-q", "--cached", str(env)], check=True)
    (units / "streaming-stack.service").write_text(unit.replace("infisical export", "cat /x"))
    assert gate() == [(f"generated {env}: no ExecStartPre of {units}/streaming-stack.service "
                      "writes it")]
    (units / "streaming-stack.service").unlink()
    (stack_dir / "other.env").write_text("JELLYFIN_API_KEY=x\n")
    assert gate() == [f"generated {env}: unit streaming-stack.service not found in {units}",
                      (f"plaintext secrets file {stack_dir}/other.env (no SSOT key names in "
                      "it); secrets belong in Infisical")]
