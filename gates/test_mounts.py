"""mounts: each NFS mount is from pve's LAN address, in the SSOT's mode, and in /etc/fstab."""

from __future__ import annotations

from fixtures.evidence import Evidence
from opsverify.facts.store import FactStore
from opsverify.families import mounts
from opsverify.findings import conclude
from opsverify.settings import Settings
from opsverify.ssot.model import Mount


def test_mount(mount: Mount, facts: FactStore, settings: Settings, evidence: Evidence) -> None:
    """Mounted; fstype; source LAN_IP:/export; mode ro/rw exactly; same in fstab; not Tailscale."""
    host = facts.get(f"host:{mount.host}")
    conclude(mounts.check(mount, host, settings.accept_fstype), evidence)
