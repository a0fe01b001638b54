"""The accounts a twin host gets for an unprivileged SSH user (pure: no twin needed)."""

from __future__ import annotations

from pathlib import Path

from opsverify.lab.hosts import HOMES, accounts

PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"
SHADOW = "root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n"


def etc(tmp_path: Path, group: str, passwd: str = PASSWD) -> Path:
    for name, text in (("passwd", passwd), ("group", group), ("shadow", SHADOW)):
        (tmp_path / name).write_text(text)
    return tmp_path


def test_adds_a_key_only_user_in_the_existing_docker_group(tmp_path: Path) -> None:
    out = accounts("opsverify", etc(tmp_path, "root:x:0:\ndocker:x:107:alice\nalice:x:1000:\n"))
    user = out["passwd"].splitlines()[-1].split(":")
    assert user[0] == "opsverify" and user[2] == user[3] not in ("0", "1000")
    assert user[5:] == [f"{HOMES}/opsverify", "/bin/sh"]
    assert f"opsverify:x:{user[2]}:" in out["group"].splitlines()
    assert "docker:x:107:alice,opsverify" in out["group"].splitlines()
    assert out["shadow"].splitlines()[-1].split(":")[:2] == ["opsverify", "*"]
    assert out["passwd"].startswith(PASSWD) and out["shadow"].startswith(SHADOW)


def test_makes_a_docker_group_when_the_machine_has_none(tmp_path: Path) -> None:
    out = accounts("opsverify", etc(tmp_path, "root:x:0:\nalice:x:1000:\n"))
    docker = next(g for g in out["group"].splitlines() if g.startswith("docker:")).split(":")
    assert docker[3] == "opsverify" and docker[2] not in ("0", "1000")


def test_an_existing_user_is_kept_and_only_joins_docker(tmp_path: Path) -> None:
    out = accounts("alice", etc(tmp_path, "docker:x:107:alice\nalice:x:1000:\n"))
    assert out["passwd"] == PASSWD and out["shadow"] == SHADOW
    assert "docker:x:107:alice" in out["group"].splitlines()
