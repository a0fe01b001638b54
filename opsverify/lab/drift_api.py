"""Drift of the API stand-ins (issue 10), made the way a person makes it: through the vendors'
own APIs with the twin's write credentials (drift.Drifter's proxmox() and infisical()).

drift.py lists these with its own scenarios; each is undone by resetting the stand-ins.
"""

from __future__ import annotations

from typing import Any

from .layout import LabError

# Keys the streaming stack gets through a secret import: Navidrome's (its probe needs them, so
# the probe must run with imported keys) and Last.fm's (no probe reads them).
IMPORTED = ("NAVIDROME_USER", "NAVIDROME_PASSWORD", "LASTFM_API_KEY", "LASTFM_SECRET")


def proxmox_privsep_token(d: Any) -> None:
    """The verifier's token as the Proxmox web UI makes one: privilege separation on and no
    permission of its own (the PVEAuditor role on /vms revoked from the token)."""
    token_id = d.status["standins"]["proxmox"]["auditor_token"].partition("=")[0]
    d.proxmox("PUT", "/access/acl", {"path": "/vms", "roles": "PVEAuditor", "tokens": token_id,
                                     "delete": "1"})


def _vm(d: Any, name: str) -> Any:
    """The VM of ssot/vms.yaml named `name` (vm209, vm210)."""
    from opsverify.families.vms import declared

    found = [vm for vm in declared(d.ssot) if vm.name == name]
    if not found:
        raise LabError(f"ssot/vms.yaml has no VM {name!r}")
    return found[0]


def vm210_onboot_0(d: Any) -> None:
    """`qm set 210 --onboot 0`, as PUT /nodes/{node}/qemu/210/config with the admin token:
    VM 210 keeps running, but would stay down after the next PVE reboot."""
    vm = _vm(d, "vm210")
    d.proxmox("PUT", f"/nodes/{vm.node}/qemu/{vm.vmid}/config", {"onboot": "0"})


def vm209_stopped(d: Any) -> None:
    """`qm stop 209`: POST /nodes/{node}/qemu/209/status/stop with the admin token."""
    vm = _vm(d, "vm209")
    d.proxmox("POST", f"/nodes/{vm.node}/qemu/{vm.vmid}/status/stop")


def _scope(d: Any) -> dict[str, str]:
    inf = d.ssot.infisical
    return {"workspaceId": inf["project_id"], "environment": inf["environment"]}


def _paths(d: Any) -> tuple[str, str]:
    """(download's path, streaming's path): the import's source and its destination."""
    by_stack = {sp.stack: sp.path for sp in d.ssot.secret_paths}
    return by_stack["download-stack"], by_stack["streaming-stack"]


def keys_imported(d: Any) -> None:
    """IMPORTED keys moved from streaming's Infisical path into download's, which streaming's
    path then imports (POST /api/v2/secret-imports): `infisical run` still sees every key."""
    source, into = _paths(d)
    scope = _scope(d)
    for key in IMPORTED:  # values travel in request bodies only, never on a command line
        d.infisical("POST", f"/api/v3/secrets/raw/{key}", {
            **scope, "secretPath": source, "secretValue": d.world.secrets[key], "type": "shared"})
        d.infisical("DELETE", f"/api/v3/secrets/raw/{key}", {**scope, "secretPath": into})
    d.infisical("POST", "/api/v2/secret-imports", {
        "projectId": scope["workspaceId"], "environment": scope["environment"], "path": into,
        "import": {"environment": scope["environment"], "path": source}})


def import_key_missing(d: Any) -> None:
    """As keys_imported, then LASTFM_SECRET deleted where the import takes it from."""
    keys_imported(d)
    source, _ = _paths(d)
    d.infisical("DELETE", "/api/v3/secrets/raw/LASTFM_SECRET", {**_scope(d), "secretPath": source})


# Scenario fields (drift.Scenario) of each drift above.
SCENARIOS: tuple[dict[str, Any], ...] = (
    {"name": "proxmox-privsep-token",
     "description": "the verifier's Proxmox token as the web UI makes it: privilege separation "
                    "on, no permission (PUT /access/acl revokes its PVEAuditor on /vms); the VM "
                    "list answers 200 [] and VM 201 must not read as destroyed",
     "families": ("decom", "vms"), "apply": proxmox_privsep_token, "undo": ("*:standins",),
     "outcome": "unreachable"},
    {"name": "vm210-onboot-0",
     "description": "VM 210 set to onboot 0 through the Proxmox API (`qm set 210 --onboot 0`): "
                    "still running, but down after the next PVE reboot",
     "families": ("vms",), "apply": vm210_onboot_0, "undo": ("*:standins",)},
    {"name": "vm209-stopped",
     "description": "VM 209 stopped through the Proxmox API (`qm stop 209`); its onboot stays 1",
     "families": ("vms",), "apply": vm209_stopped, "undo": ("*:standins",)},
    {"name": "infisical-keys-imported",
     "description": "NAVIDROME_* and LASTFM_* moved from streaming's Infisical path to "
                    "download's, which streaming imports (POST /api/v2/secret-imports): not "
                    "drift, every gate passes and the navidrome probe runs",
     "families": (), "apply": keys_imported, "undo": ("*:standins",), "outcome": "pass"},
    {"name": "infisical-import-key-missing",
     "description": "as infisical-keys-imported, then LASTFM_SECRET deleted at the import's "
                    "source: missing though the import is there",
     "families": ("secrets",), "apply": import_key_missing, "undo": ("*:standins",)},
)
