"""The ways into a twin: `ops lab exec` (a command in its network) and `ops lab ssh` (a host).

Both run on this machine's files: the twin's hosts share them, so the same `ops` and Python
are found inside. The client files written here (known_hosts, ssh_config, /etc/hosts) are
what those ways in, and the verifier run through them, read.
"""

from __future__ import annotations

import os
import shlex
import sys

from .layout import LabError, Layout
from .proc import netns_argv
from .spec import World
from .status import status


def write_client_files(layout: Layout, world: World) -> None:
    """known_hosts pinning each host's key, the ssh_config for all hosts, the exec hosts file."""
    lines, blocks = [], [(f"# opsverify lab twin {layout.name!r}: every twin host "
                         "(use inside the twin: ops lab exec -- ssh -F THIS HOST)")]
    for hs in world.hosts.values():
        h = hs.host
        pub = (layout.host(h.name) / "pinned_host_key.pub").read_text().split()
        names = dict.fromkeys([h.ssh_address, *h.addresses, h.name, h.hostname])
        lines.append(f"{','.join(n for n in names if n)} {pub[0]} {pub[1]}")
        for pattern, target in ((f"{h.name} {h.hostname}", h.ssh_address),
                                *((a, a) for a in h.addresses)):
            blocks += [f"Host {pattern}", f"    HostName {target}", f"    User {h.ssh_user}",
                       f"    Port {h.ssh_port}", f"    IdentityFile {layout.identity}",
                       "    IdentitiesOnly yes", f"    UserKnownHostsFile {layout.known_hosts}",
                       "    GlobalKnownHostsFile /dev/null", "    StrictHostKeyChecking yes",
                       "    BatchMode yes", "    ConnectTimeout 5", ""]
    layout.known_hosts.write_text("\n".join(lines) + "\n")
    layout.ssh_config.write_text("\n".join(blocks))
    layout.etc_hosts.write_text(world.etc_hosts)


# Where a PATH-less environment looks, as Debian's login shells set it.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def own_bin() -> str:
    """The directory of the running interpreter (a venv's bin/, where `ops` lives); not resolved,
    since a venv's python is a symlink to the system's."""
    return os.path.dirname(os.path.abspath(sys.executable))


def with_own_bin(path: str | None) -> str:
    """PATH with own_bin() first, so `ops lab exec -- ops verify` finds this checkout's `ops`
    in a shell that never activated the venv."""
    rest = [d for d in (path or SYSTEM_PATH).split(os.pathsep) if d and d != own_bin()]
    return os.pathsep.join([own_bin(), *rest])


def exec_env(layout: Layout) -> dict[str, str]:
    """This process's environment plus the twin's (env_of), with own_bin() first on PATH."""
    env = {**os.environ, **status(layout)["env"]}
    env["PATH"] = with_own_bin(env.get("PATH"))
    return env


def exec_argv(layout: Layout, cmd: list[str]) -> list[str]:
    """argv running `cmd` in the twin's network with its /etc/hosts (a private mount namespace)."""
    if not layout.netns_path.exists():
        raise LabError(f"twin {layout.name!r} is not up (no {layout.netns_path})")
    return netns_argv(layout.netns_path) + [
        "unshare", "-m", "--propagation", "private", "sh", "-c",
        'mount --bind "$0" /etc/hosts && exec "$@"', str(layout.etc_hosts), *cmd]


def ssh_argv(layout: Layout, host: str, cmd: list[str]) -> list[str]:
    """argv running `cmd` as root on a twin host through its sshd (the ssh_config's user is
    the verifier's, which may not be root)."""
    if cmd:  # the host shares this machine's files: the same `ops` and python are there
        # ssh joins the words into one line for the remote shell: set PATH in that line.
        cmd = [f"PATH={shlex.quote(with_own_bin(SYSTEM_PATH))}; export PATH;", *cmd]
    return netns_argv(layout.netns_path) + ["ssh", "-F", str(layout.ssh_config), "-l", "root",
                                            host, "--", *cmd]


def inside(layout: Layout) -> bool:
    """True when this process already runs in the twin's network namespace."""
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(layout.netns_path).st_ino
    except FileNotFoundError:
        return False
