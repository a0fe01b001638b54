"""Twin hosts: a mount + UTS namespace per SSOT host, its files and mounts, and its sshd.

Each host is a holder process (`sleep`) in the twin's network namespace with a private mount
namespace and its own hostname. Everything else of the host (sshd, dockerd) is started inside
those namespaces; files are written through /proc/<holder>/root, which is the host's own view.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from opsverify.lab import standins

from .layout import NETNS_DIR, LabError, Layout, write_private
from .proc import alive, host_argv, netns_argv, ns_inode, run, signal_each, spawn, stop
from .spec import HostSpec, World, mount_argv, remount_argv

BASE_FILES = Path("/usr/share/base-files")
CLI_DIR = "/usr/local/sbin"  # empty on Debian; a tmpfs inside each host holds the stand-in CLIs
# The host's state directory as the host sees it: the state root above it is root-only (0700),
# so the SSH user reads the stand-in states, authorized keys and Docker socket through this bind.
SHARE = "/run/opsverify-lab"
HOMES = "/run/home"  # the SSH user's home, on the host's own /run tmpfs
SYSTEM_PYTHON = "/usr/bin/python3"
STANDINS = Path(standins.__file__).resolve().parent
DOCKER_GROUP = "docker"
ACCOUNT_FILES = ("passwd", "group", "shadow")


def host_root(pid: int) -> Path:
    return Path(f"/proc/{pid}/root")


# Never masked by a tmpfs inside a host: the twin's own processes live in these.
SYSTEM_DIRS = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/proc",
               "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/local", "/var",
               "/var/lib"}


def mount_plan(layout: Layout, hs: HostSpec) -> tuple[list[str], list[str]]:
    """(masks, made): directories a host covers with a tmpfs so the SSOT's mount points can be
    made inside it (the machine's filesystem stays untouched), and the few points that must be
    made on the machine's filesystem instead because their parent is a system directory."""
    masks, made = [], []
    for path in hs.roots:
        p = Path(path)
        if p.is_dir():
            continue
        parent = p.parent
        while not parent.is_dir():
            parent = parent.parent
        if str(parent) in SYSTEM_DIRS or layout.root.is_relative_to(parent) \
                or Path(sys.prefix).is_relative_to(parent):
            made.append(path)
        elif str(parent) not in masks:
            masks.append(str(parent))
    return masks, made


def prepare_mountpoints(layout: Layout, world: World) -> None:
    """Make the mount points that cannot be masked on the machine's filesystem; record them."""
    made = json.loads(layout.created_paths.read_text()) if layout.created_paths.exists() else []
    for hs in world.hosts.values():
        for path in mount_plan(layout, hs)[1]:
            missing, p = [], Path(path)
            while not p.exists():
                missing.append(str(p))
                p = p.parent
            Path(path).mkdir(parents=True, exist_ok=True)
            made += [m for m in reversed(missing) if m not in made]
    write_private(layout.created_paths, json.dumps(made, indent=1))


def remove_mountpoints(layout: Layout) -> None:
    """Remove the mount points `prepare_mountpoints` made, deepest first, if still empty.

    Not while another twin runs: removing a directory detaches the mounts on it in every
    other mount namespace, which would take that twin's mounts away."""
    if not layout.created_paths.exists():
        return
    others = [p for p in NETNS_DIR.glob("opsverify-*") if p != layout.netns_path]
    for path in sorted(json.loads(layout.created_paths.read_text()), key=len, reverse=True):
        if others:
            print(f"ops lab: left mount point {path} for the other twin(s) running",
                  file=sys.stderr)
            continue
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            print(f"ops lab: left {path} in place: {exc.strerror}", file=sys.stderr)


def accounts(user: str, etc: Path = Path("/etc")) -> dict[str, str]:
    """The machine's passwd, group and shadow plus `user` (key login only, no password) as a
    member of the docker group: the host's own copies, bind-mounted inside it."""
    passwd, group, shadow = ((etc / f).read_text().splitlines() for f in ACCOUNT_FILES)
    users = {line.split(":")[0]: line.split(":") for line in passwd if line.count(":") == 6}
    groups = {line.split(":")[0]: line.split(":") for line in group if line.count(":") == 3}
    if user not in users:
        taken = {int(u[2]) for u in users.values()} | {int(g[2]) for g in groups.values()}
        uid = min(i for i in range(1000, 60000) if i not in taken)
        passwd.append(f"{user}:x:{uid}:{uid}:opsverify verifier (lab twin):{HOMES}/{user}:/bin/sh")
        if user not in groups:
            group.append(f"{user}:x:{uid}:")
        if not any(line.split(":")[0] == user for line in shadow):
            shadow.append(f"{user}:*:19000:0:99999:7:::")
    if DOCKER_GROUP not in groups:
        taken = {int(g[2]) for g in groups.values()}
        gid = min(i for i in range(990, 100, -1) if i not in taken)
        group.append(f"{DOCKER_GROUP}:x:{gid}:{user}")
    else:
        group = [_with_member(line, user) if line.split(":")[0] == DOCKER_GROUP else line
                 for line in group]
    return {"passwd": "\n".join(passwd) + "\n", "group": "\n".join(group) + "\n",
            "shadow": "\n".join(shadow) + "\n"}


def _with_member(line: str, user: str) -> str:
    name, pw, gid, members = line.split(":")
    have = [m for m in members.split(",") if m]
    return ":".join((name, pw, gid, ",".join(have if user in have else [*have, user])))


def write_state_files(layout: Layout, hs: HostSpec) -> None:
    """Files of a host kept in the state directory: fstab, rc files, stand-in CLI states,
    authorized keys, and the accounts holding the SSH user when it is not root."""
    d = layout.host(hs.name)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o755)  # traversed by the SSH user through SHARE; its private files stay 0600
    (d / "docker").mkdir(exist_ok=True)
    (d / "docker").chmod(0o755)
    keys = layout.ssh_dir / "authorized_keys"
    if keys.exists():
        write_private(d / "authorized_keys", keys.read_bytes(), 0o644)
    if hs.host.ssh_user != "root":
        for name, text in accounts(hs.host.ssh_user).items():
            _write_in_place(d / name, text.encode(), 0o600 if name == "shadow" else 0o644)
    _write_in_place(d / "fstab", hs.fstab.encode(), 0o644)
    for dot in ("bashrc", "profile"):
        src = BASE_FILES / f"dot.{dot}"
        _write_in_place(d / f"dot.{dot}", src.read_bytes() if src.exists() else b"", 0o644)
    # Read by the stand-in CLIs, which run as the SSH user.
    if hs.tailscale:
        write_private(d / "tailscale.json", json.dumps(hs.tailscale, indent=1), 0o644)
    if hs.zfs:
        write_private(d / "zfs.json", json.dumps(hs.zfs, indent=1), 0o644)


