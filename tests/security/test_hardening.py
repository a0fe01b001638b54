"""Issue 11, hardening: host keys, https for credentials, unusable secrets refused at start, a
host script that writes nothing."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from facts.test_host_collect import SSHD, Sshd, keygen, params
from verify.opsrun import env, facts_dir, ops

from opsverify.facts import commands
from opsverify.facts.hosts import collect
from opsverify.settings import Settings
from opsverify.verdict import Unreachable

needs_sshd = pytest.mark.skipif(not Path(SSHD).exists(), reason="needs openssh-server")


@pytest.fixture
def sshd(tmp_path: Path):
    d = Sshd(tmp_path).start()
    yield d
    d.stop()


@needs_sshd
def test_insecure_host_keys_still_refuse_a_changed_key(sshd: Sshd, tmp_path: Path) -> None:
    sshd.trust(keygen(tmp_path / "other_host_key"))  # known_hosts pins another key
    settings = Settings.from_env({"OPSVERIFY_INSECURE_HOST_KEYS": "1"}, ssh_config=sshd.ssh_config)
    with pytest.raises(Unreachable, match="host key mismatch"):
        collect(sshd.target, params(tmp_path), settings)


@needs_sshd
def test_insecure_host_keys_can_be_limited_to_named_hosts(sshd: Sshd, tmp_path: Path) -> None:
    sshd.trust(None)  # an unknown key
    others = Settings.from_env({"OPSVERIFY_INSECURE_HOST_KEYS": "vm209,pve"},
                               ssh_config=sshd.ssh_config)
    with pytest.raises(Unreachable, match="unknown host key"):
        collect(sshd.target, params(tmp_path), others)  # the target is "lab"
    mine = Settings.from_env({"OPSVERIFY_INSECURE_HOST_KEYS": "vm209, lab"},
                             ssh_config=sshd.ssh_config)
    facts = collect(sshd.target, params(tmp_path), mine)
    assert facts["transport"]["host_key"].startswith("NOT verified: unknown key ssh-ed25519 ")
    assert mine.relaxations() == [("unknown SSH host keys accepted for vm209, lab; changed "
                                   "keys still refused (OPSVERIFY_INSECURE_HOST_KEYS)")]


@pytest.mark.parametrize("variables, said", [
    ({"CLOUDFLARE_API_URL": "http://api.cloudflare.example/client/v4"},
     "CLOUDFLARE_API_URL 'http://api.cloudflare.example/client/v4' must be an https:// URL"),
    ({"CLOUDFLARE_API_TOKEN": "cf-7sho"},
     ("CLOUDFLARE_API_TOKEN is shorter than 8 characters: too short to be masked safely in "
      "reports (set OPSVERIFY_ALLOW_SHORT_SECRETS=1 to accept it)")),
    ({"PROXMOX_API_TOKEN": "root@pam!x=\tsecret-value-91"},
     "PROXMOX_API_TOKEN holds a control character"),
    ({"INFISICAL_CLIENT_SECRET": "inf-secret-é-0042"}, "INFISICAL_CLIENT_SECRET holds a non-ASCII"),
    ({"RADARR_API_KEY": "rk-1234"}, "RADARR_API_KEY is shorter than 8 characters"),
    ({"SABNZBD_API_KEY": "sab-api-key-0001 "}, "SABNZBD_API_KEY begins or ends with a space"),
])
def test_unusable_secrets_are_refused_at_start_by_name(tmp_path: Path, variables: dict,
                                                       said: str) -> None:
    facts = facts_dir(tmp_path / "facts")
    p = ops("verify", "--facts", facts, "--prom", tmp_path / "r.prom",
            environ=env(**variables))
    assert p.returncode == 2, p.stdout + p.stderr
    assert said in p.stderr and "Traceback" not in p.stderr
    for value in variables.values():
        if "://" not in value:
            assert value.strip() not in p.stdout + p.stderr
    assert "opsverify_last_run_success 0" in (tmp_path / "r.prom").read_text()


def test_short_secrets_only_when_explicitly_allowed_and_reported(tmp_path: Path) -> None:
    facts = facts_dir(tmp_path / "facts")
    p = ops("verify", "--facts", facts, "--json", tmp_path / "r.json", "--family", "ssot",
            environ=env(CLOUDFLARE_API_TOKEN="cf-5sh", OPSVERIFY_ALLOW_SHORT_SECRETS="1"))
    assert p.returncode == 0, p.stdout + p.stderr
    relaxed = json.loads((tmp_path / "r.json").read_text())["relaxations"]
    assert "credentials shorter than 8 characters accepted (OPSVERIFY_ALLOW_SHORT_SECRETS=1)" \
        in relaxed
    p = ops("verify", "--facts", facts, "--family", "ssot",
            environ=env(CLOUDFLARE_API_TOKEN="cf3", OPSVERIFY_ALLOW_SHORT_SECRETS="1"))
    assert p.returncode == 2 and "shorter than 8 characters" in p.stderr  # unmaskable: never


def test_the_host_python_writes_no_bytecode() -> None:
    assert commands.INTERPRETER == ("python3", "-I", "-S", "-B", "-c")


READ_ONLY = """
set -e
mount --make-rprivate /
# every mount of this private namespace read-only (not looked up in the host's fstab)
awk '{print $5}' /proc/self/mountinfo | while read -r mp; do
  mp=$(printf '%b' "$mp")
  mount --options-source disable -o remount,bind,ro "$mp" 2>/dev/null || true
done
if touch /opsverify-ro-probe 2>/dev/null || touch /tmp/opsverify-ro-probe 2>/dev/null; then
  echo "root is writable" >&2; exit 99
fi
exec "$@"
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace")
def test_the_host_script_runs_the_same_with_every_file_system_read_only(tmp_path: Path) -> None:
    """The exact host command, once as is and once where nothing can be written."""
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "app.conf").write_text("upstream = http://100.117.1.53:7878\n")
    (stack / "settings.json").write_text(json.dumps({"radarr": [{"hostname": "radarr"}]}))
    p = {**params(tmp_path), "config_checks": [{"name": "s", "file": str(stack /
                                                "settings.json"), "format": "json",
                                                "keys": ["radarr.*.hostname"]}]}
    argv = shlex.split(commands.facts_command(commands.script_payload(), p, 20))

    def facts(prefix: list[str]) -> dict:
        out = subprocess.run(prefix + argv, capture_output=True, timeout=30, check=False)
        assert out.returncode == 0, out.stderr.decode()[-1000:]
        text = out.stdout.decode()
        got = json.loads(text[text.rindex(commands.SENTINEL) + len(commands.SENTINEL):])
        got.pop("remote_s")
        got.pop("mounts")  # the second run sees its mounts read-only, as it should
        return got

    normal = facts([])
    read_only = facts(["unshare", "-m", "sh", "-c", READ_ONLY, "read-only"])
    assert read_only == normal
    assert read_only["errors"] == {} or set(read_only["errors"]) <= {"fstab", "tailscale"}
    assert read_only["config"]["s"]["values"] == {"radarr.*.hostname": ["radarr"]}
    assert read_only["stale_refs"][0]["address"] == "100.117.1.53"
