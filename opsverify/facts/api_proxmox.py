"""Proxmox VE facts: existence, run state and onboot of every VM the SSOT names.

PVE sends vmid, pid and onboot as numbers in one version and strings in another; both are
normalised to int here. A destroyed VM is absent from the node's list, and its status answers
500 "... does not exist": both mean exists = false, not an unreachable API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from opsverify import redact
from opsverify.facts.api_client import (
    Api,
    as_dict,
    as_list,
    client_for,
    concurrently,
    opt_int,
    opt_str,
    parsed,
    status_reason,
)
from opsverify.settings import Settings
from opsverify.ssot import Ssot
from opsverify.verdict import Unreachable

SOURCE = "proxmox"


def _data(payload: Any) -> Any:
    doc = as_dict(payload, "response")
    if "data" not in doc:
        raise ValueError("no data in the response")
    return doc["data"]


def parse_vm_list(payload: Any) -> dict[int, dict[str, Any]]:
    """{vmid: {status, name}} of GET /nodes/{node}/qemu."""
    out = {}
    for vm in as_list(_data(payload), "data"):
        vmid = opt_int(vm.get("vmid")) if isinstance(vm, dict) else None
        if vmid is not None:
            out[vmid] = {"status": opt_str(vm.get("status")), "name": opt_str(vm.get("name"))}
    return out


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


def _absent(status: int, reason: str, body: bytes) -> bool:
    """PVE's answer for a VM that does not exist (500, 'Configuration file ... does not exist')."""
    return status == 500 and "does not exist" in (reason + body.decode("utf-8", "replace"))


def _wanted(ssot: Ssot, default_node: str) -> dict[int, str]:
    """vmid -> node for every decommission record and every active VM with a vmid."""
    out = {d.vmid: d.node for d in ssot.decommissions}
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
    headers = {"Authorization": f"PVEAPIToken={token}"}
    wanted = _wanted(ssot, node)
    with client_for(SOURCE, settings, client) as http:
        api = Api(SOURCE, http, settings)
        listed: dict[int, dict[str, Any]] = {}
        for n in sorted(set(wanted.values())):
            url = f"{base}/nodes/{quote(n, safe='')}/qemu"
            _, payload = api.get_json(url, headers=headers)
            listed |= {vmid: vm for vmid, vm in parsed(api, f"GET {url}", parse_vm_list,
                                                        payload).items() if wanted.get(vmid) == n}

        def vm_facts(vmid: int) -> dict[str, Any]:
            if vmid not in listed:
                return _gone()
            prefix = f"{base}/nodes/{quote(wanted[vmid], safe='')}/qemu/{vmid}"
            status = _get(api, f"{prefix}/status/current", headers, parse_vm_status)
            config = _get(api, f"{prefix}/config", headers, parse_vm_config)
            if status is None or config is None:  # destroyed between the list and now
                return _gone()
            return {"exists": True, "status": status["status"] or listed[vmid]["status"],
                    "qmpstatus": status["qmpstatus"], "onboot": config["onboot"],
                    "name": config["name"] or status["name"] or listed[vmid]["name"]}

        vmids = sorted(wanted)
        vms = concurrently(vm_facts, vmids)
    return {"node": node, "vms": {str(v): f for v, f in zip(vmids, vms, strict=True)}}


def _gone() -> dict[str, Any]:
    return {"exists": False, "status": None, "qmpstatus": None, "onboot": None, "name": None}


def _get(api: Api, url: str, headers: dict[str, str], parse: Any) -> dict[str, Any] | None:
    reply = api.request("GET", url, headers={"Accept": "application/json", **headers})
    if _absent(reply.status, reply.reason, reply.body):
        return None
    if not 200 <= reply.status < 300:
        raise api.fail(status_reason(reply))
    try:
        payload = reply.json()
    except ValueError as exc:
        raise api.fail(f"{reply.where}: HTTP {reply.status} but {exc}") from None
    return parsed(api, reply.where, parse, payload)