def _write_in_place(path: Path, data: bytes, mode: int) -> None:
    """Make a file hold `data` without replacing its inode: inside the host it is bind-mounted
    (/etc/fstab, /etc/passwd, ...), and a new inode would not be seen there."""
    if not path.exists():
        write_private(path, data, mode)
    elif path.read_bytes() != data:
        with open(path, "wb") as fh:
            fh.write(data)
    path.chmod(mode)


def setup_script(layout: Layout, hs: HostSpec) -> str:
    """The shell script the holder runs once inside its new namespaces before it idles."""
    d = layout.host(hs.name)
    q = shlex.quote
    lines = ["set -eu", f"hostname {q(hs.host.hostname)}",
             "mount -t tmpfs -o mode=755,size=16m tmpfs /run", "mkdir -p /run/sshd /run/lock",
             f"mount -t tmpfs -o mode=755,size=4m tmpfs {CLI_DIR}",
             f"mount --bind {q(str(d / 'fstab'))} /etc/fstab",
             f"mkdir -p {SHARE}", f"mount --bind {q(str(d))} {SHARE}"]
    user = hs.host.ssh_user
    if user != "root":
        lines += [f"mount --bind {q(str(d / f))} /etc/{f}" for f in ACCOUNT_FILES]
        lines += [f"mkdir -p {HOMES}/{q(user)}",
                  f"chown {q(user)}: {HOMES}/{q(user)}", f"chmod 700 {HOMES}/{q(user)}"]
    for dot in ("bashrc", "profile"):
        # The machine's own rc files would make every SSH command of the twin slow and odd.
        lines.append(f"if [ -e /root/.{dot} ]; then mount --bind {q(str(d / f'dot.{dot}'))} "
                     f"/root/.{dot}; fi")
    if hs.docker:
        sock = f"{SHARE}/{layout.docker_socket(hs.name).relative_to(d)}"
        lines.append(f"ln -s {q(sock)} /run/docker.sock")
    masks, _ = mount_plan(layout, hs)
    lines += [f"mount -t tmpfs -o mode=755,size=1m tmpfs {q(m)}" for m in masks]
    lines += [f"mkdir -p {q(p)}" for p in hs.roots if any(p.startswith(m + "/") for m in masks)]
    for m in hs.mounts:
        lines += [shlex.join(c) for c in mount_argv(m)]
    for path in hs.tmpfs_dirs:
        lines.append(f"mount -t tmpfs -o mode=755,size=16m tmpfs {q(path)}")
    lines += [f"touch {q(str(d / 'ready'))}",
              f"exec -a opsverify-lab-{layout.name}-{hs.name} sleep infinity"]
    return "\n".join(lines) + "\n"


