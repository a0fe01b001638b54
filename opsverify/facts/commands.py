"""THE list of everything the verifier runs on a host, in one place, so it can be audited.

Exactly one command runs on each host per run, built by facts_command() and nowhere else:

    env -i PATH=<SYSTEM_PATH> LC_ALL=C timeout -k 1 <LIMIT> python3 -I -S -B -c <BOOTSTRAP> \
        <SCRIPT> <PARAMS>

Why each part only reads:

- `env -i PATH=... LC_ALL=C` (coreutils) starts from an empty environment with the system
  PATH: whatever the login rc file put in PATH (a pyenv shim costs ~0.4 s per call) or in the
  environment cannot change which python3, tailscale or zfs runs. It works in any login shell.
- `timeout -k 1 LIMIT` (coreutils) ends the script after LIMIT seconds, KILLs it one second
  later: a hung NFS read cannot keep a process alive on the host.
- `python3 -I -S -B -c BOOTSTRAP`: isolated mode, no site-packages, no user environment, no
  script directory on the path, no bytecode written (importing a module whose .pyc is missing
  would write one into __pycache__ where the user may write); BOOTSTRAP (below, fixed text)
  unpacks SCRIPT and calls it. tests/security shows the script writes nothing.
- SCRIPT is base64(zlib(JSON)) of the source of this module and of the host agent's modules
  (opsverify/facts/agent/, listed in AGENT_MODULES) exactly as they are in this checkout, built
  by script_payload() below; check() rebuilds it and compares it byte for byte, so nothing
  else can be sent. PARAMS is
  base64 JSON of SSOT data (paths, names, addresses, glob patterns): data the script reads,
  never code, and never interpolated into a shell.

What the script does on the host, all of it reading:

- hostname: from the kernel (uname), no command.
- runs only the programs of HOST_ARGV, each with a timeout, stdin closed:
  `tailscale status --json` (prints the node's state) and, on the Proxmox host only,
  `zfs list -H -o name -t filesystem` (lists dataset names). Both are status listings.
- Docker: only the GET requests of DOCKER_GETS on the Engine API's unix socket
  (/containers/json?all=1, then /containers/{id}/json, also by name for a container whose
  environment a Recyclarr `!env_var` names): reads of container state. The script holds no
  other HTTP method.
- service probes (agent/probes.py): one HTTP GET per SSOT probe to the host's own address (only
  when it is one, so nothing leaves the host) and then 127.0.0.1, at the published port, short
  timeouts, no redirect followed, no credential sent (PARAMS hold none), the status kept only.
- files: opened O_RDONLY (plus O_NONBLOCK so a FIFO cannot block, O_NOFOLLOW below the config
  roots, and O_NOATIME where permitted so not even the access time changes): /proc/mounts,
  /etc/fstab, files below the stack directories and the SSOT config roots, config files the
  SSOT names (and the secrets.yml beside a Recyclarr config, for a `!secret` that must hold a
  URL), systemd unit files and drop-ins of the units the SSOT says generate a .env, and the
  .git/index of a repository such a .env sits in (is it tracked?).
- an SSOT mount point that only an idle systemd automount holds (`systemd-1 PATH autofs`):
  one stat() of PATH/. inside a time limit, which autofs answers by mounting it, as any
  reader's first access does; nothing is unmounted or changed.
- SQLite: opened as `file:PATH?mode=ro&immutable=1` with `PRAGMA query_only`: read-only and
  immutable, so SQLite takes no lock and creates no -wal, -shm or -journal file.

This module is sent along with the script (stdlib only, Python 3.8) because the agent reads
its tables (HOST_ARGV, DOCKER_GETS, SENTINEL, decode_params); script_payload(), check() and
describe() run only on the verifier. It imports no other opsverify module, so the agent can
import it and it can pack the agent without an import circle.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import re
import shlex
import zlib
from typing import Any

HOST_ARGV = {
    "tailscale_status": ("tailscale", "status", "--json"),
    "zfs_list": ("zfs", "list", "-H", "-o", "name", "-t", "filesystem"),
}
DOCKER_METHOD = "GET"
DOCKER_GETS = {
    "containers": "/containers/json?all=1",
    "inspect": "/containers/{id}/json",
}
BOOTSTRAP = (
    "import base64,json,sys,types,zlib\n"
    "p=json.loads(zlib.decompress(base64.b64decode(sys.argv[1])))\n"
    "for n,s in p['modules']:\n"
    " m=sys.modules[n]=types.ModuleType(n)\n"
    " a,_,b=n.rpartition('.')\n"
    " if a:setattr(sys.modules[a],b,m)\n"
    " exec(compile(s,'<opsverify>/'+n,'exec'),m.__dict__)\n"
    "sys.modules[p['main']].main(sys.argv[2])\n"
)
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PREFIX = ("env", "-i", f"PATH={SYSTEM_PATH}", "LC_ALL=C", "timeout", "-k", "1")
INTERPRETER = ("python3", "-I", "-S", "-B", "-c")
SENTINEL = "\x1e--opsverify-facts--"  # precedes the JSON, after anything a login rc file prints
PARAM_KEYS = frozenset({
    "host", "budget_s", "secret_name", "files", "zfs", "pinned_env", "stacks", "secret_keys",
    "plaintext_globs", "retired", "config_roots", "config_checks", "mount_paths", "probes",
})
MAX_LIMIT = 3600
# What SCRIPT holds. BOOTSTRAP registers the packages as empty modules, then runs the modules in
# this order: each comes after the ones it imports; the last one holds main().
AGENT_PACKAGES = ("opsverify", "opsverify.facts", "opsverify.facts.agent")
AGENT_MODULES = (
    "opsverify.facts.commands", "opsverify.facts.agent.primitives",
    "opsverify.facts.agent.keypaths", "opsverify.facts.agent.yaml_subset",
    "opsverify.facts.agent.fstab", "opsverify.facts.agent.programs",
    "opsverify.facts.agent.docker", "opsverify.facts.agent.envfiles",
    "opsverify.facts.agent.stacks", "opsverify.facts.agent.configs",
    "opsverify.facts.agent.scan", "opsverify.facts.agent.probes",
    "opsverify.facts.agent.main",
)


@functools.lru_cache(maxsize=1)
def script_payload() -> str:
    """SCRIPT: the modules the host runs, as base64(zlib(JSON)); built from this checkout."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    modules = [[name, ""] for name in AGENT_PACKAGES]
    for name in AGENT_MODULES:
        with open(os.path.join(top, *name.split(".")) + ".py", encoding="utf-8") as f:
            modules.append([name, f.read()])
    blob = json.dumps({"modules": modules, "main": AGENT_MODULES[-1]})
    return base64.b64encode(zlib.compress(blob.encode(), 9)).decode()


