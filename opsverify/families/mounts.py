"""mounts: each SSOT NFS mount is mounted from the LAN as the SSOT says, and survives a reboot."""

from __future__ import annotations

from typing import Any

from opsverify.findings import Findings
from opsverify.redact import SECRET_NAME
from opsverify.ssot.model import Mount

from . import Case, Family
from .values import is_tailscale, require_sections

AUTOFS = "autofs"  # systemd's x-systemd.automount placeholder: `systemd-1 PATH autofs ...`


def mode(options: list[str]) -> str:
    """ro or rw from a parsed option list; the last of the two wins, rw is mount's default.

    A token is compared whole: `errors=remount-ro` says what to do on an error, not that the
    filesystem is read-only.
    """
    found = [o for o in options if o in ("ro", "rw")]
    return found[-1] if found else "rw"


def server_of(source: str) -> str:
    """The server part of an NFS source: `192.168.1.184:/media` -> 192.168.1.184."""
    return source.split(":/", 1)[0].strip("[]") if ":/" in source else source


def _entry(entries: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    # The last entry on a mount point is the one in effect (stacked mounts hide earlier ones).
    hits = [e for e in entries if str(e.get("target", "")).rstrip("/") == path.rstrip("/")]
    return hits[-1] if hits else None


def check(mount: Mount, facts: dict[str, Any], accept_fstype: str | None = None) -> Findings:
    """Mounted, fstype, exact LAN source, exact mode, the same entry in /etc/fstab, not Tailscale."""
    require_sections(mount.host, facts, "mounts", "fstab")
    c = Findings(f"Mount {mount.host}:{mount.path}")
    live = _entry(facts.get("mounts") or [], mount.path)
    fstab = _entry(facts.get("fstab") or [], mount.path)
    broken = [e for e in facts.get("fstab_errors") or []
              if str(e.get("target") or "").rstrip("/") == mount.path.rstrip("/")]
    automount = (facts.get("automounts") or {}).get(mount.path)
    c.saw("mount", {"expected": {"source": mount.source, "fstype": mount.fstype,
                                 "mode": mount.mode},
                    "proc_mounts": live, "fstab": fstab, "fstab_errors": broken,
                    "automount": automount})
    fstypes = {mount.fstype}
    if accept_fstype:
        fstypes.add(accept_fstype)
        c.saw("fstype_accepted", f"{accept_fstype} accepted in place of {mount.fstype} "
                                 "(OPSVERIFY_ACCEPT_FSTYPE, lab twin)")
    if live is None:
        c.require(False, "not mounted")
    elif live.get("fstype") == AUTOFS:
        # Only the automount placeholder is there, even after a reader's access triggered it.
        why = (automount or {}).get("error") or "nothing was mounted when it was accessed"
        c.require(False, f"automount configured, not mounted ({why}); "
                         f"{fstab_line(fstab) if fstab else 'no fstab entry'}")
    else:
        _compare(c, "", live, mount, fstypes)
    if fstab is None:
        skipped = "; ".join(str(e.get("error")) for e in broken)
        c.require(False, f"fstab: {skipped}, so the mount does not survive a reboot" if broken
                  else "fstab: no entry, so the mount does not survive a reboot")
    else:
        _compare(c, "fstab ", fstab, mount, fstypes)
    return c


def fstab_line(entry: dict[str, Any]) -> str:
    """An fstab entry as a person finds it in the file; secret-named options masked."""
    options = [o if not SECRET_NAME.search(o.split("=", 1)[0]) else o.split("=", 1)[0] + "=***"
               for o in entry.get("options") or []]
    return (f"/etc/fstab line {entry.get('line')}: {entry.get('source')} {entry.get('target')} "
            f"{entry.get('fstype')} {','.join(options)}")


def _compare(c: Findings, where: str, entry: dict[str, Any], mount: Mount, fstypes: set[str]) -> None:
    source = str(entry.get("source"))
    fstype = entry.get("fstype")
    c.require(fstype in fstypes, f"{where}fstype: expected {mount.fstype}, got {fstype}")
    if is_tailscale(server_of(source)):
        c.require(False, f"{where}source: expected {mount.source}, got {source} "
                         "(NFS over Tailscale: it deadlocked in D state; mount from the LAN)")
    else:
        c.expect(f"{where}source", mount.source, source)
    c.expect(f"{where}mode", mount.mode, mode([str(o) for o in entry.get("options") or []]))


FAMILY = Family(
    "mounts", per="host × mount",
    checks=("mounted (an idle `x-systemd.automount` is triggered once, as any reader does, inside"
           ' the timeout: else "automount configured, not mounted" with its fstab line); fstype;'
           " source `LAN_IP:/export` exactly; ro/rw from the parsed options; same in /etc/fstab,"
           " read as libmount reads it (an inline comment after the sixth field is fine; a line "
           "mount(8) skips fails that mount only); never over Tailscale"),
    subjects={"mount": lambda s: (Case(f"{m.host}:{m.path}", m.host, m) for m in s.mounts)},
    host_facts=True)