def start_holder(layout: Layout, hs: HostSpec) -> int:
    """Start the host's namespaces; returns the holder's pid once its mounts are in place."""
    d = layout.host(hs.name)
    ready = d / "ready"
    ready.unlink(missing_ok=True)
    script = d / "setup.sh"
    script.write_text(setup_script(layout, hs))
    argv = netns_argv(layout.netns_path) + ["unshare", "-m", "-u", "--propagation", "private",
                                            "bash", str(script)]
    pid = spawn(argv, layout.logs / f"{hs.name}-holder.log", d / "holder.pid")
    deadline = time.monotonic() + 10
    while not ready.exists():
        if not alive(pid) or time.monotonic() > deadline:
            log = (layout.logs / f"{hs.name}-holder.log").read_text(errors="replace").strip()
            raise LabError(f"host {hs.name}: namespace setup failed: {log[-400:]}")
        time.sleep(0.02)
    return pid


def install_clis(layout: Layout, pid: int, hs: HostSpec) -> None:
    """Put the stand-in `tailscale` / `zfs` commands on the host's PATH.

    Each stand-in module (stdlib only) is copied onto the host's own CLI tmpfs and run from
    there: the SSH user runs them, and it may not read this checkout (a clone under a 0700
    `mktemp -d` or under /root)."""
    share = Path(SHARE)
    # The machine's own python (stdlib only, -S): the lab's may live under root-only /root.
    python = SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable
    clis = {}
    if hs.tailscale:
        clis["tailscale"] = ("TAILSCALE_STANDIN_STATE", share / "tailscale.json", "tailscale_cli")
    if hs.zfs:
        clis["zfs"] = ("ZFS_STANDIN_STATE", share / "zfs.json", "zfs_cli")
    cli_dir = host_root(pid) / CLI_DIR.lstrip("/")
    for name, (env, state, module) in clis.items():
        code = f"{CLI_DIR}/opsverify-{module}.py"
        shutil.copyfile(STANDINS / f"{module}.py", cli_dir / Path(code).name)
        (cli_dir / Path(code).name).chmod(0o644)
        target = cli_dir / name
        target.write_text(
            f"#!/bin/sh\n# opsverify lab twin: stand-in for `{name}`, state in {state}\n"
            f"{env}={shlex.quote(str(state))} exec {shlex.quote(python)} -S {code} \"$@\"\n")
        target.chmod(0o755)


def sync_files(pid: int, hs: HostSpec) -> None:
    """Make the host's owned directories hold exactly the expected files, byte for byte."""
    root = host_root(pid)
    ro = {m.path for m in hs.mounts if m.mode == "ro"}
    keep = set(hs.files) | set(hs.dirs)
    for path in list(keep):
        p = Path(path).parent
        while str(p) != "/":
            keep.add(str(p))
            p = p.parent
    for top in hs.roots:
        if top in ro:
            continue
        for dirpath, dirnames, filenames in os.walk(root / top.lstrip("/"), topdown=True):
            inside = "/" + str(Path(dirpath).relative_to(root))
            for name in filenames:
                if f"{inside}/{name}" not in keep:
                    os.unlink(os.path.join(dirpath, name))
            for name in list(dirnames):
                if f"{inside}/{name}" not in keep:
                    shutil.rmtree(os.path.join(dirpath, name))
                    dirnames.remove(name)
    for path in hs.dirs:
        if not any(path.startswith(r + "/") for r in ro):
            (root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path, data in hs.files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = hs.modes.get(path, 0o644)  # a generated .env is 0600
        try:
            if target.read_bytes() == data and target.stat().st_mode & 0o7777 == mode:
                continue
        except FileNotFoundError:
            pass
        with open(target, "wb") as fh:
            fh.write(data)
        target.chmod(mode)


def mounts_of(pid: int) -> dict[str, dict[str, object]]:
    """The host's mounts by mount point (the last one mounted wins): source, fstype, options."""
    out = {}
    for line in Path(f"/proc/{pid}/mounts").read_text().splitlines():
        source, target, fstype, options = line.split()[:4]
        target = target.replace("\\040", " ")
        out[target] = {"source": source, "fstype": fstype, "options": options.split(",")}
    return out


def hung_mount_pidfile(layout: Layout, host: str) -> Path:
    """Where the hung-mount drift keeps the pid of the process holding the mount hung."""
    return layout.host(host) / "hung_mount.pid"


def release_hung_mount(layout: Layout, holder: int, host: str) -> None:
    """End a hung-mount drift: kill its process (accesses fail fast), detach the mount."""
    pidfile = hung_mount_pidfile(layout, host)
    if not pidfile.exists():
        return
    pid, _, target = pidfile.read_text().strip().partition(" ")
    with contextlib.suppress(ProcessLookupError, ValueError):
        os.kill(int(pid), signal.SIGKILL)
    if target:
        run(host_argv(holder) + ["umount", "-l", target], check=False)
    pidfile.unlink()


def converge_mounts(pid: int, hs: HostSpec) -> set[str]:
    """Put every SSOT mount back as it should be; returns the mount points replaced anew."""
    replaced = set()
    for m in hs.mounts:
        now = mounts_of(pid).get(m.path)
        if now and now["source"] == m.source and now["fstype"] == "tmpfs":
            mode = "ro" if "ro" in now["options"] else "rw"  # type: ignore[operator]
            if mode != m.mode:
                run(host_argv(pid) + remount_argv(m.path, m.source, m.mode))
            continue
        while now:
            run(host_argv(pid) + ["umount", "-l", m.path])
            now = mounts_of(pid).get(m.path)
        for argv in mount_argv(m):
            run(host_argv(pid) + argv)
        replaced.add(m.path)
    return replaced


# ---- sshd ------------------------------------------------------------------------------------

def host_keys(layout: Layout, hs: HostSpec) -> Path:
    """Generate the host's SSH key for this `up`; a copy is kept to restore after a drift."""
    d = layout.host(hs.name)
    key = d / "ssh_host_ed25519_key"
    for p in (key, key.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{hs.host.hostname}",
         "-f", str(key)])
    shutil.copy2(key, d / "pinned_host_key")
    shutil.copy2(key.with_suffix(".pub"), d / "pinned_host_key.pub")
    return key