def encode_params(params: dict[str, Any]) -> str:
    """PARAMS: the parameters as base64 JSON (only [A-Za-z0-9+/=], nothing a shell reads)."""
    unknown = set(params) - PARAM_KEYS
    if unknown:
        raise ValueError(f"unknown remote parameters: {sorted(unknown)}")
    return base64.b64encode(json.dumps(params, sort_keys=True).encode()).decode()


def decode_params(arg: str) -> dict[str, Any]:
    """The parameters back from PARAMS; ValueError if it is not what encode_params makes."""
    try:
        params = json.loads(base64.b64decode(arg, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise ValueError("PARAMS is not base64 JSON") from None
    if not isinstance(params, dict) or set(params) - PARAM_KEYS:
        raise ValueError("PARAMS is not an object of known parameters")
    return params


def facts_command(script: str, params: dict[str, Any], limit: int) -> str:
    """The one command run on a host: the fact script under a hard limit of `limit` seconds."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_LIMIT} seconds, got {limit!r}")
    argv = (*PREFIX, str(limit), *INTERPRETER, BOOTSTRAP, script, encode_params(params))
    return " ".join(shlex.quote(a) for a in argv)


_HEAD = " ".join(shlex.quote(a) for a in PREFIX) + " "
_BASE64 = re.compile(r"[A-Za-z0-9+/=]+")  # shlex.quote leaves these unquoted


def _canonical(command: str) -> tuple[int, str, str] | None:
    """(LIMIT, SCRIPT, PARAMS) of a command in facts_command()'s form, read without shlex:
    shlex.split takes ~40 ms of CPU on a 40 kB command, holding the GIL, once per host in
    check() and again in describe() (seconds at 100 hosts). None: the full parse judges it."""
    if not command.startswith(_HEAD):
        return None
    limit = command[len(_HEAD):].partition(" ")[0]
    parts = command.rsplit(" ", 2)
    if len(parts) != 3 or not limit.isdigit() or not _BASE64.fullmatch(parts[1]) \
            or not _BASE64.fullmatch(parts[2]):
        return None
    return int(limit), parts[1], parts[2]


def check(command: str) -> dict[str, Any]:
    """Raise ValueError unless command is exactly a facts_command(); return its parameters."""
    fast = _canonical(command)
    if fast is not None:  # equal to the command built from the checkout's parts: it passes
        try:
            decoded = decode_params(fast[2])
            if fast[1] == script_payload() and command == facts_command(fast[1], decoded,
                                                                        fast[0]):
                return decoded
        except ValueError:
            pass  # the full parse below says what is wrong
    try:
        argv = shlex.split(command)
    except ValueError:
        raise ValueError("not a remote command of commands.py: unbalanced quoting") from None
    n = len(PREFIX)
    if len(argv) != n + len(INTERPRETER) + 4 or tuple(argv[:n]) != PREFIX \
            or tuple(argv[n + 1:n + 1 + len(INTERPRETER)]) != INTERPRETER:
        raise ValueError("not a remote command of commands.py: unexpected program or options")
    limit, bootstrap, script, params = argv[n], *argv[-3:]
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise ValueError(f"not a remote command of commands.py: bad time limit {limit!r}")
    if bootstrap != BOOTSTRAP:
        raise ValueError("not a remote command of commands.py: bootstrap code differs")
    if script != script_payload():
        raise ValueError("not a remote command of commands.py: script differs from the source")
    decoded = decode_params(params)
    if command != facts_command(script, decoded, int(limit)):
        raise ValueError("not a remote command of commands.py: not in canonical form")
    return decoded


def describe(command: str) -> str:
    """The command as an audit log shows it: the script by size and hash, PARAMS decoded."""
    fast = _canonical(command)
    if fast is not None:
        argv = [*PREFIX, str(fast[0]), *INTERPRETER, BOOTSTRAP, fast[1], fast[2]]
    else:
        argv = shlex.split(command)
    script, params = argv[-2], decode_params(argv[-1])
    digest = hashlib.sha256(script.encode()).hexdigest()[:16]
    shown = [*argv[:-3], "<BOOTSTRAP>", f"<script {len(script)} B sha256:{digest}>",
             json.dumps(params, sort_keys=True, separators=(",", ":"))]
    return " ".join(shlex.quote(a) for a in shown)


def check_described(shown: str) -> dict[str, Any]:
    """check() for a command as describe() recorded it (the run's JSON holds that form).

    The command is rebuilt from the recorded parameters and this checkout's script; the
    record must be exactly that command's description, and that command must pass check().
    """
    try:
        argv = shlex.split(shown)
        command = facts_command(script_payload(), json.loads(argv[-1]), int(argv[len(PREFIX)]))
    except (ValueError, IndexError, TypeError):
        raise ValueError("not a remote command of commands.py: unreadable record") from None
    if describe(command) != shown:
        raise ValueError("not a remote command of commands.py: not what this checkout runs")
    return check(command)


def script_modules(payload: str) -> dict[str, str]:
    """{module name: source} packed in a SCRIPT payload (for audits and tests)."""
    return dict(json.loads(zlib.decompress(base64.b64decode(payload)))["modules"])
