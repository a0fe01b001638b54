"""Proxmox VE stand-in: the /api2/json endpoints that manage QEMU VMs on one node."""

from __future__ import annotations

import hashlib
import re
import secrets
import sys
import time
from typing import Any, ClassVar

from opsverify.lab.standins._http import (
    ApiError,
    App,
    Request,
    Response,
    json_response,
    serve_main,
    sha256,
)

API = "/api2/json"
INT_KEYS = {"cores", "sockets", "memory", "balloon", "cpuunits", "vcpus", "shares", "vmid"}
BOOL_KEYS = {"onboot", "numa", "kvm", "protection", "acpi", "tablet", "template", "start"}
STR_KEYS = {"name", "description", "tags", "ostype", "cpu", "agent", "boot", "bootdisk", "scsihw",
            "bios", "hotplug", "vmgenid", "smbios1", "startup", "machine", "vga", "ciuser",
            "sshkeys", "nameserver", "searchdomain", "lock"}
DEVICE_KEY = re.compile(r"(scsi|ide|sata|virtio|net|unused|efidisk|tpmstate|serial|usb|hostpci|"
                        r"ipconfig)\d+")
DISK_KEY = re.compile(r"(scsi|ide|sata|virtio)\d+")
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
# Roles as pve-access-control builds them (AccessControl.pm $privgroups): PVEAuditor holds the
# audit privileges; Administrator, and the user root@pam, hold every privilege ("*").
ROLES: dict[str, set[str]] = {
    "PVEAuditor": {"Datastore.Audit", "Mapping.Audit", "Pool.Audit", "SDN.Audit", "Sys.Audit",
                   "VM.Audit", "VM.GuestAgent.Audit"},
    "PVEVMUser": {"VM.Audit", "VM.Console", "VM.PowerMgmt", "VM.Backup", "VM.Config.CDROM"},
    "Administrator": {"*"},
}
ACL_PATH = re.compile(r"/|(/(vms|nodes|storage|pool|sdn|mapping|access)(/[\w.@!-]+)*)")
BLOCKSTAT_FIELDS = (
    "account_failed", "account_invalid", "failed_flush_operations", "failed_rd_operations",
    "failed_unmap_operations", "failed_wr_operations", "flush_operations", "flush_total_time_ns",
    "idle_time_ns", "invalid_flush_operations", "invalid_rd_operations",
    "invalid_unmap_operations", "invalid_wr_operations", "rd_bytes", "rd_merged",
    "rd_operations", "rd_total_time_ns", "timed_stats", "unmap_bytes", "unmap_merged",
    "unmap_operations", "unmap_total_time_ns", "wr_bytes", "wr_highest_offset", "wr_merged",
    "wr_operations", "wr_total_time_ns",
)


