"""The verifier's ssh_config (parsed once, looked up on the blocks that can apply) answers every
lookup exactly as paramiko's own SSHConfig does: literal, wildcard, negated and Match blocks."""

from __future__ import annotations

import paramiko
import pytest

from opsverify.facts import ssh_transport

CONFIG = """Host *.lab !bad.lab
    User u1
Host exact other
    Port 2222
    IdentityFile ~/.ssh/exact
Match host exact
    User matched
Match originalhost 10.0.0.*
    Port 2200
Host 10.0.0.1
    HostName h1.lab
Host *
    IdentityFile ~/.ssh/all
    ConnectTimeout 5
"""
BLOCKS = "".join(f"Host vm{i} host-{i}\n    HostName 100.96.0.{i}\n    User opsverify\n"
                 for i in range(1, 60))


@pytest.mark.parametrize("name", ["exact", "other", "a.lab", "bad.lab", "10.0.0.1", "10.0.0.2",
                                  "vm7", "host-59", "vm60", "nowhere", "EXACT"])
def test_lookup_as_paramiko(name: str) -> None:
    text = BLOCKS + CONFIG
    assert ssh_transport.SshConfig.from_text(text).lookup(name) == \
        paramiko.SSHConfig.from_text(text).lookup(name)


def test_a_config_that_canonicalizes_is_looked_up_whole() -> None:
    # "no": paramiko would resolve names otherwise (DNS); the key alone makes every block apply
    text = "CanonicalizeHostname no\n" + BLOCKS + CONFIG
    config = ssh_transport.SshConfig.from_text(text)
    assert config.lookup("vm3") == paramiko.SSHConfig.from_text(text).lookup("vm3")
    assert len(config._applicable("vm3")._config) == len(config._config)


def test_each_caller_gets_its_own_copy() -> None:
    config = ssh_transport.SshConfig.from_text(CONFIG)
    config.lookup("exact")["identityfile"].append("changed")
    assert "changed" not in config.lookup("exact")["identityfile"]


def test_match_exec_runs_though_invoke_is_imported_only_then() -> None:
    # paramiko runs `Match exec` through invoke, which opsverify/facts/__init__.py imports on
    # first use only (~45 ms a run saved): it must still work the moment a config needs it.
    import subprocess
    import sys

    code = ("import sys; from opsverify.facts import ssh_transport as t\n"
            "print(type(sys.modules['invoke']).__name__)\n"
            "text = 'Match exec \"test 1 = 1\"\\n    User yes\\nMatch exec \"false\"\\n    Port 9\\n'\n"
            "print(t.SshConfig.from_text(text).lookup('h').get('user'),"
            " t.SshConfig.from_text(text).lookup('h').get('port'),"
            " type(sys.modules['invoke']).__name__)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.split() == ["_OnFirstUse", "yes", "None", "module"], p.stderr
