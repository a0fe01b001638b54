"""`ops ssot capture`: SSOT YAML from a host's facts, offline on saved facts and on the twin.

The round trip: capturing vm209 and vm210 reproduces the shipped SSOT's entries for them. Data
is compared as YAML loads it, so comments (why a container is stopped, what is `# assumed`)
never count; the fields a capture cannot write are ALLOWED below, each with its reason.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "verify"))

from opsrun import SSOT, env, facts_dir, ops

from opsverify import ssot as ssot_pkg
from opsverify.ssot.loader import load_schemas, parse_file, schema_problems

HOSTS = ("vm209", "vm210")
# (file, field) -> why a capture cannot reproduce it. Nothing else may differ.
ALLOWED = {
    ("mounts", "purpose"): "prose for people: no host records why a mount exists",
    ("stacks", "may_restart"): "a permission the SSOT grants: a host shows restarts, not whether "
                               "they are allowed (none is set for vm209/vm210 today)",
    ("hosts", "description"): "prose for people: no host records it",
    ("hosts", "lan_ip"): "marked `# assumed` in hosts.yaml; the host facts carry no LAN address",
    ("hosts", "ssh"): "how the verifier reaches the host: the SSOT's input to a capture, not "
                      "something the host says",
}


def capture(*args: str | Path, facts: Path | None = None, **extra: str) -> Any:
    return ops("ssot", "capture", *args, *(("--facts", facts) if facts else ()),
               environ=env(**extra))


def sections(stdout: str) -> dict[str, dict[str, Any]]:
    """stdout (`# ==> FILE <==` then the file, for each) as {stem: loaded YAML}."""
    out, name, lines = {}, None, []
    for line in [*stdout.splitlines(), "# ==> end <=="]:
        if line.startswith("# ==> "):
            if name:
                out[name] = yaml.safe_load("\n".join(lines))
            name, lines = line[6:].split(".yaml")[0], []
        else:
            lines.append(line)
    return out


def differences(captured: dict[str, Any], shipped: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(file, entity, field) where the capture and the shipped SSOT disagree for HOSTS."""
    out = set()

    def compare(stem: str, entity: str, got: dict[str, Any], want: dict[str, Any] | None) -> None:
        if want is None:
            out.add((stem, entity, "*"))
            return
        for key in set(got) | set(want):
            if got.get(key) != want.get(key):
                out.add((stem, entity, key))

    for name, st in captured["stacks"]["stacks"].items():
        want = shipped["stacks"]["stacks"].get(name)
        compare("stacks", name, {k: v for k, v in st.items() if k != "containers"},
                {k: v for k, v in (want or {}).items() if k != "containers"})
        for c, entry in st["containers"].items():
            compare("stacks", f"{name}:{c}", entry, (want or {}).get("containers", {}).get(c))
    for name, st in shipped["stacks"]["stacks"].items():
        for c in st["containers"] if st["host"] in HOSTS else ():
            if c not in captured["stacks"]["stacks"].get(name, {}).get("containers", {}):
                out.add(("stacks", f"{name}:{c}", "missing"))
    got_m = {(m["host"], m["path"]): m for m in captured["mounts"]["mounts"]}
    want_m = {(m["host"], m["path"]): m for m in shipped["mounts"]["mounts"] if m["host"] in HOSTS}
    for key in set(got_m) | set(want_m):
        compare("mounts", ":".join(key), got_m.get(key, {}), want_m.get(key))
    if captured["mounts"]["nfs_server"] != shipped["mounts"]["nfs_server"]:
        out.add(("mounts", "", "nfs_server"))
    for h in HOSTS:
        compare("hosts", h, captured["hosts"]["hosts"][h], shipped["hosts"]["hosts"][h])
    return out