def seed(
    *,
    vms: list[dict[str, Any]],
    auditor_token_id: str,
    auditor_secret: str,
    admin_token_id: str,
    admin_secret: str,
    node: str = "pve",
    version: str = "8.3.2",
    repoid: str = "3e76eec21c4a14a7",
    string_ids: bool = False,
    auditor_privsep: bool = True,
) -> dict[str, Any]:
    """The initial state of the Proxmox VE stand-in.

    vms: [{"vmid": 201, "name": "media-stack", "status": "running"|"stopped", "onboot": 0|1?,
      "cores": 4, "memory": 8192, ...more qemu config keys}]; onboot is absent unless given.
    auditor_token_id/auditor_secret: API token "USER@REALM!TOKENID" whose user holds PVEAuditor
      on /vms; with auditor_privsep (PVE's default for new tokens) the role is granted to the
      token too, as a privilege-separated token needs it.
    admin_token_id/admin_secret: API token of root@pam-like power (privilege separation off).
    Only SHA-256 digests of token secrets are stored.
    node: the node name; version/repoid: what GET /version reports.
    string_ids: quirk of some fixtures: vmid and pid as strings in the VM list.
    """
    auditor_user = auditor_token_id.partition("!")[0]
    acl = [{"path": "/vms", "type": "user", "ugid": auditor_user, "roleid": "PVEAuditor",
            "propagate": 1}]
    if auditor_privsep:
        acl.append({"path": "/vms", "type": "token", "ugid": auditor_token_id,
                    "roleid": "PVEAuditor", "propagate": 1})
    admin_user = admin_token_id.partition("!")[0]
    if admin_user != "root@pam":
        acl.append({"path": "/", "type": "user", "ugid": admin_user, "roleid": "Administrator",
                    "propagate": 1})
    state: dict[str, Any] = {
        "node": node,
        "version": {"version": version, "release": ".".join(version.split(".")[:2]),
                    "repoid": repoid},
        "quirks": {"string_ids": string_ids},
        "tokens": {
            auditor_token_id: {"sha256": sha256(auditor_secret), "privsep": int(auditor_privsep),
                               "comment": "opsverify", "expire": 0},
            admin_token_id: {"sha256": sha256(admin_secret), "privsep": 0, "comment": "",
                             "expire": 0},
        },
        "acl": acl,
        "vms": {},
        "tasks": {},
    }
    for spec in vms:
        spec = dict(spec)
        vmid = int(spec.pop("vmid"))
        running = spec.pop("status", "stopped") == "running"
        config = {"cores": 1, "sockets": 1, "memory": 2048, "ostype": "l26",
                  "scsi0": f"local-zfs:vm-{vmid}-disk-0,size=32G",
                  "net0": f"virtio={_mac(vmid)},bridge=vmbr0", "scsihw": "virtio-scsi-single",
                  "boot": "order=scsi0;net0", "smbios1": f"uuid={_uuid(vmid)}",
                  "vmgenid": _uuid(vmid + 1)}
        config.update(_coerce(spec, allow=set(spec)))
        state["vms"][str(vmid)] = {"node": node, "config": config, "running": running,
                                   "started_at": 0.0, "pid": 0}
        if running:
            state["vms"][str(vmid)].update(started_at=_epoch(), pid=_pid())
    return state


def _epoch() -> float:
    return time.time()


def _pid() -> int:
    return 1000 + secrets.randbelow(4_000_000)


def _mac(vmid: int) -> str:
    return "BC:24:11:" + ":".join(f"{b:02X}" for b in vmid.to_bytes(3, "big"))


def _uuid(n: int) -> str:
    h = hashlib.sha1(str(n).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _size(spec: str) -> int:
    match = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)", spec)
    if not match:
        return 0
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " "))


