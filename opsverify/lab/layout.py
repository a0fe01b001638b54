"""Where a twin keeps everything: its state directory, namespace name and per-host files."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_NAME = "twin"
DEFAULT_ROOT = Path("/var/lib/opsverify/lab")
NETNS_DIR = Path("/run/netns")
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,15}")


class LabError(Exception):
    """A lab operation failed; the message says what and where, for a person to read."""


@dataclass(frozen=True)
class Layout:
    """Paths of one twin. Every file the twin makes lives under `root`."""

    name: str
    root: Path

    @classmethod
    def of(cls, name: str | None = None, state_dir: str | os.PathLike[str] | None = None) -> Layout:
        """The twin `name` (default "twin") at --state-dir, $OPSVERIFY_LAB_DIR or the default."""
        env_name = os.environ.get("OPSVERIFY_LAB_NAME") or DEFAULT_NAME
        name = name or env_name
        if not NAME_RE.fullmatch(name):
            raise LabError(f"twin name {name!r}: use 1-16 lowercase letters, digits or '-'")
        # $OPSVERIFY_LAB_DIR belongs to the twin named by $OPSVERIFY_LAB_NAME, not to another.
        env_dir = os.environ.get("OPSVERIFY_LAB_DIR") if name == env_name else None
        root = state_dir or env_dir or DEFAULT_ROOT / name
        return cls(name, Path(root).resolve())

    @property
    def netns(self) -> str:
        return f"opsverify-{self.name}"

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    @property
    def cgroup_parent(self) -> str:
        """Docker's --cgroup-parent prefix: every container cgroup of this twin lives under it."""
        return f"opsverify-lab-{self.name}"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def etc_hosts(self) -> Path:
        return self.root / "etc-hosts"

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def identity(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def ca_bundle(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def image_dir(self) -> Path:
        return self.root / "image"

    @property
    def standins(self) -> Path:
        return self.root / "standins"

    @property
    def created_paths(self) -> Path:
        """Mount points made on the machine's own filesystem, removed again by `down`."""
        return self.root / "created-paths.json"

    def host(self, name: str) -> Path:
        return self.root / "hosts" / name

    def docker_dir(self, host: str) -> Path:
        return self.host(host) / "docker"

    def docker_socket(self, host: str) -> Path:
        return self.docker_dir(host) / "docker.sock"

    def read_state(self) -> dict[str, Any]:
        """The state written by `up` ({} when there is none)."""
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise LabError(f"{self.state_file}: unreadable twin state ({exc})") from None


def write_private(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Write a file that may hold secrets: created with `mode` from the start, replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