def unexplained(diff: set[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    return sorted(d for d in diff if (d[0], d[2]) not in ALLOWED)


SHIPPED = {stem: yaml.safe_load((SSOT.root / f"{stem}.yaml").read_text())
           for stem in ("hosts", "stacks", "mounts")}


def test_round_trip_on_saved_clean_facts(tmp_path: Path) -> None:
    p = capture(*HOSTS, facts=facts_dir(tmp_path / "facts"))
    assert p.returncode == 0, p.stderr
    got = sections(p.stdout)
    assert list(got) == ["hosts", "stacks", "mounts"]
    diff = differences(got, SHIPPED)
    assert not unexplained(diff), unexplained(diff)
    # what does differ is exactly what the SSOT says and a host cannot
    assert {(f, k) for f, _, k in diff} == {("mounts", "purpose"), ("hosts", "description"),
                                            ("hosts", "lan_ip"), ("hosts", "ssh")}


def test_style_date_and_schema(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = capture(*HOSTS, "--out", out, facts=facts_dir(tmp_path / "facts"))
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in out.iterdir()) == ["hosts.yaml", "mounts.yaml", "stacks.yaml"]
    schemas = load_schemas(SSOT.root / "schemas")
    for path in out.iterdir():
        text = path.read_text()
        # the date the facts were collected (the host's clock), not today
        assert text.startswith("# captured 2026-02-11 from vm209, vm210\n"), text[:80]
        assert not schema_problems(parse_file(path, path.name), schemas[path.stem])
    stacks = (out / "stacks.yaml").read_text()
    assert "    config_roots: [/mnt/docker, /opt/stacks/download-stack]\n" in stacks
    assert "        ports: [{host: 7667, container: 7889}]\n" in stacks
    assert '          DOCKER_API_VERSION: "1.45"\n' in stacks
    # key order as shipped: state, healthcheck, image, ports, env
    assert "      slskd:\n        state: stopped\n        healthcheck: false\n        image: " \
           "slskd/slskd:latest\n        ports: [5030]\n" in stacks
    assert "  - host: vm210\n    path: /mnt/media\n    export: /media\n    fstype: nfs4\n" \
           "    mode: ro\n" in (out / "mounts.yaml").read_text()
    # merged into a copy of the SSOT, the fragments load with every cross-file rule
    merged = tmp_path / "ssot"
    shutil.copytree(SSOT.root, merged)
    for stem in ("stacks", "mounts"):
        shutil.copy(out / f"{stem}.yaml", merged / f"{stem}.yaml")
    assert ssot_pkg.load(merged).containers == SSOT.containers


def test_stack_option_writes_only_that_stack(tmp_path: Path) -> None:
    p = capture("vm210", "--stack", "streaming-stack", facts=facts_dir(tmp_path / "f"))
    assert p.returncode == 0, p.stderr
    got = sections(p.stdout)
    assert list(got) == ["stacks"] and list(got["stacks"]["stacks"]) == ["streaming-stack"]
    bad = capture("vm210", "--stack", "download-stack", facts=tmp_path / "f")
    assert bad.returncode == 2 and "not a stack of vm210" in bad.stderr


def test_an_env_value_is_never_taken_from_the_host(tmp_path: Path) -> None:
    canary = "canary-5f0c8e1a7b2d4c3e"

    def change(f: dict[str, Any]) -> None:
        for c in f["host:vm209"]["docker"]["containers"]:
            if c["name"] == "watchtower":
                c["env"]["DOCKER_API_VERSION"] = canary
    p = capture("vm209", facts=facts_dir(tmp_path / "f", change))
    assert p.returncode == 0, p.stderr
    assert canary not in p.stdout + p.stderr
    watchtower = sections(p.stdout)["stacks"]["stacks"]["download-stack"]["containers"]["watchtower"]
    assert "env" not in watchtower
    assert "# env DOCKER_API_VERSION: live value differs from the SSOT's" in p.stdout


def test_what_the_host_runs_beyond_the_ssot(tmp_path: Path) -> None:
    def change(f: dict[str, Any]) -> None:
        docker = f["host:vm210"]["docker"]["containers"]
        extra = json.loads(json.dumps(docker[0]))
        extra.update(name="plex", image="plexinc/pms-docker:latest", state="restarting",
                     has_healthcheck=False, health=None, env={},
                     ports_configured=[{"container_port": 32400, "proto": "udp", "host_ip": "",
                                        "host_port": 32400}, {"container_port": 80,
                                        "proto": "tcp", "host_ip": "", "host_port": None}])
        docker.append(extra)
        f["host:vm210"]["docker"]["containers"] = [c for c in docker if c["name"] != "subgen"]
        f["host:vm210"]["tailscale"] = {"ok": False, "error": "tailscale: not running",
                                        "backend_state": None, "ips": []}
    p = capture("vm210", facts=facts_dir(tmp_path / "f", change))
    assert p.returncode == 0, p.stderr
    got = sections(p.stdout)
    plex = got["stacks"]["stacks"]["streaming-stack"]["containers"]["plex"]
    assert plex == {"state": "running", "healthcheck": False, "image": "plexinc/pms-docker:latest",
                    "ports": [{"host": 32400, "container": 32400, "protocol": "udp"}]}
    assert "        state: running" + " " * 27 + "# new: not in the SSOT; restarting when " \
           "captured\n" in p.stdout  # comments at column 50, as in ssot/stacks.yaml
    assert "subgen" not in got["stacks"]["stacks"]["streaming-stack"]["containers"]
    assert "streaming-stack:subgen is in the SSOT but not on the engine" in p.stderr
    assert "port 80/tcp on a random host port: left out" in p.stderr
    assert "tailscale_ip" not in got["hosts"]["hosts"]["vm210"]


def test_hosts_it_cannot_capture(tmp_path: Path) -> None:
    f = facts_dir(tmp_path / "f", lambda f: f.update({"host:vm209": {"unreachable": "ssh: refused"}}))
    p = capture("vm209", "vm210", facts=f)
    assert p.returncode == 4 and "vm209: UNREACHABLE: ssh: refused" in p.stderr and not p.stdout
    p = capture("nas", facts=f)
    assert p.returncode == 2 and "nas: not in ssot/hosts.yaml" in p.stderr
    p = capture("vm201")  # decommissioned: no ssh target, and never a connection attempt
    assert p.returncode == 2 and "not an active host with an ssh target" in p.stderr


def test_help_says_what_is_written_and_not() -> None:
    p = ops("ssot", "capture", "--help")
    assert p.returncode == 0
    for words in ("--stack NAME", "--out DIR", "--facts DIR", "# captured DATE from HOST",
                  "Not captured", "exit codes"):
        assert words in p.stdout, words
    assert "capture" in ops("ssot", "--help").stdout


# --- the twin --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def twin() -> Any:
    """The lab twin up ($OPSVERIFY_LAB_NAME), its status; down after if it was not up before."""
    if os.geteuid() != 0:
        pytest.skip("the lab twin needs root")
    def status() -> dict[str, Any] | None:
        p = ops("lab", "status", "--json", environ=dict(os.environ))
        return json.loads(p.stdout) if p.returncode == 0 and json.loads(p.stdout).get("up") else None
    was_up = status() is not None
    up = ops("lab", "up", environ=dict(os.environ), timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    yield status()
    if not was_up:
        ops("lab", "down", environ=dict(os.environ), timeout=300)


def test_round_trip_on_the_twin(tmp_path: Path, twin: dict[str, Any]) -> None:
    out = tmp_path / "captured"
    p = ops("lab", "exec", "--", sys.executable, "-m", "opsverify.cli", "ssot", "capture",
            *HOSTS, "--out", out, environ=dict(os.environ), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    files = {x.stem: x for x in out.iterdir()}
    assert sorted(files) == ["hosts", "mounts", "stacks"]
    got = {stem: yaml.safe_load(path.read_text()) for stem, path in files.items()}
    diff = differences(got, SHIPPED)
    assert not unexplained(diff), unexplained(diff)
    schemas = load_schemas(SSOT.root / "schemas")
    text = p.stdout + p.stderr
    for stem, path in files.items():
        assert not schema_problems(parse_file(path, path.name), schemas[stem])
        text += path.read_text()
    assert "# captured " in text and " from vm209, vm210\n" in text
    # the twin's mounts are tmpfs standing in for NFS: fstab's nfs4 is written, and said so
    assert "fstype: nfs4                    # fstab's; mounted as tmpfs" in text
    canaries = twin["canaries"]
    assert canaries, "the twin lists no canaries"
    leaked = [i for i, c in enumerate(canaries) if c in text]
    assert not leaked, f"canaries #{leaked} (of {len(canaries)}) appear in the capture"


def test_allowed_differences_each_have_a_reason() -> None:
    assert all(len(why) > 20 for why in ALLOWED.values())