def _coerce(params: dict[str, Any], allow: set[str]) -> dict[str, Any]:
    """Typed config values, or PVE's 400 'Parameter verification failed.'."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in params.items():
        text = str(value).strip()
        if key in BOOL_KEYS:
            if text.lower() in TRUE | FALSE:
                out[key] = int(text.lower() in TRUE)
            else:
                errors[key] = f"type check ('boolean') failed - got '{text}'"
        elif key in INT_KEYS:
            if re.fullmatch(r"-?\d+", text):
                out[key] = int(text)
            else:
                errors[key] = f"type check ('integer') failed - got '{text}'"
        elif key in allow and (key in STR_KEYS or DEVICE_KEY.fullmatch(key)):
            if key == "name" and not re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?", text):
                errors[key] = f"value '{text}' does not look like a valid DNS name"
            out[key] = text
        else:
            errors[key] = "property is not defined in schema and the schema does not allow " \
                          "additional properties"
    if errors:
        raise ApiError(400, "Parameter verification failed.", errors=errors)
    return out


def _privileges(state: dict[str, Any], ugid: str, path: str) -> set[str]:
    """Privileges of a user or token on an ACL path, as AccessControl.pm roles() finds them:
    the roles of the deepest level that has an entry for it, propagating entries from above,
    any entry at the path itself; root@pam has every privilege."""
    if ugid == "root@pam":
        return {"*"}
    parts = [p for p in path.split("/") if p]
    levels = ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
    roles: set[str] = set()
    for depth, level in enumerate(levels):
        final = depth == len(levels) - 1
        here = {e["roleid"] for e in state.get("acl", [])
                if e["ugid"] == ugid and e["path"] == level and (final or e.get("propagate"))}
        if here:
            roles = here
    return set().union(*(ROLES.get(r, set()) for r in roles))


def _digest(config: dict[str, Any]) -> str:
    text = "".join(f"{k}: {config[k]}\n" for k in sorted(config))
    return hashlib.sha1(text.encode()).hexdigest()


class ProxmoxApi(App):
    """Proxmox VE API under /api2/json."""

    name = "proxmox"
    server_header = "pve-api-daemon/3.0"
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("GET", f"{API}/version", "version"),
        ("GET", f"{API}/nodes", "nodes"),
        ("GET", f"{API}/cluster/resources", "resources"),
        ("GET", f"{API}/nodes/{{node}}/qemu", "list_vms"),
        ("POST", f"{API}/nodes/{{node}}/qemu", "create_vm"),
        ("GET", f"{API}/nodes/{{node}}/qemu/{{vmid}}", "vm_index"),
        ("DELETE", f"{API}/nodes/{{node}}/qemu/{{vmid}}", "destroy_vm"),
        ("GET", f"{API}/nodes/{{node}}/qemu/{{vmid}}/config", "get_config"),
        ("POST", f"{API}/nodes/{{node}}/qemu/{{vmid}}/config", "post_config"),
        ("PUT", f"{API}/nodes/{{node}}/qemu/{{vmid}}/config", "put_config"),
        ("GET", f"{API}/nodes/{{node}}/qemu/{{vmid}}/status/current", "status_current"),
        ("POST", f"{API}/nodes/{{node}}/qemu/{{vmid}}/status/{{action}}", "status_action"),
        ("GET", f"{API}/nodes/{{node}}/tasks/{{upid}}/status", "task_status"),
        ("GET", f"{API}/access/acl", "read_acl"),
        ("PUT", f"{API}/access/acl", "update_acl"),
        ("PUT", f"{API}/access/users/{{userid}}/token/{{tokenid}}", "update_token"),
    ]

    def handle(self, req: Request) -> Response:
        """PVE authenticates before it routes."""
        try:
            self._token(req)
        except ApiError as err:
            return self.render_error(req, err)
        return super().handle(req)

    def render_error(self, req: Request, err: ApiError) -> Response:
        """`{"data": null, "message": ...}`, the message also as HTTP reason phrase, like PVE."""
        status, message = err.status, err.message
        if status in (404, 405) and err.code is None:
            status = 501
            message = f"Method '{req.method} {req.path.removeprefix(API)}' not implemented"
        body: dict[str, Any] = {"data": None, "message": message + "\n"}
        if "errors" in err.details:
            body["errors"] = err.details["errors"]
        return json_response(status, body, reason=message)

    def _token(self, req: Request) -> dict[str, Any]:
        header = req.headers.get("Authorization") or ""
        match = re.fullmatch(r"PVEAPIToken[= ]([^!=\s]+@[^!=\s]+)!([^=\s]+)=(\S+)", header.strip())
        if not match:
            raise ApiError(401, "No ticket", "auth")
        user, token_id, secret = match.groups()
        entry = self.state.read()["tokens"].get(f"{user}!{token_id}")
        if entry is None:
            raise ApiError(401, f"no such token '{token_id}' for user '{user}'", "auth")
        if not secrets.compare_digest(entry["sha256"], sha256(secret)):
            raise ApiError(401, "invalid token value!", "auth")
        return {"id": f"{user}!{token_id}", **entry}

    def _require(self, req: Request, path: str, privilege: str) -> str:
        """The token id, or PVE's 403 'Permission check failed (PATH, PRIV)'; PVE checks a
        method's permissions before its code runs, so a VM that does not exist is a 403 too."""
        token = self._token(req)
        if not self._can(self.state.read(), token["id"], path, privilege):
            raise ApiError(403, f"Permission check failed ({path}, {privilege})", "perm")
        return token["id"]

    def _can(self, state: dict[str, Any], token_id: str, path: str, privilege: str) -> bool:
        entry = state["tokens"].get(token_id) or {}
        if "role" in entry:  # a state file written before the stand-in had ACLs
            return bool(ROLES.get(entry["role"], set()) & {"*", privilege})
        user = token_id.partition("!")[0]
        privs = _privileges(state, user, path)
        if entry.get("privsep"):  # the token's own ACL, within the user's (AccessControl.pm)
            own = _privileges(state, token_id, path)
            privs = privs if "*" in own else (own if "*" in privs else privs & own)
        return bool(privs & {"*", privilege})

    def _node(self, state: dict[str, Any], node: str) -> None:
        if node != state["node"]:
            raise ApiError(500, f"hostname lookup '{node}' failed - failed to get address info "
                                f"for: {node}: Name or service not known", "node")

    def _audit(self, req: Request, vmid: str) -> None:
        """VM.Audit on /vms/{vmid}, checked before the VM is looked up, as PVE does."""
        self._require(req, f"/vms/{int(vmid)}" if vmid.isdigit() else f"/vms/{vmid}",
                      "VM.Audit")

    def _vm(self, state: dict[str, Any], node: str, vmid: str) -> dict[str, Any]:
        self._node(state, node)
        if not re.fullmatch(r"\d+", vmid):
            raise ApiError(400, "Parameter verification failed.", "param",
                           errors={"vmid": f"type check ('integer') failed - got '{vmid}'"})
        vm = state["vms"].get(str(int(vmid)))
        if vm is None:
            raise ApiError(500, f"Configuration file 'nodes/{node}/qemu-server/{int(vmid)}.conf' "
                                "does not exist", "noconf")
        return vm

    def _task(self, state: dict[str, Any], kind: str, vmid: int, user: str,
              exitstatus: str = "OK") -> str:
        now = int(_epoch())
        pid, pstart = _pid(), secrets.randbelow(1 << 28)
        upid = f"UPID:{state['node']}:{pid:08X}:{pstart:08X}:{now:08X}:{kind}:{vmid}:{user}:"
        tasks = state.setdefault("tasks", {})
        tasks[upid] = {"upid": upid, "node": state["node"], "pid": pid, "pstart": pstart,
                       "starttime": now, "type": kind, "id": str(vmid), "user": user,
                       "status": "stopped", "exitstatus": exitstatus}
        for old in sorted(tasks, key=lambda u: tasks[u]["starttime"])[:-50]:
            del tasks[old]
        return upid

    def _ok(self, data: Any) -> Response:
        return json_response(200, {"data": data})

    def version(self, req: Request) -> Response:
        """GET /version."""
        return self._ok(self.state.read()["version"])

    def nodes(self, req: Request) -> Response:
        """GET /nodes."""
        state = self.state.read()
        return self._ok([{"node": state["node"], "status": "online", "type": "node",
                          "id": f"node/{state['node']}", "level": "", "maxcpu": 32,
                          "maxmem": 274877906944, "uptime": 864000, "cpu": 0.04}])

    def _summary(self, state: dict[str, Any], vmid: str, vm: dict[str, Any]) -> dict[str, Any]:
        config = vm["config"]
        running = vm["running"]
        maxmem = int(config.get("memory", 2048)) * 1024 * 1024
        disks = [v for k, v in config.items() if DISK_KEY.fullmatch(k) and "media=cdrom" not in v]
        item: dict[str, Any] = {
            "vmid": int(vmid),
            "name": config.get("name", f"VM {vmid}"),
            "status": "running" if running else "stopped",
            "cpus": int(config.get("cores", 1)) * int(config.get("sockets", 1)),
            "maxmem": maxmem,
            "mem": maxmem * 45 // 100 if running else 0,
            "maxdisk": _size(disks[0]) if disks else 0,
            "disk": 0,
            "cpu": 0.0213 if running else 0,
            "uptime": max(1, int(_epoch() - vm["started_at"])) if running else 0,
            "netin": 547369168 if running else 0,
            "netout": 14139344 if running else 0,
            "diskread": 649793308 if running else 0,
            "diskwrite": 1515457024 if running else 0,
            "template": int(config.get("template", 0)),
        }
        if running:
            item["pid"] = vm["pid"]
        if config.get("tags"):
            item["tags"] = config["tags"]
        if config.get("lock"):
            item["lock"] = config["lock"]
        return item

    def list_vms(self, req: Request, node: str) -> Response:
        """GET /nodes/{node}/qemu: only the VMs the token may audit (qemu-server's vmlist skips
        the others silently, so a token without permissions gets an empty list, not a 403)."""
        token = self._token(req)
        state = self.state.read()
        self._node(state, node)
        items = [self._summary(state, vmid, vm) for vmid, vm in sorted(state["vms"].items(),
                                                                        key=lambda kv: int(kv[0]))
                 if self._can(state, token["id"], f"/vms/{vmid}", "VM.Audit")]
        if state.get("quirks", {}).get("string_ids"):
            for item in items:
                item.update({k: str(item[k]) for k in ("vmid", "pid") if k in item})
        return self._ok(items)

    def resources(self, req: Request) -> Response:
        """GET /cluster/resources[?type=vm]: only what the token may audit, like PVE."""
        token = self._token(req)
        state = self.state.read()
        kind = req.query.get("type")
        out = []
        if kind in (None, "vm"):
            for vmid, vm in sorted(state["vms"].items(), key=lambda kv: int(kv[0])):
                if not self._can(state, token["id"], f"/vms/{vmid}", "VM.Audit"):
                    continue
                item = self._summary(state, vmid, vm)
                item.pop("pid", None)
                cpus = item.pop("cpus")
                out.append({**item, "id": f"qemu/{vmid}", "type": "qemu", "node": vm["node"],
                            "maxcpu": cpus})
        return self._ok(out)

    def vm_index(self, req: Request, node: str, vmid: str) -> Response:
        """GET /nodes/{node}/qemu/{vmid}: the directory index."""
        self._audit(req, vmid)
        self._vm(self.state.read(), node, vmid)
        subdirs = ["config", "pending", "status", "unlink", "vncproxy", "termproxy", "migrate",
                   "resize", "move", "rrd", "rrddata", "monitor", "agent", "snapshot", "spiceproxy",
                   "sendkey", "firewall", "mtunnel", "remote_migrate"]
        return self._ok([{"subdir": s} for s in subdirs])

    def status_current(self, req: Request, node: str, vmid: str) -> Response:
        """GET /nodes/{node}/qemu/{vmid}/status/current."""
        self._audit(req, vmid)
        state = self.state.read()
        vm = self._vm(state, node, vmid)
        item = self._summary(state, vmid, vm)
        item.pop("template")
        config = vm["config"]
        item["ha"] = {"managed": 0}
        item["qmpstatus"] = item["status"]
        if str(config.get("agent", "0")).split(",")[0] in ("1", "enabled=1"):
            item["agent"] = 1
        if not vm["running"]:
            return self._ok(item)
        if str(config.get("vga", "")).startswith("qxl"):
            item["spice"] = 1
        maxmem = item["maxmem"]
        disks = [k for k, v in config.items() if DISK_KEY.fullmatch(k)]
        nets = sorted(k for k in config if k.startswith("net") and k[3:].isdigit())
        item.update({
            "shares": 1000,
            "balloon": maxmem,
            "balloon_min": maxmem,
            "freemem": maxmem - item["mem"],
            "ballooninfo": {"actual": maxmem, "max_mem": maxmem, "free_mem": maxmem - item["mem"],
                            "total_mem": maxmem - 82137088, "major_page_faults": 1811,
                            "minor_page_faults": 3803793, "mem_swapped_in": 0,
                            "mem_swapped_out": 0, "last_update": int(_epoch())},
            "blockstat": {d: {f: (True if f.startswith("account_") else [] if f == "timed_stats"
                                  else 0) for f in BLOCKSTAT_FIELDS} for d in disks},
            "nics": {f"tap{int(vmid)}i{n[3:]}": {"netin": 0, "netout": 0} for n in nets},
            "proxmox-support": {"backup-max-workers": True, "pbs-dirty-bitmap": True,
                                "pbs-dirty-bitmap-migration": True,
                                "pbs-dirty-bitmap-savevm": True, "pbs-library-version": "1.4.1",
                                "pbs-masterkey": True, "query-bitmap-info": True},
            "running-machine": "pc-i440fx-9.0+pve0",
            "running-qemu": "9.0.2",
        })
        return self._ok(item)

    def get_config(self, req: Request, node: str, vmid: str) -> Response:
        """GET /nodes/{node}/qemu/{vmid}/config."""
        self._audit(req, vmid)
        config = self._vm(self.state.read(), node, vmid)["config"]
        return self._ok({**config, "digest": _digest(config)})

    def _set_config(self, req: Request, node: str, vmid: str) -> str:
        user = self._require(req, f"/vms/{vmid}", "VM.Config.Options")
        params = req.params()
        digest = params.pop("digest", None)
        deletes = [k.strip() for k in str(params.pop("delete", "")).split(",") if k.strip()]
        params.pop("skiplock", None)
        changes = _coerce(params, allow=STR_KEYS | {k for k in params if DEVICE_KEY.fullmatch(k)})
        with self.state.update() as state:
            vm = self._vm(state, node, vmid)
            if digest and digest != _digest(vm["config"]):
                raise ApiError(500, "detected modified configuration - file changed by other user? "
                                    "Try again.", "digest")
            for key in deletes:
                vm["config"].pop(key, None)
            vm["config"].update(changes)
            return self._task(state, "qmconfig", int(vmid), user)

    def post_config(self, req: Request, node: str, vmid: str) -> Response:
        """POST .../config: asynchronous in PVE, answers a task UPID."""
        return self._ok(self._set_config(req, node, vmid))

    def put_config(self, req: Request, node: str, vmid: str) -> Response:
        """PUT .../config: synchronous in PVE, answers null."""
        self._set_config(req, node, vmid)
        return self._ok(None)

    def status_action(self, req: Request, node: str, vmid: str, action: str) -> Response:
        """POST .../status/{start|stop|shutdown|reboot|reset}: answers a task UPID."""
        kinds = {"start": "qmstart", "stop": "qmstop", "shutdown": "qmshutdown",
                 "reboot": "qmreboot", "reset": "qmreset"}
        if action not in kinds:
            raise ApiError(404, "no such action")
        user = self._require(req, f"/vms/{vmid}", "VM.PowerMgmt")
        with self.state.update() as state:
            vm = self._vm(state, node, vmid)
            exitstatus = "OK"
            if action == "start":
                if vm["running"]:
                    exitstatus = f"VM {int(vmid)} already running"
                else:
                    vm.update(running=True, started_at=_epoch(), pid=_pid())
            elif action in ("stop", "shutdown"):
                vm.update(running=False, started_at=0.0, pid=0)
            elif not vm["running"]:
                exitstatus = f"VM {int(vmid)} not running"
            return self._ok(self._task(state, kinds[action], int(vmid), user, exitstatus))

    def create_vm(self, req: Request, node: str) -> Response:
        """POST /nodes/{node}/qemu {vmid, name, onboot, cores, memory, ...}: answers a task UPID."""
        params = req.params()
        if "vmid" not in params:
            raise ApiError(400, "Parameter verification failed.", "param",
                           errors={"vmid": "property is missing and it is not optional"})
        raw_vmid = str(params.pop("vmid"))
        if not re.fullmatch(r"\d+", raw_vmid) or not 100 <= int(raw_vmid) <= 999_999_999:
            raise ApiError(400, "Parameter verification failed.", "param",
                           errors={"vmid": f"invalid format - value '{raw_vmid}' does not look "
                                           "like a valid VM ID"})
        vmid = int(raw_vmid)
        user = self._require(req, f"/vms/{vmid}", "VM.Allocate")
        config = _coerce(params, allow=STR_KEYS | {k for k in params if DEVICE_KEY.fullmatch(k)})
        start = bool(config.pop("start", 0))
        with self.state.update() as state:
            self._node(state, node)
            if str(vmid) in state["vms"]:
                raise ApiError(500, f"unable to create VM {vmid}: config file already exists",
                               "exists")
            config.setdefault("smbios1", f"uuid={_uuid(vmid)}")
            config.setdefault("vmgenid", _uuid(vmid + 1))
            vm = {"node": node, "config": config, "running": start,
                  "started_at": _epoch() if start else 0.0, "pid": _pid() if start else 0}
            state["vms"][str(vmid)] = vm
            return self._ok(self._task(state, "qmcreate", vmid, user))

    def destroy_vm(self, req: Request, node: str, vmid: str) -> Response:
        """DELETE /nodes/{node}/qemu/{vmid}: refused while running, like PVE."""
        user = self._require(req, f"/vms/{vmid}", "VM.Allocate")
        with self.state.update() as state:
            vm = self._vm(state, node, vmid)
            if vm["running"]:
                raise ApiError(500, f"VM {int(vmid)} is running - destroy failed", "running")
            if vm["config"].get("protection"):
                raise ApiError(500, f"can't remove VM {int(vmid)} - protection mode enabled",
                               "protected")
            del state["vms"][str(int(vmid))]
            return self._ok(self._task(state, "qmdestroy", int(vmid), user))

    def read_acl(self, req: Request) -> Response:
        """GET /access/acl: the entries the token may see (Sys.Audit on /access)."""
        self._require(req, "/access", "Sys.Audit")
        return self._ok(self.state.read().get("acl", []))

    def update_acl(self, req: Request) -> Response:
        """PUT /access/acl {path, roles, users|tokens, propagate?, delete?} (API2/ACL.pm)."""
        params = req.params()
        path = str(params.get("path", "")).strip()
        if not ACL_PATH.fullmatch(path):
            raise ApiError(400, "Parameter verification failed.", "param",
                           errors={"path": f"invalid ACL path '{path}'"})
        self._require(req, path, "Permissions.Modify")
        roles = [r for r in str(params.get("roles", "")).split(",") if r.strip()]
        members = [("user", u) for u in str(params.get("users", "")).split(",") if u.strip()]
        members += [("token", t) for t in str(params.get("tokens", "")).split(",") if t.strip()]
        if not members:
            raise ApiError(400, "Parameter verification failed.", "param",
                           errors={k: "either 'users', 'groups' or 'tokens' is required."
                                   for k in ("users", "groups", "tokens")})
        delete = str(params.get("delete", "0")).lower() in TRUE
        propagate = int(str(params.get("propagate", "1")).lower() in TRUE)
        with self.state.update() as state:
            acl = state.setdefault("acl", [])
            for role in roles:
                if role not in ROLES:
                    raise ApiError(500, f"role '{role}' does not exist", "role")
                for kind, ugid in members:
                    if kind == "token" and ugid not in state["tokens"]:
                        user, _, token = ugid.partition("!")
                        raise ApiError(500, f"no such token '{token}' for user '{user}'", "tok")
                    acl[:] = [e for e in acl if not (e["path"] == path and e["ugid"] == ugid
                                                     and e["roleid"] == role)]
                    if not delete:
                        acl.append({"path": path, "type": kind, "ugid": ugid, "roleid": role,
                                    "propagate": propagate})
        return self._ok(None)

    def update_token(self, req: Request, userid: str, tokenid: str) -> Response:
        """PUT /access/users/{userid}/token/{tokenid} {privsep?, comment?, expire?}."""
        self._require(req, f"/access/users/{userid}", "User.Modify")
        params = req.params()
        with self.state.update() as state:
            entry = state["tokens"].get(f"{userid}!{tokenid}")
            if entry is None:
                raise ApiError(500, f"no such token '{tokenid}' for user '{userid}'", "tok")
            if "privsep" in params:
                entry["privsep"] = int(str(params["privsep"]).lower() in TRUE)
            for key in ("comment", "expire"):
                if key in params:
                    entry[key] = params[key] if key == "comment" else int(params[key])
            info = {k: entry.get(k) for k in ("comment", "expire", "privsep")}
        return self._ok(info)

    def task_status(self, req: Request, node: str, upid: str) -> Response:
        """GET /nodes/{node}/tasks/{upid}/status."""
        state = self.state.read()
        self._node(state, node)
        task = state.get("tasks", {}).get(upid)
        if task is None:
            raise ApiError(500, f"unable to parse worker upid '{upid}'", "task")
        return self._ok(task)


def main(argv: list[str] | None = None) -> int:
    """Serve the stand-in until SIGTERM."""
    return serve_main("proxmox", ProxmoxApi, argv)


if __name__ == "__main__":
    sys.exit(main())
