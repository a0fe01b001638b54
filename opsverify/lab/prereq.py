"""What the twin needs on this machine, and the Debian package that provides each piece."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

# command -> Debian package (apt-get install NAME)
COMMANDS: dict[str, str] = {
    "dockerd": "docker.io",
    "containerd": "containerd",
    "runc": "runc",
    "docker-init": "tini",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "busybox": "busybox-static",
    "prometheus": "prometheus",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
    "gcc": "gcc",
    "sqlite3": "sqlite3",
}
SBIN = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# gcc -static needs glibc's static archive, which libc6-dev ships.
FILES: dict[str, str] = {"/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev"}


def which(cmd: str) -> str | None:
    """A command's path, also in the sbin directories a non-login PATH may lack."""
    return shutil.which(cmd) or shutil.which(cmd, path=os.pathsep.join(SBIN))


def missing() -> list[str]:
    """One line per unmet prerequisite, each saying exactly what to do."""
    problems = []
    if platform.system() != "Linux":
        return [f"the lab twin needs Linux (namespaces); this is {platform.system()}"]
    if os.geteuid() != 0:
        problems.append("the lab twin needs root (network and mount namespaces, dockerd): "
                        "run it with sudo")
    if not Path("/proc/self/ns/net").exists():
        problems.append("this kernel has no network namespaces (/proc/self/ns/net)")
    packages: dict[str, list[str]] = {}
    for cmd, pkg in COMMANDS.items():
        if not which(cmd):
            packages.setdefault(pkg, []).append(cmd)
    if Path("/usr/lib/x86_64-linux-gnu").is_dir():  # only checkable on the Debian multiarch layout
        for path, pkg in FILES.items():
            if not Path(path).exists():
                packages.setdefault(pkg, []).append(path)
    for pkg, cmds in sorted(packages.items()):
        problems.append(f"missing {', '.join(cmds)}: apt-get install {pkg}")
    if packages:
        problems.append("or all at once: apt-get install " + " ".join(sorted(packages)))
    return problems
