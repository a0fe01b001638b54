"""Proxmox VE facts: existence, run state and onboot of every VM the SSOT names.

Absence is proven, never inferred. PVE lists only the VMs a token may audit: a token made in
the web UI has privilege separation on and no permissions, and its VM list is an empty 200.
So every VM is asked at its own endpoint, and a VM is gone only when PVE answers what it
answers for a missing guest: 500 "Configuration file 'nodes/<node>/qemu-server/<vmid>.conf'
does not exist" (qemu-server loads the config first; pve-http-server puts the message in the
reason phrase and, in PVE 7+, in the body). A 403 "Permission check failed (/vms/<vmid>,
VM.Audit)" is never absence: the token cannot see, so the source is UNREACHABLE.

PVE sends vmid, pid and onboot as numbers in one version and strings in another; both are
normalised to int here.

Every VM is asked at the node the SSOT names for it (a decommission record's, ssot/vms.yaml's,
else the Proxmox host's); a VM asked at another node than the Proxmox host's own (`node`) says
so in its own `node`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from opsverify import redact
from opsverify.facts.api_client import (
    Api,
    Reply,
    api_message,
    as_dict,
    client_for,
    concurrently,
    opt_int,
    opt_str,
    parsed,
    status_reason,
)
from opsverify.families.vms import declared as declared_vms
from opsverify.settings import Settings
from opsverify.ssot import Ssot
from opsverify.verdict import Unreachable

SOURCE = "proxmox"
NO_AUDIT = "token cannot audit /vms (privilege-separated token without PVEAuditor?)"


def _data(payload: Any) -> Any:
    doc = as_dict(payload, "response")
    if "data" not in doc:
        raise ValueError("no data in the response")
    return doc["data"]


def parse_vm_status(payload: Any) -> dict[str, Any]:
    """{status, qmpstatus, name} of GET /nodes/{node}/qemu/{vmid}/status/current."""
    data = as_dict(_data(payload), "data")
    return {"status": opt_str(data.get("status")), "qmpstatus": opt_str(data.get("qmpstatus")),
            "name": opt_str(data.get("name"))}


def parse_vm_config(payload: Any) -> dict[str, Any]:
    """{onboot, name} of GET /nodes/{node}/qemu/{vmid}/config; onboot unset is PVE's default 0."""
    data = as_dict(_data(payload), "data")
    onboot = opt_int(data.get("onboot")) if "onboot" in data else 0
    return {"onboot": onboot, "name": opt_str(data.get("name"))}


def proves_absent(reply: Reply, node: str, vmid: int) -> bool:
    """Whether a reply is PVE's answer for VM `vmid` not existing on `node`, and nothing else.

    Only the exact config path counts: another VM's or node's missing config, another 500
    (a node name that does not resolve, a cluster filesystem error) proves nothing.
    """
    if reply.status != 500:
        return False
    wanted = f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    said = [reply.reason, api_message(reply.body) or ""]
    return any(re.sub(r"\s+$", "", text) == wanted for text in said)


class _Denied(Exception):
    """PVE refused to show this VM (403): the token may not audit it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _wanted(ssot: Ssot, default_node: str) -> dict[int, str]:
    """vmid -> node for every decommission record, every VM of ssot/vms.yaml and every active
    VM with a vmid."""
    out = {d.vmid: d.node for d in ssot.decommissions}
    for vm in declared_vms(ssot):
        out.setdefault(vm.vmid, vm.node)
    for host in ssot.hosts.values():
        if host.active and host.vmid is not None:
            out.setdefault(host.vmid, default_node)
    return out


def collect(ssot: Ssot, settings: Settings, client: httpx.Client | None = None
            ) -> dict[str, Any]:
    """The `proxmox` facts of the contract, or Unreachable."""
    token = settings.proxmox_token
    if not token:
        raise Unreachable(SOURCE, "PROXMOX_API_TOKEN is not set")
    redact.register(token, token.partition("=")[2])
    pve = ssot.proxmox_host
    if pve is None or not pve.proxmox_api:
        raise Unreachable(SOURCE, "the SSOT names no active host with a proxmox api_url")
    node = pve.proxmox_node or pve.hostname
    base = pve.proxmox_api.rstrip("/") + "/api2/json"
    headers = {"Accept": "application/json", "Authorization": f"PVEAPIToken={token}"}
    wanted = _wanted(ssot, node)
    with client_for(SOURCE, settings, client) as http:
        api = Api(SOURCE, http, settings)

        def vm_facts(vmid: int) -> dict[str, Any] | _Denied:
            vm_node = wanted[vmid]
            prefix = f"{base}/nodes/{quote(vm_node, safe='')}/qemu/{vmid}"
            try:
                status = _get(api, f"{prefix}/status/current", headers, vm_node, vmid,
                              parse_vm_status)
                config = _get(api, f"{prefix}/config", headers, vm_node, vmid,
                              parse_vm_config) if status is not None else None
            except _Denied as denied:
                return denied
            if status is None or config is None:  # proven absent (config: destroyed meanwhile)
                found = _gone()
            else:
                found = {"exists": True, "status": status["status"],
                         "qmpstatus": status["qmpstatus"], "onboot": config["onboot"],
                         "name": config["name"] or status["name"]}
            return found if vm_node == node else {**found, "node": vm_node}

        vmids = sorted(wanted)
        vms = concurrently(vm_facts, vmids)
    denied = [v for v in vms if isinstance(v, _Denied)]
    if denied:
        raise Unreachable(SOURCE, f"{NO_AUDIT}: {denied[0].reason}"
                          + (f" (and {len(denied) - 1} more)" if len(denied) > 1 else ""))
    return {"node": node, "vms": {str(v): f for v, f in zip(vmids, vms, strict=True)}}


def _gone() -> dict[str, Any]:
    return {"exists": False, "status": None, "qmpstatus": None, "onboot": None, "name": None}


def _get(api: Api, url: str, headers: dict[str, str], node: str, vmid: int, parse: Any
         ) -> dict[str, Any] | None:
    """Parsed data of one VM endpoint; None if PVE proves the VM absent; _Denied on a 403."""
    reply = api.request("GET", url, headers=headers)
    if proves_absent(reply, node, vmid):
        return None
    if reply.status == 403:
        raise _Denied(status_reason(reply))
    if not 200 <= reply.status < 300:
        raise api.fail(status_reason(reply))
    try:
        payload = reply.json()
    except ValueError as exc:
        raise api.fail(f"{reply.where}: HTTP {reply.status} but {exc}") from None
    return parsed(api, reply.where, parse, payload)
