#!/usr/bin/env python3
"""Stand-in for the `tailscale` CLI (status, ip, version), read-only, from a JSON state file."""

from __future__ import annotations

import hashlib
import json
import os
import sys

TYPE_CHECKING = False  # typing is not imported when run: each call of the CLI pays its imports
if TYPE_CHECKING:
    from typing import Any

STATE_ENV = "TAILSCALE_STANDIN_STATE"
DEFAULT_STATE = "/var/lib/tailscale/standin.json"
NOT_RUNNING = ("failed to connect to local tailscaled; it doesn't appear to be running "
               "(sudo systemctl start tailscaled ?)")
ZERO_TIME = "0001-01-01T00:00:00Z"


def seed(
    *,
    hostname: str,
    ipv4: str,
    ipv6: str | None = None,
    backend_state: str = "Running",
    daemon_running: bool = True,
    peers: list[dict[str, Any]] | None = None,
    tailnet: str = "homelab@example.com",
    magic_dns_suffix: str = "tail4f69a0.ts.net",
    version: str = "1.80.3-t8d4b4a1d4-g3c4e2f2a1",
) -> dict[str, Any]:
    """The state file of one host's `tailscale`.

    hostname: the node's name; ipv4/ipv6: its Tailscale addresses (ipv6 derived if omitted).
    backend_state: Running, Stopped, NeedsLogin, Starting, NoState.
    daemon_running: False makes every command fail as when tailscaled is down.
    peers: [{"hostname", "ipv4", "ipv6"?, "online"?, "os"?, "tags"?}].
    tailnet/magic_dns_suffix/version: as `tailscale status --json` reports them.
    """
    def node(name: str, v4: str, v6: str | None, online: bool, os_name: str,
             tags: list[str] | None = None) -> dict[str, Any]:
        return {"hostname": name, "ips": [v4, v6 or _derive_v6(v4)], "online": online,
                "os": os_name, "tags": tags or []}

    return {
        "daemon_running": daemon_running,
        "backend_state": backend_state,
        "version": version,
        "tailnet": tailnet,
        "magic_dns_suffix": magic_dns_suffix,
        "user": {"id": 7412380917331256, "login_name": tailnet, "display_name": "Homelab"},
        "self": node(hostname, ipv4, ipv6, True, "linux"),
        "peers": [node(p["hostname"], p["ipv4"], p.get("ipv6"), p.get("online", True),
                       p.get("os", "linux"), p.get("tags")) for p in peers or []],
    }


def _derive_v6(v4: str) -> str:
    import ipaddress  # only when seeding, not on every call of the CLI

    low = int(ipaddress.IPv4Address(v4)) & 0xFFFFFFFF
    return str(ipaddress.IPv6Address((0xFD7A115CA1E0 << 80) | low))


def _key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _peer_status(st: dict[str, Any], node: dict[str, Any], is_self: bool) -> dict[str, Any]:
    running = st["backend_state"] == "Running"
    name = node["hostname"]
    ips = node["ips"] if running else None
    key = _key(name)
    v4 = node["ips"][0]
    status = {
        "ID": f"n{key[:9].upper()}CNTRL",
        "PublicKey": f"nodekey:{key}",
        "HostName": name,
        "DNSName": f"{name.lower()}.{st['magic_dns_suffix']}.",
        "OS": node["os"],
        "UserID": st["user"]["id"],
        "TailscaleIPs": ips,
        "Addrs": [f"198.51.100.{int(key[:2], 16) % 200 + 20}:41641"] if is_self else None,
        "CurAddr": "",
        "Relay": "fra",
        "PeerRelay": "",
        "RxBytes": 0 if is_self else 1234,
        "TxBytes": 0 if is_self else 5678,
        "Created": "2024-01-01T00:00:00Z",
        "LastWrite": ZERO_TIME,
        "LastSeen": ZERO_TIME,
        "LastHandshake": ZERO_TIME,
        "Online": running and node["online"],
        "ExitNode": False,
        "ExitNodeOption": False,
        "Active": False,
        "PeerAPIURL": [f"http://{v4}:{41000 + int(key[:3], 16) % 1000}"] if running else None,
        "TaildropTarget": 0,
        "NoFileSharingReason": "",
        "InNetworkMap": running,
        "InMagicSock": running and not is_self,
        "InEngine": False,
    }
    if node.get("tags"):  # Go's omitempty: only tagged nodes carry "Tags"
        status["Tags"] = node["tags"]
    return status


