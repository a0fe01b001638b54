"""Drift on a twin host (issue 10): made the way a person makes it, with a shell on the host
over SSH and the VM's Docker engine (drift.Drifter's sh(), recreate() and docker()).

drift.py lists these with its own scenarios; `undo` names what `ops lab reset` converges.
"""

from __future__ import annotations

from typing import Any

from .layout import LabError

FSTAB_MOUNT = ("vm210", "/mnt/media")
LOOPING = ("vm209", "unpackerr")  # no healthcheck, no port, nothing wired to it
LOOP_COMMAND = ["/bin/sh", "-c", "sleep 4; exit 1"]  # up a few seconds, then fails
PROBED = ("vm209", "lidarr")  # a services probe, the origin of no route, read by no scrape


def fstab_broken_line(d: Any) -> None:
    """The comment of 210's /mnt/media line moved in front of its dump and pass fields: libmount
    (mount(8), systemd-fstab-generator) skips that line, and only that line."""
    host, path = FSTAB_MOUNT
    m = d.mount(host, path)
    lines = d.sh(host, "cat /etc/fstab").split("\n")
    mine = [i for i, line in enumerate(lines) if line.startswith(f"{m.source} {m.path} ")]
    if len(mine) != 1 or " 0 0  #" not in lines[mine[0]]:
        raise LabError(f"{host}: /etc/fstab has no single commented line for {path}")
    lines[mine[0]] = lines[mine[0]].replace(" 0 0  #", "  #", 1)
    # In place (cat >): /etc/fstab inside the host is a bind mount, sed -i would replace it.
    d.sh(host, "cat > /run/fstab.new && cat /run/fstab.new > /etc/fstab && rm /run/fstab.new",
         stdin="\n".join(lines))


def restart_loop(d: Any) -> None:
    """unpackerr's process exits after a few seconds and its restart policy starts it again:
    a restart loop that, between two restarts, looks like a running container."""
    host, name = LOOPING
    d.recreate(host, name, command=LOOP_COMMAND)

    def restarted_and_up() -> bool:
        attrs = d.docker(host).containers.get(name).attrs
        return attrs["RestartCount"] >= 1 and attrs["State"]["Running"]

    d.wait(f"{name} was restarted by its policy and is up again", restarted_and_up, timeout=60)


def service_loopback(d: Any) -> None:
    """lidarr listens on 127.0.0.1 only (as `ports: ["127.0.0.1:8686:8686"]` would publish it):
    it answers on its host, its healthcheck (moved to loopback) stays healthy, the verifier
    gets no connection."""
    host, name = PROBED
    spec = d.spec(host, name)
    port = spec.ports[0][0]
    addresses = d.host(host).host.addresses
    facing = {f"{x}:{port}" for x in addresses}
    command, args = [spec.command[0], "-l", f"127.0.0.1:{port}"], list(spec.command[1:])
    while args:
        flag = args.pop(0)
        if flag == "-l" and args and args[0] in facing:
            args.pop(0)  # one of the addresses the network reaches: dropped
        else:
            command.append(flag)
    if len(command) != len(spec.command) + 2 - 2 * len(facing):
        raise LabError(f"{host}: {name}'s command does not listen on {sorted(facing)}")
    health = dict(spec.healthcheck or {})
    test = [str(t) for t in health.get("test") or []]
    for x in addresses:
        test = [t.replace(f"//{x}:{port}", f"//127.0.0.1:{port}") for t in test]
    health["test"] = test
    d.recreate(host, name, command=command, healthcheck=health or None)
    d.wait(f"{name} is healthy on 127.0.0.1 only", lambda: d.health(host, name) == "healthy",
           timeout=60)


def service_stopped(d: Any) -> None:
    host, name = PROBED
    d.docker(host).containers.get(name).stop(timeout=3)


SCENARIOS: tuple[dict[str, Any], ...] = (
    {"name": "fstab-broken-line-vm210",
     "description": "210's fstab: the comment of /mnt/media's line moved before dump and pass, "
                    "so mount(8) and systemd skip that line (the other lines stay valid)",
     "families": ("mounts",), "apply": fstab_broken_line, "undo": ("vm210:files",)},
    {"name": "restart-loop-vm209",
     "description": "209's unpackerr (no healthcheck) exits after 4 s and is restarted by its "
                    "restart policy, again and again; caught while it is up",
     "families": ("containers",), "apply": restart_loop, "undo": ("vm209:containers",)},
    {"name": "service-loopback-vm209",
     "description": "209's lidarr listens on 127.0.0.1:8686 only: healthy and answering on its "
                    "host, no connection from the verifier (path broken)",
     "families": ("services",), "apply": service_loopback, "undo": ("vm209:containers",)},
    {"name": "service-stopped-vm209",
     "description": "`docker stop lidarr` on 209: no answer from the verifier nor on the host "
                    "(service down)",
     "families": ("services", "containers"), "apply": service_stopped,
     "undo": ("vm209:containers",)},
)
