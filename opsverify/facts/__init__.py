"""Fact collection: hosts over SSH, APIs over HTTP(S); cached, saved and replayed.

Collectors produce facts; gates compare them with the SSOT. This is the contract between the
two: one JSON object per *source*, saved by `--save-facts DIR` as DIR/<source>.json (":" -> "-")
and replayed by `--facts DIR`. A source that could not be asked is saved as
{"unreachable": "<reason>"}. Facts never hold a secret value: secrets are reported by name,
and config files by the values of the keys the SSOT names: a value at or below a key that
names a secret (parsers.SECRET_NAME) only as "<secret: present>" or "<secret: absent>", a `*`
path only its scalar leaves, never a subtree (likewise a probe's `json`).

host:<name>  (one remote command per host; see opsverify/facts/commands.py)
    hostname:    str                               # `hostname` of the host
    tailscale:   {ok: bool, error: str|None, backend_state: str|None, ips: [str],
                  online: bool|None}                      # ok with an error: the state was
                                                          # printed before a non-zero exit
    mounts:      [{source, target, fstype, options: [str]}]      # /proc/mounts, unescaped,
                                                          # read again after a trigger
    automounts:  {<SSOT mount point>: {triggered: bool, mounted: bool, error: str|None}}
                                                          # an idle systemd automount found
    fstab:       [{source, target, fstype, options: [str], line: int}]  # lines libmount takes
    fstab_errors: [{line: int, target: str|None, error}]  # lines mount(8) and systemd skip
    docker:      {ok: bool, error: str|None, now: str,    # now: the host's UTC clock
                  containers: [{
                    name, id, image,                      # image = Config.Image as deployed
                    state,                                # created|running|restarting|exited|...
                    restarting: bool, restart_count: int, started_at: str, finished_at: str,
                    has_healthcheck: bool, health: "healthy"|"unhealthy"|"starting"|None,
                    env: {NAME: value},                   # only the names the SSOT pins
                    network_mode: str, restart_policy: str,
                    ports_configured, ports_published: [{container_port: int, proto,
                        host_ip, host_port: int|None}]    # HostConfig.PortBindings and
                 }]}                                      # NetworkSettings.Ports
    stacks:      {<stack>: {directory, exists: bool,
                    plaintext_files: [{path, keys: [SSOT secret key names found in it],
                                       mode: str|None}],  # below the directory and every root
                    scanned: [str],                       # the directories walked
                    generated: [{path, unit, exists, mode, uid, world_readable,
                                 git: {repo, tracked: bool|None, error},
                                 generator: {file, dropins, writes_file: bool,
                                             runs_infisical: bool, error}}],
                    complete: bool,                       # False: the time budget cut the walk
                    skipped: [{path, reason}],            # unreadable dirs, symlinks not followed
                    compose: {path, exists: bool, error: str|None,
                              secrets: {KEY: {kind: "reference"|"literal", line: int}}}}}
                                                          # only SSOT secret keys, never values;
                                                          # `- KEY` / `KEY:` (pass-through) and
                                                          # ${KEY}, $KEY, ${KEY:?msg} are
                                                          # references; ${KEY:-default} and ""
                                                          # are literals
    stale_refs:  [{address, file, line: int|None, table: str|None, row: int|None,
                   column: str|None}]                     # where a retired address appears
    scan:        {roots: [str], files: int, bytes: int, skipped: [{path, reason}],
                  media_skipped: int,                     # images/video/audio, by magic bytes
                  complete: bool}                         # False: the time budget cut the scan
    config:      {<check name>: {file, ok: bool, error: str|None,
                                 values: {<key path>: [values found]},
                                 via: {<key path>: ["!env_var NAME"|"!secret KEY"]},
                                 unresolved: {<key path>: [why]}}}  # never compared as literals
    zfs:         {ok: bool, error: str|None, datasets: [str]}   # Proxmox host only
    errors:      {<section>: str}                         # a section that failed or hung
                                                          # (hostname, mounts, fstab, ...)
    remote_s:    float                                    # the script's own run time
    transport:   {backend: "paramiko", host_key: "verified"|"NOT verified (...)",
                  connect_s: float, command_s: float}
    duration_s:  float

cloudflare
    zone:    {id, name, account_id}
    tunnel:  {id, version, ingress: [{hostname: str|None, service: str, path: str|None}],
              remote: bool, source: str|None}   # remote false: config null, locally managed
    dns:     [{name, type, content, proxied: bool}]

infisical
    paths:   {<secret path>: {keys: [str],                       # own and imported names
                              imported: {<key>: ["env:/path"]},  # keys only imports offer
                              imports: [{from: "env:/path", keys: [str]}]}}  # import order
                                  # names only: viewSecretValue=false, include_imports=true

proxmox
    node:    str
    vms:     {<vmid as str>: {exists: bool, status: str|None, qmpstatus: str|None,
                              onboot: int|None, name: str|None}}
                                  # onboot unset in the VM config = 0 (PVE's default);
                                  # exists false: all else None

prometheus
    targets: [{job, instance, health, scrape_url, last_error}]   # last_error "" -> None
    rules:   {<rule name>: {ok: bool, error: str|None, values: [float]}}
                                  # values may be NaN or +-inf (Prometheus sends "NaN", "+Inf")

http
    probes:  {<probe name>: {url, status: int|None, error: str|None, elapsed_s: float,
                             auth_error: str|None,        # its secret could not be obtained:
                                                          # not asked (error says so too);
                                                          # UNREACHABLE, not drift
                             unreachable: str|None,       # no path from the verifier:
                                                          # UNREACHABLE, not drift
                             connected: bool|None,        # false: refused or connect timeout
                                                          # (the gate asks if the host answers)
                             body: str|None,              # only when the SSOT expects a body
                             json: {<key path>: value},   # only the SSOT's expected keys;
                                                          # absent path -> key left out;
                                                          # a `*` path -> list of matches;
                                                          # an XML answer read as its JSON
                             json_keys: {<key path>: bool}}}
                                  # url: SSOT query values shown, auth parameters by name only
    routes:  {<hostname>: {url, status: int|None, location: str|None, error: str|None,
                           unreachable: str|None, elapsed_s: float}}  # redirects never followed
"""