def status_json(st: dict[str, Any], peers: bool = True) -> dict[str, Any]:
    """What `tailscale status --json` prints for this state."""
    running = st["backend_state"] == "Running"
    peer_map = None
    if running and peers:
        peer_map = {f"nodekey:{_key(p['hostname'])}": _peer_status(st, p, False)
                    for p in st["peers"]}
    user = st["user"]
    return {
        "Version": st["version"],
        "TUN": True,
        "BackendState": st["backend_state"],
        "HaveNodeKey": st["backend_state"] != "NeedsLogin",
        "AuthURL": st.get("auth_url", ""),
        "TailscaleIPs": st["self"]["ips"] if running else None,
        "Self": _peer_status(st, st["self"], True),
        "Health": [],
        "MagicDNSSuffix": st["magic_dns_suffix"],
        "CurrentTailnet": {"Name": st["tailnet"], "MagicDNSSuffix": st["magic_dns_suffix"],
                           "MagicDNSEnabled": True} if running else None,
        "CertDomains": None,
        "Peer": peer_map,
        "User": {str(user["id"]): {"ID": user["id"], "LoginName": user["login_name"],
                                   "DisplayName": user["display_name"], "ProfilePicURL": ""}},
        "ClientVersion": None,
    }


def _status_text(st: dict[str, Any]) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) of plain `tailscale status`."""
    state = st["backend_state"]
    if state == "Stopped":
        return "Tailscale is stopped.\n", "", 1
    if state == "NeedsLogin":
        url = st.get("auth_url", "")
        return "Logged out.\n" + (f"\nLog in at: {url}\n" if url else ""), "", 1
    if state != "Running":
        return "", f"unexpected state: {state}\n", 1
    owner = st["user"]["login_name"].split("@")[0] + "@"
    lines = []
    for node in [st["self"], *st["peers"]]:
        state_col = "-" if node is st["self"] or node["online"] else "offline"
        lines.append(f"{node['ips'][0]:<15} {node['hostname'].lower():<20} {owner:<12} "
                     f"{node['os']:<7} {state_col}\n")
    return "".join(lines), "", 0


def _ip(st: dict[str, Any], args: list[str]) -> tuple[str, str, int]:
    """(stdout, stderr, exit code) of `tailscale ip [-1|-4|-6] [peer]`."""
    flags = [a for a in args if a.startswith("-")]
    rest = [a for a in args if not a.startswith("-")]
    unknown = [f for f in flags if f.lstrip("-") not in ("1", "4", "6")]
    if unknown:
        return "", f"flag provided but not defined: {unknown[0]}\n", 2
    want1, want4, want6 = (any(f.lstrip("-") == c for f in flags) for c in "146")
    if want1 + want4 + want6 > 1:
        return "", "tailscale ip -1, -4, and -6 are mutually exclusive\n", 1
    if len(rest) > 1:
        return "", "too many arguments, expected at most one peer\n", 1
    v4, v6 = (want4, want6) if want4 or want6 else (True, True)
    running = st["backend_state"] == "Running"
    ips = st["self"]["ips"] if running else []
    if rest:
        nodes = [st["self"], *st["peers"]] if running else []
        match = [n for n in nodes if rest[0] in n["ips"] or rest[0].lower() == n["hostname"].lower()]
        if not match:
            return "", f"no peer found with IP {rest[0]}\n", 1
        ips = match[0]["ips"]
    if not ips:
        return "", f"no current Tailscale IPs; state: {st['backend_state']}\n", 1
    if want1:
        ips = ips[:1]
    out = [ip for ip in ips if (":" not in ip and v4) or (":" in ip and v6)]
    if not out:
        return "", f"no Tailscale IPv{4 if want4 else 6} address\n", 1
    return "".join(f"{ip}\n" for ip in out), "", 0


def main(argv: list[str] | None = None) -> int:
    """Run one `tailscale` command; errors go to stderr with a non-zero exit, as the real CLI."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write("USAGE\n  tailscale [flags] <subcommand> [command flags]\n\n"
                         "stand-in subcommands: status, ip, version\n")
        return 0 if args else 1
    cmd, rest = args[0], args[1:]
    if cmd not in ("status", "ip", "version"):
        sys.stderr.write(f"tailscale: unknown subcommand: {cmd}\n")
        return 1
    path = os.environ.get(STATE_ENV, DEFAULT_STATE)
    try:
        with open(path) as fh:
            st = json.load(fh)
    except (OSError, ValueError):
        st = {"daemon_running": False}
    if cmd == "version":
        version = st.get("version", "1.80.3-t8d4b4a1d4-g3c4e2f2a1")
        sys.stdout.write(f"{version.split('-')[0]}\n  tailscale commit: {version}\n"
                         f"  go version: go1.23.6\n")
        return 0
    if not st.get("daemon_running"):
        sys.stderr.write(NOT_RUNNING + "\n")
        return 1
    if cmd == "ip":
        out, err, code = _ip(st, rest)
    elif "--json" in rest or "-json" in rest:
        peers = not any(a in ("--peers=false", "-peers=false") for a in rest)
        out, err, code = json.dumps(status_json(st, peers), indent=2) + "\n", "", 0
    else:
        out, err, code = _status_text(st)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main())