def sshd_config(layout: Layout, hs: HostSpec) -> Path:
    d = layout.host(hs.name)
    port = hs.host.ssh_port
    lines = [f"# opsverify lab twin: sshd of {hs.name} ({hs.host.hostname})"]
    lines += [f"ListenAddress {a}:{port}" for a in hs.host.addresses]
    lines += [f"HostKey {d / 'ssh_host_ed25519_key'}", "PidFile /run/sshd.pid",
              f"AuthorizedKeysFile {SHARE}/authorized_keys",
              "PermitRootLogin prohibit-password", "PubkeyAuthentication yes",
              "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
              "PrintMotd no", "PrintLastLog no", "AcceptEnv LANG LC_*", "MaxStartups 100:30:200",
              "MaxSessions 64", "Subsystem sftp internal-sftp"]
    path = d / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def sshd_pids(holder: int) -> list[int]:
    """Every sshd process inside the host (listener and sessions)."""
    mnt = ns_inode(f"/proc/{holder}/ns/mnt")
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as fh:
                if fh.read().strip() != "sshd":
                    continue
        except (FileNotFoundError, ProcessLookupError):
            continue
        if ns_inode(f"/proc/{entry.name}/ns/mnt") == mnt:
            out.append(int(entry.name))
    return out


def start_sshd(layout: Layout, hs: HostSpec, holder: int) -> int:
    """(Re)start the host's sshd with its current host key; live sessions end with it."""
    signal_sshd(holder, signal.SIGCONT)
    stop(sshd_pids(holder), grace=2)
    d = layout.host(hs.name)
    argv = host_argv(holder) + ["/usr/sbin/sshd", "-D", "-f", str(d / "sshd_config"),
                                "-E", str(layout.logs / f"{hs.name}-sshd.log")]
    pid = spawn(argv, layout.logs / f"{hs.name}-sshd.out", d / "sshd.pid")
    deadline = time.monotonic() + 5
    want = {(a, hs.host.ssh_port) for a in hs.host.addresses}
    while not want <= listening(pid):
        if not alive(pid) or time.monotonic() > deadline:
            log = (layout.logs / f"{hs.name}-sshd.log").read_text(errors="replace")[-300:]
            raise LabError(f"host {hs.name}: sshd did not start: {log.strip()}")
        time.sleep(0.02)
    return pid


def signal_sshd(holder: int, sig: int) -> None:
    signal_each(sshd_pids(holder), sig)


def listening(pid: int) -> set[tuple[str, int]]:
    """TCP (address, port) pairs listening in the network namespace of `pid`."""
    out = set()
    try:
        text = Path(f"/proc/{pid}/net/tcp").read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state != "0A":  # LISTEN
            continue
        hexaddr, hexport = local.split(":")
        addr = ".".join(str(int(hexaddr[i:i + 2], 16)) for i in (6, 4, 2, 0))
        out.add((addr, int(hexport, 16)))
    return out
