"""The verifier's SSH login on the twin is the SSOT's unprivileged user, and it is enough.

Runs when the SSOT names a non-root SSH user (OPSVERIFY_SSOT pointing at such an SSOT, or the
shipped one once it does). Docker's socket is all-or-nothing: the `docker` group may also
write through it, so these tests claim only read access there (the narrowest real-world
option, a read-only socket proxy, is outside the twin).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from opsverify.ssot import load

SSOT = load()
USERS = {h.ssh_user for h in SSOT.active_hosts.values()}
pytestmark = pytest.mark.skipif(
    USERS == {"root"},
    reason=f"the SSOT ({SSOT.root}) logs the verifier in as root: nothing to narrow; set "
           "OPSVERIFY_SSOT to an SSOT whose hosts' ssh.user is unprivileged")
HOSTS = sorted(n for n, h in SSOT.active_hosts.items() if h.ssh_user != "root")


def as_verifier(lab: Any, host: str, script: str, check: bool = True) -> Any:
    """Run `script` on `host` over the verifier's own SSH login (the twin's ssh_config)."""
    return lab.ops("lab", "exec", "--", "ssh", "-F", lab.status["ssh_config"], host, "--",
                   "sh", "-c", shlex.quote(script), check=check, timeout=60)


def test_status_and_ssh_config_name_the_ssot_user(lab: Any) -> None:
    config = Path(lab.status["ssh_config"]).read_text()
    for name in HOSTS:
        user = SSOT.hosts[name].ssh_user
        assert lab.status["hosts"][name]["ssh"]["user"] == user
        assert f"    User {user}\n" in config
    assert "    User root\n" not in config


@pytest.mark.parametrize("host", HOSTS)
def test_login_is_unprivileged_and_in_the_docker_group(lab: Any, host: str) -> None:
    out = as_verifier(lab, host, "id").stdout
    uid = int(re.search(r"uid=(\d+)\((\S+?)\)", out).group(1))
    assert uid != 0 and f"({SSOT.hosts[host].ssh_user})" in out.split()[0]
    assert "(docker)" in out.split("groups=")[1]
    # The lab's own way in stays root: drift scenarios and `ops lab ssh` need it.
    assert lab.ops("lab", "ssh", host, "--", "id", "-u").stdout.strip() == "0"


@pytest.mark.parametrize("host", HOSTS)
def test_verifier_can_read_what_the_gates_read_and_write_none_of_it(lab: Any,
                                                                      host: str) -> None:
    stacks = [s for s in SSOT.stacks.values() if s.host == host]
    dirs = [d for s in stacks for d in (s.directory, *s.config_roots)]
    files = ["/etc/fstab", *(c.file for c in SSOT.config_checks if c.host == host),
             *(s.compose_path for s in stacks)]
    script = "; ".join(
        [f"head -c1 {shlex.quote(f)} >/dev/null && echo READ {shlex.quote(f)}" for f in files]
        + [f"ls {shlex.quote(d)} >/dev/null && echo READ {shlex.quote(d)}" for d in dirs]
        + [f"touch {shlex.quote(p)} 2>&1 | grep -q 'Permission denied' && echo DENIED "
           f"{shlex.quote(p)}" for p in ["/etc/fstab", *(f"{d}/.opsverify-probe" for d in dirs)]])
    out = as_verifier(lab, host, script, check=False).stdout.splitlines()
    assert {f"READ {p}" for p in [*files, *dirs]} <= set(out)
    assert {f"DENIED {p}" for p in ["/etc/fstab", *(f"{d}/.opsverify-probe" for d in dirs)]} \
        <= set(out)


@pytest.mark.parametrize("host", sorted({c.host for c in SSOT.containers} & set(HOSTS)))
def test_docker_socket_is_the_docker_groups_and_answers_the_verifier(lab: Any,
                                                                      host: str) -> None:
    out = as_verifier(lab, host, "stat -L -c '%U:%G %a' /var/run/docker.sock; "
                      "curl -s -o /dev/null -w '%{http_code}' --unix-socket "
                      "/var/run/docker.sock http://docker/v1.41/containers/json").stdout
    assert out.split() == ["root:docker", "660", "200"]


def test_full_verify_passes_logged_in_as_that_user(lab: Any) -> None:
    logs = {n: Path(lab.status["state_dir"]) / "logs" / f"{n}-sshd.log" for n in HOSTS}
    before = {n: len(p.read_text().splitlines()) for n, p in logs.items()}
    proc = lab.ops("lab", "exec", "--", "ops", "verify", check=False, timeout=300)
    # every gate passed but the SSOT's planned items, which are SKIPs with their reason
    summary = re.search(r"ops verify: (\d+)/(\d+) PASS(?:, (\d+) SKIP)? \(", proc.stdout)
    assert proc.returncode == 0 and summary, proc.stdout[-2000:]
    assert int(summary[1]) + int(summary[3] or 0) == int(summary[2]), proc.stdout[-2000:]
    for name, path in logs.items():
        logins = re.findall(r"Accepted publickey for (\S+)",
                            "\n".join(path.read_text().splitlines()[before[name]:]))
        assert logins and set(logins) == {SSOT.hosts[name].ssh_user}, (name, logins)
